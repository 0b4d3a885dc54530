"""training.selection: one policy for every method (monitor, min_epochs, patience, step budget),
the old training.early_stopping key, and the record of which epoch was restored and why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from robustmm.config import load_study
from robustmm.config.schema import EarlyStoppingConfig, SelectionConfig, TrainingConfig
from robustmm.engine.trainer import Trainer
from robustmm.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


class _Batch:
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def to(self, device) -> "_Batch":
        return self


class _Data:
    """``batches`` training batches per epoch; the validation split is not read."""

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def loader(self, split: str, shuffle: bool = False, epoch: int = 0, **kwargs):
        return [_Batch(torch.ones(2, 1) * (i + 1)) for i in range(self.batches)]


class _Module(nn.Module):
    """Validation ``loss`` follows ``curve`` (epoch -> value); ``extra`` optimizer steps per batch
    are reported to the trainer as a module with its own optimizer would."""

    def __init__(self, curve: list[float], extra: int = 0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.curve = curve
        self.extra = extra
        self.monitor = "auc"

    def training_step(self, batch, ctx):
        if self.extra:
            ctx.count_optimizer_steps(self.extra)
        return ((self.w - batch.x) ** 2).mean()

    def validation_metrics(self, data, ctx):
        return {"loss": self.curve[ctx.epoch], "auc": 1.0 - self.curve[ctx.epoch]}


def _trainer(tmp_path: Path, **selection) -> Trainer:
    cfg = TrainingConfig(epochs=len(CURVE), device="cpu", selection=SelectionConfig(**selection))
    return Trainer(cfg, tmp_path / "ckpt", seed=0, progress=False)


#: the validation loss is lowest at epoch 0 (a noisy small validation split), then at epoch 4
CURVE = [0.10, 0.50, 0.40, 0.35, 0.30, 0.31, 0.32, 0.33, 0.34, 0.36]


def test_min_epochs_keeps_epochs_0_and_1_from_being_restored(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, min_epochs=3, patience=3)
    result = trainer.fit(_Module(CURVE), _Data(2), stage="m")
    # epoch 0 has the lowest loss, but only epochs >= 2 are eligible: best eligible is epoch 4,
    # then 3 eligible epochs without improvement (5, 6, 7) stop training after epoch 7
    assert result.best_epoch == 4 and result.epochs_run == 8
    sel = trainer.selections[0]
    assert sel["restored_epoch"] == 4 and sel["first_eligible_epoch"] == 2 and sel["stopped"] == "early"
    assert sel["monitor"] == "loss" and sel["mode"] == "min" and sel["optimizer_steps"] == 16
    assert "lowest validation loss (0.3000)" in sel["reason"] and "patience" in sel["reason"]
    assert result.selection == sel


def test_old_behaviour_with_min_epochs_1_restores_epoch_0(tmp_path: Path) -> None:
    result = _trainer(tmp_path, min_epochs=1, patience=3).fit(_Module(CURVE), _Data(2), stage="m")
    assert result.best_epoch == 0 and result.epochs_run == 4


def test_a_stage_with_its_own_patience_runs_its_whole_schedule_and_restores_the_best(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, min_epochs=3, patience=3)
    result = trainer.fit(_Module(CURVE), _Data(2), stage="m", patience=len(CURVE))
    # the study's patience 3 would stop after epoch 7 (test above); the stage's own runs all 10
    assert result.epochs_run == len(CURVE) and result.best_epoch == 4
    assert trainer.selections[0]["stopped"] == "epochs"


def test_a_stage_may_keep_a_constant_learning_rate_where_the_study_decays_it(tmp_path: Path, monkeypatch) -> None:
    seen: list[float] = []
    step = torch.optim.AdamW.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording)
    rates = {}
    for schedule in (None, "none"):
        cfg = TrainingConfig(epochs=len(CURVE), device="cpu", lr=0.01, warmup_epochs=0, scheduler="cosine",
                             selection=SelectionConfig(min_epochs=1, patience=100))
        trainer = Trainer(cfg, tmp_path / f"ckpt_{schedule}", seed=0, progress=False)
        seen.clear()
        trainer.fit(_Module(CURVE), _Data(1), stage="m", lr_schedule=schedule)
        rates[schedule] = list(seen)
    assert rates["none"] == pytest.approx([0.01] * len(CURVE))
    assert rates[None][0] == pytest.approx(0.01) and rates[None][-1] < 0.001  # the study's cosine decay


def test_primary_monitor_uses_the_module_metric(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, monitor="primary", min_epochs=3, patience=20)
    trainer.fit(_Module(CURVE), _Data(1), stage="m")
    assert trainer.selections[0]["monitor"] == "auc" and trainer.selections[0]["mode"] == "max"
    assert trainer.selections[0]["restored_epoch"] == 4  # highest auc = lowest loss among eligible epochs


def test_a_stage_shorter_than_min_epochs_keeps_its_last_epoch(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, min_epochs=5)
    result = trainer.fit(_Module(CURVE), _Data(1), stage="m", epochs=3)
    assert result.best_epoch == 2 and trainer.selections[0]["stopped"] == "epochs"


def test_step_budget_is_the_same_for_every_method_and_counts_reported_steps(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, steps=12, min_epochs=2, patience=1)
    few = trainer.fit(_Module(CURVE), _Data(2), stage="two_batches")   # 6 epochs of 2 steps
    many = trainer.fit(_Module(CURVE), _Data(5), stage="five_batches")  # 2 epochs of 5, then 2 steps
    twice = trainer.fit(_Module(CURVE, extra=1), _Data(3), stage="two_updates_per_batch")  # 2 per batch
    steps = [s["optimizer_steps"] for s in trainer.selections]
    assert steps == [12, 12, 12]
    assert [r.epochs_run for r in (few, many, twice)] == [6, 3, 2]
    assert all(s["stopped"] == "steps" for s in trainer.selections)  # patience 1 did not stop them
    assert few.best_epoch == 4  # lowest eligible loss


def test_resume_of_a_finished_stage_reports_the_same_selection(tmp_path: Path) -> None:
    first = _trainer(tmp_path, min_epochs=3, patience=3)
    first.fit(_Module(CURVE), _Data(2), stage="m")
    again = _trainer(tmp_path, min_epochs=3, patience=3)
    again.fit(_Module(CURVE), _Data(2), stage="m")
    assert again.selections == first.selections


def test_a_budget_stage_killed_after_its_last_epoch_resumes_with_the_same_selection(tmp_path: Path) -> None:
    """The kill falls between the last epoch's checkpoint and the final one; batches without a loss left the
    budget unspent, which the uninterrupted run still reports as stopped by the step budget."""
    class SkipsFirstBatch(_Module):
        def training_step(self, batch, ctx):
            return None if float(batch.x[0, 0]) == 1.0 else super().training_step(batch, ctx)

    class CopyLastEpochCheckpoint:
        def on_validation_end(self, stage: str, epoch: int, metrics: dict) -> None:
            if epoch == 1:  # called after the epoch's checkpoint is written
                shutil.copytree(tmp_path / "ckpt", tmp_path / "killed" / "ckpt")

    first = _trainer(tmp_path, steps=6, min_epochs=1, patience=5)  # 3 batches an epoch: 2 epochs, 4 steps taken
    first.callbacks.append(CopyLastEpochCheckpoint())
    first.fit(SkipsFirstBatch(CURVE), _Data(3), stage="m")
    resumed = _trainer(tmp_path / "killed", steps=6, min_epochs=1, patience=5)
    resumed.fit(SkipsFirstBatch(CURVE), _Data(3), stage="m")
    assert first.selections[0]["stopped"] == "steps"
    assert resumed.selections == first.selections


def test_old_early_stopping_key_is_read_as_selection() -> None:
    old = TrainingConfig(early_stopping=EarlyStoppingConfig(patience=100, min_epochs=0))
    assert old.selection == SelectionConfig(monitor="primary", patience=100, min_epochs=1)
    assert TrainingConfig.model_validate({"early_stopping": {"monitor": "loss"}}).selection.monitor == "loss"
    assert TrainingConfig().selection == SelectionConfig(monitor="loss", min_epochs=5, patience=8, steps=None)
    assert TrainingConfig().early_stopping.monitor == "loss"


def test_selection_typo_names_the_key(tmp_path: Path, tiny_study: Path) -> None:
    with pytest.raises(ConfigError, match="training.selection.patiance"):
        load_study(tiny_study, ["training.selection.patiance=3"])


SHIPPED = sorted((REPO / "studies").glob("*.yaml"))


@pytest.mark.parametrize("study", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_studies_never_select_epoch_0_or_1(study: Path) -> None:
    """Every shipped study and profile: the policy makes epochs 0-1 ineligible for any stage
    of 3 or more epochs (the tiny runs in test_seeds.py check the restored epochs themselves)."""
    import yaml

    profiles = [None, *(yaml.safe_load(study.read_text()).get("profiles") or {})]
    for profile in profiles:
        cfg = load_study(study, profile=profile)
        sel = cfg.training.selection
        assert sel.min_epochs >= 3, (study.name, profile, sel)


@pytest.mark.parametrize("study, monitor, meant", [("adni_mci.yaml", "acuracy", "accuracy"),
                                                   ("tcga_blca_survival.yaml", "auc", "td_auc"),
                                                   ("mosi_rmfm.yaml", "non0_acc_2", "Non0_acc_2")])
def test_a_misspelt_monitor_stops_the_run_before_its_folder(study: str, monitor: str, meant: str, tmp_path: Path,
                                                             capsys) -> None:
    # it was found by the first validation round, after the data were read and the run folder made
    from robustmm.cli import main

    out = tmp_path / "run"
    assert main(["run", str(REPO / "studies" / study), "--set", f"training.selection.monitor={monitor}",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (f"studies/{study}: training.selection.monitor (from the command line: training.selection.monitor="
            f"{monitor}): '{monitor}' is not a validation metric of this study") in err
    assert f"did you mean '{meant}'?" in err and not out.exists()


def test_every_monitor_the_shipped_studies_use_passes_the_check() -> None:
    from robustmm.runguard import check_monitor

    for study in sorted((REPO / "studies").glob("*.yaml")):
        for monitor in ("loss", "primary", load_study(study).training.selection.monitor):
            check_monitor(load_study(study, [f"training.selection.monitor={monitor}"]))


def test_a_selection_override_wins_over_the_files_old_early_stopping_key(tmp_path: Path) -> None:
    # the old key's values win over selection's, so --set training.selection.patience=3 was silently ignored
    study = tmp_path / "s.yaml"
    study.write_text("name: s\ndata: {kind: adni, root: x}\nmethods: [{name: dropout_baseline}]\n"
                     "training: {early_stopping: {monitor: loss, patience: 10, min_epochs: 2}}\n")
    sel = load_study(study, ["training.selection.patience=3"]).training.selection
    assert (sel.monitor, sel.patience, sel.min_epochs) == ("loss", 3, 2)
    sel = load_study(study, ["training.selection={patience: 4}"]).training.selection  # the whole section replaced
    assert (sel.monitor, sel.patience, sel.min_epochs) == ("loss", 4, SelectionConfig().min_epochs)
    sel = load_study(study, ["training.early_stopping.patience=5"]).training.selection  # the old name still reads
    assert (sel.patience, sel.min_epochs) == (5, 2)
    sel = load_study(REPO / "studies" / "adni_mci.yaml", ["training.early_stopping.min_epochs=1"]).training.selection
    assert (sel.monitor, sel.patience, sel.min_epochs) == ("loss", 10, 1)  # over the preset's selection


def test_the_selection_reason_counts_in_the_singular_when_there_is_one() -> None:
    from robustmm.engine.selection import Policy, describe

    # it said "trained all 1 epochs" and "after 1 eligible epochs"
    one = Policy(monitor="loss", mode="min", first_eligible=0, patience=1, epochs=1, steps=1, scenarios=("natural",))
    state = {"best_epoch": 0, "best_score": 0.5, "epoch": 0}
    assert describe("s", one, state, "done").reason.endswith("over 1 scenario (0.5000) among epoch 0; trained its one "
                                                            "epoch")
    assert describe("s", one, state, "early").reason.endswith("; stopped after 1 eligible epoch without improvement "
                                                             "(patience)")
    assert describe("s", one, state, "steps").reason.endswith("; trained for the step budget of 1 optimizer step")
    three = Policy(monitor="loss", mode="min", first_eligible=0, patience=3, epochs=3, steps=None)
    assert describe("s", three, state, "done").reason.endswith("; trained all 3 epochs")

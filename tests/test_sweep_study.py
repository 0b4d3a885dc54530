"""``robustmm sweep`` end to end on a tiny synthetic ADNI cohort: real trials on the validation
split, pruning of a deliberately bad learning rate, the test evaluation of the best trial from
its own checkpoints, the sweep report; Pareto fronts; local worker processes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from robustmm.cli import main
from robustmm.errors import DataError
from robustmm.tune.final import evaluate_trial
from robustmm.tune.plan import plan_from_folder

STUDY = """
name: tiny_sweep
seed: 0
data:
  kind: adni
  root: {root}
  synthetic: {{subjects: 40, seed: 0, native_shape: [16, 16, 16]}}
  volume_shape: [16, 16, 16]
model:
  embed_dim: 8
  trunk_hidden: 8
  volume: {{channels: [4, 8], strides: [2, 2], num_res_units: 0}}
  table: {{hidden: [8]}}
training:
  epochs: 4
  batch_size: 16
  device: cpu
  threads: 1
  early_stopping: {{patience: 5, min_epochs: 1}}
methods:
  - name: dropout_baseline
evaluation:
  bootstrap: 20
  scenarios:
    - {{kind: natural}}
    - {{kind: modality_rate, modality: pet, rates: [0.0, 1.0]}}
report: {{plots: false, html: true}}
sweep:
  n_trials: 3
  params:
    training.lr: {{kind: float, low: 1.0e-8, high: 1.0e-2, log: true}}
  objectives:
    - {{metric: auc, scenario: natural}}
  # two learning rates that learn, then one from the bad region (the network barely moves)
  initial_trials: [{{training.lr: 0.01}}, {{training.lr: 0.003}}, {{training.lr: 1.0e-7}}]
  pruner: {{kind: median, metric: loss, options: {{n_startup_trials: 2, n_warmup_steps: 1}}}}
"""


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_sweep")
    path = folder / "study.yaml"
    path.write_text(STUDY.format(root=folder / "adni"))
    return path


def record(records: list[dict], scenario: str, metric: str = "auc") -> dict:
    return next(r for r in records if r["scenario"] == scenario and r["metric"] == metric)


def test_sweep_command_prunes_evaluates_best_on_test_and_reports(tiny_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", str(tiny_study), "--out", str(out), "--quiet"]) == 0
    study = optuna.load_study(study_name="tiny_sweep", storage=f"sqlite:///{out / 'optuna.db'}")
    assert {t.number: t.state for t in study.trials} == {0: TrialState.COMPLETE, 1: TrialState.COMPLETE,
                                                        2: TrialState.PRUNED}

    # the bad learning rate was stopped after its second epoch of four; the good ones ran all four
    bad = study.trials[2]
    assert sorted(bad.intermediate_values) == [0, 1] and bad.user_attrs["pruned_at"]["epoch"] == 1
    assert all(v < 0 for v in bad.intermediate_values.values())  # validation loss, negated for a maximized AUC
    history = torch.load(Path(bad.user_attrs["run_dir"]) / "checkpoints/dropout_baseline/dropout_baseline.pt",
                         weights_only=True)["history"]
    assert len(history) == 2
    assert all(sorted(t.intermediate_values) == [0, 1, 2, 3] for t in study.trials[:2])

    # each trial is an ordinary run folder, scored on the validation split only
    for trial in study.trials[:2]:
        run_dir = Path(trial.user_attrs["run_dir"])
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["training"]["lr"] == trial.params["training.lr"] and config["evaluation"]["bootstrap"] == 0
        metrics = json.loads((run_dir / "metrics.json").read_text())
        natural = record(metrics["records"], "natural")
        assert natural["value"] == trial.values[0]
        assert natural["n"] == metrics["data"]["splits"]["val"] != metrics["data"]["splits"]["test"]

    # the best trial, evaluated once on the test split from its own checkpoints, with the study's CIs
    best = study.best_trial
    final_dir = out / "final" / f"trial-{best.number:04d}"
    config = yaml.safe_load((final_dir / "config.yaml").read_text())
    assert config["evaluation"]["bootstrap"] == 20 and config["training"]["lr"] == best.params["training.lr"]
    assert "already trained" in (final_dir / "log.txt").read_text()
    metrics = json.loads((final_dir / "metrics.json").read_text())
    natural = record(metrics["records"], "natural")
    assert natural["n"] == metrics["data"]["splits"]["test"] and natural["ci_low"] is not None
    stored = study.user_attrs[f"robustmm:test:{best.number}"]
    assert stored["test"] == {"dropout_baseline:natural:auc": natural["value"]}
    assert stored["checkpoints_from"] == best.user_attrs["run_dir"]
    assert not (out / "final" / f"trial-{1 - best.number:04d}").exists()

    page = (out / "report.html").read_text()
    assert "Best trial" in page and f"trial-{best.number:04d}/report.html" in page and "SYNTHETIC DATA" in page
    for figure in ("history_0", "importances_0", "intermediate_values"):
        assert (out / "plots" / f"{figure}.png").is_file() and f"data-file='plots/{figure}.png' src='data:" in page
    # readable on a phone and by a screen reader: a viewport, tables that scroll sideways, scoped
    # header cells and figures described in words, not by their file names
    assert "<meta name='viewport'" in page and "<html lang='en'>" in page
    assert page.count("<table") == page.count("<div class='scroll'><table")
    assert "<th>" not in page and "alt='history_0'" not in page
    assert "alt='optimization history: dropout_baseline:natural:auc of every trial" in page

    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()

    # a best trial whose run folder is on another machine is trained again from its config and seed,
    # and gives the same test result as its own checkpoints
    plan = dataclasses.replace(plan_from_folder(out), sweep_dir=tmp_path / "elsewhere")
    Path(best.user_attrs["run_dir"]).rename(tmp_path / "moved")
    again = evaluate_trial(best, plan, progress=False)
    assert again["checkpoints_from"] is None and again["test"] == stored["test"]
    assert "already trained" not in (Path(again["run_dir"]) / "log.txt").read_text()


def test_bad_objective_scenario_stops_the_sweep_with_the_available_names(tiny_study: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    code = main(["sweep", str(tiny_study), "--out", str(tmp_path / "s"), "--quiet", "--set", "sweep.n_trials=1",
                 "--set", "sweep.objectives.0.scenario=pet@0.5", "--set", "sweep.pruner.kind=none",
                 "--set", "sweep.initial_trials=[]", "--set", "training.epochs=1"])
    assert code == 2
    err = capsys.readouterr().err
    # found before any trial runs (the data section declares its modalities), nothing claimed
    assert "sweep.objectives.0.scenario: 'pet@0.5' is not a scenario the study evaluates" in err
    assert "pet_missing@1" in err and "pet_missing:AUILC" in err and not (tmp_path / "s").exists()


@pytest.mark.parametrize("planted", [KeyboardInterrupt, DataError])
def test_a_failed_trial_advises_the_sweep_not_resume(tiny_study: Path, tmp_path: Path, monkeypatch, capsys,
                                                     planted: type[BaseException]) -> None:
    # the sweep owns its trial folders (an interrupted trial is queued again under a new number), so
    # "--resume trials/trial-N" would be the wrong advice there
    def fail(*args, **kwargs):
        raise planted("planted")

    monkeypatch.setattr("robustmm.study._run_single", fail)
    out = tmp_path / "s"
    main(["sweep", str(tiny_study), "--out", str(out), "--quiet", "--set", "sweep.n_trials=1",
          "--set", "sweep.pruner.kind=none", "--set", "sweep.initial_trials=[]"])
    capsys.readouterr()
    study = optuna.load_study(study_name="tiny_sweep", storage=f"sqlite:///{out / 'optuna.db'}")
    trial = study.trials[0]
    logged = (Path(trial.user_attrs["run_dir"]) / "log.txt").read_text()
    assert "--resume" not in logged and "--resume" not in trial.user_attrs["error"]
    if planted is KeyboardInterrupt:
        assert "continue with the same robustmm sweep command" in logged
    else:
        assert "the sweep records this error with the trial and goes on" in trial.user_attrs["error"]


def _fail_the_test_evaluation(monkeypatch, planted: type[BaseException]):
    """Make the sweep's test evaluation raise ``planted``; returns the real function, to put back."""
    from robustmm import study as study_module

    train_and_evaluate = study_module._run_single

    def fail_on_test(cfg, run_dir, device, progress, callbacks, evaluate_split):
        if evaluate_split == "test":
            raise planted("planted")
        return train_and_evaluate(cfg, run_dir, device, progress, callbacks, evaluate_split)

    monkeypatch.setattr(study_module, "_run_single", fail_on_test)
    return train_and_evaluate


def _one_trial_sweep(study: Path, out: Path) -> list[str]:
    return ["sweep", str(study), "--out", str(out), "--quiet", "--set", "sweep.n_trials=1",
            "--set", "sweep.pruner.kind=none", "--set", "sweep.initial_trials=[{training.lr: 0.01}]",
            "--set", "training.epochs=1"]


@pytest.mark.parametrize("planted", [KeyboardInterrupt, DataError])
def test_a_stopped_test_evaluation_advises_the_same_sweep_command_which_resumes_it(
        tiny_study: Path, tmp_path: Path, monkeypatch, capsys, planted: type[BaseException]) -> None:
    # the final folder's config is the trial's, not the study file's, and the sweep must store the test
    # result: "--resume final/trial-N" was the wrong advice there
    from robustmm import study as study_module

    train_and_evaluate = _fail_the_test_evaluation(monkeypatch, planted)
    out = tmp_path / "s"
    command = _one_trial_sweep(tiny_study, out)
    assert main(command) != 0
    err = capsys.readouterr().err
    final_dir = out / "final" / "trial-0000"
    logged = (final_dir / "log.txt").read_text()
    assert "--resume" not in logged and "--resume" not in err
    if planted is KeyboardInterrupt:
        assert "run the same robustmm sweep command again: it continues this test evaluation" in logged
        assert "continue with the same command" in err
    else:
        assert f"test evaluation folder {final_dir} of the sweep; fix the problem and run the same" in err

    monkeypatch.setattr(study_module, "_run_single", train_and_evaluate)
    assert main(command) == 0  # the advice works: the same command resumes the folder and stores the result
    assert f"run {final_dir} (device cpu) resumed" in (final_dir / "log.txt").read_text()
    study = optuna.load_study(study_name="tiny_sweep", storage=f"sqlite:///{out / 'optuna.db'}")
    assert study.user_attrs["robustmm:test:0"]["run_dir"] == str(final_dir.resolve())


def test_a_trials_config_runs_again_with_robustmm_run(tiny_study: Path, tmp_path: Path) -> None:
    # its config.yaml carries the run: record, which robustmm run refused as an unknown key
    out = tmp_path / "s"
    assert main(["sweep", str(tiny_study), "--out", str(out), "--quiet", "--no-final", "--set", "sweep.n_trials=1",
                 "--set", "sweep.pruner.kind=none", "--set", "sweep.initial_trials=[{training.lr: 0.01}]",
                 "--set", "training.epochs=1"]) == 0
    trial_config = yaml.safe_load((out / "trials" / "trial-0000" / "config.yaml").read_text())
    assert main(["run", str(out / "trials" / "trial-0000" / "config.yaml"), "--out", str(tmp_path / "again"),
                 "--quiet"]) == 0
    again = yaml.safe_load((tmp_path / "again" / "config.yaml").read_text())
    assert {k: v for k, v in again.items() if k != "run"} == {k: v for k, v in trial_config.items() if k != "run"}
    assert again["training"]["lr"] == 0.01 and (tmp_path / "again" / "metrics.json").is_file()


def test_header_shows_the_stored_budget_a_smaller_n_trials_cannot_lower(tiny_study: Path, tmp_path: Path,
                                                                       monkeypatch, capsys) -> None:
    def fail(*args, **kwargs):  # the trials' outcome does not matter here, only the budget
        raise DataError("planted")

    monkeypatch.setattr("robustmm.study._run_single", fail)
    out = tmp_path / "s"
    args = ["sweep", str(tiny_study), "--out", str(out), "--set", "sweep.pruner.kind=none",
            "--set", "sweep.initial_trials=[]"]
    main(args + ["--n-trials", "2"])
    assert f"sweep 'tiny_sweep': 2 trials, folder {out}" in capsys.readouterr().out
    main(args + ["--n-trials", "1"])
    assert ("sweep 'tiny_sweep': 2 trials (the budget stored with the study; 1 asked for here cannot lower it)"
            in capsys.readouterr().out)


@pytest.mark.slow
def test_rerunning_a_finished_sweep_repeats_nothing(tiny_study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "again"
    args = ["sweep", str(tiny_study), "--out", str(out), "--quiet", "--set", "sweep.n_trials=2"]
    assert main(args) == 0
    study = optuna.load_study(study_name="tiny_sweep", storage=f"sqlite:///{out / 'optuna.db'}")
    final_log = out / "final" / f"trial-{study.best_trial.number:04d}" / "log.txt"
    before = final_log.read_text()
    assert main(args) == 0 and main(args + ["--final-only"]) == 0
    assert len(study.get_trials()) == 2 and final_log.read_text() == before
    assert main(args[:-1] + ["sweep.n_trials=3"]) == 0  # a larger budget runs only the difference
    assert [t.number for t in study.get_trials()] == [0, 1, 2]
    # a changed study would rank its trials against the others: refused, naming the key, nothing run
    assert main(args[:-1] + ["sweep.n_trials=4", "--set", "training.epochs=3"]) == 2
    assert "was started with another study (training.epochs: 4 -> 3)" in capsys.readouterr().err
    assert [t.number for t in study.get_trials()] == [0, 1, 2]
    # where and how this worker runs may differ (another machine sharing the sweep)
    assert main(args[:-1] + ["sweep.n_trials=3", "--set", "training.threads=2", "--set",
                             "sweep.heartbeat.interval=10"]) == 0


@pytest.mark.slow
def test_pareto_sweep_evaluates_every_pareto_trial(tiny_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "pareto"
    assert main(["sweep", str(tiny_study), "--out", str(out), "--quiet", "--set", "sweep.n_trials=4",
                 "--set", "sweep.objectives=[{metric: auc, scenario: natural}, "
                          "{metric: auc, scenario: 'pet_missing:AUILC'}]",
                 "--set", "sweep.pruner.kind=none", "--set", "sweep.sampler.kind=nsga2"]) == 0
    study = optuna.load_study(study_name="tiny_sweep", storage=f"sqlite:///{out / 'optuna.db'}")
    front = {t.number for t in study.best_trials}
    assert front and {int(p.name[6:]) for p in (out / "final").iterdir()} == front
    assert all(set(study.user_attrs[f"robustmm:test:{n}"]["test"]) == {"dropout_baseline:natural:auc",
                                                                       "dropout_baseline:pet_missing:AUILC:auc"}
               for n in front)
    assert (out / "plots" / "pareto_front.png").is_file()


@pytest.mark.slow
def test_local_worker_processes_share_the_sweep(tiny_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "workers"
    assert main(["sweep", str(tiny_study), "--out", str(out), "--quiet", "--workers", "2",
                 "--set", "sweep.n_trials=4", "--set", "sweep.pruner.kind=none"]) == 0
    study = optuna.load_study(study_name="tiny_sweep", storage=f"sqlite:///{out / 'optuna.db'}")
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len({t.user_attrs["run_dir"] for t in study.trials}) == 4
    assert len(list((out / "logs").glob("worker-*.log"))) == 3  # the launcher and its two workers
    assert (out / "final" / f"trial-{study.best_trial.number:04d}" / "metrics.json").is_file()


def test_figure_alt_text_describes_what_optuna_draws() -> None:
    from robustmm.tune.report import _figure_alt

    assert _figure_alt("history_0", ["auc"], "x").endswith("in the order they ran, and the best so far")
    # with several objectives Optuna draws no best-so-far line
    assert _figure_alt("history_1", ["auc", "auilc"], "x") == \
        "optimization history: auilc of every trial in the order they ran"
    assert _figure_alt("pareto_front", ["auc", "auilc"], "x") == \
        "Pareto front of the completed trials: auc against auilc"


def test_a_test_evaluation_keeps_its_trials_data_record_and_refuses_changed_data_with_the_sweeps_advice(
        tiny_adni_root: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    # the final folder resumes from the trial's checkpoints, so it compares the data with those the trial
    # was trained on; the advice is the sweep's, which has neither --resume nor --accept-data-change
    import shutil

    from robustmm import study as study_module
    from robustmm.report.datafingerprint import FINGERPRINT_FILE

    root = tmp_path / "cohort"  # a copy of a cohort on disk (not generated by the study), which this test edits
    shutil.copytree(tiny_adni_root, root, symlinks=True)
    shutil.rmtree(root / ".robustmm_cache", ignore_errors=True)
    path = tmp_path / "study.yaml"
    path.write_text("\n".join(line for line in STUDY.format(root=root).splitlines() if "synthetic:" not in line))
    train_and_evaluate = _fail_the_test_evaluation(monkeypatch, DataError)
    out = tmp_path / "s"
    command = _one_trial_sweep(path, out)
    assert main(command) != 0
    study = optuna.load_study(study_name="tiny_sweep", storage=f"sqlite:///{out / 'optuna.db'}")
    trial_dir = Path(study.trials[0].user_attrs["run_dir"])
    final_dir = out / "final" / "trial-0000"
    recorded = json.loads((trial_dir / FINGERPRINT_FILE).read_text())
    assert "ADNIMERGE.csv" in recorded["files"]
    assert (final_dir / FINGERPRINT_FILE).read_bytes() == (trial_dir / FINGERPRINT_FILE).read_bytes()
    assert "older robustmm" not in (final_dir / "log.txt").read_text()

    table = root / "ADNIMERGE.csv"
    table.write_text(table.read_text().replace("Dementia", "dementia", 1))
    monkeypatch.setattr(study_module, "_run_single", train_and_evaluate)
    capsys.readouterr()
    assert main(command) != 0
    err = capsys.readouterr().err
    assert f"sweep test evaluation {final_dir}" in err and "ADNIMERGE.csv (content)" in err
    assert "run the same robustmm sweep command again, or start a new sweep" in err
    assert "--resume" not in err and "--accept-data-change" not in err
    assert not (final_dir / "metrics.json").exists()

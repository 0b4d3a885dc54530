"""Security and data integrity (issue 16): every defect reproduced, and shown fixed.

Each test would fail on the code before the fix: a pickle or .pt payload ran, '../' names wrote
outside the run folder, duplicate ids and repeated baseline rows were silently resolved,
another method's checkpoint was resumed, rates outside [0, 1] ran, and several user errors
ended in tracebacks.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from robustmm.cli import main
from robustmm.config import load_study
from robustmm.config.schema import AdniDataConfig, EarlyStoppingConfig, StudyConfig, TrainingConfig
from robustmm.data.adni import AdniDataset
from robustmm.data.mmsa import MMSADataset, converted_path, load_mmsa_npz
from robustmm.data.synth.mmsa import write_synthetic_mmsa
from robustmm.engine.trainer import Trainer
from robustmm.errors import CheckpointError, ConfigError, DataError, RobustMMError, TrainingError
from robustmm.io import load_torch, remove_stale_tmp, write_json_atomic
from robustmm.names import inside

from test_adni_loader import trajectories, visit, write_cohort

SMALL_MMSA = dict(n_train=12, n_valid=6, n_test=6, seq_len=8, dims=(6, 4, 5))


class SideEffect:
    """Unpickling this creates ``path`` (stands for any command an attacker could run)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def one_error_line(capsys, argv: list[str]) -> str:
    """Run the CLI; assert exit 2 and one 'robustmm: error:' message, no traceback. (A config
    validation error lists its problems on indented lines below that line.)"""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("robustmm: error: ") and err.count("robustmm: error:") == 1, err
    assert all(ln.startswith("  - ") for ln in lines[1:]), err
    assert "Traceback" not in err
    return err.strip()


# ------------------------------------------------------------------ no code runs from data files
def test_mmsa_pickle_with_a_side_effect_is_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "owned"
    for suffix in (".pkl", ".joblib"):
        evil = tmp_path / f"aligned_50{suffix}"
        evil.write_bytes(pickle.dumps({"train": SideEffect(marker)}))
        with pytest.raises(DataError, match=r"pickle.*run any code.*robustmm data convert mmsa.*trust_pickle"):
            MMSADataset(evil)
        assert not marker.exists()
    # through a study file too
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"name": "m", "data": {"kind": "mmsa", "root": str(tmp_path / "aligned_50.pkl")},
                                     "methods": [{"name": "dropout_baseline"}]}))
    from robustmm.data.registry import build_dataset

    with pytest.raises(DataError, match="trust_pickle"):
        build_dataset(load_study(study).data, progress=False)
    assert not marker.exists()
    # the payload is real: an explicit opt-in opens the pickle (and the user owns the consequence)
    with pytest.raises(DataError):
        MMSADataset(tmp_path / "aligned_50.pkl", trust_pickle=True)
    assert marker.exists()


def test_a_text_encoder_folder_with_its_own_code_is_refused_without_asking(tmp_path: Path, monkeypatch) -> None:
    from robustmm.methods.dispro.text import FrozenTextModel

    marker = tmp_path / "owned"
    folder = tmp_path / "encoder"
    folder.mkdir()
    code = (f"open({str(marker)!r}, 'w').close()\nfrom transformers import PretrainedConfig\n\n\n"
            "class FooConfig(PretrainedConfig):\n    model_type = 'foo'\n")
    for module in ("configuration_foo", "modeling_foo", "tokenization_foo"):
        (folder / f"{module}.py").write_text(code)
    (folder / "config.json").write_text(json.dumps({"model_type": "foo", "auto_map": {
        "AutoConfig": "configuration_foo.FooConfig", "AutoModel": "modeling_foo.FooModel",
        "AutoTokenizer": ["tokenization_foo.FooTokenizer", None]}}))
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or "y")  # a user who types y
    with pytest.raises(ConfigError, match="cannot load the model or tokenizer"):
        FrozenTextModel(folder)
    assert asked == [] and not marker.exists()  # transformers asked, and "y" ran the folder's code


def test_convert_mmsa_writes_a_safe_npz_that_the_loader_prefers(tmp_path: Path, capsys) -> None:
    synth = write_synthetic_mmsa(tmp_path / "s" / "aligned_50.pkl", **SMALL_MMSA)
    assert converted_path(synth).is_file()  # the synthetic writer leaves the safe copy too
    data = pickle.loads(synth.read_bytes())
    user = tmp_path / "user" / "aligned_50.pkl"
    user.parent.mkdir()
    user.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match="convert"):
        MMSADataset(user)
    assert main(["data", "convert", "mmsa", str(user)]) == 0
    assert "wrote" in capsys.readouterr().out
    npz = converted_path(user)
    with np.load(npz, allow_pickle=False) as archive:  # nothing in it needs unpickling
        assert "train/audio" in archive.files
    ds = MMSADataset(user)  # no opt-in needed: the .npz is read
    ref = MMSADataset(synth)
    assert len(ds) == len(ref) == 24 and ds.subject_ids() == ref.subject_ids()
    np.testing.assert_array_equal(ds[3]["inputs"]["audio"].numpy(), ref[3]["inputs"]["audio"].numpy())
    assert MMSADataset(npz).subject_ids() == ds.subject_ids()  # the .npz can be named directly
    # a pickle replaced after conversion is noticed, never silently shadowed by the old .npz
    user.write_bytes(user.read_bytes() + b"\0")
    with pytest.raises(DataError, match="different version"):
        load_mmsa_npz(npz, source=user)
    # converting again needs --force; one error line, no traceback
    assert "exists" in one_error_line(capsys, ["data", "convert", "mmsa", str(user)])



def test_synth_mmsa_never_replaces_the_files_next_to_its_out(tmp_path: Path, capsys) -> None:
    def synth(out: Path) -> list[str]:
        return ["data", "synth", "mmsa", "--out", str(out), "--n-train", "10", "--n-valid", "5", "--n-test", "5",
                "--seq-len", "8", "--dims", "6", "3", "4"]

    folder = tmp_path / "mosi"
    folder.mkdir()
    mine = folder / "aligned_50.npz"  # the user's converted real file, which a study can name directly
    mine.write_bytes(b"the user's data")
    line = one_error_line(capsys, synth(folder / "aligned_50.pkl"))
    assert "already holds aligned_50.npz" in line and "choose a new folder" in line
    assert mine.read_bytes() == b"the user's data" and [p.name for p in folder.iterdir()] == ["aligned_50.npz"]
    # a second synthetic file in one folder replaced the first one's marker (its arguments and ceilings)
    assert main(synth(tmp_path / "s" / "a.pkl")) == 0
    marker = (tmp_path / "s" / "SYNTHETIC_DATA.json").read_text()
    assert "SYNTHETIC_DATA.json" in one_error_line(capsys, synth(tmp_path / "s" / "b.pkl"))
    assert (tmp_path / "s" / "SYNTHETIC_DATA.json").read_text() == marker and not (tmp_path / "s" / "b.pkl").exists()


def test_pickle_edited_to_the_same_size_is_not_read_from_its_stale_npz(tmp_path: Path, capsys) -> None:
    path = write_synthetic_mmsa(tmp_path / "s" / "aligned_50.pkl", **SMALL_MMSA)
    before = path.stat()
    data = pickle.loads(path.read_bytes())
    old_label = float(data["test"]["regression_labels"][0])
    data["test"]["regression_labels"][0] = -old_label if old_label else 1.5  # same dtype and shape
    path.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # an edit that keeps size and time
    assert path.stat().st_size == before.st_size
    with pytest.raises(DataError, match=r"same size, other content.*--force"):
        MMSADataset(path)
    assert main(["data", "convert", "mmsa", str(path), "--force"]) == 0
    assert MMSADataset(path).regression_labels("test")[0] == data["test"]["regression_labels"][0]
    capsys.readouterr()
    # a copy written before the hash was recorded cannot be checked: refused, with the way on
    npz = converted_path(path)
    with np.load(npz, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["__robustmm_mmsa__"]))
    del meta["source_sha256"]
    arrays["__robustmm_mmsa__"] = np.asarray(json.dumps(meta))
    with open(npz, "wb") as fh:
        np.savez(fh, **arrays)
    message = one_error_line(capsys, ["data", "check", "mmsa", str(path), "--quiet"])
    assert "recorded no sha256" in message and f"robustmm data convert mmsa {path} --force" in message
    # robustmm wrote this one (its SYNTHETIC marker names it): regenerating it is the other way on
    assert f"delete the folder {path.parent} and let the study's data.synthetic write it again" in message
    (path.parent / "SYNTHETIC_DATA.json").unlink()
    assert "delete the folder" not in one_error_line(capsys, ["data", "check", "mmsa", str(path), "--quiet"])


def test_pt_with_a_side_effect_is_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "owned"
    evil = tmp_path / "stage.pt"
    torch.save({"module": {}, "payload": SideEffect(marker)}, evil)
    with pytest.raises(DataError, match="refused.*weights_only"):
        load_torch(evil)
    assert not marker.exists()
    # the modulation method's base_checkpoint
    from robustmm.methods.modulation.method import load_base_checkpoint

    context = types.SimpleNamespace(method_id="modulation")
    with pytest.raises(DataError, match="refused"):
        load_base_checkpoint(evil, context, "zero")
    assert not marker.exists()
    # the trainer's resume
    trainer = Trainer(training_cfg(), tmp_path / "ck", seed=0, progress=False)
    trainer.checkpoint_dir.mkdir()
    shutil.copy(evil, trainer.checkpoint_path("s"))
    with pytest.raises(DataError, match="refused"):
        trainer.fit(Tiny(), FakeData(), "s")
    assert not marker.exists()
    # the payload is real
    torch.load(evil, weights_only=False)
    assert marker.exists()


# ------------------------------------------------------------------ names that become paths
BASE = {"name": "ok", "data": {"kind": "table", "root": "t.csv"}, "methods": [{"name": "dropout_baseline"}]}


@pytest.mark.parametrize("override", ["name=../../x", "name=/etc/x", "name=a/b", "name=.hidden", "name=a..b",
                                      "methods.0.id=../../../../x", "methods.0.id=/x", "methods.0.name=../x"])
def test_dot_dot_and_slashes_in_names_are_rejected(tmp_path: Path, override: str) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(BASE))
    with pytest.raises(ConfigError, match="file/folder name"):
        load_study(study, [override])


def test_a_refused_name_comes_with_a_safe_suggestion() -> None:
    from robustmm.names import check_label, check_name

    for check, bad, hint in ((check_name, "ADNI MCI", "ADNI_MCI"), (check_name, "../../etc/x", "etc_x"),
                             (check_name, "-x y", "x_y"), (check_label, "pet/../x", "pet_._x")):
        with pytest.raises(ValueError, match=f"e.g. '{hint}'"):
            check(bad, "name")
        assert check(hint, "name") == hint  # the suggestion itself is accepted
    with pytest.raises(ValueError) as err:
        check_name("..", "study name")
    assert "e.g." not in str(err.value)  # nothing usable is left to suggest


def test_scenario_names_and_paths_stay_inside(tmp_path: Path) -> None:
    raw = {**BASE, "evaluation": {"scenarios": [{"kind": "natural", "name": "../../plots"}]}}
    with pytest.raises(Exception, match="scenario name"):
        StudyConfig.model_validate(raw)
    assert inside(tmp_path, "a", "b.pt") == tmp_path / "a" / "b.pt"
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(RobustMMError, match="outside"):
            inside(tmp_path, bad)


@pytest.mark.parametrize("data, key", [
    ({"kind": "mmsa", "root": "datasets/mosi", "options": {"file": "../../escaped.pkl"},
      "synthetic": {"n_train": 10, "n_valid": 5, "n_test": 5, "seq_len": 8, "dims": [6, 3, 4]}}, "data.options.file"),
    ({"kind": "mmsa", "root": "datasets/mosi", "options": {"file": "{tmp}/escaped.pkl"},
      "synthetic": {"n_train": 10, "n_valid": 5, "n_test": 5, "seq_len": 8, "dims": [6, 3, 4]}}, "data.options.file"),
    ({"kind": "tcga_porpoise", "root": "datasets/blca", "options": {"cohort": "x/../../../escaped"},
      "synthetic": {"patients": 20}}, "data.options.cohort")])
def test_synthetic_file_names_from_the_data_options_stay_inside_data_root(tmp_path: Path, monkeypatch, capsys,
                                                                         data: dict, key: str) -> None:
    # the synthetic writer put its file, .npz, README and SYNTHETIC_DATA.json (marking the folder) there
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    data = json.loads(json.dumps(data).replace("{tmp}", str(tmp_path)))
    (work / "s.yaml").write_text(yaml.safe_dump({"name": "s", "data": data, "training": {"device": "cpu"},
                                                 "methods": [{"name": "dropout_baseline"}]}))
    line = one_error_line(capsys, ["run", "s.yaml", "--out", "run", "--quiet"])
    assert key in line and "escaped" in line
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["a", "a/b", "a/b/s.yaml"]


def test_generate_refuses_subject_ids_that_are_paths() -> None:
    from robustmm.commands.generate import _safe_subject

    assert _safe_subject("002_S_0295")
    assert not _safe_subject("../../etc/x") and not _safe_subject("a/b") and not _safe_subject("..")


def _curve_doc(group: str, sections: list | None = None) -> dict:
    """A metrics.json document with one rate curve of ``group`` (as a run writes it)."""
    records = [{"method": "m", "scenario": f"{group}@{r:g}", "group": group, "rate": r, "metric": "auc",
                "value": 0.8 - r / 4, "ci_low": 0.7 - r / 4, "ci_high": 0.9 - r / 4, "n": 40, "drop": None}
               for r in (0.0, 0.5, 1.0)]
    return {"study": "s", "primary_metric": "auc", "synthetic": True, "records": records, "data": {},
            "sections": sections or []}


def test_report_of_a_metrics_file_from_elsewhere_writes_and_reads_only_inside_its_folder(tmp_path: Path,
                                                                                        capsys) -> None:
    run, outside = tmp_path / "run", tmp_path / "outside"
    run.mkdir()
    outside.mkdir()
    (run / "config.yaml").write_text("name: s\n")
    # plot names come from the records' groups: a crafted group wrote the plot outside the run folder
    write_json_atomic(run / "metrics.json", _curve_doc("../../outside/escaped"))
    line = one_error_line(capsys, ["report", str(run)])
    assert "outside" in line and list(outside.iterdir()) == []
    # an image a section names outside the folder is not copied into the page
    (outside / "private.png").write_bytes(b"\x89PNG private pixels")
    write_json_atomic(run / "metrics.json", _curve_doc("pet_missing", [["Extra", "<img src='../outside/private.png'>"]]))
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "src='../outside/private.png'" in page and "base64,iVBORw0KGgo" in page  # the curve is inlined
    assert base64_of(b"\x89PNG private pixels") not in page


def base64_of(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _run_folder_beside_a_victim(tmp_path: Path, monkeypatch) -> tuple[Path, Path, Path, Path]:
    """A study whose resumed run fails after opening its log, its run folder, and a file outside it."""
    from robustmm.config.loader import to_plain
    from robustmm.report.rundir import write_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("id,x,y\n")  # no rows: the resumed run fails after opening its log
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({**BASE, "data": {**BASE["data"], "options": {
        "id_column": "id", "modalities": {"a": {"columns": ["x"]}}, "target": {"kind": "binary", "column": "y"}}}}))
    run, outside = tmp_path / "run", tmp_path / "outside"
    run.mkdir()
    outside.mkdir()
    write_config(run, to_plain(load_study(study)), {})
    victim = outside / "victim.txt"
    victim.write_text("precious\n")
    return study, run, outside, victim


def test_links_out_of_a_run_folder_are_refused_before_anything_is_written(tmp_path: Path, monkeypatch,
                                                                        capsys) -> None:
    study, run, outside, victim = _run_folder_beside_a_victim(tmp_path, monkeypatch)
    (run / "log.txt").symlink_to(victim)  # the resumed run appended its log (and its error) to the file
    line = one_error_line(capsys, ["run", str(study), "--resume", str(run), "--quiet"])
    assert "--resume" in line and "log.txt is a link to" in line and "outside the folder" in line
    assert victim.read_text() == "precious\n"

    (run / "log.txt").unlink()
    (run / "plots").symlink_to(outside, target_is_directory=True)  # the rebuilt plots went there
    write_json_atomic(run / "metrics.json", _curve_doc("pet_missing"))
    line = one_error_line(capsys, ["report", str(run)])
    assert "plots is a link to" in line
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]

    (run / "plots").unlink()  # links that stay inside the folder are fine
    (run / "figures").mkdir()
    (run / "plots").symlink_to(run / "figures", target_is_directory=True)
    from robustmm.names import check_links_inside

    check_links_inside(run, "--resume")
    assert main(["report", str(run)]) == 0 and list((run / "figures").glob("*.png"))



def test_a_hard_linked_log_is_refused_before_the_run_appends_to_it(tmp_path: Path, monkeypatch, capsys) -> None:
    """log.txt is opened for appending: a hard link to a file outside the run folder (st_nlink 2) passed the
    symlink check, and the resumed run wrote its log into that file."""
    from robustmm.names import check_links_inside
    from robustmm.tune.plan import claim_folder, plan_sweep

    study, run, outside, victim = _run_folder_beside_a_victim(tmp_path, monkeypatch)
    os.link(victim, run / "log.txt")
    line = one_error_line(capsys, ["run", str(study), "--resume", str(run), "--quiet"])
    assert f"--resume {run}: log.txt has 1 other hard link, perhaps outside the folder" in line
    assert f"cp {run / 'log.txt'} {run / 'log.txt'}.copy && mv" in line
    assert victim.read_text() == "precious\n"

    (run / "log.txt").unlink()  # files replaced by a rename may be hard links (the sweep links checkpoints)
    (run / "checkpoints").mkdir()
    os.link(victim, run / "checkpoints" / "m.pt")
    check_links_inside(run, "--resume", in_place=("log.txt",))

    (tmp_path / "sw.yaml").write_text(yaml.safe_dump(SWEEP_STUDY))
    plan = plan_sweep(load_study(tmp_path / "sw.yaml"), "sw.yaml", out=tmp_path / "sweep")
    assert claim_folder(plan) is True
    (plan.sweep_dir / "logs").mkdir()
    os.link(victim, plan.sweep_dir / "logs" / "worker-host-1.log")  # a continued sweep's workers append there
    with pytest.raises(RobustMMError, match=r"sweep folder .*: logs/worker-host-1\.log has 2 other hard link"):
        claim_folder(plan)

def test_an_out_that_cannot_become_a_folder_is_one_error_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("id,x,y\n")
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({**BASE, "data": {**BASE["data"], "options": {
        "id_column": "id", "modalities": {"a": {"columns": ["x"]}}, "target": {"kind": "binary", "column": "y"}}}}))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SWEEP_STUDY))
    broken = tmp_path / "results"
    broken.symlink_to(tmp_path / "unmounted")  # e.g. a link to a disk that is not mounted
    (tmp_path / "a_file").write_text("x")
    for argv, says in ((["run", str(study), "--out", str(broken)], "is a link to"),
                       (["run", str(study), "--out", str(broken / "run")], "File exists"),
                       (["run", str(study), "--out", str(tmp_path / "a_file" / "run")], "Not a directory"),
                       (["data", "synth", "porpoise", "--out", str(broken)], "is a link to"),
                       (["data", "synth", "mmsa", "--out", str(broken / "a.pkl"), "--n-train", "10"], "is a link to"),
                       (["sweep", "sweep.yaml", "--out", str(broken), "--quiet"], "is a link to")):
        line = one_error_line(capsys, argv)
        assert says in line and "choose another folder" in line, line
    assert not (tmp_path / "unmounted").exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "a_file", "results", "s.yaml", "sweep.yaml", "t.csv"]


# ------------------------------------------------------------------ duplicates
def test_duplicate_ptid_in_the_manifest_is_refused(tmp_path: Path) -> None:
    rows, pet = trajectories()
    root = write_cohort(tmp_path / "c", rows, pet)
    manifest = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    # a second row for A pointing at B's images: before, the last row won silently
    extra = manifest[manifest.PTID == "B"].assign(PTID="A")
    pd.concat([manifest, extra]).to_csv(root / "manifest.csv", index=False)
    with pytest.raises(DataError, match=r"manifest.csv: subject A is listed more than once"):
        AdniDataset(AdniDataConfig(root=root, volume_shape=(8, 8, 8), cache=False), progress=False)


def test_repeated_baseline_row_with_dementia_is_refused_identical_repeat_is_counted_once(tmp_path: Path) -> None:
    rows, pet = trajectories()
    cfg = dict(volume_shape=(8, 8, 8), cache=False)
    ok = AdniDataset(AdniDataConfig(root=write_cohort(tmp_path / "a", rows, pet), **cfg), progress=False)
    b = ok.subjects.index("B")
    assert ok.labels[b] == 0  # B is sMCI
    # a second baseline row of B with a dementia diagnosis flipped B to pMCI before
    flipped = rows + [visit("B", 0, "Dementia")]
    with pytest.raises(DataError, match=r"B \(month 0\).*same visit.*DX"):
        AdniDataset(AdniDataConfig(root=write_cohort(tmp_path / "b", flipped, pet), **cfg), progress=False)
    # an exact repeat is harmless: counted once, noted in the data report, labels unchanged
    repeated = rows + [visit("B", 0, "MCI")]
    ds = AdniDataset(AdniDataConfig(root=write_cohort(tmp_path / "c", repeated, pet), **cfg), progress=False)
    assert ds.labels.tolist() == ok.labels.tolist() and any("counted once" in n for n in ds.report.notes)


def test_duplicate_ids_in_tables_and_mmsa(tmp_path: Path) -> None:
    from robustmm.data.tables import TableDataset

    df = pd.DataFrame({"pid": ["a", "b", "c", "a"], "x": [1.0, 2.0, 3.0, 9.0], "y": [0, 1, 0, 1]})
    with pytest.raises(DataError, match=r"subject id a .*different values"):
        TableDataset(df, "pid", {"m": ["x"]}, {"kind": "binary", "column": "y"})
    path = write_synthetic_mmsa(tmp_path / "m" / "aligned_50.pkl", **SMALL_MMSA)
    data = pickle.loads(path.read_bytes())
    data["test"]["id"][1] = data["train"]["id"][0]
    twin = tmp_path / "twin.pkl"
    twin.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match=r"utterance id \[.syntr0000\$_\$0.\] appears more than once"):
        MMSADataset(twin, trust_pickle=True)


# ------------------------------------------------------------------ checkpoints
def training_cfg(epochs: int = 2) -> TrainingConfig:
    return TrainingConfig(epochs=epochs, device="cpu", warmup_epochs=0, scheduler="none",
                          early_stopping=EarlyStoppingConfig(monitor="loss", patience=10, min_epochs=0))


class Tiny(nn.Module):
    monitor = "loss"

    def __init__(self, nan: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.nan = nan

    def training_step(self, batch, ctx):
        loss = self.lin(batch).pow(2).mean()
        return loss * float("nan") if self.nan else loss

    def validation_metrics(self, data, ctx):
        return {"loss": float(self.lin.weight.abs().sum())}


class FakeData:
    def loader(self, split, shuffle=False, epoch=0):
        return [types.SimpleNamespace(to=lambda device: torch.ones(4, 2))]


def test_swapped_edited_or_foreign_checkpoints_are_refused_on_resume(tmp_path: Path) -> None:
    def trainer(method: str, study: str = "h1", epochs: int = 2) -> Trainer:
        return Trainer(training_cfg(epochs), tmp_path / method, 0, progress=False,
                       fingerprint={"method": method, "study": study})

    trainer("a").fit(Tiny(), FakeData(), "s")
    trainer("b").fit(Tiny(), FakeData(), "s")
    assert trainer("b", epochs=3).fit(Tiny(), FakeData(), "s").epochs_run == 2  # own checkpoint: reused
    good = (tmp_path / "b" / "s.pt").read_bytes()
    shutil.copy(tmp_path / "a" / "s.pt", tmp_path / "b" / "s.pt")  # copied over another method's
    with pytest.raises(CheckpointError, match="belongs to method 'a'"):
        trainer("b").fit(Tiny(), FakeData(), "s")
    (tmp_path / "b" / "s.pt").write_bytes(good)
    with pytest.raises(CheckpointError, match="study"):
        trainer("b", study="h2").fit(Tiny(), FakeData(), "s")
    ckpt = torch.load(tmp_path / "b" / "s.pt", weights_only=True)
    ckpt["module"]["lin.weight"] = -ckpt["module"]["lin.weight"]  # flipped weights
    torch.save(ckpt, tmp_path / "b" / "s.pt")
    with pytest.raises(CheckpointError, match="do not match the sha256"):
        trainer("b").fit(Tiny(), FakeData(), "s")
    (tmp_path / "b" / "s.pt").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(DataError, match="truncated or corrupt"):
        trainer("b").fit(Tiny(), FakeData(), "s")


def test_nan_loss_is_a_training_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="loss became nan"):
        Trainer(training_cfg(), tmp_path, 0, progress=False).fit(Tiny(nan=True), FakeData(), "s")


# ------------------------------------------------------------------ impossible settings, one-line errors
@pytest.mark.parametrize("scenario, message", [
    ({"kind": "modality_rate", "modality": "pet", "rates": [0.0, 1.35]}, "less than or equal to 1"),
    ({"kind": "random_modality", "rates": [0.5, 2.05]}, "less than or equal to 1"),
    ({"kind": "random_modality", "rates": [-0.1]}, "greater than or equal to 0"),
    ({"kind": "rmfm", "rate": 0.1, "modality_rates": {"text": 1.5}}, "less than or equal to 1"),
    ({"kind": "temporal_block", "rates": [0.2, 7]}, "less than or equal to 1"),
    ({"kind": "random_modality"}, "needs 'rate'"),
    ({"kind": "temporal_block"}, "needs 'rate'"),
])
def test_rates_outside_0_1_and_missing_rates_are_refused(tmp_path: Path, scenario: dict, message: str) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({**BASE, "evaluation": {"scenarios": [scenario]}}))
    with pytest.raises(ConfigError, match=message):
        load_study(study)


def test_listed_tracebacks_are_one_error_line(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.yaml"
    raw = {"name": "t", "data": {"kind": "adni", "root": str(tmp_path / "nowhere")},
           "methods": [{"name": "dropout_baseline"}], "training": {"device": "cpu"}}
    good.write_text(yaml.safe_dump(raw))
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in one_error_line(capsys, ["run", str(latin1)])
    dup = tmp_path / "dup.yaml"
    dup.write_text(good.read_text() + "name: other\n")
    assert "given twice" in one_error_line(capsys, ["run", str(dup)])
    assert "volume_shape" in one_error_line(capsys, ["run", str(good), "--set", "data.volume_shape=[0,8,8]"])
    assert "no training subjects" in one_error_line(
        capsys, ["run", str(good), "--set", "split.val_fraction=0.45", "--set", "split.test_fraction=0.55"])
    assert "exclude each other" in one_error_line(
        capsys, ["run", str(good), "--out", str(tmp_path / "o"), "--resume", str(tmp_path / "r")])
    assert "needs 'rate'" in one_error_line(
        capsys, ["run", str(good), "--set", "evaluation.scenarios=[{kind: random_modality}]"])
    assert "not have" in one_error_line(  # modality typo found before any data are read
        capsys, ["run", str(good), "--set", "evaluation.scenarios=[{kind: modality_rate, modality: pett, rate: 0.5}]"])
    assert not (tmp_path / "runs").exists() and not Path("runs/t").exists()
    if not torch.cuda.is_available():
        from robustmm.engine.trainer import resolve_device

        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.parametrize("config, message", [  # damaged ones: test_resume_of_a_folder_whose_config_is_damaged...
    (b"name: other\nseed: 0\n", "is a run of study 'other', not of 't'; resume it with the study file it started "
                                 "with, or start a new run (without --resume)")])
def test_resuming_a_damaged_or_another_studys_run_folder_is_one_error_line(config: bytes, message: str,
                                                                           tmp_path: Path, capsys) -> None:
    # an empty or damaged config.yaml was a TypeError / AttributeError / YAMLError traceback; another study's
    # run was told apart by its 30-odd key differences, sorted so that 'name' was not among those shown
    study = tmp_path / "good.yaml"
    study.write_text(yaml.safe_dump({"name": "t", "data": {"kind": "adni", "root": str(tmp_path / "nowhere")},
                                     "methods": [{"name": "dropout_baseline"}], "training": {"device": "cpu"}}))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_bytes(config)
    assert message in one_error_line(capsys, ["run", str(study), "--resume", str(run)])
    assert [p.name for p in run.iterdir()] == ["config.yaml"] and (run / "config.yaml").read_bytes() == config
    assert "is a file, not a run folder" in one_error_line(capsys, ["run", str(study), "--resume", str(study)])


def test_empty_manifest_and_header_only_table(tmp_path: Path) -> None:
    rows, pet = trajectories()
    root = write_cohort(tmp_path / "c", rows, pet)
    (root / "manifest.csv").write_text("")
    cfg = AdniDataConfig(root=root, volume_shape=(8, 8, 8), cache=False)
    with pytest.raises(DataError, match="manifest .* cannot be read"):
        AdniDataset(cfg, progress=False)
    root2 = write_cohort(tmp_path / "d", rows, pet)
    header = pd.read_csv(root2 / "ADNIMERGE.csv").iloc[:0]
    header.to_csv(root2 / "ADNIMERGE.csv", index=False)
    with pytest.raises(DataError, match="no usable subject") as err:
        AdniDataset(AdniDataConfig(root=root2, volume_shape=(8, 8, 8), cache=False), progress=False)
    assert "sMCI" not in str(err.value)
    from robustmm.data.tables import validate_survival

    with pytest.raises(DataError, match="no rows"):
        validate_survival([], [], [], "t.csv")
    with pytest.raises(DataError, match="infinite"):
        validate_survival([1.0, float("inf")], [1, 0], ["a", "b"], "t.csv")
    with pytest.raises(DataError, match=r"got 2 for") as err:
        validate_survival([1.0, 2.0], pd.Series([1, 2]).to_numpy(), ["a", "b"], "t.csv")
    assert "np.int64" not in str(err.value)


# ------------------------------------------------------------------ files, failed and finished runs
def test_files_get_the_users_umask_and_stale_tmp_files_are_removed(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
        os.umask(0o007)
        write_json_atomic(tmp_path / "b.json", {"x": 1})
        assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o660
    finally:
        os.umask(old)
    (tmp_path / "ck").mkdir()
    stale = [tmp_path / ".metrics.json.k2j4_a9x.tmp", tmp_path / "ck" / ".s.pt.ab12cd34.tmp"]
    keep = [tmp_path / "notes.tmp", tmp_path / ".gitignore", tmp_path / "metrics.json"]
    for p in stale + keep:
        p.write_text("x")
    assert sorted(remove_stale_tmp(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)



@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names an open file through /proc (Linux)")
@pytest.mark.parametrize("writer", ["results", "tcga_prepare", "mmsa_synth"])
def test_atomic_writes_reach_the_disk_before_the_rename(tmp_path: Path, monkeypatch, writer: str) -> None:
    """A temporary file was renamed over its target without an fsync: after a power loss soon after,
    the target could be an empty file (the rename reached the disk before the data)."""
    from robustmm.data.synth.tcga import write_synthetic_porpoise
    from robustmm.data.tcga import prepare_tcga

    table = tmp_path / "src" / "tcga_syn_all_clean.csv.zip"
    if writer == "tcga_prepare":
        write_synthetic_porpoise(table, n_patients=30, seed=1)
    events: list[tuple[str, ...]] = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd: int) -> None:
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def recording_replace(src, dst) -> None:
        events.append(("replace", os.path.realpath(src), os.path.realpath(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    out = tmp_path / "out"
    if writer == "results":
        write_json_atomic(out / "metrics.json", {"x": 1})
    elif writer == "tcga_prepare":
        prepare_tcga("syn", table, out)
    else:
        write_synthetic_mmsa(out / "aligned_50.pkl", n_train=24, n_valid=8, n_test=10, seq_len=12, dims=(8, 5, 6))
    renames = [i for i, event in enumerate(events) if event[0] == "replace"]
    assert renames
    for i in renames:
        _, src, dst = events[i]
        assert ("fsync", src) in events[:i]  # the temporary file's data first
        assert events[i + 1] == ("fsync", os.path.dirname(dst))  # then the folder entry the rename made

def test_failed_run_logs_the_error_and_finished_run_is_not_rewritten(tiny_study: Path, tmp_path: Path,
                                                                     capsys) -> None:
    never = tmp_path / "never"  # a data root that does not exist is said before a run folder exists
    line = one_error_line(capsys, ["run", str(tiny_study), "--out", str(never), "--quiet", "--set", "data.synthetic=null",
                                   "--set", f"data.root={tmp_path / 'nowhere'}"])
    assert "nowhere does not exist; set data.root" in line and not never.exists()
    (tmp_path / "empty").mkdir()  # so is a root without the table the loader reads first
    line = one_error_line(capsys, ["run", str(tiny_study), "--out", str(never), "--quiet", "--set", "data.synthetic=null",
                                   "--set", f"data.root={tmp_path / 'empty'}"])
    assert "ADNIMERGE.csv does not exist" in line and not never.exists()

    failed = tmp_path / "failed"  # a table without usable data fails after the folder exists: it is logged there
    for name in ("ADNIMERGE.csv", "manifest.csv"):
        (tmp_path / "empty" / name).write_text("PTID,M,DX\n")
    line = one_error_line(capsys, ["run", str(tiny_study), "--out", str(failed), "--quiet", "--set", "data.synthetic=null",
                                   "--set", f"data.root={tmp_path / 'empty'}"])
    assert "stopped before training anything" in line and "can be removed" in line and str(failed) in line
    assert "--resume" not in line  # fixing data.root changes the study, so it could not be resumed
    assert "run failed" in (failed / "log.txt").read_text()

    from robustmm.errors import DataError
    from robustmm.runguard import failed_run

    folds = tmp_path / "cv"  # a cross-validation run whose first fold trained keeps its checkpoints
    (folds / "fold_0" / "checkpoints" / "dropout_baseline").mkdir(parents=True)
    (folds / "fold_0" / "checkpoints" / "dropout_baseline" / "dropout_baseline.pt").write_bytes(b"x")
    error = DataError("fold 1 failed")
    failed_run(error, folds, resumed=False)
    assert "before training anything" not in str(error) and f"--resume {folds}" in str(error)

    out = tmp_path / "run"
    assert main(["run", str(tiny_study), "--out", str(out), "--quiet", "--set", "training.epochs=2"]) == 0
    capsys.readouterr()
    before = (out / "metrics.json").read_bytes(), (out / "metrics.json").stat().st_mtime_ns
    (out / "checkpoints" / ".dropout_baseline.pt.x1y2z3w4.tmp").write_text("left by a SIGKILL")
    assert main(["run", str(tiny_study), "--resume", str(out), "--quiet", "--set", "training.epochs=2"]) == 0
    printed = capsys.readouterr().out
    assert "already finished" in printed and (out / "summary.txt").read_text().strip() in printed  # its stored table
    assert ((out / "metrics.json").read_bytes(), (out / "metrics.json").stat().st_mtime_ns) == before
    assert not (out / "checkpoints" / ".dropout_baseline.pt.x1y2z3w4.tmp").exists()

    # another method's checkpoint copied over, on an unfinished run: refused, results untouched
    (out / "metrics.json").unlink()
    ck = out / "checkpoints"
    [stage] = [p for p in (ck / "dropout_baseline").glob("*.pt")]
    shutil.copy(next((ck / "complete_only").glob("*.pt")), stage)
    line = one_error_line(capsys, ["run", str(tiny_study), "--resume", str(out), "--quiet",
                                   "--set", "training.epochs=2"])
    assert "belongs to method 'complete_only'" in line
    assert not (out / "metrics.json").exists()


def test_the_recorded_git_commit_is_robustmm_s_own(tmp_path: Path) -> None:
    import subprocess

    from robustmm.report.rundir import PACKAGE_PARENT, git_commit

    project = tmp_path / "project"  # the user's own repository, with robustmm installed in its environment
    site = project / ".venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    git = ["git", "-C", str(project), "-c", "user.name=u", "-c", "user.email=u@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "the user's work"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert git_commit(site) is None  # recorded the project's commit as robustmm's
    assert git_commit(project) == head  # a checkout records its own commit
    assert PACKAGE_PARENT == Path(__file__).resolve().parents[1]  # this checkout


@pytest.mark.parametrize("content, says", [(b"", "is empty"), (b"- 1\n", "holds a list"),
                                           (b"name: [x\n", "cannot be read"), (b"\xff\xfe", "cannot be read")])
def test_resume_of_a_folder_whose_config_is_damaged_is_one_error_line(tmp_path: Path, capsys, content: bytes,
                                                                     says: str) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump(BASE))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_bytes(content)
    line = one_error_line(capsys, ["run", str(study), "--resume", str(run), "--quiet"])
    assert says in line and "config.yaml" in line and str(run) in line


# ------------------------------------------------------------------ sweeps
SWEEP_STUDY = {
    "name": "sw", "data": {"kind": "adni", "root": "nowhere"}, "training": {"device": "cpu"},
    "methods": [{"name": "dropout_baseline"}],
    "evaluation": {"scenarios": [{"kind": "natural"}, {"kind": "modality_rate", "modality": "pet", "rates": [0, 1]}]},
    "sweep": {"n_trials": 1, "params": {"training.lr": {"kind": "float", "low": 1e-4, "high": 1e-2}},
              "objectives": [{"metric": "auc", "scenario": "natural"}]},
}


def test_bad_storage_does_not_claim_the_sweep_folder(tmp_path: Path, capsys) -> None:
    from robustmm.tune.plan import claim_folder, plan_sweep

    study = tmp_path / "sw.yaml"
    study.write_text(yaml.safe_dump(SWEEP_STUDY))
    out = tmp_path / "sweep"
    err = one_error_line(capsys, ["sweep", str(study), "--out", str(out), "--quiet", "--storage", "nosuch://x"])
    assert "not understood" in err
    assert not (out / "sweep.json").exists() and not out.exists()
    # the corrected command finds the folder free
    plan = plan_sweep(load_study(study), str(study), out=out)
    assert claim_folder(plan) is True


def test_a_storage_password_in_the_study_file_is_written_into_no_sweep_file(tmp_path: Path) -> None:
    # sweep.storage was copied as written into config.yaml and into the report's sweep configuration
    import optuna

    from robustmm.tune.plan import claim_folder, plan_sweep
    from robustmm.tune.report import render_report

    raw = copy_with(SWEEP_STUDY, ("sweep", "storage"), "postgresql://robustmm:s3cret@dbhost/sweeps")
    study = tmp_path / "sw.yaml"
    study.write_text(yaml.safe_dump(raw))
    plan = plan_sweep(load_study(study), str(study), out=tmp_path / "sweep")
    assert "s3cret" in plan.storage_url
    claim_folder(plan)
    render_report(plan, optuna.create_study(directions=plan.sweep.directions), "test")
    written = {p.name: p.read_bytes() for p in (tmp_path / "sweep").rglob("*") if p.is_file()}
    assert {"config.yaml", "sweep.json", "report.html"} <= set(written)
    assert [name for name, content in written.items() if b"s3cret" in content] == []
    assert b"robustmm:***@dbhost" in written["config.yaml"] and b"robustmm:***@dbhost" in written["report.html"]


def test_objective_scenario_typo_is_found_before_the_first_trial(tmp_path: Path, capsys) -> None:
    raw = copy_with(SWEEP_STUDY, ("sweep", "objectives"), [{"metric": "auc", "scenario": "pet_missing@0.5"}])
    study = tmp_path / "sw.yaml"
    study.write_text(yaml.safe_dump(raw))
    err = one_error_line(capsys, ["sweep", str(study), "--out", str(tmp_path / "s"), "--quiet"])
    assert "'pet_missing@0.5' is not a scenario the study evaluates" in err and "pet_missing:AUILC" in err
    assert not (tmp_path / "s").exists()  # no trial, no folder: the data root does not even exist


@pytest.mark.parametrize("argv, named", [(["--set", "sweep.study_name=../../../../escaped"], "sweep.study_name"),
                                         (["--study-name", "../../../escaped"], "--study-name"),
                                         (["--study-name", "{tmp}/escaped"], "--study-name")])
def test_sweep_names_that_are_paths_are_refused(tmp_path: Path, monkeypatch, capsys, argv: list[str],
                                                named: str) -> None:
    # the study name becomes the sweep folder runs/<study>/sweeps/<study_name>
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    (work / "sw.yaml").write_text(yaml.safe_dump(SWEEP_STUDY))
    argv = [a.format(tmp=tmp_path) for a in argv]  # the old code wrote there: keep it in tmp_path
    err = one_error_line(capsys, ["sweep", "sw.yaml", "--n-trials", "1", "--quiet", *argv])
    assert named in err and "file/folder name" in err and "escaped'" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "c", "sw.yaml"]  # nothing written


def test_a_sweep_name_that_is_no_folder_name_is_fine_with_an_explicit_folder(tmp_path: Path, monkeypatch) -> None:
    from robustmm.tune.plan import plan_sweep

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump(SWEEP_STUDY))
    plan = plan_sweep(load_study(tmp_path / "sw.yaml"), "sw.yaml", study_name="adni lr/v2", out=tmp_path / "s")
    assert plan.study_name == "adni lr/v2" and plan.sweep_dir == tmp_path / "s"  # only the study's name in Optuna


def test_a_sweep_folder_linked_outside_its_parent_is_refused(tmp_path: Path, monkeypatch) -> None:
    from robustmm.tune.plan import plan_sweep

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump(SWEEP_STUDY))
    (tmp_path / "runs" / "sw" / "sweeps").mkdir(parents=True)
    (tmp_path / "runs" / "sw" / "sweeps" / "linked").symlink_to(tmp_path)
    with pytest.raises(RobustMMError, match="outside"):
        plan_sweep(load_study(tmp_path / "sw.yaml"), "sw.yaml", study_name="linked")


def test_objective_metric_of_another_task_is_found_before_the_first_trial(tmp_path: Path, capsys) -> None:
    # auc is a metric of binary tasks; a survival study reports c_index, td_auc and ibs
    raw = copy_with(SWEEP_STUDY, ("data",), {"kind": "tcga_porpoise", "root": "nowhere", "options": {"cohort": "syn"}})
    raw["evaluation"]["scenarios"] = [{"kind": "natural"}]
    study = tmp_path / "surv.yaml"
    study.write_text(yaml.safe_dump(raw))
    err = one_error_line(capsys, ["sweep", str(study), "--out", str(tmp_path / "s"), "--quiet", "--set",
                                  "sweep.objectives=[{metric: auc, scenario: natural, method: dropout_baseline}]"])
    assert "sweep.objectives.0.metric: 'auc' is not a metric of this study" in err and "'c_index'" in err
    assert not (tmp_path / "s").exists()  # no trial, no folder to block the corrected command


@pytest.mark.parametrize("content, says", [(b"", "holds no study"), (b"name: [x\n", "cannot be read"),
                                           (b"\xff\xfe", "cannot be read")])
def test_report_of_a_sweep_folder_whose_config_is_damaged_is_one_error_line(tmp_path: Path, capsys, content: bytes,
                                                                           says: str) -> None:
    write_json_atomic(tmp_path / "sweep.json", {"kind": "robustmm-sweep", "study_name": "s",
                                                "storage": f"sqlite:///{tmp_path / 'optuna.db'}"})
    (tmp_path / "config.yaml").write_bytes(content)
    line = one_error_line(capsys, ["report", str(tmp_path)])
    assert says in line and str(tmp_path / "config.yaml") in line


def test_report_of_a_sweep_folder_from_elsewhere_writes_into_no_storage(tmp_path: Path, capsys) -> None:
    import sqlite3

    from robustmm.config.loader import to_plain

    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(to_plain(StudyConfig.model_validate(SWEEP_STUDY))))
    mine = tmp_path / "mine.db"  # any SQLite file of the user's: its marker may name it
    with sqlite3.connect(mine) as db:
        db.execute("CREATE TABLE notes (x)")
    journal = tmp_path / "elsewhere" / "sweep.journal"
    for url, says in ((f"sqlite:///{mine}", "is not an Optuna storage"), (f"journal:{journal}", "does not exist")):
        write_json_atomic(folder / "sweep.json", {"kind": "robustmm-sweep", "study_name": "s", "storage": url})
        assert says in one_error_line(capsys, ["report", str(folder)])
    with sqlite3.connect(mine) as db:  # Optuna's tables were created in it
        assert [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["notes"]
    assert not (tmp_path / "elsewhere").exists()


def test_a_trial_failed_by_a_lost_worker_says_why(tmp_path: Path) -> None:
    import optuna
    from optuna.trial import TrialState

    from robustmm.tune.config import HeartbeatConfig
    from robustmm.tune.storage import open_storage

    heartbeat = HeartbeatConfig(interval=1, grace=2, max_retry=1)
    storage = open_storage(f"journal:{tmp_path / 'j.journal'}", heartbeat)
    study = optuna.create_study(study_name="lost", storage=storage.backend)
    trial = study.ask()
    storage.backend.set_trial_system_attr(trial._trial_id, "robustmm:heartbeat", 0.0)  # a worker long gone
    storage.fail_stale(study)
    lost = study.trials[0]
    assert lost.state == TrialState.FAIL and "lost its worker" in lost.user_attrs["error"]
    assert study.trials[1].state == TrialState.WAITING  # queued again


def copy_with(raw: dict, path: tuple, value) -> dict:
    import copy

    out = copy.deepcopy(raw)
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize("plot", ["kaplan_meier", "segmentation_heatmap", "itcfn_slices"])
def test_method_plots_replace_a_hard_linked_png_instead_of_writing_through_it(tmp_path: Path, plot: str) -> None:
    """Method and metric figures were drawn with a plain savefig into plots/: on a resume, a PNG
    hard-linked to a file outside the run folder had that file overwritten (and a crash mid-write
    left half a PNG). They are written to a temporary file and renamed over the old one now."""
    import matplotlib.pyplot as plt
    import torch

    from robustmm.methods.itcfn.generator import mid_slice_figure
    from robustmm.methods.task_segmentation import subset_heatmap
    from robustmm.metrics.survival import km_risk_groups

    outside = tmp_path / "outside.png"
    outside.write_bytes(b"not yours")
    path = tmp_path / "run" / "plots" / "figure.png"
    path.parent.mkdir(parents=True)
    os.link(outside, path)
    open_figures = plt.get_fignums()
    if plot == "kaplan_meier":
        km_risk_groups([1.0, 2.0, 3.0, 4.0], [1, 0, 1, 1], [0.1, 0.2, 0.9, 0.8], out_png=path)
    elif plot == "segmentation_heatmap":
        subset_heatmap({"m": np.full((2, 3), 0.5)}, ["flair", "t1"], ["ET", "TC", "WT"], path)
    else:
        volume = torch.zeros(2, 1, 4, 4, 4)
        mid_slice_figure(volume, volume, volume, ["a", "b"], path, synthetic=True)
    assert outside.read_bytes() == b"not yours"
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_nlink == 1
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left behind
    assert plt.get_fignums() == open_figures  # the figure drawn was closed

"""``--resume`` reaches the uninterrupted run's results wherever the run was stopped."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import robustmm.study
from robustmm.cli import main
from robustmm.config.schema import MethodConfig
from robustmm.engine.trainer import Trainer
from robustmm.methods import create_method
from robustmm.methods.base import collect_predictions

from toy_tables import ToyTables, small_training, toy_context, toy_data


def _pattern_ensemble_scores(data, checkpoints: Path) -> np.ndarray:
    torch.manual_seed(0)  # as the study seeds each method before building it
    method = create_method(MethodConfig(name="pattern_ensemble", base="network", patterns="training", epochs=3),
                           toy_context(data, "pattern_ensemble", epochs=3))
    method.fit(data, Trainer(small_training(3), checkpoints, 0, progress=False))
    return collect_predictions(method.predict, data, "test", torch.device("cpu")).outputs["score"]


def test_a_stage_started_after_a_finished_one_gets_the_uninterrupted_initial_weights(tmp_path: Path) -> None:
    """Killed after the first pattern's model finished and before the second wrote a checkpoint: the resumed
    run skips the first stage's epochs, yet builds the second model from the same random numbers."""
    data = toy_data(ToyTables({"a": 1.5, "b": 0.0}, n=200, missing={"b": 0.5}))
    uninterrupted = _pattern_ensemble_scores(data, tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / "pattern_ensemble.a.pt").unlink()  # the pattern trained second (a+b is the most frequent)
    np.testing.assert_array_equal(_pattern_ensemble_scores(data, tmp_path / "b"), uninterrupted)


def test_a_run_stopped_while_writing_its_report_is_not_taken_for_finished(tiny_study: Path, tmp_path: Path,
                                                                         monkeypatch) -> None:
    """metrics.json marks a finished run, which --resume leaves alone: it must be the last file written, or
    a run killed while drawing its plots would stay without metrics.csv, report.html and summary.txt."""
    out, args = tmp_path / "run", ["--quiet", "--set", "training.epochs=1"]

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt  # as a kill while the plots and report.html are written

    with monkeypatch.context() as patch:
        patch.setattr(robustmm.study, "render", interrupted)
        assert main(["run", str(tiny_study), "--out", str(out), *args]) == 130
    assert not (out / "metrics.json").exists()
    assert main(["run", str(tiny_study), "--resume", str(out), *args]) == 0
    for name in ("metrics.json", "metrics.csv", "report.html", "summary.txt", "timing.json"):
        assert (out / name).is_file(), name


def test_resuming_a_run_stopped_before_its_config_was_written_says_to_start_again(tiny_study: Path, tmp_path: Path,
                                                                                  capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.txt").write_text("")  # what a run killed while writing config.yaml leaves, with a .tmp
    assert main(["run", str(tiny_study), "--resume", str(out), "--quiet"]) == 2
    assert "the run stopped before writing it, so it trained nothing; remove the folder" in capsys.readouterr().err


def test_a_run_folder_in_use_by_another_command_is_refused_and_left_alone(tiny_study: Path, tmp_path: Path,
                                                                          capsys) -> None:
    """Two --resume of one folder would delete each other's temporary files and mix their results: the
    second is refused while the first holds the folder, and nothing of the folder is touched."""
    from robustmm.report.rundir import exclusive_run_folder

    out, args = tmp_path / "run", ["--quiet", "--set", "training.epochs=1"]
    assert main(["run", str(tiny_study), "--out", str(out), *args]) == 0
    snapshot = lambda: {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".robustmm.lock"}  # noqa: E731
    finished = snapshot()
    capsys.readouterr()
    with exclusive_run_folder(out):  # the other command, e.g. a --rewrite-results
        assert main(["report", str(out)]) != 0
    assert snapshot() == finished
    (out / "metrics.json").unlink()  # as a run still at work
    in_progress = out / ".metrics.csv.abc.tmp"  # another process's atomic write, half done
    in_progress.write_text("partial")
    before = snapshot()
    with exclusive_run_folder(out):
        assert main(["run", str(tiny_study), "--resume", str(out), *args]) != 0
    assert capsys.readouterr().err.count("in use by another robustmm command (pid") == 2
    assert snapshot() == before
    in_progress.unlink()
    assert main(["run", str(tiny_study), "--resume", str(out), *args]) == 0  # once the other one has ended


def test_a_lock_file_that_is_a_link_is_refused_not_followed(tmp_path: Path) -> None:
    from robustmm.errors import RunDirectoryError
    from robustmm.report.rundir import LOCK_FILE, exclusive_run_folder

    target = tmp_path / "elsewhere.txt"
    target.write_text("not robustmm's")
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).symlink_to(target)
    with pytest.raises(RunDirectoryError, match="lock file cannot be opened"):
        with exclusive_run_folder(run):
            pass
    assert target.read_text() == "not robustmm's"

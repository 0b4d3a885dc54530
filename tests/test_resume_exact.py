"""``--resume`` reaches the uninterrupted run's results wherever the run was stopped."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
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

"""timing.json accounts for every process of a run, resumed ones included (robustmm.report.timing)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import robustmm.study
from robustmm.cli import main
import robustmm.report.timing as timing_module
from robustmm.report.timing import RunTiming, earlier_segments

ARGS = ["--quiet", "--set", "training.epochs=2"]


def test_a_resumed_run_counts_the_time_of_both_processes(tiny_study: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt  # as a kill after both methods trained

    with monkeypatch.context() as patch:
        patch.setattr(robustmm.study, "render", interrupted)
        assert main(["run", str(tiny_study), "--out", str(out), *ARGS]) == 130
    first = json.loads((out / "timing.json").read_text())["processes"]
    assert len(first) == 1 and first[0]["finished"] is False and first[0]["seconds"] > 0
    assert set(first[0]["methods"]) == {"complete_only", "dropout_baseline"}

    assert main(["run", str(tiny_study), "--resume", str(out), *ARGS]) == 0
    doc = json.loads((out / "timing.json").read_text())
    one, two = doc["processes"]
    assert one == first[0] and two["finished"] is True and two["resumed"] is True
    assert doc["total"] == pytest.approx(one["seconds"] + two["seconds"], abs=0.02)
    for m in ("complete_only", "dropout_baseline"):
        assert doc[m] == pytest.approx(one["methods"][m] + two["methods"][m], abs=0.02)
    assert doc["peak_rss_mb"] == max(one["peak_rss_mb"], two["peak_rss_mb"])


def test_a_timing_file_of_an_older_robustmm_is_its_one_process(tmp_path: Path) -> None:
    (tmp_path / "timing.json").write_text(json.dumps({"a": 3.0, "total": 5.0, "peak_rss_mb": 100.0}))
    assert earlier_segments(tmp_path / "timing.json") == [
        {"started": None, "seconds": 5.0, "finished": True, "peak_rss_mb": 100.0, "methods": {"a": 3.0}}]
    timing = RunTiming(tmp_path)
    timing.start_method("a")
    timing.end_method("a")
    timing.finish()
    doc = json.loads((tmp_path / "timing.json").read_text())
    assert len(doc["processes"]) == 2 and doc["a"] >= 3.0 and doc["total"] >= 5.0


def test_a_process_records_its_time_while_it_runs(tmp_path: Path, monkeypatch) -> None:
    """A process killed with SIGKILL cannot write at its end: what it left is what the recorder thread wrote."""
    monkeypatch.setattr(timing_module, "EVERY", 0.05)
    with RunTiming(tmp_path) as timing:
        timing.start_method("a")
        time.sleep(0.5)
        seg = json.loads((tmp_path / "timing.json").read_text())["processes"][0]  # what a kill now would leave
        assert seg["methods"]["a"] >= 0.2 and seg["seconds"] >= 0.2 and seg["finished"] is False


def test_a_process_stopped_by_an_error_records_its_time(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), RunTiming(tmp_path) as timing:
        timing.start_method("a")
        raise KeyboardInterrupt
    seg = json.loads((tmp_path / "timing.json").read_text())["processes"][0]
    assert "a" in seg["methods"] and seg["finished"] is False


def test_an_unreadable_timing_file_does_not_stop_a_resume(tmp_path: Path, caplog) -> None:
    (tmp_path / "timing.json").write_text("{")
    assert earlier_segments(tmp_path / "timing.json") == []
    assert "cannot be read" in caplog.text

"""A tiny study end to end through the CLI: outputs, no overwrite, determinism, resume."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from robustmm.cli import main
from robustmm.config import load_study
from robustmm.config.loader import to_plain


def run_cli(*args: str) -> int:
    return main(["run", *args, "--quiet"])


def test_tiny_study_writes_a_complete_run_folder(tiny_study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run1"
    assert run_cli(str(tiny_study), "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC DATA" in printed and "complete_only" in printed and "dropout_baseline" in printed
    for name in ("config.yaml", "metrics.json", "metrics.csv", "report.html", "log.txt", "summary.txt"):
        assert (out / name).is_file(), name
    assert (out / "plots" / "pet_missing_auc.png").is_file()
    assert (out / "checkpoints" / "complete_only" / "complete_only.pt").is_file()
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["synthetic"] is True and doc["primary_metric"] == "auc"
    scenarios = {r["scenario"] for r in doc["records"]}
    assert scenarios == {"natural", "pet_missing@0", "pet_missing@0.5", "pet_missing@1", "mri+clinical",
                         "pet_missing:AUILC"}
    metrics = {r["metric"] for r in doc["records"]}
    assert {"auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "c_index"} <= metrics
    auc = [r for r in doc["records"] if r["metric"] == "auc" and r["scenario"] == "natural"]
    assert all(r["ci_low"] <= r["value"] <= r["ci_high"] for r in auc)
    html = (out / "report.html").read_text()
    assert "SYNTHETIC DATA" in html and "plots/pet_missing_auc.png" in html
    config = (out / "config.yaml").read_text()
    assert "git_commit" in config and "torch" in config and "device: cpu" in config
    assert "threads:" in config and "source:" in config  # the thread count used is recorded

    before = (out / "metrics.json").stat().st_mtime_ns
    assert run_cli(str(tiny_study), "--out", str(out)) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "metrics.json").stat().st_mtime_ns == before


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_same_seed_same_metrics_and_resume_after_kill(tiny_study: Path, tmp_path: Path) -> None:
    overrides = ["--set", "training.epochs=6"]
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert run_cli(str(tiny_study), "--out", str(a), *overrides) == 0
    assert run_cli(str(tiny_study), "--out", str(b), *overrides) == 0
    assert _metrics(a) == _metrics(b)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "robustmm.cli", "run", str(tiny_study), "--out", str(c),
                             "--quiet", *overrides], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = c / "checkpoints" / "complete_only" / "complete_only.pt"
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if ckpt.is_file():
            try:
                state = torch.load(ckpt, map_location="cpu", weights_only=True)
            except Exception:  # being replaced right now
                continue
            if state["epoch"] >= 1:  # two epochs done
                proc.send_signal(signal.SIGKILL)
                killed_at = state["epoch"]
                break
        time.sleep(0.02)
    proc.wait()
    assert killed_at is not None, "the run finished or stalled before it could be interrupted"
    assert not (c / "metrics.json").exists()
    assert run_cli(str(tiny_study), "--resume", str(c), *overrides) == 0
    assert _metrics(c) == _metrics(a)
    assert "resuming after epoch" in (c / "log.txt").read_text()


def test_resume_refuses_a_different_study(tiny_study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "config.yaml").write_text("name: other\n")
    assert run_cli(str(tiny_study), "--resume", str(out)) == 2
    assert f"--resume {out} is a run of study 'other', not of 'tiny_adni'" in capsys.readouterr().err
    # a resume without the --set the run started with is named as a different study, not as the data check it fails
    (out / "config.yaml").write_text(yaml.safe_dump(to_plain(load_study(tiny_study))))
    assert run_cli(str(tiny_study), "--set", f"data.root={tmp_path / 'nowhere'}", "--resume", str(out)) == 2
    err = capsys.readouterr().err
    assert "differs from the one that run started with (data.root: " in err and "does not exist" not in err


def test_a_terminated_run_logs_how_to_continue(tiny_study: Path, tmp_path: Path) -> None:
    """SIGTERM (a scheduler's kill, ``timeout``) is handled as Ctrl-C: the log says how to continue."""
    out = tmp_path / "t"
    proc = subprocess.Popen([sys.executable, "-m", "robustmm.cli", "run", str(tiny_study), "--out", str(out),
                             "--quiet", "--set", "training.epochs=50"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not any((out / "checkpoints").rglob("*.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "continue with --resume" in (out / "log.txt").read_text()
    # the printed command repeats the study and its --set options (without them the study would differ)
    command = err.strip().splitlines()[-1].split("continue with: ", 1)[1]
    assert command == shlex.join(["robustmm", "run", str(tiny_study), "--set", "training.epochs=50", "--resume",
                                  str(out)])

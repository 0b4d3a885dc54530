"""Two-process DDP (gloo, CPU) of a tiny study: one run folder, metrics close to one process
with the same global batch, resume from the checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robustmm.data.datamodule import GlobalBatchShards

REPO = Path(__file__).resolve().parents[1]
#: largest |difference| allowed on any metric value between 1 and 2 processes (same global
#: batches; only the floating-point order of the gradient reduction differs)
TOLERANCE = 1e-3


def test_global_batch_shards_cover_each_batch_once() -> None:
    order = list(range(23))
    parts = [GlobalBatchShards(order, 8, 2, r) for r in range(2)]
    assert [len(p) for p in parts] == [3, 3]
    for b in range(3):
        merged = parts[0].parts[b] + parts[1].parts[b]
        assert merged == order[8 * b: 8 * b + 8]
        # weights: len(slice) * world / len(batch) -> the mean of weighted rank means is the batch mean
        sizes = [len(p.parts[b]) for p in parts]
        assert [p.weights[b] for p in parts] == [s * 2 / len(merged) for s in sizes]
    assert parts[0].parts[2] == [16, 17, 18] and parts[1].parts[2] == [19, 20, 21, 22]
    assert len(GlobalBatchShards(list(range(9)), 8, 2, 0)) == 1  # last batch of 1 < 2 ranks: dropped



def test_logged_train_loss_is_the_global_batches_mean_when_slices_differ_in_size(tmp_path: Path, monkeypatch) -> None:
    """Each rank's epoch loss was an unweighted mean of its slice means, and the ranks' values were
    averaged: with slices of 2 and 3 samples the logged train_loss was not the one-process value.
    The ranks run one after the other here; only the collectives are stood in for (a loss that does
    not depend on the weights makes the ranks' training independent)."""
    import torch

    from robustmm.config.schema import TrainingConfig
    from robustmm.data.batch import collate
    from robustmm.engine import distributed
    from robustmm.engine.trainer import Trainer

    values = [0.0, 0.0, 0.0, 10.0, 10.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # two global batches of 5

    class Stage(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, ctx):
            return batch.target.float().mean() + 0 * self.w.sum()  # the mean over the batch (or slice)

        def validation_metrics(self, data, ctx):
            return {"loss": 0.0}

    class Loader(list):
        def __init__(self, sampler) -> None:
            self.batch_sampler = sampler
            super().__init__(collate([{"inputs": {"x": torch.zeros(1)}, "present": {"x": True}, "target": values[i],
                                       "meta": {"subject": str(i)}} for i in part]) for part in sampler)

    class Data:
        def loader(self, split, shuffle=False, epoch=0, shard=(1, 0)):
            return Loader(GlobalBatchShards(list(range(len(values))), 5, *shard))

    def train_loss(name: str) -> float:
        result = Trainer(TrainingConfig(epochs=1), tmp_path / name, 0, progress=False).fit(Stage(), Data(), "s")
        return result.history[0]["train_loss"]

    one = train_loss("one")
    assert one == pytest.approx((4.0 + 3.0) / 2)  # the mean over global batches of each batch's mean loss

    class NoUsage:
        def __init__(self, params) -> None:
            pass

        reset = apply = close = lambda self: None

    monkeypatch.setattr(distributed, "wrap", lambda module, device: distributed.StepModule(module))
    monkeypatch.setattr(distributed, "GlobalUsage", NoUsage)
    for name in ("mean_over_ranks", "broadcast"):  # this rank's own value; the test averages the ranks
        monkeypatch.setattr(distributed, name, lambda value, *args: value)
    monkeypatch.setattr(distributed, "barrier", lambda: None)
    per_rank = []
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "info", lambda rank=rank: distributed.DistInfo(world=2, rank=rank))
        per_rank.append(train_loss(f"rank{rank}"))
    assert sum(per_rank) / 2 == pytest.approx(one)

def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "robustmm", "run", *args, "--quiet"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(tiny_study: Path, tmp_path: Path) -> None:
    common = ["--set", "training.epochs=3", "--set", "model.dropout=0.0", "--set", "training.batch_size=16",
              "--set", "training.threads=1", "--set", "evaluation.bootstrap=20"]
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = _run([str(tiny_study), "--out", str(one), *common], tmp_path)
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = _run([str(tiny_study), "--out", str(two), "--nproc", "2", *common], tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    # one run folder, written by rank 0
    runs = [p for p in tmp_path.iterdir() if p.is_dir() and (p / "config.yaml").exists()]
    assert sorted(p.name for p in runs) == ["one", "two"]
    assert not (tmp_path / "runs").exists()
    config = (two / "config.yaml").read_text()
    assert "world_size: 2" in config and "backend: gloo" in config
    assert (two / "checkpoints" / "dropout_baseline" / "dropout_baseline.pt").is_file()
    a = {(r["method"], r["scenario"], r["metric"]): r["value"] for r in json.loads((one / "metrics.json").read_text())["records"]}
    b = {(r["method"], r["scenario"], r["metric"]): r["value"] for r in json.loads((two / "metrics.json").read_text())["records"]}
    assert a.keys() == b.keys() and len(a) > 20
    diffs = {k: abs(a[k] - b[k]) for k in a if a[k] is not None and b[k] is not None}
    print("largest metric difference, 1 vs 2 processes:", max(diffs.values()))
    assert max(diffs.values()) <= TOLERANCE, sorted(diffs.items(), key=lambda kv: -kv[1])[:5]
    assert "train_loss" in (two / "log.txt").read_text()

    # resume: the finished run's checkpoints are complete; a resumed 2-process run skips training
    # and writes the same metrics
    (two / "metrics.json").unlink()
    r3 = _run([str(tiny_study), "--resume", str(two), "--nproc", "2", *common], tmp_path)
    assert r3.returncode == 0, r3.stderr[-3000:]
    c = {(r["method"], r["scenario"], r["metric"]): r["value"] for r in json.loads((two / "metrics.json").read_text())["records"]}
    assert c == b


def test_the_launcher_passes_sigterm_on_and_waits_for_the_ranks(tmp_path: Path) -> None:
    """`robustmm run --nproc N` killed with SIGTERM: torchrun gets it (and stops its ranks) before the
    launcher returns, instead of the launcher dying and leaving the ranks training."""
    import signal
    import threading
    import time

    from robustmm.engine.distributed import run_forwarding_sigterm

    started = tmp_path / "started"
    child = ("import signal, sys, time, pathlib\n"
             "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
             f"pathlib.Path({str(started)!r}).touch()\n"
             "time.sleep(60)\n")

    def terminate_when_started() -> None:
        deadline = time.time() + 30
        while not started.exists() and time.time() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_when_started, daemon=True).start()
    before = signal.getsignal(signal.SIGTERM)
    assert run_forwarding_sigterm([sys.executable, "-c", child]) == 7
    assert signal.getsignal(signal.SIGTERM) is before


SESSION_SCRIPT = """
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

from robustmm.engine import distributed

fail_after_share = sys.argv[1] == "during"


def main():
    if fail_after_share:
        distributed.share_run(SimpleNamespace(training=SimpleNamespace(batch_size=4)), Path("."))
    raise RuntimeError("rank 0 failed " + sys.argv[1] + " the run")


def follow(cfg, run_dir):
    dist.all_reduce(torch.zeros(1))  # a collective of the run that the failed rank 0 never joins
    return None


distributed.run_session("cpu", main, follow)
"""


def _torchrun_script(script: Path, *args: str, timeout: float) -> tuple[int | None, str]:
    """Run ``script`` under a 2-process torchrun; (exit code, stderr), exit code None after ``timeout``
    seconds (torchrun is then sent SIGTERM, which it passes on to the ranks it started)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(script), *args], cwd=script.parent, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        proc.terminate()
        _, err = proc.communicate()
        return None, err


@pytest.mark.parametrize("when", ["before", "during"])
def test_a_failure_on_rank_0_ends_every_rank_with_its_error(tmp_path: Path, when: str) -> None:
    """Rank 0 failing while the other ranks wait in a collective of the run (or for a run to follow) ends
    the job with rank 0's error, instead of rank 0 waiting in its release broadcast until the 30-minute
    process-group timeout."""
    script = tmp_path / "session.py"
    script.write_text(SESSION_SCRIPT)
    code, err = _torchrun_script(script, when, timeout=120)
    assert code is not None, "the ranks hung after rank 0 failed:\n" + err[-3000:]
    assert code != 0
    assert f"rank 0 failed {when} the run" in err


@pytest.mark.parametrize("problem", ["bad key", "existing --out", "--out with --resume", "batch below nproc"])
def test_nproc_says_a_user_error_once_before_starting_processes(tiny_study: Path, tmp_path: Path, monkeypatch,
                                                                capsys, problem: str) -> None:
    """`--nproc N` checks the request as a single process does (exit 2, one message) instead of starting N ranks
    that each print it under torchrun's traceback and exit 1."""
    from robustmm import cli
    from robustmm.engine import distributed

    def no_launch(cmd, env=None):
        raise AssertionError(f"torchrun started: {cmd}")

    monkeypatch.setattr(distributed, "run_forwarding_sigterm", no_launch)
    existing = tmp_path / "existing"
    existing.mkdir()
    extra = {"bad key": ["--out", str(tmp_path / "new"), "--set", "training.epoch=3"],
             "existing --out": ["--out", str(existing)],
             "--out with --resume": ["--out", str(tmp_path / "new"), "--resume", str(existing)],
             "batch below nproc": ["--out", str(tmp_path / "new"), "--set", "training.batch_size=1"]}[problem]
    assert cli.main(["run", str(tiny_study), "--nproc", "2", *extra]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("robustmm: error:") == 1
    assert {"bad key": "unknown key 'training.epoch'", "existing --out": "already exists",
            "--out with --resume": "exclude each other",
            "batch below nproc": "training.batch_size 1 is smaller than the 2 processes"}[problem] in err
    assert not (tmp_path / "new").exists()


def test_more_processes_per_machine_than_gpus_is_refused(monkeypatch) -> None:
    from robustmm.engine import distributed
    from robustmm.errors import ConfigError

    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 2)
    distributed.check_processes_per_node(2, "auto")
    distributed.check_processes_per_node(8, "cpu")  # CPU processes need no GPU
    for kind in ("auto", "cuda"):
        with pytest.raises(ConfigError, match=r"3 processes on this machine, but it has 2 GPUs.*at most 2"):
            distributed.check_processes_per_node(3, kind)


def test_nproc_passes_every_option_of_the_command_to_the_ranks(tiny_study: Path, tmp_path: Path, monkeypatch) -> None:
    from robustmm import cli
    from robustmm.engine import distributed

    launched = []
    monkeypatch.setattr(distributed, "run_forwarding_sigterm", lambda cmd, env=None: launched.append(cmd) or 0)
    out = tmp_path / "new"
    assert cli.main(["run", str(tiny_study), "--nproc", "3", "--set", "training.epochs=2", "--seeds", "0-1",
                     "--out", str(out), "--quiet", "-v"]) == 0
    [cmd] = launched
    assert cmd[cmd.index("-m") + 1] == "torch.distributed.run" and "--nproc_per_node=3" in cmd
    tail = cmd[cmd.index("robustmm"):]
    assert tail == ["robustmm", "run", str(tiny_study), "--set", "training.epochs=2", "--out", str(out),
                    "--seeds", "0-1", "--quiet", "--verbose"]


def test_batch_norm_under_ddp_is_named_as_a_difference_from_one_process() -> None:
    from torch import nn

    from robustmm.config.schema import ModelConfig
    from robustmm.data.batch import ModalitySpec
    from robustmm.engine.distributed import batch_norm_note
    from robustmm.models.encoders import VolumeEncoder

    spec = ModalitySpec("mri", "volume", (1, 8, 8, 8))

    def encoder(norm: str) -> nn.Module:
        cfg = ModelConfig.model_validate({"embed_dim": 4, "volume": {"channels": [4], "strides": [2], "norm": norm}})
        return VolumeEncoder(spec, cfg)

    note = batch_norm_note(encoder("batch"))
    assert note is not None and "each process's slice" in note and "features." in note
    assert batch_norm_note(encoder("instance")) is None and batch_norm_note(encoder("group")) is None


def test_nproc_ranks_share_the_cores_instead_of_torchruns_one_thread(tiny_study: Path, tmp_path: Path,
                                                                    monkeypatch) -> None:
    """torchrun gives every rank OMP_NUM_THREADS=1 when it is unset; `--nproc N` passes the README's default
    (available cores // N) instead, and leaves a value the user set alone."""
    from robustmm import cli, parallel
    from robustmm.engine import distributed

    envs = []
    monkeypatch.setattr(distributed, "run_forwarding_sigterm", lambda cmd, env=None: envs.append(env) or 0)
    monkeypatch.setattr(parallel, "available_cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cli.main(["run", str(tiny_study), "--nproc", "2", "--out", str(tmp_path / "a")]) == 0
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cli.main(["run", str(tiny_study), "--nproc", "2", "--out", str(tmp_path / "b")]) == 0
    assert [env["OMP_NUM_THREADS"] for env in envs] == ["4", "3"]


def test_a_training_split_smaller_than_the_processes_is_an_error_not_an_epoch_without_steps(tiny_study: Path,
                                                                                           tmp_path: Path) -> None:
    from robustmm.config.loader import load_study
    from robustmm.data.datamodule import DataModule
    from robustmm.data.registry import build_dataset
    from robustmm.engine.distributed import DistInfo
    from robustmm.engine.trainer import Trainer
    from robustmm.errors import ConfigError

    cfg = load_study(tiny_study, [])
    data = DataModule(build_dataset(cfg.data, progress=False), cfg.split, cfg.seed, 64, 0)
    n_train = len(data.indices("train"))
    assert n_train < 64
    trainer = Trainer(cfg.training, tmp_path, cfg.seed, progress=False)
    batches, _ = trainer._train_batches(data, 0, DistInfo(world=n_train, rank=1), None, "stage")
    assert len(batches) == 1  # as many processes as samples: one sample each
    with pytest.raises(ConfigError, match=rf"stage: its training split has {n_train} samples, fewer than the "
                                          rf"{n_train + 1} processes"):
        trainer._train_batches(data, 0, DistInfo(world=n_train + 1, rank=0), None, "stage")


@pytest.mark.slow
def test_every_rank_trains_mmanet_with_rank_0s_mad_weight(tiny_study: Path, tmp_path: Path) -> None:
    """MMANet sets its MAD weight from the losses of the slices a rank trained on; each rank used its own
    (2.43 and 4.05 on this study), while the checkpoint, and so a resumed run, holds rank 0's."""
    import re

    study = tmp_path / "mmanet.yaml"
    study.write_text(tiny_study.read_text().replace(
        "  - name: dropout_baseline\n",
        "  - name: dropout_baseline\n  - {name: mmanet, warmup_epochs: 1, require_better_teacher: false}\n"))
    r = _run([str(study), "--out", str(tmp_path / "run"), "--nproc", "2", "-v", "--set", "training.epochs=3",
              "--set", "training.threads=1", "--set", "evaluation.bootstrap=20"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    weights = re.findall(r"mmanet: distillation starts; MAD weight ([0-9.]+)", r.stderr + r.stdout)
    assert len(weights) == 2 and weights[0] == weights[1], weights

"""Thread defaults never oversubscribe: cores // concurrent workers; sweep workers 1 thread each."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from robustmm import parallel
from robustmm.parallel import default_threads, resolve_threads


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("ROBUSTMM_THREADS", "ROBUSTMM_WORKERS", "OMP_NUM_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(parallel, "available_cores", lambda: 8)
    return monkeypatch


def test_cores_divided_by_concurrent_workers(clean_env) -> None:
    assert resolve_threads(None) == (8, "8 available cores // 1 concurrent worker")
    clean_env.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun: two ranks on this node
    assert resolve_threads(None)[0] == 4
    clean_env.setenv("ROBUSTMM_WORKERS", "3")
    assert resolve_threads(None)[0] == 2
    assert default_threads(16) == 1  # never below 1


def test_explicit_settings_win(clean_env) -> None:
    clean_env.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads(None) == (3, "OMP_NUM_THREADS")
    clean_env.setenv("ROBUSTMM_THREADS", "1")
    assert resolve_threads(None) == (1, "ROBUSTMM_THREADS")
    assert resolve_threads(5) == (5, "training.threads")


def test_available_cores_is_positive_and_bounded() -> None:
    import os

    assert 1 <= parallel.available_cores() <= (os.cpu_count() or 1)


def test_sweep_workers_get_one_thread_each(clean_env, tmp_path: Path) -> None:
    from robustmm.tune.sweep import run_local_workers

    out = tmp_path / "env"
    code = ("import os, sys; open(sys.argv[1] + sys.argv[3], 'w').write("
            "os.environ['ROBUSTMM_THREADS'] + ' ' + os.environ['OMP_NUM_THREADS'] + ' ' + os.environ['ROBUSTMM_WORKERS'])")
    assert run_local_workers([sys.executable, "-c", code, str(out)], 2, 0) == [0, 0]
    assert (tmp_path / "env0").read_text() == "1 1 2" and (tmp_path / "env1").read_text() == "1 1 2"

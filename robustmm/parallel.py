"""How many CPU threads and processes a run may use without oversubscribing the machine.

The default thread count of a process is ``available cores // concurrent workers`` (at least
1): one run alone uses every core it may use, torchrun ranks share the cores of their node,
and ``robustmm sweep --workers K`` gives each worker 1 thread unless ``training.threads`` (or
``OMP_NUM_THREADS``) is set. Available cores honour the CPU affinity mask and cgroup CPU quotas
(containers). The count used is written to the run's config.yaml (``threads``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from robustmm.text import counted

#: set by launchers (sweep workers, torchrun ranks) to the number of processes sharing the machine
WORKERS_ENV = "ROBUSTMM_WORKERS"
#: a launcher's default threads per process (sweep workers: 1), below ``training.threads``
THREADS_ENV = "ROBUSTMM_THREADS"


def available_cores() -> int:
    """CPU cores this process may use: the affinity mask, capped by a cgroup v2/v1 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


def _cgroup_quota() -> float | None:
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def concurrent_workers() -> int:
    """Processes of this job sharing the machine (``ROBUSTMM_WORKERS``, else torchrun's
    ``LOCAL_WORLD_SIZE``, else 1)."""
    for name in (WORKERS_ENV, "LOCAL_WORLD_SIZE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def default_threads(workers: int | None = None) -> int:
    """Threads per process that never oversubscribe: available cores // concurrent workers."""
    return max(1, available_cores() // (workers or concurrent_workers()))


def resolve_threads(requested: int | None) -> tuple[int, str]:
    """The thread count to use and where it came from (recorded in config.yaml): ``training.threads``,
    else ``ROBUSTMM_THREADS`` (set by a launcher), else ``OMP_NUM_THREADS``, else available cores //
    concurrent workers."""
    if requested:
        return int(requested), "training.threads"
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value), name
    workers = concurrent_workers()
    return default_threads(workers), f"{available_cores()} available cores // {counted(workers, 'concurrent worker')}"


def apply_threads(requested: int | None) -> int:
    """Set torch's intra-op threads (the inter-op pool keeps torch's default)."""
    import torch

    threads, _ = resolve_threads(requested)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def run_threads(requested: int | None) -> dict:
    """Apply the thread count and return what config.yaml records: ``{"threads": {count, source}}``."""
    count = apply_threads(requested)
    return {"threads": {"count": count, "source": resolve_threads(requested)[1]}}

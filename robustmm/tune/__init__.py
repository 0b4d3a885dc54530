"""Optuna sweeps over robustmm studies, on one machine or many workers sharing one storage.

``robustmm sweep STUDY.yaml`` (see :mod:`robustmm.tune.sweep` and docs/sweeps.md). The
modules below :mod:`robustmm.tune.worker` (config, space, storage, worker) need no torch, so a
worker process starts fast; trials themselves run :func:`robustmm.study.run_study`.
"""

from robustmm.tune.config import SweepConfig, parse_sweep
from robustmm.tune.storage import SweepStorage, open_storage
from robustmm.tune.worker import SweepAbort, WorkerReport, open_study, run_worker

__all__ = ["SweepConfig", "parse_sweep", "SweepStorage", "open_storage", "SweepAbort", "WorkerReport", "open_study",
           "run_worker"]

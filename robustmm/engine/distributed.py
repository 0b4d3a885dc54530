"""Multi-GPU / multi-node training on PyTorch's own distributed engine (DDP).

Launch the ordinary command under ``torchrun`` (or let ``robustmm run --nproc N`` do it)::

    torchrun --nproc_per_node 4 -m robustmm run studies/adni_mci.yaml
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 \\
        -m robustmm run studies/adni_mci.yaml

Rank 0 runs the study; every single run it trains (one per fold / seed) is announced to the
other ranks, which build the same data and methods (same seed); the trainer wraps each training module
in :class:`~torch.nn.parallel.DistributedDataParallel` and gives each rank its share of every
*global* batch: the single-process run's batch (same shuffling, ``training.batch_size`` samples)
is cut into ``world_size`` consecutive slices, and each rank's mean loss is weighted by its slice's
share so that DDP's gradient average equals the gradient of the global batch's mean loss (batch-norm
statistics and losses over pairs of samples stay per slice: :func:`batch_norm_note`).
Validation runs on every rank (methods may update state from it, e.g. MMANet's mining) and
rank 0's metrics decide early stopping for all. Rank 0 alone creates the run folder, writes
checkpoints, evaluates and writes the report; a resumed run loads the same checkpoints on every
rank. Backend: NCCL on CUDA, gloo on CPU. The slicing is
:class:`robustmm.data.datamodule.GlobalBatchShards`.

Supported: methods whose training goes through :meth:`robustmm.engine.trainer.Trainer.fit`.
A method that loops over training batches itself trains on the full data on every rank.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from robustmm.text import counted, form

log = logging.getLogger("robustmm")


@dataclass(frozen=True)
class DistInfo:
    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def info() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_world_size(), dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(device_kind: str = "auto") -> DistInfo:
    """Join the process group that torchrun describes in the environment (no-op otherwise)."""
    if not launched_by_torchrun() or info().enabled:
        return info()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = device_kind != "cpu" and torch.cuda.is_available()
    check_processes_per_node(int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1)), device_kind)
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=dt.timedelta(minutes=30))
    out = info()
    log.info("distributed: rank %d of %d (local rank %d, backend %s)", out.rank, out.world, out.local_rank,
             dist.get_backend())
    return out


def check_batch_size(batch_size: int, world: int) -> None:
    if batch_size < world:
        from robustmm.errors import ConfigError

        raise ConfigError(f"training.batch_size {batch_size} is smaller than the {world} processes; "
                          "each process needs at least one sample of every global batch")


def check_processes_per_node(nproc: int, device_kind: str) -> None:
    """Training on CUDA takes one GPU per process: refuse more processes on a machine than it has GPUs."""
    if device_kind == "cpu" or not torch.cuda.is_available():
        return
    gpus = torch.cuda.device_count()
    if nproc > gpus:
        from robustmm.errors import ConfigError

        raise ConfigError(f"{nproc} processes on this machine, but it has {counted(gpus, 'GPU')} and each process "
                          f"trains on its own: start at most {gpus} (--nproc / torchrun --nproc_per_node), or train "
                          "on the CPU with --set training.device=cpu")


_SESSION = {"active": False}


def needs_session() -> bool:
    """True in a process started by torchrun that has not joined its process group yet."""
    return launched_by_torchrun() and not _SESSION["active"]


def run_session(device_kind: str, main: Callable[[], Any], follow: Callable[[Any, Path], Any]) -> Any:
    """Join the process group; rank 0 runs ``main()`` (the whole study: it creates the run folder,
    and each single run it trains is announced to the other ranks by :func:`share_run`); the
    other ranks run ``follow(cfg, run_dir)`` for every announced run until rank 0 is done."""
    init_from_env(device_kind)
    _SESSION.update(active=True, shared=False)
    try:
        if info().is_main:
            try:
                result = main()
            except BaseException:
                # before the first run the other ranks wait for a message: release them. Once a run was shared
                # they may be inside any collective of it, which a release broadcast would wait on forever;
                # this process exiting ends theirs (their peer is gone, and torchrun stops a failed job's ranks)
                if not _SESSION["shared"]:
                    broadcast(None)
                raise
            broadcast(None)  # rank 0 is done: release the other ranks
            return result
        last = None
        while True:
            message = broadcast(None)
            if message is None:
                return last
            last = follow(*message)
    finally:
        _SESSION["active"] = False
        shutdown()


def share_run(cfg: Any, run_dir: Path) -> None:
    """Rank 0: announce the single run (its config and folder) that every rank trains next."""
    i = info()
    if not (_SESSION["active"] and i.enabled and i.is_main):
        return
    check_batch_size(cfg.training.batch_size, i.world)
    _SESSION["shared"] = True
    broadcast((cfg, Path(run_dir)))


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (picklable objects)."""
    if not info().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def mean_over_ranks(value: float) -> float:
    """The mean of a per-rank float over all ranks (the value itself in a single process)."""
    if not info().enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t[0]) / info().world


def run_info() -> dict[str, Any]:
    """What config.yaml records about the process group (nothing in a single process)."""
    i = info()
    if not i.enabled:
        return {}
    return {"distributed": {"world_size": i.world, "backend": dist.get_backend(),
                            "batch": "each global batch of training.batch_size is sliced across the ranks"}}


def barrier() -> None:
    if info().enabled:
        dist.barrier()


class StepModule(nn.Module):
    """``forward(batch, ctx)`` = ``module.training_step(batch, ctx)``, so DDP sees the step."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch, ctx):
        return self.module.training_step(batch, ctx)


class GlobalUsage:
    """Single-process semantics for parameters that no rank used in a step.

    In one process a parameter that took no part in the loss (e.g. the PET encoder when no
    sample of the batch has PET) keeps ``grad=None`` and AdamW leaves it alone. DDP with unused
    parameters fills such gradients with zeros, and AdamW would then decay the weights and apply
    stale momentum. Each rank records which parameters autograd reached (post-accumulate hooks),
    the ranks OR their flags (one small all-reduce per step), and gradients of parameters no rank
    used are reset to None.
    """

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        self.used = torch.zeros(len(params), dtype=torch.uint8)
        self.handles = [p.register_post_accumulate_grad_hook(self._hook(i)) for i, p in enumerate(params)]

    def _hook(self, i: int):
        def mark(_param) -> None:
            self.used[i] = 1

        return mark

    def reset(self) -> None:
        self.used.zero_()

    def apply(self) -> None:
        flags = self.used.clone()
        if dist.get_backend() == "nccl":
            flags = flags.cuda()
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        for p, used in zip(self.params, flags.cpu().tolist()):
            if not used:
                p.grad = None

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def batch_norm_note(module: nn.Module) -> str | None:
    """What DDP changes for ``module``'s batch-norm layers (None when it has none)."""
    layers = [name for name, sub in module.named_modules() if isinstance(sub, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return None
    # SyncBatchNorm is no way out: it needs every rank in each layer's collective, and an encoder runs only on
    # ranks whose slice holds its modality
    return (f"{counted(len(layers), 'batch-norm layer')} (e.g. {layers[0]}) "
            f"{form(len(layers), 'normalises', 'normalise')} each process's slice of the global batch, not the "
            "whole batch, so results differ from a single process by more than floating-point order; "
            "model.volume.norm: group or instance has no batch statistics")


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """DDP around ``module``'s training step (unused parameters allowed: a dropped modality's
    encoder does not run in every step)."""
    from torch.nn.parallel import DistributedDataParallel

    note = batch_norm_note(module)
    if note:
        log.warning("distributed training: %s", note)

    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(StepModule(module), device_ids=ids, find_unused_parameters=True)


def launch_local(nproc: int, args: Any) -> int:
    """``robustmm run --nproc N``: the same command under ``torchrun --standalone`` with N processes."""
    import sys

    if launched_by_torchrun():
        from robustmm.errors import ConfigError

        raise ConfigError("--nproc: this process was already started by torchrun; drop --nproc")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "robustmm", "run", str(args.study)]
    for item in args.set:
        cmd += ["--set", item]
    for flag in ("profile", "out", "resume", "seeds"):
        if getattr(args, flag, None) is not None:
            cmd += [f"--{flag}", str(getattr(args, flag))]
    for flag in ("quiet", "rewrite_results", "accept_data_change", "verbose"):
        if getattr(args, flag, False):
            cmd.append("--" + flag.replace("_", "-"))
    from robustmm.parallel import default_threads

    # torchrun sets an unset OMP_NUM_THREADS to 1 for every rank, which would win over the ranks' default share
    env = {**os.environ}
    env.setdefault("OMP_NUM_THREADS", str(default_threads(nproc)))
    return run_forwarding_sigterm(cmd, env)


def run_forwarding_sigterm(cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``cmd`` and return its exit code; a SIGTERM sent to this process is passed on to it (torchrun
    passes it to its ranks) and waited for, so killing the launcher never leaves ranks training behind."""
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, env=env)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signum))
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # Ctrl-C reached the whole process group: let the child stop first
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)

"""The accelerator fast path the trainer and evaluation share.

* :func:`configure_backends`: ``training.deterministic: false`` turns off deterministic
  algorithms and turns on cuDNN autotuning (``cudnn.benchmark``) and TF32 matmuls;
  ``true`` (the default) keeps runs bit-reproducible.
* :func:`to_device`: one non-blocking host-to-device copy of a batch whose masks were built on
  the CPU before (see ``prepare_batch`` in :mod:`robustmm.engine.trainer`); volumes optionally
  in channels-last-3d layout.
* :func:`prepare_network`: optional channels-last-3d weights and ``torch.compile`` of the
  per-modality encoders (dynamic shapes: an encoder sees only the rows where its modality is
  present).
* :func:`eval_autocast`: evaluation under autocast (bf16 where supported, else fp16) on CUDA.
* :class:`DeviceCohort`: a whole split kept on the device, batches cut from it by index.
* :class:`LossMeter`: the epoch's loss summed on the device; one host sync per epoch, and a
  non-finite loss is reported with its step at the end of the epoch.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterable, Iterator

import torch
from torch import Tensor, nn

from robustmm.data.batch import Batch
from robustmm.errors import TrainingError
from robustmm.text import counted

log = logging.getLogger("robustmm")


def configure_backends(deterministic: bool, device: torch.device) -> None:
    torch.use_deterministic_algorithms(bool(deterministic), warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = bool(deterministic)
        if not deterministic:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True


def to_device(batch: Batch, device: torch.device, channels_last: bool = False) -> Batch:
    """``batch`` on ``device``; on an accelerator the result keeps the host ``present`` masks as
    ``host_present`` so networks find the rows to encode without a device-to-host sync."""
    out = batch.to(device)
    if torch.device(device).type != "cpu" and all(p.device.type == "cpu" for p in batch.present.values()):
        out.host_present = batch.present
    if channels_last:
        out.inputs = {m: x.contiguous(memory_format=torch.channels_last_3d) if x.dim() == 5 else x
                      for m, x in out.inputs.items()}
    return out


def prepare_network(module: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    if channels_last:  # 5-D weights (3-D convolutions) only; other tensors keep their layout
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                if t.dim() == 5:
                    t.data = t.data.contiguous(memory_format=torch.channels_last_3d)
    if compile:
        compiled = 0
        for sub in module.modules():
            encoders = getattr(sub, "encoders", None)
            if isinstance(encoders, nn.ModuleDict):
                for enc in encoders.values():
                    if not getattr(enc, "_robustmm_compiled", False):
                        enc.compile(dynamic=True)
                        enc._robustmm_compiled = True
                        compiled += 1
        log.info("torch.compile: %s compiled", counted(compiled, "encoder"))
    return module


def autocast_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def eval_autocast(device: torch.device, enabled: bool = True, cpu: bool = False) -> contextlib.AbstractContextManager:
    """Autocast for inference on CUDA (``cpu=True`` also on the CPU, bf16: for tests)."""
    if enabled and (device.type == "cuda" or (cpu and device.type == "cpu")):
        return torch.autocast(device.type, dtype=autocast_dtype(device))
    return contextlib.nullcontext()


class LossMeter:
    """Sum of step losses on the device, without a host sync per step."""

    def __init__(self, device: torch.device) -> None:
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.steps = 0
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=device)
        self.bad_value = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, loss: Tensor, step: int) -> None:
        value = loss.detach().to(torch.float64)
        bad = ~torch.isfinite(value) & (self.first_bad < 0)
        self.first_bad = torch.where(bad, torch.full_like(self.first_bad, step), self.first_bad)
        self.bad_value = torch.where(bad, value, self.bad_value)
        self.total += value
        self.steps += 1

    def check(self, stage: str, epoch: int) -> None:
        """Raise if any step's loss was not finite (one host sync)."""
        first = int(self.first_bad)
        if first >= 0:
            raise TrainingError(f"{stage}: loss became {float(self.bad_value)} at epoch {epoch}, step {first}; "
                                "lower training.lr or check the inputs for NaN")

    def mean(self) -> float:
        return float(self.total) / max(self.steps, 1)


class DeviceCohort:
    """A split collated once and kept on ``device``; ``batches(parts)`` cuts batches by index
    (the same positions a DataLoader would give), so no host-to-device copy per step."""

    def __init__(self, data: Any, split: str, device: torch.device, channels_last: bool = False) -> None:
        self.batch = to_device(data.full_batch(split), device, channels_last)
        self.device = device
        self.size = self.batch.size

    def batches(self, parts: Iterable[list[int]]) -> Iterator[Batch]:
        for part in parts:
            yield self.take(part)

    def take(self, part: list[int]) -> Batch:
        """Rows ``part`` (host list: the index is copied once, no device-to-host sync)."""
        index = torch.as_tensor(part, dtype=torch.long).to(self.device, non_blocking=True)

        def pick(x: Any) -> Any:
            if isinstance(x, Tensor):
                return x.index_select(0, index)
            if isinstance(x, dict):
                return {k: pick(v) for k, v in x.items()}
            if isinstance(x, list):
                return [x[i] for i in part]
            return x

        b = self.batch
        return Batch(pick(b.inputs), pick(b.present), pick(b.valid), pick(b.feature_mask), pick(b.target),
                     pick(b.meta))

    @staticmethod
    def nbytes(data: Any, split: str) -> int:
        n = len(data.indices(split))
        total = 0
        for spec in data.modalities.values():
            numel = 1
            for s in spec.shape:
                numel *= int(s)
            total += 4 * numel * n
        return total

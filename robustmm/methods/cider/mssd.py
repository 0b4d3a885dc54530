"""MSSD, model-specific self-distillation: one network, two views of every batch.

Step 1: forward on the complete input, task loss, optimizer step. Step 2: forward on the
RMFM-masked input (training mode: every position its own rate r ~ U(0, 1)); the step-1
outputs are a stop-gradient teacher:

    L = NLL(pred_masked, y) + lambda_rep L_rep + lambda_attn L_attn + lambda_rec L_rec

- ``L_rep`` = 1 - mean_b cos(r'_masked, sg(r'_complete));
- ``L_attn`` = KL(softmax(sg(S_complete)) || softmax(S_masked)) row-wise over the last MCT
  layer's raw scores, normalised as the reference's ``F.kl_div(..., reduction="batchmean")``
  on (B*H, N, N) maps: the row KLs are *summed* over query rows and divided by B*H (padding
  keys excluded; padding query rows add nothing);
- ``L_rec`` = sum over modalities of SmoothL1 between reconstruction and input on the dropped
  positions only, divided by the number of dropped elements (+1e-6). The text target is the
  input features (token embeddings for ids) or, with ``text_recon_target: contextual``, the
  complete view's contextual text states (see :class:`CIDerNet`).

The trainer performs one optimizer step per item its loader yields, so training runs on
:class:`TwoStepData`, whose training loader yields every batch twice: even steps are the
complete view, odd steps the masked view of the same batch.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustmm.data.batch import Batch
from robustmm.methods.base import MethodContext, collect_predictions
from robustmm.methods.cider.layers import NEG_INF
from robustmm.methods.cider.network import CIDerNet
from robustmm.methods.task import TaskAdapter
from robustmm.missing.scenarios import Scenario

RECON_EPS = 1e-6


def representation_loss(rep_masked: Tensor, rep_complete: Tensor) -> Tensor:
    return 1.0 - F.cosine_similarity(rep_masked.float(), rep_complete.detach().float(), dim=-1).mean()


def attention_loss(scores_masked: Tensor, scores_complete: Tensor, key_valid: Tensor) -> Tensor:
    """KL(softmax(sg(S_c)) || softmax(S_m)) of (B, H, N, N) raw scores, row-wise over real keys,
    summed over real query rows and divided by B*H (the reference's ``batchmean`` over
    (B*H, N, N) attention maps)."""
    keys = key_valid[:, None, None, :]
    teacher = torch.softmax(scores_complete.detach().float().masked_fill(~keys, NEG_INF), dim=-1)
    log_student = torch.log_softmax(scores_masked.float().masked_fill(~keys, NEG_INF), dim=-1)
    log_teacher = torch.log(teacher.clamp_min(1e-30))
    kl_rows = (teacher * (log_teacher - log_student)).masked_fill(~keys, 0.0).sum(-1)  # (B, H, N)
    rows = key_valid[:, None, :].expand_as(kl_rows)
    b, h = kl_rows.shape[:2]
    return kl_rows.masked_fill(~rows, 0.0).sum() / (b * h)


def reconstruction_loss(recon: dict[str, Tensor], target: dict[str, Tensor], dropped: dict[str, Tensor]) -> Tensor:
    """Sum over modalities of SmoothL1 on dropped positions / number of dropped elements."""
    total = next(iter(recon.values())).new_zeros((), dtype=torch.float32)
    for m, x_hat in recon.items():
        d = dropped[m].unsqueeze(-1).to(torch.float32)
        x_hat, x = x_hat.float(), target[m].float()
        loss = F.smooth_l1_loss(x_hat * d, x * d, reduction="sum")
        total = total + loss / (d.sum() * x.shape[-1] + RECON_EPS)
    return total


class _Twice:
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.loader:
            yield batch
            yield batch

    def __len__(self) -> int:
        return 2 * len(self.loader)


class TwoStepData:
    """A data-module view whose training loader yields every batch twice (MSSD's two steps)."""

    def __init__(self, data: Any) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        if name == "_data":  # not set yet (e.g. during copying): no recursion
            raise AttributeError(name)
        return getattr(self._data, name)

    def loader(self, split: str, shuffle: bool = False, epoch: int = 0, **kwargs: Any) -> Any:
        loader = self._data.loader(split, shuffle=shuffle, epoch=epoch, **kwargs)
        return _Twice(loader) if split == "train" else loader


class MSSDModule(nn.Module):
    """The trainer's module for CIDer. ``distill=False`` keeps both steps but drops L_rep,
    L_attn and L_rec (the "without MSSD" ablation: masked-input augmentation only)."""

    validates_under_scenarios = True  # training.selection.scenarios (robustmm.engine.selection)

    def __init__(self, net: CIDerNet, task: TaskAdapter, context: MethodContext, masking: Scenario,
                 lambda_rep: float, lambda_attn: float, lambda_rec: float, distill: bool = True) -> None:
        super().__init__()
        self.net = net
        self.task = task
        self.context = context
        self.masking = masking
        self.lambdas = (lambda_rep, lambda_attn, lambda_rec)
        self.distill = distill
        self.monitor = task.primary_metric
        self._teacher: dict[str, Tensor] | None = None

    def training_step(self, batch: Batch, ctx) -> tuple[Tensor, dict[str, float]]:
        if ctx.step % 2 == 0:
            complete = self.net.prepare(batch)
            out = self.net(complete)
            self._teacher = {"rep": out["rep"].detach(), "scores": out["scores"].detach(),
                             "text": self.net.recon_text_target(complete, out)}
            return self.task.loss(out["log_probs"], batch), {}
        if self._teacher is None:
            raise RuntimeError("MSSD masked step without a complete step before it; train on TwoStepData")
        teacher, self._teacher = self._teacher, None
        masked_batch = self.masking.apply(batch, self.context.modalities, self.context.seed, ctx.epoch)
        masked = self.net.prepare(masked_batch)
        out = self.net(masked, reconstruct=self.distill)
        loss = self.task.loss(out["log_probs"], batch)
        parts = {"task_masked": float(loss.detach())}
        if self.distill:
            l_rep = representation_loss(out["rep"], teacher["rep"])
            l_attn = attention_loss(out["scores"], teacher["scores"], out["key_valid"])
            targets = {"text": teacher["text"], "audio": batch.inputs["audio"], "vision": batch.inputs["vision"]}
            l_rec = reconstruction_loss(out["recon"], targets, masked.dropped)
            w_rep, w_attn, w_rec = self.lambdas
            loss = loss + w_rep * l_rep + w_attn * l_attn + w_rec * l_rec
            parts.update(rep=float(l_rep.detach()), attn=float(l_attn.detach()), rec=float(l_rec.detach()))
        return loss, parts

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        return self.task.outputs(self.net(self.net.prepare(batch))["log_probs"])

    def validation_metrics(self, data: Any, ctx) -> dict[str, float]:
        preds = collect_predictions(self.predict, data, "val", ctx.device)
        metrics = self.task.metrics(preds.outputs, preds.target, preds.meta)
        log_probs = torch.as_tensor(preds.outputs["logits"])
        metrics["loss"] = float(F.nll_loss(log_probs, torch.as_tensor(preds.target).long()))
        return metrics

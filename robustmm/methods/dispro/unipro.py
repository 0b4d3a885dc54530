"""Stage 1 of DisPro: UniPro, one prompt-learning survival model per modality.

A frozen text encoder reads 2K class prompts per modality: K for patients who died ("... died:
high / mid-high / mid-low / low risk") and K for censored patients ("... alive: short … long
observation"), one per survival bin. CoOp-style learnable context vectors (one context of L
vectors per bin, shared by the bin's two prompts) replace L placeholder tokens right after
[CLS]; a learnable projection maps the encoder's [CLS] output to the prompt feature t (2, K, d).
Logits are scaled cosines ``exp(s)·<x̂, t̂>`` with a learnable s (init log(1/0.07)).

Which prompt set is used: the reference picks the set by the patient's true censorship, at
training *and* at prediction time, which leaks the label into predictions. Here a prediction
never reads the censorship: the deployed hazard logits are the mean of the two sets' logits
for each bin. Training optimizes that deployed path and adds, weighted by
``conditioned_weight``, the reference's censorship-selected term (training loss only).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustmm.data.batch import Batch
from robustmm.methods.dispro.text import FrozenTextModel
from robustmm.metrics.survival import concordance
from robustmm.models.encoders import masked_mean

#: how a modality is named in its prompts (anything else: the modality name itself)
MODALITY_DESCRIPTIONS = {
    "wsi": "whole slide image",
    "omics": "genomic pathways",
    "rnaseq": "gene expression",
    "cnv": "copy number variation",
    "mut": "somatic mutations",
    "clinical": "clinical variables",
}
_RISK_WORDS = {4: ("high", "mid-high", "mid-low", "low")}
_OBSERVATION_WORDS = {4: ("short", "mid-short", "mid-long", "long")}
INITIAL_LOGIT_SCALE = math.log(1 / 0.07)
MAX_LOGIT_SCALE = 100.0


def class_prompts(description: str, n_bins: int) -> list[str]:
    """2K prompt texts: K for deaths (bin 0 = earliest = highest risk), then K for censored."""
    risk = _RISK_WORDS.get(n_bins, tuple(f"level {n_bins - k} of {n_bins}" for k in range(n_bins)))
    observation = _OBSERVATION_WORDS.get(n_bins, tuple(f"length {k + 1} of {n_bins}" for k in range(n_bins)))
    return ([f"{description} of a patient who died: {w} risk" for w in risk]
            + [f"{description} of a patient who is alive: {w} observation" for w in observation])


def scaled_cosine(features: Tensor, prompts: Tensor, log_scale: Tensor) -> Tensor:
    """``exp(s)·cos`` between L2-normalized ``features`` (..., d) and ``prompts`` (2, K, d) -> (..., 2, K)."""
    scale = log_scale.exp().clamp(max=MAX_LOGIT_SCALE)
    return scale * torch.einsum("...d,ckd->...ck", F.normalize(features, dim=-1), prompts)


def top_j_mean(logits: Tensor, mask: Tensor, j: int) -> Tensor:
    """Per class, the mean of the ``j`` largest logits over observed tokens.

    ``logits`` (B, N, ...), ``mask`` (B, N). A sample with fewer than j observed tokens averages
    the ones it has; a sample without any gets 0.
    """
    b, n = mask.shape
    view = (b, n) + (1,) * (logits.dim() - 2)
    filled = logits.masked_fill(~mask.view(view), float("-inf"))
    top = filled.topk(min(j, n), dim=1).values
    real = torch.isfinite(top)
    return torch.where(real, top, torch.zeros_like(top)).sum(dim=1) / real.sum(dim=1).clamp_min(1)


class PromptLearner(nn.Module):
    """Learnable per-bin context + frozen text encoder + learnable projection -> (2, K, dim)."""

    def __init__(self, text: FrozenTextModel, prompts: list[str], n_bins: int, context_length: int, dim: int) -> None:
        super().__init__()
        self.text = text  # not an nn.Module: stays frozen and out of checkpoints
        self.n_bins = n_bins
        self.context_length = context_length
        tok = text.tokenizer
        rows = []
        for p in prompts:
            ids = tok(p, add_special_tokens=True)["input_ids"]
            rows.append(ids[:1] + [tok.pad_token_id or 0] * context_length + ids[1:])
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.as_tensor(r)
            mask[i, : len(r)] = True
        with torch.no_grad():
            embedded = text.word_embeddings(ids).cpu()
        self.register_buffer("embedded", embedded, persistent=False)
        self.register_buffer("attention", mask, persistent=False)
        self.context = nn.Parameter(torch.randn(n_bins, context_length, text.hidden_size) * 0.02)
        self.proj = nn.Linear(text.hidden_size, dim)

    def forward(self) -> Tensor:
        """Normalized prompt features (2, K, dim): [0] deaths, [1] censored."""
        self.text.to(self.context.device)
        context = self.context.repeat(2, 1, 1)  # prompt i uses the context of bin i mod K
        emb = torch.cat([self.embedded[:, :1], context.to(self.embedded.dtype),
                         self.embedded[:, 1 + self.context_length:]], dim=1)
        cls = self.text.encode(emb, self.attention)[:, 0]
        return F.normalize(self.proj(cls), dim=-1).view(2, self.n_bins, -1)


class UniPro(nn.Module):
    """The single-modality prompt model: tokens -> pooled/score -> (B, 2, K) hazard logits."""

    def __init__(self, tokens: nn.Module, prompts: PromptLearner, dim: int, top_j: int, dropout: float) -> None:
        super().__init__()
        self.tokens = tokens
        self.prompts = prompts
        self.top_j = top_j
        self.pool_items = tokens.kind == "items"
        if not self.pool_items:
            layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=2 * dim, dropout=dropout,
                                               batch_first=True, norm_first=True)
            self.mixer = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            self.out = nn.Linear(dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(INITIAL_LOGIT_SCALE))

    def forward(self, x: Tensor, observed: Tensor | None) -> Tensor:
        prompts = self.prompts()
        tok, mask = self.tokens(x, observed)
        if self.pool_items:  # per-token logits, then top-j mean per class
            return top_j_mean(scaled_cosine(tok, prompts, self.logit_scale), mask, self.top_j)
        pad = ~mask & mask.any(dim=1, keepdim=True)  # a sample with no observed token attends to all
        h = self.mixer(tok, src_key_padding_mask=pad)
        return scaled_cosine(self.out(masked_mean(h, mask)), prompts, self.logit_scale)


def deployed_logits(pair_logits: Tensor) -> Tensor:
    """(B, 2, K) -> (B, K): the censorship-free prediction (mean of the two prompt sets)."""
    return pair_logits.mean(dim=-2)


def conditioned_logits(pair_logits: Tensor, event: Tensor) -> Tensor:
    """(B, 2, K) -> (B, K) with the set chosen by the true censorship (training loss only)."""
    censored = (event < 0.5).long().to(pair_logits.device)
    return pair_logits[torch.arange(pair_logits.shape[0], device=pair_logits.device), censored]


class UniProStage(nn.Module):
    """Training module (see robustmm.engine.trainer) of one UniPro on the patients that have
    its modality; early stopping on the validation C-index of those patients."""

    monitor = "c_index"

    def __init__(self, unipro: UniPro, modality: str, task: Any, conditioned_weight: float) -> None:
        super().__init__()
        self.unipro = unipro
        self.modality = modality
        self.task = task
        self.conditioned_weight = conditioned_weight

    def _with_modality(self, batch: Batch) -> Batch | None:
        rows = batch.present[self.modality]
        return batch.select(rows) if bool(rows.any()) else None

    def training_step(self, batch: Batch, ctx: Any) -> Tensor | None:
        sub = self._with_modality(batch)
        if sub is None:
            return None
        pair = self.unipro(sub.inputs[self.modality], sub.feature_mask.get(self.modality))
        time, event = sub.target["time"], sub.target["event"]
        loss = self.task.survival_loss(deployed_logits(pair), time, event)
        if self.conditioned_weight > 0:
            loss = loss + self.conditioned_weight * self.task.survival_loss(conditioned_logits(pair, event), time, event)
        return loss

    @torch.no_grad()
    def validation_metrics(self, data: Any, ctx: Any) -> dict[str, float]:
        logits, times, events = [], [], []
        for batch in data.loader("val"):
            sub = self._with_modality(batch.to(ctx.device))
            if sub is None:
                continue
            logits.append(deployed_logits(self.unipro(sub.inputs[self.modality],
                                                      sub.feature_mask.get(self.modality))).float().cpu())
            times.append(sub.target["time"].cpu())
            events.append(sub.target["event"].cpu())
        if not logits:
            return {"c_index": float("nan"), "loss": float("nan")}
        all_logits = torch.cat(logits)
        target = {"time": torch.cat(times).numpy(), "event": torch.cat(events).numpy()}
        outputs = {k: v.numpy() for k, v in self.task.outputs(all_logits).items()}
        return {"c_index": concordance(target["time"], target["event"], outputs["risk"]),
                "loss": float(self.task.validation_loss(outputs, target))}


__all__ = ["UniPro", "UniProStage", "PromptLearner", "class_prompts", "deployed_logits", "top_j_mean",
           "scaled_cosine", "MODALITY_DESCRIPTIONS"]

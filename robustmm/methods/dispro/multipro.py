"""Stage 2 of DisPro: MultiPro, the multimodal prompt model that ships.

One sequence goes through the frozen pretrained transformer (the text encoder's stack):
``[CLS] + slots of modality 1 + slots of modality 2 + ...``. A present modality fills its slots
with its tokens (the UniPro token encoders, now trainable, through a linear adapter into the
encoder's width); when it has more tokens than slots, the tokens most similar to any of the
modality's prompt features are kept (label-free: the reference ranks by the true bin). A
missing modality fills all its slots with one learnable placeholder, and the encoder infers
them from what is present (modality-common knowledge).

Outputs: hazard logits from a readout (``readout``):

- ``cls``: the encoder's [CLS] output through an MLP (the paper's readout). With a frozen
  sentence encoder the [CLS] output barely varies across patients (measured on TCGA-BLCA: an
  across-patient sd of 0.002 against an RMS of 0.41), so the risk is almost constant;
- ``pooled``: per modality, the mean encoder output over its slots (observed tokens, or the
  placeholders of a missing modality), concatenated, through dropout and a linear layer;
- ``pooled_residual`` (default): as ``pooled``, plus a residual path from the tokens: each
  modality's pooled encoder output is added to the mean of its adapted input tokens, so patient
  signal reaches the head even where the frozen encoder washes it out.

And, for every modality, auxiliary hazard
logits from its slots scored against that modality's *frozen* UniPro prompt features and
top-j pooled (modality-specific knowledge distilled from stage 1). Training loss:
``L(h) + aux_weight · Σ_m 1[m missing] · L(h^m)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustmm.data.batch import Batch
from robustmm.methods.base import collect_predictions
from robustmm.methods.dispro.text import FrozenTextModel
from robustmm.methods.dispro.unipro import INITIAL_LOGIT_SCALE, deployed_logits, scaled_cosine, top_j_mean
from robustmm.metrics.survival import concordance
from robustmm.missing.scenarios import Scenario


class MultiPro(nn.Module):
    READOUTS = ("cls", "pooled", "pooled_residual")

    def __init__(self, tokenizers: dict[str, nn.Module], text: FrozenTextModel, n_bins: int, dim: int,
                 slots: int | None, top_j: int, dropout: float, readout: str = "pooled_residual",
                 item_slots: int = 16) -> None:
        super().__init__()
        width = text.hidden_size
        self.text = text  # not an nn.Module: frozen, outside checkpoints
        self.modalities = list(tokenizers)
        self.top_j = top_j
        self.tokens = nn.ModuleDict(tokenizers)
        if readout not in self.READOUTS:
            raise ValueError(f"readout must be one of {self.READOUTS}, got {readout!r}")
        self.readout = readout
        # slots None: every token of a grouped modality (omics columns/pathways) gets a slot, and
        # item modalities (WSI patches, sequence steps) get item_slots of their tokens
        self.slots = {m: min(slots if slots is not None else (item_slots if t.kind == "items" else int(t.num_tokens)),
                             int(t.num_tokens))
                      for m, t in tokenizers.items()}
        if 1 + sum(self.slots.values()) > text.max_positions:
            raise ValueError(f"{1 + sum(self.slots.values())} positions exceed the encoder's {text.max_positions}")
        self.adapters = nn.ModuleDict({m: nn.Linear(dim, width) for m in self.modalities})
        self.placeholders = nn.ParameterDict({m: nn.Parameter(torch.randn(width) * 0.02) for m in self.modalities})
        self.type_embeddings = nn.ParameterDict({m: nn.Parameter(torch.zeros(width)) for m in self.modalities})
        self.cls = nn.Parameter(torch.randn(width) * 0.02)
        if readout == "cls":
            self.head = nn.Sequential(nn.Linear(width, width // 2), nn.GELU(), nn.Dropout(dropout),
                                      nn.Linear(width // 2, n_bins))
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width * len(self.modalities), n_bins))
        self.aux_proj = nn.ModuleDict({m: nn.Linear(width, dim) for m in self.modalities})
        self.aux_logit_scale = nn.ParameterDict({m: nn.Parameter(torch.tensor(INITIAL_LOGIT_SCALE))
                                                 for m in self.modalities})
        for m in self.modalities:  # frozen UniPro prompt features, set by load_unipro
            self.register_buffer(f"prompt_{m}", torch.zeros(2, n_bins, dim))

    def prompt_features(self, m: str) -> Tensor:
        return getattr(self, f"prompt_{m}")

    @torch.no_grad()
    def load_unipro(self, unipros: dict[str, nn.Module]) -> None:
        """Start from the trained UniPros: their token encoders (trainable from here on), their
        prompt features (frozen) and their logit scales."""
        for m, uni in unipros.items():
            self.tokens[m].load_state_dict(uni.tokens.state_dict())
            self.prompt_features(m).copy_(uni.prompts().detach().to(self.prompt_features(m).device))
            self.aux_logit_scale[m].copy_(uni.logit_scale.detach())

    def _select(self, m: str, tok: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Keep ``slots[m]`` tokens: all of them if they fit, else the most prompt-like observed ones."""
        n_slots = self.slots[m]
        if tok.shape[1] <= n_slots:
            return tok, mask
        sims = torch.einsum("bnd,ckd->bnck", F.normalize(tok, dim=-1), self.prompt_features(m)).flatten(2)
        score = sims.amax(dim=2).masked_fill(~mask, float("-inf"))
        idx = score.topk(n_slots, dim=1).indices
        return tok.gather(1, idx.unsqueeze(-1).expand(-1, -1, tok.shape[-1])), mask.gather(1, idx)

    def forward(self, batch: Batch) -> dict[str, Any]:
        self.text.to(self.cls.device)
        b = batch.size
        parts = [self.cls.view(1, 1, -1).expand(b, 1, -1)]
        masks = [torch.ones(b, 1, dtype=torch.bool, device=self.cls.device)]
        spans: dict[str, tuple[int, int]] = {}
        inputs: dict[str, Tensor] = {}
        start = 1
        for m in self.modalities:
            present = batch.present[m].to(self.cls.device)
            tok, mask = self.tokens[m](batch.inputs[m], batch.feature_mask.get(m))
            tok, mask = self._select(m, tok, mask)
            h = self.adapters[m](tok)
            h = torch.where(present.view(b, 1, 1), h, self.placeholders[m].to(h.dtype).expand_as(h))
            mask = mask | ~present.view(b, 1)  # placeholders are attended: the encoder infers them
            parts.append(h + self.type_embeddings[m].to(h.dtype))
            masks.append(mask)
            inputs[m] = h
            spans[m] = (start, start + h.shape[1])
            start += h.shape[1]
        mask_all = torch.cat(masks, dim=1)
        out = self.text.encode(torch.cat(parts, dim=1), mask_all)
        if self.readout == "cls":
            logits = self.head(out[:, 0])
        else:
            pooled = []
            for m, (lo, hi) in spans.items():
                w = mask_all[:, lo:hi].to(out.dtype).unsqueeze(-1)
                feat = (out[:, lo:hi] * w).sum(1) / w.sum(1).clamp_min(1.0)
                if self.readout == "pooled_residual":
                    feat = feat + (inputs[m].to(out.dtype) * w).sum(1) / w.sum(1).clamp_min(1.0)
                pooled.append(feat)
            logits = self.head(torch.cat(pooled, dim=-1))
        aux = {}
        for m, (lo, hi) in spans.items():
            slot_logits = scaled_cosine(self.aux_proj[m](out[:, lo:hi]), self.prompt_features(m),
                                        self.aux_logit_scale[m])
            slot_mask = torch.ones(b, hi - lo, dtype=torch.bool, device=out.device)
            aux[m] = deployed_logits(top_j_mean(slot_logits, slot_mask, self.top_j))
        return {"logits": logits, "aux": aux}


class MultiProStage(nn.Module):
    """Training module of MultiPro: survival loss on [CLS] plus the auxiliary losses of the
    modalities each patient is missing (naturally, by the training-missing setting, or by the
    optional ``dropout`` scenario). Early stopping on the validation C-index."""

    monitor = "c_index"
    validates_under_scenarios = True  # training.selection.scenarios (robustmm.engine.selection)

    def __init__(self, multipro: MultiPro, task: Any, specs: dict, seed: int, aux_weight: float,
                 dropout: Scenario | None) -> None:
        super().__init__()
        self.multipro = multipro
        self.task = task
        self.specs = specs
        self.seed = seed
        self.aux_weight = aux_weight
        self.dropout = dropout

    def training_step(self, batch: Batch, ctx: Any) -> Tensor:
        if self.dropout is not None:
            batch = self.dropout.apply(batch, self.specs, self.seed, ctx.epoch)
        out = self.multipro(batch)
        time, event = batch.target["time"], batch.target["event"]
        loss = self.task.survival_loss(out["logits"], time, event)
        if self.aux_weight > 0:
            for m, aux in out["aux"].items():
                missing = ~batch.present[m].to(aux.device)
                if bool(missing.any()):
                    share = missing.float().mean()  # = (1/B) Σ_i 1[m missing for i] · L_i
                    loss = loss + self.aux_weight * share * self.task.survival_loss(
                        aux[missing], time[missing.to(time.device)], event[missing.to(event.device)])
        return loss

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        return self.task.outputs(self.multipro(batch)["logits"])

    @torch.no_grad()
    def validation_metrics(self, data: Any, ctx: Any) -> dict[str, float]:
        preds = collect_predictions(self.predict, data, "val", ctx.device)
        return {"c_index": concordance(preds.target["time"], preds.target["event"], preds.outputs["risk"]),
                "loss": float(self.task.validation_loss(preds.outputs, preds.target))}

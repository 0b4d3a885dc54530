"""The CIDer network: projection, WSAM (unaligned data), GRUs, MCT, attention pooling, a
residual MLP, the multimodal causal module (MCM) and reconstruction heads.

Missing positions are filled inside the network (RMFM, docs/protocols/rmfm.md): a dropped text token
id becomes [UNK], a dropped text feature vector a learned "unknown" vector, a dropped audio or
video frame zeros; padding is left as it is. MACI's counterfactual text replaces every observed
text token that is neither special nor a bias word by [MASK] (ids) or a learned mask vector
(features).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustmm.data.batch import Batch, ModalitySpec
from robustmm.methods.cider.layers import AttentionPool, CompositeTransformer, WordAlignedAttention

MODALITIES = ("text", "audio", "vision")
MASK_TOKEN_ID = 103  # BERT [MASK]
#: token ids a counterfactual keeps besides bias words: [PAD], [UNK], [CLS], [SEP], [MASK]
BERT_SPECIAL_IDS = (0, 100, 101, 102, 103)


@dataclass
class CIDerInputs:
    """Network inputs after filling: text ids (B, L) or features (B, L, F), audio/vision
    (B, T, F), and per modality the real positions and the dropped ones (B, T)."""

    text: Tensor
    audio: Tensor
    vision: Tensor
    valid: dict[str, Tensor]
    dropped: dict[str, Tensor]


def _mlp(in_dim: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))


class CausalModule(nn.Module):
    """MCM, backdoor adjustment over class prototypes z_i:

        P(Y | do(X)) = sum_i P(z_i) softmax(f_i([r'; g(z_i)]))

    z_i = per-class mean of the pooled [text; audio; vision] input features over the training
    set, g = one small MLP per modality. Training uses the per-class prototypes and the
    training-set class priors; evaluation uses the mean prototype for every i and a uniform
    prior, which removes the training label prior (label bias). Returns log-probabilities.
    """

    def __init__(self, rep_dim: int, dim: int, feature_dims: dict[str, int], num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.encoders = nn.ModuleDict({m: _mlp(feature_dims[m], dim) for m in MODALITIES})
        self.classifiers = nn.ModuleList([nn.Linear(rep_dim + 3 * dim, num_classes) for _ in range(num_classes)])
        self.register_buffer("priors", torch.full((num_classes,), 1.0 / num_classes))

    def forward(self, rep: Tensor, prototypes: dict[str, Tensor]) -> Tensor:
        if self.training:
            protos, prior = prototypes, self.priors
        else:
            protos = {m: p.mean(dim=0, keepdim=True).expand_as(p) for m, p in prototypes.items()}
            prior = torch.full_like(self.priors, 1.0 / self.num_classes)
        encoded = torch.cat([self.encoders[m](protos[m].to(rep.dtype)) for m in MODALITIES], dim=-1)  # (C, 3d)
        probs = rep.new_zeros((rep.shape[0], self.num_classes), dtype=torch.float32)
        for i, classifier in enumerate(self.classifiers):
            logits = classifier(torch.cat([rep, encoded[i].expand(rep.shape[0], -1)], dim=-1))
            probs = probs + prior[i] * torch.softmax(logits.float(), dim=-1)
        return torch.log(probs.clamp_min(1e-12))


def token_ids(text) -> tuple[int, int]:
    """(unknown-word id, padding id) of a text modality spec; BERT's 100 and 0 when it names none."""
    return (100 if text.unk_id is None else text.unk_id), (0 if text.pad_id is None else text.pad_id)


class CIDerNet(nn.Module):
    """One network for both MSSD views; ``forward`` returns ``log_probs`` (B, C), ``rep`` (the
    residual-MLP output r', B x 3d), ``scores`` (raw MCT scores of the last layer, B x H x N x N),
    ``key_valid`` (B, N), ``text_context`` (the text GRU states, B x L x d) and, with
    ``reconstruct``, ``recon`` per modality."""

    def __init__(self, specs: dict[str, ModalitySpec], num_classes: int, hidden: int = 32, layers: int = 3,
                 heads: int = 8, dropout: float = 0.1, token_dim: int = 64, vocab_size: int = 30522,
                 attn_dropout: float = 0.0, text_recon_target: str = "input") -> None:
        super().__init__()
        if text_recon_target not in ("input", "contextual"):
            raise ValueError(f"text_recon_target must be 'input' or 'contextual', got {text_recon_target!r}")
        self.specs = {m: specs[m] for m in MODALITIES}
        #: MSSD's text reconstruction target: the text input features (token embeddings for ids) or
        #: the complete view's contextual text states (the text GRU outputs, width ``hidden``), the
        #: analogue of the reference's BERT outputs when text comes as ids
        self.text_recon_target = text_recon_target
        #: what replaces the non-bias words of MACI's counterfactual text: "mask" ([MASK] / the
        #: learned mask vector, the reference) or "unk" (what RMFM fills dropped words with, which
        #: a network with a text embedding learned from scratch has been trained on; its [MASK]
        #: embedding is never trained). Set by the method; a plain attribute, not saved.
        self.counterfactual_fill = "mask"
        text = self.specs["text"]
        self.text_ids = text.kind == "tokens"
        self.unk_id, self.pad_id = token_ids(text)
        #: ids a counterfactual keeps and bias-word mining skips: BERT's and the dataset's own
        self.special_ids = tuple(sorted({*BERT_SPECIAL_IDS, *text.special_ids, self.unk_id, self.pad_id}))
        if self.text_ids:
            self.embedding = nn.Embedding(vocab_size, token_dim, padding_idx=self.pad_id)
            text_dim = token_dim
        else:
            text_dim = text.shape[-1]
            self.unknown_vector = nn.Parameter(torch.zeros(text_dim))
            self.mask_vector = nn.Parameter(torch.zeros(text_dim))
        self.input_dims = {"text": text_dim, "audio": self.specs["audio"].shape[-1],
                           "vision": self.specs["vision"].shape[-1]}
        self.lengths = {m: self.specs[m].shape[0] for m in MODALITIES}
        # aligned files have one audio/vision frame per token; otherwise WSAM resamples to the text
        self.aligned = self.lengths["audio"] == self.lengths["vision"] == self.lengths["text"]

        self.project = nn.ModuleDict({m: nn.Conv1d(self.input_dims[m], hidden, kernel_size=1, bias=False)
                                      for m in MODALITIES})
        if not self.aligned:
            self.wsam = nn.ModuleDict({m: WordAlignedAttention(hidden) for m in ("audio", "vision")})
        self.grus = nn.ModuleDict({m: nn.GRU(hidden, hidden, batch_first=True) for m in MODALITIES})
        self.mct = CompositeTransformer(hidden, heads, layers, dropout, attn_dropout)
        self.pools = nn.ModuleDict({m: AttentionPool(hidden) for m in MODALITIES})
        rep_dim = 3 * hidden
        self.rep_in = nn.Linear(rep_dim, rep_dim)
        self.rep_out = nn.Linear(rep_dim, rep_dim)
        self.dropout = nn.Dropout(dropout)
        self.causal = CausalModule(rep_dim, hidden, {"text": text_dim, **{m: self.input_dims[m] for m in
                                                                          ("audio", "vision")}}, num_classes)
        recon_dims = dict(self.input_dims, text=hidden if text_recon_target == "contextual" else text_dim)
        self.recon = nn.ModuleDict({m: nn.Linear(hidden, recon_dims[m]) for m in MODALITIES})
        if not self.aligned:
            self.recon_time = nn.ModuleDict({m: nn.Linear(self.lengths["text"], self.lengths[m])
                                             for m in ("audio", "vision")})
        # prototypes: per-class means of pooled input features (set from the training split)
        for m in ("audio", "vision"):
            self.register_buffer(f"prototype_{m}", torch.zeros(num_classes, self.input_dims[m]))
        if self.text_ids:
            # per-class token frequencies: the text prototype is their mix of the current embeddings
            self.register_buffer("prototype_text_tokens", torch.zeros(num_classes, vocab_size))
        else:
            self.register_buffer("prototype_text", torch.zeros(num_classes, text_dim))
        # MACI's bias words (set with the statistics; saved by the method, not as a buffer,
        # because their number is only known after mining)
        self.bias_word_ids = torch.zeros(0, dtype=torch.long)

    # ------------------------------------------------------------------ inputs
    def prepare(self, batch: Batch, counterfactual: bool = False) -> CIDerInputs:
        """Fill dropped positions (RMFM) and, for MACI, build the counterfactual text."""
        valid = {m: batch.valid[m].to(torch.bool) for m in MODALITIES}
        observed = {m: batch.feature_mask.get(m, batch.valid[m]).to(torch.bool) for m in MODALITIES}
        dropped = {m: valid[m] & ~observed[m] for m in MODALITIES}
        text = batch.inputs["text"]
        if counterfactual:
            keep = self.counterfactual_keep(self.token_ids(batch))
            masked = valid["text"] & observed["text"] & ~keep
        if self.text_ids:
            text = torch.where(dropped["text"], torch.full_like(text, self.unk_id), text.long())
            if counterfactual:
                fill = MASK_TOKEN_ID if self.counterfactual_fill == "mask" else self.unk_id
                text = torch.where(masked, torch.full_like(text, fill), text)
        else:
            text = torch.where(dropped["text"].unsqueeze(-1), self.unknown_vector.to(text.dtype), text)
            if counterfactual:
                vector = self.mask_vector if self.counterfactual_fill == "mask" else self.unknown_vector
                text = torch.where(masked.unsqueeze(-1), vector.to(text.dtype), text)
        audio, vision = (torch.where(dropped[m].unsqueeze(-1), torch.zeros_like(batch.inputs[m]), batch.inputs[m])
                         for m in ("audio", "vision"))
        return CIDerInputs(text, audio, vision, valid, dropped)

    def token_ids(self, batch: Batch) -> Tensor:
        """Text token ids: the input itself, or ``meta['token_ids']`` next to text features."""
        if self.text_ids:
            return batch.inputs["text"].long()
        ids = batch.meta.get("token_ids")
        if ids is None:
            raise KeyError("MACI needs the text token ids next to the text features (meta['token_ids']; the MMSA "
                           "loader adds them when the file has 'text_bert'); set 'maci: false' for files without them")
        return torch.stack(list(ids)).to(batch.inputs["text"].device).long()

    def counterfactual_keep(self, ids: Tensor) -> Tensor:
        """Positions a counterfactual text keeps: special tokens and bias words."""
        keep = torch.isin(ids, torch.tensor(self.special_ids, device=ids.device))
        if self.bias_word_ids.numel():
            keep |= torch.isin(ids, self.bias_word_ids.to(ids.device))
        return keep

    def recon_text_target(self, inputs: "CIDerInputs", out: dict[str, Tensor]) -> Tensor:
        """MSSD's text reconstruction target from a complete-view forward (detached)."""
        if self.text_recon_target == "contextual":
            return out["text_context"].detach()
        return self.text_features(inputs.text).detach()

    def text_features(self, text: Tensor) -> Tensor:
        """Text as feature vectors (B, L, F): embeddings of ids, or the features themselves."""
        return self.embedding(text) if self.text_ids else text.float()

    # ------------------------------------------------------------------ prototypes
    def prototypes(self) -> dict[str, Tensor]:
        if self.text_ids:
            text = self.prototype_text_tokens @ self.embedding.weight
        else:
            text = self.prototype_text
        return {"text": text, "audio": self.prototype_audio, "vision": self.prototype_vision}

    @torch.no_grad()
    def set_statistics(self, prototypes: dict[str, Tensor], priors: Tensor, bias_word_ids: Tensor) -> None:
        """Training-split statistics: per-class prototypes (for token ids: per-class token
        frequencies), class priors and MACI's bias-word ids."""
        for m, value in prototypes.items():
            name = "prototype_text_tokens" if (m == "text" and self.text_ids) else f"prototype_{m}"
            getattr(self, name).copy_(value)
        self.causal.priors.copy_(priors)
        self.bias_word_ids = bias_word_ids.detach().to("cpu", torch.long)

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: CIDerInputs, reconstruct: bool = False, return_branch_weights: bool = False
                ) -> dict[str, Tensor]:
        text_feats = self.text_features(inputs.text)
        raw = {"text": text_feats, "audio": inputs.audio.float(), "vision": inputs.vision.float()}
        proj = {m: self.project[m](raw[m].transpose(1, 2)).transpose(1, 2) for m in MODALITIES}
        valid = dict(inputs.valid)
        if not self.aligned:
            for m in ("audio", "vision"):
                proj[m] = self.wsam[m](proj["text"], proj[m], valid["text"], valid[m])
                valid[m] = valid["text"]
        hidden = {m: self.grus[m](proj[m])[0] for m in MODALITIES}
        outs, scores, branch_weights = self.mct([hidden[m] for m in MODALITIES], [valid[m] for m in MODALITIES],
                                                return_branch_weights)
        seq = dict(zip(MODALITIES, outs))
        pooled = torch.cat([self.pools[m](seq[m], valid[m]) for m in MODALITIES], dim=-1)
        rep = pooled + self.rep_out(self.dropout(F.relu(self.rep_in(pooled))))
        result = {"log_probs": self.causal(rep, self.prototypes()), "rep": rep, "scores": scores[-1],
                  "key_valid": torch.cat([valid[m] for m in MODALITIES], dim=1), "text_context": hidden["text"]}
        if return_branch_weights:
            result["branch_weights"] = branch_weights
        if reconstruct:
            result["recon"] = self.reconstruct(seq)
        return result

    def reconstruct(self, seq: dict[str, Tensor]) -> dict[str, Tensor]:
        """Low-level features back from the MCT outputs (unaligned audio/vision first mapped
        from the text length back to their own length)."""
        out = {"text": self.recon["text"](seq["text"])}
        for m in ("audio", "vision"):
            h = seq[m]
            if not self.aligned:
                h = F.relu(self.recon_time[m](h.transpose(1, 2))).transpose(1, 2)
            out[m] = self.recon[m](h)
        return out

"""``method: cider`` — CIDer (robust emotion recognition under missing modalities and
distribution shift): the CIDer network trained with MSSD, MACI at inference.

Study options (all optional)::

    - name: cider
      hidden: 32            # d
      layers: 3             # MCT layers
      heads: 8
      dropout: 0.1          # residual, feed-forward and output dropout
      attn_dropout: 0.0     # on the MCT attention weights
      token_dim: 64         # token-id text: size of the learned token embedding
      vocab_size: 30522     # token-id text: every id must be below it (checked before training)
      mssd: true            # false: no L_rep / L_attn / L_rec (both steps kept)
      lambda_rep: 0.5
      lambda_attn: 0.1
      lambda_rec: 0.6
      text_recon_target: input   # or contextual: the complete view's text GRU states (for ids)
      maci: true            # false: no counterfactual correction (tau = 0)
      counterfactual_fill: mask   # or unk: RMFM's missing-word fill (text embedding learned from scratch)
      bias_top_k: 100       # bias-word dictionary size
      bias_cv: 0.1          # minimum coefficient of variation over classes
      bias_cv_classes: reference  # 3 classes: CV over negative/positive only (the reference); or all
      tau_grid: [0.0, 0.1, ..., 3.0]
      tau_rates: [0.0]      # RMFM rates of the validation split on which tau is chosen
      epochs: null          # null: training.epochs
      lr: null              # null: training.lr

Needs the modalities ``text`` (token ids or BERT features), ``audio`` and ``vision``
(sequences) and a classification task (e.g. MMSA ``target: class3`` or ``class7``).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import Tensor

from robustmm.data.batch import Batch
from robustmm.errors import ConfigError
from robustmm.methods.base import Method, MethodContext, MethodOptions, collect_predictions, register_method
from robustmm.methods.cider.maci import DEFAULT_TAU_GRID, BiasWords, best_tau, mine_bias_words, reference_cv_classes
from robustmm.methods.cider.mssd import MSSDModule, TwoStepData
from robustmm.io import save_figure
from robustmm.methods.cider.network import MASK_TOKEN_ID, MODALITIES, CIDerNet, token_ids
from robustmm.methods.task import task_adapter
from robustmm.missing.scenarios import RMFM


class CIDerOptions(MethodOptions):
    hidden: int = Field(32, ge=4)
    layers: int = Field(3, ge=1)
    heads: int = Field(8, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    attn_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    #: token-id text only: size of the learned token embedding and of the vocabulary
    token_dim: int = Field(64, ge=4)
    vocab_size: int = Field(30522, ge=2)
    mssd: bool = True
    lambda_rep: float = Field(0.5, ge=0.0)
    lambda_attn: float = Field(0.1, ge=0.0)
    lambda_rec: float = Field(0.6, ge=0.0)
    #: MSSD's text reconstruction target: "input" (text features; the learned token embeddings
    #: for ids) or "contextual" (the complete view's contextual text states, like the reference's
    #: BERT outputs; useful when text comes as ids)
    text_recon_target: Literal["input", "contextual"] = "input"
    maci: bool = True
    #: MACI's counterfactual fill: "mask" ([MASK], the reference) or "unk" (RMFM's missing-word
    #: fill, which a text embedding learned from scratch has seen in training; see CIDerNet)
    counterfactual_fill: Literal["mask", "unk"] = "mask"
    bias_cv: float = Field(0.1, ge=0.0)
    #: classes the CV is taken over: "reference" (negative and positive for the 3-class task,
    #: every class otherwise) or "all"
    bias_cv_classes: Literal["reference", "all"] = "reference"
    bias_top_k: int = Field(100, ge=1)
    tau_grid: list[Annotated[float, Field(ge=0.0)]] = Field(default_factory=lambda: list(DEFAULT_TAU_GRID),
                                                           min_length=1)
    #: RMFM rates of the validation split on which tau is chosen
    tau_rates: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=lambda: [0.0], min_length=1)
    epochs: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> "CIDerOptions":
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        return self


@register_method("cider")
class CIDer(Method):
    Options = CIDerOptions

    def __init__(self, options: CIDerOptions, context: MethodContext) -> None:
        super().__init__(options, context)
        specs = context.modalities
        self.task = task_adapter(context.task)
        self.num_classes = context.task.num_classes
        o = options
        self.net = CIDerNet(specs, self.num_classes, o.hidden, o.layers, o.heads, o.dropout, o.token_dim, o.vocab_size,
                            o.attn_dropout, o.text_recon_target)
        self.net.counterfactual_fill = o.counterfactual_fill
        self.tau = 0.0
        self.tau_curve: dict[float, float] = {}
        self.bias_words = BiasWords([], {}, {})

    @classmethod
    def check_setup(cls, options: CIDerOptions, specs: dict[str, Any], task: Any, method_id: str) -> None:
        """CIDer's network is built for text, audio and vision sequences and a classification head."""
        missing = [m for m in MODALITIES if m not in specs]
        if missing or len(specs) != 3:
            raise ConfigError(f"method '{method_id}' (cider) needs exactly the modalities text, audio and "
                              f"vision; the data have {sorted(specs)}")
        if specs["text"].kind not in ("tokens", "sequence") or any(specs[m].kind != "sequence"
                                                                   for m in ("audio", "vision")):
            raise ConfigError(f"method '{method_id}' (cider): text must be token ids or a feature sequence "
                              f"and audio/vision sequences (got {[specs[m].kind for m in MODALITIES]})")
        if task.kind not in ("binary", "multiclass"):
            raise ConfigError(f"method '{method_id}' (cider) is a classifier (its causal module averages over "
                              f"classes); the task is {task.kind!r}. For MMSA data use "
                              "data.options.target: class3 or class7")

    @classmethod
    def check_data(cls, options: CIDerOptions, data: Any, method_id: str) -> None:
        """The modalities and the task (see :meth:`check_setup`); for token-id text,
        every id the embedding looks up (the data's, the unknown-word fill, the counterfactual
        [MASK]) must be below ``vocab_size``: a larger one stops training midway with an IndexError."""
        super().check_data(options, data, method_id)
        text = data.modalities["text"]
        if text.kind != "tokens":
            return
        dataset = getattr(data, "dataset", None)
        largest = (dataset.largest_token_id() if hasattr(dataset, "largest_token_id") else
                   max((int(batch.inputs["text"].max()) for split in ("train", "val", "test")  # any other dataset
                        for batch in data.loader(split)), default=-1))
        unk_id, pad_id = token_ids(text)
        needed = {"the largest token id of the data": largest, "the unknown-word id (data.options.unk_id)": unk_id,
                  "the padding id (data.options.pad_id)": pad_id}
        if options.maci and options.counterfactual_fill == "mask":
            needed["[MASK], MACI's counterfactual fill"] = MASK_TOKEN_ID
        what, top = max(needed.items(), key=lambda kv: kv[1])
        if top >= options.vocab_size:
            data_max = "" if top == largest else f" (the data's largest id is {largest})"
            raise ConfigError(f"method '{method_id}' (cider): option vocab_size is {options.vocab_size}, but "
                              f"{what} is {top}{data_max}; the token embedding needs vocab_size above every id: "
                              f"set vocab_size to at least {top + 1} (30522 for BERT ids)")

    # ------------------------------------------------------------------ training
    def fit(self, data: Any, trainer: Any) -> None:
        self.task.fit(data)
        self._training_statistics(data)
        module = MSSDModule(self.net, self.task, self.context, RMFM(name="mssd_training", training=True),
                            self.options.lambda_rep, self.options.lambda_attn, self.options.lambda_rec,
                            distill=self.options.mssd)
        trainer.fit(module, TwoStepData(data), stage=self.context.method_id, epochs=self.options.epochs,
                    lr=self.options.lr)
        self.to(trainer.device)
        self.eval()
        if self.options.maci:
            self._choose_tau(data)

    @torch.no_grad()
    def _training_statistics(self, data: Any) -> None:
        """Class priors, per-class prototypes and (MACI) bias words, from the training split only."""
        c = self.num_classes
        sums = {m: torch.zeros(c, self.net.input_dims[m]) for m in ("audio", "vision")}
        weights = {m: torch.zeros(c) for m in ("audio", "vision")}
        if self.net.text_ids:
            sums["text"] = torch.zeros(c, self.options.vocab_size)
        else:
            sums["text"] = torch.zeros(c, self.net.input_dims["text"])
        weights["text"] = torch.zeros(c)
        class_counts = torch.zeros(c)
        ids, valid, labels = [], [], []
        for batch in data.loader("train"):
            y = batch.target.long()
            class_counts += torch.bincount(y, minlength=c).float()
            for m in MODALITIES:
                real = batch.valid[m].float()
                n_real = real.sum(1)
                has = (n_real > 0).float()
                if m == "text" and self.net.text_ids:
                    # each sample's token distribution over its real tokens
                    tokens = batch.inputs["text"].long()
                    share = real / n_real.clamp_min(1).unsqueeze(1)
                    sums["text"].index_put_((y.unsqueeze(1).expand_as(tokens), tokens), share, accumulate=True)
                else:
                    pooled = (batch.inputs[m].float() * real.unsqueeze(-1)).sum(1) / n_real.clamp_min(1).unsqueeze(1)
                    sums[m].index_add_(0, y, pooled)
                weights[m].index_add_(0, y, has)
            if self.options.maci:
                ids.append(self.net.token_ids(batch).cpu().numpy())
                valid.append(batch.valid["text"].cpu().numpy())
                labels.append(y.cpu().numpy())
        prototypes = {m: sums[m] / weights[m].clamp_min(1).unsqueeze(1) for m in MODALITIES}
        priors = class_counts / class_counts.sum().clamp_min(1)
        if self.options.maci:
            cv_classes = reference_cv_classes(c) if self.options.bias_cv_classes == "reference" else None
            self.bias_words = mine_bias_words(np.concatenate(ids), np.concatenate(valid), np.concatenate(labels), c,
                                              self.options.bias_cv, self.options.bias_top_k, self.net.special_ids,
                                              cv_classes)
        self.net.set_statistics(prototypes, priors, torch.tensor(self.bias_words.ids, dtype=torch.long))

    def _factual_and_counterfactual(self, batch: Batch) -> dict[str, Tensor]:
        factual = self.net(self.net.prepare(batch))["log_probs"]
        counterfactual = self.net(self.net.prepare(batch, counterfactual=True))["log_probs"]
        return {"factual": factual, "counterfactual": counterfactual}

    @torch.no_grad()
    def _choose_tau(self, data: Any) -> None:
        """tau maximising the task's primary metric on the validation split (mean over the
        ``tau_rates`` RMFM rates), never on the test split."""
        runs = []
        for rate in self.options.tau_rates:
            scenario = RMFM(name=f"tau_selection@{rate:g}", rate=rate, rate_value=rate) if rate > 0 else None
            runs.append(collect_predictions(self._factual_and_counterfactual, data, "val", self.device, scenario,
                                            self.context.seed))
        metric = self.task.primary_metric
        curve = {}
        for tau in self.options.tau_grid:
            values = []
            for preds in runs:
                logits = torch.from_numpy(preds.outputs["factual"] - tau * preds.outputs["counterfactual"])
                outputs = {k: v.numpy() for k, v in self.task.outputs(logits).items()}
                values.append(self.task.metrics(outputs, preds.target, preds.meta)[metric])
            curve[float(tau)] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
        self.tau_curve = curve
        self.tau = best_tau(curve)

    # ------------------------------------------------------------------ inference
    def predict(self, batch: Batch) -> dict[str, Tensor]:
        log_probs = self.net(self.net.prepare(batch))["log_probs"]
        if self.options.maci and self.tau > 0:
            log_probs = log_probs - self.tau * self.net(self.net.prepare(batch, counterfactual=True))["log_probs"]
        return self.task.outputs(log_probs)

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "task": self.task.state_dict(), "tau": self.tau,
                "tau_curve": self.tau_curve, "bias_words": self.bias_words.ids,
                "bias_counts": self.bias_words.counts, "bias_cv": self.bias_words.cv}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.task.load_state_dict(state["task"])
        self.tau, self.tau_curve = float(state["tau"]), dict(state["tau_curve"])
        self.bias_words = BiasWords(list(state["bias_words"]), dict(state["bias_counts"]), dict(state["bias_cv"]))
        self.net.bias_word_ids = torch.tensor(self.bias_words.ids, dtype=torch.long)

    # ------------------------------------------------------------------ report
    def report_items(self) -> dict[str, Any]:
        items: dict[str, Any] = {"mssd": self.options.mssd, "maci": self.options.maci}
        if self.options.maci:
            items.update(tau=self.tau, tau_selected_on=f"validation split, RMFM rates {self.options.tau_rates}",
                         tau_metric=self.task.primary_metric, bias_words=len(self.bias_words.ids),
                         most_frequent_bias_words=self.bias_words.describe(10))
        return items

    def report_sections(self, data: Any, plots_dir: Path) -> list[tuple[str, str]]:
        if not self.options.maci or not self.tau_curve:
            return []
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        taus = sorted(self.tau_curve)
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(taus, [self.tau_curve[t] for t in taus], marker=".")
        ax.axvline(self.tau, color="tab:red", linestyle="--", label=f"chosen tau = {self.tau:g}")
        ax.set_xlabel("tau (counterfactual strength)")
        ax.set_ylabel(f"validation {self.task.primary_metric}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        name = f"{self.context.method_id}_tau.png"
        fig.tight_layout()
        save_figure(fig, plots_dir / name, dpi=110)
        words = ", ".join(str(w["token_id"]) for w in self.bias_words.describe(10))
        body = (f"<p>MACI: tau = {self.tau:g}, chosen on the validation split (RMFM rates "
                f"{html.escape(str(self.options.tau_rates))}); {len(self.bias_words.ids)} bias words mined from the "
                f"training split (most frequent ids: {html.escape(words)}).</p>"
                f'<img src="plots/{html.escape(name)}" alt="validation metric vs tau">')
        return [(f"{self.context.method_id}: counterfactual strength", body)]

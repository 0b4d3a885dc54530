"""MMANet: margin-aware distillation (MAD) and modality-aware regularization (MAR)
(docs/protocols/mmanet.md; Wei et al., CVPR 2023), on the trio of :mod:`robustmm.methods.trio`.

Training (one stage after the teacher):

* the deployment network (student) sees exactly ``dropout_baseline``'s training inputs (options
  ``dropout`` / ``keep_complete``, same defaults, same function
  :func:`robustmm.methods.baseline.modality_dropout`): with probability 0.3 its natural
  modalities, else a uniformly drawn non-empty subset of them, fresh every epoch. So MMANet and
  ``dropout_baseline`` differ only by MAD and MAR;
* common random numbers (option ``random_streams``, default ``dropout_baseline``): the student's
  initialisation and every epoch's torch seed (network dropout) are those the study gives the
  ``dropout_baseline`` run, so with ``lambda_mad = lambda_mar = 0`` MMANet trains exactly
  ``dropout_baseline``'s network, step for step, and a paired difference between the two measures
  MAD + MAR alone, not two different random draws;
* the frozen teacher (option ``teacher``; default: of the study's ``complete_only`` and
  ``dropout_baseline`` networks, the one with the higher primary metric on the validation
  subjects with every modality; ``independent``: a second dropout-trained network, fitted here
  with its own random streams and mask seed, so it is not the student's own trajectory) sees the
  natural input, and MAD uses only the samples whose
  natural input is complete (the teacher never learnt to do without a modality). Its validation
  score on complete subjects and the student's at the end of warm-up are reported; with
  ``require_better_teacher`` (default) MAD stays off unless the teacher's is higher;
* ``lambda_mad`` is relative to the task loss by default (``mad_scale: task_loss``): the MAD weight
  is lambda_mad x (mean task loss / mean MAD) of the last warm-up epoch, MAD being measured without
  gradient during warm-up; warm-up epochs are never selected by early stopping;
* warm-up epochs: task loss only. After each warm-up epoch the deployment network is evaluated
  on the *validation* split under every candidate subset and the complete set, and a distance
  d_c per candidate is accumulated; at the end of warm-up the weak set W is the argmax
  combination (classification adds its single-modality sub-subsets);
* afterwards: ``L = task loss + λ_MAD · MAD(student, teacher) + λ_MAR · L_MAR`` with
  ``L_MAR = (1/B) Σ_i 1[subset_i ∈ W] · task loss(regularizer(x_i), y_i)``.

The task decides what is distilled and how subsets are ranked:

* distilled features: the trunk features for vector outputs, the fused maps of every scale
  (pooled voxels as samples) for dense segmentation outputs (:func:`trio.margin_aware_distillation`);
* mining criterion ``label_kl`` (classification): d_c += KL(h_c ‖ h_full) between the
  Laplace-smoothed histograms of predicted labels on subset c and on the complete set;
  ``metric_gap`` (segmentation and other tasks): d_c += (m_full − m_c)² with m the task's
  primary metric (Dice for segmentation).

Both are computed on the validation subjects that naturally have every modality. The accumulated
distances, the weak set and per-epoch loss means live in the stage checkpoint (a resumed run
continues mining or keeps the mined set) and in ``report_items()``.

Hyperparameters a study leaves unset come from ``robustmm/presets/methods/mmanet.yaml`` for the task's
family (classification, segmentation, other).
"""

from __future__ import annotations

import dataclasses
import html
import logging
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from pydantic import ConfigDict, Field, ValidationError
from torch import Tensor, nn

from robustmm.config.loader import format_validation_error, preset_file
from robustmm.config.schema import ConfigModel
from robustmm.data.batch import Batch, all_subsets
from robustmm.engine.trainer import stable_seed
from robustmm.errors import ConfigError
from robustmm.methods.base import Method, MethodContext, Predictions, collect_predictions, register_method
from robustmm.methods.baseline import BaselineOptions, DropoutBaseline, DropoutOptions, modality_dropout
from robustmm.methods.task import TaskAdapter, task_adapter
from robustmm.methods.trio import (
    FrozenTeacher,
    complete_rows,
    deployment_network,
    in_subsets,
    margin_aware_distillation,
    obtain_teacher,
    regularizer_for,
    select_rows,
    subset_predictions,
)
from robustmm.metrics.paired import worst_value
from robustmm.missing.scenarios import Subset, build_scenario
from robustmm.models.network import input_means
from robustmm.text import counted

log = logging.getLogger("robustmm")

DEFAULTS_FILE = preset_file("methods/mmanet")
MiningCriterion = Literal["label_kl", "metric_gap"]
MadScale = Literal["task_loss", "absolute"]
TeacherChoice = Literal["best_on_validation", "complete_only", "dropout_baseline", "independent"]
#: the networks a teacher may be copied from, in order of preference on a tie
TEACHER_SOURCES = ("complete_only", "dropout_baseline")
#: additive (Laplace) smoothing of predicted-label counts, so a class never predicted on one
#: subset gives a finite KL
HISTOGRAM_SMOOTHING = 1.0


def task_family(kind: str) -> str:
    if kind in ("binary", "multiclass"):
        return "classification"
    if kind == "segmentation":
        return "segmentation"
    return "other"


class MMANetSettings(ConfigModel):
    """The task-dependent hyperparameters, after defaults are applied."""

    model_config = ConfigDict(extra="forbid")
    lambda_mad: float = Field(ge=0)
    #: task_loss: lambda_mad is relative, the MAD weight is lambda_mad * (mean task loss / mean MAD)
    #: of the last warm-up epoch, so lambda_mad * MAD ~ lambda_mad x the task loss when MAD starts;
    #: absolute: lambda_mad multiplies MAD as it is (the reference's convention)
    mad_scale: MadScale
    lambda_mar: float = Field(ge=0)
    warmup_epochs: int = Field(ge=1)
    mining: MiningCriterion
    add_single_modalities: bool


class MMANetOptions(DropoutOptions):
    """Unset (null) hyperparameters take the task family's value in robustmm/presets/methods/mmanet.yaml.

    ``dropout`` / ``keep_complete`` (from :class:`~robustmm.methods.baseline.DropoutOptions`, the
    same defaults as ``dropout_baseline``) make the student's training inputs: so MMANet and
    ``dropout_baseline`` differ only by MAD and MAR."""

    fill: Literal["zero", "mean", "learned"] = "zero"
    lambda_mad: float | None = Field(None, ge=0)
    mad_scale: MadScale | None = None
    #: where the frozen teacher comes from: best_on_validation = of the study's complete_only and
    #: dropout_baseline networks, the one with the higher primary metric on the validation
    #: subjects that have every modality (all modalities given); or one of them by name. With
    #: neither in the study, complete_only is trained here. independent: a network trained here
    #: with the student's dropout and fill, but its own initialisation, epoch seeds and dropout
    #: masks (the teacher of the paper is trained apart from the student; dropout_baseline's
    #: network is the student's own trajectory under common random numbers)
    teacher: TeacherChoice = "best_on_validation"
    #: MAD only when the teacher beats the student (end of warm-up) on complete validation
    #: subjects; otherwise MAD stays off (reported) and only MAR is added
    require_better_teacher: bool = True
    lambda_mar: float | None = Field(None, ge=0)
    warmup_epochs: int | None = Field(None, ge=1)
    mining: MiningCriterion | None = None
    #: candidates for the weak combination: "multimodal" = proper subsets with at least two
    #: modalities (as in the reference; the single modalities when there are only two), "all" =
    #: every proper non-empty subset
    mining_candidates: Literal["multimodal", "all"] = "multimodal"
    add_single_modalities: bool | None = None
    #: pooled grid for dense feature maps (segmentation MAD); an int is isotropic
    spatial_grid: int | list[int] = 4
    epochs: int | None = Field(None, ge=2)
    lr: float | None = Field(None, gt=0)
    #: common random numbers: the run id whose random streams the student shares: its
    #: initialisation is drawn after seeding torch as the study seeds that run, and each epoch's
    #: torch seed (network dropout) is that run's training stage's. Default: dropout_baseline, so
    #: with lambda_mad = lambda_mar = 0 this method trains dropout_baseline's network exactly and
    #: a paired comparison with it measures MAD + MAR, not a different initialisation. null: the
    #: method's own streams (seeded by its own run id)
    random_streams: str | None = "dropout_baseline"
    #: only used when the teacher is trained here (independent, or no study network to reuse)
    teacher_epochs: int | None = Field(None, ge=1)
    teacher_lr: float | None = Field(None, gt=0)


def resolve_settings(options: MMANetOptions, task_kind: str, path: Path = DEFAULTS_FILE) -> MMANetSettings:
    """Options given in the study, else the defaults of the task's family in ``path``."""
    family = task_family(task_kind)
    try:
        table = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the MMANet defaults {path}: {exc}; restore it from the repository") from None
    if family not in table:
        raise ConfigError(f"{path} has no '{family}' section (task kind '{task_kind}'); add one with "
                          f"{sorted(MMANetSettings.model_fields)}")
    given = {k: v for k, v in options.model_dump().items() if k in MMANetSettings.model_fields and v is not None}
    try:
        return MMANetSettings.model_validate({**table[family], **given})
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, MMANetSettings, str(path), family)) from None


def mining_candidates(modalities: list[str], which: str) -> list[tuple[str, ...]]:
    proper = [s for s in all_subsets(modalities) if len(s) < len(modalities)]
    if which == "all" or len(modalities) == 2:
        return proper
    return [s for s in proper if len(s) >= 2]


def label_histogram(logits: np.ndarray, smoothing: float = HISTOGRAM_SMOOTHING) -> np.ndarray:
    """Smoothed distribution of the predicted labels argmax(logits) over the K classes."""
    k = logits.shape[1]
    counts = np.bincount(logits.argmax(axis=1), minlength=k).astype(float)
    return (counts + smoothing) / (counts.sum() + smoothing * k)


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) of two strictly positive distributions."""
    return float(np.sum(p * np.log(p / q)))


def format_subset(subset: tuple[str, ...]) -> str:
    return "+".join(subset)


class WeakSubsetMiner:
    """Accumulates d_c over warm-up evaluations, then fixes the weak set W."""

    def __init__(self, candidates: list[tuple[str, ...]], complete: tuple[str, ...], criterion: MiningCriterion,
                 add_single_modalities: bool) -> None:
        self.candidates = candidates
        self.complete = complete
        self.criterion = criterion
        self.add_single_modalities = add_single_modalities
        self.distances = {c: 0.0 for c in candidates}
        self.rounds = 0
        self.weak: list[tuple[str, ...]] | None = None

    def accumulate(self, by_subset: dict[tuple[str, ...], Predictions], task: TaskAdapter) -> None:
        """Add one evaluation: ``by_subset`` holds predictions on the same split, in the same
        order, for every candidate and for the complete set."""
        full = by_subset[self.complete]
        keep = np.flatnonzero(full.evaluable)
        if keep.size == 0:
            log.warning("mmanet: no validation subject has every modality; mining round skipped")
            return
        if self.criterion == "label_kl":
            if full.outputs["logits"].ndim != 2:
                raise ValueError("mining 'label_kl' needs (B, K) logits; use mining: metric_gap for dense outputs")
            reference = label_histogram(full.outputs["logits"][keep])
            for c in self.candidates:
                self.distances[c] += kl_divergence(label_histogram(by_subset[c].outputs["logits"][keep]), reference)
        else:
            metric = task.primary_metric
            m_full = task.metrics(full.outputs, full.target, full.meta, keep)[metric]
            for c in self.candidates:
                subset = by_subset[c]
                m_c = task.metrics(subset.outputs, subset.target, subset.meta, keep)[metric]
                if math.isfinite(m_c) and math.isfinite(m_full):
                    self.distances[c] += float((m_full - m_c) ** 2)
                else:
                    log.warning("mmanet: validation %s is not finite on %s; it adds nothing to this mining round",
                                metric, format_subset(c))
        self.rounds += 1

    def decide(self) -> list[tuple[str, ...]]:
        worst = max(self.candidates, key=lambda c: self.distances[c])  # ties: the first candidate
        tied = [c for c in self.candidates if self.distances[c] == self.distances[worst]]
        if len(tied) > 1:
            log.warning("mmanet: the weak combination is a tie between %s (d = %.4g); using %s. More warm-up "
                        "epochs or a larger validation split make mining informative",
                        [format_subset(c) for c in tied], self.distances[worst], format_subset(worst))
        weak = [worst]
        if self.add_single_modalities and len(worst) > 1:
            weak += [(m,) for m in worst]
        self.weak = weak
        return weak

    def state(self) -> dict[str, Any]:
        return {"distances": [[list(c), d] for c, d in self.distances.items()], "rounds": self.rounds,
                "weak": None if self.weak is None else [list(w) for w in self.weak]}

    def load(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.distances.update({tuple(c): float(d) for c, d in state["distances"]})
        self.rounds = int(state["rounds"])
        self.weak = None if state["weak"] is None else [tuple(w) for w in state["weak"]]


def shared_stream_network(context: MethodContext, fill: str, random_streams: str | None) -> nn.Module:
    """The deployment network, initialised from the torch seed the study gives run ``random_streams``
    (as :func:`robustmm.study` seeds every method before creating it); the global RNG is left as it
    was. ``None``: drawn from the current stream (this method's own seed)."""
    if not random_streams:
        return deployment_network(context, fill)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stable_seed(context.seed, random_streams))
        return deployment_network(context, fill)


class MMANetModule(nn.Module):
    """The stage-2 training module: deployment net + regularizer (trained), teacher (frozen).

    Warm-up epochs are scored with the worst value of every metric (their real values are kept
    under ``warmup_<name>``), so model selection picks a distillation epoch: the network that
    ships is one trained with MAD and MAR. MAD is still measured (without gradient) during
    warm-up; the last warm-up epoch's mean task loss / mean MAD scales ``lambda_mad`` when
    ``mad_scale`` is ``task_loss``.
    """

    #: training.selection.scenarios; mining and the loss history belong to the natural validation pass
    validates_under_scenarios = True
    #: the deployment net and the regularizer share MultimodalNet encoders that never see the availability
    #: pattern, so a validation round (mining, selection scenarios) encodes each subject once
    reuses_encoder_outputs = True

    def __init__(self, net: nn.Module, regularizer: nn.Module, teacher: FrozenTeacher, task: TaskAdapter,
                 context: MethodContext, settings: MMANetSettings, warmup_epochs: int, miner: WeakSubsetMiner,
                 grid: int | list[int], dropout, keep_complete: float, teacher_score: float = float("nan"),
                 require_better_teacher: bool = True) -> None:
        super().__init__()
        self.net = net
        self.regularizer = regularizer
        self.teacher = teacher
        self.task = task
        self.context = context
        self.settings = settings
        self.warmup_epochs = warmup_epochs
        self.miner = miner
        self.grid = grid
        self.dropout = dropout
        self.keep_complete = keep_complete
        self.teacher_score = teacher_score
        self.require_better_teacher = require_better_teacher
        self.monitor = task.primary_metric
        self.loss_history: list[dict[str, float]] = []
        #: the student's primary metric on complete validation subjects at the end of warm-up
        self.student_score = float("nan")
        #: the weight MAD gets once distillation starts (None: not decided yet)
        self.mad_weight: float | None = None
        self.mad_note = ""
        self._sums: dict[str, float] = {}
        self._steps = 0

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [*self.net.parameters(), *self.regularizer.parameters()]

    def distilling(self, epoch: int) -> bool:
        return epoch >= self.warmup_epochs and self.miner.weak is not None

    def start_distillation(self) -> None:
        """Fix the MAD weight from the last warm-up epoch and the teacher/student comparison."""
        warm = [h for h in self.loss_history if h["epoch"] < self.warmup_epochs]
        last = warm[-1] if warm else {}
        scale = 1.0
        if self.settings.mad_scale == "task_loss":
            ce, mad = last.get("train_ce", float("nan")), last.get("train_mad", float("nan"))
            scale = ce / mad if math.isfinite(ce) and math.isfinite(mad) and mad > 0 else 1.0
        self.mad_weight = self.settings.lambda_mad * scale
        self.mad_note = (f"lambda_mad {self.settings.lambda_mad:g} x {self.settings.mad_scale} scale {scale:.4g}")
        if self.require_better_teacher and not (self.teacher_score > self.student_score):
            self.mad_note = (f"MAD off: teacher validation {self.monitor} on complete subjects {self.teacher_score:.4f} "
                             f"is not above the student's {self.student_score:.4f} at the end of warm-up")
            log.warning("%s: %s", self.context.method_id, self.mad_note)
            self.mad_weight = 0.0
        log.info("%s: distillation starts; MAD weight %.4g (%s)", self.context.method_id, self.mad_weight,
                 self.mad_note)

    def on_epoch_start(self, ctx, data) -> None:
        self._sums = {"ce": 0.0, "mad": 0.0, "weighted_mad": 0.0, "mar": 0.0, "weak_fraction": 0.0,
                      "mad_fraction": 0.0}
        self._steps = 0
        if self.distilling(ctx.epoch) and self.mad_weight is None:
            self.start_distillation()

    def distillation_loss(self, out: dict[str, Tensor], batch: Batch) -> tuple[Tensor, float]:
        """MAD on the samples whose natural input is complete (the teacher sees all it was
        trained on only there); (loss, fraction of the batch used)."""
        full = complete_rows(batch)
        if int(full.sum()) < 2:  # a similarity matrix needs two samples
            return out["logits"].new_zeros((), dtype=torch.float32), 0.0
        index = full.nonzero(as_tuple=True)[0]
        teacher_out = self.teacher(batch.select(index))
        return margin_aware_distillation(select_rows(out, index), teacher_out, self.grid), float(full.float().mean())

    def training_step(self, batch: Batch, ctx) -> Tensor:
        student = modality_dropout(batch, self.dropout, self.keep_complete, self.context, ctx.epoch)
        out = self.net(student)
        ce = self.task.loss(out["logits"], student)
        self._steps += 1
        self._sums["ce"] += float(ce.detach())
        distilling = self.distilling(ctx.epoch)
        loss = ce
        if self.settings.lambda_mad > 0 and (not distilling or self.mad_weight):
            if distilling:
                mad, used = self.distillation_loss(out, batch)
                loss = loss + self.mad_weight * mad
                self._sums["weighted_mad"] += float(self.mad_weight * mad.detach())
            else:  # measured only: it sets the scale of lambda_mad
                with torch.no_grad():
                    mad, used = self.distillation_loss(out, batch)
            self._sums["mad"] += float(mad.detach())
            self._sums["mad_fraction"] += used
        if distilling and self.settings.lambda_mar > 0:
            weak = in_subsets(student, self.miner.weak)
            mar = self.regularization_loss(out, student, weak)
            loss = loss + self.settings.lambda_mar * mar
            self._sums["mar"] += float(mar.detach())
            self._sums["weak_fraction"] += float(weak.float().mean())
        return loss

    def regularization_loss(self, out: dict[str, Tensor], student: Batch, weak: Tensor) -> Tensor:
        """(1/B) Σ_i 1[subset_i ∈ W] · loss(regularizer(x_i), y_i)."""
        if not bool(weak.any()):
            return out["logits"].new_zeros((), dtype=torch.float32)
        logits = self.regularizer(out)
        return self.task.loss(logits[weak], student.select(weak)) * weak.float().mean()

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        return self.task.outputs(self.net(batch)["logits"])

    def validation_metrics(self, data, ctx) -> dict[str, float]:
        predict = self.task.inference(self.predict)  # whole cases, as evaluation runs them
        preds = collect_predictions(predict, data, "val", ctx.device)
        metrics = dict(self.task.metrics(preds.outputs, preds.target, preds.meta))
        metrics["loss"] = self.task.validation_loss(preds.outputs, preds.target)
        natural = getattr(ctx, "scenario", None) is None  # not a training.selection.scenarios pass
        if natural and self.miner.weak is None and ctx.epoch < self.warmup_epochs:
            subsets = [*self.miner.candidates, self.miner.complete]
            by_subset = subset_predictions(predict, data, "val", ctx.device, subsets, self.context.seed)
            self.miner.accumulate(by_subset, self.task)
            if ctx.epoch == self.warmup_epochs - 1:
                weak = self.miner.decide()
                full = by_subset[self.miner.complete]
                keep = np.flatnonzero(full.evaluable)
                if keep.size:
                    self.student_score = float(self.task.metrics(full.outputs, full.target, full.meta,
                                                                 keep)[self.monitor])
                log.info("%s: weak modality set %s (distances %s); validation %s on complete subjects: teacher "
                         "%.4f, student %.4f", self.context.method_id, [format_subset(w) for w in weak],
                         {format_subset(c): round(d, 4) for c, d in self.miner.distances.items()}, self.monitor,
                         self.teacher_score, self.student_score)
        means = {f"train_{k}": v / max(self._steps, 1) for k, v in self._sums.items()}
        if natural:
            self.loss_history.append({"epoch": ctx.epoch, **means})
        if not self.distilling(ctx.epoch):
            # warm-up epochs are never selected: the shipped network is a distilled one
            metrics = {**{f"warmup_{k}": v for k, v in metrics.items()},
                       **{k: worst_value(k) for k in metrics}}
        return {**metrics, **means}

    def extra_state(self) -> dict[str, Any]:
        return {"miner": self.miner.state(), "loss_history": list(self.loss_history),
                "student_score": self.student_score, "mad_weight": self.mad_weight, "mad_note": self.mad_note}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.miner.load(state.get("miner", {}))
        self.loss_history = list(state.get("loss_history", []))
        self.student_score = float(state.get("student_score", float("nan")))
        self.mad_weight = state.get("mad_weight")
        self.mad_note = state.get("mad_note", "")


@register_method("mmanet")
class MMANet(Method):
    """Margin-aware distillation from a complete-data teacher plus modality-aware regularization
    of the weak modality combination mined on the validation split."""

    Options = MMANetOptions
    reuses = TEACHER_SOURCES
    reuses_encoder_outputs = True  # predict runs the deployment MultimodalNet only

    def __init__(self, options: MMANetOptions, context: MethodContext) -> None:
        super().__init__(options, context)
        self.settings = resolve_settings(options, context.task.kind)
        self.task = task_adapter(context.task)
        self.net = shared_stream_network(context, options.fill, options.random_streams)
        self.regularizer = regularizer_for(self.net, context.model)
        self.teacher: FrozenTeacher | None = None
        self.teacher_source = ""
        modalities = list(context.modalities)
        self.miner = WeakSubsetMiner(mining_candidates(modalities, options.mining_candidates), tuple(modalities),
                                     self.settings.mining, self.settings.add_single_modalities)
        self.warmup_epochs = self.settings.warmup_epochs
        self.loss_history: list[dict[str, float]] = []
        self.teacher_scores: dict[str, float] = {}
        self.teacher_score = float("nan")
        self.student_score = float("nan")
        self.mad_weight: float | None = None
        self.mad_note = ""
        try:
            self.dropout = build_scenario(options.dropout, modalities)
        except ValueError as exc:
            raise ConfigError(f"method '{context.method_id}': dropout: {exc}") from None

    @classmethod
    def check_training(cls, options: MMANetOptions, training: Any, method_id: str) -> None:
        epochs = options.epochs or training.epochs
        if epochs < 2:
            raise ConfigError(f"method '{method_id}' (mmanet) needs at least 2 epochs (warm-up, then distillation); "
                              f"it got {epochs}: raise training.epochs or the method's epochs")

    @classmethod
    def check_setup(cls, options: MMANetOptions, specs: dict[str, Any], task: Any, method_id: str) -> None:
        """Two modalities or more (one has no subset to mine or distil) and readable defaults for the
        task's family."""
        if len(specs) < 2:
            raise ConfigError(f"method '{method_id}' (mmanet) needs at least two modalities; the data have "
                              f"{list(specs)}")
        resolve_settings(options, task.kind)

    def complete_validation_score(self, net: nn.Module, data, device: torch.device) -> float:
        """The primary metric of ``net`` on the validation subjects that have every modality."""
        net = net.to(device)
        was_training = net.training
        net.eval()
        predict = self.task.inference(lambda batch: self.task.outputs(net(batch)["logits"]))
        with torch.no_grad():
            preds = collect_predictions(predict, data, "val", device,
                                        Subset(modalities=tuple(self.context.modalities)), self.context.seed)
        net.train(was_training)
        keep = np.flatnonzero(preds.evaluable)
        if keep.size == 0:
            return float("nan")
        return float(self.task.metrics(preds.outputs, preds.target, preds.meta, keep)[self.task.primary_metric])

    def independent_teacher(self) -> tuple[str, Any]:
        """(description, factory) of the ``independent`` teacher: ``dropout_baseline``'s recipe with
        the student's dropout, fill and the teacher_epochs/teacher_lr options, on a context whose
        seed is derived from the study's (so its dropout masks differ from the student's too)."""
        options = BaselineOptions(dropout=self.options.dropout, keep_complete=self.options.keep_complete,
                                  fill=self.options.fill, epochs=self.options.teacher_epochs,
                                  lr=self.options.teacher_lr)

        def build(context: MethodContext) -> Method:
            return DropoutBaseline(options, dataclasses.replace(context, seed=stable_seed(context.seed,
                                                                                          "independent_teacher")))

        return "an independent dropout-trained network (own seeds and masks) trained", build

    def fit(self, data, trainer) -> None:
        self.check_training(self.options, trainer.cfg, self.context.method_id)  # before its teacher trains
        self.task.fit(data)
        if self.options.fill == "mean":
            self.net.fill.set_means(input_means(data.loader("train"), data.modalities))
        choice = self.options.teacher
        sources = {"best_on_validation": TEACHER_SOURCES, "independent": ()}.get(choice, (choice,))
        teacher = obtain_teacher(self.context, data, trainer, self.options.fill, self.options.teacher_epochs,
                                 self.options.teacher_lr, sources=sources,
                                 score=lambda net: self.complete_validation_score(net, data, trainer.device),
                                 train_here=self.independent_teacher() if choice == "independent" else None)
        self.teacher, self.teacher_source = teacher.network, teacher.source
        self.teacher_scores, self.teacher_score = teacher.scores, teacher.score
        epochs = self.options.epochs or trainer.cfg.epochs
        if self.settings.warmup_epochs >= epochs:
            log.warning("%s: warmup_epochs %d >= epochs %d; warming up for %d epochs instead",
                        self.context.method_id, self.settings.warmup_epochs, epochs, epochs - 1)
        self.warmup_epochs = min(self.settings.warmup_epochs, epochs - 1)
        module = MMANetModule(self.net, self.regularizer, self.teacher, self.task, self.context, self.settings,
                              self.warmup_epochs, self.miner, self.options.spatial_grid, self.dropout,
                              self.options.keep_complete, self.teacher_score, self.options.require_better_teacher)
        trainer.fit(module, data, stage=self.context.method_id, epochs=self.options.epochs, lr=self.options.lr,
                    random_stream=self.options.random_streams)
        self.loss_history = module.loss_history
        self.student_score, self.mad_weight, self.mad_note = module.student_score, module.mad_weight, module.mad_note
        if self.miner.weak is None:
            log.warning("%s: training stopped before warm-up ended, so no weak set was mined and neither MAD "
                        "nor MAR was applied", self.context.method_id)
        self.to(trainer.device)

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        return self.task.outputs(self.net(batch)["logits"])

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "regularizer": self.regularizer.state_dict(),
                "task": self.task.state_dict(), "miner": self.miner.state(), "warmup_epochs": self.warmup_epochs,
                "teacher_source": self.teacher_source, "loss_history": self.loss_history,
                "teacher_scores": self.teacher_scores, "teacher_score": self.teacher_score,
                "student_score": self.student_score, "mad_weight": self.mad_weight, "mad_note": self.mad_note}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.regularizer.load_state_dict(state["regularizer"])
        self.task.load_state_dict(state["task"])
        self.miner.load(state["miner"])
        self.warmup_epochs = int(state["warmup_epochs"])
        self.teacher_source = state["teacher_source"]
        self.loss_history = list(state["loss_history"])
        self.teacher_scores = dict(state.get("teacher_scores", {}))
        self.teacher_score = float(state.get("teacher_score", float("nan")))
        self.student_score = float(state.get("student_score", float("nan")))
        self.mad_weight = state.get("mad_weight")
        self.mad_note = state.get("mad_note", "")

    def report_items(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher_source,
            f"teacher_candidates_val_{self.task.primary_metric}_complete": self.teacher_scores,
            f"teacher_val_{self.task.primary_metric}_complete": self.teacher_score,
            f"student_val_{self.task.primary_metric}_complete_after_warmup": self.student_score,
            "mad_scale": self.settings.mad_scale,
            "mad_weight": self.mad_weight,
            "mad_note": self.mad_note,
            "dropout": {"scenario": self.options.dropout.kind,  # with its rate(s), when the kind has them
                        **self.options.dropout.model_dump(exclude={"kind"}, exclude_none=True),
                        "keep_complete": self.options.keep_complete},
            "random_streams": self.options.random_streams,
            "weak_subsets": None if self.miner.weak is None else [format_subset(w) for w in self.miner.weak],
            "mining": {"criterion": self.miner.criterion, "split": "val", "rounds": self.miner.rounds,
                       "distances": {format_subset(c): d for c, d in self.miner.distances.items()}},
            "lambda_mad": self.settings.lambda_mad,
            "lambda_mar": self.settings.lambda_mar,
            "warmup_epochs": self.warmup_epochs,
            "fill": self.options.fill,
        }

    def report_sections(self, data, plots_dir: Path) -> list[tuple[str, str]]:
        weak = set(self.miner.weak or [])
        rows = "".join(
            f"<tr><td>{html.escape(format_subset(c))}</td><td>{d:.4g}</td><td>{'weak' if c in weak else ''}</td></tr>"
            for c, d in sorted(self.miner.distances.items(), key=lambda kv: -kv[1]))
        note = "<p>No weak set was mined (training stopped during warm-up).</p>"
        if self.miner.weak:
            mined, *singles = self.miner.weak
            note = (f"<p>Weak combination: {html.escape(format_subset(mined))}"
                    + (f", with its single modalities {html.escape(', '.join(format_subset(w) for w in singles))}"
                       if singles else "")
                    + f". Mined on the validation split over {counted(self.miner.rounds, 'warm-up epoch')} with "
                    f"criterion <code>{self.miner.criterion}</code>; teacher: {html.escape(self.teacher_source)}. "
                    f"Validation {html.escape(self.task.primary_metric)} on complete subjects: teacher "
                    f"{self.teacher_score:.3f}, student at the end of warm-up {self.student_score:.3f}. "
                    f"{html.escape(self.mad_note)}.</p>")
        table = f"<table><tr><th>subset</th><th>accumulated d_c</th><th></th></tr>{rows}</table>"
        return [(f"MMANet weak-combination mining ({self.context.method_id})", note + table)]

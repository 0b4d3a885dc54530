"""Baselines: ``dropout_baseline`` (random modality dropout) and ``complete_only`` (trained on
subjects with every modality; the upper bound on complete data and the teacher other methods
reuse)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from robustmm.config.schema import RandomSubsetsScenario, ScenarioConfig
from robustmm.data.batch import Batch
from robustmm.methods.base import Method, MethodContext, MethodOptions, collect_predictions, register_method
from robustmm.methods.task import TaskAdapter, task_adapter
from robustmm.missing.scenarios import Scenario, build_scenario, sample_rng
from robustmm.models.factory import create_model
from robustmm.models.network import input_means


def modality_dropout(batch: Batch, dropout: Scenario, keep_complete: float, context: MethodContext,
                     epoch: int) -> Batch:
    """The training-time modality dropout of ``dropout_baseline`` (and of every method that shares
    its distribution, e.g. MMANet's student): each sample keeps its natural modalities with
    probability ``keep_complete`` (drawn per subject and epoch), else gets the ``dropout``
    scenario's mask. A pure function of (seed, subject, epoch)."""
    dropped = dropout.apply(batch, context.modalities, context.seed, epoch)
    if keep_complete <= 0:
        return dropped
    keep = torch.tensor([sample_rng("keep", context.seed, s, epoch).random() < keep_complete
                         for s in batch.subjects], device=next(iter(batch.present.values())).device)
    present = {m: torch.where(keep, batch.present[m], dropped.present[m]) for m in batch.present}
    fmask = {m: torch.where(keep.view(-1, *([1] * (v.dim() - 1))), batch.feature_mask[m], v)
             for m, v in dropped.feature_mask.items()}
    return batch.with_masks(present, fmask)


class SupervisedModule(nn.Module):
    """Trains a network with the task loss on batches passed through a missing scenario.

    ``keep_complete``: fraction of samples (drawn per subject and epoch) that keep their natural
    modalities, so the network still sees complete inputs during dropout training.
    """

    validates_under_scenarios = True  # training.selection.scenarios (robustmm.engine.selection)
    #: one MultimodalNet whose encoders never see the availability pattern (the single-network methods,
    #: pattern_ensemble's per-pattern networks)
    reuses_encoder_outputs = True

    def __init__(self, net: nn.Module, task: TaskAdapter, context: MethodContext,
                 dropout: Scenario | None = None, keep_complete: float = 0.0) -> None:
        super().__init__()
        self.net = net
        self.task = task
        self.context = context
        self.dropout = dropout
        self.keep_complete = keep_complete
        self.monitor = task.primary_metric

    def drop(self, batch: Batch, epoch: int) -> Batch:
        if self.dropout is None:
            return batch
        return modality_dropout(batch, self.dropout, self.keep_complete, self.context, epoch)

    def prepare_batch(self, batch: Batch, ctx) -> Batch:
        """The dropout masks, drawn on the CPU before the batch is copied to the device."""
        return self.drop(batch, ctx.epoch)

    def training_step(self, batch: Batch, ctx) -> Tensor:
        if not getattr(ctx, "prepared", False):
            batch = self.drop(batch, ctx.epoch)
        return self.task.loss(self.net(batch)["logits"], batch)

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        return self.task.outputs(self.net(batch)["logits"])

    def validation_metrics(self, data, ctx) -> dict[str, float]:
        preds = collect_predictions(self.task.inference(self.predict), data, "val", ctx.device)
        metrics = self.task.metrics(preds.outputs, preds.target, preds.meta)
        metrics["loss"] = self.task.validation_loss(preds.outputs, preds.target)
        return metrics


class DropoutOptions(MethodOptions):
    """The training-time modality dropout (see :func:`modality_dropout`); shared by
    ``dropout_baseline`` and the methods compared with it (MMANet's student), so their inputs come
    from the same distribution: with probability ``keep_complete`` the natural modalities, else a
    uniformly drawn non-empty subset of them (``random_subsets``)."""

    dropout: ScenarioConfig = Field(default_factory=lambda: RandomSubsetsScenario(kind="random_subsets"))
    keep_complete: float = Field(0.3, ge=0.0, le=1.0)


class BaselineOptions(DropoutOptions):
    fill: Literal["zero", "mean", "learned"] = "zero"
    epochs: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)


class CompleteOnlyOptions(MethodOptions):
    fill: Literal["zero", "mean", "learned"] = "zero"
    epochs: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)


class _SingleNetworkMethod(Method):
    """A deployment network trained by one supervised stage."""

    options: Any
    reuses_encoder_outputs = True  # one MultimodalNet; encoders never see the availability pattern

    def __init__(self, options, context: MethodContext) -> None:
        super().__init__(options, context)
        self.task = task_adapter(context.task)
        self.net = create_model(context.modalities, context.task, context.model, fill=options.fill)

    def _prepare(self, data) -> None:
        self.task.fit(data)
        if self.options.fill == "mean":
            self.net.fill.set_means(input_means(data.loader("train"), data.modalities))

    def _module(self) -> SupervisedModule:
        raise NotImplementedError

    def _train_data(self, data):
        return data

    def fit(self, data, trainer) -> None:
        self._prepare(data)
        module = self._module()
        trainer.fit(module, self._train_data(data), stage=self.context.method_id, epochs=self.options.epochs,
                    lr=self.options.lr)
        self.to(trainer.device)

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        return self.task.outputs(self.net(batch)["logits"])

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "task": self.task.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.task.load_state_dict(state["task"])


@register_method("dropout_baseline")
class DropoutBaseline(_SingleNetworkMethod):
    """The deployment network trained with random modality dropout (``dropout`` scenario)."""

    Options = BaselineOptions

    def _module(self) -> SupervisedModule:
        scenario = build_scenario(self.options.dropout, list(self.context.modalities))
        return SupervisedModule(self.net, self.task, self.context, scenario, self.options.keep_complete)


@register_method("complete_only")
class CompleteOnly(_SingleNetworkMethod):
    """Trained and validated on subjects with every modality present; at test time a missing
    modality gets the ``fill``. The teacher that distillation methods reuse."""

    Options = CompleteOnlyOptions

    def _module(self) -> SupervisedModule:
        return SupervisedModule(self.net, self.task, self.context)

    def _train_data(self, data):
        return data.complete_cases()


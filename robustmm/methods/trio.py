"""The teacher / deployment / regularization trio: shared infrastructure of the distillation
methods (MMANet, and any method that distils a complete-data teacher into a network that must
cope with missing modalities).

* **Deployment network** (:func:`deployment_network`): the study's architecture, the same one
  ``complete_only`` trains; the only network that ships.
* **Teacher** (:func:`obtain_teacher`): the deployment architecture trained on complete cases.
  When the study lists ``complete_only`` its fitted network is reused (a method declares
  ``reuses = ("complete_only",)`` so the study trains it first); otherwise ``complete_only`` is
  trained here, as a stage of its own (checkpoint ``teacher.pt``, resumable). Either way it is
  wrapped in :class:`FrozenTeacher`: eval mode and no gradients, whatever a trainer asks of it.
* **Regularization network** (:func:`regularizer_for`): its own trunk and head on the deployment
  network's fused features, so it shares the deployment encoders and sees exactly the inputs the
  deployment network sees; trained jointly, discarded at inference.

Helpers other methods reuse: :func:`present_subsets` / :func:`in_subsets` (which modality subset
each sample has after dropout), :func:`subset_predictions` (predictions on a split under every
fixed subset) and :func:`margin_aware_distillation` (MAD at the task's distilled layer(s)).

Network contract (what :func:`deployment_network` returns; :class:`~robustmm.models.network.
MultimodalNet` for vector tasks, the segmentation network of :mod:`robustmm.models.segmentation`
for dense ones): ``forward(batch)`` returns a dict with ``logits`` and either ``features`` (B, D)
and ``fused`` (B, F) when the logits are (B, K), or ``fused_maps`` (fused (B, C, *spatial) maps per
scale, finest first) when the logits are dense (B, K, *spatial). A dense network provides
``make_decoder()`` (a fresh decoder over ``fused_maps`` returning ``(features, logits)``) for its
regularization branch; any network may instead provide ``make_regularizer()``, a module mapping its
forward dict to logits.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Collection, Sequence

import torch
from torch import Tensor, nn

from robustmm.config.schema import ModelConfig
from robustmm.data.batch import Batch
from robustmm.losses import mad_loss, mad_loss_spatial
from robustmm.methods.base import Method, MethodContext, Predictions, collect_predictions
from robustmm.methods.baseline import CompleteOnly, CompleteOnlyOptions
from robustmm.missing.scenarios import Subset
from robustmm.models.factory import create_model
from robustmm.models.heads import Trunk, build_head
from robustmm.models.network import FillKind, MultimodalNet

log = logging.getLogger("robustmm")

#: stage name (and checkpoint file stem) of a teacher trained by a distillation method itself
TEACHER_STAGE = "teacher"


def deployment_network(context: MethodContext, fill: FillKind = "zero") -> nn.Module:
    """A fresh network of the study's deployment architecture (what ``complete_only`` trains)."""
    return create_model(context.modalities, context.task, context.model, fill=fill)


class FrozenTeacher(nn.Module):
    """A trained network frozen for distillation: no parameter requires a gradient, and it stays
    in eval mode even when the module that holds it is put in train mode (dropout and
    normalization statistics of the teacher never change)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        for p in self.net.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenTeacher":
        return super().train(False)

    @torch.no_grad()
    def forward(self, batch: Batch) -> dict[str, Tensor]:
        return self.net(batch)


@dataclasses.dataclass
class Teacher:
    network: FrozenTeacher
    #: how it was obtained, for the report
    source: str
    #: score of every candidate network considered (e.g. validation AUC on complete subjects)
    scores: dict[str, float] = dataclasses.field(default_factory=dict)
    score: float = float("nan")


def obtain_teacher(context: MethodContext, data, trainer, fill: FillKind = "zero", epochs: int | None = None,
                   lr: float | None = None, sources: Sequence[str] = ("complete_only",),
                   score: Callable[[nn.Module], float] | None = None,
                   train_here: tuple[str, Callable[[MethodContext], Method]] | None = None) -> Teacher:
    """The frozen teacher: a copy of the study's fitted network of one of ``sources`` (method
    names) when the study has any; with several, the one with the highest ``score`` (a
    validation-split score; ties: the first in ``sources``). Without one, a network is trained
    here as stage ``teacher``: ``train_here`` = (description, method factory) when given, else
    ``complete_only`` (``fill``, ``epochs``, ``lr`` apply only to that default)."""
    available = [(name, context.trained[name]) for name in sources if context.trained.get(name) is not None]
    scores: dict[str, float] = {}
    if available:
        if score is not None:
            scores = {name: float(score(method.net)) for name, method in available}
            name, method = max(available, key=lambda item: (scores[item[0]] if scores[item[0]] == scores[item[0]]
                                                            else float("-inf")))
        else:
            name, method = available[0]
        # a copy: freezing must not change the reused method, which is evaluated on its own
        net = copy.deepcopy(method.net)
        source = f"reused the study's {name} network"
    else:
        teacher_context = dataclasses.replace(context, method_id=TEACHER_STAGE)
        if train_here is None:
            train_here = ("complete_only trained on complete cases",
                          lambda ctx: CompleteOnly(CompleteOnlyOptions(fill=fill, epochs=epochs, lr=lr), ctx))
        description, build = train_here
        method = build(teacher_context)
        method.fit(data, trainer)
        net = method.net
        name = TEACHER_STAGE
        source = f"{description} as stage '{TEACHER_STAGE}'"
        if score is not None:
            scores = {name: float(score(net))}
    log.info("%s: teacher %s (scores %s)", context.method_id, source, scores)
    return Teacher(FrozenTeacher(net.to(trainer.device)), source, scores, scores.get(name, float("nan")))


def select_rows(out, index: Tensor):
    """The rows ``index`` of every tensor with a batch dimension in a network output (dicts,
    lists and tuples of tensors, as :func:`margin_aware_distillation` reads them)."""
    if isinstance(out, Tensor):
        return out[index.to(out.device)] if out.dim() > 0 else out
    if isinstance(out, dict):
        return {k: select_rows(v, index) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(select_rows(v, index) for v in out)
    return out


def complete_rows(batch: Batch) -> Tensor:
    """Bool (B,): the samples that have every modality of the batch present (a teacher sees its
    full input only on these)."""
    present = torch.stack([batch.present[m].bool() for m in batch.modalities], dim=1)
    return present.all(dim=1)


class RegularizationNet(nn.Module):
    """A second trunk + head on the deployment network's fused (masked) features. It owns no
    encoder: gradients of its loss reach the deployment encoders through ``fused``."""

    def __init__(self, deploy: MultimodalNet, cfg: ModelConfig) -> None:
        super().__init__()
        self.trunk = Trunk(deploy.fusion.out_dim, cfg.trunk_hidden, cfg.dropout)
        self.head = build_head(self.trunk.out_dim, deploy.task)

    def forward(self, deploy_out: dict[str, Tensor]) -> Tensor:
        return self.head(self.trunk(deploy_out["fused"]))


class DecoderRegularizer(nn.Module):
    """A second decoder on a dense network's fused maps (its encoders are shared the same way);
    the logits are cropped to the deployment logits' size (dense networks pad at the end of each
    spatial axis)."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, deploy_out: dict[str, Tensor]) -> Tensor:
        _, logits = self.decoder(deploy_out["fused_maps"])
        spatial = deploy_out["logits"].shape[2:]
        return logits[(..., *(slice(0, size) for size in spatial))]


def regularizer_for(net: nn.Module, cfg: ModelConfig) -> nn.Module:
    """The regularization network of ``net`` (see the network contract above)."""
    if hasattr(net, "make_regularizer"):
        return net.make_regularizer()
    if hasattr(net, "make_decoder"):
        return DecoderRegularizer(net.make_decoder())
    if isinstance(net, MultimodalNet):
        return RegularizationNet(net, cfg)
    raise TypeError(f"{type(net).__name__} has no make_regularizer() and is not a MultimodalNet; "
                    "see robustmm.methods.trio for the network contract")


def present_subsets(batch: Batch) -> list[tuple[str, ...]]:
    """Per sample, the tuple of modalities present (in the batch's modality order)."""
    mods = batch.modalities
    present = torch.stack([batch.present[m].cpu() for m in mods], dim=1)
    return [tuple(m for m, p in zip(mods, row) if p) for row in present.tolist()]


def in_subsets(batch: Batch, subsets: Collection[Sequence[str]]) -> Tensor:
    """Bool (B,) on the batch's device: the sample's present modalities form one of ``subsets``."""
    wanted = {frozenset(s) for s in subsets}
    hits = [frozenset(s) in wanted for s in present_subsets(batch)]
    return torch.tensor(hits, dtype=torch.bool, device=next(iter(batch.present.values())).device)


def subset_predictions(predict: Callable[[Batch], dict[str, Tensor]], data, split: str, device: torch.device,
                       subsets: Sequence[Sequence[str]], seed: int) -> dict[tuple[str, ...], Predictions]:
    """Predictions on ``split`` with exactly the modalities of each subset; ``evaluable`` marks
    the samples that naturally have every modality of that subset."""
    return {tuple(s): collect_predictions(predict, data, split, device, Subset(modalities=tuple(s)), seed)
            for s in subsets}


def margin_aware_distillation(student_out: dict[str, Tensor], teacher_out: dict[str, Tensor],
                              grid: int | Sequence[int] = 4) -> Tensor:
    """MAD (:func:`robustmm.losses.mad_loss`) at the task's distilled layer(s).

    Vector outputs (logits (B, K)): the trunk features ``features``, weighted by the entropy of the
    teacher's logits. Dense outputs (logits (B, K, *spatial), segmentation): the fused map of every
    scale in ``fused_maps``, average-pooled to ``grid`` with each pooled voxel a sample weighted by
    the entropy of the teacher's pooled logits there (:func:`robustmm.losses.mad_loss_spatial`),
    summed over scales.
    """
    teacher_logits = teacher_out["logits"]
    if teacher_logits.dim() == 2:
        return mad_loss(student_out["features"], teacher_out["features"], teacher_logits)
    if "fused_maps" not in student_out or "fused_maps" not in teacher_out:
        raise KeyError("dense (segmentation) logits need 'fused_maps' in the network output to distil; "
                       "see robustmm.methods.trio for the network contract")
    pairs = list(zip(student_out["fused_maps"], teacher_out["fused_maps"], strict=True))
    return torch.stack([mad_loss_spatial(s, t, teacher_logits, grid) for s, t in pairs]).sum()

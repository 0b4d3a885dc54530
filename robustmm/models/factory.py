"""The network a method builds for a task: ``create_model`` picks it from the task kind.

Methods call ``create_model(modalities, task, model_cfg, fill)`` instead of naming a network
class, so one method (e.g. ``dropout_baseline``) serves classification, survival and
segmentation: segmentation tasks get a 3-D segmentation network
(:mod:`robustmm.models.segmentation`, chosen by ``model.segmentation.architecture``), every
other task the encoder-fusion-head :class:`~robustmm.models.network.MultimodalNet`.
"""

from __future__ import annotations

from torch import nn

from robustmm.config.schema import ModelConfig
from robustmm.data.base import TaskSpec
from robustmm.data.batch import ModalitySpec
from robustmm.models.network import FillKind, MultimodalNet


def create_model(modalities: dict[str, ModalitySpec], task: TaskSpec, cfg: ModelConfig,
                 fill: FillKind = "zero") -> nn.Module:
    if task.kind == "segmentation":
        from robustmm.models.segmentation import build_segmentation_net

        return build_segmentation_net(modalities, task, cfg, fill)
    return MultimodalNet(modalities, task, cfg, fill=fill)

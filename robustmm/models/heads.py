"""Task heads and the number of outputs each task needs."""

from __future__ import annotations

from torch import nn

from robustmm.data.base import TaskSpec


def num_outputs(task: TaskSpec) -> int:
    """Logits per sample: classes for classification, time bins for discrete survival."""
    if task.kind in ("binary", "multiclass", "survival", "segmentation"):
        return task.num_classes
    if task.kind == "regression":
        return 1
    raise ValueError(f"unknown task kind {task.kind!r}")


class Trunk(nn.Module):
    """Shared trunk after fusion; its output is the feature distillation methods use."""

    def __init__(self, in_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.GELU())
        self.out_dim = hidden

    def forward(self, x):
        return self.net(x)


def build_head(in_dim: int, task: TaskSpec) -> nn.Module:
    return nn.Linear(in_dim, num_outputs(task))

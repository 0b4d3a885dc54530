"""Metrics a user calls directly: robustness summaries, paired comparisons, bootstrap CIs and the
per-task metrics (classification, survival, segmentation, emotion).

Names are imported on first use, so ``from robustmm.metrics import auilc`` does not pull in
lifelines, scikit-survival or MONAI.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "auilc": "robustmm.metrics.robustness",
    "paired_difference": "robustmm.metrics.paired",
    "PairedDifference": "robustmm.metrics.paired",
    "higher_is_better": "robustmm.metrics.paired",
    "bootstrap_indices": "robustmm.metrics.bootstrap",
    "bootstrap_ci": "robustmm.metrics.bootstrap",
    "auc_score": "robustmm.metrics.classification",
    "binary_metrics": "robustmm.metrics.classification",
    "concordance": "robustmm.metrics.survival",
    "concordance_ci": "robustmm.metrics.survival",
    "integrated_brier_score": "robustmm.metrics.survival",
    "time_dependent_auc": "robustmm.metrics.survival",
    "km_risk_groups": "robustmm.metrics.survival",
    "dice_per_region": "robustmm.metrics.segmentation",
    "hd95_per_region": "robustmm.metrics.segmentation",
    "emotion_metrics": "robustmm.metrics.emotion",
    "emotion_metrics_from_classes": "robustmm.metrics.emotion",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'robustmm.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

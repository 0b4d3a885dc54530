"""Modality names and the task a data section declares without reading any data.

Lets ``robustmm run`` / ``sweep`` check the scenarios' modality names (and expand scenario
names) and a sweep's objective metrics at config time, before a possibly long data load.
``None`` = not known without loading.
"""

from __future__ import annotations

from typing import Any


def declared_modalities(data_cfg: Any) -> list[str] | None:
    kind = getattr(data_cfg, "kind", None)
    options = getattr(data_cfg, "options", None) or {}
    try:
        if kind == "adni":
            return ["mri", "pet", "clinical"]
        if kind == "mmsa":
            return ["text", "audio", "vision"]
        if kind == "brats":
            from robustmm.data.brats import SEQUENCES

            return list(SEQUENCES)
        if kind == "table":
            mods = options.get("modalities")
            return [str(m) for m in mods] if isinstance(mods, dict) and mods else None
        if kind == "tcga_porpoise":
            from robustmm.data.tcga import PORPOISE_MODALITIES

            mods = options.get("modalities", list(PORPOISE_MODALITIES))
            return [str(m) for m in mods] if isinstance(mods, list) and mods else None
        if kind == "dispro":
            mods = options.get("modalities", ["wsi", "omics"])
            return [str(m) for m in mods] if isinstance(mods, list) and mods else None
    except Exception:  # noqa: BLE001 - a bad option is reported by the adapter itself, with its key path
        return None
    return None


def declared_task(data_cfg: Any) -> Any:
    """The :class:`~robustmm.data.base.TaskSpec` the data section implies (enough for the task adapter's
    metric names), or None when only the data say (or an option is invalid: the adapter reports that)."""
    from robustmm.data.base import TaskSpec

    kind = getattr(data_cfg, "kind", None)
    options = getattr(data_cfg, "options", None) or {}
    try:
        if kind == "adni":
            return TaskSpec("binary", 2)
        if kind in ("tcga_porpoise", "dispro", "table", "mmsa"):
            from robustmm.data.registry import options_model

            opts = options_model(kind).model_validate(dict(options))
        if kind in ("tcga_porpoise", "dispro", "table"):
            from robustmm.data.tables import survival_bins

            target = opts.target.kind if kind == "table" else "survival"
            if target == "survival":
                return TaskSpec("survival", survival_bins(opts.n_bins, opts.survival_head))
            return TaskSpec(target)
        if kind == "mmsa":
            from robustmm.data.mmsa import sentiment_task

            return sentiment_task(opts.target)
        if kind == "brats":
            from robustmm.data.brats import REGIONS

            return TaskSpec("segmentation", len(REGIONS), tuple(REGIONS))
    except Exception:  # noqa: BLE001 - a bad option is reported by the adapter itself, with its key path
        return None
    return None

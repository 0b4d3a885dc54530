"""Modality names a data section declares without reading any data.

Lets ``robustmm run`` / ``sweep`` check the scenarios' modality names (and expand scenario
names) at config time, before a possibly long data load. ``None`` = not known without loading.
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

"""What the report says about the data: subjects per split and class, modality availability,
and, per evaluation scenario, the fraction of evaluated subjects without each modality (the
natural part and the total after the scenario's simulated missingness).

The masks are those the evaluation uses: a scenario's ``present`` mask is a pure function of
(seed, subject id) and the natural availability, so it is recomputed here from
``natural_presence()`` without loading any input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustmm.missing.scenarios import presence_batch


def class_counts(ds: Any, splits: dict[str, Any] | None = None) -> dict[str, dict[str, int]] | None:
    """Subjects per class (survival: ``event`` / ``censored``), per split of ``splits`` (name ->
    indices; default one entry ``all``); None for tasks without classes (regression, segmentation)
    or datasets without labels. Every class of the task is listed, also one without subjects.
    ``robustmm data check`` and the report both count with it."""
    labels = ds.class_labels() if hasattr(ds, "class_labels") else None  # label-free datasets have none
    task = getattr(ds, "task", None)
    kind = getattr(task, "kind", "")
    if labels is None or kind not in ("binary", "multiclass", "survival"):
        return None
    labels = np.asarray(labels)
    parts = {k: np.asarray(v, dtype=np.int64) for k, v in splits.items()} if splits else {"all": slice(None)}
    if kind == "survival":
        return {k: {"event": int((labels[idx] > 0).sum()), "censored": int((labels[idx] <= 0).sum())}
                for k, idx in parts.items()}
    names = tuple(getattr(task, "class_names", ()) or ())
    values = sorted(set(range(len(names))) | {int(v) for v in labels.tolist()})
    label = {v: (names[v] if v < len(names) else str(v)) for v in values}
    return {k: {label[v]: int((labels[idx] == v).sum()) for v in values} for k, idx in parts.items()}


def describe_splits(data: Any) -> dict[str, Any]:
    """Subjects per split and class, and per split the subjects having each modality."""
    ds = data.dataset
    splits = {k: np.asarray(v, dtype=np.int64) for k, v in data.splits.as_dict().items()}
    presence = ds.natural_presence()
    out: dict[str, Any] = {
        "presence_by_split": {k: {m: int(np.asarray(p)[idx].sum()) for m, p in presence.items()}
                              for k, idx in splits.items()},
    }
    classes = class_counts(ds, splits)
    if classes is not None:
        out["classes_by_split"] = classes
    return out


def scenario_availability(scenarios: list, data: Any, split: str, seed: int) -> dict[str, dict[str, Any]]:
    """scenario name -> {"n": evaluated subjects, "missing": {modality: fraction without it},
    "natural_missing": {modality: fraction without it naturally}} over the evaluated subjects
    of ``split``. Scenarios that drop features rather than whole modalities keep ``present``
    as it is; a scenario whose masks cannot be recomputed here is left out."""
    batch = presence_batch(data, split)
    natural = batch.present
    out: dict[str, dict[str, Any]] = {}
    for s in scenarios:
        try:
            present = s._present(batch, data.modalities, seed, None)
            keep = s.evaluable(batch).numpy().astype(bool)
        except Exception:  # noqa: BLE001 - a scenario that needs the inputs themselves
            continue
        n = int(keep.sum())
        if n == 0:
            continue
        out[s.name] = {
            "n": n,
            "modality": getattr(s, "modality", None) or None,
            "missing": {m: float(1 - (present[m].numpy() & natural[m].numpy())[keep].mean()) for m in natural},
            "natural_missing": {m: float(1 - natural[m].numpy()[keep].mean()) for m in natural},
        }
        if getattr(s, "kind", "") in ("rmfm", "temporal_block") and s.rate is not None:
            out[s.name]["feature_rate"] = float(s.rate)  # positions dropped inside present modalities
    return out


def merge_availability(parts: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Availability over several folds: n summed, fractions weighted by each fold's n."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(k for part in parts for k in part):
        rows = [part[name] for part in parts if name in part]
        n = sum(r["n"] for r in rows)
        out[name] = {"n": n, "modality": rows[0].get("modality")}
        if rows[0].get("feature_rate") is not None:
            out[name]["feature_rate"] = rows[0]["feature_rate"]
        for key in ("missing", "natural_missing"):
            out[name][key] = {m: sum(r[key][m] * r["n"] for r in rows) / n for m in rows[0][key]}
    return out

"""Seeds as a study dimension: one run per seed, then mean ± sd and paired differences.

A study with ``seeds: [0, 1, 2]`` (or ``robustmm run STUDY --seeds 0-2``) runs completely once per
seed into ``seed_<s>/`` (each one an ordinary run folder: its own split, initialisation, dropout
masks and bootstrap). The top-level metrics.json then holds, per (method, scenario, metric):

* ``value``: the mean over seeds, ``sd``: their standard deviation, ``ci_low``/``ci_high``: a
  t-interval on the mean, ``seeds``: every seed's value;
* ``n``: subjects evaluated per seed, the smallest count over the seeds (each seed evaluates its own
  split, so the counts can differ; the smallest keeps the report's small-n warning honest), and
  ``n_per_seed``: every seed's count;
* ``paired``: for every method other than the reference (``evaluation.compare_to``; ``auto`` =
  dropout_baseline when the study has it), the per-seed difference method - reference with its
  mean, t-interval, the number of seeds that agree in sign and a verdict from the interval
  (robustmm.metrics.paired): "better"/"worse" only when the whole interval is on one side of 0.

Both methods of a pair share each seed's split and missing masks, so the difference cancels the
noise the two runs have in common. Aggregation only reads the seeds' metrics.json files, so a
resumed run aggregates to exactly the same document as an uninterrupted one. How the verdicts
are shown (summary.txt, report.html) is robustmm.report.repeats.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from robustmm.config.schema import StudyConfig
from robustmm.errors import RunDirectoryError
from robustmm.evaluate.runner import skipped_anywhere
from robustmm.metrics.bootstrap import confidence_label
from robustmm.metrics.paired import higher_is_better, paired_difference, t_interval

log = logging.getLogger("robustmm")


def seed_config(cfg: StudyConfig, seed: int) -> StudyConfig:
    """The single-seed study that runs into ``seed_<seed>/``."""
    return cfg.model_copy(update={"seed": seed, "seeds": None})


def seed_dir(run_dir: Path, seed: int) -> Path:
    return Path(run_dir) / f"seed_{seed}"


def finished_seed(folder: Path) -> dict[str, Any] | None:
    """The seed's metrics.json when that seed finished (written last, atomically), else None."""
    path = Path(folder) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def run_seeds(cfg: StudyConfig, run_dir: Path, run_one: Callable[[StudyConfig, Path, bool], Any],
              before_config: tuple[str, ...] = ("log.txt",)) -> dict[str, Any]:
    """Run every seed of ``cfg`` into ``seed_<s>/`` and return the aggregated metrics document.

    ``run_one(seed_cfg, folder, again)`` runs a single-seed study into ``folder`` (a new run
    folder, or ``again``: continue the one there). A finished seed (its metrics.json is written
    last) is read back, not rerun; an interrupted one resumes from its checkpoints. ``before_config``: the files
    a run writes into its folder before config.yaml; a seed folder holding only those never started training.
    """
    docs: dict[int, dict[str, Any]] = {}
    seeds = list(cfg.seeds or [])
    for i, s in enumerate(seeds):
        folder = seed_dir(run_dir, s)
        doc = finished_seed(folder)
        if doc is None:
            log.info("seed %d (%d of %d) into %s", s, i + 1, len(seeds), folder)
            again = (folder / "config.yaml").is_file()
            if folder.exists() and not again:  # killed before its config was written: nothing to keep
                for leftover in folder.iterdir():
                    if leftover.name not in before_config:
                        raise RunDirectoryError(f"{folder} has no config.yaml but holds {leftover.name}; "
                                                "move the folder away and resume again")
                for name in before_config:
                    (folder / name).unlink(missing_ok=True)
                folder.rmdir()
            run_one(seed_config(cfg, s), folder, again)
            doc = finished_seed(folder)
            if doc is None:
                raise RunDirectoryError(f"seed {s} finished without writing {folder / 'metrics.json'}; see "
                                        f"{folder / 'log.txt'}, then continue with --resume {run_dir}")
        docs[s] = doc
    return aggregate_seeds(docs, reference_method(cfg), cfg.evaluation.confidence, cfg.name)


def reference_method(cfg: StudyConfig) -> str | None:
    ref = cfg.evaluation.compare_to
    ids = [m.run_id for m in cfg.methods]
    if ref == "auto":
        return "dropout_baseline" if "dropout_baseline" in ids else None
    return ref


def _run_classes(value: int | list[int | None] | None) -> int | None:
    """A seed's predicted-class count: its record's, or with folds the largest over them (1 only when
    every fold predicted a single class, as a fold mean of sensitivity and specificity shows it)."""
    if isinstance(value, list):
        counts = [c for c in value if c is not None]
        return max(counts) if counts else None
    return value


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def aggregate_seeds(docs: dict[int, dict[str, Any]], reference: str | None, confidence: float = 0.95,
                    study: str | None = None) -> dict[str, Any]:
    """The top-level metrics document of a multi-seed run from each seed's metrics.json."""
    seeds = list(docs)
    first = docs[seeds[0]]
    keyed: dict[tuple[str, str, str], dict[int, dict]] = {}
    for s in seeds:
        for r in docs[s]["records"]:
            keyed.setdefault((r["method"], r["scenario"], r["metric"]), {})[s] = r

    def values(key: tuple[str, str, str]) -> np.ndarray:
        rows = keyed.get(key, {})
        return np.array([np.nan if rows.get(s, {}).get("value") is None else rows[s]["value"] for s in seeds],
                        dtype=float)

    paired: list[dict[str, Any]] = []
    verdicts: dict[tuple[str, str, str], str] = {}
    if reference is not None:
        for (method, scenario, metric), rows in keyed.items():
            if method == reference or (reference, scenario, metric) not in keyed:
                continue
            d = paired_difference(values((method, scenario, metric)), values((reference, scenario, metric)),
                                  higher_is_better(metric), confidence)
            any_row = next(iter(rows.values()))
            paired.append({"method": method, "reference": reference, "scenario": scenario, "group": any_row["group"],
                           "rate": any_row["rate"], "metric": metric,
                           **{k: (_num(v) if isinstance(v, float) else v) for k, v in d.to_dict().items()}})
            verdicts[(method, scenario, metric)] = d.verdict

    records = []
    for key, rows in keyed.items():
        method, scenario, metric = key
        v = values(key)
        finite = v[np.isfinite(v)]
        mean = float(finite.mean()) if finite.size else None
        low, high = t_interval(finite, confidence, metric)
        drops = [r["drop"] for r in rows.values() if r.get("drop") is not None]
        n_per_seed = {str(s): rows[s].get("n") if s in rows else None for s in seeds}
        counts = [n for n in n_per_seed.values() if n is not None]
        any_row = next(iter(rows.values()))
        records.append({"method": method, "scenario": scenario, "group": any_row["group"], "rate": any_row["rate"],
                        "metric": metric, "value": mean, "ci_low": low, "ci_high": high,
                        "sd": float(finite.std(ddof=1)) if finite.size > 1 else None,
                        "n": min(counts) if counts else None, "drop": float(np.mean(drops)) if drops else None,
                        "seeds": {str(s): _num(x) for s, x in zip(seeds, v)}, "n_per_seed": n_per_seed,
                        "verdict": verdicts.get(key)})
        classes = {str(s): _run_classes(rows[s].get("predicted_classes")) if s in rows else None for s in seeds}
        if any(c is not None for c in classes.values()):  # per seed, like the values
            records[-1]["predicted_classes"] = classes

    doc = {"study": study or first.get("study"), "split": first.get("split", "test"),
           "synthetic": any(bool(d.get("synthetic")) for d in docs.values()),
           "primary_metric": first["primary_metric"], "confidence": confidence,
           "seeds": {"seeds": seeds, "ci": f"{confidence_label(confidence)} t-interval over seed means",
                     "folders": [f"seed_{s}" for s in seeds]},
           "records": records, "skipped_scenarios": skipped_anywhere(list(docs.values())),
           "upper_bounds": first.get("upper_bounds", []),
           "paired": {"reference": reference, "confidence": confidence,
                      "difference": "method - reference, per seed; verdict from the t-interval over seeds",
                      "records": paired},
           "selection": {f"seed_{s}": docs[s].get("selection", {}) for s in seeds},
           "methods": first.get("methods", {}), "data": first.get("data", {}),
           # missing fractions of the first seed's test split (each seed draws its own split); the
           # report says its data section describes the first seed
           "availability": first.get("availability", {})}
    if "cross_validation" in first:
        doc["cross_validation"] = first["cross_validation"]
    return doc

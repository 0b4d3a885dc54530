"""Percentile bootstrap over subjects, with indices shared across methods (paired)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def check_confidence(confidence: float) -> None:
    """A confidence level is a fraction strictly between 0 and 1 (0.95, not 95)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, e.g. 0.95; got {confidence!r}")


def confidence_label(confidence: float) -> str:
    """``0.95`` -> ``95%``, ``0.975`` -> ``97.5%``: the level as printed (``:.0%`` made 0.995 read 100%)."""
    return f"{round(100 * confidence, 6):g}%"


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resampling indices; pass the same array to every method for paired CIs."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_ci(
    metric_fn: Callable[[np.ndarray], dict[str, float]],
    n: int,
    indices: np.ndarray,
    confidence: float = 0.95,
) -> dict[str, tuple[float, float, float]]:
    """``metric_fn(idx)`` returns metrics on the rows ``idx``; returns name -> (value, lo, hi).

    Resamples where a metric is undefined (e.g. one class only) are ignored for that metric; a metric
    undefined on all ``n`` rows gets no interval.
    """
    check_confidence(confidence)
    indices = np.asarray(indices)
    if indices.ndim != 2 or (indices.size and not 0 <= indices.min() <= indices.max() < n):
        raise ValueError(f"indices must be a (resamples, n) array of rows 0..{n - 1} (bootstrap_indices(n, ...)), "
                         f"got shape {indices.shape}" + (f" with rows up to {indices.max()}" if indices.size else ""))
    point = metric_fn(np.arange(n))
    samples: dict[str, list[float]] = {k: [] for k in point}
    for idx in indices:
        for k, v in metric_fn(idx).items():
            if k in samples and np.isfinite(v):
                samples[k].append(v)
    alpha = (1 - confidence) / 2
    out = {}
    for k, v in point.items():
        s = np.asarray(samples[k])
        # no interval around an undefined value (resamples that missed a NaN score would give one)
        lo, hi = (np.quantile(s, [alpha, 1 - alpha]) if s.size >= 10 and np.isfinite(v) else (np.nan, np.nan))
        out[k] = (float(v), float(lo), float(hi))
    return out

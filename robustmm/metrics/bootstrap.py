"""Percentile bootstrap over subjects, with indices shared across methods (paired)."""

from __future__ import annotations

from typing import Callable

import numpy as np


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

    Resamples where a metric is undefined (e.g. one class only) are ignored for that metric.
    """
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
        lo, hi = (np.quantile(s, [alpha, 1 - alpha]) if s.size >= 10 else (np.nan, np.nan))
        out[k] = (float(v), float(lo), float(hi))
    return out

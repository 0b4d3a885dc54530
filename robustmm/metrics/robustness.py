"""Robustness summaries over missing-rate grids."""

from __future__ import annotations

import numpy as np


def auilc(values, rates) -> float:
    """Area under the metric-vs-missing-rate curve (trapezoid rule over ``rates``, which are
    fractions in [0, 1], each given once, in any order); NaN when a value is NaN.

    With the RMFM grid 0.0, 0.1, ..., 1.0 this is sum_i (m_i + m_{i+1}) * 0.1 / 2.
    """
    v = np.asarray(values, dtype=float)
    r = np.asarray(rates, dtype=float)
    if v.shape != r.shape or v.ndim != 1 or v.size < 2:
        raise ValueError(f"auilc needs two equal-length 1-D sequences of >= 2 values, got {v.shape} and {r.shape}")
    if not np.all((r >= 0) & (r <= 1)):  # also refuses NaN
        raise ValueError(f"auilc: rates are missing fractions in [0, 1], got {r.tolist()} (percentages? divide by 100)")
    if np.unique(r).size != r.size:
        raise ValueError(f"auilc: each rate once, got {r.tolist()} (two values at one rate leave the curve undefined)")
    order = np.argsort(r)
    v, r = v[order], r[order]
    return float(np.sum((v[1:] + v[:-1]) * np.diff(r) / 2.0))

"""Robustness summaries over missing-rate grids."""

from __future__ import annotations

import numpy as np


def auilc(values, rates) -> float:
    """Area under the metric-vs-missing-rate curve (trapezoid rule over ``rates``).

    With the RMFM grid 0.0, 0.1, ..., 1.0 this is sum_i (m_i + m_{i+1}) * 0.1 / 2.
    """
    v = np.asarray(values, dtype=float)
    r = np.asarray(rates, dtype=float)
    if v.shape != r.shape or v.ndim != 1 or v.size < 2:
        raise ValueError(f"auilc needs two equal-length 1-D sequences of >= 2 values, got {v.shape} and {r.shape}")
    order = np.argsort(r)
    v, r = v[order], r[order]
    return float(np.sum((v[1:] + v[:-1]) * np.diff(r) / 2.0))

"""Multiple comparisons over a run's family of one-sided p-values: Holm (family-wise error)
and Benjamini-Hochberg (false discovery rate). Plain functions of p-values; nothing else."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check_p(p_values: Sequence[float]) -> np.ndarray:
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    return p


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (family-wise error), in input order.

    Sorted ascending, adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))."""
    p = _check_p(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return [float(x) for x in out]


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate), in input order.

    Sorted ascending, adjusted p_(i) = min_{j >= i} min(1, m p_(j) / j)."""
    p = _check_p(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, m * p[order] / np.arange(1, m + 1))
    adj = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = adj
    return [float(x) for x in out]

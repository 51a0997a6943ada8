"""Cosine similarities of gradient estimates, raw and corrected for the true gradient's noise.

Plain functions of arrays, used by :mod:`pgclaims.measure.gradients` (and by the tests that
check them against simulations with a known gradient).

The noise-corrected cosine (:func:`debiased_cosines`). The "true" gradient is itself an
estimate from a finite pool, g_hat = g + noise, so E|g_hat|^2 = |g|^2 + tr(Cov)/M and the raw
cosine <e, g_hat> / (|e| |g_hat|) is pulled toward 0. The pool is a union of m independent
units (chunks) j with sums u_j, E[u_j] = w_j g (w_j: pairs in unit j, W = sum_j w_j,
S = sum_j u_j, so g_hat = S / W up to a positive scale). For an estimate e independent of the
pool,

    c_debiased = (<e, S> / W) / (|e| sqrt(U)),
    U = sum_{j != l} <u_j, u_l> / sum_{j != l} w_j w_l
      = (|S|^2 - sum_j |u_j|^2) / (W^2 - sum_j w_j^2).

Given e, <e, S> / W is unbiased for <e, g>, and U is unbiased for |g|^2 (a U-statistic over
pairs of distinct, independent units; pairs within a unit are left out because the samples of a
chunk share trajectories). c_debiased estimates cos(e, g), the cosine with the exact gradient
the pool converges to. It is a ratio estimator: consistent as the pool grows, not exactly
unbiased (the 1 / sqrt(U) of a noisy U biases it upward, by ~3/8 Var(U) / |g|^4 relative), and
it can exceed 1 in magnitude when U is small. It is never clipped. When U is not positive
(beyond rounding: the pool shows no signal above its noise) the cosine is undefined and
returned as NaN, for the caller to count. The raw cosine with g_hat is c_debiased *
sqrt(:func:`signal_fraction`).
"""

from __future__ import annotations

import numpy as np

ROUNDING = 64 * np.finfo(np.float64).eps
"""U counts as zero below this fraction of |S|^2 + sum_j |u_j|^2 (cancellation error)."""


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        raise ValueError("cosine of a zero vector")
    return float(u @ v / (nu * nv))


def loo_pairwise(vectors: np.ndarray) -> np.ndarray:
    """For each row i: mean cosine with every other row. Their mean is the mean pairwise cosine."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    r = len(vectors)
    return (sims.sum(axis=1) - np.diag(sims)) / (r - 1)


def unit_moments(s_ga: np.ndarray, s_g: np.ndarray, n: int) -> np.ndarray:
    """(|s_ga|^2, <s_ga, s_g>, |s_g|^2, n^2) of one unit: what :func:`centered_sq` needs.

    Summed over units, they give sum_j |s_ga_j - mu s_g_j|^2 for any centering mu chosen later
    (the pool's mean advantage is known only once the pool is complete)."""
    return np.array([s_ga @ s_ga, s_ga @ s_g, s_g @ s_g, float(n) * n])


def centered_sq(moments: np.ndarray, mu: float) -> float:
    """sum_j |s_ga_j - mu s_g_j|^2 from the summed :func:`unit_moments` of the units j."""
    return float(moments[0] - 2 * mu * moments[1] + mu * mu * moments[2])


def cross_pool_sq_norm(pool_sum: np.ndarray, pool_sq: float, weight: float,
                       weight_sq: float) -> float:
    """U, the unbiased estimate of |g|^2 in the module docstring (NaN below 2 units).

    ``pool_sum`` = S = sum_j u_j, ``pool_sq`` = sum_j |u_j|^2, ``weight`` = W = sum_j w_j,
    ``weight_sq`` = sum_j w_j^2. Not positive beyond rounding: returned as it is (<= 0)."""
    pairs = weight * weight - weight_sq
    if not pairs > 0:
        return float("nan")
    s2 = float(pool_sum @ pool_sum)
    cross = s2 - pool_sq
    if abs(cross) <= ROUNDING * (s2 + pool_sq):
        cross = 0.0
    return cross / pairs


def signal_fraction(pool_sum: np.ndarray, pool_sq: float, weight: float,
                    weight_sq: float) -> float:
    """U / |S / W|^2: the estimated share of |g_hat|^2 that is |g|^2 (1 for a noiseless pool).

    raw cosine = debiased cosine * sqrt(this); with equal unit weights it is <= 1."""
    s2 = float(pool_sum @ pool_sum)
    return cross_pool_sq_norm(pool_sum, pool_sq, weight, weight_sq) * weight * weight / s2


def debiased_cosines(estimates: np.ndarray, pool_sum: np.ndarray, pool_sq: float,
                     weight: float, weight_sq: float) -> np.ndarray:
    """c_debiased of the module docstring for each row of ``estimates`` (k, dim) -> (k,).

    The estimates must be independent of the pool's units. NaN for every row when U is not
    positive; a zero estimate raises, as in :func:`cosine`."""
    e = np.atleast_2d(np.asarray(estimates, dtype=np.float64))
    norms = np.linalg.norm(e, axis=1)
    if np.any(norms == 0):
        raise ValueError("cosine of a zero vector")
    g_sq = cross_pool_sq_norm(pool_sum, pool_sq, weight, weight_sq)
    if not g_sq > 0:
        return np.full(len(e), np.nan)
    return (e @ pool_sum / weight) / (norms * np.sqrt(g_sq))


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean cosine similarity over all pairs i < j of the rows of ``vectors`` (dimensionless).

    Raises ValueError for fewer than 2 rows, a zero row or non-finite entries."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] < 2:
        raise ValueError(f"need a 2-D array with at least 2 rows (vectors), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("vectors contain non-finite entries")
    scale = np.max(np.abs(v), axis=1, keepdims=True)
    if np.any(scale == 0):
        raise ValueError(f"zero vector in rows {np.flatnonzero(scale[:, 0] == 0).tolist()}")
    u = v / scale  # guards the norm against overflow and underflow
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    gram = u @ u.T
    i, j = np.triu_indices(len(u), k=1)
    return float(np.clip(gram[i, j], -1.0, 1.0).mean())

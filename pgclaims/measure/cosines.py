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
the pool converges to. The raw cosine with g_hat is c_debiased * sqrt(:func:`signal_fraction`).

Why the denominator is shrunk (:func:`shrunk_sq_norm`). U is unbiased but noisy: its relative
standard error r = sd(U) / |g|^2 is about tau sqrt(2 / d_eff), tau = tr(Cov) / (M |g|^2) the
pool's noise-to-signal ratio and d_eff = tr(Cov)^2 / tr(Cov^2) the effective dimension of the
gradient noise. Policy-gradient noise has few effective dimensions (15 to 45 measured on the
committed Hopper and Walker2d agents, ~700 on Humanoid), so at a 1.5e5-pair pool r reaches
0.3 to 1 late in training. Then a / sqrt(U) is biased upward by ~3/8 r^2, and U <= 0 for some
studies, where it is undefined. A study's cosine with U replaced by

    U_s = (U + sqrt(U^2 + kappa V)) / 2,

V an estimate of Var(U), is defined for every study (U_s > 0 whenever V > 0), equals U when the
pool resolves |g| (V << U^2), and removes the first-order bias: 1 / sqrt(U_s) ~ U^{-1/2} (1 -
kappa V / (8 U^2)). V is the delete-one-group jackknife variance of U over the pool's
independent groups (the streams of :mod:`.gradients`). For a U-statistic of degree 2 the
jackknife holds the linear part of Var(U) and overstates its degenerate part by up to
2 (m - 1) / (m - 2) (m groups; 2.3 at the 9 groups of a 10-repeat study), so kappa
(:data:`SHRINK`) is chosen for the smallest worst-case relative bias for normal U over r in
[0, 1] and that whole range of overstatement: 0.9 gives at most 8%. Simulated at the default
scale's pool (``tests/cosine_sim.py``: noise of effective dimension 15-45, signal fractions
0.2-0.5, so r up to ~1.8) its relative bias against the exact cosine is -12% to +4%, where
dividing by sqrt(U) was +2% to +109% on the studies it defined and undefined on up to 58% of
them; at a signal fraction of 0.1 (r ~ 2.4-3.6, |g| barely resolved) it is -9% to -37%, and the
5-agent interval still covers (``tests/test_true_cosine.py`` asserts bias and coverage). Not
clipped: it can exceed 1 in magnitude.
"""

from __future__ import annotations

import numpy as np

ROUNDING = 64 * np.finfo(np.float64).eps
"""U counts as zero below this fraction of |S|^2 + sum_j |u_j|^2 (cancellation error)."""
SHRINK = 0.9
"""kappa of :func:`shrunk_sq_norm`: the minimax choice of the module docstring."""


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


def group_jackknife_var(sums: np.ndarray, sq: np.ndarray, weight: np.ndarray,
                        weight_sq: np.ndarray) -> float:
    """Delete-one-group jackknife variance of U over a pool made of independent groups.

    Row k of ``sums`` (groups, dim) is group k's sum of units; ``sq``, ``weight`` and
    ``weight_sq`` its sum of |u_j|^2, of w_j and of w_j^2. NaN below 2 groups (no spread to
    measure) or when a group's removal leaves fewer than 2 units."""
    sums = np.atleast_2d(np.asarray(sums, dtype=np.float64))
    sq, w, w2 = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (sq, weight, weight_sq))
    g = len(sums)
    if g < 2:
        return float("nan")
    gram = sums @ sums.T
    s2 = float(gram.sum())
    s_dot = gram.sum(axis=1)  # <S, T_k>
    rest_w, rest_w2 = w.sum() - w, w2.sum() - w2
    pairs = rest_w * rest_w - rest_w2
    if not np.all(pairs > 0):
        return float("nan")
    loo = (s2 - 2 * s_dot + np.diag(gram) - (sq.sum() - sq)) / pairs
    return float((g - 1) / g * np.sum((loo - loo.mean()) ** 2))


def shrunk_sq_norm(u: float, var: float, kappa: float = SHRINK) -> float:
    """U_s = (U + sqrt(U^2 + kappa V)) / 2 of the module docstring: positive when V > 0, ~U
    when V << U^2. NaN when U or V is."""
    if not (np.isfinite(u) and np.isfinite(var)):
        return float("nan")
    return 0.5 * (u + float(np.sqrt(u * u + kappa * max(var, 0.0))))


def debiased_cosines(estimates: np.ndarray, pool_sum: np.ndarray, pool_sq: float,
                     weight: float, weight_sq: float, var: float | None = None) -> np.ndarray:
    """c_debiased of the module docstring for each row of ``estimates`` (k, dim) -> (k,).

    The estimates must be independent of the pool's units. ``var``: an estimate of Var(U)
    (:func:`group_jackknife_var`), which makes the cosine defined for every pool
    (:func:`shrunk_sq_norm`); None divides by sqrt(U) itself, NaN for every row when U is not
    positive. A zero estimate raises, as in :func:`cosine`."""
    e = np.atleast_2d(np.asarray(estimates, dtype=np.float64))
    norms = np.linalg.norm(e, axis=1)
    if np.any(norms == 0):
        raise ValueError("cosine of a zero vector")
    g_sq = cross_pool_sq_norm(pool_sum, pool_sq, weight, weight_sq)
    if var is not None:
        g_sq = shrunk_sq_norm(g_sq, var)
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

"""The verdict engine's intervals over agents, and the replicates behind bootstrap p-values.

Data model (CLAIMS.md, "Replication unit"): a claim's data is one entry per agent (training
seed), each either an array whose first axis is the repeated measurement (a second axis holds
quantities measured jointly on the same repeat) or a dict of such arrays, one per quantity with
its own repeats (e.g. ``{"early": (10,), "late": (10,)}``). A statistic maps that structure (a
list with one entry per agent) to one float.

Interval methods (``method=``), all reporting their name in :attr:`Interval.method`:

- ``"auto"`` (default): the jackknife-t computed on the scale the statistic's declared
  ``support`` calls for (:mod:`pgclaims.stats.pivot`): Fisher's z (atanh) for a bounded
  statistic ("atanh-t"), the log for a one-sided bound ("log-t"), the raw scale otherwise
  ("jackknife-t"). Carries a :class:`~pgclaims.stats.pivot.Pivot`, so p-values come from the t
  distribution and the interval can be read at any level (:meth:`Interval.at`).
- ``"jackknife-t"``: the same on the raw scale whatever the support. For a statistic that
  averages agent-level summaries the jackknife pseudo-values *are* those summaries, so this is
  the one-sample t interval on agent summaries, exact for normal ones at any number of agents.
  With a single agent the repeats are the unit: leave one repeat out (per quantity, unless
  paired), df = n_repeats - 1 (Welch-Satterthwaite over quantities). Needs no resampling.
- ``"bootstrap-t"``: studentized two-stage bootstrap; each replicate's SE is the jackknife SE
  over its resampled agents (or repeats, for one agent).
- ``"percentile"``: two-stage (hierarchical) bootstrap, agents with replacement, then repeats
  within each drawn agent; with one agent only the second stage.
- ``"bca"``: the same replicates, bias-corrected and accelerated.

Why the default is not a bootstrap quantile: a quantile cannot leave the hull of what was
resampled. With 3 agents the percentile interval is roughly [min, max] of 3 agent means, which
holds the population mean with probability about 1 - 2 (1/2)^3 = 0.75; BCa or a calibrated
bootstrap re-weights quantiles and cannot fix that, nor resolve the 1e-4 tails a family-level
verdict reads. The t interval widens honestly instead. Measured coverage of every method on
normal, skewed and bounded shapes at 3, 5 and 10 agents: docs/statistics.md
(``benchmarks/calibration.py``).

p-values: :meth:`Interval.p_values` (t methods) reads the pivot; :func:`one_sided_p_value`
shifts bootstrap replicates to the null (resolution 1 / (B + 1)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as sps

from pgclaims.stats.pivot import (
    Pivot,
    Support,
    check_support,
    inverse,
    jackknife_pivot,
    jackknife_se_df,
    jackknife_var,
    transform_for,
)

METHODS = ("auto", "jackknife-t", "bootstrap-t", "percentile", "bca")
DEFAULT_METHOD = "auto"
T_METHODS = ("auto", "jackknife-t")
"""The methods that carry a :class:`Pivot` (t p-values, an interval at any level)."""
_CHUNK_BYTES = 32 * 2**20  # memory budget for one batch of resampled data

Unit = Mapping[str, np.ndarray] | np.ndarray
Statistic = Callable[[list[Any]], Any]


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval for a statistic pooled over agents."""

    low: float
    high: float
    estimate: float
    """The statistic on the observed data (not a bootstrap mean)."""
    confidence_level: float
    method: str
    """One of :data:`METHODS`."""
    n_agents: int
    n_repeats: int
    """Typical (median) repeats per agent and quantity."""
    pivot: Pivot | None = None
    """The studentized statistic behind a t interval (None for bootstrap methods)."""

    def at(self, confidence_level: float) -> Interval:
        """The same interval read at another confidence level (t methods only)."""
        if self.pivot is None:
            raise ValueError(f"a {self.method} interval has no pivot to read at another level")
        low, high = self.pivot.interval(confidence_level)
        return replace(self, low=low, high=high, confidence_level=confidence_level)

    def p_values(self, threshold: float, direction: str) -> tuple[float, float] | None:
        """(p_claim, p_refute) from the pivot's t distribution; None without a pivot or when
        the agents do not differ (zero spread)."""
        return None if self.pivot is None else self.pivot.p_values(threshold, direction)


# ---------------------------------------------------------------------------------------------
# Data preparation


@dataclass(frozen=True)
class _Data:
    units: list[dict[str, np.ndarray]]
    as_arrays: bool  # the caller passed arrays; they are stored under the key ""
    groups: tuple[tuple[str, ...], ...]  # keys resampled with joint row indices
    lengths: np.ndarray  # (n_agents, n_groups) repeats

    @property
    def n_agents(self) -> int:
        return len(self.units)

    def public(self, units: list[dict[str, np.ndarray]]) -> list[Any]:
        return [u[""] for u in units] if self.as_arrays else units


def _prepare(units: Sequence[Unit], paired: bool) -> _Data:
    units = list(units)
    if not units:
        raise ValueError("no agents: pass one array or dict of arrays per agent")
    is_map = [isinstance(u, Mapping) for u in units]
    if any(is_map) and not all(is_map):
        raise ValueError("mix of dicts and arrays: pass one kind of unit for every agent")
    if all(is_map):
        keys = tuple(units[0].keys())
        dicts = []
        for i, u in enumerate(units):
            if set(u.keys()) != set(keys):
                raise ValueError(
                    f"agent {i} has quantities {sorted(u)}, agent 0 has {sorted(keys)}"
                )
            dicts.append({k: np.asarray(u[k], dtype=np.float64) for k in keys})
        groups = (keys,) if paired else tuple((k,) for k in keys)
    else:
        dicts = [{"": np.asarray(u, dtype=np.float64)} for u in units]
        keys, groups = ("",), (("",),)
    lengths = np.empty((len(dicts), len(groups)), dtype=np.intp)
    for i, u in enumerate(dicts):
        for k in keys:
            if u[k].ndim < 1 or len(u[k]) < 1:
                raise ValueError(f"agent {i}, quantity {k!r}: need at least one repeat (axis 0)")
        for g, group in enumerate(groups):
            lens = {len(u[k]) for k in group}
            if len(lens) != 1:
                raise ValueError(
                    f"paired=True but agent {i} has {sorted(lens)} repeats across {group}; "
                    "paired quantities need equal repeats"
                )
            lengths[i, g] = lens.pop()
    return _Data(dicts, not all(is_map), groups, lengths)


def _evaluate(
    statistic: Statistic, data: _Data, units: list[dict[str, np.ndarray]], vectorized: bool
) -> float:
    """The statistic on one (unbatched) structure."""
    if not vectorized:
        return float(statistic(data.public(units)))
    batched = [{k: v[None] for k, v in u.items()} for u in units]
    out = np.asarray(statistic(data.public(batched)), dtype=np.float64).reshape(-1)
    if out.size != 1:
        raise ValueError(f"vectorized statistic returned {out.size} values for 1 resample")
    return float(out[0])


# ---------------------------------------------------------------------------------------------
# Resampling


def _chunks(data: _Data, n_resamples: int) -> Iterator[int]:
    per = (
        8
        * data.n_agents
        * sum(
            int(data.lengths[:, g].max())
            * (1 + max(int(np.prod(data.units[0][k].shape[1:])) for k in group))
            for g, group in enumerate(data.groups)
        )
    )
    size = max(1, min(n_resamples, _CHUNK_BYTES // max(per, 1)))
    for start in range(0, n_resamples, size):
        yield min(size, n_resamples - start)


def _draw(rng: np.random.Generator, data: _Data, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Agent indices (size, n_agents) and, per group, row indices (size, n_agents, max repeats).

    Row indices past a resampled agent's own repeat count are unused (ragged agents)."""
    n = data.n_agents
    agents = rng.integers(n, size=(size, n)) if n > 1 else np.zeros((size, 1), dtype=np.intp)
    rows = []
    for g in range(len(data.groups)):
        lens = data.lengths[agents, g]  # (size, n)
        u = rng.random((size, n, int(data.lengths[:, g].max())))
        rows.append(np.minimum((u * lens[..., None]).astype(np.intp), lens[..., None] - 1))
    return agents, rows


def _loo(
    call: Callable[[list[dict[str, np.ndarray]]], Any],
    units: list[dict[str, np.ndarray]],
    groups: tuple[tuple[str, ...], ...],
    lengths: np.ndarray,
    axis: int,
) -> list[np.ndarray]:
    """Leave-one-out values of ``call(units)``: over agents, or (one agent) over the repeats of
    each group, repeats lying on ``axis``. One array per group, shape (m,) + call's shape."""
    if len(units) > 1:
        return [np.array([call(units[:i] + units[i + 1 :]) for i in range(len(units))])]
    loo = []
    for g, group in enumerate(groups):
        m = int(lengths[g])
        if m < 2:
            raise ValueError(
                f"one agent with {m} repeat of {group}: an interval needs 2 agents or 2 repeats"
            )
        vals = []
        for i in range(m):
            dropped = {
                k: (np.delete(v, i, axis=axis) if k in group else v) for k, v in units[0].items()
            }
            vals.append(call([dropped]))
        loo.append(np.array(vals))
    return loo


def _jackknife(statistic: Statistic, data: _Data, vectorized: bool) -> list[np.ndarray]:
    return _loo(
        lambda us: _evaluate(statistic, data, us, vectorized),
        data.units,
        data.groups,
        data.lengths[0],
        axis=0,
    )


def _replicates(
    statistic: Statistic,
    data: _Data,
    n_resamples: int,
    rng: np.random.Generator,
    vectorized: bool,
    studentize: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Two-stage bootstrap replicates and, if ``studentize``, each replicate's jackknife SE."""
    out, se = np.empty(n_resamples), (np.empty(n_resamples) if studentize else None)
    pos = 0
    stacked: dict[str, np.ndarray] = {}
    if vectorized:
        for g, group in enumerate(data.groups):
            if len(set(data.lengths[:, g])) != 1:
                raise ValueError(
                    f"vectorized=True needs equal repeats per agent for {group}, got "
                    f"{sorted(set(data.lengths[:, g].tolist()))}; pass vectorized=False"
                )
            for k in group:
                stacked[k] = np.stack([u[k] for u in data.units])

    def batched(us: list[dict[str, np.ndarray]], size: int) -> np.ndarray:
        vals = np.asarray(statistic(data.public(us)), dtype=np.float64).reshape(-1)
        if vals.size != size:
            raise ValueError(f"vectorized statistic returned {vals.size} values for {size}")
        return vals

    def single(us: list[dict[str, np.ndarray]]) -> float:
        return float(statistic(data.public(us)))

    for size in _chunks(data, n_resamples):
        agents, rows = _draw(rng, data, size)
        if vectorized:
            res = {
                k: stacked[k][agents[:, :, None], rows[g]]
                for g, group in enumerate(data.groups)
                for k in group
            }
            slots = [{k: v[:, j] for k, v in res.items()} for j in range(data.n_agents)]
            out[pos : pos + size] = batched(slots, size)
            if se is not None:
                loo = _loo(
                    lambda us, n=size: batched(us, n), slots, data.groups, data.lengths[0], axis=1
                )
                se[pos : pos + size] = np.sqrt(jackknife_var(loo).sum(axis=0))
        else:
            for b in range(size):
                slots = []
                for j, a in enumerate(agents[b]):
                    unit = data.units[a]
                    slot = {}
                    for g, group in enumerate(data.groups):
                        idx = rows[g][b, j, : data.lengths[a, g]]
                        for k in group:
                            slot[k] = unit[k][idx]
                    slots.append(slot)
                out[pos + b] = single(slots)
                if se is not None:
                    loo = _loo(single, slots, data.groups, data.lengths[agents[b, 0]], axis=0)
                    se[pos + b] = math.sqrt(float(jackknife_var(loo).sum()))
        pos += size
    return out, se


def hierarchical_bootstrap(
    units: Sequence[Mapping[str, np.ndarray]] | Sequence[np.ndarray],
    statistic: Statistic,
    *,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    rng: np.random.Generator | int,
    method: str = DEFAULT_METHOD,
    paired: bool = False,
    vectorized: bool = False,
    support: Support | None = None,
) -> tuple[Interval, np.ndarray]:
    """Confidence interval for ``statistic`` over agents, and replicates for p-values.

    Args:
        units: one entry per agent: an array (axis 0 = repeats; further axes are measured
            jointly on a repeat) or a dict of such arrays (quantities with their own repeats).
        statistic: maps a list with one entry per agent (same form as ``units``) to a float.
            With ``vectorized=True`` every array it receives carries a leading resample axis
            (repeats on axis 1) and it returns one value per resample, e.g.
            ``lambda us: np.mean([u.mean(axis=-1) for u in us], axis=0)``.
        n_resamples: bootstrap resamples, or (jackknife-t) the number of replicates returned.
        confidence_level: two-sided coverage, e.g. 0.95.
        rng: a Generator or an int seed; nothing else is random.
        method: one of :data:`METHODS`; see the module docstring for measured coverage.
        paired: for dict units, resample all quantities of an agent with the same row indices
            (they must have equal repeats). Arrays are always resampled by whole rows.
        vectorized: see ``statistic``; needs equal repeats across agents per quantity.
        support: (lo, hi), the values the statistic can take (inf allowed; None: the whole
            line). ``method="auto"`` picks its scale from it; an estimate outside it is an
            error (a wrong declaration or bad data).

    Returns:
        The interval, and ``n_resamples`` replicates r whose spread r - estimate stands for
        that of estimate - truth, for :func:`one_sided_p_value`: for percentile and bca the
        two-stage bootstrap replicates; for bootstrap-t estimate + SE * t*; for the t methods
        the pivot's quantiles h^-1(h(estimate) + SE * t_df((k + 0.5) / B)), k < B (no random
        draws; prefer :meth:`Interval.p_values`, which has no resolution limit).
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}; choose one of {METHODS}")
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level={confidence_level}; need a value in (0, 1)")
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples}; need at least 1")
    if rng is None or not isinstance(rng, np.random.Generator | int | np.integer):
        raise TypeError("rng must be a numpy Generator or an int seed (no global randomness)")
    bounds = check_support(support)
    gen = np.random.default_rng(rng)
    data = _prepare(units, paired)
    estimate = _evaluate(statistic, data, data.units, vectorized)
    if not (math.isnan(estimate) or bounds[0] <= estimate <= bounds[1]):  # NaN: no verdict
        raise ValueError(f"the statistic is {estimate}, outside its declared support "
                         f"[{bounds[0]}, {bounds[1]}]")
    alpha = 1.0 - confidence_level
    levels = np.array([alpha / 2, 1.0 - alpha / 2])
    pivot = None
    if method in T_METHODS:
        transform = transform_for(bounds) if method == "auto" else "identity"
        pivot = jackknife_pivot(estimate, _jackknife(statistic, data, vectorized), bounds,
                                transform)
        low, high = pivot.interval(confidence_level)
        q = sps.t.ppf((np.arange(n_resamples) + 0.5) / n_resamples, pivot.df)
        reps = inverse(pivot.centre + pivot.se * q, pivot.transform, bounds)
    elif method == "bootstrap-t":
        se, _ = jackknife_se_df(_jackknife(statistic, data, vectorized))
        theta, se_star = _replicates(statistic, data, n_resamples, gen, vectorized, True)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_star = (theta - estimate) / se_star
        # A resample without spread (se* = 0) is maximally extreme, or neutral if it equals the
        # estimate; clipping keeps quantile interpolation finite.
        t_star = np.clip(np.where(theta == estimate, 0.0, t_star), -1e300, 1e300)
        reps = estimate + se * t_star
        low, high = estimate - se * np.quantile(t_star, levels[::-1])
    else:
        reps, _ = _replicates(statistic, data, n_resamples, gen, vectorized, False)
        if method == "bca":
            levels = _bca_levels(reps, estimate, _jackknife(statistic, data, vectorized), levels)
        low, high = np.quantile(reps, levels)
    interval = Interval(
        low=float(low),
        high=float(high),
        estimate=estimate,
        confidence_level=confidence_level,
        method=method if pivot is None else pivot.method,
        n_agents=data.n_agents,
        n_repeats=int(np.median(data.lengths)),
        pivot=pivot,
    )
    return interval, np.asarray(reps, dtype=np.float64)


def _bca_levels(
    reps: np.ndarray, estimate: float, loo: list[np.ndarray], levels: np.ndarray
) -> np.ndarray:
    b = len(reps)
    frac = (np.sum(reps < estimate) + 0.5 * np.sum(reps == estimate)) / b
    z0 = special.ndtri(np.clip(frac, 0.5 / b, 1.0 - 0.5 / b))
    u = np.concatenate([x.mean() - x for x in loo])
    denom = np.sum(u**2)
    accel = float(np.sum(u**3) / (6.0 * denom**1.5)) if denom > 0 else 0.0
    z = special.ndtri(levels)
    return special.ndtr(z0 + (z0 + z) / (1.0 - accel * (z0 + z)))

"""What it would take to decide an INCONCLUSIVE verdict: agents needed, and how sure that is.

An interval over ``n`` agents implies a between-agent standard deviation ``s`` of the per-agent
statistic: ``s = se * sqrt(n)`` read from its pivot (on the scale the interval is computed on,
:mod:`pgclaims.stats.pivot`), or, for an interval without one, ``s = h * sqrt(n) / t(n - 1)``
from its half-width ``h`` on the threshold's side. Holding the estimate and ``s`` fixed, ``m``
agents give a verdict at ``alpha_side`` per side (the decision's level: 0.025 for the per-row
rule, alpha / (2 m) for the family rule) with probability ``power`` when

    (t_{1 - alpha_side}(m - 1) + t_power(m - 1)) * s / sqrt(m) <= d,

``d`` the distance of the estimate to the threshold: the usual two-quantile rule with Student
quantiles. That figure assumes the estimate and the spread are exact. They are not: with 5
agents the spread is known to within a factor of about 0.6-2.9 and the effect to within its
interval. :attr:`Power.assurance` carries that uncertainty: the predictive probability, given
this run's data (flat prior on the effect, the usual 1/s^2 prior on the spread), that
``agents_needed`` new agents decide the row (either way). :attr:`Power.agents_needed_predictive`
is the count whose predictive probability reaches ``power``. Both count agents at the scale's
per-agent sample sizes (N, repeats).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from pgclaims.stats.intervals import Interval

MAX_AGENTS = 10_000
"""Beyond this many agents the answer is "more than MAX_AGENTS"."""
NODES = 32
"""Quadrature nodes per dimension (effect, spread) of the predictive probability."""


@dataclass(frozen=True)
class Power:
    """Width of an interval, distance of its estimate to the threshold, agents to decide it."""

    width: float
    """high - low."""
    distance: float
    """|estimate - threshold|, in the statistic's units."""
    spread: float
    """Implied between-agent standard deviation of the statistic, in its units (see the module
    docstring; from the interval's half-width on the threshold's side)."""
    n_agents: int
    """Agents behind the interval."""
    agents_needed: int | None
    """Smallest agent count deciding the claim with probability :attr:`power` if the estimate
    and the spread hold; None when no count up to :data:`MAX_AGENTS` does."""
    power: float
    alpha_side: float = 0.025
    """The per-side level the new agents' verdict would be decided at."""
    assurance: float | None = None
    """Predictive probability that :attr:`agents_needed` agents decide the row, given the
    uncertainty of the estimate and of the spread measured here."""
    agents_needed_predictive: int | None = None
    """Smallest agent count whose predictive probability of a decision reaches :attr:`power`;
    None beyond :data:`MAX_AGENTS`."""

    def to_dict(self) -> dict[str, float | int | None]:
        return {"width": self.width, "distance": self.distance, "spread": self.spread,
                "n_agents": self.n_agents, "agents_needed": self.agents_needed,
                "power": self.power, "alpha_side": self.alpha_side,
                "assurance": self.assurance,
                "agents_needed_predictive": self.agents_needed_predictive}

    def sentence(self) -> str:
        need = (f"about {self.agents_needed} agents" if self.agents_needed is not None
                else f"more than {MAX_AGENTS} agents")
        text = (f"interval width {self.width:.3g}; the estimate is {self.distance:.3g} from the "
                f"threshold; {need} would decide it with probability {self.power:.0%} "
                f"(now {self.n_agents}), if the estimate and the between-agent spread "
                f"({self.spread:.3g}) hold")
        if self.assurance is not None and self.agents_needed is not None:
            pred = (f"about {self.agents_needed_predictive}"
                    if self.agents_needed_predictive is not None else f"more than {MAX_AGENTS}")
            text += (f"; with their uncertainty, {self.agents_needed} agents decide it with "
                     f"probability {self.assurance:.0%} and {self.power:.0%} needs {pred}")
        return text


def _quantile(q: float, df: float) -> float:
    return float(sps.t.ppf(q, df))


def _needed(decides: Callable[[int], bool], low: int = 2) -> int | None:
    """Smallest m in [low, MAX_AGENTS] with decides(m), monotone in m; None if none."""
    if not decides(MAX_AGENTS):
        return None
    high = MAX_AGENTS
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if decides(mid) else (mid + 1, high)
    return low


def _scale(interval: Interval, threshold: float) -> tuple[float, float, float, float]:
    """(distance, spread, se, df) on the scale the interval is computed on."""
    n = interval.n_agents
    pivot = interval.pivot
    if pivot is not None and not pivot.degenerate:
        h_thr = pivot.h(threshold)
        if math.isfinite(h_thr):
            return abs(pivot.centre - h_thr), pivot.spread(n), pivot.se, pivot.df
    lo, hi, est = interval.low, interval.high, interval.estimate
    side = hi - est if threshold >= est else est - lo
    if side <= 0.0:
        side = (hi - lo) / 2.0  # an estimate at an interval end: use the mean half-width
    alpha = 1.0 - interval.confidence_level
    se = side / _quantile(1.0 - alpha / 2.0, n - 1)
    return abs(est - threshold), se * math.sqrt(n), se, float(n - 1)


def assurance(distance: float, se: float, df: float, n_agents: int, m: int,
              alpha_side: float) -> float:
    """Predictive probability that ``m`` new agents decide the row at ``alpha_side`` per side:
    the power of the t test (noncentral t) averaged over the effect (centre + se * t_df) and
    the spread (s^2 df / chi2_df), on deterministic quantile midpoints."""
    u = (np.arange(NODES) + 0.5) / NODES
    sigma = se * math.sqrt(n_agents) * np.sqrt(df / sps.chi2.ppf(u, df))  # (NODES,)
    # Given the spread, the effect is normal about the estimate with sd sigma / sqrt(n).
    effect = distance + sigma[:, None] / math.sqrt(n_agents) * sps.norm.ppf(u)[None, :]
    crit = _quantile(1.0 - alpha_side, m - 1)
    nc = math.sqrt(m) * effect / sigma[:, None]
    # Both tails as upper tails: scipy's nct.cdf far in the lower tail returns NaN.
    p = sps.nct.sf(crit, m - 1, nc) + sps.nct.sf(crit, m - 1, -nc)
    return float(np.clip(np.mean(p), 0.0, 1.0))


def agents_to_decide(interval: Interval, threshold: float, *, power: float = 0.8,
                     alpha_side: float | None = None,
                     predictive: bool = True) -> Power | None:
    """:class:`Power` of a finite interval over at least 2 agents, else None.

    ``alpha_side`` is the level per side a new run would decide at (default: the interval's
    own, (1 - confidence level) / 2); ``predictive=False`` skips the predictive figures."""
    if not 0.0 < power < 1.0:
        raise ValueError(f"power={power}; need a value in (0, 1)")
    lo, hi, est, n = interval.low, interval.high, interval.estimate, interval.n_agents
    if n < 2 or not all(math.isfinite(x) for x in (lo, hi, est, threshold)):
        return None
    level = (1.0 - interval.confidence_level) / 2.0 if alpha_side is None else float(alpha_side)
    if not 0.0 < level < 0.5:
        raise ValueError(f"alpha_side={alpha_side}; need a value in (0, 0.5)")
    distance, spread, se, df = _scale(interval, threshold)
    needed = None
    if distance > 0.0 and spread > 0.0:
        def decides(m: int) -> bool:
            q = _quantile(1.0 - level, m - 1) + _quantile(power, m - 1)
            return q * spread / math.sqrt(m) <= distance

        needed = _needed(decides)
    elif distance > 0.0:
        needed = n
    raw_side = hi - est if threshold >= est else est - lo
    if raw_side <= 0.0:
        raw_side = (hi - lo) / 2.0
    raw_spread = raw_side * math.sqrt(n) / _quantile(0.5 + interval.confidence_level / 2, n - 1)
    sure = pred = None
    if predictive and se > 0.0:
        sure = None if needed is None else assurance(distance, se, df, n, needed, level)
        pred = _needed(lambda m: assurance(distance, se, df, n, m, level) >= power)
    return Power(width=hi - lo, distance=abs(est - threshold), spread=raw_spread, n_agents=n,
                 agents_needed=needed, power=power, alpha_side=level, assurance=sure,
                 agents_needed_predictive=pred)


__all__ = ["MAX_AGENTS", "Power", "agents_to_decide", "assurance"]

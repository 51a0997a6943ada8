"""What it would take to decide an INCONCLUSIVE verdict: agents needed, from the measured spread.

An interval over ``n`` agents of half-width ``h`` (on the threshold's side of the estimate)
implies a between-agent standard deviation ``s = h * sqrt(n) / t(n - 1)`` of the per-agent
statistic, where ``t(df)`` is the two-sided Student quantile of the interval's confidence level:
this is exact for the jackknife-t interval of a mean over agents and a first-order reading of
every other interval. Holding the estimate and ``s`` fixed, ``m`` agents give an interval that
excludes the threshold (distance ``d`` from the estimate) with probability ``power`` when

    (t(m - 1) + t_power(m - 1)) * s / sqrt(m) <= d,

the usual two-quantile sample-size rule with Student quantiles. The answer is a planning
figure, not a promise: it assumes the centre and the spread measured at this scale hold for new
agents, and it counts agents at the scale's per-agent sample sizes (N, repeats).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as sps

from pgclaims.stats.intervals import Interval

MAX_AGENTS = 10_000
"""Beyond this many agents the answer is "more than MAX_AGENTS"."""


@dataclass(frozen=True)
class Power:
    """Width of an interval, distance of its estimate to the threshold, agents to decide it."""

    width: float
    """high - low."""
    distance: float
    """|estimate - threshold|, in the statistic's units."""
    spread: float
    """Implied between-agent standard deviation of the statistic (see the module docstring)."""
    n_agents: int
    """Agents behind the interval."""
    agents_needed: int | None
    """Smallest agent count deciding the claim with probability :attr:`power`; None when no
    count up to :data:`MAX_AGENTS` does (e.g. the estimate sits on the threshold)."""
    power: float

    def to_dict(self) -> dict[str, float | int | None]:
        return {"width": self.width, "distance": self.distance, "spread": self.spread,
                "n_agents": self.n_agents, "agents_needed": self.agents_needed,
                "power": self.power}

    def sentence(self) -> str:
        need = (f"about {self.agents_needed} agents" if self.agents_needed is not None
                else f"more than {MAX_AGENTS} agents")
        return (f"interval width {self.width:.3g}; the estimate is {self.distance:.3g} from the "
                f"threshold; {need} would decide it with probability {self.power:.0%} "
                f"(now {self.n_agents}), if the estimate and the between-agent spread "
                f"({self.spread:.3g}) hold")


def _quantile(q: float, df: int) -> float:
    return float(sps.t.ppf(q, df))


def agents_to_decide(interval: Interval, threshold: float, *,
                     power: float = 0.8) -> Power | None:
    """:class:`Power` of a finite interval over at least 2 agents, else None."""
    if not 0.0 < power < 1.0:
        raise ValueError(f"power={power}; need a value in (0, 1)")
    lo, hi, est, n = interval.low, interval.high, interval.estimate, interval.n_agents
    if n < 2 or not all(math.isfinite(x) for x in (lo, hi, est, threshold)):
        return None
    side = hi - est if threshold >= est else est - lo
    if side <= 0.0:
        side = (hi - lo) / 2.0  # an estimate at an interval end: use the mean half-width
    alpha = 1.0 - interval.confidence_level
    spread = side * math.sqrt(n) / _quantile(1.0 - alpha / 2.0, n - 1)
    distance = abs(est - threshold)
    needed = None
    if distance > 0.0 and spread > 0.0:
        def decides(m: int) -> bool:
            q = _quantile(1.0 - alpha / 2.0, m - 1) + _quantile(power, m - 1)
            return q * spread / math.sqrt(m) <= distance

        if decides(MAX_AGENTS):
            low, high = 2, MAX_AGENTS  # decides() is monotone in m: bisect for the first m
            while low < high:
                mid = (low + high) // 2
                low, high = (low, mid) if decides(mid) else (mid + 1, high)
            needed = low
    elif distance > 0.0:
        needed = n
    return Power(width=hi - lo, distance=distance, spread=spread, n_agents=n,
                 agents_needed=needed, power=power)


__all__ = ["MAX_AGENTS", "Power", "agents_to_decide"]

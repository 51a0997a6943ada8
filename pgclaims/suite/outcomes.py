"""What a claims test can end in besides a pass or a failure, and what a decided row records
about its agents: the INCONCLUSIVE outcome with its machine-readable reason codes, the guard
that turns a verdict the scale cannot support into one (:func:`guard`), and each agent's value
of the statistic (the variance components that set the repeats)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pgclaims import stats
from pgclaims.suite.claims import MIN_AGENTS, Claim
from pgclaims.suite.scales import Scale

REASON_CODES = {
    "interval_straddles": "the interval lies on neither side of the threshold",
    "not_enough_agents": "fewer than 3 agents (CLAIMS.md Replication unit)",
    "size_below_spec": "the scale measures below a size CLAIMS.md specifies (Sizes)",
    "statistic_undefined": "the statistic is undefined for an agent (e.g. a constant grid)",
    "denominator_not_resolved": "a ratio whose denominator's interval is not on one side of 0",
    "censored": "the statistic is only bounded by the scale's grid, on neither side",
    "scale_lacks": "the scale lacks a capability the claim needs",
    "agents_lack": "the (external) agents lack what the measurement needs",
    "no_data": "the data the statistic needs did not occur (e.g. no qualifying step)",
    "no_spread": "every agent gives the same value: an interval of no width, no spread measured",
}
"""results.json ``reason_code`` of INCONCLUSIVE rows (docs/results-schema.md)."""


class Inconclusive(Exception):
    """The claim could not be decided: the interval straddles the threshold, or the data is
    not available at this scale. Reported as INCONCLUSIVE, never as a skip or a failure.
    ``code`` is one of :data:`REASON_CODES` (machine-readable), ``detail`` its JSON data."""

    def __init__(self, reason: str, code: str = "no_data",
                 detail: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        if code not in REASON_CODES:
            raise ValueError(f"reason code {code!r}: expected one of {sorted(REASON_CODES)}")
        self.reason = reason
        self.code = code
        self.detail = dict(detail or {})


def agent_values_of(units: Sequence[Any], statistic: Callable[[list[Any]], Any], paired: bool,
                  vectorized: bool) -> list[stats.AgentValue] | None:
    """Each agent's value of the statistic and its within-agent variance, for the variance
    components that set the repeats (:mod:`pgclaims.stats.components`); None where the
    statistic cannot be evaluated on one agent alone (it needs several, e.g. a rank over agents)."""
    try:
        return stats.agent_values(units, statistic, paired=paired, vectorized=vectorized)
    except (ValueError, ZeroDivisionError, FloatingPointError, IndexError, TypeError):
        return None


def guard(verdict: stats.Verdict, n_agents: int | None, code: str | None,
          detail: Mapping[str, Any] | None, claim: Claim, scale: Scale
          ) -> tuple[stats.Verdict, str | None, Mapping[str, Any] | None]:
    """The verdict the scale can support: INCONCLUSIVE below 3 agents (CLAIMS.md
    Replication unit) or below a size that invalidates it (:mod:`pgclaims.suite.sizes`),
    with the reason first and the interval's own reason after it."""
    from pgclaims.suite.sizes import SIZE_CODE, shortfall

    inconclusive = stats.Outcome.INCONCLUSIVE
    if n_agents is not None and n_agents < MIN_AGENTS:
        why = (f"not enough agents: {n_agents} (CLAIMS.md needs {MIN_AGENTS} for a decisive "
               f"verdict; repeats of one agent are never the unit)")
        return (replace(verdict, outcome=inconclusive, p_value=None,
                        reason=f"{why}; {verdict.reason}"),
                "not_enough_agents", {"agents": n_agents, "needed": MIN_AGENTS})
    if verdict.outcome is not inconclusive:
        short = shortfall(claim, scale, verdict.outcome.value)
        if short is not None:
            why, found = short
            return (replace(verdict, outcome=inconclusive, reason=f"{why}; {verdict.reason}"),
                    SIZE_CODE, found)
        return verdict, None, None
    return verdict, code or "interval_straddles", detail


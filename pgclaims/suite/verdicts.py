"""The ``verdict`` fixture: one claims test asks the verdict engine once and reports the answer.

The claim's threshold, direction and figure come from its record in :mod:`pgclaims.suite.claims`
(found through the test's ``@pytest.mark.claim`` marker), never from the test body.
REPRODUCED passes, REFUTED fails the test, INCONCLUSIVE raises :class:`Inconclusive`, which the
plugin reports as its own outcome (neither a pass, a skip nor a failure).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import numpy as np
import pytest

from pgclaims import stats
from pgclaims.suite.claims import Claim
from pgclaims.suite.results import base_row, plain, row_of, seed_for, set_row
from pgclaims.suite.scales import Scale

RECORDED = pytest.StashKey[bool]()
"""Set on an item once its verdict is recorded."""


class Inconclusive(Exception):
    """The claim could not be decided: the interval straddles the threshold, or the data is
    not available at this scale. Reported as INCONCLUSIVE, never as a skip or a failure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


class VerdictRecorder:
    """What a claims test receives as ``verdict``. Call exactly one of the ``check*`` methods
    or :meth:`unavailable`, once."""

    def __init__(self, item: pytest.Item, claim: Claim, scale: Scale,
                 params: Mapping[str, Any]) -> None:
        self.item = item
        self.claim = claim
        self.scale = scale
        self.params = dict(params)
        self.seed = seed_for(item.nodeid)
        """The bootstrap seed: a stable hash of the test id."""

    # -- the ways to reach a verdict -------------------------------------------------------

    def check(self, units: Sequence[Any], statistic: Callable[[list[Any]], Any], *,
              paired: bool = False, vectorized: bool = False,
              params: Mapping[str, Any] | None = None,
              extra: Mapping[str, Any] | None = None,
              censored: Callable[[stats.Outcome], str | None] | None = None) -> stats.Verdict:
        """Interval over agents for ``statistic`` on ``units`` (one entry per agent, as for
        :func:`pgclaims.stats.hierarchical_bootstrap`), one-sided p-value, verdict.

        ``params`` adds fixed parameters to the row (e.g. ``{"n": 2048}``); ``extra`` is stored
        as the row's ``extra`` (JSON built-ins; e.g. per-agent values for the report).
        ``censored(outcome)``: for units that are only bounds (CLAIMS.md "Censoring"), the
        reason a decisive outcome is not established by the bounds, or None; the row is then
        INCONCLUSIVE with that reason, its statistic and interval kept."""
        interval, replicates = stats.hierarchical_bootstrap(
            units, statistic, n_resamples=self.scale.bootstrap_resamples,
            confidence_level=self.scale.confidence_level, rng=self.seed,
            method=self.scale.bootstrap_method, paired=paired, vectorized=vectorized)
        p_value = self._p_value(replicates, interval.estimate)
        verdict = stats.decide(interval, self.claim.threshold, self.claim.direction,
                               p_value=p_value)
        why = None if censored is None or verdict.outcome is stats.Outcome.INCONCLUSIVE else (
            censored(verdict.outcome))
        if why:
            verdict = dataclasses.replace(verdict, outcome=stats.Outcome.INCONCLUSIVE,
                                          reason=f"{verdict.reason}, but censored: {why}")
        return self._finish(verdict, interval.n_agents, interval.n_repeats, params, extra,
                            interval, _agent_values(units, statistic, paired, vectorized))

    def check_value(self, estimate: float | None, interval: tuple[float, float] | None, *,
                    p_value: float | None = None, n_agents: int | None = None,
                    n_repeats: int | None = None, params: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None) -> stats.Verdict:
        """Verdict on an interval computed elsewhere (``(low, high)`` at the scale's confidence
        level, or None: INCONCLUSIVE)."""
        iv = None
        if interval is not None:
            lo, hi = (float(x) for x in interval)
            iv = stats.Interval(low=lo, high=hi,
                                estimate=float("nan") if estimate is None else float(estimate),
                                confidence_level=self.scale.confidence_level,
                                method="external", n_agents=n_agents or 0,
                                n_repeats=n_repeats or 0)
        verdict = stats.decide(iv, self.claim.threshold, self.claim.direction, p_value=p_value)
        if iv is None and estimate is not None:
            verdict = stats.Verdict(verdict.outcome, float(estimate), None, verdict.threshold,
                                    verdict.direction, verdict.reason, verdict.p_value)
        return self._finish(verdict, n_agents, n_repeats, params, extra, iv)

    def check_crossing(self, n_grid: Sequence[float], curves: np.ndarray, *,
                       params: Mapping[str, Any] | None = None,
                       extra: Mapping[str, Any] | None = None) -> stats.Verdict:
        """Censored crossing (CLAIMS.md "Censoring"): ``curves`` has one row per agent over
        ``n_grid``; the level is the claim's ``constants["level"]``."""
        level = self.claim.constants.get("level")
        if level is None:
            raise ValueError(f"claim {self.claim.id} has no constants['level'] to cross")
        curves = np.atleast_2d(np.asarray(curves, dtype=np.float64))
        estimate, band = stats.crossing_band(n_grid, curves, level,
                                             confidence_level=self.scale.confidence_level)
        verdict = stats.crossing_verdict(estimate, band, self.claim.threshold,
                                         self.claim.direction,
                                         confidence_level=self.scale.confidence_level)
        info = {"crossing": str(estimate), "band": None if band is None else
                [str(b) for b in band]}
        return self._finish(verdict, len(curves), 1, params, {**info, **(extra or {})})

    def record(self, verdict: stats.Verdict, *, n_agents: int | None = None,
               n_repeats: int | None = None, params: Mapping[str, Any] | None = None,
               extra: Mapping[str, Any] | None = None) -> stats.Verdict:
        """Report a :class:`pgclaims.stats.Verdict` decided elsewhere; its threshold and
        direction must be the claim's."""
        if (verdict.threshold, verdict.direction) != (self.claim.threshold,
                                                      self.claim.direction):
            raise ValueError(
                f"verdict on {verdict.direction} {verdict.threshold} but claim {self.claim.id} "
                f"is {self.claim.rule}: take the threshold from the claim record")
        return self._finish(verdict, n_agents, n_repeats, params, extra)

    def unavailable(self, reason: str, *, params: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None) -> NoReturn:
        """INCONCLUSIVE because the data is not available (say why, e.g. "scale smoke has no
        zero-baseline agents")."""
        verdict = stats.decide(None, self.claim.threshold, self.claim.direction,
                               unavailable_reason=reason)
        self._finish(verdict, None, None, params, extra)
        raise AssertionError("unreachable")  # _finish raised Inconclusive

    # -- internals -------------------------------------------------------------------------

    def _p_value(self, replicates: np.ndarray, estimate: float) -> float | None:
        try:
            return stats.one_sided_p_value(replicates, estimate, self.claim.threshold,
                                           self.claim.direction)
        except ValueError:  # non-finite replicates or estimate: no p-value, the interval decides
            return None

    def _finish(self, verdict: stats.Verdict, n_agents: int | None, n_repeats: int | None,
                params: Mapping[str, Any] | None, extra: Mapping[str, Any] | None,
                interval: stats.Interval | None = None,
                agent_values: list[stats.AgentValue] | None = None) -> stats.Verdict:
        if self.item.stash.get(RECORDED, False):
            raise RuntimeError(f"{self.item.nodeid}: a verdict was already recorded; one claims "
                               "test reaches one verdict (split it or parametrize it)")
        self.item.stash[RECORDED] = True
        row = row_of(self.item.user_properties) or base_row(self.item.nodeid, self.claim,
                                                            self.params)
        row = dict(row)
        if params:
            row["params"] = {**row["params"], **plain(dict(params))}
        row.update(plain(verdict.to_dict()))
        row.update(n_agents=plain(n_agents), n_repeats=plain(n_repeats))
        extra = dict(extra or {})
        if row["interval"] is not None and None in row["interval"]:
            # An unbounded (censored) end: the schema wants [lo, hi] or null; keep the bound.
            extra["interval_bounds"] = row["interval"]
            row["interval"] = None
        if extra:
            row["extra"] = plain(extra)
        if agent_values:
            row["agent_values"] = plain([v.to_dict() for v in agent_values])
        if verdict.outcome is stats.Outcome.INCONCLUSIVE and interval is not None:
            power = stats.agents_to_decide(interval, self.claim.threshold)
            if power is not None:
                row["power"] = plain(power.to_dict())
        set_row(self.item.user_properties, row)
        self._raise_for(verdict)
        return verdict

    def _raise_for(self, verdict: stats.Verdict) -> None:
        c = self.claim
        if verdict.outcome is stats.Outcome.REFUTED:
            pytest.fail(f"REFUTED {c.id} ({c.paper}): {c.statistic} = "
                        f"{_fmt(verdict.statistic)}; {verdict.reason} (claim: {c.rule})",
                        pytrace=False)
        if verdict.outcome is stats.Outcome.INCONCLUSIVE:
            raise Inconclusive(f"{c.id} ({c.paper}): {verdict.reason}")


def _agent_values(units: Sequence[Any], statistic: Callable[[list[Any]], Any], paired: bool,
                  vectorized: bool) -> list[stats.AgentValue] | None:
    """Each agent's value of the statistic and its within-agent variance, for the variance
    components that set the repeats (:mod:`pgclaims.stats.components`); None where the
    statistic cannot be evaluated on one agent alone (it needs several, e.g. a rank over agents)."""
    try:
        return stats.agent_values(units, statistic, paired=paired, vectorized=vectorized)
    except (ValueError, ZeroDivisionError, FloatingPointError, IndexError, TypeError):
        return None

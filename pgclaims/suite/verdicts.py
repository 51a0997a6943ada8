"""The ``verdict`` fixture: one claims test asks the verdict engine once and reports the answer.

The claim's threshold, direction and figure come from its record in :mod:`pgclaims.suite.claims`
(found through the test's ``@pytest.mark.claim`` marker), never from the test body.
REPRODUCED passes, REFUTED fails the test, INCONCLUSIVE raises :class:`Inconclusive`, which the
plugin reports as its own outcome (neither a pass, a skip nor a failure).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, NoReturn

import numpy as np
import pytest

from pgclaims import stats
from pgclaims.suite.claims import MIN_AGENTS, Claim
from pgclaims.suite.outcomes import REASON_CODES, Inconclusive, agent_values_of, guard
from pgclaims.suite.results import base_row, plain, row_of, seed_for, set_row
from pgclaims.suite.scales import Scale

RECORDED = pytest.StashKey[bool]()
"""Set on an item once its verdict is recorded."""

__all__ = ["REASON_CODES", "RECORDED", "Inconclusive", "VerdictRecorder"]


def _satisfies(value: float, threshold: float, direction: str) -> bool:
    """Whether ``value`` lies on the claim's side of ``threshold``."""
    return {"<": value < threshold, "<=": value <= threshold, ">": value > threshold}[direction]


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


class VerdictRecorder:
    """What a claims test receives as ``verdict``. Call exactly one of the ``check*`` methods
    or :meth:`unavailable`, once."""

    def __init__(self, item: pytest.Item, claim: Claim, scale: Scale,
                 params: Mapping[str, Any], *,
                 error_control: stats.ErrorControl | None = None) -> None:
        self.item = item
        self.claim = claim
        self.scale = scale
        self.params = dict(params)
        self.seed = seed_for(item.nodeid)
        """The bootstrap seed: a stable hash of the test id."""
        self.error_control = error_control or stats.ErrorControl(
            "row", 1, 1.0 - scale.confidence_level)
        """The level the verdict is decided at (the plugin passes the run's)."""

    @property
    def decision_level(self) -> float:
        """Two-sided confidence level of the interval that decides this row."""
        return self.error_control.confidence_level

    # -- the ways to reach a verdict -------------------------------------------------------

    def check(self, units: Sequence[Any], statistic: Callable[[list[Any]], Any], *,
              paired: bool = False, vectorized: bool = False,
              params: Mapping[str, Any] | None = None,
              extra: Mapping[str, Any] | None = None,
              censored: Callable[[stats.Outcome], str | None] | None = None) -> stats.Verdict:
        """Interval over agents for ``statistic`` on ``units`` (one entry per agent, as for
        :func:`pgclaims.stats.hierarchical_bootstrap`), on the scale the claim's ``support``
        calls for; p-values of both sides; the verdict at the run's decision level.

        ``params`` adds fixed parameters to the row (e.g. ``{"n": 2048}``); ``extra`` is stored
        as the row's ``extra`` (JSON built-ins; e.g. per-agent values for the report).
        ``censored(outcome)``: for units that are only bounds (CLAIMS.md "Censoring"), the
        reason a decisive outcome is not established by the bounds, or None; the row is then
        INCONCLUSIVE with that reason, its statistic and interval kept.

        One agent: the estimate only, never an interval over its repeats (INCONCLUSIVE, not
        enough agents); two agents: the interval over both, and still INCONCLUSIVE."""
        if len(units) < 2:
            estimate = float(statistic(list(units))) if len(units) else None
            verdict = stats.Verdict(stats.Outcome.INCONCLUSIVE, estimate, None,
                                    self.claim.threshold, self.claim.direction,
                                    "no interval", None)
            return self._finish(verdict, len(units), None, params, extra)
        interval, replicates = self._interval(units, statistic, paired, vectorized,
                                              self.scale.confidence_level)
        if interval.pivot is not None:
            verdict, decision = self.decide_at_level(interval)
        else:  # a bootstrap method: p-values from the replicates, the quantiles re-read
            p_values = self._bootstrap_p_values(replicates, interval.estimate)
            decision = interval if interval.confidence_level == self.decision_level else (
                self._interval(units, statistic, paired, vectorized, self.decision_level)[0])
            claim_p, refute_p = p_values if p_values is not None else (None, None)
            verdict = stats.decide(decision, self.claim.threshold, self.claim.direction,
                                   p_value=claim_p, p_refute=refute_p)
        why = None if censored is None or verdict.outcome is stats.Outcome.INCONCLUSIVE else (
            censored(verdict.outcome))
        if why:
            verdict = replace(verdict, outcome=stats.Outcome.INCONCLUSIVE,
                              reason=f"{verdict.reason}, but censored: {why}")
            return self._finish(verdict, interval.n_agents, interval.n_repeats, params, extra,
                                interval, decision, code="censored",
                                agent_values=agent_values_of(units, statistic, paired, vectorized))
        flat = verdict.outcome is stats.Outcome.INCONCLUSIVE and decision.low == decision.high
        return self._finish(verdict, interval.n_agents, interval.n_repeats, params, extra,
                            interval, decision, code="no_spread" if flat else None,
                            agent_values=agent_values_of(units, statistic, paired, vectorized))

    def decide_at_level(self, interval: stats.Interval, threshold: float | None = None
                        ) -> tuple[stats.Verdict, stats.Interval]:
        """The verdict on a t interval (one with a pivot) at the run's decision level, with
        both p-values from the pivot, and the interval it was decided on. ``threshold``
        defaults to the claim's (pass, e.g., its log for a statistic computed on the log
        scale; the verdict then carries that threshold)."""
        thr = self.claim.threshold if threshold is None else float(threshold)
        p_values = interval.p_values(thr, self.claim.direction)
        claim_p, refute_p = p_values if p_values is not None else (None, None)
        decision = interval.at(self.decision_level)
        return stats.decide(decision, thr, self.claim.direction, p_value=claim_p,
                            p_refute=refute_p), decision

    def check_ratio(self, units: Sequence[Any], ratio: Callable[[list[Any]], Any],
                    denominator: Callable[[list[Any]], Any], *, what: str,
                    paired: bool = False, params: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None) -> stats.Verdict:
        """:meth:`check` of a ratio statistic whose ``denominator`` (a statistic of the same
        units, e.g. c_true - c_zero) must be established above 0 first: with its interval (same
        method, at the run's decision level, so a denominator truly at or below 0 passes no
        more often than a row errs) not wholly above 0 the ratio's size and sign mean nothing,
        and the row is INCONCLUSIVE ("denominator_not_resolved") with that interval."""
        if len(units) >= MIN_AGENTS:
            den, _ = stats.hierarchical_bootstrap(
                units, denominator, n_resamples=self.scale.bootstrap_resamples,
                confidence_level=self.decision_level, rng=self.seed,
                method=self.scale.bootstrap_method, paired=paired)
            if not den.low > 0:
                with np.errstate(divide="ignore", invalid="ignore"):
                    value = float(ratio(list(units)))
                level = stats.level_text(self.decision_level)
                self.unavailable(
                    f"the ratio's denominator ({what}) is {_fmt(den.estimate)} with {level} "
                    f"interval [{_fmt(den.low)}, {_fmt(den.high)}], not wholly above 0: the "
                    "ratio is not defined by the data", code="denominator_not_resolved",
                    detail={"what": what, "estimate": den.estimate,
                            "interval": [den.low, den.high],
                            "confidence_level": self.decision_level},
                    statistic=value if np.isfinite(value) else None, n_agents=len(units),
                    params=params, extra=extra)
        return self.check(units, ratio, paired=paired, params=params, extra=extra)

    def check_geometric(self, units: Sequence[Any], log_statistic: Callable[[list[Any]], Any],
                        *, unsupported: Mapping[str, tuple[str, str]] | None = None,
                        params: Mapping[str, Any] | None = None,
                        extra: Mapping[str, Any] | None = None) -> stats.Verdict:
        """:meth:`check` of a ratio that is a geometric mean over agents: ``log_statistic`` is
        the statistic's log (e.g. the mean of per-agent log ratios). Interval and p-values are
        computed on the log scale against log(threshold) and decided at the run's level, then
        shown as ratios (the verdict is the same, exp being monotone). ``unsupported`` maps
        "REPRODUCED"/"REFUTED" to (reason, code) for verdicts the data cannot support (e.g.
        values censored by a grid)."""
        threshold = self.claim.threshold
        if not threshold > 0:
            raise ValueError(f"claim {self.claim.id}: a geometric mean needs a positive "
                             f"threshold, got {threshold}")
        if len(units) < 2:
            return self.check(units, lambda us: math.exp(log_statistic(us)), params=params,
                              extra=extra)
        log_thr = math.log(threshold)
        iv, replicates = stats.hierarchical_bootstrap(
            units, log_statistic, n_resamples=self.scale.bootstrap_resamples,
            confidence_level=self.scale.confidence_level, rng=self.seed,
            method=self.scale.bootstrap_method)
        if iv.pivot is not None:
            log_verdict, log_decision = self.decide_at_level(iv, log_thr)
            p_claim, p_refute = log_verdict.p_value, log_verdict.p_refute
        else:
            log_decision = iv if iv.confidence_level == self.decision_level else (
                stats.hierarchical_bootstrap(
                    units, log_statistic, n_resamples=self.scale.bootstrap_resamples,
                    confidence_level=self.decision_level, rng=self.seed,
                    method=self.scale.bootstrap_method)[0])
            p_values = self._bootstrap_p_values(replicates, iv.estimate, log_thr)
            p_claim, p_refute = p_values if p_values is not None else (None, None)

        def exp_of(i: stats.Interval) -> stats.Interval:
            return replace(i, low=math.exp(i.low), high=math.exp(i.high),
                           estimate=math.exp(i.estimate), method=f"{i.method}, log scale",
                           pivot=None)

        back, decision = exp_of(iv), exp_of(log_decision)
        verdict = stats.decide(decision, threshold, self.claim.direction, p_value=p_claim,
                               p_refute=p_refute)
        blocked = dict(unsupported or {})
        if iv.high == iv.low:
            why = (f"every one of the {iv.n_agents} agents gives the same value, so the "
                   "interval has no width and says nothing about other agents")
            # the side the agents' common value lies on, had it decided: say if censoring
            # would have blocked that too
            side = "REPRODUCED" if _satisfies(back.estimate, threshold,
                                              self.claim.direction) else "REFUTED"
            also = f"; {blocked[side][0]}" if side in blocked else ""
            verdict = replace(verdict, outcome=stats.Outcome.INCONCLUSIVE, p_value=None,
                              p_refute=None, reason=f"{why}{also}")
            return self._finish(verdict, iv.n_agents, iv.n_repeats, params, extra, back,
                                decision, code="no_spread")
        if verdict.outcome.value in blocked:
            why, code = blocked[verdict.outcome.value]
            verdict = replace(verdict, outcome=stats.Outcome.INCONCLUSIVE,
                              reason=f"{why}; {verdict.reason}")
            return self._finish(verdict, iv.n_agents, iv.n_repeats, params, extra, back,
                                decision, code=code)
        return self._finish(verdict, iv.n_agents, iv.n_repeats, params, extra, back, decision)

    def check_value(self, estimate: float | None, interval: tuple[float, float] | None, *,
                    p_value: float | None = None, n_agents: int | None = None,
                    n_repeats: int | None = None, params: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None,
                    confidence_level: float | None = None) -> stats.Verdict:
        """Verdict on an interval computed elsewhere: ``(low, high)`` at ``confidence_level``
        (default: the scale's, 95%), or None (INCONCLUSIVE). An interval below the run's
        decision level (:attr:`decision_level`: the family level by default) cannot decide
        and gives INCONCLUSIVE saying so; pass one at that level."""
        level = self.scale.confidence_level if confidence_level is None else confidence_level
        iv = None
        if interval is not None:
            lo, hi = (float(x) for x in interval)
            iv = stats.Interval(low=lo, high=hi,
                                estimate=float("nan") if estimate is None else float(estimate),
                                confidence_level=level, method="external",
                                n_agents=n_agents or 0, n_repeats=n_repeats or 0)
        short = iv is not None and level < self.decision_level - 1e-12
        reason = (f"an interval at {level:.6g} cannot decide at this run's level "
                  f"{self.decision_level:.6g} ({self.error_control.policy} rule); pass one at "
                  "verdict.decision_level" if short else None)
        verdict = stats.decide(iv, self.claim.threshold, self.claim.direction, p_value=p_value,
                               unavailable_reason=reason)
        if (iv is None or short) and estimate is not None:
            verdict = replace(verdict, statistic=float(estimate))
        return self._finish(verdict, n_agents, n_repeats, params, extra, iv,
                            None if short else iv)

    def check_crossing(self, n_grid: Sequence[float], curves: np.ndarray, *,
                       unsupported: Mapping[str, tuple[str, str, Mapping[str, Any]]]
                       | None = None,
                       params: Mapping[str, Any] | None = None,
                       extra: Mapping[str, Any] | None = None) -> stats.Verdict:
        """Censored crossing (CLAIMS.md "Censoring"): ``curves`` has one row per agent over
        ``n_grid``; the level is the claim's ``constants["level"]``. Decided on the band at the
        run's decision level; the band at the scale's 95% is kept for reading. ``unsupported``
        maps "REPRODUCED"/"REFUTED" to (reason, code, detail) for a verdict the curves cannot
        support (e.g. a curve capped below the level by construction)."""
        level = self.claim.constants.get("level")
        if level is None:
            raise ValueError(f"claim {self.claim.id} has no constants['level'] to cross")
        curves = np.atleast_2d(np.asarray(curves, dtype=np.float64))
        bands = {}
        for confidence in {self.scale.confidence_level, self.decision_level}:
            estimate, band = stats.crossing_band(n_grid, curves, level,
                                                 confidence_level=confidence)
            bands[confidence] = (band, stats.crossing_verdict(
                estimate, band, self.claim.threshold, self.claim.direction,
                confidence_level=confidence))
        band, verdict = bands[self.decision_level]
        shown_band, shown = bands[self.scale.confidence_level]
        info = {"crossing": str(estimate), "band": None if shown_band is None else
                [str(b) for b in shown_band],
                "decision_band": None if band is None else [str(b) for b in band]}
        ends = (estimate, *(band or ()))
        code = "censored" if any(e.censoring != "none" for e in ends) else None
        detail = None
        if verdict.outcome.value in (unsupported or {}):
            why, code, detail = unsupported[verdict.outcome.value]  # type: ignore[index]
            verdict = replace(verdict, outcome=stats.Outcome.INCONCLUSIVE,
                              reason=f"{why}; {verdict.reason}")
        return self._finish(verdict, len(curves), 1, params, {**info, **(extra or {})},
                            shown_interval=shown.interval, decided_on=verdict.interval,
                            code=code, detail=detail)

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
        return self._finish(verdict, n_agents, n_repeats, params, extra, external=True)

    def unavailable(self, reason: str, *, code: str = "no_data",
                    detail: Mapping[str, Any] | None = None,
                    statistic: float | None = None, n_agents: int | None = None,
                    params: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None) -> NoReturn:
        """INCONCLUSIVE because the data is not available or the statistic is not defined (say
        why, e.g. "scale smoke has no zero-baseline agents"); ``code`` is one of
        :data:`REASON_CODES`, ``detail`` its JSON data, ``statistic`` an estimate to show."""
        verdict = stats.decide(None, self.claim.threshold, self.claim.direction,
                               unavailable_reason=reason)
        if statistic is not None:
            verdict = replace(verdict, statistic=float(statistic))
        self._finish(verdict, n_agents, None, params, extra, code=code, detail=detail)
        raise AssertionError("unreachable")  # _finish raised Inconclusive

    # -- internals -------------------------------------------------------------------------

    def _interval(self, units: Sequence[Any], statistic: Callable[[list[Any]], Any],
                  paired: bool, vectorized: bool,
                  level: float) -> tuple[stats.Interval, np.ndarray]:
        return stats.hierarchical_bootstrap(
            units, statistic, n_resamples=self.scale.bootstrap_resamples,
            confidence_level=level, rng=self.seed, method=self.scale.bootstrap_method,
            paired=paired, vectorized=vectorized, support=self.claim.support)

    def _bootstrap_p_values(self, replicates: np.ndarray, estimate: float,
                            threshold: float | None = None) -> tuple[float, float] | None:
        c = self.claim
        thr = c.threshold if threshold is None else threshold
        other = ">" if c.direction in ("<", "<=") else "<"
        try:
            return (stats.one_sided_p_value(replicates, estimate, thr, c.direction),
                    stats.one_sided_p_value(replicates, estimate, thr, other))
        except ValueError:  # non-finite replicates or estimate: no p-value, the interval decides
            return None

    def _finish(self, verdict: stats.Verdict, n_agents: int | None, n_repeats: int | None,
                params: Mapping[str, Any] | None, extra: Mapping[str, Any] | None,
                interval: stats.Interval | None = None,
                decision: stats.Interval | None = None,
                shown_interval: tuple[float, float] | None = None,
                decided_on: tuple[float, float] | None = None,
                external: bool = False, *, code: str | None = None,
                detail: Mapping[str, Any] | None = None,
                agent_values: list[stats.AgentValue] | None = None) -> stats.Verdict:
        """Record the row. ``interval`` (or ``shown_interval``) is the one shown (the scale's
        95%), ``decision`` (or ``decided_on``) the one the verdict was decided on (the run's
        level); ``external``: the verdict was decided elsewhere (:meth:`record`). ``code`` and
        ``detail``: an INCONCLUSIVE row's reason code (:data:`REASON_CODES`) and its data;
        ``agent_values``: each agent's value and within-agent variance (the variance components
        that set repeats)."""
        verdict, code, detail = guard(verdict, n_agents, code, detail, self.claim, self.scale)
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
        row.update(n_agents=plain(n_agents), n_repeats=plain(n_repeats), reason_code=code)
        if detail:
            row["reason_detail"] = plain(dict(detail))
        if interval is not None:
            row["interval"] = plain([interval.low, interval.high])
            row["interval_method"] = interval.method
        elif shown_interval is not None:
            row["interval"] = plain(list(shown_interval))
        row["decision"] = self._decision(decision, decided_on, external)
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
            power = stats.agents_to_decide(interval, self.claim.threshold,
                                           alpha_side=self.error_control.alpha_side)
            if power is not None:
                row["power"] = plain(power.to_dict())
        set_row(self.item.user_properties, row)
        self._raise_for(verdict, code or "interval_straddles")
        return verdict

    def _decision(self, decision: stats.Interval | None, decided_on: tuple[float, float] | None,
                  external: bool) -> dict[str, Any]:
        """The row's "decision": which rule decided, at which level, on which interval."""
        ec = self.error_control
        out: dict[str, Any] = {"policy": "external" if external else ec.policy,
                               "family_size": ec.family_size, "alpha_side": ec.alpha_side,
                               "confidence_level": ec.confidence_level,
                               "interval": None, "method": None}
        if decision is not None:
            out.update(interval=[decision.low, decision.high], method=decision.method)
        elif decided_on is not None:  # a crossing band, decided at the run's level
            out.update(interval=list(decided_on), method="crossing band")
        return plain(out)

    def _raise_for(self, verdict: stats.Verdict, code: str) -> None:
        c = self.claim
        if verdict.outcome is stats.Outcome.REFUTED:
            pytest.fail(f"REFUTED {c.id} ({c.paper}): {c.statistic} = "
                        f"{_fmt(verdict.statistic)}; {verdict.reason} (claim: {c.rule})",
                        pytrace=False)
        if verdict.outcome is stats.Outcome.INCONCLUSIVE:
            raise Inconclusive(f"{c.id} ({c.paper}): {verdict.reason}", code=code)


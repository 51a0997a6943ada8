"""One-sided p-values, verdicts and censored crossings: where an interval over agents lies against a
CLAIMS.md threshold. Takes intervals from :mod:`pgclaims.stats.intervals`; never samples.

A verdict is REPRODUCED when the whole 95% interval lies on the claim's side of the threshold,
REFUTED when it lies wholly on the other side, INCONCLUSIVE otherwise. A crossing ("the N at
which a curve first reaches a level") may be censored by the largest N measured; its verdict
comes from a band over agents that keeps the censored ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from pgclaims.stats.intervals import Interval

DIRECTIONS = ("<", ">", "<=")

def one_sided_p_value(
    replicates: np.ndarray, estimate: float, threshold: float, direction: str
) -> float:
    """Bootstrap p-value for H0 "the claim is false", by shifting the replicates to the null.

    Under H0 at the boundary (statistic = threshold), estimate - threshold is distributed like
    replicate - estimate. For claim "<" (and "<="): p = (1 + #{r - est <= est - thr}) / (B + 1);
    for ">": p = (1 + #{r - est >= est - thr}) / (B + 1). Never 0; 1/(B+1) is the smallest.
    Infinite replicates count as extreme; NaN ones (a statistic undefined on some resamples,
    e.g. a ratio with a zero denominator) raise ValueError.
    """
    _check_direction(direction)
    r = np.asarray(replicates, dtype=np.float64).reshape(-1)
    if r.size == 0 or np.any(np.isnan(r)):
        raise ValueError(
            f"{int(np.isnan(r).sum())} of {r.size} replicates are NaN: the statistic is undefined "
            "on some resamples; make it total (or drop those agents) before testing"
        )
    if not math.isfinite(estimate):
        raise ValueError(f"estimate {estimate} is not finite")
    shift, obs = r - estimate, estimate - threshold
    k = int(np.sum(shift <= obs)) if direction in ("<", "<=") else int(np.sum(shift >= obs))
    return (k + 1) / (r.size + 1)


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r}; choose one of {DIRECTIONS}")


class Outcome(StrEnum):
    """A claim's verdict (CLAIMS.md, "Verdict"); a ``str`` whose value is the upper-case name."""

    REPRODUCED = "REPRODUCED"
    REFUTED = "REFUTED"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class Verdict:
    """The verdict on one claim, with the numbers it rests on."""

    outcome: Outcome
    statistic: float | None
    interval: tuple[float, float] | None
    threshold: float
    direction: str
    reason: str
    p_value: float | None
    """One-sided p-value of the claim's side (H0: the statistic is at or beyond the threshold
    on the other side); small values support REPRODUCED."""
    p_refute: float | None = None
    """One-sided p-value of the other side; small values support REFUTED."""

    def to_dict(self) -> dict[str, Any]:
        """JSON built-ins only; keys follow docs/results-schema.md (outcome -> "verdict").

        Non-finite numbers (e.g. an unbounded censored end) become None."""
        return {
            "verdict": self.outcome.value,
            "statistic": _json_float(self.statistic),
            "interval": None if self.interval is None else [_json_float(x) for x in self.interval],
            "threshold": _json_float(self.threshold),
            "direction": str(self.direction),
            "reason": str(self.reason),
            "p_value": _json_float(self.p_value),
            "p_refute": _json_float(self.p_refute),
        }


def _json_float(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _fmt(x: float, digits: int = 3) -> str:
    if not math.isfinite(x):
        return str(x)
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    if abs(x) >= 10**digits and abs(x) < 1e15:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def _fmt_all(values: Sequence[float], threshold: float) -> tuple[list[str], str]:
    """Format with enough digits that no value different from the threshold prints like it."""
    for digits in range(3, 17):
        t = _fmt(threshold, digits)
        out = [_fmt(v, digits) for v in values]
        if all(s != t or v == threshold for s, v in zip(out, values, strict=True)):
            break
    return out, t


_SIDE = {  # direction -> (claim side, other side), as "lies entirely ..." phrases
    "<": ("below", "at or above"),
    ">": ("above", "at or below"),
    "<=": ("at or below", "above"),
}


def _side_outcome(claim: bool, other: bool, ci: str, direction: str, sthr: str,
                  straddle: str) -> tuple[Outcome, str]:
    """The outcome of an interval that lies on the claim's side, the other side, or neither."""
    if claim:
        outcome, reason = Outcome.REPRODUCED, f"{ci} lies entirely {_SIDE[direction][0]}"
    elif other:
        outcome, reason = Outcome.REFUTED, f"{ci} lies entirely {_SIDE[direction][1]}"
    else:
        outcome, reason = Outcome.INCONCLUSIVE, f"{ci} {straddle}"
    return outcome, reason + f" the threshold {sthr}"


def decide(
    interval: Interval | None,
    threshold: float,
    direction: str,
    *,
    p_value: float | None = None,
    unavailable_reason: str | None = None,
    p_refute: float | None = None,
) -> Verdict:
    """Verdict by CLAIMS.md: REPRODUCED if the whole interval lies on the claim's side of the
    threshold ("<": high < thr; ">": low > thr; "<=": high <= thr), REFUTED if it lies wholly on
    the other side, INCONCLUSIVE if it straddles, if no interval is available, or if the agents
    do not differ at all (a t interval of zero width measures no spread, it does not prove one
    absent). The interval's confidence level is the decision's: 95% for the per-row rule, the
    family level (:class:`pgclaims.stats.ErrorControl`) by default in the suite."""
    _check_direction(direction)
    threshold = float(threshold)
    p = None if p_value is None else float(p_value)
    q = None if p_refute is None else float(p_refute)
    if interval is None or unavailable_reason is not None:
        reason = unavailable_reason or "no interval available"
        est = None if interval is None else interval.estimate
        return Verdict(Outcome.INCONCLUSIVE, est, None, threshold, direction, reason, p, q)
    lo, hi, est = float(interval.low), float(interval.high), float(interval.estimate)
    (slo, shi), sthr = _fmt_all([lo, hi], threshold)
    ci = f"{level_text(interval.confidence_level)} CI [{slo}, {shi}]"
    if math.isnan(lo) or math.isnan(hi):
        reason = f"{ci} is not a number ({interval.method}); no verdict possible"
        return Verdict(Outcome.INCONCLUSIVE, est, (lo, hi), threshold, direction, reason, p, q)
    pivot = getattr(interval, "pivot", None)
    if pivot is not None and pivot.degenerate:
        reason = (f"the {interval.n_agents} agents' values do not differ, so the {ci} has no "
                  "width: the between-agent spread is not measured, and no verdict is possible")
        return Verdict(Outcome.INCONCLUSIVE, est, (lo, hi), threshold, direction, reason, p, q)
    if lo > hi:
        raise ValueError(f"interval low {lo} > high {hi}")
    claim, other = {
        "<": (hi < threshold, lo >= threshold),
        ">": (lo > threshold, hi <= threshold),
        "<=": (hi <= threshold, lo > threshold),
    }[direction]
    outcome, reason = _side_outcome(claim, other, ci, direction, sthr, "straddles")
    if outcome is Outcome.INCONCLUSIVE:
        reason += f" (claim: statistic {direction} {sthr}; estimate {_fmt(est)})"
    return Verdict(outcome, est, (lo, hi), threshold, direction, reason, p, q)


def level_text(confidence_level: float) -> str:
    """A confidence level with the decimals that tell it apart from 100%: "95%",
    "99.965%"."""
    percent = confidence_level * 100.0
    if abs(percent - round(percent)) < 1e-9:
        return f"{round(percent)}%"
    digits = max(1, math.ceil(-math.log10(100.0 - percent) - 1e-9) + 1)
    return f"{percent:.{digits}f}%"


# ---------------------------------------------------------------------------------------------
# Censoring (CLAIMS.md, "Censoring")


@dataclass(frozen=True)
class Crossing:
    """Where a curve over the N grid first reaches a level.

    ``n`` is in the grid's unit (state-action pairs). When censored it is the grid bound: the
    crossing lies above the largest N ("right") or at or below the smallest N ("left")."""

    n: float
    censoring: Literal["none", "left", "right"]

    def __str__(self) -> str:
        prefix = {"none": "", "left": "<= ", "right": "> "}[self.censoring]
        return prefix + _fmt(self.n)


def censored_crossing(
    n_grid: Sequence[float] | np.ndarray, curves: Sequence[float] | np.ndarray, level: float
) -> list[Crossing]:
    """For each curve (a row of ``curves``; a 1-D curve is one row), the smallest N at which it
    reaches ``level`` (value >= level), interpolated linearly in log N between grid points.

    Never reached: the largest N, right-censored ("> N_max"). Reached at the first grid point:
    the smallest N, left-censored ("<= N_min").
    """
    grid = np.asarray(n_grid, dtype=np.float64)
    c = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    if grid.ndim != 1 or len(grid) < 1 or np.any(grid <= 0) or np.any(np.diff(grid) <= 0):
        raise ValueError(f"n_grid must be positive and strictly increasing, got {grid.tolist()}")
    if c.ndim != 2 or c.shape[1] != len(grid):
        raise ValueError(f"curves of shape {c.shape} do not match an N grid of {len(grid)} points")
    if not np.all(np.isfinite(c)):
        raise ValueError("curves contain non-finite values; measure every grid point")
    out = []
    for curve in c:
        hit = np.flatnonzero(curve >= level)
        if hit.size == 0:
            out.append(Crossing(float(grid[-1]), "right"))
        elif hit[0] == 0:
            out.append(Crossing(float(grid[0]), "left"))
        else:
            k = int(hit[0])
            frac = (level - curve[k - 1]) / (curve[k] - curve[k - 1])
            log_n = math.log(grid[k - 1]) + frac * (math.log(grid[k]) - math.log(grid[k - 1]))
            out.append(Crossing(float(math.exp(log_n)), "none"))
    return out


def crossing_band(
    n_grid: Sequence[float] | np.ndarray,
    curves: np.ndarray,
    level: float,
    *,
    confidence_level: float = 0.95,
) -> tuple[Crossing, tuple[Crossing, Crossing] | None]:
    """Crossing of the mean curve over agents (rows of ``curves``) and of its pointwise t band
    (df = n_agents - 1), as (estimate, (earliest, latest)); None for the band with one agent.

    For a curve that rises with N, "crossing <= x" is "curve(x) >= level", so the crossings of
    the upper and lower band invert pointwise one-sided tests into an interval for the crossing.
    """
    c = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    mean = c.mean(axis=0)
    (est,) = censored_crossing(n_grid, mean, level)
    if len(c) < 2:
        return est, None
    q = float(sps.t.ppf(0.5 + confidence_level / 2, len(c) - 1))
    half = q * c.std(axis=0, ddof=1) / math.sqrt(len(c))
    early, late = censored_crossing(n_grid, np.stack([mean + half, mean - half]), level)
    return est, (early, late)


def crossing_verdict(
    estimate: Crossing,
    bounds: tuple[Crossing, Crossing] | None,
    threshold: float,
    direction: str,
    *,
    confidence_level: float = 0.95,
) -> Verdict:
    """Verdict on a crossing N against a threshold (e.g. "> 5 * 2048"), honouring censoring.

    The interval is the hull of ``bounds`` (e.g. from :func:`crossing_band`). A censored end is
    a bound, decisive when it already lies on one side: "> N_max" with N_max >= threshold is
    above the threshold; "<= N_min" with N_min <= threshold is at or below it. Otherwise the
    verdict is INCONCLUSIVE and the reason names the censoring.
    """
    _check_direction(direction)
    threshold = float(threshold)
    if bounds is None:
        return Verdict(
            Outcome.INCONCLUSIVE,
            estimate.n,
            None,
            threshold,
            direction,
            f"crossing N {estimate}: no interval (a band needs at least 2 agents)",
            None,
        )
    ends = [*bounds, estimate]
    # A left-censored end is unbounded below, a right-censored one unbounded above and exclusive
    # below ("> N_max"); at equal values the inclusive end is the lower one.
    low_end = min(
        ends, key=lambda e: (0.0 if e.censoring == "left" else e.n, e.censoring == "right")
    )
    high_end = max(
        ends, key=lambda e: (math.inf if e.censoring == "right" else e.n, e.censoring != "left")
    )
    lo = 0.0 if low_end.censoring == "left" else low_end.n
    hi = math.inf if high_end.censoring == "right" else high_end.n
    above = lo > threshold or (low_end.censoring == "right" and lo >= threshold)
    claim, other = {
        "<": (hi < threshold, lo >= threshold),
        ">": (above, hi <= threshold),
        "<=": (hi <= threshold, above),
    }[direction]
    ci = f"{confidence_level * 100:g}% interval of the crossing N [{low_end}, {high_end}]"
    sthr = _fmt(threshold)
    outcome, reason = _side_outcome(claim, other, ci, direction, sthr, "is not on one side of")
    if outcome is Outcome.INCONCLUSIVE:
        notes = {
            "right": f"the curve never reaches the level by N_max = {_fmt(high_end.n)}",
            "left": f"the curve already reaches the level at N_min = {_fmt(low_end.n)}",
        }
        found = [
            notes[c] for c in ("left", "right") if c in {low_end.censoring, high_end.censoring}
        ]
        if found:
            reason += " (censored by the N grid: " + "; ".join(found) + ")"
    return Verdict(outcome, estimate.n, (lo, hi), threshold, direction, reason, None)

"""Error control over a run: the level each row's verdict is decided at, and the Holm /
Benjamini-Hochberg views of the run's p-values.

A run decides many rows (143 per protocol at the default scale), each in two directions
(REPRODUCED or REFUTED). Decided at the per-row 95% rule, a run whose every effect sits at its
threshold makes 2 m x 0.025 false decisive verdicts on average (7.2 at m = 143). The default
policy, "family", fixes each row's level from the size m of the scale's declared family
(:func:`pgclaims.suite.family.family_size`): alpha / (2 m) per side, a Bonferroni bound over the
2 m one-sided hypotheses. Why this and not a false discovery rate:

- The level of a row depends only on the scale, never on which other rows were selected or
  measured, so ``-k``, ``--claim``, ``--env`` or a run stopped early cannot change a verdict.
  BH's cut-off depends on every other p-value of the subset; computed over a subset it is a
  different procedure with a different verdict.
- It bounds what a reader counts: the expected number of false decisive verdicts over the
  family is at most 2 m x alpha / (2 m) = alpha (0.05) with every effect at its threshold,
  whatever their dependence; and the family-wise error with it.

Holm and BH are still computed over the 2 m one-sided hypotheses, the rows not measured in this
run counted with p = 1: such adjusted values can only fall as more rows are measured, so they
are provisional (an upper bound) until the whole family is, and they never decide a verdict.
Plain functions of numbers; nothing else of pgclaims.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgclaims.stats.verdicts import level_text

POLICIES = ("family", "row")
"""``--error-control``: "family" (default) or "row" (each row's 95% interval on its own)."""


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


@dataclass(frozen=True)
class ErrorControl:
    """The level each row is decided at. ``alpha`` is 1 - the scale's confidence level (0.05)."""

    policy: str
    family_size: int
    """m: the rows of the scale's declared family (per protocol)."""
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"error control {self.policy!r}; choose one of {POLICIES}")
        if self.family_size < 1:
            raise ValueError(f"family_size={self.family_size}; need at least 1 row")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha={self.alpha}; need a value in (0, 1)")

    @property
    def alpha_side(self) -> float:
        """Per row and per direction: alpha / 2 ("row") or alpha / (2 m) ("family")."""
        return self.alpha / 2.0 if self.policy == "row" else self.alpha / (2.0 * self.family_size)

    @property
    def confidence_level(self) -> float:
        """Two-sided level of the interval that decides a row."""
        return 1.0 - 2.0 * self.alpha_side

    def expected_false(self, rows: int | None = None) -> float:
        """Bound on the expected number of false decisive verdicts over ``rows`` rows (default:
        the family) when every effect sits exactly at its threshold: 2 x rows x alpha_side."""
        return 2.0 * (self.family_size if rows is None else rows) * self.alpha_side

    def describe(self) -> str:
        level, side = level_text(self.confidence_level), _num(self.alpha_side)
        expected = _num(self.expected_false())
        if self.policy == "row":
            return (f"per-row rule: each row decided by its own {level} interval ({side} per "
                    f"side); over the {self.family_size} rows of the family up to {expected} "
                    "false decisive verdicts are expected if every effect sits at its threshold")
        return (f"family rule: each row decided at {side} per side, alpha {_num(self.alpha)} "
                f"over the 2 x {self.family_size} one-sided hypotheses of the scale's declared "
                f"family (Bonferroni; a {level} interval); at most {expected} false decisive "
                "verdicts expected per run if every effect sits at its threshold; a row's "
                "verdict does not depend on which other rows run")

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "family_size": self.family_size, "alpha": self.alpha,
                "alpha_side": self.alpha_side, "confidence_level": self.confidence_level,
                "expected_false_max": self.expected_false(), "description": self.describe()}


def _num(x: float) -> str:
    return f"{x:.3g}"


def family_adjusted(p_claim: Sequence[float | None], p_refute: Sequence[float | None],
                    family_size: int) -> tuple[list[float | None], list[float | None],
                                               list[str | None]]:
    """Holm and BH adjustments over the 2 x ``family_size`` one-sided hypotheses of a family
    (both directions of every row), rows not given counted with p = 1.

    Returns, per given row, the adjusted p-value of its smaller side under Holm and under BH,
    and that side ("claim" or "refute"); None where the row has no p-values. Provisional
    (an upper bound) until every row of the family is measured."""
    if len(p_claim) != len(p_refute):
        raise ValueError(f"{len(p_claim)} claim-side p-values but {len(p_refute)} refute-side")
    have = [i for i, (a, b) in enumerate(zip(p_claim, p_refute, strict=True))
            if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    if 2 * len(have) > 2 * family_size:
        raise ValueError(f"{len(have)} rows with p-values but a family of {family_size}")
    flat = [float(p) for i in have for p in (p_claim[i], p_refute[i])]
    padded = flat + [1.0] * (2 * family_size - len(flat))
    h, bh = holm(padded), benjamini_hochberg(padded)
    out_h: list[float | None] = [None] * len(p_claim)
    out_bh: list[float | None] = [None] * len(p_claim)
    side: list[str | None] = [None] * len(p_claim)
    for k, i in enumerate(have):
        j = 2 * k if flat[2 * k] <= flat[2 * k + 1] else 2 * k + 1
        out_h[i], out_bh[i] = h[j], bh[j]
        side[i] = "claim" if j == 2 * k else "refute"
    return out_h, out_bh, side

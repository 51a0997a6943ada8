"""Repeats where they pay: from a run's results.json, the variance components of every row
measured over agents, and per measurement kind the repeats per agent that make its intervals as
narrow as a budget allows.

Each row decided by ``VerdictRecorder.check`` carries ``agent_values`` (each agent's value of the
row's statistic and its within-agent jackknife variance); :mod:`pgclaims.stats.components`
turns them into between-agent and within-agent variance. The claims of one measurement kind
(gradients, value, steps) share its repeats, so the choice is per kind: the ``R`` that
minimises ``(s_b^2 + s_w^2 / R) x cost(R)`` (the variance of a mean over agents, times what an
agent's measurement costs at ``R`` repeats: the budget then buys ``1 / cost(R)`` agents), with
``cost(R)`` the pairs the measurement samples (:mod:`pgclaims.measure.budget`) at the scale's
other sizes. A gradient study builds its true gradient from its own streams, so its repeats are
nearly free up to ``true_grad_n / max(N) + 1``; a step study pays a 2048-pair step and an
evaluation per repeat.

``python -m pgclaims.suite.repeats reports/<run-id>/results.json [--scale default]`` prints
the table; docs/scales.md records the run that set the scales' repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pgclaims.measure import MeasureConfig, budget
from pgclaims.stats.components import AgentValue, Components, components
from pgclaims.suite.plan import USES, measure_config
from pgclaims.suite.scales import Scale, get_scale

REPEAT_KINDS = ("gradients", "value", "steps")
"""Measurements with repeats (a landscape has grid points, not repeats)."""

GRID = tuple(range(2, 41))
"""Repeats considered (pairwise cosines need at least 2)."""


@dataclass(frozen=True)
class RowComponents:
    claim_id: str
    params: dict[str, Any]
    verdict: str
    kind: str
    components: Components


def kind_of(claim_id: str) -> str | None:
    """The repeated measurement a claim's statistic comes from, or None (landscapes,
    ablations, claims outside the catalogue)."""
    kinds = {u.kind for u in USES.get(claim_id, ())} & set(REPEAT_KINDS)
    return kinds.pop() if len(kinds) == 1 else None


def row_components(doc: dict[str, Any]) -> list[RowComponents]:
    """Components of every row with ``agent_values`` of at least 2 agents (each with a finite
    value and within-agent variance)."""
    out = []
    for row in doc["results"]:
        kind = kind_of(row["claim_id"])
        raw = row.get("agent_values") or []
        values = [AgentValue(float(v["value"]), float(v["within_var"]), int(v["repeats"]))
                  for v in raw if v.get("value") is not None and v.get("within_var") is not None]
        if kind is None or len(values) < 2:
            continue
        out.append(RowComponents(row["claim_id"], dict(row["params"]), row["verdict"], kind,
                                 components(values)))
    return out


def cost_of(kind: str, cfg: MeasureConfig) -> Callable[[int], int]:
    """Pairs one measurement of ``kind`` samples at ``R`` repeats, the rest of ``cfg`` fixed."""
    return lambda r: budget.pairs(kind, dataclasses.replace(cfg, repeats=r))


def best_repeats(c: Components, cost: Callable[[int], float],
                 grid: Sequence[int] = GRID) -> tuple[int, float]:
    """(R, variance x cost at R relative to at the measured repeats): the repeats in ``grid``
    that minimise variance x cost. Ties go to fewer repeats."""
    def loss(r: int) -> float:
        return c.variance(1, r) * cost(r)
    base = loss(round(c.repeats))
    if base == 0:
        return min(grid), 1.0
    best = min(grid, key=lambda r: (loss(r), r))
    return best, loss(best) / base


@dataclass(frozen=True)
class KindSummary:
    kind: str
    rows: int
    within_share: tuple[float, float, float]
    """Quartiles (25, 50, 75%) over rows of the within-agent share at the measured repeats."""
    ratio: float
    """Median over rows of ``s_w^2 / s_b^2`` (per-repeat within over between variance)."""
    repeats_measured: float
    best: int
    """The repeats minimising the median row's variance x cost."""
    gain: float
    """Variance x cost at :attr:`best` relative to the measured repeats (median row)."""
    width_same_agents: float
    """The median row's interval width at :attr:`best` over its width at the measured repeats,
    with the same agents (what the saving costs when the agents are fixed)."""
    best_by_row: tuple[int, int, int]
    """Quartiles of each row's own best repeats."""
    cost: dict[int, int]
    """Pairs per measurement at a few repeats."""


def summarize(rows: Iterable[RowComponents], cfg: MeasureConfig,
              grid: Sequence[int] = GRID) -> list[KindSummary]:
    by_kind: dict[str, list[RowComponents]] = defaultdict(list)
    for r in rows:
        by_kind[r.kind].append(r)
    out = []
    for kind in REPEAT_KINDS:
        rs = by_kind.get(kind)
        if not rs:
            continue
        cost = cost_of(kind, cfg)
        shares = np.array([r.components.within_share for r in rs], dtype=float)
        shares = shares[np.isfinite(shares)]
        ratios = np.array([r.components.per_repeat_var / r.components.between_var
                           if r.components.between_var > 0 else math.inf for r in rs])
        med = float(np.median(ratios))
        repeats = float(np.median([r.components.repeats for r in rs]))
        typical = Components(n_agents=0, repeats=repeats, mean=0.0, total_var=0.0,
                             within_var=(med if math.isfinite(med) else 1e12) / repeats,
                             between_var=1.0)
        best, gain = best_repeats(typical, cost, grid)
        width = math.sqrt(typical.variance(1, best) / typical.variance(1, repeats))
        own = [best_repeats(r.components, cost, grid)[0] for r in rs]
        q = np.quantile(shares, [0.25, 0.5, 0.75]) if len(shares) else [math.nan] * 3
        oq = np.quantile(own, [0.25, 0.5, 0.75], method="nearest")
        out.append(KindSummary(kind, len(rs), tuple(float(x) for x in q), med, repeats, best,
                               gain, width, tuple(int(x) for x in oq),
                               {r: cost(r) for r in (2, 5, 10, 20)}))
    return out


def render(summaries: Sequence[KindSummary], scale: Scale, source: str) -> str:
    lines = [f"repeats per measurement kind from {source} (scale {scale.name}: "
             f"{scale.repeats} repeats)",
             "kind        rows  within share (25/50/75%)  s_w^2/s_b^2  best R  var x cost "
             "at best  width at best  rows' own best R (25/50/75%)  pairs at R=2/5/10/20"]
    for s in summaries:
        ws = "/".join(f"{x:.2f}" for x in s.within_share)
        ob = "/".join(str(x) for x in s.best_by_row)
        cost = "/".join(f"{s.cost[r]:.3g}" for r in (2, 5, 10, 20))
        lines.append(f"{s.kind:<10} {s.rows:>5}  {ws:>24}  {s.ratio:>11.3g}  {s.best:>6}  "
                     f"{s.gain:>15.2f}  {s.width_same_agents:>13.2f}  {ob:>28}  {cost}")
    lines.append("best R minimises (s_b^2 + s_w^2/R) x pairs(R) for the median row: the "
                 "interval over the agents a budget buys is narrowest there; width at best: "
                 "the same agents' interval at best R over at the measured R")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgclaims.suite.repeats",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a run's results.json")
    parser.add_argument("--scale", default=None,
                        help="the scale whose sizes price the repeats (default: the run's)")
    parser.add_argument("--env", default="Hopper-v5",
                        help="the env whose sizes price them (default Hopper-v5)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        doc = json.loads(args.results.read_text())
        scale = get_scale(args.scale or doc["scale"]["name"])
    except (OSError, ValueError, KeyError) as e:
        print(f"repeats: error: {args.results}: {e}", file=sys.stderr)
        return 2
    rows = row_components(doc)
    if not rows:
        print(f"repeats: error: {args.results}: no row carries agent_values of 2 or more "
              "agents (written by pgclaims after 2026-12-05)", file=sys.stderr)
        return 2
    summaries = summarize(rows, measure_config(scale, args.env))
    if args.json:
        print(json.dumps([dataclasses.asdict(s) for s in summaries], indent=1))
    else:
        print(render(summaries, scale, str(args.results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

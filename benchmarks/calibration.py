"""The calibration tables of docs/statistics.md: coverage of the engine's intervals per method,
shape and agent count, their far tails at the family level, and the false decisive verdicts of a
simulated run with every effect at its threshold, before (per-row rule, raw jackknife-t) and
after (family rule, intervals on the support's scale).

    python benchmarks/calibration.py                      # the tables, markdown, ~10 min
    python benchmarks/calibration.py --trials 4000 --runs 2000 --tail-trials 200000  # quicker

Shapes: the synthetic ones of issue 24 (:func:`pgclaims.stats.calibration.synthetic_shapes`)
and, with ``--agents FILE`` (repeatable), shapes fitted to the per-agent
values of our committed agents (``benchmarks/agent_values.py`` writes those files).
Every random draw comes from one seed (``--seed``); same arguments, same tables.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

from pgclaims.stats import ErrorControl
from pgclaims.stats.calibration import (
    Coverage,
    Shape,
    as_unbounded,
    coverage,
    false_decisive,
    fitted,
    intervals,
    pooled_skewness,
    synthetic_shapes,
)
from pgclaims.stats.pivot import TRANSFORMS, UNBOUNDED, transform_for
from pgclaims.suite.claims import all_claims

AGENTS = (3, 5, 10)
RUN_ROWS = 143
"""Rows of the simulated run: the default scale's tests of one protocol (issue 24)."""
FAMILY_AGENTS = 5
NULL_AGENTS = (3, 5, 10)
"""Agents per row in the simulated runs: the least CLAIMS.md allows, today's scales, and the 10
another issue adds."""


def methods_for(shape: Shape) -> list[tuple[str, str]]:
    """(label, engine method) rows for a shape: the raw jackknife-t the engine used before,
    then the one it uses now, when they differ."""
    now = TRANSFORMS[transform_for(shape.support)]
    rows = [("before: jackknife-t", "jackknife-t")]
    return rows + ([(f"now: {now}", "auto")] if now != "jackknife-t" else [])


def fitted_shapes(paths: list[Path], *, at_threshold: bool) -> list[tuple[Shape, float, str]]:
    """(shape, threshold, claim id) per measured row whose statistic is a mean of agent
    values: each fitted to the row's agent values (pooled skewness of its claim for an
    unbounded one), at their mean or, ``at_threshold``, moved to the claim's threshold."""
    rows = [row for path in paths for row in json.loads(path.read_text())["rows"]]
    claims = all_claims()
    by_claim: dict[str, list[list[float]]] = {}
    for row in rows:
        if row["agent_values"] and row["mean_of_agents"]:
            by_claim.setdefault(row["claim_id"], []).append(row["agent_values"])
    out = []
    for row in rows:
        if not (row["agent_values"] and row["mean_of_agents"]):
            continue
        claim = claims[row["claim_id"]]
        values = row["agent_values"]
        if np.std(values) == 0:
            continue
        skew = pooled_skewness(by_claim[claim.id])
        mean = claim.threshold if at_threshold else None
        name = f"{claim.id} {row['params']}"
        out.append((fitted(name, values, claim.support, mean=mean, skewness=skew),
                    claim.threshold, claim.id))
    return out


def _cell(c: Coverage) -> str:
    return f"{c.coverage:.3f} ({c.below:.3f} / {c.above:.3f})"


def coverage_table(shapes: list[Shape], trials: int, rng: np.random.Generator) -> list[str]:
    lines = ["| shape | support | method | " + " | ".join(f"{n} agents" for n in AGENTS) + " |",
             "|---|---|---|" + "---|" * len(AGENTS)]
    for shape in shapes:
        lo, hi = shape.support
        for label, method in methods_for(shape):
            cells = [_cell(coverage(shape, n, method, trials=trials, rng=rng)) for n in AGENTS]
            lines.append(f"| {shape.name} | [{lo:g}, {hi:g}] | {label} | "
                         + " | ".join(cells) + " |")
    return lines


def fitted_table(found: list[tuple[Shape, float, str]], trials: int,
                 rng: np.random.Generator) -> list[str]:
    """Per claim: its rows' method and the lowest and highest coverage over them (and the
    largest one-sided miss), each row's shape fitted to its own agents."""
    by_claim: dict[str, list[Shape]] = {}
    for shape, _, claim_id in found:
        by_claim.setdefault(claim_id, []).append(shape)
    lines = ["| claim (rows) | method | " + " | ".join(f"{n} agents" for n in AGENTS) + " |",
             "|---|---|" + "---|" * len(AGENTS)]
    for claim_id, shapes in by_claim.items():
        for label, method in methods_for(shapes[0]):
            cells = []
            for n in AGENTS:
                cs = [coverage(s, n, method, trials=trials, rng=rng) for s in shapes]
                worst = max(max(c.below, c.above) for c in cs)
                cells.append(f"{min(c.coverage for c in cs):.3f}-{max(c.coverage for c in cs):.3f}"
                             f" (max one side {worst:.3f})")
            lines.append(f"| {claim_id} ({len(shapes)}) | {label} | " + " | ".join(cells) + " |")
    return lines


def tail_table(shapes: list[Shape], trials: int, rng: np.random.Generator) -> list[str]:
    control = ErrorControl("family", RUN_ROWS)
    a = control.alpha_side
    lines = ["| shape | method | " + " | ".join(f"{n} agents" for n in AGENTS) + " |",
             "|---|---|" + "---|" * len(AGENTS)]
    for shape in shapes:
        for label, method in methods_for(shape):
            cells = []
            for n in AGENTS:
                c = coverage(shape, n, method, trials=trials, rng=rng,
                             confidence_level=control.confidence_level)
                cells.append(f"{c.below / a:.2f} / {c.above / a:.2f}")
            lines.append(f"| {shape.name} | {label} | " + " | ".join(cells) + " |")
    return lines


def null_runs(cases: list[tuple[str, list[Shape], list[float]]], runs: int,
              rng: np.random.Generator) -> list[str]:
    """Per case and agent count: mean false decisive verdicts per run before (per-row rule,
    raw jackknife-t), under the per-row rule on the support's scale (``--error-control
    row``), and under the family rule (the default), with the share of runs with any."""
    before = ErrorControl("row", RUN_ROWS)
    after = ErrorControl("family", RUN_ROWS)
    lines = ["| rows of the run | agents | before: per-row rule, jackknife-t | per-row rule, "
             "support's scale | family rule, support's scale | family: runs with >= 1 |",
             "|---|---|---|---|---|---|"]
    for name, shapes, thresholds in cases:
        for n in NULL_AGENTS:
            few = max(200, runs // 10)
            b = false_decisive(shapes, thresholds, n, before, "jackknife-t", runs=few, rng=rng)
            r = false_decisive(shapes, thresholds, n, before, "auto", runs=few, rng=rng)
            f = false_decisive(shapes, thresholds, n, after, "auto", runs=runs, rng=rng)
            se = f.std(ddof=1) / math.sqrt(len(f))
            lines.append(f"| {name} | {n} | {b.mean():.2f} | {r.mean():.2f} | "
                         f"{f.mean():.3f} +- {se:.3f} | {np.mean(f > 0):.3f} |")
    return lines


def hall_intervals(x: np.ndarray, confidence_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Hall's (1992) skewness-corrected t for the mean of ``x`` (trials, n): the candidate for
    unbounded skewed statistics that the engine does not use (see the table it feeds)."""
    n = x.shape[-1]
    mean, sd = x.mean(axis=-1), x.std(axis=-1, ddof=1)
    dev = x - mean[..., None]
    gamma = np.mean(dev**3, axis=-1) / np.maximum(np.mean(dev**2, axis=-1), 1e-300) ** 1.5
    a, b = gamma / (3 * math.sqrt(n)), gamma / (6 * math.sqrt(n))

    def inverse(t: float) -> np.ndarray:  # g(T) = T + a T^2 + a^2 T^3 / 3 + b, inverted
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (np.cbrt(1 + 3 * a * (t - b)) - 1) / a
        return np.where(np.abs(a) < 1e-12, t - b, out)

    q = sps.t.ppf(0.5 + confidence_level / 2, n - 1)
    se = sd / math.sqrt(n)
    return mean - se * inverse(q), mean - se * inverse(-q)


def candidates_table(shapes: list[Shape], trials: int, tail_trials: int,
                     rng: np.random.Generator) -> list[str]:
    """Hall's t against the raw jackknife-t: coverage at 95% and the far-tail miss rates."""
    control = ErrorControl("family", RUN_ROWS)
    lines = ["| shape | method | 95% coverage, 5 agents | family-level miss below / above "
             "(x nominal), 5 agents |", "|---|---|---|---|"]
    for shape in shapes:
        for name in ("jackknife-t", "Hall's t"):
            cells = []
            for level, count in ((0.95, trials), (control.confidence_level, tail_trials)):
                x = shape.draw(rng, (count, FAMILY_AGENTS))
                lo, hi = (hall_intervals(x, level) if name != "jackknife-t" else
                          intervals(x, UNBOUNDED, "jackknife-t", level))
                below, above = np.mean(shape.mean < lo), np.mean(shape.mean > hi)
                cells.append(f"{1 - below - above:.3f} ({below:.3f} / {above:.3f})"
                             if level == 0.95 else
                             f"{below / control.alpha_side:.2f} / {above / control.alpha_side:.2f}")
            lines.append(f"| {shape.name} | {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20_000, help="trials per coverage cell")
    ap.add_argument("--tail-trials", type=int, default=2_000_000,
                    help="trials per far-tail cell (the family level)")
    ap.add_argument("--runs", type=int, default=20_000, help="simulated runs per null case")
    ap.add_argument("--agents", type=Path, action="append", default=[],
                    help="per-agent values of our agents (benchmarks/agent_values.py); "
                    "repeatable")
    ap.add_argument("--seed", type=int, default=20240024)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    start = time.time()
    synthetic = synthetic_shapes()
    shapes = synthetic + [as_unbounded(synthetic[1]), as_unbounded(synthetic[4])]
    out: list[str] = [f"seed {args.seed}; {args.trials} trials per coverage cell, "
                      f"{args.tail_trials} per tail cell, {args.runs} runs per null case", ""]
    out += ["### Coverage of 95% intervals (truth below / above the interval)", ""]
    out += coverage_table(shapes, args.trials, rng)
    fit_now = fitted_shapes(args.agents, at_threshold=False) if args.agents else []
    if fit_now:
        out += ["", "### Shapes fitted to our agents' per-agent values: lowest-highest coverage "
                "over each claim's rows", ""]
        out += fitted_table(fit_now, args.trials, rng)
    out += ["", "### A candidate not used: Hall's skewness-corrected t, on unbounded shapes", ""]
    out += candidates_table([synthetic[0], as_unbounded(synthetic[1])], args.trials,
                            args.tail_trials, rng)
    out += ["", f"### Far tails at the family level (alpha / (2 x {RUN_ROWS}) per side): "
            "rate below / above, as a multiple of the nominal", ""]
    out += tail_table(shapes, args.tail_trials, rng)
    cases = [(s.name, [s] * RUN_ROWS, [s.mean] * RUN_ROWS) for s in shapes]
    if args.agents:
        fit_thr = fitted_shapes(args.agents, at_threshold=True)
        if fit_thr:
            k = len(fit_thr)
            picks = [fit_thr[i % k] for i in range(RUN_ROWS)]
            cases.append((f"{RUN_ROWS} rows cycling through the {k} fitted rows, each moved "
                          "to its claim's threshold", [p[0] for p in picks],
                          [p[1] for p in picks]))
    out += ["", f"### False decisive verdicts per simulated run ({RUN_ROWS} rows, every effect "
            "at its threshold)", ""]
    out += null_runs(cases, args.runs, rng)
    out += ["", f"({time.time() - start:.0f} s)"]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())



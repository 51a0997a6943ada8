"""Claims that need extra training runs (CLAIMS.md: baseline.needed_for_reward, section 2.2;
regime.more_samples_lower_lr, sections 1 and 5).

Every run has the same budget of pairs (:func:`pgclaims.suite.plan.ablation_budget`; the
committed agents' 1,024,000 at fixture scales). Fixture scales read the ablation store
(``pgclaims fixtures train-ablations``), so nothing trains at run time and a missing run makes
the claim INCONCLUSIVE with the command that trains it; scales that train their own agents
train the runs once, under a lock. A scale without the capability reports the claims
INCONCLUSIVE with that reason (the plugin does so from the claim's ``needs``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pgclaims.suite.plan import ablation_budget


def _ratio_of_means(units: list[dict[str, np.ndarray]]) -> float:
    return float(np.mean([np.mean(u["zero"]) for u in units])
                 / np.mean([np.mean(u["value"]) for u in units]))


def _value_return(units: list[dict[str, np.ndarray]]) -> float:
    """The ratio's denominator: the value-net agents' mean final return."""
    return float(np.mean([np.mean(u["value"]) for u in units]))


def _budget(study: Any, claim_id: str, variants: str, env: str, algo: str) -> dict[str, Any]:
    """What every run of the claim was given, and what its final return averages."""
    from pgclaims.agents.ablations import final_window
    from pgclaims.suite.claims import get

    budget = ablation_budget(get(claim_id), study.scale, variants)
    return {"budget_pairs": budget, "final_window_pairs": min(final_window(env, algo), budget)}


@pytest.mark.claim("baseline.needed_for_reward")
def test_needed_for_reward(study, verdict, env, algo):
    per_seed = study.ablation_runs("baseline.needed_for_reward", env, algo, "baseline")
    finals = study.final_returns([r for runs in per_seed for r in runs])
    units = [{"zero": np.array([finals[zero]]), "value": np.array([finals[value]])}
             for zero, value in per_seed]
    verdict.check_ratio(units, _ratio_of_means, _value_return,
                        what="final mean return of the value-net agents", extra={
        **_budget(study, "baseline.needed_for_reward", "baseline", env, algo),
        "final_returns": {str(zero.seed): {"zero": finals[zero], "valuenet": finals[value]}
                          for zero, value in per_seed}})


def best_multipliers(runs: list[Any], finals: dict[Any, float]) -> dict[int, float]:
    """Per batch size, the step-size multiplier of the run with the highest final return
    (the first, i.e. the smallest, on a tie)."""
    out = {}
    for steps in sorted({r.steps for r in runs}):
        at = sorted((r for r in runs if r.steps == steps), key=lambda r: r.multiplier)
        out[steps] = at[int(np.argmax([finals[r] for r in at]))].multiplier
    return out


def best_log_lr(log_grid: np.ndarray, finals: np.ndarray) -> tuple[float, int]:
    """The best log step size by final return, refined between grid points, and where the grid
    censors it: -1 (at or below the smallest), +1 (at or above the largest) or 0.

    An interior best is the vertex of the parabola through the grid's best point and its two
    neighbours (log-spaced grid), which stays within half a step of that point: best LRs are
    continuous, not grid ties, so agents that agree still spread a little and an interval over
    them has a width. At an end of the grid the best is only bounded by it."""
    k = int(np.argmax(finals))
    if k in (0, len(finals) - 1):
        return float(log_grid[k]), -1 if k == 0 else 1
    x, y = log_grid[k - 1:k + 2], finals[k - 1:k + 2]
    curvature = (y[2] - y[1]) / (x[2] - x[1]) - (y[1] - y[0]) / (x[1] - x[0])
    if not curvature < 0:  # flat top (ties): the grid point itself
        return float(x[1]), 0
    slope_left = (y[1] - y[0]) / (x[1] - x[0])
    vertex = (x[0] + x[1]) / 2 - slope_left * (x[2] - x[0]) / (2 * curvature)
    return float(np.clip(vertex, (x[0] + x[1]) / 2, (x[1] + x[2]) / 2)), 0


def log_best(runs: list[Any], finals: dict[Any, float]) -> dict[int, tuple[float, int]]:
    """Per batch size, :func:`best_log_lr` over the runs' multipliers."""
    out = {}
    for steps in sorted({r.steps for r in runs}):
        at = sorted((r for r in runs if r.steps == steps), key=lambda r: r.multiplier)
        out[steps] = best_log_lr(np.log([r.multiplier for r in at]),
                                 np.asarray([finals[r] for r in at]))
    return out


@pytest.mark.claim("regime.more_samples_lower_lr")
def test_more_samples_lower_lr(study, verdict, env, algo):
    """Per agent the log of (best LR at the larger batch) / (best LR at 2048), each best refined
    between grid points (:func:`best_log_lr`); the claim's ratio is their geometric mean over
    agents (an arithmetic mean of ratios is biased upward: with the same best-LR distribution
    at both sizes it is well above 1). A best LR at an end of the grid only bounds the ratio
    (CLAIMS.md "Censoring"): it cannot support the verdict it leans toward."""
    from pgclaims.agents.ablations import knob, table1_value

    grid = tuple(study.scale.lr_grid)
    """Multipliers of the Table 1 value: PPO's Adam LR, or TRPO's KL bound (its step size)."""
    per_seed = study.ablation_runs("regime.more_samples_lower_lr", env, algo, "lr_grid")
    finals = study.final_returns([r for runs in per_seed for r in runs])
    best = {runs[0].seed: best_multipliers(runs, finals) for runs in per_seed}
    logs = {runs[0].seed: log_best(runs, finals) for runs in per_seed}
    units, up, down = [], [], []
    for seed, b in logs.items():
        (_, (lo_best, lo_cens)), (_, (hi_best, hi_cens)) = sorted(b.items())
        units.append(np.array([hi_best - lo_best]))
        # the true log ratio is >= the measured one when the large batch's best is at the top
        # of the grid or the small batch's at the bottom, <= it in the mirrored cases
        if hi_cens == 1 or lo_cens == -1:
            up.append(seed)
        if hi_cens == -1 or lo_cens == 1:
            down.append(seed)

    def censored(seeds: list[int], side: str) -> tuple[str, str]:
        return (f"censored: the best step size of seed(s) {', '.join(map(str, seeds))} is at an "
                f"edge of the grid x{', x'.join(f'{m:g}' for m in grid)}, so their ratio may be "
                f"{side}; widen the grid (train-ablations --multipliers)", "censored")

    unsupported = {}
    if up:  # a lower bound cannot show "at or below 1"
        unsupported["REPRODUCED"] = censored(up, "larger")
    if down:
        unsupported["REFUTED"] = censored(down, "smaller")
    verdict.check_geometric(units, lambda us: float(np.mean([u.mean() for u in us])),
                            unsupported=unsupported, extra={
        **_budget(study, "regime.more_samples_lower_lr", "lr_grid", env, algo),
        "lr_multipliers": list(grid), "knob": knob(algo), "table1": table1_value(env, algo),
        "steps_per_iteration": sorted({r.steps for r in per_seed[0]}),
        "best_multiplier": {str(s): {str(n): m for n, m in b.items()} for s, b in best.items()},
        "log_ratios": [float(u[0]) for u in units],
        "final_returns": {str(runs[0].seed): {f"{r.steps}/x{r.multiplier:g}": finals[r]
                                              for r in runs} for runs in per_seed},
        "censored_larger": up, "censored_smaller": down})

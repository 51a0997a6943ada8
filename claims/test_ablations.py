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

from claims.conftest import mean_of_means
from pgclaims.suite.plan import ablation_budget


def _ratio_of_means(units: list[dict[str, np.ndarray]]) -> float:
    return float(np.mean([np.mean(u["zero"]) for u in units])
                 / np.mean([np.mean(u["value"]) for u in units]))


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
    verdict.check(units, _ratio_of_means, extra={
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


def censoring(best: dict[int, float], grid: tuple[float, ...]) -> tuple[bool, bool]:
    """Whether one seed's ratio best(high) / best(low) is only a bound because a best LR sits
    at a grid edge: (its true ratio may be larger, may be smaller)."""
    (low, b_low), (high, b_high) = sorted(best.items())
    lo, hi = min(grid), max(grid)
    return b_high == hi or b_low == lo, b_high == lo or b_low == hi


@pytest.mark.claim("regime.more_samples_lower_lr")
def test_more_samples_lower_lr(study, verdict, env, algo):
    from pgclaims.agents.ablations import knob, table1_value

    grid = tuple(study.scale.lr_grid)
    """Multipliers of the Table 1 value: PPO's Adam LR, or TRPO's KL bound (its step size)."""
    per_seed = study.ablation_runs("regime.more_samples_lower_lr", env, algo, "lr_grid")
    finals = study.final_returns([r for runs in per_seed for r in runs])
    best = {runs[0].seed: best_multipliers(runs, finals) for runs in per_seed}
    units = [np.array([b[max(b)] / b[min(b)]]) for b in best.values()]
    flags = {seed: censoring(b, grid) for seed, b in best.items()}
    up = [s for s, (u, _) in flags.items() if u]
    down = [s for s, (_, d) in flags.items() if d]

    def censored(outcome: Any) -> str | None:
        """CLAIMS.md "Censoring": a seed whose best LR is at a grid edge gives a bound."""
        seeds = up if outcome == "REPRODUCED" else down
        if not seeds:
            return None
        side = "larger" if outcome == "REPRODUCED" else "smaller"
        return (f"the best step size of seed(s) {', '.join(map(str, seeds))} is at an edge of "
                f"the grid x{', x'.join(f'{m:g}' for m in grid)}, so their ratio may be "
                f"{side}; widen the grid (train-ablations --multipliers)")

    verdict.check(units, mean_of_means, censored=censored, extra={
        **_budget(study, "regime.more_samples_lower_lr", "lr_grid", env, algo),
        "lr_multipliers": list(grid), "knob": knob(algo), "table1": table1_value(env, algo),
        "steps_per_iteration": sorted({r.steps for r in per_seed[0]}),
        "best_multiplier": {str(s): {str(n): m for n, m in b.items()} for s, b in best.items()},
        "final_returns": {str(runs[0].seed): {f"{r.steps}/x{r.multiplier:g}": finals[r]
                                              for r in runs} for runs in per_seed},
        "censored_larger": up, "censored_smaller": down})

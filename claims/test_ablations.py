"""Claims that need extra training runs (CLAIMS.md: baseline.needed_for_reward, section 2.2;
regime.more_samples_lower_lr, sections 1 and 5).

Scales without the capability report them INCONCLUSIVE with that reason (the plugin does so
from the claim's ``needs``); scales with it train the ablation agents once, under a lock.
"""

from __future__ import annotations

import numpy as np
import pytest

from claims.conftest import mean_of_means


def _final_returns(study, env, algo, seed, **overrides):
    curve = study.train_variant(env, algo, seed, **overrides).curve
    tail = [r["mean_return"] for r in curve[-10:] if np.isfinite(r["mean_return"])]
    return np.asarray(tail)


@pytest.mark.claim("baseline.needed_for_reward")
def test_needed_for_reward(study, verdict, env, algo):
    def unit(seed):
        zero = _final_returns(study, env, algo, seed, baseline="zero")
        value = _final_returns(study, env, algo, seed)
        return {"zero": zero, "value": value}

    def ratio(units):
        return float(np.mean([np.mean(u["zero"]) for u in units])
                     / np.mean([np.mean(u["value"]) for u in units]))

    verdict.check(study.per_agent(unit), ratio)


@pytest.mark.claim("regime.more_samples_lower_lr")
def test_more_samples_lower_lr(study, verdict, env, algo):
    from pgclaims.agents.agent import TrainConfig

    grid = study.scale.lr_grid
    """Multipliers of the Table 1 value: PPO's Adam LR, or TRPO's KL bound (its step size)."""
    small, large = 2048, 10 * 2048
    key = "policy_lr" if algo == "ppo" else "max_kl"
    base = getattr(TrainConfig.create(env, algo, 0).hyper, key)

    def best(seed, steps):
        finals = [np.mean(_final_returns(study, env, algo, seed, steps_per_iteration=steps,
                                         **{key: base * m})) for m in grid]
        return float(grid[int(np.argmax(finals))])

    units = study.per_agent(lambda s: np.array([best(s, large) / best(s, small)]))
    verdict.check(units, mean_of_means,
                  extra={"lr_multipliers": list(grid), "knob": key, "table1": base})

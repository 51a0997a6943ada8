"""PPO: the clipped surrogate on hand-made ratios and advantages, and the update on a real batch."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from pgclaims.agents.networks import flat_params
from pgclaims.agents.ppo import PPOConfig, clipped_surrogate, policy_update

if TYPE_CHECKING:
    from conftest import PolicyBatch

EPS = 0.2
"""Table 1 "PPO Clipping"."""

CASES = [
    # ratio, advantage, min(r A, clip(r, 0.8, 1.2) A)
    (1.0, 1.0, 1.0),
    (1.1, 1.0, 1.1),  # inside the interval: the plain ratio
    (0.9, -2.0, -1.8),
    (1.5, 1.0, 1.2),  # A > 0, r above 1 + eps: clipped, no incentive to go further
    (0.5, 1.0, 0.5),  # A > 0, r below 1 - eps: unclipped, the pessimistic bound
    (1.5, -1.0, -1.5),  # A < 0, r above 1 + eps: unclipped
    (0.5, -1.0, -0.8),  # A < 0, r below 1 - eps: clipped
    (3.0, 0.5, 0.6),
    (0.1, -4.0, -3.2),
    (2.0, 0.0, 0.0),
]


def surrogate_of(ratios: list[float], advs: list[float]) -> torch.Tensor:
    logp_new = torch.tensor([math.log(r) for r in ratios], dtype=torch.float64)
    return clipped_surrogate(logp_new, torch.zeros_like(logp_new),
                             torch.tensor(advs, dtype=torch.float64), EPS)


@pytest.mark.parametrize(("ratio", "adv", "expected"), CASES)
def test_clipped_surrogate_single_pair(ratio: float, adv: float, expected: float) -> None:
    assert float(surrogate_of([ratio], [adv])) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_clipped_surrogate_is_the_batch_mean() -> None:
    ratios, advs, expected = zip(*CASES, strict=True)
    got = float(surrogate_of(list(ratios), list(advs)))
    assert got == pytest.approx(sum(expected) / len(CASES), rel=1e-12)


@pytest.mark.parametrize(("ratio", "adv", "moves"), [
    (1.1, 1.0, True), (1.5, 1.0, False), (0.5, 1.0, True),
    (0.9, -1.0, True), (0.5, -1.0, False), (1.5, -1.0, True),
])
def test_clipped_pairs_carry_no_gradient(ratio: float, adv: float, moves: bool) -> None:
    """d/dlogp of the surrogate is r A where the unclipped term is the minimum, else 0."""
    logp = torch.tensor([math.log(ratio)], dtype=torch.float64, requires_grad=True)
    clipped_surrogate(logp, torch.zeros(1, dtype=torch.float64),
                      torch.tensor([adv], dtype=torch.float64), EPS).backward()
    assert float(logp.grad) == pytest.approx(ratio * adv if moves else 0.0, rel=1e-12)


def test_update_raises_the_surrogate_and_moves_the_policy(
    policy_batch: Callable[..., PolicyBatch]
) -> None:
    """Before the update r = 1, so the surrogate is the mean normalized advantage, 0."""
    pb = policy_batch("ppo")
    assert float(clipped_surrogate(pb.logp_old, pb.logp_old, pb.adv, EPS)) == pytest.approx(
        0.0, abs=1e-6)
    before = flat_params(pb.agent.policy)
    info = policy_update(pb.agent.policy, pb.agent.policy_opt, pb.obs, pb.actions, pb.logp_old,
                         pb.adv, pb.agent.hyper, np.random.default_rng(0))
    assert info["surrogate"] > 0
    assert math.isfinite(info["kl"])
    assert not torch.equal(flat_params(pb.agent.policy), before)


def test_table1_rows() -> None:
    for env_id, policy_lr, value_lr in [("Humanoid-v5", 2.5e-4, 1e-4),
                                        ("Walker2d-v5", 4e-4, 3e-4),
                                        ("Hopper-v5", 4.5e-4, 2e-4)]:
        cfg = PPOConfig.for_env(env_id)
        assert (cfg.policy_lr, cfg.value_lr) == (policy_lr, value_lr)
    cfg = PPOConfig.for_env("Hopper-v5")
    assert (cfg.steps_per_iteration, cfg.gamma, cfg.gae_lambda, cfg.epochs, cfg.value_epochs,
            cfg.clip_eps, cfg.entropy_coef, cfg.reward_normalization) == (
        2048, 0.99, 0.95, 10, 10, EPS, 0.0, True)
    with pytest.raises(ValueError, match="no PPO row for 'Ant-v5'"):
        PPOConfig.for_env("Ant-v5")
    assert PPOConfig.for_env("Ant-v5", policy_lr=1e-3, value_lr=1e-3).policy_lr == 1e-3

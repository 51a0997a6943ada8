"""TRPO: conjugate gradient, the KL of diagonal Gaussians, and the constrained update."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pgclaims.agents import trpo
from pgclaims.agents.networks import flat_params
from pgclaims.agents.trpo import TRPOConfig, conjugate_gradient, mean_kl, policy_update

if TYPE_CHECKING:
    from conftest import PolicyBatch


def spd_system(n: int, log10_cond: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A = Q diag(eigenvalues in [1, cond]) Q^T with a random orthogonal Q, and a unit b."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eig = np.logspace(0.0, log10_cond, n)
    rng.shuffle(eig)
    a = (q * eig) @ q.T
    b = rng.standard_normal(n)
    return torch.from_numpy((a + a.T) / 2), torch.from_numpy(b / np.linalg.norm(b))


@given(st.integers(1, 40), st.floats(0.0, 3.0), st.integers(0, 2**32 - 1))
def test_cg_solves_spd_systems_to_tolerance(n: int, log10_cond: float, seed: int) -> None:
    a, b = spd_system(n, log10_cond, seed)
    x = conjugate_gradient(lambda v: a @ v, b, iters=10 * n + 10, tol=1e-10)
    assert float((a @ x - b).norm()) <= 2e-5  # the loop stops once |r|^2 < tol


@given(st.floats(0.0, 2.0), st.integers(0, 2**32 - 1))
def test_cg_is_exact_after_n_iterations_on_an_n_dim_system(log10_cond: float, seed: int) -> None:
    a, b = spd_system(10, log10_cond, seed)
    x = conjugate_gradient(lambda v: a @ v, b, iters=10, tol=1e-30)
    expected = np.linalg.solve(a.numpy(), b.numpy())
    # Round-off erodes the conjugacy of the directions at a rate that grows with the condition.
    cond = 10**log10_cond
    assert np.linalg.norm(x.numpy() - expected) <= 1e-12 * cond**2 * np.linalg.norm(expected)


def test_cg_of_a_zero_right_hand_side_is_zero() -> None:
    """A zero gradient (e.g. a batch whose advantages are all equal, so normalize to 0) must give
    a zero step, not 0/0."""
    a, _ = spd_system(5, 1.0, 0)
    x = conjugate_gradient(lambda v: a @ v, torch.zeros(5, dtype=torch.float64), iters=10)
    assert torch.equal(x, torch.zeros(5, dtype=torch.float64))


def test_mean_kl_matches_torch_distributions(policy_batch: Callable[..., PolicyBatch]) -> None:
    pb = policy_batch("trpo")
    policy, obs = pb.agent.policy, pb.obs
    with torch.no_grad():
        old = policy.dist(obs)
        mu_old, log_std_old = old.loc.clone(), policy.log_std.clone()
        torch.manual_seed(0)
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
        expected = torch.distributions.kl_divergence(old, policy.dist(obs)).sum(-1).mean()
        got = mean_kl(policy, obs, mu_old, log_std_old)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    assert float(got) > 0


def update(pb: PolicyBatch, cfg: TRPOConfig) -> tuple[dict[str, float], float]:
    """Run one TRPO update; returns its info and the mean KL (old || new) over the whole batch."""
    policy = pb.agent.policy
    with torch.no_grad():
        mu_old, log_std_old = policy.mean(pb.obs), policy.log_std.clone()
    info = policy_update(policy, pb.obs, pb.actions, pb.logp_old, pb.adv, cfg,
                         np.random.default_rng(0))
    with torch.no_grad():
        kl = float(mean_kl(policy, pb.obs, mu_old, log_std_old))
    return info, kl


@pytest.mark.parametrize("max_kl", [0.13, 0.01, 1e-5])
def test_update_respects_the_kl_bound_on_the_whole_batch(
    policy_batch: Callable[..., PolicyBatch], max_kl: float
) -> None:
    pb = policy_batch("trpo", max_kl=max_kl)
    info, kl = update(pb, pb.agent.hyper)
    assert 0 < kl <= max_kl
    assert info["step_fraction"] > 0
    assert info["kl"] == pytest.approx(kl)
    assert info["surrogate"] > info["surrogate_before"]


@settings(max_examples=15)
@given(st.floats(1e-6, 1.0))
def test_kl_bound_holds_for_any_delta(policy_batch: Callable[..., PolicyBatch],
                                      max_kl: float) -> None:
    pb = policy_batch("trpo", max_kl=max_kl)
    _, kl = update(pb, pb.agent.hyper)
    assert kl <= max_kl


def test_rejected_line_search_leaves_the_policy_unchanged(
    policy_batch: Callable[..., PolicyBatch], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that lowers the surrogate at every backtracking fraction is never taken."""
    real = trpo.natural_step

    def uphill_reversed(*args: object, **kwargs: object) -> tuple[torch.Tensor, dict]:
        step, info = real(*args, **kwargs)
        return -step, info

    monkeypatch.setattr(trpo, "natural_step", uphill_reversed)
    pb = policy_batch("trpo")
    before = {k: v.clone() for k, v in pb.agent.policy.state_dict().items()}
    info, kl = update(pb, pb.agent.hyper)
    after = pb.agent.policy.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert info["step_fraction"] == 0.0 and info["kl"] == 0.0 and kl == 0.0
    assert info["surrogate"] == info["surrogate_before"]


def test_zero_advantages_leave_the_policy_unchanged_and_finite(
    policy_batch: Callable[..., PolicyBatch]
) -> None:
    pb = policy_batch("trpo")
    before = flat_params(pb.agent.policy)
    pb.adv = torch.zeros_like(pb.adv)
    info, _ = update(pb, pb.agent.hyper)
    assert torch.equal(flat_params(pb.agent.policy), before)
    assert info["step_fraction"] == 0.0


def test_table1_rows() -> None:
    for env_id, max_kl, value_lr in [("Humanoid-v5", 0.07, 3e-4), ("Walker2d-v5", 0.04, 3e-4),
                                     ("Hopper-v5", 0.13, 2e-4)]:
        cfg = TRPOConfig.for_env(env_id)
        assert (cfg.max_kl, cfg.value_lr) == (max_kl, value_lr)
    cfg = TRPOConfig.for_env("Hopper-v5")
    assert (cfg.steps_per_iteration, cfg.gamma, cfg.gae_lambda, cfg.fisher_fraction,
            cfg.cg_iters, cfg.cg_damping, cfg.backtrack_iters, cfg.reward_normalization) == (
        2048, 0.99, 0.95, 0.1, 10, 0.1, 10, False)
    with pytest.raises(ValueError, match="no TRPO row for 'Ant-v5'"):
        TRPOConfig.for_env("Ant-v5")

"""Pair counts without sampling (:mod:`pgclaims.measure.budget`) against what each measurement
reports having sampled, and the streamed true-value fit (:mod:`pgclaims.measure.truevalue`)
against the all-in-memory fit it replaced."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from envs_for_tests import BANDIT

from pgclaims.agents.agent import TrainConfig, make_agent
from pgclaims.agents.networks import ValueNet
from pgclaims.measure import MeasureConfig, budget, truevalue
from pgclaims.measure.gradients import gradient_study
from pgclaims.measure.landscape import landscape, step_study
from pgclaims.measure.sampler import CHUNK, rng_for
from pgclaims.measure.value import value_error

SEED = 11


@pytest.fixture(scope="module")
def bandit():
    cfg = TrainConfig.create(BANDIT, "ppo", 0, iterations=1, value_lr=3e-4, policy_lr=3e-4)
    return make_agent(cfg)


@pytest.mark.parametrize("cfg", [
    MeasureConfig(n_grid=(64, 300, 2048, 5000), repeats=3, true_grad_n=30_000,
                  true_value_n=3000),  # N < 2048, N rounded up to chunks, an extra pool
    MeasureConfig(n_grid=(2048,), repeats=2, true_grad_n=1, true_value_n=0),
])
def test_gradient_pairs_are_what_the_study_samples(bandit, cfg: MeasureConfig) -> None:
    study = gradient_study(bandit, cfg.n_grid, cfg.repeats, cfg.true_grad_n, cfg.true_value_n,
                           SEED, workers=1)
    assert budget.pairs("gradients", cfg) == study.meta["pairs_sampled"]
    parts = budget.gradient_parts(cfg)
    assert parts["extra_pool"] == study.meta["extra_pool_pairs"]
    assert parts["true_value"] == study.meta.get("true_value_pairs", 0)  # one-step episodes


def test_value_step_and_landscape_pairs(bandit) -> None:
    cfg = MeasureConfig(repeats=2, heldout_n=300, step_eval_n=256, high_sample_step_n=3000,
                        landscape_steps=(0.0, 1.0, 2.0), landscape_n=(64, 128),
                        landscape_ref_n=200)
    value = value_error(bandit, cfg.repeats, cfg.heldout_n, SEED)
    assert budget.pairs("value", cfg) == value.meta["heldout_pairs"]
    steps = step_study(bandit, cfg.repeats, cfg.step_eval_n, cfg.high_sample_step_n, SEED)
    assert budget.pairs("steps", cfg) == steps.meta["pairs_sampled"]
    no_high = dataclasses.replace(cfg, high_sample_step_n=0)
    steps0 = step_study(bandit, cfg.repeats, cfg.step_eval_n, 0, SEED)
    assert budget.pairs("steps", no_high) == steps0.meta["pairs_sampled"]
    land = landscape(bandit, cfg.landscape_steps, cfg.landscape_n, cfg.landscape_ref_n, SEED)
    assert budget.pairs("landscape", cfg) == land.meta["pairs_sampled"]
    ref_only = dataclasses.replace(cfg, landscape_n=())
    land0 = landscape(bandit, cfg.landscape_steps, (), cfg.landscape_ref_n, SEED)
    assert budget.pairs("landscape", ref_only) == land0.meta["pairs_sampled"]
    assert land0.reward == {} and np.array_equal(land0.surrogate, land.surrogate)
    assert budget.training_pairs(500) == 500 * CHUNK
    with pytest.raises(ValueError, match="unknown measurement 'steps2'"):
        budget.pairs("steps2", cfg)


# ---------------------------------------------------------------------------------------------
# The streamed fit


def in_memory_fit(obs: np.ndarray, y: np.ndarray, seed: int, epochs: int, minibatch: int
                  ) -> tuple[ValueNet, float]:
    """The fit as it was before streaming: every row in one tensor."""
    x, t = torch.from_numpy(obs), torch.from_numpy(y).float()
    torch.manual_seed(seed)
    net = ValueNet(x.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=truevalue.LR)
    rng = rng_for(seed, 91)
    for _ in range(epochs):
        perm = torch.from_numpy(rng.permutation(len(x)))
        for s in range(0, len(x), minibatch):
            idx = perm[s : s + minibatch]
            loss = (net(x[idx]) - t[idx]).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        return net, float((net(x) - t).pow(2).mean())


def parts(rows: int, dim: int) -> list[truevalue.UsableReturns]:
    rng = np.random.default_rng(3)
    out = []
    for k in range(rows // 100):  # chunks of uneven usable lengths, as cut tails make them
        m = 100 - 7 * (k % 3)
        out.append(truevalue.UsableReturns(rng.standard_normal((m, dim)).astype(np.float32),
                                           rng.standard_normal(m) * 5, 1, np.zeros(0)))
    return out


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_streamed_fit_is_bit_identical_to_the_in_memory_fit(
        where: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    if where == "disk":
        monkeypatch.setattr(truevalue, "MEMORY_BUDGET", 0)
        monkeypatch.setattr(truevalue, "EVAL_ROWS", 256)  # evaluated in several blocks
    ps = parts(1500, 5)
    net, meta, trajectories, _ = truevalue.fit_parts(ps, 1500, SEED, tmp_dir=str(tmp_path),
                                                     epochs=3, minibatch=64)
    ref, mse = in_memory_fit(np.concatenate([p.obs for p in ps]),
                             np.concatenate([p.returns for p in ps]), SEED, 3, 64)
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    assert meta["true_value_store"] == where and meta["true_value_pairs"] == sum(
        len(p.returns) for p in ps)
    assert meta["true_value_fit_mse"] == pytest.approx(mse, rel=1e-6)
    if where == "memory":
        assert meta["true_value_fit_mse"] == mse  # one evaluation block: the same reduction
    assert trajectories == [1] * len(ps)
    assert list(tmp_path.iterdir()) == []  # the spilled rows are removed


def test_row_store_refuses_overflow_and_cleans_up(tmp_path) -> None:
    store = truevalue.RowStore(3, 4, budget=0, tmp_dir=str(tmp_path))
    store.append(np.ones((3, 3), np.float32), np.arange(3.0))
    with pytest.raises(ValueError, match="holds 4 rows; 5 appended"):
        store.append(np.ones((2, 3), np.float32), np.arange(2.0))
    x, y = store.take(np.array([2, 0]))
    assert x.shape == (2, 3) and y.tolist() == [2.0, 0.0]
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_a_steps_only_study_takes_the_same_steps_and_no_reward_estimates(bandit) -> None:
    """``step_eval_n`` 0 (the default scale, whose reward-change claims are below CLAIMS.md's
    sizes): the same steps from the same streams, nothing sampled for their effect."""
    full = step_study(bandit, 3, 256, 0, SEED)
    bare = step_study(bandit, 3, 0, 0, SEED)
    np.testing.assert_array_equal(bare.pairwise, full.pairwise)
    np.testing.assert_array_equal(bare.surrogate_gain, full.surrogate_gain)
    assert np.isnan(bare.reward_change).all() and len(bare.reward_change) == 3
    assert np.isnan(bare.high_reward_change).all()
    cfg = MeasureConfig(repeats=3, step_eval_n=0, high_sample_step_n=0)
    assert bare.meta["pairs_sampled"] == budget.pairs("steps", cfg) == 3 * CHUNK
    with pytest.raises(ValueError, match="high-sample step needs true-reward evaluations"):
        step_study(bandit, 3, 0, 4096, SEED)

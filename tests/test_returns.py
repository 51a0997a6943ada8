"""The value net's "returns" targets under each protocol (:mod:`pgclaims.measure.returns`)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgclaims.agents.agent import TrainConfig, make_agent
from pgclaims.agents.gae import discounted_returns
from pgclaims.agents.rollout import Batch, collect
from pgclaims.measure.returns import continued, horizon, returns_target, to_cut
from pgclaims.measure.sampler import FrozenObsNorm, FrozenRewardScaler

GAMMA = 0.99


def test_horizon_leaves_out_at_most_the_residual_weight() -> None:
    h = horizon(GAMMA)
    assert GAMMA**h <= 1e-3 < GAMMA ** (h - 1)
    assert h == 688


def test_to_cut_sums_rewards_up_to_each_end_without_bootstrap() -> None:
    r = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    term = np.array([False, True, False, False, False])
    trunc = np.array([False, False, False, False, True])
    b = Batch(np.zeros((5, 1), np.float32), np.zeros((5, 1), np.float32), r, r, term, trunc,
              np.zeros((1, 1), np.float32), np.zeros(1), np.zeros(1, np.int64))
    got = to_cut(b, GAMMA)
    assert got.tolist() == pytest.approx([1 + GAMMA * 2, 2, 3 + GAMMA * 4 + GAMMA**2 * 5,
                                          4 + GAMMA * 5, 5])


def deterministic_agent():
    """An untrained Hopper agent whose policy is its mean (std ~ 1e-13): rollouts are then a
    function of the start state alone."""
    agent = make_agent(TrainConfig.create("Hopper-v5", "ppo", 0, 10, protocol="corrected"))
    with torch.no_grad():
        agent.policy.log_std.fill_(-30.0)
    return agent


def test_continued_returns_equal_those_of_a_longer_episode() -> None:
    """A trajectory cut by a 20-step time limit and continued for 15 steps has the returns of
    the same start state run for 35 steps without the cut (same deterministic policy, same
    frozen normalizers): the hand-computed target of the untruncated task."""
    agent = deterministic_agent()
    policy = agent.policy.numpy_sampler()
    obs_norm, scaler = FrozenObsNorm(agent.obs_norm), FrozenRewardScaler(agent.reward_scaler)
    short_env = gym.make("Hopper-v5", max_episode_steps=20)
    long_env = gym.make("Hopper-v5", max_episode_steps=35)
    short = collect(short_env, policy, obs_norm, scaler, 20, np.random.default_rng(1),
                    update_normalizers=False)
    long = collect(long_env, policy, obs_norm, scaler, 35, np.random.default_rng(1),
                   update_normalizers=False)
    short_env.close()
    long_env.close()
    assert not long.terminated.any(), "the reference episode must not fall within 35 steps"
    assert np.array_equal(short.rewards, long.rewards[:20])  # same start, same actions
    got = continued(agent, short, policy, np.random.default_rng(2), steps=15)
    expect = discounted_returns(long.rewards, np.zeros(35), long.ends, GAMMA)[:20]
    assert got == pytest.approx(expect, rel=1e-9)
    # without the continuation the target misses the tail: up to 14% of it here
    assert np.all(to_cut(short, GAMMA) < got)


def test_returns_target_kinds_and_errors() -> None:
    agent = deterministic_agent()
    policy = agent.policy.numpy_sampler()
    env = gym.make("Hopper-v5", max_episode_steps=20)
    b = collect(env, policy, FrozenObsNorm(agent.obs_norm),
                FrozenRewardScaler(agent.reward_scaler), 30, np.random.default_rng(3),
                update_normalizers=False)
    env.close()
    ret, ok = returns_target(agent, b, "to_cut", policy, np.random.default_rng(0))
    assert ok.all() and np.array_equal(ret, to_cut(b, GAMMA))
    _, ok = returns_target(agent, b, "cut_excluded", policy, np.random.default_rng(0))
    assert not ok.any()  # every state is within 459 steps of a cut
    with pytest.raises(ValueError, match="unknown returns target"):
        returns_target(agent, b, "bootstrapped", policy, np.random.default_rng(0))
    no_state = Batch(b.obs, b.actions, b.rewards, b.raw_rewards, b.terminated, b.truncated,
                     b.final_obs, b.episode_returns, b.episode_lengths, None)
    with pytest.raises(ValueError, match="MuJoCo state at every cut"):
        continued(agent, no_state, policy, np.random.default_rng(0))


@pytest.mark.parametrize("protocol", ["table1", "authors", "corrected"])
def test_value_error_follows_the_agents_protocol(protocol: str) -> None:
    from pgclaims.agents.agent import iterate
    from pgclaims.agents.envs import make_env
    from pgclaims.agents.protocol import get_protocol
    from pgclaims.measure.value import value_error

    agent = make_agent(TrainConfig.create("Hopper-v5", "trpo", 0, 2, protocol=protocol,
                                          steps_per_iteration=256))
    env = make_env("Hopper-v5")
    iterate(agent, env)
    env.close()
    study = value_error(agent, 2, 256, seed=0)
    p = get_protocol(protocol)
    assert study.meta["returns_target"] == p.returns_target
    assert study.meta["heldout_policy"] == p.heldout_policy
    assert np.isfinite(study.heldout_returns).all() and np.isfinite(study.train_returns).all()
    excluded = study.meta["excluded_cut_tail_states"]["heldout"]
    assert (excluded > 0) == (p.returns_target == "cut_excluded")
    assert (study.meta["continuation_horizon"] == 688) == (p.returns_target == "continued")

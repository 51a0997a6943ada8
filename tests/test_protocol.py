"""Each protocol field changes what it says it changes, and nothing else moves.

:mod:`pgclaims.agents.protocol` names the code-level choices; these tests pin each one on small
hand-built inputs where the right answer can be written down.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pgclaims.agents import ppo, trpo
from pgclaims.agents.agent import (
    LEGACY_CHOICES,
    TrainConfig,
    advantages,
    fit_value,
    iterate,
    lr_factor,
    make_agent,
    set_lrs,
    time_limit_cuts,
    treated_terminal,
)
from pgclaims.agents.envs import make_env
from pgclaims.agents.networks import GaussianPolicy, ValueNet
from pgclaims.agents.protocol import AUTHORS, CORRECTED, PROTOCOLS, TABLE1, get_protocol
from pgclaims.agents.rollout import Batch

GAMMA, LAM = 0.99, 0.95


class ConstValue(torch.nn.Module):
    """V(s) = the observation's first coordinate: values we can write down."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs[:, 0].float()


def batch_with_cuts(max_steps: int = 3) -> Batch:
    """Rows 0-2: an episode cut by a 3-step time limit; rows 3-4: the batch end cuts the next.

    Observation (= value) of row t is 10 + t; final observations after the cuts are 100 and 200.
    """
    n = 5
    obs = (10.0 + np.arange(n, dtype=np.float32))[:, None]
    trunc = np.array([False, False, True, False, True])
    return Batch(obs=obs, actions=np.zeros((n, 1), np.float32), rewards=np.ones(n),
                 raw_rewards=np.ones(n), terminated=np.zeros(n, bool), truncated=trunc,
                 final_obs=np.array([[100.0], [200.0]], np.float32),
                 episode_returns=np.array([3.0]), episode_lengths=np.array([3]))


# ---------------------------------------------------------------------------------------------
# Cuts: time limit and batch end


def test_a_time_limit_cut_is_told_from_the_batch_end() -> None:
    b = batch_with_cuts()
    assert time_limit_cuts(b, 3).tolist() == [False, False, True, False, False]
    assert not time_limit_cuts(b, None).any()


@pytest.mark.parametrize("protocol", [AUTHORS, CORRECTED])
def test_time_limit_is_terminal_under_authors_and_bootstrapped_under_corrected(
        protocol: object) -> None:
    b = batch_with_cuts()
    adv = advantages(ConstValue(), b, GAMMA, 0.0, time_limit=protocol.time_limit,
                     batch_end=protocol.batch_end, max_episode_steps=3).raw
    # lam = 0: the TD residual r + gamma V(next) - V(s); row 2 is the time-limit cut
    if protocol is AUTHORS:
        assert adv[2] == pytest.approx(1 + GAMMA * 0.0 - 12)
        assert adv[4] == pytest.approx(1 + GAMMA * 14 - 14)  # its own value stands for next
        assert treated_terminal(b, "terminal", 3).tolist() == [False, False, True, False, False]
    else:
        assert adv[2] == pytest.approx(1 + GAMMA * 100 - 12)
        assert adv[4] == pytest.approx(1 + GAMMA * 200 - 14)
        assert not treated_terminal(b, "bootstrap", 3).any()
    assert adv[0] == pytest.approx(1 + GAMMA * 11 - 10)  # inside an episode nothing changes


def test_table1_choices_reproduce_the_first_advantages() -> None:
    b = batch_with_cuts()
    plain = advantages(ConstValue(), b, GAMMA, LAM).raw
    table1 = advantages(ConstValue(), b, GAMMA, LAM, time_limit=TABLE1.time_limit,
                        batch_end=TABLE1.batch_end, max_episode_steps=3).raw
    assert np.array_equal(plain, table1)


# ---------------------------------------------------------------------------------------------
# Learning-rate annealing


def test_annealed_lr_falls_linearly_and_reaches_zero_at_the_end() -> None:
    hp = ppo.PPOConfig.for_env("Hopper-v5", anneal_lr=True)
    assert lr_factor(hp, 0, 500) == 1.0
    assert lr_factor(hp, 250, 500) == pytest.approx(0.5)
    assert lr_factor(hp, 499, 500) == pytest.approx(1 / 500)  # the last update (authors: 1/T)
    assert lr_factor(hp, 500, 500) == 0.0  # the schedule's end, after the last update
    assert lr_factor(ppo.PPOConfig.for_env("Hopper-v5"), 499, 500) == 1.0


def test_an_annealed_agent_sets_both_optimizers_each_iteration() -> None:
    config = TrainConfig.create("Hopper-v5", "ppo", 0, 4, protocol="authors",
                                steps_per_iteration=64)
    agent, env = make_agent(config), make_env(config.env_id)
    hp = config.hyper
    lrs = []
    for _ in range(4):
        iterate(agent, env)
        lrs += [agent.policy_opt.param_groups[0]["lr"], agent.value_opt.param_groups[0]["lr"]]
    env.close()
    expect = [lr * (1 - i / 4) for i in range(4) for lr in (hp.policy_lr, hp.value_lr)]
    assert lrs == pytest.approx(expect)
    assert [r["lr_factor"] for r in agent.curve] == pytest.approx([1, 0.75, 0.5, 0.25])
    set_lrs(agent, 4)
    assert agent.policy_opt.param_groups[0]["lr"] == 0.0


def test_trpo_never_anneals() -> None:
    config = TrainConfig.create("Hopper-v5", "trpo", 0, 4, protocol="authors")
    assert not hasattr(config.hyper, "anneal_lr")
    assert lr_factor(config.hyper, 3, 4) == 1.0


# ---------------------------------------------------------------------------------------------
# Value loss: clipping and terminal rows


class Frozen(torch.optim.Optimizer):
    """An optimizer that never moves: fit_value's reported loss is then the loss at the start."""

    def __init__(self, params: object) -> None:
        super().__init__(params, {})

    def step(self, closure: object = None) -> None:
        return None


def test_value_clipping_takes_the_larger_of_clipped_and_unclipped_error() -> None:
    net = ValueNet(1)
    obs = torch.linspace(-1, 1, 8)[:, None]
    with torch.no_grad():
        v = net(obs)
    old = v - torch.tensor([1.0, -1.0, 0.1, -0.1, 0.5, -0.5, 0.0, 2.0])
    targets = v + torch.tensor([2.0, 2.0, -2.0, 0.3, 0.0, 1.0, -1.0, 0.5])
    clipped = old + (v - old).clamp(-0.2, 0.2)
    expect = torch.max((v - targets) ** 2, (clipped - targets) ** 2).mean().item()
    rng = np.random.default_rng(0)
    got = fit_value(net, Frozen(net.parameters()), obs, targets, 1, 1, rng, old_values=old,
                    clip=0.2)
    assert got == pytest.approx(expect, rel=1e-6)
    plain = fit_value(net, Frozen(net.parameters()), obs, targets, 1, 1, rng)
    assert plain == pytest.approx(((v - targets) ** 2).mean().item(), rel=1e-6)
    assert got > plain  # clipping only ever adds error here: some steps moved more than 0.2


def test_value_loss_leaves_out_masked_rows() -> None:
    net = ValueNet(1)
    obs = torch.linspace(-1, 1, 6)[:, None]
    targets = torch.arange(6.0)
    mask = torch.tensor([True, False, True, True, False, True])
    with torch.no_grad():
        expect = ((net(obs) - targets) ** 2)[mask].mean().item()
    got = fit_value(net, Frozen(net.parameters()), obs, targets, 1, 1,
                    np.random.default_rng(0), mask=mask)
    assert got == pytest.approx(expect, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Initialization, advantage normalization, TRPO's line search


def test_xavier_init_for_authors_trpo_and_orthogonal_for_ppo() -> None:
    torch.manual_seed(0)
    xav = GaussianPolicy(11, 3, init="xavier")
    orth = GaussianPolicy(11, 3, init="orthogonal")
    head_x, head_o = xav.mean[-1].weight, orth.mean[-1].weight
    bound = math.sqrt(6 / (64 + 3))  # xavier uniform, gain 1, on the 64 -> 3 head
    assert head_x.abs().max() <= bound and head_x.abs().max() > 0.5 * bound
    assert head_o.abs().max() < 0.05  # orthogonal head with gain 0.01
    first = xav.mean[0].weight
    assert first.abs().max() <= math.sqrt(6 / (11 + 64))
    assert all(torch.all(m.bias == 0) for m in xav.mean if hasattr(m, "bias"))
    assert TrainConfig.create("Hopper-v5", "trpo", 0, 2, protocol="authors").hyper.init == "xavier"
    assert TrainConfig.create("Hopper-v5", "ppo", 0, 2, protocol="authors").hyper.init == (
        "orthogonal")


def _ppo_step(adv: torch.Tensor, adv_norm: str) -> torch.Tensor:
    torch.manual_seed(0)
    policy = GaussianPolicy(2, 1)
    hp = ppo.PPOConfig.for_env("Hopper-v5", adv_norm=adv_norm, epochs=2, minibatches=4)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    obs, act = torch.randn(64, 2, generator=gen), torch.randn(64, 1, generator=gen)
    with torch.no_grad():
        logp = policy.log_prob(obs, act)
    ppo.policy_update(policy, opt, obs, act, logp, adv, hp, np.random.default_rng(2))
    return torch.cat([p.detach().reshape(-1) for p in policy.parameters()])


def test_per_minibatch_normalization_ignores_the_advantages_scale_and_shift() -> None:
    adv = torch.randn(64, generator=torch.Generator().manual_seed(3))
    a, b = _ppo_step(adv, "minibatch"), _ppo_step(3 * adv + 5, "minibatch")
    assert torch.allclose(a, b, atol=1e-5)
    c, d = _ppo_step(adv, "batch"), _ppo_step(3 * adv + 5, "batch")
    assert not torch.allclose(c, d, atol=1e-5)  # without it the raw values matter


def test_trpo_line_search_ratio_rejects_steps_below_the_expected_gain() -> None:
    gen = torch.Generator().manual_seed(4)
    obs, act = torch.randn(256, 3, generator=gen), torch.randn(256, 2, generator=gen)
    adv = torch.randn(256, generator=gen)
    fractions = {}
    for ratio in (0.0, 0.1, 1e9):
        torch.manual_seed(0)
        policy = GaussianPolicy(3, 2)
        with torch.no_grad():
            logp = policy.log_prob(obs, act)
        hp = trpo.TRPOConfig.for_env("Hopper-v5", accept_ratio=ratio)
        info = trpo.policy_update(policy, obs, act, logp, adv, hp, np.random.default_rng(0))
        fractions[ratio] = info["step_fraction"]
    assert fractions[0.0] > 0 and fractions[0.1] > 0
    assert fractions[1e9] == 0.0  # no step can gain 1e9 times its first-order prediction


# ---------------------------------------------------------------------------------------------
# The protocols as data, and fixture keys


def test_authors_and_corrected_differ_only_where_corrected_says() -> None:
    assert set(CORRECTED.differences(AUTHORS)) == {
        "time_limit", "batch_end", "returns_target", "mre_states", "true_cosine"}
    assert get_protocol("authors") is AUTHORS
    with pytest.raises(ValueError, match="unknown protocol 'paper'.*authors, corrected"):
        get_protocol("paper")


def test_authors_choices_per_algorithm_and_env() -> None:
    hop = AUTHORS.training_choices("ppo", "Hopper-v5")
    walk = AUTHORS.training_choices("ppo", "Walker2d-v5")
    assert hop["value_clip"] is None and walk["value_clip"] == 0.2  # configs/hopper_ppo.py
    assert hop["anneal_lr"] and hop["adv_norm"] == "minibatch" and hop["init"] == "orthogonal"
    tr = AUTHORS.training_choices("trpo", "Humanoid-v5")
    assert tr == {"time_limit": "terminal", "batch_end": "last_value", "value_loss_ends": False,
                  "init": "xavier", "accept_ratio": 0.1}


def test_table1_protocol_is_the_legacy_choices() -> None:
    for algo in ("ppo", "trpo"):
        for k, v in TABLE1.training_choices(algo, "Hopper-v5").items():
            assert LEGACY_CHOICES[k] == v, k


def test_committed_table1_fixtures_keep_their_keys() -> None:
    manifest = json.loads((Path(__file__).parents[1] / "fixtures" / "manifest.json").read_text())
    table1 = [a for a in manifest["agents"] if a.get("protocol", "table1") == "table1"]
    assert table1, "no table1 fixture to check"
    for a in table1:
        config = TrainConfig.create(a["env_id"], a["algo"], a["seed"], a["iterations"],
                                    protocol="table1")
        assert config.key() == a["key"], a["command"]


def test_each_protocol_trains_a_different_agent() -> None:
    keys = {p: TrainConfig.create("Hopper-v5", "ppo", 0, 500, protocol=p).key()
            for p in PROTOCOLS}
    assert len(set(keys.values())) == len(PROTOCOLS)

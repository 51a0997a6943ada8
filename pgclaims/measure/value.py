"""Value prediction error (Figures 3, 11, 12): MRE of the value net against its targets.

MRE = mean |V(s) - y| / |y|, the target in the denominator. States with |y| below 1% of the
batch's mean |y| are excluded (a relative error is meaningless there) and counted. Targets are
in the units the net was trained on (after reward scaling and clipping):

- GAE target: V_old(s) + A_GAE(V_old), V_old the value net before its last fit (eq. 4);
  at iteration 0 there was no fit and V_old is the net itself.
- Returns target: discounted Monte Carlo returns, as the agent's protocol defines them
  (:mod:`pgclaims.measure.returns`: up to the cut, cut tails excluded, or continued past it).

Which states are averaged (all, or the authors' not-done ones) and which policy draws the
held-out pairs (the checkpoint's, or the one before its last update, as the authors' code
draws them before the update) are protocol fields too (:mod:`pgclaims.agents.protocol`).

Train pairs: the batch the net was last fit on (its fit record in the checkpoint). Held-out
pairs: fresh batches.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pgclaims.agents.agent import Agent, FitRecord, agent_advantages, treated_terminal
from pgclaims.agents.networks import GaussianPolicy, NumpyPolicy, ValueNet
from pgclaims.agents.protocol import get_protocol
from pgclaims.agents.rollout import Batch
from pgclaims.measure.parallel import study_map
from pgclaims.measure.returns import RESIDUAL, horizon, returns_target
from pgclaims.measure.sampler import rng_for

REL_EPS = 0.01


def mre(pred: np.ndarray, target: np.ndarray, rel_eps: float = REL_EPS) -> tuple[float, int]:
    """Mean relative error and the number of states excluded for a near-zero target."""
    pred, target = np.asarray(pred, float), np.asarray(target, float)
    if len(target) == 0:
        return float("nan"), 0
    keep = (np.abs(target) >= rel_eps * np.abs(target).mean()) & (target != 0)
    if not keep.any():
        return float("nan"), int(len(target))
    return float(np.mean(np.abs(pred[keep] - target[keep]) / np.abs(target[keep]))), int(
        (~keep).sum())


def _values(net: ValueNet, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(obs)).double().numpy()


@dataclass
class ValueStudy:
    heldout_gae: np.ndarray
    heldout_returns: np.ndarray
    train_gae: np.ndarray
    train_returns: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def _policy(agent: Agent, which: str) -> GaussianPolicy:
    """The checkpoint's policy, or the one before its last update ("pre_update": the policy
    that collected the last batch, as the authors draw held-out pairs before updating)."""
    if which == "pre_update" and agent.prev_policy is not None:
        policy = copy.deepcopy(agent.policy)
        policy.load_state_dict(agent.prev_policy)
        return policy
    return agent.policy


def _errors(agent: Agent, v_old: ValueNet, rec: Batch | FitRecord, policy: NumpyPolicy,
            rng: np.random.Generator) -> tuple[float, float, int, int, int]:
    proto = get_protocol(agent.config.protocol)
    if isinstance(rec, FitRecord):
        v, gae_target = rec.values, rec.targets
    else:
        v = _values(agent.value, rec.obs)
        gae_target = agent_advantages(agent, rec, value=v_old, baseline="valuenet").targets
    keep = np.ones(len(rec), bool)
    if proto.mre_states == "not_ends":  # the authors' not_dones: terminals and time limits
        keep = ~treated_terminal(rec, "terminal", agent.max_episode_steps)
    e_gae, x_gae = mre(v[keep], gae_target[keep])
    ret, ok = returns_target(agent, rec, proto.returns_target, policy, rng)
    e_ret, x_ret = mre(v[ok & keep], ret[ok & keep])
    return e_gae, e_ret, x_gae, x_ret, int((~ok).sum())


@dataclass(frozen=True)
class _HeldOut:
    """A held-out batch's errors (the reduce of :func:`value_error`'s batches; a class, not a
    closure, so that it pickles to a Ray worker)."""

    agent: Agent
    v_old: ValueNet
    policy: NumpyPolicy
    seed: int

    def __call__(self, batch: Batch, r: int) -> tuple[float, float, int, int, int]:
        return _errors(self.agent, self.v_old, batch, self.policy, rng_for(self.seed, 32, r))


def value_error(agent: Agent, repeats: int, heldout_n: int, seed: int) -> ValueStudy:
    torch.set_num_threads(1)
    proto = get_protocol(agent.config.protocol)
    v_old = agent.value
    if agent.prev_value is not None:
        v_old = copy.deepcopy(agent.value)  # the same architecture, whoever built the agent
        v_old.load_state_dict(agent.prev_value)
    module = _policy(agent, proto.heldout_policy)
    heldout_policy = module.numpy_sampler()
    rows = study_map(agent, _HeldOut(agent, v_old, heldout_policy, seed),
                     [(heldout_n, (30, r), r, module) for r in range(repeats)], seed)
    train = (float("nan"),) * 2 + (0, 0, 0)
    if agent.last_fit is not None:
        collected_by = _policy(agent, "pre_update").numpy_sampler()
        train = _errors(agent, v_old, agent.last_fit, collected_by, rng_for(seed, 33))
    return ValueStudy(
        heldout_gae=np.array([r[0] for r in rows]),
        heldout_returns=np.array([r[1] for r in rows]),
        train_gae=np.array([train[0]]),
        train_returns=np.array([train[1]]),
        meta={
            "v_old": "value net before its last fit" if agent.prev_value is not None
                     else "iteration 0: no fit yet, V_old is the net itself",
            "protocol": proto.name,
            "returns_target": proto.returns_target,
            "mre_states": proto.mre_states,
            "heldout_policy": proto.heldout_policy if agent.prev_policy is not None
                              else "checkpoint",
            "continuation_horizon": horizon(agent.hyper.gamma)
                                    if proto.returns_target == "continued" else None,
            "continuation_residual_weight": RESIDUAL
                                            if proto.returns_target == "continued" else None,
            "excluded_near_zero_target": {"heldout_gae": sum(r[2] for r in rows),
                                          "heldout_returns": sum(r[3] for r in rows),
                                          "train": train[2] + train[3]},
            "excluded_cut_tail_states": {"heldout": sum(r[4] for r in rows), "train": train[4]},
            "rel_eps": REL_EPS,
            "heldout_pairs": heldout_n * repeats,
        },
    )

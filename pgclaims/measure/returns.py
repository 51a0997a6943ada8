"""Monte Carlo "returns" targets of the value net, under each protocol's definition.

- ``to_cut`` (authors): the discounted sum of rewards up to the trajectory's next cut (a
  terminal, the time limit or the batch end), with no bootstrap (``discount_path`` over the
  segments of ``get_path_indices`` in their ``src/policy_gradients/torch_utils.py``). States
  late in a cut trajectory get targets that miss most of their tail.
- ``cut_excluded`` (table1): the same sums, but a state counts only if more than H = 459
  rewards precede the cut, which also
  drops about half of every late-training trajectory from the average: a biased subset
  (:func:`mc_returns`).
- ``continued`` (corrected): every state keeps its target, and a trajectory cut by the time
  limit or by the batch end is continued past the cut from its MuJoCo state, with the same
  policy and the agent's frozen normalizers, in the untruncated task (no time limit), for up
  to :data:`HORIZON` steps or until it terminates. The continuation is sampled for the target
  only; it never enters the batch.

Units are the value net's (after the agent's reward scaling and clipping).
"""

from __future__ import annotations

import math

import numpy as np

from pgclaims.agents.agent import Agent, FitRecord
from pgclaims.agents.envs import make_env
from pgclaims.agents.gae import discounted_returns
from pgclaims.agents.networks import NumpyPolicy
from pgclaims.agents.rollout import Batch
from pgclaims.measure.sampler import FrozenObsNorm, FrozenRewardScaler

RESIDUAL = 1e-3
"""Largest weight, relative to the whole discounted sum, that a continuation may leave out."""


def horizon(gamma: float, residual: float = RESIDUAL) -> int:
    """Continuation steps after a cut: gamma^H <= residual (688 steps at gamma 0.99)."""
    return int(math.ceil(math.log(residual) / math.log(gamma)))


HORIZON = horizon(0.99)


def to_cut(rec: Batch | FitRecord, gamma: float) -> np.ndarray:
    """Discounted rewards up to each trajectory's end, nothing added at any end."""
    return discounted_returns(rec.rewards, np.zeros(len(rec)), rec.ends, gamma)


def has_mujoco_state(env_id: str) -> bool:
    """Whether ``env_id``'s environment can be restarted from a saved state (MuJoCo's
    ``set_state``), as continued returns need."""
    env = make_env(env_id)
    try:
        return hasattr(env.unwrapped, "set_state")
    finally:
        env.close()


def not_mujoco(env_id: str) -> str:
    """Why continued returns cannot be computed on ``env_id`` (not a MuJoCo environment)."""
    return (f"{env_id} is not a MuJoCo environment, and continued returns (the corrected "
            "protocol's value target) restart each time-limit cut from its MuJoCo state; "
            "measure it under the authors protocol (to_cut returns)")


def continuation_values(agent: Agent, cut_states: np.ndarray, policy: NumpyPolicy,
                        rng: np.random.Generator, steps: int | None = None) -> np.ndarray:
    """For each cut, the discounted return of the untruncated task from the cut's MuJoCo state
    on (the reward at the first step after the cut is undiscounted), with ``policy``."""
    gamma = agent.hyper.gamma
    steps = horizon(gamma) if steps is None else steps
    env = make_env(agent.config.env_id)
    base = env.unwrapped
    if not hasattr(base, "set_state"):
        env.close()
        raise ValueError(not_mujoco(agent.config.env_id))
    obs_norm = FrozenObsNorm(agent.obs_norm)
    scaler = FrozenRewardScaler(agent.reward_scaler)
    nq = base.model.nq
    out = np.zeros(len(cut_states))
    try:
        for k, state in enumerate(cut_states):
            base.reset(seed=int(rng.integers(2**31 - 1)))
            base.set_state(state[:nq], state[nq:])
            obs = obs_norm(base._get_obs(), False)
            total, discount = 0.0, 1.0
            for _ in range(steps):
                raw_obs, r, terminated, _, _ = base.step(policy.sample(obs, rng))
                total += discount * scaler(float(r), False)
                discount *= gamma
                if terminated:
                    break
                obs = obs_norm(raw_obs, False)
            out[k] = total
    finally:
        env.close()
    return out


def continued(agent: Agent, rec: Batch | FitRecord, policy: NumpyPolicy,
              rng: np.random.Generator, steps: int | None = None) -> np.ndarray:
    """Returns of the untruncated task: each cut trajectory's sum plus its discounted
    continuation (true terminals add nothing)."""
    if rec.cut_states is None and rec.truncated.any() and not has_mujoco_state(
            agent.config.env_id):
        raise ValueError(not_mujoco(agent.config.env_id))
    if rec.cut_states is None or len(rec.cut_states) != int(rec.truncated.sum()):
        raise ValueError("continued returns need the MuJoCo state at every cut (checkpoint "
                         "format 2 or a batch from pgclaims.agents.rollout.collect)")
    nxt = np.zeros(len(rec))
    nxt[rec.truncated] = continuation_values(agent, rec.cut_states, policy, rng, steps)
    return discounted_returns(rec.rewards, nxt, rec.ends, agent.hyper.gamma)


def mc_returns(batch: Batch | FitRecord, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Discounted Monte Carlo returns (reward-scaled units) and which of them are usable.

    A trajectory cut by the time limit or by the batch end lacks its tail: a state counts only
    if more than H rewards (its own included) precede the cut, H = ceil(log 0.01 / log gamma)
    (459 at 0.99), so the missing tail weighs < 1% of the discounting (one state more than the
    bound needs; kept so that cached results stay valid). States of terminated episodes all
    count.
    """
    zeros = np.zeros(len(batch))
    returns = discounted_returns(batch.rewards, zeros, batch.ends, gamma)
    horizon = int(np.ceil(np.log(0.01) / np.log(gamma)))
    usable = np.ones(len(batch), bool)
    steps_left = 0
    cut = False
    for t in range(len(batch) - 1, -1, -1):
        if batch.ends[t]:
            steps_left, cut = 0, bool(batch.truncated[t])
        steps_left += 1
        usable[t] = (not cut) or steps_left > horizon
    return returns, usable


def returns_target(agent: Agent, rec: Batch | FitRecord, kind: str, policy: NumpyPolicy,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(returns, usable): the target of every row, and which rows a definition keeps."""
    gamma = agent.hyper.gamma
    if kind == "to_cut":
        return to_cut(rec, gamma), np.ones(len(rec), bool)
    if kind == "cut_excluded":
        return mc_returns(rec, gamma)
    if kind == "continued":
        return continued(agent, rec, policy, rng), np.ones(len(rec), bool)
    raise ValueError(f"unknown returns target {kind!r}: to_cut, cut_excluded or continued")

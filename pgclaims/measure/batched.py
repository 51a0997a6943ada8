"""A vectorized frozen sampler for Hopper-v5, Walker2d-v5 and Humanoid-v5: many chunks at once.

:func:`pgclaims.agents.rollout.collect` steps one gymnasium environment and evaluates the policy
one observation at a time. :class:`BatchedSampler` instead holds one MuJoCo simulation per chunk
(:mod:`pgclaims.measure.sims`: one ``mujoco.batch.Batch`` call steps them all for Hopper and
Walker2d, a loop over ``MjData`` for Humanoid), and evaluates the policy for every live chunk in
one batched numpy forward pass.

Streams. A chunk is one stream from its own Generator ``rng`` consumed exactly as ``collect``
consumes it: ``rng.integers(2**31 - 1)`` seeds the reset noise (gymnasium's
``seeding.np_random`` of that integer, i.e. ``default_rng`` of it, drawn ``uniform(nq)`` then
``uniform(nv)`` at every reset), then one ``standard_normal(act_dim)`` per step for the action
noise (drawn up front: a ``(n, act_dim)`` block is the same sequence). Chunks advance in
lockstep, but nothing of one chunk reaches another: a chunk's Batch is the same alone or with
any others, for any number of threads or worker processes.

Exactness. Given the same state and actions, observations, rewards, terminated and truncated are
gymnasium v5's bit for bit: the same MuJoCo calls on the same fields (``mj_step`` with
``nstep=frame_skip``, then ``mj_rnePostConstraint`` where the observation needs it; reset =
``mj_resetData``, set qpos/qvel, ``mj_forward``), the same float64 arithmetic, vectorized only where
numpy's result is the same. The policy's mean is the one place that differs: a batched matmul does
not round like ``NumpyPolicy.mean``'s matrix-vector product (~1e-15). To keep a row's result
independent of the other rows it is computed in fixed blocks of :data:`BLOCK` rows (BLAS results may
depend on the matrix shape). ``forward="rowwise"`` evaluates ``NumpyPolicy.mean`` per row instead,
and the sampler then reproduces ``collect`` bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import numpy as np

from pgclaims.agents.envs import make_env
from pgclaims.agents.networks import NumpyPolicy
from pgclaims.agents.rollout import Batch
from pgclaims.measure.sims import MUJOCO_ENVS, Task, make_sims, supports

BLOCK = 16
"""Rows per policy matmul: every forward pass has this shape, so a row never depends on how
many other rows are evaluated with it."""
NSIM = 16
"""Chunks stepped in lockstep by default."""

Job = tuple[int, np.random.Generator]
"""(pairs, the chunk's own Generator)."""


def batched_mean(policy: NumpyPolicy, x: np.ndarray) -> np.ndarray:
    """``policy.mean`` of every row of ``x``, in fixed-shape blocks of :data:`BLOCK` rows."""
    rows = len(x)
    pad = (-rows) % BLOCK
    h_all = np.concatenate([x, np.zeros((pad, x.shape[1]))]) if pad else x
    out = np.empty((rows + pad, policy.weights[-1][0].shape[0]))
    last = len(policy.weights) - 1
    for s in range(0, rows + pad, BLOCK):
        h = h_all[s:s + BLOCK]
        for i, (w, b) in enumerate(policy.weights):
            h = h @ w.T + b
            if i < last:
                h = np.tanh(h)
        out[s:s + BLOCK] = h
    return out[:rows]


def rowwise_mean(policy: NumpyPolicy, x: np.ndarray) -> np.ndarray:
    """``policy.mean`` row by row: exactly ``collect``'s arithmetic."""
    return np.stack([policy.mean(row) for row in x]) if len(x) else np.empty((0, len(policy.std)))


FORWARDS: dict[str, Callable[[NumpyPolicy, np.ndarray], np.ndarray]] = {
    "batched": batched_mean, "rowwise": rowwise_mean}


class BatchedSampler:
    """``collect`` with frozen normalizers for many chunks at once, stepping MuJoCo directly.

    ``obs_norm`` is a :class:`pgclaims.measure.sampler.FrozenObsNorm` (applied to whole arrays)
    and ``reward_scaler`` a :class:`pgclaims.measure.sampler.FrozenRewardScaler` (its ``denom``
    and ``clip`` are applied to whole arrays, with the same arithmetic).
    """

    def __init__(self, env_id: str, policy: NumpyPolicy, obs_norm: Any, reward_scaler: Any, *,
                 nsim: int = NSIM, nthread: int = 1, forward: str = "batched",
                 max_episode_steps: int | None = None) -> None:
        if nsim < 1 or nthread < 1:
            raise ValueError(f"nsim and nthread must be >= 1, got {nsim}, {nthread}")
        if forward not in FORWARDS:
            raise ValueError(f"forward must be one of {tuple(FORWARDS)}, got {forward!r}")
        self.task = Task(env_id, max_episode_steps)
        self.policy = policy
        self.obs_norm = obs_norm
        self.reward_scaler = reward_scaler
        self.nsim = nsim
        self.forward = FORWARDS[forward]
        self.nthread = nthread
        self.pool = ThreadPoolExecutor(nthread) if nthread > 1 else None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def _scale(self, r: np.ndarray) -> np.ndarray:
        rs = self.reward_scaler
        scaled = r / rs.denom if rs.denom is not None else r
        return np.minimum(np.maximum(scaled, -rs.clip), rs.clip)

    def sample(self, jobs: Sequence[Job], policy: NumpyPolicy | None = None) -> list[Batch]:
        """One Batch per job, each exactly what that job would give alone: groups of
        ``nsim`` chunks are stepped in lockstep."""
        out: list[Batch] = []
        for s in range(0, len(jobs), self.nsim):
            out += self._group(jobs[s:s + self.nsim], policy or self.policy)
        return out

    def _group(self, jobs: Sequence[Job], policy: NumpyPolicy) -> list[Batch]:
        t_ = self.task
        k = len(jobs)
        ns = np.array([n for n, _ in jobs], np.int64)
        if k == 0:
            return []
        if ns.min() < 1:
            raise ValueError("every chunk needs at least one pair")
        nmax, od, ad = int(ns.max()), t_.obs_dim, t_.nu
        sims = make_sims(t_, k, self.pool, self.nthread)
        reset_rngs, noise = [], np.zeros((k, nmax, ad))
        for i, (n, rng) in enumerate(jobs):
            env_seed = int(rng.integers(2**31 - 1))  # collect's env.reset(seed=...)
            noise[i, :n] = rng.standard_normal((n, ad))  # collect's per-step draws, in order
            reset_rngs.append(np.random.default_rng(env_seed))  # gymnasium's np_random
            sims.reset(i, reset_rngs[i])
        obs_buf = np.empty((k, nmax, od), np.float32)
        act_buf = np.empty((k, nmax, ad), np.float32)
        rew = np.empty((k, nmax))
        raw = np.empty((k, nmax))
        term = np.zeros((k, nmax), bool)
        trunc = np.zeros((k, nmax), bool)
        final_obs: list[list[np.ndarray]] = [[] for _ in range(k)]
        cut_states: list[list[np.ndarray]] = [[] for _ in range(k)]
        ep_returns: list[list[float]] = [[] for _ in range(k)]
        ep_lengths: list[list[int]] = [[] for _ in range(k)]
        ep_ret = np.zeros(k)
        ep_len = np.zeros(k, np.int64)
        elapsed = np.zeros(k, np.int64)
        obs = self.obs_norm(sims.obs.copy(), False)
        std = policy.std
        for t in range(nmax):
            live = np.flatnonzero(ns > t)
            o = obs[live]
            actions = self.forward(policy, o) + std * noise[live, t]
            obs_buf[live, t] = o
            act_buf[live, t] = actions
            raw_obs, r, terminated = sims.env_step(live, actions)
            qpos, qvel = sims.qpos[live], sims.qvel[live]
            raw[live, t] = r
            rew[live, t] = self._scale(r)
            ep_ret[live] += r
            ep_len[live] += 1
            elapsed[live] += 1
            truncated = elapsed[live] >= t_.max_steps  # gymnasium's TimeLimit
            next_obs = self.obs_norm(raw_obs, False)
            last = ns[live] == t + 1
            for j in np.flatnonzero(terminated | truncated | last).tolist():
                i = int(live[j])
                term[i, t] = terminated[j]
                trunc[i, t] = not terminated[j]
                if trunc[i, t]:
                    final_obs[i].append(next_obs[j].copy())
                    cut_states[i].append(np.concatenate([qpos[j], qvel[j]]))
                if terminated[j] or truncated[j]:
                    ep_returns[i].append(float(ep_ret[i]))
                    ep_lengths[i].append(int(ep_len[i]))
                if not last[j]:
                    sims.reset(i, reset_rngs[i])
                    next_obs[j] = self.obs_norm(sims.obs[i], False)
                    elapsed[i] = 0
                ep_ret[i], ep_len[i] = 0.0, 0
            obs[live] = next_obs
        nsd = t_.nq + t_.nv
        return [Batch(
            obs=obs_buf[i, :n].copy(), actions=act_buf[i, :n].copy(), rewards=rew[i, :n].copy(),
            raw_rewards=raw[i, :n].copy(), terminated=term[i, :n].copy(),
            truncated=trunc[i, :n].copy(),
            final_obs=np.asarray(final_obs[i], np.float32).reshape(-1, od),
            episode_returns=np.asarray(ep_returns[i]),
            episode_lengths=np.asarray(ep_lengths[i], np.int64),
            cut_states=np.asarray(cut_states[i], np.float64).reshape(-1, nsd),
        ) for i, n in enumerate(ns.tolist())]


def make_task_env(env_id: str, max_episode_steps: int | None = None) -> gym.Env:
    """The gymnasium environment the batched path reproduces (for tests and benchmarks)."""
    if max_episode_steps is None:
        return make_env(env_id)
    return gym.make(env_id, disable_env_checker=True, max_episode_steps=max_episode_steps)


__all__ = ["BLOCK", "FORWARDS", "MUJOCO_ENVS", "NSIM", "BatchedSampler", "Task", "batched_mean",
           "make_task_env", "rowwise_mean", "supports"]

"""A vectorized frozen sampler for Hopper-v5, Walker2d-v5 and Humanoid-v5: many chunks at once.

:func:`pgclaims.agents.rollout.collect` steps one gymnasium environment and evaluates the policy
one observation at a time. :class:`BatchedSampler` instead holds one ``mujoco.MjData`` per chunk,
steps them directly (optionally on several threads: MuJoCo releases the GIL), and evaluates the
policy for every live chunk in one batched numpy forward pass.

Streams. A chunk is one stream from its own Generator ``rng`` consumed exactly as ``collect``
consumes it: ``rng.integers(2**31 - 1)`` seeds the reset noise (gymnasium's
``seeding.np_random`` of that integer, i.e. ``default_rng`` of it, drawn ``uniform(nq)`` then
``uniform(nv)`` at every reset), then one ``standard_normal(act_dim)`` per step for the action
noise (drawn up front: a ``(n, act_dim)`` block is the same sequence). Chunks advance in
lockstep, but nothing of one chunk reaches another: a chunk's Batch is the same alone or with
any others, for any number of threads or worker processes.

Exactness. Given the same state and actions, observations, rewards, terminated and truncated
are gymnasium v5's bit for bit: the same MuJoCo calls on the same fields (``mj_step`` with
``nstep=frame_skip`` then ``mj_rnePostConstraint``; reset = ``mj_resetData``, set qpos/qvel,
``mj_forward``), the same float64 arithmetic, vectorized only where numpy's result is the same.
The policy's mean is the one place that differs: a batched matmul does not round like
``NumpyPolicy.mean``'s matrix-vector product (~1e-15). To keep a row's result independent of
the other rows it is computed in fixed blocks of :data:`BLOCK` rows (BLAS results may depend on
the matrix shape). ``forward="rowwise"`` evaluates ``NumpyPolicy.mean`` per row instead, and
the sampler then reproduces ``collect`` bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.mujoco.humanoid_v5 import mass_center

from pgclaims.agents.envs import make_env
from pgclaims.agents.networks import NumpyPolicy
from pgclaims.agents.rollout import Batch

MUJOCO_ENVS: tuple[str, ...] = ("Hopper-v5", "Walker2d-v5", "Humanoid-v5")
"""The environment ids the batched path simulates directly; any other id keeps gymnasium."""
BLOCK = 16
"""Rows per policy matmul: every forward pass has this shape, so a row never depends on how
many other rows are evaluated with it."""
NSIM = 16
"""Chunks stepped in lockstep by default."""

Job = tuple[int, np.random.Generator]
"""(pairs, the chunk's own Generator)."""


def supports(env_id: str) -> bool:
    return env_id in MUJOCO_ENVS


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


class Task:
    """One v5 task's constants, read from a gymnasium instance so that they are v5's own."""

    def __init__(self, env_id: str, max_episode_steps: int | None = None) -> None:
        if not supports(env_id):
            raise ValueError(f"{env_id!r} is not simulated directly; use the gymnasium path")
        env = make_env(env_id)
        u: Any = env.unwrapped
        self.env_id = env_id
        self.humanoid = env_id.startswith("Humanoid")
        assert u._exclude_current_positions_from_observation and u._terminate_when_unhealthy
        if self.humanoid:
            assert all((u._include_cinert_in_observation, u._include_cvel_in_observation,
                        u._include_qfrc_actuator_in_observation,
                        u._include_cfrc_ext_in_observation))
        self.model: mujoco.MjModel = u.model
        self.frame_skip: int = u.frame_skip
        self.dt: float = u.dt
        self.init_qpos: np.ndarray = u.init_qpos.copy()
        self.init_qvel: np.ndarray = u.init_qvel.copy()
        self.noise_scale: float = u._reset_noise_scale
        self.forward_w: float = u._forward_reward_weight
        self.ctrl_w: float = u._ctrl_cost_weight
        self.healthy_reward: float = u._healthy_reward
        self.z_range: tuple[float, float] = u._healthy_z_range
        self.angle_range = getattr(u, "_healthy_angle_range", None)
        self.state_range = getattr(u, "_healthy_state_range", None)  # Hopper only
        self.contact_w: float = getattr(u, "_contact_cost_weight", 0.0)
        self.contact_range = getattr(u, "_contact_cost_range", None)
        self.max_steps: int = max_episode_steps or env.spec.max_episode_steps  # type: ignore
        self.nq, self.nv, self.nu = self.model.nq, self.model.nv, self.model.nu
        self.obs_dim: int = env.observation_space.shape[0]  # type: ignore[index]
        self._env = env  # keeps the model's owner alive

    def healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """v5's ``is_healthy`` for every row (strict inequalities, NaN unhealthy)."""
        if self.humanoid:
            lo, hi = self.z_range
            return (lo < qpos[:, 2]) & (qpos[:, 2] < hi)
        z, angle = qpos[:, 1], qpos[:, 2]
        ok = (self.z_range[0] < z) & (z < self.z_range[1])
        ok &= (self.angle_range[0] < angle) & (angle < self.angle_range[1])
        if self.state_range is not None:
            state = np.concatenate([qpos, qvel], axis=1)[:, 2:]
            ok &= np.all((self.state_range[0] < state) & (state < self.state_range[1]), axis=1)
        return ok

    def reward(self, before: np.ndarray, after: np.ndarray, actions: np.ndarray,
               healthy: np.ndarray, contact: np.ndarray) -> np.ndarray:
        """v5's ``_get_rew`` for every row, with its order of operations."""
        x_velocity = ((after - before) / self.dt)[:, 0]
        rewards = self.forward_w * x_velocity + healthy * self.healthy_reward
        costs = self.ctrl_w * np.sum(np.square(actions), axis=1)
        if self.humanoid:
            costs = costs + contact
        return rewards - costs


class Sims:
    """One MjData per chunk, the fields the task reads gathered into (nsim, ...) arrays."""

    def __init__(self, task: Task, nsim: int, pool: ThreadPoolExecutor | None,
                 nthread: int = 1) -> None:
        self.task = task
        self.nthread = nthread
        self.datas = [mujoco.MjData(task.model) for _ in range(nsim)]
        self.qpos = np.empty((nsim, task.nq))
        self.qvel = np.empty((nsim, task.nv))
        self.obs = np.empty((nsim, task.obs_dim))
        self.position = np.empty((nsim, 2 if task.humanoid else 1))
        """x (Hopper, Walker2d) or the xy mass centre (Humanoid) that the reward differences."""
        self.contact = np.zeros(nsim)
        self.pool = pool

    def _read(self, i: int) -> None:
        t, d = self.task, self.datas[i]
        self.qpos[i] = d.qpos
        self.qvel[i] = d.qvel
        o = self.obs[i]
        if not t.humanoid:
            o[:t.nq - 1] = d.qpos[1:]
            o[t.nq - 1:] = np.clip(d.qvel, -10, 10)
            self.position[i] = d.qpos[0]
            return
        parts = (d.qpos[2:], d.qvel, d.cinert[1:], d.cvel[1:], d.qfrc_actuator[6:],
                 d.cfrc_ext[1:])
        k = 0
        for p in parts:
            o[k:k + p.size] = p.ravel()
            k += p.size
        self.position[i] = mass_center(t.model, d)
        cost = t.contact_w * np.sum(np.square(d.cfrc_ext))
        lo, hi = t.contact_range
        self.contact[i] = min(max(cost, lo), hi)  # np.clip's value, NaN included, 10x faster

    def reset(self, i: int, rng: np.random.Generator) -> None:
        """gymnasium's ``reset`` of sim ``i``, its noise drawn from ``rng`` (the chunk's
        ``np_random``)."""
        t, d = self.task, self.datas[i]
        mujoco.mj_resetData(t.model, d)
        s = t.noise_scale
        d.qpos[:] = t.init_qpos + rng.uniform(low=-s, high=s, size=t.nq)
        d.qvel[:] = t.init_qvel + rng.uniform(low=-s, high=s, size=t.nv)
        mujoco.mj_forward(t.model, d)
        self._read(i)

    def set_state(self, i: int, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """gymnasium's ``MujocoEnv.set_state`` on sim ``i``."""
        t, d = self.task, self.datas[i]
        d.qpos[:] = qpos
        d.qvel[:] = qvel
        mujoco.mj_forward(t.model, d)
        self._read(i)

    def _step_some(self, ids: np.ndarray, actions: np.ndarray) -> None:
        m, fs = self.task.model, self.task.frame_skip
        for i, a in zip(ids.tolist(), actions, strict=True):
            d = self.datas[i]
            d.ctrl[:] = a
            mujoco.mj_step(m, d, nstep=fs)
            mujoco.mj_rnePostConstraint(m, d)
            self._read(i)

    def step(self, ids: np.ndarray, actions: np.ndarray) -> None:
        """Step sims ``ids`` with ``actions`` (one row each), as v5's ``do_simulation``."""
        if self.pool is None or len(ids) < 2:
            self._step_some(ids, actions)
            return
        parts = np.array_split(np.arange(len(ids)), self.nthread)
        futures = [self.pool.submit(self._step_some, ids[p], actions[p]) for p in parts
                   if len(p)]
        for f in futures:
            f.result()

    def env_step(self, ids: np.ndarray, actions: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """v5's ``step`` (without the TimeLimit) for sims ``ids``: raw observations, rewards,
        terminated."""
        before = self.position[ids].copy()
        self.step(ids, actions)
        healthy = self.task.healthy(self.qpos[ids], self.qvel[ids])
        r = self.task.reward(before, self.position[ids], actions, healthy, self.contact[ids])
        return self.obs[ids], r, ~healthy


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
        sims = Sims(t_, k, self.pool, self.nthread)
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

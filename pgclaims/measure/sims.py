"""The simulations behind the batched sampler: v5's task constants and two ways to step them.

:class:`Task` reads a v5 task's constants from a gymnasium instance. :class:`Sims` holds one
``mujoco.MjData`` per chunk and steps them in a Python loop, calling what gymnasium v5's
``do_simulation`` calls (``mj_step`` with ``nstep=frame_skip``, then ``mj_rnePostConstraint``).
:class:`BatchSims` (Hopper-v5, Walker2d-v5) steps every live simulation in one call of
MuJoCo 4's ``mujoco.batch.Batch`` (a persistent batch: one MjData per simulation, stepped by
``mj_step`` in C++) and reads the state through its bound (nsim, ...) arrays, so no Python runs
per simulation and step. It skips ``mj_rnePostConstraint``: that call only fills ``cacc``,
``cfrc_int`` and ``cfrc_ext``, which neither these tasks' observations and rewards nor the next
``mj_step`` read (tests/test_batched_sampler.py compares both against gymnasium bit for bit).
Humanoid-v5 observes ``cfrc_ext`` and keeps :class:`Sims`. :func:`make_sims` chooses.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mujoco
import mujoco.batch
import numpy as np

from pgclaims.agents.envs import make_env

MUJOCO_ENVS: tuple[str, ...] = ("Hopper-v5", "Walker2d-v5", "Humanoid-v5")
"""The environment ids the batched path simulates directly; any other id keeps gymnasium."""

def supports(env_id: str) -> bool:
    return env_id in MUJOCO_ENVS



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
        self._mass = task.model.body_mass
        self._mass_sum = task.model.body_mass.sum()

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
        qpos, cfrc_ext = self.qpos[i], d.cfrc_ext
        np.concatenate((qpos[2:], self.qvel[i], d.cinert[1:].ravel(), d.cvel[1:].ravel(),
                        d.qfrc_actuator[6:], cfrc_ext[1:].ravel()), out=o)
        # gymnasium's mass_center: the same einsum over the same arrays, the constant sum once
        self.position[i] = np.einsum("b,bj->j", self._mass, d.xipos)[:2] / self._mass_sum
        cost = t.contact_w * np.square(cfrc_ext).sum()
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


class BatchSims:
    """:class:`Sims`'s interface on one persistent ``mujoco.batch.Batch`` (not Humanoid)."""

    def __init__(self, task: Task, nsim: int, nthread: int = 1) -> None:
        if task.humanoid:
            raise ValueError("Humanoid-v5 observes cfrc_ext (mj_rnePostConstraint): use Sims")
        self.task = task
        self.batch = mujoco.batch.Batch(task.model, nsim, nthread=nthread, persistent=True)
        self.qpos = self.batch.bind("qpos")
        """Live (nsim, nq) view of every simulation's qpos."""
        self.qvel = self.batch.bind("qvel")
        self._ctrl = self.batch.bind("ctrl")
        self.contact = np.zeros(nsim)
        self.batch.reset(stage=int(mujoco.mjtStage.mjSTAGE_NONE))

    @property
    def obs(self) -> np.ndarray:
        """v5's observations of every simulation: qpos without x, qvel clipped to +-10."""
        return np.concatenate([self.qpos[:, 1:], np.clip(self.qvel, -10, 10)], axis=1)

    @property
    def position(self) -> np.ndarray:
        return self.qpos[:, :1].copy()

    def reset(self, i: int, rng: np.random.Generator) -> None:
        """:meth:`Sims.reset`: ``mj_resetData``, the noisy state, ``mj_forward``."""
        t = self.task
        self.batch.reset([i], stage=int(mujoco.mjtStage.mjSTAGE_NONE))
        s = t.noise_scale
        self.qpos[i] = t.init_qpos + rng.uniform(low=-s, high=s, size=t.nq)
        self.qvel[i] = t.init_qvel + rng.uniform(low=-s, high=s, size=t.nv)
        self.batch.forward([i])

    def set_state(self, i: int, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.qpos[i] = qpos
        self.qvel[i] = qvel
        self.batch.forward([i])

    def env_step(self, ids: np.ndarray, actions: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`Sims.env_step` for sims ``ids``, stepped in one batch call."""
        t = self.task
        before = self.qpos[ids, :1]
        self._ctrl[ids] = actions
        self.batch.step(ids, nstep=t.frame_skip)
        qpos, qvel = self.qpos[ids], self.qvel[ids]
        healthy = t.healthy(qpos, qvel)
        r = t.reward(before, qpos[:, :1], actions, healthy, self.contact[ids])
        obs = np.concatenate([qpos[:, 1:], np.clip(qvel, -10, 10)], axis=1)
        return obs, r, ~healthy


def make_sims(task: Task, nsim: int, pool: ThreadPoolExecutor | None,
              nthread: int = 1) -> Sims | BatchSims:
    """:class:`BatchSims` where the task allows it, else :class:`Sims`."""
    if task.humanoid:
        return Sims(task, nsim, pool, nthread)
    return BatchSims(task, nsim, nthread)


__all__ = ["MUJOCO_ENVS", "BatchSims", "Sims", "Task", "make_sims", "supports"]

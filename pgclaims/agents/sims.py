"""Direct MuJoCo stepping of the v5 tasks: what training, measurement and the adapters' agents
all collect through (:mod:`pgclaims.agents.collector`).

:class:`Task` reads a v5 task's constants from a gymnasium instance, and the wrappers around it
that direct stepping reproduces: the TimeLimit and ``ClipAction`` (:func:`task_for` of any id
whose environment is one of :data:`V5_CLASSES` under those wrappers only, e.g. the adapters'
``pgclaims_clip/Hopper-v5``). :class:`Sims` holds one ``mujoco.MjData`` per stream and steps
them in a Python loop, calling what gymnasium v5's ``do_simulation`` calls (``mj_step`` with
``nstep=frame_skip``, then ``mj_rnePostConstraint``). :class:`BatchSims` (Hopper-v5,
Walker2d-v5) steps every live simulation in one call of MuJoCo 4's ``mujoco.batch.Batch`` (a
persistent batch: one MjData per simulation, stepped by ``mj_step`` in C++) and reads the state
through its bound (nsim, ...) arrays, so no Python runs per simulation and step. It skips
``mj_rnePostConstraint``: that call only fills ``cacc``, ``cfrc_int`` and ``cfrc_ext``, which
neither these tasks' observations and rewards nor the next ``mj_step`` read
(tests/test_batched_sampler.py compares both against gymnasium bit for bit). Humanoid-v5
observes ``cfrc_ext`` and keeps :class:`Sims`. :func:`make_sims` chooses.

Speed. A step's Python cost is paid once per lockstep step, not per simulation: health, reward
and observation are computed for all ``nsim`` rows at once into preallocated buffers (rows of
simulations that are not stepped are stale and ignored by the caller), each with the elementwise
float64 operations of gymnasium's scalar code, so every row is gymnasium's bit for bit.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import mujoco
import mujoco.batch
import numpy as np
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from pgclaims.agents.envs import EnvError, make_env

MUJOCO_ENVS: tuple[str, ...] = ("Hopper-v5", "Walker2d-v5", "Humanoid-v5")
"""The environment ids of the v5 tasks stepped directly."""
V5_CLASSES: dict[type, str] = {HopperEnv: "Hopper-v5", Walker2dEnv: "Walker2d-v5",
                               HumanoidEnv: "Humanoid-v5"}
"""The gymnasium classes direct stepping reproduces, and their task's id."""
TRANSPARENT = (gym.wrappers.TimeLimit, gym.wrappers.OrderEnforcing,
               gym.wrappers.PassiveEnvChecker)
"""Wrappers that change nothing a trajectory holds once reset has been called (the time
limit is counted by the collector), beside ``ClipAction``, which the collector applies."""


def wrappers_of(env: gym.Env) -> tuple[list[gym.Wrapper], gym.Env]:
    """The wrappers around ``env``'s base, outermost first, and the base."""
    chain = []
    while isinstance(env, gym.Wrapper):
        chain.append(env)
        env = env.env
    return chain, env


def direct_parts(env: gym.Env) -> tuple[str, Any, int | None, tuple[np.ndarray, np.ndarray] | None
                                         ] | None:
    """(task id, base env, time limit, action bounds of a ``ClipAction`` or None) when direct
    stepping reproduces ``env``, else None: the base is one of :data:`V5_CLASSES` exactly (not a
    subclass) and every wrapper is ``ClipAction`` or one of :data:`TRANSPARENT`."""
    chain, base = wrappers_of(env)
    task_id = V5_CLASSES.get(type(base))
    if task_id is None:
        return None
    limit, clip = None, None
    for w in chain:
        if isinstance(w, gym.wrappers.ClipAction):
            if clip is not None:
                return None
            clip = (np.asarray(w.env.action_space.low), np.asarray(w.env.action_space.high))
        elif isinstance(w, gym.wrappers.TimeLimit):
            limit = w._max_episode_steps if limit is None else min(limit, w._max_episode_steps)
        elif not isinstance(w, TRANSPARENT):
            return None
    return task_id, base, limit, clip


def supports(env_id: str) -> bool:
    """Whether ``env_id`` is stepped directly (:func:`task_for` gives its :class:`Task`)."""
    if env_id not in gym.registry:  # registered later (an adapter's id): ask again then
        return False
    return _direct(env_id)


@functools.lru_cache(maxsize=64)
def _direct(env_id: str) -> bool:
    try:
        env = make_env(env_id)
    except EnvError:
        return False
    try:
        return direct_parts(env) is not None
    finally:
        env.close()


def clip_velocity(qvel: np.ndarray, out: np.ndarray) -> None:
    """v5's ``np.clip(qvel, -10, 10)`` into ``out``. For floats ``np.clip`` is ``min(max(x, lo),
    hi)`` with NaN kept, which ``np.maximum`` then ``np.minimum`` compute exactly; its Python
    wrapper costs more than the two ufuncs together."""
    np.maximum(qvel, -10.0, out=out)
    np.minimum(out, 10.0, out=out)


class Task:
    """One v5 task's constants, read from a gymnasium instance so that they are v5's own, and
    what its wrappers add: the time limit :attr:`max_steps` and the action bounds :attr:`clip`
    of a ``ClipAction`` (the environment steps with the clipped action and charges its control
    cost; the trajectory keeps the policy's sample)."""

    def __init__(self, env_id: str, max_episode_steps: int | None = None) -> None:
        env = make_env(env_id) if supports(env_id) else None
        parts = direct_parts(env) if env is not None else None
        if parts is None:
            raise ValueError(f"{env_id!r} is not simulated directly (a v5 {', '.join(MUJOCO_ENVS)}"
                             " task under TimeLimit and ClipAction only); use the gymnasium path")
        self.task_id, u, limit, self.clip = parts
        self.env_id = env_id
        self.humanoid = self.task_id.startswith("Humanoid")
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
        self.max_steps: int | None = max_episode_steps or limit
        """Steps after which an episode is cut (the TimeLimit); None: never."""
        self.nq, self.nv, self.nu = self.model.nq, self.model.nv, self.model.nu
        self.obs_dim: int = env.observation_space.shape[0]  # type: ignore[union-attr,index]
        self._env = env  # keeps the model's owner alive
        self._bounds()

    def _bounds(self) -> None:
        """v5's ``is_healthy`` as strict bounds on columns ``cols`` of ``[qpos, qvel]``: z
        (Humanoid: qpos[2], else qpos[1]), the angle qpos[2], Hopper's state ``[qpos, qvel][2:]``.
        A column with two ranges gets their intersection (``a < x and c < x`` is
        ``max(a, c) < x``, NaN failing both)."""
        n = self.nq + self.nv
        lo, hi = np.full(n, np.nan), np.full(n, np.nan)

        def bound(cols: slice, rng: tuple[float, float]) -> None:
            lo[cols] = np.fmax(lo[cols], rng[0])  # fmax/fmin: NaN means "not checked yet"
            hi[cols] = np.fmin(hi[cols], rng[1])

        bound(slice(2, 3) if self.humanoid else slice(1, 2), self.z_range)
        if self.angle_range is not None:
            bound(slice(2, 3), self.angle_range)
        if self.state_range is not None:
            bound(slice(2, n), self.state_range)
        checked = np.flatnonzero(~np.isnan(lo))
        first, end = int(checked[0]), int(checked[-1]) + 1
        assert len(checked) == end - first, "the checked columns must be contiguous"
        self.cols = slice(first, end)
        self.lo, self.hi = lo[self.cols], hi[self.cols]


@functools.lru_cache(maxsize=16)
def task_for(env_id: str, max_episode_steps: int | None = None) -> Task:
    """A :class:`Task` shared by every sampler of the process (its constants and model are only
    read; making one builds a gymnasium environment, ~3 ms, paid once per sampler otherwise)."""
    return Task(env_id, max_episode_steps)


class _Common:
    """Buffers and the per-step health, reward and observation of every row at once."""

    qstate: np.ndarray
    """(nsim, nq + nv): every simulation's ``[qpos, qvel]`` (``state_vector``)."""

    def _buffers(self, task: Task, nsim: int) -> None:
        self.task = task
        self.obs = np.empty((nsim, task.obs_dim))
        """v5's raw observation of every simulation."""
        self.contact = np.zeros(nsim)
        self._before = np.empty(nsim)
        self._sq = np.empty((nsim, task.nu))
        self._cost = np.empty(nsim)
        self._r = np.empty(nsim)
        self._lo_ok = np.empty((nsim, task.cols.stop - task.cols.start), bool)
        self._hi_ok = np.empty_like(self._lo_ok)
        self._healthy = np.empty(nsim, bool)
        self._term = np.empty(nsim, bool)

    def _finish(self, x_after: np.ndarray, actions: np.ndarray, r: np.ndarray | None,
                term: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """v5's ``is_healthy`` and ``_get_rew`` for every row, with the operations of
        gymnasium's scalar code in its order: ``forward_w * ((x1 - x0) / dt) + healthy *
        healthy_reward - (ctrl_w * sum(square(a)) [+ contact])``."""
        t = self.task
        s = self.qstate[:, t.cols]
        np.less(t.lo, s, out=self._lo_ok)
        np.less(s, t.hi, out=self._hi_ok)
        np.logical_and(self._lo_ok, self._hi_ok, out=self._lo_ok)
        healthy = np.logical_and.reduce(self._lo_ok, axis=1, out=self._healthy)
        r = self._r if r is None else r
        np.subtract(x_after, self._before, out=r)
        np.divide(r, t.dt, out=r)
        if t.forward_w != 1.0:  # x * 1.0 is x exactly
            np.multiply(r, t.forward_w, out=r)
        cost = self._cost
        if t.healthy_reward == 1.0:  # healthy * 1.0 is healthy as 1.0 / 0.0
            np.add(r, healthy, out=r)
        else:
            np.multiply(healthy, t.healthy_reward, out=cost)
            np.add(r, cost, out=r)
        np.square(actions, out=self._sq)
        self._sq.sum(axis=1, out=cost)
        np.multiply(cost, t.ctrl_w, out=cost)
        if t.humanoid:
            np.add(cost, self.contact, out=cost)
        np.subtract(r, cost, out=r)
        term = np.logical_not(healthy, out=self._term if term is None else term)
        return self.obs, r, term


class Sims(_Common):
    """One MjData per chunk, the fields the task reads gathered into (nsim, ...) arrays."""

    def __init__(self, task: Task, nsim: int, pool: ThreadPoolExecutor | None,
                 nthread: int = 1) -> None:
        self._buffers(task, nsim)
        self.nthread = nthread
        self.datas = [mujoco.MjData(task.model) for _ in range(nsim)]
        self.qstate = np.empty((nsim, task.nq + task.nv))
        self.qpos = self.qstate[:, :task.nq]
        self.qvel = self.qstate[:, task.nq:]
        nbody = task.model.nbody
        self.position = np.empty((nsim, 2 if task.humanoid else 1))
        """x (Hopper, Walker2d) or the xy mass centre (Humanoid) that the reward differences."""
        self.pool = pool
        self._mass = task.model.body_mass
        self._mass_sum = task.model.body_mass.sum()
        self._xipos = np.empty((nsim, nbody, 3))
        self._cfrc = np.empty((nsim, nbody, 6))
        self._views = [self._views_of(d) for d in self.datas]

    @staticmethod
    def _views_of(d: mujoco.MjData) -> tuple[np.ndarray, ...]:
        """The MjData arrays ``_read`` copies (views into ``d``, made once)."""
        views = (d.ctrl, d.qpos, d.qvel, d.qpos[2:], d.cinert[1:].reshape(-1),
                 d.cvel[1:].reshape(-1), d.qfrc_actuator[6:], d.cfrc_ext[1:].reshape(-1),
                 d.cfrc_ext, d.xipos)
        assert all(v.base is not None for v in views)
        return views

    def _read(self, i: int) -> None:
        t = self.task
        _, qpos, qvel, qpos2, cinert, cvel, qfrc, cfrc_flat, cfrc, xipos = self._views[i]
        self.qpos[i] = qpos
        self.qvel[i] = qvel
        o = self.obs[i]
        if not t.humanoid:
            o[:t.nq - 1] = qpos[1:]
            clip_velocity(qvel, o[t.nq - 1:])
            self.position[i] = qpos[0]
            return
        np.concatenate((qpos2, qvel, cinert, cvel, qfrc, cfrc_flat), out=o)
        self._xipos[i] = xipos
        self._cfrc[i] = cfrc

    def _derive(self, rows: slice) -> None:
        """Humanoid's mass centre and contact cost of ``rows`` from the gathered xipos and
        cfrc_ext: gymnasium's ``einsum("b,bj->j")`` and ``sum(square(cfrc_ext))`` of each
        (numpy's result for a stack of rows is each row's), then ``clip``."""
        t = self.task
        if not t.humanoid:
            return
        self.position[rows] = np.einsum("b,kbj->kj", self._mass, self._xipos[rows])[:, :2]
        self.position[rows] /= self._mass_sum
        cost = np.square(self._cfrc[rows]).sum(axis=(1, 2))
        cost *= t.contact_w
        lo, hi = t.contact_range
        np.minimum(np.maximum(cost, lo, out=cost), hi, out=self.contact[rows])

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
        self._derive(slice(i, i + 1))

    def set_state(self, i: int, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """gymnasium's ``MujocoEnv.set_state`` on sim ``i``."""
        t, d = self.task, self.datas[i]
        d.qpos[:] = qpos
        d.qvel[:] = qvel
        mujoco.mj_forward(t.model, d)
        self._read(i)
        self._derive(slice(i, i + 1))

    def _step_some(self, ids: list[int], actions: np.ndarray) -> None:
        m, fs = self.task.model, self.task.frame_skip
        for i in ids:
            ctrl = self._views[i][0]
            ctrl[:] = actions[i]
            d = self.datas[i]
            mujoco.mj_step(m, d, nstep=fs)
            mujoco.mj_rnePostConstraint(m, d)
            self._read(i)

    def step(self, ids: np.ndarray | None, actions: np.ndarray) -> None:
        """Step sims ``ids`` (None: all) with their rows of ``actions`` (one row per sim), as
        v5's ``do_simulation``."""
        some = list(range(len(self.datas))) if ids is None else ids.tolist()
        if self.pool is None or len(some) < 2:
            self._step_some(some, actions)
            return
        parts = np.array_split(np.asarray(some), self.nthread)
        futures = [self.pool.submit(self._step_some, p.tolist(), actions) for p in parts
                   if len(p)]
        for f in futures:
            f.result()

    def env_step(self, ids: np.ndarray | None, actions: np.ndarray, r: np.ndarray | None = None,
                 term: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """v5's ``step`` (without the TimeLimit) for sims ``ids`` (sorted; None: all), with
        ``actions`` one row per sim: raw observations, rewards and terminated of every sim (the
        rows of the others are stale), the latter two written to ``r`` and ``term`` if given."""
        np.copyto(self._before, self.position[:, 0])
        self.step(ids, actions)
        self._derive(slice(None))
        return self._finish(self.position[:, 0], actions, r, term)


class BatchSims(_Common):
    """:class:`Sims`'s interface on one persistent ``mujoco.batch.Batch`` (not Humanoid)."""

    def __init__(self, task: Task, nsim: int, nthread: int = 1) -> None:
        if task.humanoid:
            raise ValueError("Humanoid-v5 observes cfrc_ext (mj_rnePostConstraint): use Sims")
        self._buffers(task, nsim)
        self._obs_lo = np.r_[np.full(task.nq - 1, -np.inf), np.full(task.nv, -10.0)]
        self._obs_hi = -self._obs_lo
        self.batch = mujoco.batch.Batch(task.model, nsim, nthread=nthread, persistent=True)
        self.qpos = self.batch.bind("qpos")
        """Live (nsim, nq) view of every simulation's qpos."""
        self.qvel = self.batch.bind("qvel")
        self._ctrl = self.batch.bind("ctrl")
        state = self.batch.state
        start = (self.qpos.ctypes.data - state.ctypes.data) // state.itemsize
        self.qstate = state[:, start:start + task.nq + task.nv]
        """Live (nsim, nq + nv) view: qvel follows qpos in a state row."""
        assert self.qstate[:, task.nq:].ctypes.data == self.qvel.ctypes.data
        self.batch.reset(stage=int(mujoco.mjtStage.mjSTAGE_NONE))

    def _observe(self, rows: slice) -> None:
        """v5's observations of ``rows``, qpos without x and qvel clipped to +-10, as
        ``[qpos, qvel][1:]`` (one slice of a state row) clipped column-wise to +-inf for qpos
        (``max(x, -inf)`` and ``min(x, inf)`` are ``x``, NaN included) and +-10 for qvel
        (:func:`clip_velocity`)."""
        o = self.obs[rows]
        np.maximum(self.qstate[rows, 1:], self._obs_lo, out=o)
        np.minimum(o, self._obs_hi, out=o)

    def reset(self, i: int, rng: np.random.Generator) -> None:
        """:meth:`Sims.reset`: ``mj_resetData``, the noisy state, ``mj_forward``."""
        t = self.task
        self.batch.reset([i], stage=int(mujoco.mjtStage.mjSTAGE_NONE))
        s = t.noise_scale
        self.qpos[i] = t.init_qpos + rng.uniform(low=-s, high=s, size=t.nq)
        self.qvel[i] = t.init_qvel + rng.uniform(low=-s, high=s, size=t.nv)
        self.batch.forward([i])
        self._observe(slice(i, i + 1))

    def set_state(self, i: int, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.qpos[i] = qpos
        self.qvel[i] = qvel
        self.batch.forward([i])
        self._observe(slice(i, i + 1))

    def env_step(self, ids: np.ndarray | None, actions: np.ndarray, r: np.ndarray | None = None,
                 term: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`Sims.env_step`, the sims ``ids`` stepped in one batch call."""
        x = self.qpos[:, 0]
        np.copyto(self._before, x)
        self._ctrl[:] = actions
        self.batch.step(ids, nstep=self.task.frame_skip)
        self._observe(slice(None))
        return self._finish(x, actions, r, term)


def make_sims(task: Task, nsim: int, pool: ThreadPoolExecutor | None,
              nthread: int = 1) -> Sims | BatchSims:
    """:class:`BatchSims` where the task allows it, else :class:`Sims`."""
    if task.humanoid:
        return Sims(task, nsim, pool, nthread)
    return BatchSims(task, nsim, nthread)


__all__ = ["MUJOCO_ENVS", "V5_CLASSES", "BatchSims", "Sims", "Task", "clip_velocity",
           "direct_parts", "make_sims", "supports", "task_for"]

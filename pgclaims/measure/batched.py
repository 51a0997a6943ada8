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

Speed. The loop's Python and numpy calls are paid once per lockstep step, so a step does few of
them: the buffers are preallocated and time-major (a step writes one contiguous row of each),
elementwise work runs on every row (a finished chunk's row is stale and ignored; only live
simulations are stepped), the normalized observations are written straight into the forward
pass's input, rewards are scaled once at the end, and episode bookkeeping runs in Python only at
steps where some chunk terminates, is cut or ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import numpy as np

from pgclaims.agents.envs import make_env
from pgclaims.agents.networks import NumpyPolicy
from pgclaims.agents.rollout import Batch
from pgclaims.measure.sims import MUJOCO_ENVS, Task, make_sims, supports, task_for

BLOCK = 16
"""Rows per policy matmul: every forward pass has this shape, so a row never depends on how
many other rows are evaluated with it."""
NSIM = 16
"""Chunks stepped in lockstep by default."""

Job = tuple[int, np.random.Generator]
"""(pairs, the chunk's own Generator)."""


class BlockedMean:
    """``policy.mean`` of the rows of :attr:`x`, in fixed-shape blocks of :data:`BLOCK` rows,
    in buffers made once: each layer is ``np.matmul(h, w.T, out=)`` (the BLAS call of
    ``h @ w.T``), ``+= b`` and, on the rows in use only, ``tanh`` (elementwise; a matmul's row
    depends on its own input row only, so pad rows never reach a used one)."""

    def __init__(self, policy: NumpyPolicy, rows: int) -> None:
        size = max(1, -(-rows // BLOCK)) * BLOCK
        x = np.zeros((size, policy.weights[0][0].shape[1]))
        self.x = x[:rows]
        """The input rows: write the observations here."""
        outs = [np.zeros((size, w.shape[0])) for w, _ in policy.weights]
        self.out = outs[-1][:rows]
        self._plan: list[tuple[np.ndarray, ...]] = []
        """(input block, w.T, b, output block, its rows in use or None at the last layer)."""
        for s in range(0, rows, BLOCK):
            h = x[s:s + BLOCK]
            for i, ((w, b), out) in enumerate(zip(policy.weights, outs, strict=True)):
                o = out[s:s + BLOCK]
                self._plan.append((h, w.T, b, o, o[:rows - s] if i < len(outs) - 1 else None))
                h = o

    def __call__(self) -> np.ndarray:
        """The means of :attr:`x`, a view valid until the next call."""
        for h, wt, b, o, used in self._plan:
            np.matmul(h, wt, out=o)
            o += b
            if used is not None:
                np.tanh(used, out=used)
        return self.out


class RowwiseMean:
    """:class:`BlockedMean`'s interface on ``NumpyPolicy.mean`` row by row (``collect``'s
    arithmetic)."""

    def __init__(self, policy: NumpyPolicy, rows: int) -> None:
        self.policy = policy
        self.x = np.zeros((rows, policy.weights[0][0].shape[1]))

    def __call__(self) -> np.ndarray:
        return rowwise_mean(self.policy, self.x)


def batched_mean(policy: NumpyPolicy, x: np.ndarray) -> np.ndarray:
    """``policy.mean`` of every row of ``x``, in fixed-shape blocks of :data:`BLOCK` rows."""
    mean = BlockedMean(policy, len(x))
    mean.x[:] = x
    return mean().copy()


def rowwise_mean(policy: NumpyPolicy, x: np.ndarray) -> np.ndarray:
    """``policy.mean`` row by row: exactly ``collect``'s arithmetic."""
    return np.stack([policy.mean(row) for row in x]) if len(x) else np.empty((0, len(policy.std)))


class MixedMean:
    """The forward pass of a group whose rows follow different policies: one ``forward``
    evaluator per distinct policy over its own rows (gathered from :attr:`x`, scattered back),
    so a row's mean is the one its policy gives it alone (a row never depends on the others)."""

    def __init__(self, forward: Any, policies: Sequence[NumpyPolicy]) -> None:
        first = policies[0]
        self.x = np.zeros((len(policies), first.weights[0][0].shape[1]))
        self.out = np.zeros((len(policies), len(first.std)))
        rows: dict[int, list[int]] = {}
        for i, p in enumerate(policies):
            rows.setdefault(id(p), []).append(i)
        self._parts = [(np.asarray(r), forward(policies[r[0]], len(r))) for r in rows.values()]

    def __call__(self) -> np.ndarray:
        for rows, mean in self._parts:
            mean.x[:] = self.x[rows]
            self.out[rows] = mean()
        return self.out


FORWARDS: dict[str, type[BlockedMean] | type[RowwiseMean]] = {
    "batched": BlockedMean, "rowwise": RowwiseMean}
"""The forward passes, by name: each is made for (policy, rows) and reads its input rows ``x``."""


def per_job(k: int, policy: Any, policies: Sequence[Any] | None) -> list[Any]:
    """One policy per job of ``k``: ``policies`` as given, else ``policy`` for all; giving
    both, or a list of the wrong length, is an error."""
    if policies is None:
        return [policy] * k
    if policy is not None or len(policies) != k:
        raise ValueError(f"give either policy or one policy per job ({k} jobs, "
                         f"{len(policies)} policies)")
    return list(policies)


class BatchedSampler:
    """``collect`` with frozen normalizers for many chunks at once, stepping MuJoCo directly.

    ``obs_norm`` is a :class:`pgclaims.measure.sampler.FrozenObsNorm` (its arithmetic is
    applied to whole arrays, in place) and ``reward_scaler`` a
    :class:`pgclaims.measure.sampler.FrozenRewardScaler` (its ``denom`` and ``clip`` are applied
    to whole arrays, with the same arithmetic).
    """

    def __init__(self, env_id: str, policy: NumpyPolicy, obs_norm: Any, reward_scaler: Any, *,
                 nsim: int = NSIM, nthread: int = 1, forward: str = "batched",
                 max_episode_steps: int | None = None) -> None:
        if nsim < 1 or nthread < 1:
            raise ValueError(f"nsim and nthread must be >= 1, got {nsim}, {nthread}")
        if forward not in FORWARDS:
            raise ValueError(f"forward must be one of {tuple(FORWARDS)}, got {forward!r}")
        self.task = task_for(env_id, max_episode_steps)
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

    def _normalize(self, raw: np.ndarray, out: np.ndarray) -> None:
        """``out[:] = obs_norm(raw)``: FrozenObsNorm's ``(raw - mean) / denom`` clipped, in
        place (any other normalizer is called)."""
        n = self.obs_norm
        if not hasattr(n, "denom"):
            out[:] = n(raw, False)
            return
        if n.identity:
            np.maximum(raw, -n.clip, out=out)
        else:
            np.subtract(raw, n.mean, out=out)
            np.divide(out, n.denom, out=out)
            np.maximum(out, -n.clip, out=out)
        np.minimum(out, n.clip, out=out)

    def sample(self, jobs: Sequence[Job], policy: NumpyPolicy | None = None,
               policies: Sequence[NumpyPolicy] | None = None) -> list[Batch]:
        """One Batch per job, each exactly what that job would give alone: groups of
        ``nsim`` chunks are stepped in lockstep. ``policies``: one policy per job (e.g. the
        points of a landscape), instead of ``policy`` for all."""
        policies = [p if p is not None else self.policy
                    for p in per_job(len(jobs), policy, policies)]
        out: list[Batch] = []
        for s in range(0, len(jobs), self.nsim):
            out += self._group(jobs[s:s + self.nsim], policies[s:s + self.nsim])
        return out

    def _group(self, jobs: Sequence[Job], policies: Sequence[NumpyPolicy]) -> list[Batch]:
        t_ = self.task
        k = len(jobs)
        ns = np.array([n for n, _ in jobs], np.int64)
        if k == 0:
            return []
        if ns.min() < 1:
            raise ValueError("every chunk needs at least one pair")
        nmax, od, ad, limit = int(ns.max()), t_.obs_dim, t_.nu, t_.max_steps
        sims = make_sims(t_, k, self.pool, self.nthread)
        same = all(p is policies[0] for p in policies)
        mean = self.forward(policies[0], k) if same else MixedMean(self.forward, policies)
        obs = mean.x  # the normalized observations, where the forward pass reads them
        # time-major buffers: step t writes row t of each
        reset_rngs, noise = [], np.zeros((nmax, k, ad))
        for i, (n, rng) in enumerate(jobs):
            env_seed = int(rng.integers(2**31 - 1))  # collect's env.reset(seed=...)
            noise[:n, i] = rng.standard_normal((n, ad))  # collect's per-step draws, in order
            reset_rngs.append(np.random.default_rng(env_seed))  # gymnasium's np_random
            sims.reset(i, reset_rngs[i])
        if same:
            noise *= policies[0].std  # collect's std * draw, elementwise
        else:
            for i, p in enumerate(policies):
                noise[:, i] *= p.std
        obs_buf = np.empty((nmax, k, od), np.float32)
        act_buf = np.empty((nmax, k, ad), np.float32)
        raw = np.empty((nmax, k))
        term = np.zeros((nmax, k), bool)
        trunc = np.zeros((nmax, k), bool)
        final_obs: list[list[np.ndarray]] = [[] for _ in range(k)]
        cut_states: list[list[np.ndarray]] = [[] for _ in range(k)]
        ep_returns: list[list[float]] = [[] for _ in range(k)]
        ep_lengths: list[list[int]] = [[] for _ in range(k)]
        ep_ret = np.zeros(k)
        start = np.zeros(k, np.int64)  # the step at which each chunk's episode began
        actions = np.empty((k, ad))
        live = np.ones(k, bool)
        ids = None  # the live chunks, None while all are
        event = min(int(ns.min()), limit) - 1  # no chunk ends and no episode is cut before it
        self._normalize(sims.obs, obs)
        for t in range(nmax):
            np.add(mean(), noise[t], out=actions)
            obs_buf[t] = obs
            act_buf[t] = actions
            raw_obs, r, terminated = sims.env_step(ids, actions, raw[t], term[t])
            ep_ret += r
            self._normalize(raw_obs, obs)
            if ids is not None:
                terminated &= live
            if t < event and not terminated.any():
                continue
            last = ns == t + 1
            cut = t + 1 - start >= limit  # gymnasium's TimeLimit
            for i in np.flatnonzero(live & (terminated | cut | last)).tolist():
                if not terminated[i]:
                    trunc[t, i] = True
                    final_obs[i].append(obs[i].copy())
                    cut_states[i].append(sims.qstate[i].copy())  # [qpos, qvel]
                if terminated[i] or cut[i]:
                    ep_returns[i].append(float(ep_ret[i]))
                    ep_lengths[i].append(t + 1 - int(start[i]))
                if not last[i]:
                    sims.reset(i, reset_rngs[i])
                    self._normalize(sims.obs[i:i + 1], obs[i:i + 1])
                    start[i] = t + 1
                ep_ret[i] = 0.0
            if last.any():
                live &= ~last
                ids = None if live.all() else np.flatnonzero(live)
            if live.any():
                event = int(min(ns[live].min() - 1, start[live].min() + limit - 1))
        rew = self._scale(raw)
        nsd = t_.nq + t_.nv
        return [Batch(
            obs=obs_buf[:n, i].copy(), actions=act_buf[:n, i].copy(), rewards=rew[:n, i].copy(),
            raw_rewards=raw[:n, i].copy(), terminated=term[:n, i].copy(),
            truncated=trunc[:n, i].copy(),
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


__all__ = ["BLOCK", "FORWARDS", "MUJOCO_ENVS", "NSIM", "BatchedSampler", "BlockedMean",
           "MixedMean", "RowwiseMean", "Task", "batched_mean", "make_task_env", "per_job",
           "rowwise_mean", "supports"]

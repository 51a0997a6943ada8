"""One collector for training, measurement and the adapters' agents: many streams in lockstep,
stepping MuJoCo directly.

A stream is what :func:`pgclaims.agents.rollout.collect` takes: ``n`` pairs from a fresh reset
seeded from ``rng``, under a policy and its normalizers, updated (training) or frozen
(measurement). :class:`Collector` draws any number of streams of one task, ``nsim`` at a time in
lockstep: one simulation per stream (:mod:`pgclaims.agents.sims`: one ``mujoco.batch`` call
steps them all for Hopper and Walker2d), one forward pass for all rows
(:mod:`pgclaims.agents.forward`), the normalizers as rows of arrays (:mod:`pgclaims.agents.rows`).

Streams. A stream consumes its Generator exactly as ``collect`` does: ``rng.integers(2**31 - 1)``
seeds the reset noise (gymnasium's ``np_random``, i.e. ``default_rng`` of that integer, drawn
``uniform(nq)`` then ``uniform(nv)`` at every reset), then one ``standard_normal(act_dim)`` per
step for the action noise (drawn up front: a ``(n, act_dim)`` block is the same sequence).
Nothing of one stream reaches another: a stream's Batch is the same alone or with any others, for
any number of threads or worker processes. Streams that update their normalizers need their own.

Exactness. Given the same state and actions, observations, rewards, terminated and truncated are
gymnasium v5's bit for bit (the same MuJoCo calls and float64 arithmetic, vectorized only where
numpy's result is the same), the TimeLimit counted here and a ``ClipAction`` applied to the
action the simulation receives. With ``forward="rowwise"`` the policy's mean is
``NumpyPolicy.mean``'s too, and a stream's Batch, and its normalizers after it, are ``collect``'s
bit for bit (tests/test_collector.py); training collects that way. ``forward="batched"``
evaluates the mean by matrix-matrix products over fixed blocks (~1e-15 from the matrix-vector
product, independent of the other rows); measurement collects that way.

Speed. The loop's Python and numpy calls are paid once per lockstep step: preallocated,
time-major buffers (a step writes one contiguous row of each), elementwise work on every row (a
finished stream's row is stale and ignored; only live simulations are stepped), normalized
observations written straight into the forward pass's input, frozen reward scales applied once
at the end, and episode bookkeeping in Python only at steps where some stream terminates, is
cut or ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgclaims.agents.forward import FORWARDS, forward_pass
from pgclaims.agents.networks import NumpyPolicy
from pgclaims.agents.rollout import Batch
from pgclaims.agents.rows import ObsRows, RewardRows
from pgclaims.agents.sims import make_sims, task_for

NSIM = 16
"""Streams stepped in lockstep by default."""


@dataclass
class Stream:
    """One batch to collect: ``collect(env, policy, obs_norm, reward_scaler, n, rng,
    update_normalizers=update)`` of the gymnasium path."""

    n: int
    """State-action pairs."""
    rng: np.random.Generator
    policy: NumpyPolicy
    obs_norm: Any
    """An :class:`~pgclaims.agents.envs.ObsNormalizer` (updated when ``update``) or a
    :class:`~pgclaims.agents.envs.FrozenObsNorm`."""
    reward_scaler: Any
    """A :class:`~pgclaims.agents.envs.RewardScaler` or a
    :class:`~pgclaims.agents.envs.FrozenRewardScaler`."""
    update: bool = False


class Collector:
    """Streams of one directly stepped environment id (:func:`pgclaims.agents.sims.supports`),
    ``nsim`` at a time in lockstep on ``nthread`` threads, with the ``forward`` pass
    (``"rowwise"``: ``collect``'s arithmetic; ``"batched"``: blocked matrix products)."""

    def __init__(self, env_id: str, *, nsim: int = NSIM, nthread: int = 1,
                 forward: str = "batched", max_episode_steps: int | None = None) -> None:
        if nsim < 1 or nthread < 1:
            raise ValueError(f"nsim and nthread must be >= 1, got {nsim}, {nthread}")
        if forward not in FORWARDS:
            raise ValueError(f"forward must be one of {tuple(FORWARDS)}, got {forward!r}")
        self.task = task_for(env_id, max_episode_steps)
        self.nsim = nsim
        self.forward = forward
        self.nthread = nthread
        self.pool = ThreadPoolExecutor(nthread) if nthread > 1 else None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def collect(self, streams: Sequence[Stream]) -> list[Batch]:
        """One Batch per stream, each exactly what that stream gives alone."""
        out: list[Batch] = []
        for s in range(0, len(streams), self.nsim):
            out += self._group(streams[s:s + self.nsim])
        return out

    def _group(self, streams: Sequence[Stream]) -> list[Batch]:
        t_ = self.task
        k = len(streams)
        if k == 0:
            return []
        ns = np.array([s.n for s in streams], np.int64)
        if ns.min() < 1:
            raise ValueError("every stream needs at least one pair")
        update = streams[0].update
        if any(s.update != update for s in streams):
            raise ValueError("a lockstep group's streams all update their normalizers or none")
        nmax, od, ad = int(ns.max()), t_.obs_dim, t_.nu
        limit = t_.max_steps or nmax + 1
        sims = make_sims(t_, k, self.pool, self.nthread)
        policies = [s.policy for s in streams]
        mean = forward_pass(self.forward, policies, od)
        obs = mean.x  # the normalized observations, where the forward pass reads them
        norm = ObsRows([s.obs_norm for s in streams], update, od)
        scale = RewardRows([s.reward_scaler for s in streams], update)
        # time-major buffers: step t writes row t of each
        reset_rngs, noise = [], np.zeros((nmax, k, ad))
        for i, s in enumerate(streams):
            env_seed = int(s.rng.integers(2**31 - 1))  # collect's env.reset(seed=...)
            noise[:s.n, i] = s.rng.standard_normal((s.n, ad))  # collect's per-step draws
            reset_rngs.append(np.random.default_rng(env_seed))  # gymnasium's np_random
            sims.reset(i, reset_rngs[i])
            norm.row(i, sims.obs[i:i + 1], obs[i:i + 1])
        if all(p is policies[0] for p in policies):
            noise *= policies[0].std  # collect's std * draw, elementwise
        else:
            for i, p in enumerate(policies):
                noise[:, i] *= p.std
        obs_buf = np.empty((nmax, k, od), np.float32)
        act_buf = np.empty((nmax, k, ad), np.float32)
        raw = np.empty((nmax, k))
        rew = np.empty((nmax, k))
        term = np.zeros((nmax, k), bool)
        trunc = np.zeros((nmax, k), bool)
        final_obs: list[list[np.ndarray]] = [[] for _ in range(k)]
        cut_states: list[list[np.ndarray]] = [[] for _ in range(k)]
        ep_returns: list[list[float]] = [[] for _ in range(k)]
        ep_lengths: list[list[int]] = [[] for _ in range(k)]
        ep_ret = np.zeros(k)
        start = np.zeros(k, np.int64)  # the step at which each stream's episode began
        actions = np.empty((k, ad))
        clip = t_.clip
        sent = np.empty((k, ad)) if clip is not None else actions  # what the simulation gets
        live = np.ones(k, bool)
        ids, rows = None, None  # the live streams (indices, mask), None while all are
        event = min(int(ns.min()), limit) - 1  # no stream ends and no episode is cut before it
        for t in range(nmax):
            np.add(mean(), noise[t], out=actions)
            obs_buf[t] = obs
            act_buf[t] = actions
            if clip is not None:  # ClipAction: np.clip(action, low, high)
                np.maximum(actions, clip[0], out=sent)
                np.minimum(sent, clip[1], out=sent)
            raw_obs, r, terminated = sims.env_step(ids, sent, raw[t], term[t])
            ep_ret += r
            norm(raw_obs, obs, rows)
            scale.step(r, rew[t], rows)
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
                    norm.row(i, sims.obs[i:i + 1], obs[i:i + 1])
                    scale.reset(i)
                    start[i] = t + 1
                ep_ret[i] = 0.0
            if last.any():
                live &= ~last
                all_live = bool(live.all())
                ids = None if all_live else np.flatnonzero(live)
                rows = None if all_live else live.copy()
            if live.any():
                event = int(min(ns[live].min() - 1, start[live].min() + limit - 1))
        scale.finish(raw, rew)
        norm.store()
        scale.store()
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


__all__ = ["NSIM", "Collector", "Stream"]

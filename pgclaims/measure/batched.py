"""The frozen sampler's lockstep path for the directly stepped tasks: many chunks at once.

:class:`BatchedSampler` is :class:`pgclaims.agents.collector.Collector` with the checkpoint's
normalizers frozen and, by default, the ``batched`` forward pass: one simulation per chunk, one
``mujoco.batch`` call (a loop over ``MjData`` for Humanoid) and one forward pass for every live
chunk per step. Each chunk consumes its rng exactly as ``collect`` does and the environment is
gymnasium v5's bit for bit (its TimeLimit and, for the adapters' ids, its ``ClipAction``
included); only the batched matmul's rounding differs (~1e-15), so its numbers are not the
gymnasium path's. ``forward="rowwise"`` evaluates ``NumpyPolicy.mean`` per row instead, and the
sampler then reproduces ``collect`` bit for bit. See :mod:`pgclaims.agents.collector` for the
streams, the exactness and the speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from pgclaims.agents.collector import NSIM, Collector, Stream
from pgclaims.agents.envs import make_env
from pgclaims.agents.forward import (
    BLOCK,
    FORWARDS,
    BlockedMean,
    MixedMean,
    RowwiseMean,
    batched_mean,
    rowwise_mean,
)
from pgclaims.agents.networks import NumpyPolicy
from pgclaims.agents.rollout import Batch
from pgclaims.agents.sims import MUJOCO_ENVS, Task, supports

Job = tuple[int, np.random.Generator]
"""(pairs, the chunk's own Generator)."""


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

    ``obs_norm`` is a :class:`pgclaims.agents.envs.FrozenObsNorm` and ``reward_scaler`` a
    :class:`pgclaims.agents.envs.FrozenRewardScaler` (or their live forms, used frozen)."""

    def __init__(self, env_id: str, policy: NumpyPolicy, obs_norm: Any, reward_scaler: Any, *,
                 nsim: int = NSIM, nthread: int = 1, forward: str = "batched",
                 max_episode_steps: int | None = None) -> None:
        self.collector = Collector(env_id, nsim=nsim, nthread=nthread, forward=forward,
                                   max_episode_steps=max_episode_steps)
        self.task: Task = self.collector.task
        self.policy = policy
        self.obs_norm = obs_norm
        self.reward_scaler = reward_scaler
        self.nsim = nsim
        self.nthread = nthread

    def close(self) -> None:
        self.collector.close()

    def sample(self, jobs: Sequence[Job], policy: NumpyPolicy | None = None,
               policies: Sequence[NumpyPolicy] | None = None) -> list[Batch]:
        """One Batch per job, each exactly what that job would give alone: groups of
        ``nsim`` chunks are stepped in lockstep. ``policies``: one policy per job (e.g. the
        points of a landscape), instead of ``policy`` for all."""
        each = [p if p is not None else self.policy for p in per_job(len(jobs), policy, policies)]
        return self.collector.collect([
            Stream(n, rng, p, self.obs_norm, self.reward_scaler)
            for (n, rng), p in zip(jobs, each, strict=True)])


def make_task_env(env_id: str, max_episode_steps: int | None = None) -> gym.Env:
    """The gymnasium environment the batched path reproduces (for tests and benchmarks)."""
    if max_episode_steps is None:
        return make_env(env_id)
    return gym.make(env_id, disable_env_checker=True, max_episode_steps=max_episode_steps)


__all__ = ["BLOCK", "FORWARDS", "MUJOCO_ENVS", "NSIM", "BatchedSampler", "BlockedMean",
           "MixedMean", "RowwiseMean", "Task", "batched_mean", "make_task_env", "per_job",
           "rowwise_mean", "supports"]

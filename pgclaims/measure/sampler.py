"""Frozen sampling from a checkpoint: the policy and its normalizers exactly as saved.

Each call of :meth:`FrozenSampler.batch` is one :func:`pgclaims.agents.rollout.collect`
from a fresh, seeded reset with the observation normalizer and the reward scale frozen, so any
two batches are independent draws from the checkpoint's on-policy distribution, and a batch
depends only on its rng: chunks can be drawn in any order, by any process
(:mod:`pgclaims.measure.parallel`). (At iteration 0 the saved observation normalizer has seen
nothing and is the identity with clipping.)

For the environments the collector steps directly (Hopper-v5, Walker2d-v5 and Humanoid-v5, also
under the adapters' ``ClipAction``; :func:`pgclaims.agents.sims.supports`) the batched path
(:mod:`pgclaims.measure.batched`, the collector that training uses too; on unless
``FrozenSampler(agent, batched=False)`` or :data:`BATCHED` says otherwise) draws many chunks in
lockstep with one policy forward pass for all of them. Each chunk consumes its rng exactly as
``collect`` does, and the environment is v5's bit for bit; only the batched matmul's rounding
differs, so its numbers are not the gymnasium path's, which is unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from pgclaims.agents.agent import Agent
from pgclaims.agents.envs import (  # noqa: F401 - FrozenObsNorm, FrozenRewardScaler re-exported
    FrozenObsNorm,
    FrozenRewardScaler,
    make_env,
)
from pgclaims.agents.networks import GaussianPolicy, NumpyPolicy, flat_params, set_flat_params
from pgclaims.agents.rollout import Batch, collect
from pgclaims.measure.batched import NSIM, BatchedSampler, per_job, supports

CHUNK = 2048
"""Pairs per chunk: one training batch (Table 1), so a chunk is the training regime exactly."""

BATCHED = True
"""Whether a :class:`FrozenSampler` made without ``batched=`` takes the batched MuJoCo path for
the ids it supports (on since measurement version 2; switching it changes every measured
number, so the cache's MEASURE_VERSION changes with it)."""


def rng_for(seed: int, *path: int) -> np.random.Generator:
    """An independent stream for every (seed, purpose, repeat, chunk, ...) path."""
    return np.random.default_rng([seed, *path])


def lockstep_groups(jobs: Sequence[Any], workers: int) -> list[Sequence[Any]]:
    """``jobs`` cut into consecutive groups stepped in lockstep: as many as ``workers`` need,
    at most :data:`NSIM` chunks each (a chunk's batch does not depend on its group)."""
    size = max(1, min(NSIM, -(-len(jobs) // max(workers, 1))))
    return [jobs[s:s + size] for s in range(0, len(jobs), size)]


def reduce_group(sampler: FrozenSampler, reduce: Callable[[Batch, Any], Any],
                 group: Sequence[tuple[Any, ...]], seed: int) -> list[Any]:
    """``reduce(batch, arg)`` for each ``(pairs, rng path, arg)`` job of ``group``, the
    group's batches drawn together (:meth:`FrozenSampler.batches`). A job may carry a fourth
    element, the policy module (a :class:`GaussianPolicy`, e.g. a landscape's perturbed one)
    that draws its batch instead of the agent's; jobs sharing one module share its sampler."""
    samplers: dict[int, NumpyPolicy] = {}
    policies = []
    for job in group:
        module = job[3] if len(job) > 3 else None
        if module is not None and id(module) not in samplers:
            samplers[id(module)] = module.numpy_sampler()
        policies.append(None if module is None else samplers[id(module)])
    batches = sampler.batches([(job[0], rng_for(seed, *job[1])) for job in group],
                              policies=policies if samplers else None)
    return [reduce(b, job[2]) for b, job in zip(batches, group, strict=True)]


class FrozenSampler:
    """Draws batches from ``agent``'s policy with frozen normalizers, in its own environment."""

    def __init__(self, agent: Agent, batched: bool | None = None, *, nsim: int = NSIM,
                 nthread: int = 1) -> None:
        """``batched``: take the batched MuJoCo path when the env id supports it (None: the
        module switch :data:`BATCHED`); ``nsim`` chunks in lockstep on ``nthread`` threads."""
        self.agent = agent
        self.env = make_env(agent.config.env_id)
        self.obs_norm = FrozenObsNorm(agent.obs_norm)
        self.reward_scaler = FrozenRewardScaler(agent.reward_scaler)
        self.policy = agent.policy.numpy_sampler()
        self.pairs = 0
        use = BATCHED if batched is None else batched
        self.vectorized = (BatchedSampler(agent.config.env_id, self.policy, self.obs_norm,
                                          self.reward_scaler, nsim=nsim, nthread=nthread)
                           if use and supports(agent.config.env_id) else None)

    @property
    def nsim(self) -> int:
        """Chunks drawn together by :meth:`batches` (1 on the gymnasium path)."""
        return self.vectorized.nsim if self.vectorized is not None else 1

    def batch(self, n: int, rng: np.random.Generator, policy: NumpyPolicy | None = None) -> Batch:
        """``n`` state-action pairs from a fresh reset (the last trajectory cut and flagged)."""
        if self.vectorized is not None:
            return self.batches([(n, rng)], policy)[0]
        self.pairs += n
        return collect(self.env, policy or self.policy, self.obs_norm,  # type: ignore[arg-type]
                       self.reward_scaler, n, rng, update_normalizers=False)  # type: ignore[arg-type]

    def batches(self, jobs: Sequence[tuple[int, np.random.Generator]],
                policy: NumpyPolicy | None = None,
                policies: Sequence[NumpyPolicy] | None = None) -> list[Batch]:
        """One batch per (pairs, rng), each the same as :meth:`batch` of it alone; on the
        batched path they are drawn ``nsim`` at a time in lockstep. ``policies``: one policy
        per job instead of ``policy`` for all (e.g. a landscape's points)."""
        each = per_job(len(jobs), policy, policies)
        if self.vectorized is None:
            return [self.batch(n, rng, p) for (n, rng), p in zip(jobs, each, strict=True)]
        self.pairs += sum(n for n, _ in jobs)
        return self.vectorized.sample(jobs, policy, policies)

    def chunks(self, n: int, rng_path: Sequence[int], seed: int) -> list[Batch]:
        """``ceil(n / CHUNK)`` independent chunks, chunk c seeded by (seed, *rng_path, c)."""
        return self.batches([(CHUNK, rng_for(seed, *rng_path, c))
                             for c in range(-(-n // CHUNK))])

    def close(self) -> None:
        self.env.close()
        if self.vectorized is not None:
            self.vectorized.close()


def perturbed_module(policy: GaussianPolicy, theta: torch.Tensor) -> GaussianPolicy:
    """A copy of ``policy`` with flat parameters ``theta``."""
    clone = copy.deepcopy(policy)
    set_flat_params(clone, theta.to(flat_params(clone).dtype))
    return clone


def perturbed(policy: GaussianPolicy, theta: torch.Tensor) -> NumpyPolicy:
    """A numpy sampler for ``policy`` with flat parameters ``theta``."""
    return perturbed_module(policy, theta).numpy_sampler()


def mean_episode_return(batch: Batch) -> float:
    """Mean undiscounted return of the batch's complete episodes; when none completed, the
    return of the (cut) trajectory per trajectory, so a point is never undefined."""
    if len(batch.episode_returns):
        return float(batch.episode_returns.mean())
    return float(batch.raw_rewards.sum() / max(batch.n_trajectories, 1))

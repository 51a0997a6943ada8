"""Chunk-level process parallelism for the frozen sampler.

A chunk depends only on its rng path (:func:`pgclaims.measure.sampler.rng_for`), so a list of
chunk jobs can be spread over forked worker processes, each holding the agent (inherited at the
fork) and its own environment, and each dying with the caller (:mod:`pgclaims.agents.lifeline`).
A worker reduces its chunk with the caller's ``reduce`` before sending anything back, so what
crosses processes is a chunk's statistics, never its batch.
Results come back in job order and are combined by the caller in that order: the numbers are
bit-identical to the serial path and independent of the number of workers.

On the batched MuJoCo path (``batched=True``, see :mod:`pgclaims.measure.batched`) consecutive
jobs are drawn in groups, in lockstep; a chunk's batch does not depend on its group, so the
numbers are again independent of the grouping and of the number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

import torch

from pgclaims.agents import backend
from pgclaims.agents.agent import Agent
from pgclaims.agents.lifeline import die_with_parent
from pgclaims.agents.rollout import Batch
from pgclaims.measure import sampler as sampler_module
from pgclaims.measure.batched import supports
from pgclaims.measure.sampler import FrozenSampler, lockstep_groups, reduce_group

R = TypeVar("R")

Job = tuple[Any, ...]
"""(pairs, rng path, argument passed to ``reduce``): one batch and what to do with it; a
fourth element, when given, is the policy module that draws the batch instead of the agent's
(:func:`pgclaims.measure.sampler.reduce_group`)."""

_STATE: dict[str, Any] = {}
"""What a forked worker inherits: the agent, the reduce function and the seed."""


def default_workers() -> int:
    """Worker processes when the caller does not say: 1 inside a pytest-xdist worker (xdist
    already occupies the cores), else ``PGCLAIMS_WORKERS`` if set, else every core."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return 1
    env = os.environ.get("PGCLAIMS_WORKERS", "").strip()
    if env:
        try:
            workers = int(env)
        except ValueError:
            raise ValueError(f"PGCLAIMS_WORKERS={env!r}: expected a positive integer") from None
        if workers < 1:
            raise ValueError(f"PGCLAIMS_WORKERS={env!r}: expected a positive integer")
        return workers
    return os.cpu_count() or 1


def resolve_workers(workers: int | None) -> int:
    if workers is None:
        return default_workers()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return workers


def _init_worker(parent: int) -> None:
    die_with_parent(parent)
    torch.set_num_threads(1)
    _STATE["sampler"] = FrozenSampler(_STATE["agent"], _STATE["batched"])


def _run(job: Job) -> Any:
    return reduce_group(_STATE["sampler"], _STATE["reduce"], [job], _STATE["seed"])[0]


def _run_group(group: Sequence[Job]) -> list[Any]:
    return reduce_group(_STATE["sampler"], _STATE["reduce"], group, _STATE["seed"])


def study_map(agent: Agent, reduce: Callable[[Batch, Any], R], jobs: Sequence[Job], seed: int
              ) -> list[R]:
    """:func:`chunk_map` for the value, step and landscape studies: on the local backend in
    this process, the jobs drawn in lockstep (one study is one serial task; pytest-xdist
    spreads the studies over the cores); under the ray backend as Ray tasks on the cluster's
    CPUs. The results are the same either way."""
    workers = None if backend.backend() == "ray" else 1
    results = chunk_map(agent, reduce, jobs, seed, workers)
    try:
        return list(results)
    finally:
        results.close()


def chunk_map(agent: Agent, reduce: Callable[[Batch, Any], R], jobs: Sequence[Job], seed: int,
              workers: int | None = None, batched: bool | None = None) -> Iterator[R]:
    """``reduce(batch, arg)`` for each job's batch, yielded in job order as they complete.

    With ``workers`` > 1 the batches are drawn and reduced in a pool of forked processes;
    ``reduce`` (and everything it refers to) is inherited at the fork, so it need not pickle,
    but its result must. Consume the iterator to the end (or close it) to release the pool.
    ``batched`` is :class:`FrozenSampler`'s (None: the module switch).

    Under the ray backend (:mod:`pgclaims.agents.backend`) the jobs run as Ray tasks instead
    (:mod:`pgclaims.measure.ray_backend`; ``reduce`` must then pickle), with the same results;
    ``workers`` is then the CPUs to plan for (default: the cluster's).
    """
    if backend.backend() == "ray":
        from pgclaims.measure import ray_backend

        use = sampler_module.BATCHED if batched is None else batched
        yield from ray_backend.chunk_map(agent, reduce, jobs, seed, workers, use)
        return
    workers = min(resolve_workers(workers), max(len(jobs), 1))
    if workers == 1:
        torch.set_num_threads(1)
        sampler = FrozenSampler(agent, batched)
        try:  # nsim is 1 on the gymnasium path: one job at a time
            for s in range(0, len(jobs), sampler.nsim):
                yield from reduce_group(sampler, reduce, jobs[s:s + sampler.nsim], seed)
        finally:
            sampler.close()
        return
    if _STATE:
        raise RuntimeError("chunk_map pools do not nest: consume one before starting another")
    use = sampler_module.BATCHED if batched is None else batched
    grouped = use and supports(agent.config.env_id)
    _STATE.update(agent=agent, reduce=reduce, seed=seed, batched=batched)
    ctx = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(),))
    try:
        # With fork, the executor starts every worker at the first submit, so _STATE has been
        # inherited once map() returns. A worker that dies raises BrokenProcessPool here.
        if grouped:
            parts = pool.map(_run_group, lockstep_groups(jobs, workers))
            _STATE.clear()
            for part in parts:
                yield from part
            return
        results = pool.map(_run, jobs)
        _STATE.clear()
        yield from results
    finally:
        _STATE.clear()
        pool.shutdown(wait=True, cancel_futures=True)

""":func:`pgclaims.measure.parallel.chunk_map` on Ray (``--backend ray``).

What a measurement needs in a worker (the agent, the caller's ``reduce``, the seed, the
sampling path and the agent's environment spec) is put in the object store once per
``chunk_map`` call. Jobs go out as one-CPU Ray tasks, one chunk each (one group of
:data:`pgclaims.measure.batched.NSIM` chunks on the batched MuJoCo path), carrying only their
(pairs, rng path, argument) and a reference to that object. A worker process fetches it at its
first task of the measurement and keeps the :class:`FrozenSampler` it builds, with its
environment and policy, for the measurement's later tasks, so the agent crosses to each
worker once, not with every chunk. Tasks rather than long-lived actors: a task holds its CPU
only while it runs, so the chunks of several measurements (xdist workers sharing one cluster)
interleave on the cluster's CPUs instead of each pinning a pool of its own.

Gradient studies and the true-value fit call ``chunk_map`` directly; value, step and landscape
studies through :func:`pgclaims.measure.parallel.study_map`, so under Ray their held-out
batches, step batches and every landscape point's evaluation (each job with its own perturbed
policy module) are tasks too, not work for the driver.

Results are collected in job order and each chunk depends only on its rng path, so the numbers
are bit-identical to the local backend's. A task whose worker dies (killed, out of memory, a
lost node) is re-run by Ray up to :data:`pgclaims.agents.backend.RETRIES` times; an exception
raised by ``reduce`` is not retried and reaches the caller as it would locally.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch

from pgclaims.agents import backend
from pgclaims.agents.agent import Agent
from pgclaims.agents.rollout import Batch
from pgclaims.measure.batched import supports
from pgclaims.measure.sampler import FrozenSampler, lockstep_groups, reduce_group

IN_FLIGHT = 2
"""Tasks queued per CPU slot: enough that no CPU waits for the driver between chunks, few
enough that finished results do not pile up in the object store."""


@dataclass(frozen=True)
class Measurement:
    """What every task of one ``chunk_map`` call shares (put in the object store once)."""

    agent: Agent
    reduce: Callable[[Batch, Any], Any]
    seed: int
    batched: bool
    env_spec: Any
    """The driver's gymnasium spec of the agent's env id: ids registered at run time (the
    adapters' action-clipped ids) exist in the driver's registry only."""


_HELD: dict[str, Any] = {}
"""In a Ray worker process: the measurement (``key``) whose sampler it holds."""


def _held(key: str, ref: Any) -> dict[str, Any]:
    if _HELD.get("key") != key:
        if "sampler" in _HELD:
            _HELD["sampler"].close()
        _HELD.clear()
        m: Measurement = backend.import_ray().get(ref)
        env_id = m.agent.config.env_id
        if env_id not in gym.registry and m.env_spec is not None:
            gym.registry[env_id] = m.env_spec
        torch.set_num_threads(1)
        _HELD.update(key=key, sampler=FrozenSampler(m.agent, m.batched), m=m)
    return _HELD


def _run(key: str, refs: list[Any], group: Sequence[tuple[int, tuple[int, ...], Any]]
         ) -> list[Any]:
    """The task: ``reduce`` of each job's batch. ``refs`` wraps the measurement's reference in
    a list so that Ray passes the reference, not the fetched object, to every task."""
    held = _held(key, refs[0])
    m: Measurement = held["m"]
    return reduce_group(held["sampler"], m.reduce, group, m.seed)


_TASK: dict[str, Any] = {}


def _task(ray: Any) -> Any:
    if "run" not in _TASK:
        _TASK["run"] = ray.remote(num_cpus=1, max_retries=backend.RETRIES)(_run)
    return _TASK["run"]


def cpu_slots(ray: Any) -> int:
    """The cluster's CPUs (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def chunk_map(agent: Agent, reduce: Callable[[Batch, Any], Any],
              jobs: Sequence[tuple[int, tuple[int, ...], Any]], seed: int,
              workers: int | None, batched: bool) -> Iterator[Any]:
    """``reduce(batch, arg)`` of each job's batch on the connected Ray cluster, in job order.

    ``workers``: CPU slots to plan for (default: the cluster's CPUs); :data:`IN_FLIGHT` tasks
    per slot are kept queued. ``batched``: the sampling path, already resolved by the caller.
    """
    if not jobs:
        return
    ray = backend.connect_ray()
    slots = workers or cpu_slots(ray)
    grouped = batched and supports(agent.config.env_id)
    groups = lockstep_groups(jobs, slots) if grouped else [jobs[s:s + 1] for s in range(len(jobs))]
    spec = gym.registry.get(agent.config.env_id)
    ref = ray.put(Measurement(agent, reduce, seed, batched, spec))
    key, run = ref.hex(), _task(ray)
    todo = iter(groups)
    pending: deque[Any] = deque()
    try:
        for group in todo:
            pending.append(run.remote(key, [ref], group))
            if len(pending) >= IN_FLIGHT * slots:
                break
        while pending:
            part = ray.get(pending.popleft())
            following = next(todo, None)
            if following is not None:
                pending.append(run.remote(key, [ref], following))
            yield from part
    finally:
        for left in pending:
            ray.cancel(left)

"""Speed of the batched MuJoCo sampler (:mod:`pgclaims.measure.batched`), as ratios measured in
the same run (absolute times depend on the machine and its load; ratios much less).

For Hopper-v5, Walker2d-v5 and Humanoid-v5, pairs/s with the policy in the loop of
``chunk_map(..., batched=True)`` against

- raw MuJoCo: the same chunks' actions replayed by ``mj_step(nstep=frame_skip)`` alone on plain
  ``MjData`` (no policy, no observations, no rewards; a reset at every episode end), on the
  same number of processes. Target >= 0.85 (raw time / batched time).
- the previous sampler: ``chunk_map(..., batched=False)``, the gymnasium path, same workers.

Each is timed on 2 worker processes and on 1 (the 1-process ratio is per-core efficiency, robust
to other processes taking cores). Beside wall time, every run's CPU time (this process and its
reaped workers, ``getrusage``) is recorded: on a machine whose cores other jobs share, the ratio
of CPU times is the figure that still measures the sampler rather than the scheduler::

    pytest benchmarks/bench_sampler.py -p no:cacheprovider -s
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import mujoco
import numpy as np
import pytest
import torch
from bench_measure import interleaved, report

from pgclaims.agents.agent import Agent, TrainConfig, make_agent
from pgclaims.agents.fixtures import FixtureError, load
from pgclaims.agents.rollout import Batch
from pgclaims.measure.parallel import chunk_map
from pgclaims.measure.sims import MUJOCO_ENVS, Task

SEED = 7
WORKERS = 2
PAIRS = {"Hopper-v5": 8 * 1024, "Walker2d-v5": 8 * 1024, "Humanoid-v5": 4 * 1024}
CHUNK_PAIRS = 1024

_REPLAY: dict[str, Any] = {}
"""What the forked raw-MuJoCo workers inherit: the task and the recorded chunks."""


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its reaped children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def with_cpu(cpu: dict[str, list[float]], name: str, run: Callable[[], float]
             ) -> Callable[[], float]:
    """``run`` (returning wall seconds) that also appends its CPU seconds to ``cpu[name]``."""
    def timed() -> float:
        c0 = cpu_seconds()
        wall = run()
        cpu.setdefault(name, []).append(cpu_seconds() - c0)
        return wall
    return timed


def agent_for(env_id: str) -> tuple[Agent, str]:
    torch.set_num_threads(1)
    try:
        return load(env_id, "ppo", 0, 450), f"fixture {env_id} ppo seed 0 iteration 450"
    except FixtureError:
        return make_agent(TrainConfig.create(env_id, "ppo", 0)), f"fresh {env_id} agent"


def _record(batch: Batch, _: Any) -> tuple[np.ndarray, np.ndarray]:
    return batch.actions.astype(np.float64), batch.ends


def _pairs(batch: Batch, _: Any) -> int:
    return len(batch)


def _replay(index: int) -> int:
    """Raw MuJoCo for recorded chunk ``index``: its actions, a reset at its episode ends."""
    task: Task = _REPLAY["task"]
    actions, ends = _REPLAY["chunks"][index]
    m, fs = task.model, task.frame_skip
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    for a, end in zip(actions, ends, strict=True):
        d.ctrl[:] = a
        mujoco.mj_step(m, d, nstep=fs)
        if end:
            mujoco.mj_resetData(m, d)
            mujoco.mj_forward(m, d)
    return len(actions)


def raw_mujoco(n_chunks: int, workers: int) -> float:
    t0 = time.perf_counter()
    if workers == 1:
        n = sum(_replay(i) for i in range(n_chunks))
    else:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            n = sum(pool.map(_replay, range(n_chunks)))
    assert n == n_chunks * CHUNK_PAIRS
    return time.perf_counter() - t0


def sampled(agent: Agent, jobs: list, workers: int, batched: bool) -> float:
    t0 = time.perf_counter()
    n = sum(chunk_map(agent, _pairs, jobs, SEED, workers, batched=batched))
    assert n == sum(j[0] for j in jobs)
    return time.perf_counter() - t0


@pytest.mark.benchmark(group="batched-sampler")
@pytest.mark.parametrize("env_id", MUJOCO_ENVS)
def test_batched_sampler_throughput(benchmark: Any, env_id: str) -> None:
    agent, source = agent_for(env_id)
    n_chunks = PAIRS[env_id] // CHUNK_PAIRS
    jobs = [(CHUNK_PAIRS, (200, c), None) for c in range(n_chunks)]
    _REPLAY.update(task=Task(env_id),
                   chunks=list(chunk_map(agent, _record, jobs, SEED, 1, batched=True)))
    runs = {
        "batched": lambda: sampled(agent, jobs, WORKERS, True),
        "previous": lambda: sampled(agent, jobs, WORKERS, False),
        "raw": lambda: raw_mujoco(n_chunks, WORKERS),
        "batched_1": lambda: sampled(agent, jobs, 1, True),
        "previous_1": lambda: sampled(agent, jobs, 1, False),
        "raw_1": lambda: raw_mujoco(n_chunks, 1)}
    cpu: dict[str, list[float]] = {}
    try:
        med = interleaved(benchmark, rounds=3,
                          **{k: with_cpu(cpu, k, run) for k, run in runs.items()})
    finally:
        _REPLAY.clear()
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    benchmark.extra_info["cpu_seconds"] = cpu
    n = n_chunks * CHUNK_PAIRS
    report(benchmark, f"{env_id} batched sampler / raw MuJoCo ({WORKERS} processes)",
           med["raw"] / med["batched"], ">= 0.85", agent=source, pairs_per_round=n,
           raw_over_batched_1_process=round(med["raw_1"] / med["batched_1"], 3),
           cpu_raw_over_batched=round(cpu_med["raw"] / cpu_med["batched"], 3),
           cpu_raw_over_batched_1_process=round(cpu_med["raw_1"] / cpu_med["batched_1"], 3),
           cpu_batched_over_previous=round(cpu_med["previous"] / cpu_med["batched"], 2),
           batched_over_previous=round(med["previous"] / med["batched"], 2),
           batched_over_previous_1_process=round(med["previous_1"] / med["batched_1"], 2),
           pairs_per_s={k: round(n / v) for k, v in med.items()},
           cpu_count=os.cpu_count())

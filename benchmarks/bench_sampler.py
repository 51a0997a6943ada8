"""Speed of the batched MuJoCo sampler (:mod:`pgclaims.measure.batched`), as ratios measured in
the same run (absolute times depend on the machine and its load; ratios much less).

For Hopper-v5, Walker2d-v5 and Humanoid-v5, pairs/s with the policy in the loop of
``chunk_map(..., batched=True)`` against

- raw MuJoCo: the same chunks' actions replayed by ``mj_step(nstep=frame_skip)`` alone on plain
  ``MjData`` (no policy, no observations, no rewards), every episode started from the state the
  sampler started it from (``mj_resetData``, the chunk's reset noise recomputed from its
  documented stream, ``mj_forward``), on the same number of processes. Target >= 0.85 (raw
  time / batched time).
- the previous sampler: ``chunk_map(..., batched=False)``, the gymnasium path, same workers.

The replay's actions are open loop, so its physics is the sampler's only if it replays the
sampler's trajectories: replayed from the noiseless initial state (this benchmark until
2026-12), Hopper-v5 fell and touched the floor twice as often (12% more physics time, Humanoid
7%), which flattered the ratio. That replay is still timed on 1 process, for continuity
(``cpu_raw_over_batched_1_process_noiseless_replay``).

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
from pgclaims.measure.sampler import rng_for
from pgclaims.measure.sims import MUJOCO_ENVS, Task

SEED = 7
WORKERS = 2
PAIRS = {"Hopper-v5": 8 * 1024, "Walker2d-v5": 8 * 1024, "Humanoid-v5": 4 * 1024}
CHUNK_PAIRS = 1024

_REPLAY: dict[str, Any] = {}
"""What the forked raw-MuJoCo workers inherit: the task and the recorded chunks (actions,
episode ends, each episode's starting qpos and qvel)."""


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


def start_states(task: Task, path: tuple[int, ...], episodes: int
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (qpos, qvel) each of a chunk's first ``episodes`` episodes starts from: its reset
    stream as documented in :mod:`pgclaims.measure.batched` (``default_rng`` of the chunk
    Generator's first ``integers(2**31 - 1)``, then ``uniform(nq)`` and ``uniform(nv)`` per
    reset)."""
    reset_rng = np.random.default_rng(int(rng_for(SEED, *path).integers(2**31 - 1)))
    s = task.noise_scale
    return [(task.init_qpos + reset_rng.uniform(low=-s, high=s, size=task.nq),
             task.init_qvel + reset_rng.uniform(low=-s, high=s, size=task.nv))
            for _ in range(episodes)]


def _replay(index: int, noiseless: bool = False) -> int:
    """Raw MuJoCo for recorded chunk ``index``: its actions, each episode from its own start
    (``noiseless``: from the model's initial state, the replay of this benchmark until 2026-12,
    with a reset after every episode end)."""
    task: Task = _REPLAY["task"]
    actions, ends, starts = _REPLAY["chunks"][index]
    m, fs = task.model, task.frame_skip
    d = mujoco.MjData(m)
    if not noiseless:
        d.qpos[:], d.qvel[:] = starts[0]
    mujoco.mj_forward(m, d)
    episode = 0
    for a, end in zip(actions, ends, strict=True):
        d.ctrl[:] = a
        mujoco.mj_step(m, d, nstep=fs)
        if end and noiseless:
            mujoco.mj_resetData(m, d)
            mujoco.mj_forward(m, d)
        elif end and episode + 1 < len(starts):
            episode += 1
            mujoco.mj_resetData(m, d)
            d.qpos[:], d.qvel[:] = starts[episode]
            mujoco.mj_forward(m, d)
    return len(actions)


def _replay_noiseless(index: int) -> int:
    return _replay(index, noiseless=True)


def raw_mujoco(n_chunks: int, workers: int, noiseless: bool = False) -> float:
    replay = _replay_noiseless if noiseless else _replay
    t0 = time.perf_counter()
    if workers == 1:
        n = sum(replay(i) for i in range(n_chunks))
    else:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            n = sum(pool.map(replay, range(n_chunks)))
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
    task = Task(env_id)
    recorded = chunk_map(agent, _record, jobs, SEED, 1, batched=True)
    _REPLAY.update(task=task, chunks=[
        (actions, ends, start_states(task, path, 1 + int(ends[:-1].sum())))
        for (actions, ends), (_, path, _) in zip(recorded, jobs, strict=True)])
    runs = {
        "batched": lambda: sampled(agent, jobs, WORKERS, True),
        "previous": lambda: sampled(agent, jobs, WORKERS, False),
        "raw": lambda: raw_mujoco(n_chunks, WORKERS),
        "batched_1": lambda: sampled(agent, jobs, 1, True),
        "previous_1": lambda: sampled(agent, jobs, 1, False),
        "raw_1": lambda: raw_mujoco(n_chunks, 1),
        "raw_noiseless_1": lambda: raw_mujoco(n_chunks, 1, noiseless=True)}
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
           cpu_raw_over_batched_1_process_noiseless_replay=round(
               cpu_med["raw_noiseless_1"] / cpu_med["batched_1"], 3),
           cpu_batched_over_previous=round(cpu_med["previous"] / cpu_med["batched"], 2),
           batched_over_previous=round(med["previous"] / med["batched"], 2),
           batched_over_previous_1_process=round(med["previous_1"] / med["batched_1"], 2),
           pairs_per_s={k: round(n / v) for k, v in med.items()},
           cpu_count=os.cpu_count())

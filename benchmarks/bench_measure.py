"""Speed of the measurement package, each figure as a ratio against a baseline timed in the same
run (absolute times depend on the machine and its load; ratios much less).

Run without xdist, with ``-s`` to see the ratios (select by name: given as a file path, the
module is collected twice, by pytest and by the hook in ``benchmarks/conftest.py``)::

    pytest benchmarks -k bench_measure -s -p no:xdist

- ``test_sampler_throughput``: pairs/s of the pgclaims sampler (2 worker processes) over a
  plain single-env gymnasium loop on Hopper-v5. Target >= 1.5x.
- ``test_figure_1_2_overhead``: the whole Figure 1+2 curve (10 estimates on the N grid, true
  gradients leave-one-pool-out) over just sampling the same pairs with the same sampler.
  Target <= 1.3x. The default is reduced (N up to 16K, 1.6e5-pair true gradient, ~2e5 pairs);
  ``PGCLAIMS_BENCH_FULL=1`` runs the full size (N up to 1e5, 1e6-pair true gradient).

Both use the committed Hopper-v5 PPO fixture (seed 0, iteration 450) when it exists, else a
fresh agent. Peak memory is measured by ``benchmarks/peak_memory.py``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import pytest
import torch

from pgclaims.agents.agent import Agent, TrainConfig, make_agent
from pgclaims.agents.fixtures import FixtureError, load
from pgclaims.agents.rollout import Batch
from pgclaims.measure.gradients import gradient_study
from pgclaims.measure.parallel import chunk_map
from pgclaims.measure.sampler import CHUNK

WORKERS = 2
SEED = 7
FULL = os.environ.get("PGCLAIMS_BENCH_FULL") == "1"


@pytest.fixture(scope="module")
def hopper() -> tuple[Agent, str]:
    torch.set_num_threads(1)
    try:
        return load("Hopper-v5", "ppo", 0, 450), "fixture Hopper-v5 ppo seed 0 iteration 450"
    except FixtureError:
        return make_agent(TrainConfig.create("Hopper-v5", "ppo", 0)), "fresh Hopper-v5 agent"


def _pairs(batch: Batch, _: Any) -> int:
    return len(batch)


def sample_only(agent: Agent, jobs: list, workers: int) -> float:
    """Seconds to draw ``jobs`` with the measurement sampler, reducing each to its length."""
    t0 = time.perf_counter()
    n = sum(chunk_map(agent, _pairs, jobs, SEED, workers))
    assert n == sum(j[0] for j in jobs)
    return time.perf_counter() - t0


def plain_loop(n: int) -> float:
    """Seconds for ``n`` steps of gymnasium's Hopper-v5 with random actions and resets."""
    env = gym.make("Hopper-v5")
    env.reset(seed=SEED)
    env.action_space.seed(SEED)
    t0 = time.perf_counter()
    for _ in range(n):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - t0
    env.close()
    return elapsed


def interleaved(benchmark: Any, rounds: int, **runs: Callable[[], float]) -> dict[str, float]:
    """Run every timed callable once per round, alternating, under one benchmark; returns the
    median seconds of each (alternation spreads a loaded machine's drift over all of them)."""
    times: dict[str, list[float]] = {name: [] for name in runs}

    def one_round() -> None:
        for name, run in runs.items():
            times[name].append(run())

    benchmark.pedantic(one_round, rounds=rounds, iterations=1)
    benchmark.extra_info["seconds"] = times
    return {name: statistics.median(t) for name, t in times.items()}


def report(benchmark: Any, title: str, ratio: float, target: str, **info: Any) -> None:
    benchmark.extra_info.update(ratio=ratio, target=target, load=os.getloadavg(), **info)
    lines = [f"{title}: {ratio:.2f}x (target {target})"]
    lines += [f"    {k}: {v}" for k, v in info.items()]
    print("\n" + "\n".join(lines))


@pytest.mark.benchmark(group="sampler")
def test_sampler_throughput(benchmark: Any, hopper: tuple[Agent, str]) -> None:
    agent, source = hopper
    chunks = 16
    n = chunks * CHUNK
    jobs = [(CHUNK, (100, c), None) for c in range(chunks)]
    med = interleaved(benchmark, rounds=3, plain=lambda: plain_loop(n),
                      sampler=lambda: sample_only(agent, jobs, WORKERS),
                      one_worker=lambda: sample_only(agent, jobs, 1))
    ratio = med["plain"] / med["sampler"]
    # On a machine whose other processes take cores, the workers get less than WORKERS cores
    # while the plain loop gets one; the one-worker ratio (per-core efficiency) is robust to
    # that, and WORKERS times it is what idle cores would give.
    per_core = med["plain"] / med["one_worker"]
    report(benchmark, f"sampler throughput, {WORKERS} workers / plain gymnasium loop", ratio,
           ">= 1.5", agent=source, pairs_per_round=n,
           plain_pairs_per_s=round(n / med["plain"]),
           sampler_pairs_per_s=round(n / med["sampler"]),
           one_worker_over_plain=round(per_core, 3),
           idle_cores_projection=round(WORKERS * per_core, 2), cpu_count=os.cpu_count())


def figure_1_2_protocol() -> dict[str, Any]:
    """Figure 1+2: 10 estimates on the N grid; true gradient >= ``true_grad_n`` pairs."""
    if FULL:
        return {"n_grid": (128, 512, 2048, 8192, 32_768, 100_000), "repeats": 10,
                "true_grad_n": 1_000_000, "true_value_n": 0}
    return {"n_grid": (128, 512, 2048, 8192, 16_384), "repeats": 10,
            "true_grad_n": 163_840, "true_value_n": 0}


def study_jobs(n_grid: tuple[int, ...], repeats: int, true_grad_n: int, **_: Any) -> list:
    """The chunks :func:`gradient_study` draws for this protocol (same sizes, same rng paths)."""
    small = sorted(n for n in n_grid if n < CHUNK)
    n_max = max(-(-n // CHUNK) * CHUNK for n in n_grid)
    jobs = []
    for i in range(repeats):
        jobs += [(n, (0, i, k), None) for k, n in enumerate(small)]
        jobs += [(CHUNK, (1, i, c), None) for c in range(n_max // CHUNK)]
    extra = max(0, true_grad_n - (repeats - 1) * n_max)
    return jobs + [(CHUNK, (3, c), None) for c in range(-(-extra // CHUNK))]


@pytest.mark.benchmark(group="figure-1-2")
def test_figure_1_2_overhead(benchmark: Any, hopper: tuple[Agent, str]) -> None:
    agent, source = hopper
    protocol = figure_1_2_protocol()
    jobs = study_jobs(**protocol)
    pairs = sum(j[0] for j in jobs)
    studies = []

    def study() -> float:
        t0 = time.perf_counter()
        studies.append(gradient_study(agent, **protocol, seed=SEED, workers=WORKERS))
        return time.perf_counter() - t0

    med = interleaved(benchmark, rounds=1 if FULL else 2, study=study,
                      sampling=lambda: sample_only(agent, jobs, WORKERS))
    assert studies[-1].meta["pairs_sampled"] == pairs
    ratio = med["study"] / med["sampling"]
    report(benchmark, "Figure 1+2 curve / sampling its pairs", ratio, "<= 1.3",
           agent=source, size="full" if FULL else "reduced (PGCLAIMS_BENCH_FULL=1 for full)",
           pairs=pairs, true_grad_pairs=studies[-1].meta["true_grad_pairs"],
           n=studies[-1].n.tolist(), workers=WORKERS,
           study_s=round(med["study"], 1), sampling_s=round(med["sampling"], 1))

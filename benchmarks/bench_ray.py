"""Wall time of a Figure 1+2 curve under ``--backend ray`` over ``--backend local``, timed in
the same run on the same machine (target <= 1.15x)::

    pytest benchmarks/bench_ray.py -p no:xdist -s

Once per sampling path: gymnasium, and the batched MuJoCo path of :mod:`pgclaims.measure.batched`.
Both sides get 2 CPUs: the local backend 2 forked workers, Ray a local cluster of 2 CPUs
(:func:`pgclaims.agents.backend.start_local_ray`: its workers at the caller's priority, as the
local workers are). Ray's start and its workers' first imports are paid once per process, not
per measurement: they are timed separately (``ray_init_s``; ``ray_cold_s``, the test's first
ray curve, on fresh workers in the first test) and the ratio compares warm curves, alternating
local and ray rounds. The curve: 10 estimates at N = 128 .. 8192, true gradients
leave-one-pool-out from >= 81920 pairs (96512 pairs per curve), on the committed Hopper-v5 PPO
fixture (seed 0, iteration 450) when it exists, else a fresh agent. The benchmark asserts only
that both backends ran and gave the same numbers.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import statistics
import time
from typing import Any

import numpy as np
import pytest
import torch

from pgclaims.agents import backend
from pgclaims.agents.agent import Agent, TrainConfig, make_agent
from pgclaims.agents.fixtures import FixtureError, load
from pgclaims.measure import sampler
from pgclaims.measure.gradients import GradientStudy, gradient_study

WORKERS = 2
SEED = 11
CURVE = {"n_grid": (128, 512, 2048, 8192), "repeats": 10, "true_grad_n": 81_920,
         "true_value_n": 0}
ROUNDS = 3


def _agent() -> tuple[Agent, str]:
    try:
        return load("Hopper-v5", "ppo", 0, 450), "fixture Hopper-v5 ppo seed 0 iteration 450"
    except FixtureError:
        return make_agent(TrainConfig.create("Hopper-v5", "ppo", 0)), "fresh Hopper-v5 agent"


def _curve(agent: Agent, name: str) -> tuple[float, GradientStudy]:
    with backend.using(name):
        t0 = time.perf_counter()
        study = gradient_study(agent, **CURVE, seed=SEED, workers=WORKERS)
        return time.perf_counter() - t0, study


def _same(a: Any, b: Any) -> bool:
    """Field by field: arrays exactly (NaN equal to NaN), dicts of arrays key by key, the rest
    (``meta`` included) with ==."""
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif isinstance(x, dict) and f.name != "meta":
            if x.keys() != y.keys() or not all(np.array_equal(x[k], y[k]) for k in x):
                return False
        elif x != y:
            return False
    return True


def _alternate(benchmark: Any, measure: Any, *also: Any
               ) -> tuple[dict[str, float], Any, dict[str, list[float]]]:
    """ROUNDS rounds of ``measure(name)`` (-> (seconds, result)) for local then ray; asserts
    that every result (and ``also``) equals the first local one. Returns the median seconds per
    backend, that result and every round's seconds."""
    times: dict[str, list[float]] = {"local": [], "ray": []}
    results: list[Any] = []

    def one_round() -> None:
        for name in ("local", "ray"):
            seconds, result = measure(name)
            times[name].append(seconds)
            results.append(result)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    assert len(times["local"]) == len(times["ray"]) == ROUNDS
    assert all(_same(results[0], r) for r in [*results[1:], *also])
    return {name: statistics.median(t) for name, t in times.items()}, results[0], times


@pytest.mark.benchmark(group="backend")
@pytest.mark.parametrize("path", ["gymnasium", "batched"])
def test_figure_1_2_ray_over_local(benchmark: Any, path: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    torch.set_num_threads(1)
    monkeypatch.setattr(sampler, "BATCHED", path == "batched")
    agent, source = _agent()
    t0 = time.perf_counter()
    if not ray.is_initialized():
        backend.start_local_ray(num_cpus=WORKERS)
    init_s = time.perf_counter() - t0
    cold_s, first = _curve(agent, "ray")
    med, reference, times = _alternate(benchmark, lambda name: _curve(agent, name), first)
    ratio = med["ray"] / med["local"]
    info = {"agent": source, "sampler": path, "pairs": int(reference.meta["pairs_sampled"]),
            "workers": WORKERS, "rounds": ROUNDS, "seconds": times,
            "local_s": round(med["local"], 2), "ray_s": round(med["ray"], 2),
            "ray_init_s": round(init_s, 2), "ray_cold_s": round(cold_s, 2),
            "load": os.getloadavg(), "cpu_count": os.cpu_count()}
    benchmark.extra_info.update(ratio=ratio, target="<= 1.15", **info)
    print(f"\nFigure 1+2 curve ({path} sampler), ray / local wall time: {ratio:.3f}x "
          "(target <= 1.15)")
    for k, v in info.items():
        print(f"    {k}: {v}")


LANDSCAPE = {"steps": (0.0, 1.5, 3.0), "ns": (2048, 4096), "ref_n": 8192, "seed": 3}
"""The default scale's landscape: 3x3 points at 2K and 4K pairs against an 8K reference."""


def _landscape(agent: Agent, name: str) -> tuple[float, Any]:
    landscape = importlib.import_module("pgclaims.measure.landscape").landscape
    with backend.using(name):
        t0 = time.perf_counter()
        result = landscape(agent, **LANDSCAPE)
        return time.perf_counter() - t0, result


@pytest.mark.benchmark(group="backend")
def test_landscape_ray_over_local(benchmark: Any) -> None:
    """A landscape's wall time under ray over local. Locally one study is one serial task (the
    suite spreads studies over the cores with xdist); under ray its points at one N are Ray
    tasks on 2 CPUs, so the ratio may be below 1. Same numbers on both, asserted."""
    ray = pytest.importorskip("ray")
    torch.set_num_threads(1)
    agent, source = _agent()
    if not ray.is_initialized():
        backend.start_local_ray(num_cpus=WORKERS)
    _landscape(agent, "ray")  # warm the Ray workers' imports
    med, _, times = _alternate(benchmark, lambda name: _landscape(agent, name))
    ratio = med["ray"] / med["local"]
    info = {"agent": source, "landscape": {k: list(v) if isinstance(v, tuple) else v
                                           for k, v in LANDSCAPE.items()},
            "workers": WORKERS, "rounds": ROUNDS, "seconds": times,
            "local_s": round(med["local"], 2), "ray_s": round(med["ray"], 2),
            "load": os.getloadavg(), "cpu_count": os.cpu_count()}
    benchmark.extra_info.update(ratio=ratio, **info)
    print(f"\nlandscape (3x3 at 2K, 4K; 8K reference), ray / local wall time: {ratio:.3f}x")
    for k, v in info.items():
        print(f"    {k}: {v}")

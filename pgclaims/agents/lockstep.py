"""Several training runs of one environment in lockstep: one collector call per iteration.

Each iteration, :func:`train_together` draws the next batch of every unfinished run in one
call of the direct collector (:class:`pgclaims.agents.collector.Collector`): the simulations of
all runs are stepped together, one ``mujoco.batch`` call per step for Hopper and Walker2d, so
the per-step Python cost of collecting is paid once for the group instead of once per run.
Each run's policy is evaluated on its own row with its own arithmetic and its normalizers are
its own rows, so every batch is the one the run would collect alone; then each run's update
runs on its own. A run's directory ends up exactly as :func:`pgclaims.agents.train.train`
leaves it (the same checkpoints, bit for bit, at the same iterations; tests/test_collector.py),
and an interrupted group resumes every run from its own ``latest.safetensors``.

One process-wide state needs care: the torch RNG. A checkpoint stores
``torch.get_rng_state()``, which in a lone run is the state its initialization left (training
draws nothing from torch). Each run's state is kept here and put in place before its update and
its saves.

The run directories get what :func:`pgclaims.agents.train.train` gives its own: each is locked
for the group's process (:mod:`pgclaims.agents.runlock`), its files' digests are recorded in its
``sha256.json``, an iteration whose loss or parameters are not finite stops the group naming it
before anything of that iteration is written, and a run found finished is not written again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import torch

from pgclaims.agents import checkpoint, digests, runlock
from pgclaims.agents.agent import Agent, TrainConfig, learn, training_stream
from pgclaims.agents.collector import Collector
from pgclaims.agents.hyper import check_numbers
from pgclaims.agents.sims import supports
from pgclaims.agents.train import (
    _check_finite,
    _prepare,
    _resume_or_start,
    ckpt_name,
    write_json,
)


class _Run:
    """One run of the group: its agent, directory and torch RNG state."""

    def __init__(self, config: TrainConfig, run_dir: Path) -> None:
        self.config = config
        self.dir = run_dir
        self.agent = _resume_or_start(config, run_dir)
        self.torch_rng = torch.get_rng_state()
        if not (run_dir / "config.json").exists():
            write_json(run_dir / "config.json", config.to_dict())
            digests.record(run_dir, ["config.json"])

    @property
    def done(self) -> bool:
        return self.agent.iteration >= self.config.iterations

    def save(self, name: str) -> None:
        torch.set_rng_state(self.torch_rng)
        checkpoint.save(self.agent, self.dir / name)
        digests.record(self.dir, [name])


LOCKSTEP = 10
"""Most runs a lockstep group holds: beyond ~10 the per-step Python cost it shares is already
small beside the physics of the group (docs/benchmarks.md)."""

T = TypeVar("T")


def groups_of(items: Sequence[T], kind: Callable[[T], Hashable], env_id: Callable[[T], str],
              jobs: int) -> list[list[T]]:
    """``items`` (runs to train) cut into lockstep groups: per ``kind`` (an environment, and
    a batch size where runs differ in it, so that a group's runs end together), at most
    :data:`LOCKSTEP` runs, and at least ``jobs`` groups of a kind that has that many runs (so
    that ``jobs`` processes have work); environments the collector does not step directly
    train alone."""
    by_kind: dict[Hashable, list[T]] = {}
    for item in items:
        by_kind.setdefault(kind(item), []).append(item)
    groups: list[list[T]] = []
    for rs in by_kind.values():
        if not supports(env_id(rs[0])):
            groups += [[r] for r in rs]
            continue
        n = max(-(-len(rs) // LOCKSTEP), min(jobs, len(rs)))
        groups += [rs[i::n] for i in range(n)]
    return groups


def train_together(configs: Sequence[TrainConfig], run_dirs: Sequence[str | os.PathLike[str]],
                   *, save_every: int = 10, on_finish: Callable[[Agent, Path], Any] | None = None,
                   stop_after: int | None = None) -> list[Agent]:
    """Train (or resume) every config in its run directory, all in lockstep; the same files as
    :func:`pgclaims.agents.train.train` of each alone. All configs need one environment id that
    the collector steps directly. ``on_finish(agent, run_dir)`` is called as each run ends;
    ``stop_after`` ends the call after that many lockstep iterations (to test interruption)."""
    if len(configs) != len(run_dirs) or not configs:
        raise ValueError(f"one run directory per config ({len(configs)} configs, "
                         f"{len(run_dirs)} directories)")
    env_ids = {c.env_id for c in configs}
    if len(env_ids) != 1 or not supports(next(iter(env_ids))):
        raise ValueError(f"runs trained together need one directly stepped environment id, "
                         f"got {sorted(env_ids)}")
    for c, d in zip(configs, run_dirs, strict=True):
        check_numbers(c.hyper, unknown=False)  # before any folder is made
        _prepare(Path(d))
    with ExitStack() as locks:
        for d in run_dirs:
            locks.enter_context(runlock.hold(Path(d)))
        return _train_locked(configs, run_dirs, save_every, on_finish, stop_after)


def _train_locked(configs: Sequence[TrainConfig], run_dirs: Sequence[str | os.PathLike[str]],
                  save_every: int, on_finish: Callable[[Agent, Path], Any] | None,
                  stop_after: int | None) -> list[Agent]:
    torch.set_num_threads(1)
    runs = [_Run(c, Path(d)) for c, d in zip(configs, run_dirs, strict=True)]
    collector = Collector(configs[0].env_id, nsim=len(runs), forward="rowwise")
    steps = 0
    try:
        for run in runs:
            if run.done:
                _finish(run, on_finish)
        while any(not r.done for r in runs):
            live = [r for r in runs if not r.done]
            for r in live:
                if r.agent.iteration in r.config.checkpoints:
                    r.save(ckpt_name(r.agent.iteration))
            t0 = time.perf_counter()
            batches = collector.collect([training_stream(r.agent) for r in live])
            share = (time.perf_counter() - t0) / len(live)
            for r, batch in zip(live, batches, strict=True):
                torch.set_rng_state(r.torch_rng)
                row = learn(r.agent, batch, share, time.perf_counter() - share)
                _check_finite(r.agent, row, r.dir)
                r.torch_rng = torch.get_rng_state()
                finished = r.done
                if r.agent.iteration % save_every == 0 or finished:
                    r.save("latest.safetensors")
                    write_json(r.dir / "curve.json", r.agent.curve)
                    digests.record(r.dir, ["curve.json"])
                if finished:
                    _finish(r, on_finish)
            steps += 1
            if stop_after is not None and steps >= stop_after:
                break
    finally:
        collector.close()
    return [r.agent for r in runs]


def _finish(run: _Run, on_finish: Callable[[Agent, Path], Any] | None) -> None:
    last = ckpt_name(run.config.iterations)
    if run.config.iterations in run.config.checkpoints and not (run.dir / last).exists():
        run.save(last)
    if on_finish is not None:
        on_finish(run.agent, run.dir)


__all__ = ["LOCKSTEP", "groups_of", "train_together"]

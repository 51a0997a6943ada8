"""The overall progress of a set of training runs (``pgclaims fixtures train-set`` and
``train-ablations``): a line every minute with the share of the set's work done and its ETA.

A lockstep group reports nothing until its runs finish (two hours for ten Humanoid agents), and
an ETA taken from finished runs is wrong until most are. So the line is read from what every
run writes as it goes, its ``curve.json`` (one row per iteration, rewritten at each save):
whatever process, group or Ray worker trains a run, the set's parent sees its iterations.
Work is counted in CPU seconds where the caller knows what an iteration of a run costs
(``RunWork.cost``: the ablation runs price theirs from the committed runs of the same env,
algorithm, baseline and batch size), else in environment steps (iterations x steps per
iteration, so a 20480-step run weighs ten 2048-step ones). The ETA is the rate since this call
started, so a resumed set is not credited with the iterations it found done. Counted in steps,
it assumes every step costs the same: while cheap runs go first and dear ones wait, the ETA is
low, and the other way round (a Hopper step at 2048 pairs per iteration cost the committed
runs 1.8x one at 20480). Under Ray the parent reads the curves where the workers write them:
the store must be on a filesystem they share, as training there needs anyway.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunWork:
    """One run of the set: where its ``curve.json`` is written, and its size."""

    run_dir: Path
    iterations: int
    steps_per_iteration: int
    finished: Path | None = None
    """A file that exists once the run is complete, for runs whose ``run_dir`` is removed then
    (an ablation run keeps only its curve file)."""
    cost: float | None = None
    """What one iteration is expected to cost, in CPU seconds, or None if not known (the set
    is then weighed by the known runs' median cost per step; with none known, by steps)."""

    @classmethod
    def of(cls, config: Any, run_dir: Path, finished: Path | None = None,
           cost: float | None = None) -> RunWork:
        """The work of a :class:`pgclaims.agents.agent.TrainConfig` trained in ``run_dir``."""
        return cls(run_dir, config.iterations, config.hyper.steps_per_iteration, finished,
                   cost)

    def done(self) -> int:
        """Iterations done: all once ``finished`` exists, else the rows of the curve."""
        if self.finished is not None and self.finished.exists():
            return self.iterations
        return min(iterations_done(self.run_dir), self.iterations)


def iterations_done(run_dir: Path) -> int:
    """Rows of ``run_dir/curve.json`` (0 while it is absent or being replaced)."""
    try:
        return len(json.loads((run_dir / "curve.json").read_text()))
    except (OSError, ValueError):
        return 0


def weights(runs: list[RunWork]) -> list[float]:
    """What an iteration of each run weighs: its ``cost``; a run without one, its steps times
    the median cost per step of the runs with one; every run its steps when none has one."""
    per_step = [r.cost / r.steps_per_iteration for r in runs if r.cost is not None]
    if not per_step:
        return [float(r.steps_per_iteration) for r in runs]
    median = statistics.median(per_step)
    return [r.cost if r.cost is not None else r.steps_per_iteration * median for r in runs]


def clock_text(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


class SetProgress:
    """Say the set's progress every ``every`` seconds while a ``with`` block runs (a daemon
    thread; nothing is said when nothing moved). :meth:`line` is the line itself."""

    def __init__(self, runs: list[RunWork], say: Callable[[str], Any], what: str = "runs",
                 every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.runs, self.say, self.what, self.every, self.clock = runs, say, what, every, clock
        self.weights = weights(runs)
        self.steps = sum(r.iterations * r.steps_per_iteration for r in runs)
        self.total = sum(r.iterations * w for r, w in zip(runs, self.weights, strict=True))
        self.t0 = clock()
        self.start = self.done()
        self._last = self.start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def done(self) -> float:
        """The work of the set's runs done so far (iterations done times their weight)."""
        return sum(r.done() * w for r, w in zip(self.runs, self.weights, strict=True))

    def short(self, done: float | None = None) -> str:
        """"23% done, elapsed 28 min, ETA 1 h 33 min"."""
        done = self.done() if done is None else done
        elapsed = self.clock() - self.t0
        share = done / self.total if self.total else 1.0
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (clock_text((self.total - done) / rate) if rate > 0
               else "not known until an iteration is saved")
        return f"{share:.0%} done, elapsed {clock_text(elapsed)}, ETA {eta}"

    def line(self, done: float | None = None) -> str:
        what = self.what if len(self.runs) != 1 else self.what.removesuffix("s")
        return (f"training {len(self.runs)} {what} ({self.steps:.3g} environment steps): "
                + self.short(done))

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                done = self.done()
                if done != self._last:
                    self._last = done
                    self.say(self.line(done))
            except Exception:  # noqa: BLE001 - a progress line must never end the training
                return

    def __enter__(self) -> SetProgress:
        if self.runs:
            self._thread = threading.Thread(target=self._loop, name="set-progress",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # a say() blocked on a full pipe must not hang exit


__all__ = ["RunWork", "SetProgress", "clock_text", "iterations_done", "weights"]

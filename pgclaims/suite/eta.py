"""The overall progress of a claims run: tests finished, planned pairs done, and an ETA.

The controller (the xdist controller, or the only process without xdist) prints one line such
as ``[main 15:52:10] run: 57/188 tests, ~1.2e7 of ~3.1e7 pairs done, elapsed 8.1 min, ETA
12 min`` to stderr and to ``reports/<run-id>/progress.log``: one when the tests are collected,
then after a finished test when at least ``--eta-every`` seconds (default 30) have passed since
the last line, and a last one with the total elapsed time when the session ends.

Tests are weighted by what they cost, not counted alike. Measurements are cached and shared
between tests: the first test that needs an agent's gradient study at a checkpoint pays for it,
the others read the cache. At collection, :func:`build_ledger` maps each test to the work units
it needs, the :class:`pgclaims.suite.plan.Task` objects of the ``pgclaims plan`` table (agent x
checkpoint x measurement kind, an agent's training, an ablation run; pairs from
:mod:`pgclaims.measure.budget`) and :func:`estimate` counts a unit done once any test needing
it has finished::

    fraction = weight of done units / weight of all units
    ETA      = elapsed x (1 - fraction) / fraction      (unknown while fraction is 0)

A unit's weight is its modelled core-seconds (:func:`pgclaims.suite.costs.task_seconds`, the
model of ``pgclaims plan``) at this machine's rates, measured at collection once a day and kept
in the measurement cache (:func:`pgclaims.suite.costs.machine_rates`), for a run of at least
:data:`pgclaims.suite.costs.RATES_FROM_PAIRS` pairs; else its pairs. Pairs alone mislead on a
run that mixes environments, whose pairs cost different amounts. Replaying the `corrected`
reference run of 2026-12-07 (115 min) from its logs, the ETA at 6, 12, 23, 35 and 46 min was
41%, 47%, 49%, 35%, 20% short of the time still to go by pairs; by modelled core-seconds 3-17%
short with one measurement of the rates, 15-39% with another the same day (Hopper-v5 sampling
5325 vs 3164 pairs/s, each from one cold timing; medians of three since). After the first
hour both weightings agree within minutes.

Under xdist the controller collects nothing: each worker writes its ledger to
``reports/<run-id>/.eta-<worker>.json`` at collection and the controller reads (and deletes)
the first one when that worker reports its collection.

Between tests, the processes that measure report each unit they finish (:func:`unit_done`:
one short ``O_APPEND`` line in ``reports/<run-id>/.units-done``, named in each process by
:func:`record_units_to`); it counts as done even while the test that asked for it still runs.
A timer on the controller also prints a line every ``--eta-every`` seconds, so a run whose
first tests wait on many measurements is not silent for minutes; it never suspends pytest's
capture (:func:`pgclaims.suite.plugin._echo`).

Approximations:

- A test needs the units that :data:`pgclaims.suite.plan.USES` lists for its claim, restricted
  to the protocol, env, algo and checkpoint its parameters fix. A parameter of the test's own
  (``grad.decays_with_task``'s ``easier`` env) does not narrow it: such a test counts the units
  of every env at its checkpoint.
- A unit is done when a process reports it or when the first test needing it finishes,
  whatever the outcome (a test that fails before measuring marks units done that a later test
  still computes), and a measurement found in the cache from an earlier run counts as much as
  one computed now: the first ETAs of a partly cached run are too short until uncached work
  dominates.
- Weighed by pairs (a small run, or rates that cannot be measured), pairs stand for time: a
  training pair and a frozen-sampler pair weigh the same, a Humanoid-v5 pair as a Hopper-v5
  one, and a gradient study's reductions and true-value fit are not counted. Weighed by
  core-seconds, the model's own approximations apply (:mod:`pgclaims.suite.costs`).
- Tests of claims without a plan entry (a project's own registered claims) and tests that are
  not claims tests cost nothing; a run in which no test has planned pairs weighs its tests
  equally (the line then says so instead of naming pairs). If the plan cannot be built, the
  same fallback applies and the first line gives the reason.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgclaims.suite.progress import Sink, log_file_sink, stamp

if TYPE_CHECKING:
    from pgclaims.suite.plan import Plan
    from pgclaims.suite.scales import Scale

EVERY = 30.0
"""Default seconds between two progress lines of the controller."""


@dataclass(frozen=True)
class Ledger:
    """What each collected test needs: ``tests`` maps a test's nodeid to the idents of its work
    units (:attr:`pgclaims.suite.plan.Task.ident`), ``pairs`` each unit's state-action pairs."""

    tests: Mapping[str, tuple[str, ...]]
    pairs: Mapping[str, int]
    note: str = ""
    """Why tests are weighted equally when the plan could not be built (else empty)."""
    seconds: Mapping[str, float] = field(default_factory=dict)
    """Each unit's modelled core-seconds on this machine (:func:`pgclaims.suite.costs.
    task_seconds`); empty when the rates were not measured (the units then weigh by pairs)."""

    def only(self, nodeids: Iterable[str]) -> Ledger:
        """The ledger of the tests ``nodeids`` (those the run will execute)."""
        tests = {n: tuple(self.tests.get(n, ())) for n in nodeids}
        used = {u for units in tests.values() for u in units}
        return Ledger(tests, {u: p for u, p in self.pairs.items() if u in used}, self.note,
                      {u: s for u, s in self.seconds.items() if u in used})

    def to_json(self) -> dict[str, Any]:
        return {"tests": {n: list(u) for n, u in self.tests.items()}, "pairs": dict(self.pairs),
                "note": self.note, "seconds": dict(self.seconds)}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Ledger:
        return cls({n: tuple(u) for n, u in doc["tests"].items()},
                   {u: int(p) for u, p in doc["pairs"].items()}, str(doc.get("note", "")),
                   {u: float(s) for u, s in doc.get("seconds", {}).items()})


def units_of(plan: Plan, claim_id: str, params: Mapping[str, Any]) -> tuple[str, ...]:
    """Idents of the tasks of ``plan`` still to do that a test of ``claim_id`` with parameters
    ``params`` (a row's ``params``: protocol, env, algo, checkpoint, ...) needs."""
    todo = {t.ident for t in plan.todo()}
    out = []
    for ident, users in plan.users.items():
        if claim_id not in users or ident not in todo:
            continue
        task = plan.tasks[ident]
        if any(name in params and params[name] != getattr(task, name)
               for name in ("protocol", "env", "algo")):
            continue
        if "checkpoint" in params and task.iteration >= 0 and task.iteration != params[
                "checkpoint"]:
            continue
        out.append(ident)
    return tuple(out)


def build_ledger(scale: Scale, tests: Iterable[tuple[str, str | None, Mapping[str, Any]]],
                 cache: Path | None = None) -> Ledger:
    """The ledger of ``tests``, given as (nodeid, claim id or None, row params), at ``scale``:
    the plan of :mod:`pgclaims.suite.plan` for the claims among them, split per test. With a
    measurement ``cache`` folder and at least :data:`pgclaims.suite.costs.RATES_FROM_PAIRS`
    pairs to do, each unit also gets its modelled core-seconds (:func:`pgclaims.suite.costs.
    unit_seconds`)."""
    tests = list(tests)
    try:
        from pgclaims.suite import plan as plan_mod
        from pgclaims.suite.costs import unit_seconds

        planned = list(dict.fromkeys(c for _, c, _ in tests if c in plan_mod.USES))
        plan = plan_mod.build(scale, planned)
    except Exception as exc:  # progress lines must never stop a claims run
        return Ledger({n: () for n, _, _ in tests}, {},
                      f"no plan ({type(exc).__name__}: {exc})")
    units = {n: units_of(plan, c, p) if c in plan.claims else () for n, c, p in tests}
    pairs = {u: plan.tasks[u].pairs for us in units.values() for u in us}
    return Ledger(units, pairs, seconds=unit_seconds(plan, pairs, cache))


def ledger_path(run_dir: Path, worker: str) -> Path:
    """Where xdist worker ``worker`` leaves its ledger for the controller."""
    return run_dir / f".eta-{worker}.json"


def save(ledger: Ledger, path: Path) -> None:
    """Write ``ledger`` to ``path`` atomically (:func:`pgclaims.suite.results.write_json`); a
    failure is reported on stderr, not raised (the controller then prints no overall lines)."""
    from pgclaims.suite.results import write_json

    try:
        write_json(path, ledger.to_json())
    except OSError as exc:
        print(stamp(f"cannot write the run's cost ledger {path}: {exc}"), file=sys.stderr)


def take(path: Path) -> Ledger | None:
    """Read and delete the ledger at ``path``; None if there is none (or it is unreadable)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    finally:
        path.unlink(missing_ok=True)
    return Ledger.from_json(doc)


@dataclass(frozen=True)
class Progress:
    """How far a run is: tests finished, pairs of done units, wall seconds since the start."""

    tests_done: int
    tests: int
    pairs_done: int
    pairs: int
    elapsed: float
    note: str = ""
    seconds_done: float = 0.0
    seconds: float = 0.0
    """Modelled core-seconds of the done units and of all (0 when the ledger has none)."""

    @property
    def by_pairs(self) -> bool:
        """True when the run has planned pairs to weigh its tests by (else tests count alike)."""
        return self.pairs > 0

    @property
    def by_seconds(self) -> bool:
        """True when the units weigh by modelled core-seconds (else by pairs, or tests)."""
        return self.seconds > 0

    @property
    def fraction(self) -> float:
        """The fraction of the run's work done, in [0, 1]."""
        if self.by_seconds:
            return self.seconds_done / self.seconds
        if self.by_pairs:
            return self.pairs_done / self.pairs
        return self.tests_done / self.tests if self.tests else 1.0

    @property
    def eta(self) -> float | None:
        """Wall seconds still to go, ``elapsed x remaining / done``; None before any work."""
        done = self.fraction
        return None if done <= 0 else self.elapsed * (1 - done) / done


UNITS_FILE = ".units-done"
"""The file of a run folder that measuring processes append finished unit idents to."""

_units_sink: Sink | None = None


def units_path(run_dir: Path) -> Path:
    """Where the processes of the run in ``run_dir`` report the units they finished."""
    return run_dir / UNITS_FILE


def record_units_to(path: Path | None) -> None:
    """Make :func:`unit_done` append to ``path`` in this process (None: report nothing)."""
    global _units_sink
    _units_sink = None if path is None else log_file_sink(path)


def unit_done(ident: str) -> None:
    """Report that this process finished (computed or read from the cache) the unit
    ``ident`` (:attr:`pgclaims.suite.plan.Task.ident`); a no-op outside a claims run."""
    if _units_sink is not None:
        _units_sink(ident)


def estimate(ledger: Ledger, finished: Collection[str], elapsed: float,
             units: Collection[str] = (), unmeasured: Collection[str] = ()) -> Progress:
    """The progress of a run whose tests ``finished`` (nodeids) are done after ``elapsed``
    wall seconds and whose processes reported the ``units`` (idents) done, ignoring tests and
    units outside the ledger and the units of ``unmeasured`` tests (PENDING: out of time)."""
    done_tests = [n for n in ledger.tests if n in finished]
    done = {u for n in done_tests if n not in unmeasured for u in ledger.tests[n]}
    done.update(u for u in units if u in ledger.pairs)
    weights = ledger.seconds if ledger.seconds.keys() == ledger.pairs.keys() else {}
    return Progress(len(done_tests), len(ledger.tests), sum(ledger.pairs[u] for u in done),
                    sum(ledger.pairs.values()), elapsed, ledger.note,
                    sum(weights[u] for u in done if u in weights), sum(weights.values()))


def _count(pairs: int) -> str:
    if pairs < 1000:
        return f"~{pairs}"
    mantissa, exponent = f"{pairs:.1e}".split("e")
    return f"~{mantissa}e{int(exponent)}"


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def render(p: Progress, final: bool = False) -> str:
    """The line's message: ``run: 57/188 tests, ~1.2e7 of ~3.1e7 pairs done, elapsed 8.1 min,
    ETA 12 min``; at the end of the session (``final``) the total elapsed time instead."""
    from pgclaims.suite.costs import duration

    work = (f"{_count(p.pairs_done)} of {_count(p.pairs)} pairs done" if p.by_pairs
            else "tests weighted equally" + (f": {p.note}" if p.note else ""))
    if p.by_seconds and not final:
        work += f" ({p.fraction:.0%} of the modelled core-seconds)"
    head = f"run: {'end, ' if final else ''}{p.tests_done}/{p.tests} tests, {work}"
    if final:
        return f"{head}, total elapsed {_elapsed(p.elapsed)}"
    eta = "ETA unknown" if p.eta is None else f"ETA {duration(p.eta)}"
    return f"{head}, elapsed {_elapsed(p.elapsed)}, {eta}"


@dataclass
class Tracker:
    """The controller's side: :meth:`start` with the ledger, :meth:`finished` per test,
    :meth:`final` at the end; lines go to ``sink``, at most one per ``every`` seconds besides
    the first and the last (a test's end waits only on lines the console got: ``sink`` returns
    False for a line it only logged). ``started`` is the run's start (``time.time()``); elapsed
    times come from ``clock`` (monotonic). With ``units_file`` (the run's :func:`units_path`)
    the units reported there count as done, and :meth:`start` also starts a timer thread that
    calls :meth:`tick` every ``every`` seconds."""

    sink: Callable[[str], bool | None]
    started: float
    every: float = EVERY
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    ledger: Ledger | None = None
    finished_tests: set[str] = field(default_factory=set)
    last_line: float = float("-inf")
    last_shown: float = float("-inf")
    units_file: Path | None = None
    units: set[str] = field(default_factory=set)
    unmeasured: set[str] = field(default_factory=set)
    """Finished tests that measured nothing (PENDING): they count as tests, not as pairs."""
    origin: float = field(init=False)
    _read: int = field(default=0, init=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self.origin = self.clock() - max(0.0, self.wall() - self.started)

    @property
    def started_run(self) -> bool:
        """True once :meth:`start` has been given the run's ledger."""
        return self.ledger is not None

    def elapsed(self) -> float:
        """Wall seconds since the run started."""
        return self.clock() - self.origin

    def poll(self) -> None:
        """Read the unit idents appended to ``units_file`` since the last poll (whole lines
        only: a line still being written is read next time)."""
        if self.units_file is None:
            return
        try:
            with open(self.units_file, "rb") as f:
                f.seek(self._read)
                chunk = f.read()
        except OSError:
            return
        whole = chunk[: chunk.rfind(b"\n") + 1]
        self._read += len(whole)
        self.units.update(line for line in whole.decode("utf-8", "replace").splitlines() if line)

    def progress(self) -> Progress | None:
        """The run's progress now; None before :meth:`start`."""
        if self.ledger is None:
            return None
        with self._lock:
            self.poll()
            return estimate(self.ledger, self.finished_tests, self.elapsed(), self.units,
                            self.unmeasured)

    def _emit(self, final: bool = False) -> None:
        with self._lock:
            p = self.progress()
            if p is not None:
                self.last_line = self.clock()
                if self.sink(stamp(render(p, final), who="main")) is not False:
                    self.last_shown = self.last_line

    def start(self, ledger: Ledger) -> None:
        """Begin tracking the run's tests (once; later calls are ignored) and print the first
        line: nothing done, ETA unknown. A ``units_file`` left by an earlier run of the same
        run id is removed first (no test of this run has run yet)."""
        with self._lock:
            if self.ledger is not None:
                return
            if self.units_file is not None:
                with contextlib.suppress(OSError):
                    self.units_file.unlink(missing_ok=True)
            self.ledger = ledger
            self._emit()
        if self.units_file is not None and self.every > 0:
            threading.Thread(target=self._timer, name="pgclaims-eta", daemon=True).start()

    def _timer(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.tick()
            except Exception as exc:  # progress lines must never stop a claims run
                print(stamp(f"progress timer stopped: {exc}", who="main"), file=sys.stderr)
                return

    def tick(self) -> None:
        """Print a line if ``every`` seconds have passed since the last one (the timer's
        call, between test ends)."""
        with self._lock:
            if self.ledger is not None and self.clock() - self.last_line >= self.every:
                self._emit()

    def finished(self, nodeid: str, measured: bool = True) -> None:
        """Test ``nodeid`` has finished (``measured``: not PENDING); print a line if ``every``
        seconds have passed."""
        with self._lock:
            if self.ledger is None or nodeid not in self.ledger.tests:
                return
            self.finished_tests.add(nodeid)
            if not measured:
                self.unmeasured.add(nodeid)
            if self.clock() - self.last_shown >= self.every:
                self._emit()

    def final(self) -> None:
        """The session's last line, with the total elapsed time; stops the timer and removes
        ``units_file``."""
        self._stop.set()
        with self._lock:
            self._emit(final=True)
            if self.units_file is not None and self.ledger is not None:
                with contextlib.suppress(OSError):
                    self.units_file.unlink(missing_ok=True)


__all__ = ["UNITS_FILE", "Ledger", "Progress", "Tracker", "build_ledger", "estimate",
           "ledger_path", "record_units_to", "render", "save", "take", "unit_done", "units_of",
           "units_path"]

"""Training the ablation store's runs (:mod:`pgclaims.agents.ablations`): resumable, in
parallel processes, and in lockstep groups.

A run trains in ``fixtures/ablations/partial/<key>/`` (:func:`pgclaims.agents.train.train`'s
run directory: config, latest checkpoint every :data:`SAVE_PAIRS` pairs, full curve). When it
ends, its compact curve goes to ``runs/<key>.json``, its entry to the manifest (the commit
point), and the partial directory is deleted; a run in the manifest is never trained or
touched again. Runs of one environment and batch size train in lockstep groups
(:func:`pgclaims.agents.lockstep.train_together`: one collector call per iteration for the
group, each run still exactly what it is alone), as ``pgclaims fixtures train-set`` trains
fixtures. A per-run file lock keeps two commands from training one run at once.
"""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from filelock import FileLock

from pgclaims import fsio
from pgclaims.agents import backend, fixtures
from pgclaims.agents.ablations import (
    SCHEMA,
    Run,
    compact_curve,
    final_return,
    final_window,
    iteration_cost,
    iteration_costs,
    read_manifest,
    root,
    run_file,
)
from pgclaims.agents.agent import TRAINING_VERSION, Agent
from pgclaims.agents.lockstep import groups_of, train_together
from pgclaims.agents.setprogress import RunWork, SetProgress, iterations_done
from pgclaims.agents.train import train, write_json

SAVE_PAIRS = 20_480
"""Pairs between two resume checkpoints (10 iterations at 2048, every iteration at 20480)."""


def manifest_entry(run: Run, curve: dict[str, list[float]], rows: list[dict[str, float]],
                   cpu_s: float, cpu_iterations: int, lockstep: int = 1) -> dict[str, Any]:
    """The manifest's record of a finished run. ``cpu_s``: the CPU time of the session that
    finished it, over its last ``cpu_iterations`` iterations (in a lockstep group of
    ``lockstep`` runs, the group's CPU time divided by its runs)."""
    cfg = run.config()
    window = final_window(run.env_id, run.algo)
    return {
        "key": cfg.key(), "study": run.study, "protocol": run.protocol, "env_id": run.env_id,
        "algo": run.algo, "seed": run.seed, "variant": run.variant(),
        "iterations": run.iterations, "total_pairs": run.budget,
        "training_version": TRAINING_VERSION,
        "final_mean_return": final_return(curve, window),
        "final_mean_return_note": f"mean return of the episodes completed in the last "
                                  f"{window} pairs",
        "command": run.command(), "versions": fixtures.versions(),
        "platform": platform.platform(),
        "wall_time_s": round(sum(float(r.get("total_s", 0.0)) for r in rows), 1),
        "wall_time_note": "sum of the iterations' wall times, over every resumed session",
        "cpu_time_s": round(cpu_s, 1), "cpu_iterations": cpu_iterations, "lockstep": lockstep,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _record(base: Path, entry: dict[str, Any]) -> None:
    with FileLock(str(root(base) / ".manifest.lock")):
        manifest = read_manifest(base)
        manifest["runs"] = [r for r in manifest["runs"] if r["key"] != entry["key"]]
        manifest["runs"].append(entry)
        manifest["runs"].sort(key=lambda r: (r["protocol"], r["env_id"], r["algo"], r["study"],
                                             r["variant"]["steps_per_iteration"],
                                             r["variant"]["multiplier"], r["seed"]))
        write_json(root(base) / "manifest.json", manifest)


def _work(run: Run, base: Path) -> Path:
    return root(base) / "partial" / run.config().key()


def _complete(run: Run, agent: Agent, base: Path, cpu_s: float, cpu_iterations: int,
              lockstep: int = 1) -> dict[str, Any]:
    """Store a finished run: its curve file, then its manifest entry, then no partial
    directory (an interruption in between leaves a state the next call completes)."""
    cfg = run.config()
    curve = compact_curve(agent.curve, run.steps)
    entry = manifest_entry(run, curve, agent.curve, cpu_s, cpu_iterations, lockstep)
    path = run_file(run, base)
    write_json(path, {"schema": SCHEMA, "config": cfg.to_dict(), "curve": curve})
    entry["sha256"] = fsio.sha256_file(path)  # checked whenever the claims read the curve
    _record(base, entry)
    shutil.rmtree(_work(run, base), ignore_errors=True)
    return entry


def _refuse_committed(runs: list[Run]) -> None:
    for run in runs:
        if run.committed:
            raise ValueError(f"{run.label}: this is the committed fixture's training; read it "
                             "with pgclaims.agents.ablations.curve, train it with train-set")


def _locked(runs: list[Run], base: Path, stack: ExitStack) -> tuple[list[Run], list[dict]]:
    """Take every run's lock (in key order: no deadlock between commands); the runs still to
    train and the entries of those already in the manifest (their partial leftovers gone)."""
    for run in sorted(runs, key=lambda r: r.config().key()):
        _work(run, base).parent.mkdir(parents=True, exist_ok=True)
        stack.enter_context(FileLock(str(_work(run, base)) + ".lock"))
    done = {r["key"]: r for r in read_manifest(base)["runs"]}
    finished = [done[r.config().key()] for r in runs if r.config().key() in done]
    for run in runs:
        if run.config().key() in done:
            shutil.rmtree(_work(run, base), ignore_errors=True)
    return [r for r in runs if r.config().key() not in done], finished


def train_run(run: Run, base: Path | None = None,
              stop_after: int | None = None) -> dict[str, Any] | None:
    """Train (or resume) ``run`` alone into the ablation store; its manifest entry, or None
    when ``stop_after`` iterations ended the call first (tests). A finished run is returned as
    it is; a committed fixture's run is refused (it is read, not trained)."""
    base = (base or fixtures.root()).resolve()
    _refuse_committed([run])
    with ExitStack() as stack:
        todo, finished = _locked([run], base, stack)
        if not todo:
            return finished[0]
        work = _work(run, base)
        cpu0, start = time.process_time(), iterations_done(work)
        agent = train(run.config(), work, save_every=max(1, SAVE_PAIRS // run.steps),
                      progress=False, stop_after=stop_after)
        if agent.iteration < run.iterations:
            return None
        return _complete(run, agent, base, time.process_time() - cpu0, run.iterations - start)


def train_group(runs: list[Run], base: Path | None = None,
                stop_after: int | None = None) -> list[dict[str, Any]]:
    """Train (or resume) runs of one environment and batch size in lockstep; the manifest
    entries of the runs that finished (all of them unless ``stop_after`` lockstep iterations
    ended the call first)."""
    base = (base or fixtures.root()).resolve()
    _refuse_committed(runs)
    if len({(r.env_id, r.steps) for r in runs}) != 1:
        raise ValueError("a lockstep group needs one environment and one batch size, got "
                         f"{sorted({(r.env_id, r.steps) for r in runs})}")
    with ExitStack() as stack:
        todo, entries = _locked(runs, base, stack)
        if not todo:
            return entries
        by_dir = {_work(r, base): r for r in todo}
        start = {r: iterations_done(_work(r, base)) for r in todo}
        cpu0 = time.process_time()

        def finish(agent: Agent, run_dir: Path) -> None:
            run = by_dir[Path(run_dir)]
            entries.append(_complete(run, agent, base, (time.process_time() - cpu0) / len(todo),
                                     run.iterations - start[run], lockstep=len(todo)))

        train_together([r.config() for r in todo], list(by_dir),
                       save_every=max(1, SAVE_PAIRS // todo[0].steps), on_finish=finish,
                       stop_after=stop_after)
    return entries


def lockstep_groups(runs: list[Run], jobs: int) -> list[list[Run]]:
    """``runs`` cut into lockstep groups of one environment and batch size
    (:func:`pgclaims.agents.lockstep.groups_of`)."""
    return groups_of(runs, lambda r: (r.env_id, r.steps), lambda r: r.env_id, jobs)


def group_job(job: tuple[list[Run], Path]) -> list[dict[str, Any]]:
    """Train one lockstep group, ``(runs, base)``: the unit of :func:`train_runs` (a
    module-level function, as :func:`pgclaims.agents.backend.run_each` needs)."""
    runs, base = job
    if len(runs) == 1:
        entry = train_run(runs[0], base)
        assert entry is not None
        return [entry]
    return train_group(runs, base)


def train_runs(runs: list[Run], jobs: int = 1, say: Any = print,
               base: Path | None = None) -> list[dict[str, Any]]:
    """Train (or resume) every run not yet in the store, ``jobs`` lockstep groups at a time,
    each in its own process (or Ray task); committed fixtures' runs are read, not trained.
    ``say`` gets a line per finished run with the set's ETA. Deterministic whatever the order,
    the grouping or the jobs."""
    base = (base or fixtures.root()).resolve()
    entries = read_manifest(base)["runs"]
    have = {r["key"] for r in entries}
    committed = [r for r in runs if r.committed]
    todo = [r for r in runs if not r.committed and r.config().key() not in have]
    missing = [r for r in committed if not _fixture_present(r, base)]
    groups = lockstep_groups(todo, jobs)
    say(f"{len(runs) - len(todo) - len(committed)} of {len(runs)} runs already in "
        f"{root(base)}, {len(committed)} are committed fixtures (read, not trained"
        + (f"; {len(missing)} missing: train them with `pgclaims fixtures train-set`"
           if missing else "") + f"); training {len(todo)} in {len(groups)} lockstep "
        f"group(s) with {jobs} job(s)")
    done: list[dict[str, Any]] = []
    costs = iteration_costs(entries)
    work = [RunWork.of(r.config(), _work(r, base), run_file(r, base), iteration_cost(costs, r))
            for r in todo]
    with SetProgress(work, say, "runs") as progress:
        for entry in _entries(backend.run_each(group_job, [(g, base) for g in groups], jobs)):
            done.append(entry)
            ret = entry["final_mean_return"]
            v = entry["variant"]
            label = ("zero baseline" if v["baseline"] == "zero"
                     else f"step x{v['multiplier']:g} at {v['steps_per_iteration']}")
            say(f"[{len(done)}/{len(todo)}] {entry['protocol']} {entry['env_id']} "
                f"{entry['algo']} seed {entry['seed']}, {label}: final return "
                f"{'n/a' if ret is None else f'{ret:.0f}'}, {entry['wall_time_s']:.0f} s; "
                f"set {progress.short()}")
    return done


def _entries(results: Iterator[tuple[Any, list[dict[str, Any]]]]) -> Iterator[dict[str, Any]]:
    for _, entries in results:
        yield from entries


def _fixture_present(run: Run, base: Path) -> bool:
    try:
        fixtures.find(run.env_id, run.algo, run.seed, run.iterations, base, run.protocol)
    except fixtures.FixtureError:
        return False
    return True


__all__ = ["SAVE_PAIRS", "lockstep_groups", "manifest_entry", "train_group", "train_run",
           "train_runs"]

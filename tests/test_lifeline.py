"""No stray process: ``kill -9`` of a parent leaves none of its children alive after 5 s.

Each test starts a real parent (``pgclaims measure``, ``pgclaims fixtures train-set``, a claims
run under xdist, an xdist worker running a process pool) in its own session, waits until it has
started its children, kills it with SIGKILL and scans ``/proc`` (PID and PPID) for survivors
among the processes that descended from it. A survivor found after :data:`GRACE_S` fails the
test; whatever still runs at the end is killed by pid, so a failing test leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import pgclaims
from tests.procs import Proc, descendants, kill, running, table

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")]

SRC = Path(pgclaims.__file__).resolve().parents[1]
"""The checkout whose pgclaims the parents run (this test's own)."""
GRACE_S = 5.0
"""How long after the parent's death its children may take to die (issue 20, item 3)."""
START_S = 300.0
"""How long a parent may take to start its children (torch and MuJoCo imports on busy cores)."""

class Parent(subprocess.Popen[bytes]):
    seen: set[Proc]
    """Every descendant found so far (after the parent's death they can no longer be found)."""


@contextmanager
def started(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[Parent]:
    """``cmd`` running in a session of its own; on exit it and every descendant seen are
    killed."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(SRC)}
    full_env.pop("PYTEST_XDIST_WORKER", None)  # the parents decide their workers themselves
    with open(log, "wb") as out:
        proc = Parent(cmd, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                      start_new_session=True)
    proc.seen = set()
    try:
        yield proc
    finally:
        proc.seen |= descendants(proc.pid)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        kill(proc.seen)


def wait_for(what: str, ready: Callable[[], bool], proc: Parent, log: Path,
             timeout: float = START_S) -> None:
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"{what}: the parent exited (rc {proc.returncode}) first:\n"
                        f"{log.read_text()[-3000:]}")
        if time.monotonic() > end:
            pytest.fail(f"{what}: not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def survivors_of_kill(victim: int, parent: Parent) -> tuple[set[Proc], set[Proc]]:
    """SIGKILL ``victim`` (``parent`` or one of its descendants); its descendants then, and
    those still running :data:`GRACE_S` later (or as soon as none runs)."""
    kids = descendants(victim)
    parent.seen |= kids | descendants(parent.pid)
    os.kill(victim, signal.SIGKILL)
    end = time.monotonic() + GRACE_S
    while running(kids) and time.monotonic() < end:
        time.sleep(0.1)
    return kids, running(kids)


def _python_children(pid: int) -> int:
    return len(descendants(pid))


def test_kill_9_of_measure_leaves_no_worker(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "pgclaims.cli", "measure", "--fixture", "Hopper-v5", "ppo", "0",
           "450", "--scale", "smoke", "--what", "gradients", "--quiet"]
    log = tmp_path / "measure.log"
    env = {"PGCLAIMS_WORKERS": "2", "PGCLAIMS_CACHE": str(tmp_path / "cache")}
    with started(cmd, SRC, env, log) as proc:
        wait_for("measure's 2 workers", lambda: _python_children(proc.pid) >= 2, proc, log)
        kids, alive = survivors_of_kill(proc.pid, proc)
        proc.wait()
    assert len(kids) >= 2
    assert alive == set(), f"workers of the killed measure still running: {alive}"


def test_kill_9_of_train_set_leaves_no_worker(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "pgclaims.cli", "fixtures", "train-set", "--env", "Hopper-v5",
           "--algo", "ppo", "--seeds", "0,1", "--iterations", "200", "--jobs", "2"]
    log = tmp_path / "train-set.log"
    with started(cmd, tmp_path, {"PGCLAIMS_FIXTURES": str(tmp_path / "fx")}, log) as proc:
        wait_for("train-set's 2 workers", lambda: _python_children(proc.pid) >= 2, proc, log)
        kids, alive = survivors_of_kill(proc.pid, proc)
        proc.wait()
    assert len(kids) >= 2
    assert alive == set(), f"workers of the killed train-set still running: {alive}"


def test_kill_9_of_a_claims_run_leaves_no_xdist_worker(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    cmd = [sys.executable, "-m", "pytest", "-n", "2", "claims", "--scale", "smoke",
           "--claim", "grad.*", "-p", "no:cacheprovider", "--reports-dir", str(reports), "-q"]
    log = tmp_path / "claims.log"
    env = {"PGCLAIMS_CACHE": str(tmp_path / "cache")}
    with started(cmd, SRC, env, log) as proc:
        # a worker's progress line "training ..." in progress.log: the workers are at work
        wait_for("the claims run's workers", lambda: _python_children(proc.pid) >= 2 and any(
            "training" in p.read_text() for p in reports.glob("*/progress.log")), proc, log)
        kids, alive = survivors_of_kill(proc.pid, proc)
        proc.wait()
    assert len(kids) >= 2
    assert alive == set(), f"xdist workers of the killed claims run still running: {alive}"


POOL_TEST = '''
import time

from pgclaims.agents import backend


def nap(x):
    time.sleep(600)
    return x


def test_pool():
    assert [x for x, _ in backend.run_each(nap, [1, 2], jobs=2)]
'''


def test_kill_9_of_an_xdist_worker_leaves_no_pool_worker(tmp_path: Path) -> None:
    (tmp_path / "test_pool.py").write_text(POOL_TEST)
    cmd = [sys.executable, "-m", "pytest", "-n", "1", "--max-worker-restart", "0",
           "-p", "no:cacheprovider", "test_pool.py"]
    log = tmp_path / "pool.log"
    with started(cmd, tmp_path, {}, log) as proc:
        def worker() -> int | None:
            workers = [pid for pid, (ppid, _, _) in table().items() if ppid == proc.pid]
            return next((w for w in workers if _python_children(w) >= 2), None)

        wait_for("the xdist worker's pool", lambda: worker() is not None, proc, log)
        victim = worker()
        assert victim is not None
        kids, alive = survivors_of_kill(victim, proc)
    assert len(kids) >= 2
    assert alive == set(), f"pool workers of the killed xdist worker still running: {alive}"

"""Where parallel work runs: forked local processes (the default) or a Ray cluster.

One process-wide setting, so no caller passes it along: :func:`set_backend` (what the CLI's and
the claims suite's ``--backend``/``--ray-address`` call) or else the ``PGCLAIMS_BACKEND``
variable (``local`` or ``ray``). Two kinds of work read it: measurement chunks
(:func:`pgclaims.measure.parallel.chunk_map`, on Ray :mod:`pgclaims.measure.ray_backend`) and
the training of many fixtures (:func:`run_each`, used by
:func:`pgclaims.agents.fixtures.train_set`). The numbers never depend on it: every chunk and
every agent is seeded by what it is, not by where it runs.

Which Ray: the address given to :func:`set_backend`, else ``RAY_ADDRESS``, else a new local
Ray with every core, started at the first use and stopped when this process exits. Ray is an
optional extra (``pip install -e '.[ray]'``) and imported only here, when the backend is used.
Work lost with its worker (a killed process, a lost node) is re-run: tasks are retried
:data:`RETRIES` times before the run fails.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BACKENDS = ("local", "ray")
INSTALL = "pip install -e '.[ray]'"
RETRIES = 3
"""Times a task whose worker died is re-run (Ray's ``max_retries``)."""

_SETTING: dict[str, str | None] = {}
"""What :func:`set_backend` chose: ``name`` and ``address``; empty: the environment's."""


class BackendError(ValueError):
    """An unknown backend, or ``ray`` without Ray installed; the message says what to do."""


def _check(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise BackendError(f"{source}={name!r}: expected one of {', '.join(BACKENDS)}")
    return name


def set_backend(name: str, address: str | None = None) -> dict[str, str | None]:
    """Run parallel work on ``name`` (``local`` or ``ray``) from now on in this process;
    ``address``: the Ray cluster to connect to (default ``RAY_ADDRESS``, else a local Ray).
    Returns the previous setting, for :func:`restore_backend`."""
    previous = dict(_SETTING)
    _SETTING.update(name=_check(name, "backend"), address=address or None)
    return previous


def restore_backend(previous: dict[str, str | None]) -> None:
    """Put back what :func:`set_backend` returned (``{}``: the environment's choice)."""
    _SETTING.clear()
    _SETTING.update(previous)


@contextmanager
def using(name: str, address: str | None = None) -> Iterator[None]:
    """:func:`set_backend` for the ``with`` block, then the previous setting again."""
    previous = set_backend(name, address)
    try:
        yield
    finally:
        restore_backend(previous)


def backend() -> str:
    """The backend in force: :func:`set_backend`'s, else ``PGCLAIMS_BACKEND``, else local."""
    if "name" in _SETTING:
        return str(_SETTING["name"])
    env = os.environ.get("PGCLAIMS_BACKEND", "").strip()
    return _check(env, "PGCLAIMS_BACKEND") if env else "local"


def ray_address() -> str | None:
    """The Ray cluster to connect to; None: start a local one."""
    return _SETTING.get("address") or os.environ.get("RAY_ADDRESS") or None


def import_ray() -> ModuleType:
    """The ``ray`` module, or a :class:`BackendError` naming the install command."""
    try:
        import ray
    except ImportError:
        raise BackendError(f"the ray backend needs Ray, which is not installed; run "
                           f"`{INSTALL}` (or choose --backend local)") from None
    return ray


@contextmanager
def _sigterm_kept() -> Iterator[None]:
    """Keep this process's SIGTERM handler across ``ray.init``.

    ``ray.init`` takes SIGTERM over: a Python handler that exits, then its C++ failure-signal
    handler, which prints a stack trace and aborts the driver (exit status 134). A ``kill`` of a
    ``pgclaims`` command must end it as without Ray: its own message, how to resume, and the
    signal's exit status (:func:`pgclaims.cli.main`, which calls :func:`stop_ray` first)."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    except SystemExit as exc:  # SIGTERM while ray.init ran: Ray's Python handler's sys.exit
        if exc.code != signal.SIGTERM or not callable(before):
            raise
        before(signal.SIGTERM, None)
        raise
    finally:
        if callable(before):  # a handler this process set; SIG_DFL keeps Ray's (pytest, notebooks)
            signal.signal(signal.SIGTERM, before)


def start_local_ray(num_cpus: int | None = None, drivers: int = 1) -> ModuleType:
    """``ray``, connected to a new local Ray of ``num_cpus`` CPUs (default: every core) that
    stops with this process, for ``drivers`` processes submitting work (xdist workers).

    Its workers run at this process's priority: Ray's default puts them 15 nice levels below
    it, which on a shared machine makes a measurement slower under ray than under local, whose
    workers inherit the caller's priority. Each driver has its own worker processes, and Ray
    kills idle ones beyond one per CPU: with several drivers that would make them restart (and
    re-import torch and MuJoCo) whenever another driver's chunks ran, so one per CPU per driver
    is kept."""
    ray = import_ray()
    cpus = num_cpus or os.cpu_count() or 1
    with _sigterm_kept():
        ray.init(address="local", num_cpus=cpus, include_dashboard=False,
                 _system_config={"worker_niceness": 0, "num_workers_soft_limit": cpus * drivers})
    return ray


RAY_ANSWER_S = 15.0
"""Seconds a Ray cluster named by address has to answer before a run that needs it fails."""
RAY_IMPORT_S = 300.0
"""Seconds the probe of :func:`check_ray_address` may take to import Ray (busy cores), not
counted in :data:`RAY_ANSWER_S`."""
_PROBE = """
import sys
from pgclaims.agents.lifeline import die_with_parent
die_with_parent(int(sys.argv[2]))
import ray
print("imported", flush=True)
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print("answered", ray.cluster_resources().get("CPU", 0), flush=True)
"""


def check_ray_address(address: str, timeout: float | None = None) -> None:
    """Fail unless a Ray cluster answers at ``address`` within ``timeout`` seconds (default
    :data:`RAY_ANSWER_S`).

    ``ray.init(address=...)`` retries for ever when nothing answers there, so the connection
    is tried in a child process that is killed at the deadline; then a :class:`BackendError`
    says "no Ray cluster answers at ADDRESS within 15 s". The child imports Ray first, which
    is not counted (:data:`RAY_IMPORT_S`)."""
    import queue
    import subprocess
    import threading
    import time

    import_ray()
    timeout = RAY_ANSWER_S if timeout is None else timeout
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-c", _PROBE, address, str(os.getpid())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str | None] = queue.Queue()
    errors: list[str] = []

    def read_out() -> None:
        for line in proc.stdout or ():
            lines.put(line.strip())
        lines.put(None)

    def read_err() -> None:
        errors.extend(line.strip() for line in proc.stderr or ())

    threading.Thread(target=read_out, daemon=True).start()
    threading.Thread(target=read_err, daemon=True).start()
    deadline = time.monotonic() + RAY_IMPORT_S
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line == "imported":
                deadline = time.monotonic() + timeout
            elif line is not None and line.startswith("answered"):
                return
            elif line is None:  # the probe ended without an answer
                proc.wait()
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    said = next((e for e in reversed(errors) if "Error" in e), "")
    raise BackendError(f"no Ray cluster answers at {address} within {timeout:g} s"
                       + (f" ({said})" if said else "")
                       + "; start one (`ray start --head`) or check --ray-address/RAY_ADDRESS")


def ray_connected() -> bool:
    """Whether this process connected to Ray (never imports it)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def stop_ray() -> None:
    """Disconnect from Ray if this process connected, stopping the local Ray it started (its
    agents outlive a driver that dies without this). Nothing when Ray was never used."""

    if ray_connected():
        sys.modules["ray"].shutdown()


def connect_ray(drivers: int = 1) -> ModuleType:
    """``ray``, connected to :func:`ray_address` (started locally when there is none, see
    :func:`start_local_ray` for ``drivers``)."""
    ray = import_ray()
    if not ray.is_initialized():
        address = ray_address()
        if address:
            with _sigterm_kept():
                ray.init(address=address)
        else:  # never attach to a cluster this process did not ask for
            start_local_ray(drivers=drivers)
    return ray


def _local_each(fn: Callable[[T], R], items: Sequence[T], jobs: int) -> Iterator[tuple[T, R]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from pgclaims.agents.lifeline import die_with_parent

    # fork (the default on Linux before Python 3.14) makes this process each worker's parent
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"),
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(fn, item): item for item in items}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def _ray_each(fn: Callable[[T], R], items: Sequence[T], jobs: int) -> Iterator[tuple[T, R]]:
    ray = connect_ray()
    task = ray.remote(num_cpus=1, max_retries=RETRIES)(fn)
    todo = list(items)
    running: dict[Any, T] = {}
    try:
        while todo or running:
            while todo and len(running) < jobs:
                item = todo.pop(0)
                running[task.remote(item)] = item
            [ref], _ = ray.wait(list(running), num_returns=1)
            item = running.pop(ref)
            yield item, ray.get(ref)
    finally:
        for ref in running:
            ray.cancel(ref)


def run_each(fn: Callable[[T], R], items: Sequence[T], jobs: int = 1
             ) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` for every item, in the order they finish, at most ``jobs`` at a
    time: each in its own forked process (local; it dies with this process,
    :mod:`pgclaims.agents.lifeline`) or as a one-CPU Ray task, re-run if its worker dies
    (ray). ``fn`` must be a module-level function; items and results must pickle.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    each = _ray_each if backend() == "ray" else _local_each
    yield from each(fn, items, jobs)


__all__ = ["BACKENDS", "BackendError", "backend", "check_ray_address", "connect_ray",
           "import_ray", "ray_address", "restore_backend", "run_each", "set_backend",
           "start_local_ray", "using"]

"""Progress lines for long work (training, measurements) during a claims run.

``progress("true gradient Hopper-v5 ppo seed 0 it 450: 12/40 batches")`` prints one line
prefixed with the xdist worker id and the time. Under the claims plugin the line bypasses
pytest's output capture (so it is seen while the test runs, also from xdist workers, whose
stderr reaches the terminal) and is appended to ``reports/<run-id>/progress.log``. Outside
pytest it goes to stderr. The controller's overall line (tests and pairs done, ETA) comes from
:mod:`pgclaims.suite.eta`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
Sink = Callable[[str], "bool | None"]
"""Takes a line; may return False when the console did not get it (it went to a log
only), which :class:`pgclaims.suite.eta.Tracker` uses to throttle its lines."""

_sink: Sink | None = None


def worker_id() -> str:
    """The xdist worker id ("gw0", ...) or "main" without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def set_sink(sink: Sink | None) -> Sink | None:
    """Route progress lines to ``sink`` (the claims plugin does this); returns the previous."""
    global _sink
    previous, _sink = _sink, sink
    return previous


def stamp(message: str, who: str | None = None) -> str:
    """``message`` as a progress line, ``[gw1 20:15:03] message``: prefixed with ``who``
    (default: this process's :func:`worker_id`) and the local time."""
    return f"[{who or worker_id()} {time.strftime('%H:%M:%S')}] {message}"


def progress(message: str) -> None:
    """Emit one progress line: ``[gw1 20:15:03] message``."""
    line = stamp(message)
    if _sink is not None:
        _sink(line)
    else:
        print(line, file=sys.stderr, flush=True)


def steps(items: Iterable[T], label: str, total: int | None = None,
          every: float = 0.1) -> Iterator[T]:
    """Yield ``items``, reporting "label: k/total" about every ``every`` of the way (and at
    the end). Cheap enough for loops of a few hundred slow steps."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    t0 = time.perf_counter()
    stride = max(1, round(total * every)) if total else 1
    k = 0
    for k, item in enumerate(items, start=1):
        yield item
        if k % stride == 0 or k == total:
            of = f"/{total}" if total else ""
            progress(f"{label}: {k}{of} ({time.perf_counter() - t0:.0f} s)")


def log_file_sink(path: os.PathLike[str] | str, echo: Sink | None = None) -> Sink:
    """A sink that appends each line to ``path`` (created on first use) and calls ``echo``;
    it returns what ``echo`` returns (False: the console did not get the line)."""

    def sink(line: str) -> bool | None:
        shown = echo(line) if echo is not None else None
        try:
            os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
            # One short write per line with O_APPEND: lines of concurrent workers do not tear.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)
        except OSError as exc:
            print(f"[{worker_id()}] cannot append to {path}: {exc}", file=sys.stderr)
        return shown

    return sink


__all__ = ["log_file_sink", "progress", "set_sink", "stamp", "steps", "worker_id"]

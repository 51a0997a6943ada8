"""Processes by PID and PPID, from /proc: what the stray-process and Ray node-loss tests scan.

A process is ``(pid, start time in clock ticks)``, so a reused pid is never mistaken for it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

Proc = tuple[int, str]


def table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, state, start time) of every process, from /proc/<pid>/stat."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        out[int(entry)] = (int(rest[1]), rest[0], rest[19])
    return out


def descendants(root: int) -> set[Proc]:
    """Every process below ``root`` by PPID (children that called setsid included)."""
    procs = table()
    found: set[Proc] = set()
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, start) in procs.items():
            if ppid == parent and (pid, start) not in found:
                found.add((pid, start))
                frontier.append(pid)
    return found


def with_env(name: str, value: str) -> set[Proc]:
    """Processes whose environment holds ``name=value`` (a marker a test gave its children)."""
    want = f"{name}={value}".encode()
    found = set()
    for pid, (_, state, start) in table().items():
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if want in env and state not in "ZX":
            found.add((pid, start))
    return found


def running(procs: set[Proc]) -> set[Proc]:
    """Those of ``procs`` still running (a zombie has ended: it only waits to be reaped)."""
    procs_now = table()
    return {(pid, start) for pid, start in procs
            if pid in procs_now and procs_now[pid][2] == start and procs_now[pid][1] not in "ZX"}


def kill(procs: set[Proc], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to those of ``procs`` still running (by pid, checked against start time)."""
    for pid, _ in running(procs):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def terminal_sigint() -> None:
    """``preexec_fn`` for a command that is sent Ctrl-C: SIGINT at its default, as in a
    terminal's foreground job. A shell starts a background job (``cmd &``, nohup, a CI step)
    with SIGINT ignored, children inherit that, and Python then never raises
    KeyboardInterrupt: a Ctrl-C test would hang for the harness, not for a user."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

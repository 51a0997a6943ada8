"""Worker processes that die with their parent, also when the parent is killed with SIGKILL.

A parent that is killed (``kill -9``, the OOM killer, a CI runner's timeout) runs no cleanup:
its forked pool workers (:func:`pgclaims.measure.parallel.chunk_map`,
:func:`pgclaims.agents.backend.run_each`) and the xdist workers of a claims run would be
re-parented to init and keep sampling for hours. Each such process calls :func:`die_with_parent`
first thing: on Linux the kernel then sends it SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread polls the parent id every
:data:`WATCH_S` seconds. Killing a worker is safe by construction: results are written
atomically (temporary file, then rename) and the file locks are released by the kernel.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
"""prctl(2) option number (linux/prctl.h): the signal sent when the parent thread exits."""
WATCH_S = 1.0
"""Seconds between two parent checks where prctl is not available."""


def _prctl_pdeathsig(sig: int) -> bool:
    """Ask the kernel for ``sig`` at the parent's death; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_S)
    os._exit(1)


def die_with_parent(parent: int) -> None:
    """Make this process, a child of process ``parent``, die as soon as ``parent`` dies.

    The kernel's signal is tied to the thread that created the child, so ``parent`` must
    create its workers from a thread that lives as long as they are needed (the pools here are
    all started from the caller's thread). If ``parent`` died before this call, exit now."""
    if not _prctl_pdeathsig(signal.SIGKILL):
        threading.Thread(target=_watch, args=(parent,), name="pgclaims-lifeline",
                         daemon=True).start()
    if os.getppid() != parent:  # the parent died between the fork and the prctl
        os._exit(1)


__all__ = ["die_with_parent"]

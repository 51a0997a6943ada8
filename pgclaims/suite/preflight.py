"""What a claims run checks before its first sample: that it can write what it will write.

A run writes its verdicts (``results.json``, the report, the history) at the very end and its
measurements to the cache as it goes; a reports folder that is read-only, full or a file was
found only after hours of work, and a traceback replaced the verdict summary. The controller
calls :func:`check_folder` for the reports folder and the cache folder at configure time, and
the plugin turns a problem into a pytest usage error (one line, exit status 4, no test run).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MIB = 2**20
MIN_FREE_BYTES = 64 * MIB
"""Room a run needs on the file system of each folder it writes to. A smoke run's folder
(results.json, index.html with its inline figures, junit.xml, progress.log) is about 2 MiB and
its cache (measurements and the smoke agents' checkpoints) about 20 MiB; a default run's report
is of the same order, its cache smaller (the agents are the committed fixtures)."""
PROBE_BYTES = 4096
"""Bytes written to a probe file: one block, so a full file system refuses it."""


def measure_cache_root() -> Path:
    """The folder :func:`pgclaims.measure.cache.cache_dir` keeps measurements under (its
    parent), found without importing it (it loads torch): ``$PGCLAIMS_CACHE``, else the
    checkout's ``.cache/pgclaims``."""
    env = os.environ.get("PGCLAIMS_CACHE")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".cache" / "pgclaims"


def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def check_folder(path: Path, what: str, need: int = MIN_FREE_BYTES) -> str | None:
    """None if a run can create ``path`` (if needed) and write ``need`` bytes in it, else one
    line saying what is wrong, starting with ``what`` (e.g. "--reports-dir reports"). Nothing
    is created: the check writes and removes a probe file in the nearest existing folder."""
    base = _nearest_existing(path)
    if not base.is_dir():
        where = "" if base == path else f" ({base} is in its path)"
        return f"{what}: {base} is not a folder{where}"
    try:
        fd, probe = tempfile.mkstemp(prefix=".pgclaims-probe-", dir=base)
    except OSError as exc:
        return f"{what}: cannot write in {base} ({exc.strerror or exc})"
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return f"{what}: cannot write in {base} ({exc.strerror or exc})"
    finally:
        Path(probe).unlink(missing_ok=True)
    free = shutil.disk_usage(base).free
    if free < need:
        return (f"{what}: only {free / MIB:.1f} MiB free on the file system of {base}; a run "
                f"needs at least {need / MIB:.0f} MiB (free some, or choose another folder)")
    return None


__all__ = ["MIN_FREE_BYTES", "check_folder", "measure_cache_root"]

"""Atomic file replacement for the report and the ``reports/latest`` link.

A reader (a browser, a CI artifact upload, another run's report step) must never see a half
written index.html or a missing ``latest``: both are built under a temporary name in the same
directory and moved into place with ``os.replace``, which is atomic on POSIX.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pgclaims import fsio


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically; on any error ``path`` is untouched
    and the OSError names ``path`` (:func:`pgclaims.fsio.write_bytes`)."""
    fsio.write_text(path, text)


def update_latest(reports_dir: Path, run_dir: Path) -> None:
    """Point ``reports_dir/latest`` at ``run_dir`` with a relative symlink, replaced atomically.

    Relative, so that the reports folder can be moved or archived with the link intact.
    """
    reports_dir, run_dir = Path(reports_dir), Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a run directory")
    target = os.path.relpath(run_dir.resolve(), reports_dir.resolve())
    link = reports_dir / "latest"
    tmp = reports_dir / f".latest.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    os.symlink(target, tmp, target_is_directory=True)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

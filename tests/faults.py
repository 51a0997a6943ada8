"""Faults injected into the file system, for the tests of what survives them.

Both go through the calls every pgclaims writer makes (``os.fdopen`` on a ``tempfile.mkstemp``
file, ``os.mkdir``), so they reach the old writers as well as :mod:`pgclaims.fsio`:

- :func:`full_disk`: files opened with ``os.fdopen`` accept ``room`` bytes, then every write
  raises ENOSPC, as a full disk does (the first bytes land: a half-written temporary file).
- :func:`read_only`: creating a file or folder under ``folder`` raises EROFS.

:func:`real_mounts` gives a real read-only and a real 64 KiB tmpfs where the tests may mount
(root on Linux), for the end-to-end cases.
"""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


class _Limited:
    """A file object that takes ``room`` more bytes (or characters), then raises ENOSPC."""

    def __init__(self, f: Any, room: list[int]) -> None:
        self._f = f
        self._room = room

    def write(self, data: Any) -> int:
        take = min(len(data), self._room[0])
        if take:
            self._f.write(data[:take])
            self._room[0] -= take
        if take < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return take

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _Limited:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


def full_disk(monkeypatch: pytest.MonkeyPatch, room: int = 100) -> None:
    """From now on, the disk has ``room`` bytes left for files written through os.fdopen."""
    real = os.fdopen
    left = [room]

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        return _Limited(real(fd, *args, **kwargs), left)

    monkeypatch.setattr(os, "fdopen", fdopen)


def read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """From now on, nothing can be created under ``folder`` (files or folders)."""
    folder = Path(folder).resolve()
    real_mkstemp, real_mkdir = tempfile.mkstemp, os.mkdir

    def inside(path: Any) -> bool:
        p = Path(os.fsdecode(path)).resolve()
        return p == folder or folder in p.parents

    def mkstemp(suffix: Any = None, prefix: Any = None, dir: Any = None,  # noqa: A002
                text: bool = False) -> tuple[int, str]:
        if dir is not None and inside(dir):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS),
                          os.path.join(dir, f"{prefix or ''}XXXXXX{suffix or ''}"))
        return real_mkstemp(suffix, prefix, dir, text)

    def mkdir(path: Any, mode: int = 0o777, *, dir_fd: Any = None) -> None:
        if inside(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        real_mkdir(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "mkdir", mkdir)


@contextmanager
def real_mounts(base: Path) -> Iterator[tuple[Path, Path]]:
    """(a read-only tmpfs, a 64 KiB tmpfs) under ``base``; skips where mounting is not allowed."""
    ro, full = base / "ro", base / "full"
    ro.mkdir()
    full.mkdir()
    mounted = []
    try:
        for path, opts in ((ro, "ro,size=64k"), (full, "size=64k")):
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                                  capture_output=True, timeout=30, check=False)
            if done.returncode != 0:
                pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
            mounted.append(path)
        yield ro, full
    finally:
        for path in mounted:
            subprocess.run(["umount", str(path)], capture_output=True, timeout=30, check=False)


__all__ = ["full_disk", "read_only", "real_mounts"]

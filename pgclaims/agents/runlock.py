"""One training process per run folder: an exclusive lock that names its holder.

Two processes training into one folder would interleave their checkpoints and curves and each
resume from the other's ``latest.safetensors``. :func:`hold` takes ``flock`` on the folder's
``.lock`` file (released by the kernel when the holder exits, even by ``kill -9``, so a stale
lock never blocks a rerun) and writes the holder's pid, host and start time into it, which a
second process reads to say who holds the folder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = ".lock"
"""The lock file's name inside the run folder."""


class RunLockedError(RuntimeError):
    """Another live process trains into the same folder."""


def _acquire(path: Path, folder: Path) -> int:
    """An fd of ``path`` holding its exclusive lock, the file still being ``path``."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise RunLockedError(
                f"{folder}: another process is training into this folder ({holder}); wait "
                "for it to finish, or stop it, or choose another --out") from None
        try:  # the holder before us may have removed the file between our open and our lock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` (an error from a call on a descriptor names no file)."""
    if exc.filename is not None:
        return exc
    code = exc.errno if exc.errno is not None else errno.EIO
    return OSError(code, exc.strerror or os.strerror(code),
                   f"{path} (the run folder's lock, written as training starts)")


@contextmanager
def hold(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s training lock for the ``with`` block, or raise
    :class:`RunLockedError` naming the process that holds it. The lock file is removed on
    release (while still locked, so no one can lock the removed file meanwhile); one left by
    a killed process is taken over by the next run."""
    path = Path(folder) / LOCK
    try:
        fd = _acquire(path, Path(folder))
    except OSError as exc:  # a read-only or full file system: name the lock file
        raise _named(exc, path) from exc
    try:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        text = f"pid {os.getpid()} on host {socket.gethostname()}, since {stamp}".encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, text, 0)
        except OSError as exc:  # os.pwrite's error names no file
            raise _named(exc, path) from exc
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)  # releases the lock


__all__ = ["LOCK", "RunLockedError", "hold"]

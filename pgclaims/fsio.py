"""Files that are either whole or absent, digests, and OS errors worth one line.

Every file pgclaims writes goes through :func:`write_bytes` (temporary file in the same folder,
flushed and fsync'ed, then ``os.replace``): a full disk, a read-only folder or a kill leaves
the previous version or nothing, never half a file. An OS error is re-raised with the *target*
path as its filename (not the temporary one), so the command line can print
``pgclaims CMD: error: PATH: reason`` (:func:`describe`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
"""Bytes read at a time when hashing a file."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _target_error(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` as its filename (what the user named, not our temporary file)."""
    code = exc.errno if exc.errno is not None else errno.EIO
    out = OSError(code, exc.strerror or os.strerror(code), str(path))
    return out


def write_bytes(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> Path:
    """Replace ``path`` with ``data`` atomically; on any error ``path`` is untouched, no
    temporary file is left, and the OSError names ``path``."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file name", str(path))
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()  # a full disk shows here at the latest, before the rename
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp makes 0600; these files are meant to be read by others
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise _target_error(exc, path) from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, allow_nan: bool = True) -> Path:
    """Atomic JSON (indent 1, a final newline)."""
    return write_text(path, json.dumps(obj, indent=1, allow_nan=allow_nan) + "\n")


def describe(exc: OSError) -> str:
    """``PATH: reason`` of an OS error (the reason alone when it names no file)."""
    reason = exc.strerror or str(exc)
    name = exc.filename
    if name is None:
        return reason
    extra = f" -> {exc.filename2}" if exc.filename2 else ""
    return f"{os.fsdecode(name)}{extra}: {reason}"


def check_writable_dir(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` if needed and prove a file can be made in it, before any work is done
    (an OSError naming the folder otherwise). Works as root too, unlike ``os.access``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".pgclaims-probe.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise _target_error(exc, folder) from exc
    return folder


__all__ = ["check_writable_dir", "describe", "sha256_bytes", "sha256_file", "write_bytes",
           "write_json", "write_text"]

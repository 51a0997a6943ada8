"""sha256 digests of run folders, checked whenever a checkpoint is loaded.

A training run (:func:`pgclaims.agents.train.train`) records the digest of every file it
writes in the folder's ``sha256.json`` (``{"schema": 1, "files": {name: hex}}``); a fixture's
digests live in its manifest entry instead (:mod:`pgclaims.agents.fixtures`). A flipped bit,
a file edited by hand or copied over from another run then stops the load with one line
naming the file, instead of being measured as if it were the agent that was trained.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from pgclaims import fsio

FILE = "sha256.json"
"""A run folder's digests, one per file the run wrote."""
HEX = re.compile(r"^[0-9a-f]{64}$")
"""A sha256 digest as stored: 64 lowercase hex digits."""


class DigestError(ValueError):
    """A file whose content is not the one recorded, or a digest record that is unreadable."""


def read(folder: Path) -> dict[str, str]:
    """``name -> sha256`` of ``folder``'s ``sha256.json`` ({} when there is none)."""
    path = Path(folder) / FILE
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
        files = doc["files"]
        if not isinstance(files, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and HEX.match(v)
                for k, v in files.items()):
            raise TypeError("files: expected an object of file name -> 64 hex digits")
    except (ValueError, KeyError, TypeError) as exc:
        raise DigestError(f"{path}: not a digest record ({exc}); the files it vouched for "
                          "cannot be verified: restore it or delete the run folder") from None
    return dict(files)


def record(folder: Path, names: list[str]) -> dict[str, str]:
    """Hash ``folder/name`` for each name and merge the digests into ``folder/sha256.json``
    (written atomically); returns the digests of ``names``. Only the process that holds the
    folder's training lock calls this."""
    folder = Path(folder)
    new = {name: fsio.sha256_file(folder / name) for name in names}
    files = {**read(folder), **new}
    fsio.write_json(folder / FILE, {"schema": 1, "files": dict(sorted(files.items()))})
    return new


def forget(folder: Path, names: list[str]) -> None:
    """Drop ``names`` from the record (files the run removes on purpose)."""
    files = read(folder)
    if any(n in files for n in names):
        for n in names:
            files.pop(n, None)
        fsio.write_json(Path(folder) / FILE, {"schema": 1, "files": files})


def check(path: Path, expected: str, source: str) -> None:
    """Raise :class:`DigestError` unless ``path``'s sha256 is ``expected``."""
    got = fsio.sha256_file(path)
    if got != expected:
        raise DigestError(
            f"{path}: sha256 {got[:16]}... differs from the {expected[:16]}... recorded in "
            f"{source}: the file changed after it was written (a damaged or replaced file); "
            "restore it (git checkout, a backup) or train it again")


def verify(path: str | os.PathLike[str], expected: str | None = None,
           source: str | None = None) -> bool:
    """Check ``path`` against ``expected`` (with ``source`` naming where it is recorded), or
    else against its folder's ``sha256.json``. True when a digest was checked, False when none
    is recorded for the file (a checkpoint saved outside a training run)."""
    path = Path(path)
    if expected is not None:
        check(path, expected, source or "its manifest entry")
        return True
    recorded = read(path.parent).get(path.name)
    if recorded is None:
        return False
    check(path, recorded, str(path.parent / FILE))
    return True


__all__ = ["FILE", "DigestError", "check", "forget", "read", "record", "verify"]

"""``reports/history.jsonl``: one JSON line per claim result per run, appended at run end.

Runs may finish at the same time (two scales on one machine), so appends take a file lock; a
run killed mid-write can leave a torn last line, which readers skip and the next writer drops.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from .schema import ReportError

HISTORY_KEYS = ("run_id", "created", "scale", "claim_id", "params", "verdict", "statistic",
                "interval")


def _plain(value: Any) -> Any:
    """JSON built-ins only, and strict JSON: a non-finite float becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def history_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The history lines (as dicts) that ``results`` contributes, one per measured result row
    (a PENDING row has no verdict yet, so a later run is never compared with it)."""
    scale = results["scale"]["name"]
    return [
        _plain({"run_id": results["run_id"], "created": results["created"], "scale": scale,
                "claim_id": r["claim_id"], "params": r["params"], "verdict": r["verdict"],
                "statistic": r.get("statistic"), "interval": r.get("interval")})
        for r in results["results"] if r["verdict"] != "PENDING"
    ]


def _drop_torn_tail(fd: int) -> None:
    """Make the file end with a newline: drop a partial last line, or terminate a whole one."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return
    os.lseek(fd, size - 1, os.SEEK_SET)
    if os.read(fd, 1) == b"\n":
        return
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            break
        data += chunk
    cut = data.rfind(b"\n")
    last = data[cut + 1:]
    try:
        whole = isinstance(json.loads(last), dict)
    except ValueError:
        whole = False
    if whole:
        os.write(fd, b"\n")  # O_APPEND: lands at the end
    else:
        # Under the lock only a writer that died mid-line can leave this; it was never a record.
        os.ftruncate(fd, cut + 1)


def append_history(history_file: Path, results: dict[str, Any]) -> None:
    """Append one JSON line per result of ``results`` to ``history_file`` (created if needed).

    Safe under concurrent appends from several processes: a ``<file>.lock`` file lock
    serialises writers and each run's lines go out in a single ``write``.
    """
    history_file = Path(history_file)
    history_file.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(row, sort_keys=True, allow_nan=False) + "\n"
                      for row in history_rows(results)).encode("utf-8")
    with FileLock(str(history_file) + ".lock"):
        fd = os.open(history_file, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _drop_torn_tail(fd)
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)


def read_history(history_file: Path) -> list[dict[str, Any]]:
    """All rows of ``history_file`` in file order; ``[]`` when it does not exist.

    A torn last line (a writer killed mid-line) is skipped. A bad line elsewhere raises
    :class:`ReportError` naming the file and line, since that is damage a person should see.
    """
    history_file = Path(history_file)
    try:
        text = history_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{history_file}: cannot be read as UTF-8 text ({exc})") from None
    lines = text.split("\n")
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        is_last = number == len(lines)  # only a line without a trailing newline can be torn
        try:
            row = json.loads(line)
        except ValueError:
            if is_last:
                continue
            raise ReportError(f"{history_file}: line {number}: not valid JSON; expected one "
                              "history record per line (delete or fix that line)") from None
        missing = [k for k in HISTORY_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise ReportError(f"{history_file}: line {number}: field '{missing[0]}': expected "
                              "a history record with " + ", ".join(HISTORY_KEYS))
        rows.append(row)
    return rows


def _timestamp(created: Any) -> float | None:
    try:
        when = datetime.fromisoformat(str(created))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _scale_name(scale: Any) -> Any:
    return scale.get("name") if isinstance(scale, dict) else scale


ResultKey = tuple[str, str | None, str]


def result_key(claim_id: str, params: dict[str, Any]) -> ResultKey:
    """Identity of one parametrised claim across runs: claim id, protocol, the other params.

    The protocol is part of the identity, so a result under one protocol is never compared with
    the same claim under another. A row whose params carry no protocol (written before
    protocols existed) has protocol None and matches earlier rows without one.
    """
    protocol = params.get("protocol")
    rest = {k: v for k, v in params.items() if k != "protocol"}
    return (claim_id, None if protocol is None else str(protocol),
            json.dumps(_plain(rest), sort_keys=True))


def previous_verdicts(history: list[dict[str, Any]],
                      results: dict[str, Any]) -> dict[ResultKey, dict[str, Any]]:
    """For each (claim_id, protocol, params), the latest history row of an earlier run of the
    same scale.

    "Earlier" means another run id with an older ``created`` time, so a history that already
    holds this run's own lines (appended before rendering) is handled.
    """
    now = _timestamp(results["created"])
    scale = results["scale"]["name"]
    best: dict[ResultKey, tuple[float, dict[str, Any]]] = {}
    for row in history:
        if row.get("run_id") == results["run_id"] or _scale_name(row.get("scale")) != scale:
            continue
        when = _timestamp(row.get("created"))
        if when is None or (now is not None and when >= now):
            continue
        params = row.get("params") if isinstance(row.get("params"), dict) else {}
        key = result_key(str(row.get("claim_id")), params)
        if key not in best or when >= best[key][0]:
            best[key] = (when, row)
    return {key: row for key, (_, row) in best.items()}

"""``fixtures/manifest.json``: read strictly, every field checked, errors that name it.

The manifest is the fixture store's table of contents and its record of what each agent's
files must hash to. A damaged or hand-edited one is refused with one line naming the file and
the field (``fixtures/manifest.json: agents[3].env_id: missing``), never a KeyError or a
traceback, and before any training starts. An entry::

    {"key": "34616b94937a4e06", "env_id": "Hopper-v5", "algo": "ppo", "seed": 0,
     "iterations": 500, "protocol": "authors", "checkpoints": [0, 150, 300, 450, 500],
     "training_version": 1, "final_mean_return": 2281.1,
     "sha256": {"ckpt_0000.safetensors": "<64 hex>", ..., "config.json": "...",
                "curve.json": "..."},
     "command": "...", "versions": {...}, "platform": "...", "wall_time_s": 417.5,
     "created": "2026-12-01T09:26:07Z"}

``sha256`` is required to load the entry's agents (:func:`pgclaims.agents.fixtures.load`);
entries written before digests existed get theirs from ``pgclaims fixtures verify
--write-missing``, which checks each file first.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgclaims.agents.digests import HEX
from pgclaims.agents.train import ckpt_name

SCHEMA = 1
KEY = re.compile(r"^[0-9a-f]{16}$")
"""A fixture key (:meth:`pgclaims.agents.agent.TrainConfig.key`); also a folder name, so nothing
else (no ``..``, no ``/``) is accepted."""
FILE_NAME = re.compile(r"^(ckpt_\d{4,}\.safetensors|config\.json|curve\.json)$")
"""Files a fixture's ``sha256`` may name: its checkpoints, config and curve."""
ALGOS = ("ppo", "trpo")


class FixtureError(LookupError):
    """A fixture that is missing, stale or unreadable; the message says what to run."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


Check = tuple[Callable[[Any], bool], str]
FIELDS: dict[str, tuple[Check, bool]] = {
    "key": ((lambda v: isinstance(v, str) and bool(KEY.match(v)), "16 hex digits"), True),
    "env_id": ((lambda v: isinstance(v, str) and v.strip() != "", "a gymnasium id"), True),
    "algo": ((lambda v: v in ALGOS, "'ppo' or 'trpo'"), True),
    "seed": ((lambda v: _is_int(v) and v >= 0, "an integer >= 0"), True),
    "iterations": ((lambda v: _is_int(v) and v >= 1, "an integer >= 1"), True),
    "protocol": ((lambda v: isinstance(v, str) and v.strip() != "", "a protocol name"), False),
    "checkpoints": ((lambda v: isinstance(v, list) and len(v) > 0
                     and all(_is_int(c) and c >= 0 for c in v),
                     "a non-empty list of iterations"), True),
    "training_version": ((_is_int, "an integer"), True),
    "final_mean_return": ((lambda v: v is None or _is_num(v), "a finite number or null"),
                          True),
    "sha256": ((lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and FILE_NAME.match(k) and isinstance(d, str) and HEX.match(d)
        for k, d in v.items()), "an object of file name -> 64 lowercase hex digits"), False),
    "wall_time_s": ((lambda v: v is None or (_is_num(v) and v >= 0),
                     "a finite number >= 0 or null"), False),
    "command": ((lambda v: isinstance(v, str), "a string"), False),
    "created": ((lambda v: isinstance(v, str), "a string"), False),
    "platform": ((lambda v: isinstance(v, str), "a string"), False),
    "versions": ((lambda v: isinstance(v, dict), "an object"), False),
}
"""Per entry field: (check, what it must be), required. Other fields are kept as they are."""


def _fail(path: Path, field: str, problem: str) -> FixtureError:
    return FixtureError(f"{path}: {field}: {problem}")


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value) if _jsonable(value) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def check_entry(entry: Any, where: str, path: Path) -> dict[str, Any]:
    """``entry`` if it is a valid manifest entry, else :class:`FixtureError` naming the field."""
    if not isinstance(entry, dict):
        raise _fail(path, where, f"expected an object (one agent), got {_short(entry)}")
    for name, ((ok, expected), required) in FIELDS.items():
        if name not in entry:
            if required:
                raise _fail(path, f"{where}.{name}", "missing")
            continue
        if not ok(entry[name]):
            raise _fail(path, f"{where}.{name}", f"expected {expected}, got "
                        f"{_short(entry[name])}")
    late = [c for c in entry["checkpoints"] if c > entry["iterations"]]
    if late:
        raise _fail(path, f"{where}.checkpoints", f"{late} beyond iterations "
                    f"{entry['iterations']}")
    return entry


def parse(text: str | bytes, path: Path) -> dict[str, Any]:
    """The validated manifest in ``text`` (read from ``path``, which errors name)."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:  # JSON errors are ValueErrors
        raise FixtureError(f"{path}: not a fixture manifest: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _fail(path, "<top level>", f"expected an object with 'schema' and 'agents', got "
                    f"{_short(doc)}")
    if doc.get("schema") != SCHEMA or not _is_int(doc.get("schema")):
        raise _fail(path, "schema", "missing" if "schema" not in doc else
                    f"expected {SCHEMA}, got {_short(doc['schema'])}")
    agents = doc.get("agents")
    if not isinstance(agents, list):
        raise _fail(path, "agents", "missing" if "agents" not in doc else
                    f"expected a list, got {_short(agents)}")
    seen: dict[str, int] = {}
    for i, entry in enumerate(agents):
        check_entry(entry, f"agents[{i}]", path)
        if entry["key"] in seen:
            raise _fail(path, f"agents[{i}].key", f"{entry['key']} is listed twice (also "
                        f"agents[{seen[entry['key']]}])")
        seen[entry["key"]] = i
    return doc


def read(base: Path) -> dict[str, Any]:
    """``base/manifest.json`` validated (an empty manifest when there is none)."""
    path = base / "manifest.json"
    if not path.exists():
        return {"schema": SCHEMA, "agents": []}
    if path.is_dir():
        raise FixtureError(f"{path}: is a folder, expected the fixture manifest file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FixtureError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse(raw, path)


def expected_files(entry: dict[str, Any]) -> list[str]:
    """The files a fixture's store folder holds: its checkpoints, config and curve."""
    return [ckpt_name(c) for c in entry["checkpoints"]] + ["config.json", "curve.json"]


__all__ = ["FIELDS", "FixtureError", "check_entry", "expected_files", "parse", "read"]

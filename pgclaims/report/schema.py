"""Read and validate ``reports/<run-id>/results.json`` (schema 1, ``docs/results-schema.md``).

The report trusts nothing it did not check: a missing, truncated, corrupt or foreign file is
turned into one :class:`ReportError` whose one-line message names the file, the field and what
was expected, so the user can act on it without reading a traceback. Every number is finite:
the suite writes strict JSON (a NaN becomes null), so a NaN or Infinity token, which Python's
JSON reader accepts, is a hand edit or a foreign writer, and it is refused by field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
VERDICTS = ("REPRODUCED", "REFUTED", "INCONCLUSIVE", "ERROR", "PENDING")
"""PENDING: a test the run did not measure because it stopped first (time budget, Ctrl-C)."""
# The contract lists "<", ">", "<="; ">=" is accepted too because it is the same kind of
# one-sided rule and refusing a whole report over it would help nobody.
DIRECTIONS = ("<", "<=", ">", ">=")


class ReportError(Exception):
    """A results or history file the report cannot use; the message is one actionable line."""


_MISSING = object()
Check = tuple[Callable[[Any], bool], str]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _nullable(check: Check) -> Check:
    pred, text = check
    return (lambda v: v is None or pred(v)), f"{text} or null"


def _one_of(*values: str) -> Check:
    return (lambda v: v in values), "one of " + ", ".join(repr(x) for x in values)


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | bool) or _is_num(v)


def _is_interval(v: Any) -> bool:
    if not (isinstance(v, list) and len(v) == 2 and all(_is_num(x) for x in v)):
        return False
    lo, hi = v
    return lo <= hi


def _is_num_list(v: Any) -> bool:
    return isinstance(v, list) and all(x is None or _is_num(x) for x in v)


STR: Check = (_is_str, "a string")
NONEMPTY_STR: Check = (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")
INT: Check = (_is_int, "an integer")
NUM: Check = (_is_num, "a number")
BOOL: Check = (lambda v: isinstance(v, bool), "true or false")
DICT: Check = (lambda v: isinstance(v, dict), "an object")
LIST: Check = (lambda v: isinstance(v, list), "a list")
NUM_LIST: Check = (_is_num_list, "a list of numbers (null allowed)")
PARAMS: Check = (
    lambda v: isinstance(v, dict) and all(_is_scalar(x) for x in v.values()),
    "an object of strings/numbers/booleans/null",
)
AGENT_VALUES: Check = (
    lambda v: isinstance(v, list) and all(
        isinstance(x, dict) and (x.get("value") is None or _is_num(x["value"])) and (
            x.get("within_var") is None or _is_num(x["within_var"])) and _is_int(
            x.get("repeats", 0)) for x in v),
    "a list of {value, within_var, repeats} objects",
)
INTERVAL: Check = (_is_interval, "[lo, hi] with lo <= hi")
STR_LIST: Check = (lambda v: isinstance(v, list) and all(map(_is_str, v)), "a list of strings")
PROB: Check = (lambda v: _is_num(v) and 0.0 <= v <= 1.0, "a number in [0, 1]")
NON_NEGATIVE: Check = (lambda v: _is_num(v) and v >= 0, "a finite number >= 0")

# (check, required) per key; keys not listed are allowed and ignored (forward compatible).
Spec = Mapping[str, tuple[Check, bool]]

TOP: Spec = {
    "schema": ((lambda v: v == SCHEMA_VERSION and _is_int(v), f"{SCHEMA_VERSION}"), True),
    "run_id": (NONEMPTY_STR, True),
    "created": (STR, True),
    "scale": (DICT, True),
    "provenance": (DICT, True),
    "results": (LIST, True),
    "figures": (DICT, False),
    "partial": (_nullable(DICT), False),
    "reference": (_nullable(DICT), False),
}
SCALE: Spec = {
    "name": (NONEMPTY_STR, True),
    "envs": (STR_LIST, False),
    "algos": (STR_LIST, False),
    "seeds": ((lambda v: isinstance(v, list) and all(map(_is_int, v)), "a list of integers"),
              False),
}
PROVENANCE: Spec = {
    "env_substitution": (
        (lambda v: isinstance(v, dict) and all(map(_is_str, v.values())), "an object of strings"),
        True,
    ),
    "git_commit": (_nullable(STR), False),
    "git_dirty": (_nullable(BOOL), False),
    "python": (_nullable(STR), False),
    "platform": (_nullable(STR), False),
    "machine": (_nullable(STR), False),
    "packages": (DICT, False),
    "wall_time_s": (_nullable(NON_NEGATIVE), False),
    "bootstrap": (DICT, False),
    "error_control": (DICT, False),
    "measure_seed": (INT, False),
    "agents": (DICT, False),
    "backend": (DICT, False),
    "protocols": ((lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()),
                   "an object of protocol objects"), False),
}
# One protocol of provenance.protocols; its other fields (the choices) are shown as they are.
PROTOCOL: Spec = {
    "name": (NONEMPTY_STR, True),
    "summary": (STR, True),
}
ROW: Spec = {
    "nodeid": (STR, True),
    "claim_id": (NONEMPTY_STR, True),
    "section": (NONEMPTY_STR, True),
    "sentence": (STR, True),
    "statistic_name": (STR, True),
    "paper": (STR, True),
    "params": (PARAMS, True),
    "direction": (_one_of(*DIRECTIONS), True),
    "threshold": (_nullable(NUM), True),
    "statistic": (_nullable(NUM), True),
    "interval": (_nullable(INTERVAL), True),
    "p_value": (_nullable(PROB), True),
    "p_refute": (_nullable(PROB), False),
    "p_holm": (_nullable(PROB), False),
    "p_bh": (_nullable(PROB), False),
    "p_side": (_nullable(_one_of("claim", "refute")), False),
    "decision": (_nullable(DICT), False),
    "interval_method": (_nullable(STR), False),
    "verdict": (_one_of(*VERDICTS), True),
    "reason": (STR, True),
    "reason_code": (_nullable(STR), False),
    "reason_detail": (DICT, False),
    "reading": (_nullable(STR), False),
    "power": (_nullable(DICT), False),
    "agent_values": (_nullable(AGENT_VALUES), False),
    "reference": (_nullable(DICT), False),
    "paper_number": (_nullable(DICT), False),
    "n_agents": (_nullable(INT), False),
    "n_repeats": (_nullable(INT), False),
    "duration_s": (_nullable(NON_NEGATIVE), False),
}
# A run stopped before every test was measured (its PENDING rows); remaining: what is left
# by the cost plan, null when it could not be planned.
PARTIAL: Spec = {
    "reason": (NONEMPTY_STR, True),
    "pending_tests": (INT, True),
    "tests": (INT, True),
    "time_budget_s": (_nullable(NUM), False),
    "remaining": (_nullable(DICT), True),
}
REMAINING: Spec = {
    "tasks": (INT, True),
    "pairs": (INT, True),
    "core_hours": (_nullable(NUM), True),
    "by_kind": ((lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()),
                 "an object of task kinds"), True),
    "rates_measured": (_nullable(STR), False),
}
_CURVE: Spec = {
    "env": (STR, True), "algo": (STR, True), "seed": (INT, True), "iteration": (INT, True),
    "n": (NUM_LIST, True), "mean": (NUM_LIST, True), "lo": (NUM_LIST, True),
    "hi": (NUM_LIST, True),
}
FIGURES: Mapping[str, Spec] = {
    "training_curve": {
        "env": (STR, True), "algo": (STR, True), "seed": (INT, True),
        "iteration": (NUM_LIST, True), "mean_return": (NUM_LIST, True),
    },
    "grad_pairwise": _CURVE,
    "grad_true": _CURVE,
    "value_mre": {
        "env": (STR, True), "algo": (STR, True), "seed": (INT, True), "iteration": (INT, True),
        "target": (_one_of("gae", "returns"), True), "split": (_one_of("train", "heldout"), True),
        "mre": (_nullable(NUM), True),
    },
    "baselines": {**_CURVE, "baseline": (_one_of("valuenet", "true", "zero"), True)},
    "ablation_curve": {
        "env": (STR, True), "algo": (STR, True), "seed": (INT, True),
        "study": (_one_of("baseline", "regime"), True),
        "baseline": (_one_of("valuenet", "zero"), True), "multiplier": (NUM, True),
        "steps": (INT, True), "pairs": (NUM_LIST, True), "mean_return": (NUM_LIST, True),
    },
    "landscape": {
        "env": (STR, True), "algo": (STR, True), "seed": (INT, True), "iteration": (INT, True),
        "regime": (NONEMPTY_STR, True), "kind": (_one_of("reward", "surrogate"), True),
        "a": (NUM_LIST, True), "b": (NUM_LIST, True), "z": (LIST, True),
        "step_norm_ratio": (_nullable(NUM), False),
    },
}
# Lists inside one figure row that must have the length of the first one named.
_SAME_LENGTH = {
    "training_curve": ("iteration", "mean_return"),
    "ablation_curve": ("pairs", "mean_return"),
    "grad_pairwise": ("n", "mean", "lo", "hi"),
    "grad_true": ("n", "mean", "lo", "hi"),
    "baselines": ("n", "mean", "lo", "hi"),
}


class _Checker:
    """Walks a parsed document; the first violation raises with file and field path."""

    def __init__(self, file: Path) -> None:
        self.file = file

    def fail(self, field: str, expected: str, value: Any = _MISSING) -> NoReturn:
        got = "but it is missing" if value is _MISSING else f"got {_short(value)}"
        raise ReportError(f"{self.file}: field '{field}': expected {expected}, {got}")

    def object(self, obj: Any, spec: Spec, where: str) -> None:
        if not isinstance(obj, dict):
            self.fail(where or "<top level>", "an object", obj)
        for key, ((pred, expected), required) in spec.items():
            field = f"{where}.{key}" if where else key
            if key not in obj:
                if required:
                    self.fail(field, expected)
                continue
            if not pred(obj[key]):
                self.fail(field, expected, obj[key])


def _check_figures(chk: _Checker, figures: dict[str, Any]) -> None:
    for key, spec in FIGURES.items():
        if key not in figures:
            continue
        rows = figures[key]
        if not isinstance(rows, list):
            chk.fail(f"figures.{key}", "a list of objects", rows)
        for i, row in enumerate(rows):
            where = f"figures.{key}[{i}]"
            chk.object(row, spec, where)
            names = _SAME_LENGTH.get(key, ())
            for name in names[1:]:
                if len(row[name]) != len(row[names[0]]):
                    chk.fail(f"{where}.{name}", f"{len(row[names[0]])} values like "
                             f"'{names[0]}'", f"{len(row[name])} values")
            if key == "landscape":
                z = row["z"]
                shape_ok = len(z) == len(row["a"]) and all(
                    _is_num_list(r) and len(r) == len(row["b"]) for r in z)
                if not shape_ok:
                    chk.fail(f"{where}.z", f"a {len(row['a'])} x {len(row['b'])} list of "
                             "number lists (z[i][j] at a[i], b[j])", z)


def non_finite(obj: Any, where: str = "") -> tuple[str, float] | None:
    """(field path, value) of the first NaN or infinity anywhere in ``obj``, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "<top level>", obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(
        obj, list) else ()
    for key, value in items:
        path = f"{where}[{key}]" if isinstance(key, int) else (
            f"{where}.{key}" if where else str(key))
        found = non_finite(value, path)
        if found is not None:
            return found
    return None


def validate(doc: Any, file: Path) -> dict[str, Any]:
    """Check ``doc`` against schema 1 and return it; raise :class:`ReportError` otherwise."""
    chk = _Checker(file)
    bad = non_finite(doc)
    if bad is not None:
        chk.fail(bad[0], "a finite number (results.json is strict JSON: no NaN or Infinity)",
                 bad[1])
    if not isinstance(doc, dict):
        chk.fail("<top level>", "a JSON object (a pgclaims results.json)", doc)
    if "schema" not in doc:
        chk.fail("schema", f"{SCHEMA_VERSION} (this is not a pgclaims results.json?)")
    chk.object(doc, TOP, "")
    chk.object(doc["scale"], SCALE, "scale")
    chk.object(doc["provenance"], PROVENANCE, "provenance")
    for name, protocol in (doc["provenance"].get("protocols") or {}).items():
        chk.object(protocol, PROTOCOL, f"provenance.protocols.{name}")
    for i, row in enumerate(doc["results"]):
        chk.object(row, ROW, f"results[{i}]")
        protocol = row["params"].get("protocol")
        if protocol is not None and not NONEMPTY_STR[0](protocol):
            chk.fail(f"results[{i}].params.protocol", "a protocol name (a non-empty string) or "
                     "null", protocol)
    _check_figures(chk, doc.get("figures", {}))
    if doc.get("partial") is not None:
        chk.object(doc["partial"], PARTIAL, "partial")
        if doc["partial"]["remaining"] is not None:
            chk.object(doc["partial"]["remaining"], REMAINING, "partial.remaining")
    return doc


def load_results(run_dir: Path) -> dict[str, Any]:
    """Read and validate ``run_dir/results.json``.

    Raises :class:`ReportError` with one line naming the file and the wrong field when the file
    is missing, unreadable, not JSON (e.g. truncated by a killed run) or not schema 1. Reads
    only; nothing on disk is changed.
    """
    file = Path(run_dir) / RESULTS_FILE
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ReportError(f"{file}: not found; run the claims suite to produce it") from None
    except OSError as exc:
        raise ReportError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    if not raw.strip():
        raise ReportError(f"{file}: empty file; expected a results.json (schema 1)")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ReportError(f"{file}: not UTF-8 text; expected a results.json (schema 1)") from None
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{file}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
            "the file may be truncated, rerun the claims suite") from None
    return validate(doc, file)

"""Rows, run ids and ``results.json`` of a claims run (``docs/results-schema.md``, schema 1).

Each claims test carries its row in ``item.user_properties`` as ``("pgclaims", row)``, a dict of
JSON built-ins (xdist ships it from the worker to the controller). The controller collects rows
from the test reports with :class:`Collector` and writes the run's document with
:func:`write_results`.
"""

from __future__ import annotations

import enum
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pgclaims.stats import ErrorControl, family_adjusted
from pgclaims.suite.claims import Claim, all_claims
from pgclaims.suite.paper_numbers import paper_number
from pgclaims.suite.readings import DESCRIPTIONS, READ_CODES, reading
from pgclaims.suite.scales import Scale

SCHEMA_VERSION = 1
PROPERTY = "pgclaims"
"""The ``user_properties`` name of a row."""
VERDICTS = ("REPRODUCED", "REFUTED", "INCONCLUSIVE", "ERROR", "PENDING")
"""PENDING: not measured, the run stopped first (:mod:`pgclaims.suite.stopping`)."""
PACKAGES = ("pgclaims", "torch", "gymnasium", "mujoco", "numpy", "scipy", "pytest",
            "pytest-xdist")
NO_VERDICT = "the test ended without recording a verdict"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def plain(value: Any) -> Any:
    """``value`` as JSON built-ins: numpy scalars and arrays, tuples, enums, paths converted;
    non-finite floats become None (JSON has no NaN)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray):
        return [plain(v) for v in (sorted(value) if isinstance(value, set | frozenset)
                                   else value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def item_params(item: Any) -> dict[str, Any]:
    """A test's parameters as row ``params``: every parametrized value, as a JSON scalar."""
    callspec = getattr(item, "callspec", None)
    out = {}
    for name, value in (callspec.params.items() if callspec is not None else ()):
        value = plain(value)
        out[name] = value if value is None or isinstance(value, str | int | float | bool) else (
            json.dumps(value))
    return out


def seed_for(nodeid: str) -> int:
    """A stable seed from a test id (same test, same bootstrap draws, on any machine)."""
    return int.from_bytes(hashlib.sha256(nodeid.encode("utf-8")).digest()[:8], "big") >> 1


def paper_number_of(claim_id: str) -> dict[str, Any] | None:
    """What the paper reports for the claim (:mod:`pgclaims.suite.paper_numbers`) as built-in
    types; None for a claim of another catalogue."""
    try:
        return plain(paper_number(claim_id).as_dict())
    except KeyError:
        return None


def base_row(nodeid: str, claim: Claim, params: Mapping[str, Any]) -> dict[str, Any]:
    """A row before the verdict: ERROR until the test records one."""
    return {
        "nodeid": nodeid,
        "claim_id": claim.id,
        "section": claim.section,
        "sentence": claim.sentence,
        "statistic_name": claim.statistic,
        "paper": claim.paper,
        "paper_number": paper_number_of(claim.id),
        "params": plain(dict(params)),
        "direction": claim.direction,
        "threshold": plain(claim.threshold),
        "statistic": None,
        "interval": None,
        "p_value": None,
        "p_refute": None,
        "verdict": "ERROR",
        "reason": NO_VERDICT,
        "reason_code": None,
        "n_agents": None,
        "n_repeats": None,
        "duration_s": None,
    }


def row_of(user_properties: Any) -> dict[str, Any] | None:
    """The row in a report's or item's ``user_properties`` (the last one wins)."""
    found = None
    for entry in user_properties or ():
        if len(entry) == 2 and entry[0] == PROPERTY and isinstance(entry[1], dict):
            found = entry[1]
    return found


def set_row(user_properties: list[Any], row: dict[str, Any]) -> None:
    """Replace (or add) the row in ``user_properties``."""
    user_properties[:] = [e for e in user_properties if not (len(e) == 2 and e[0] == PROPERTY)]
    user_properties.append((PROPERTY, row))


def _crash_message(report: Any) -> str:
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or (str(longrepr) if longrepr is not None else "")
    text = text.strip() or "unknown error"
    return text if len(text) <= 800 else text[:797] + "..."


class Collector:
    """Gathers rows from test reports on the controller (with or without xdist)."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._duration: dict[str, float] = {}
        self._problem: dict[str, tuple[str, str]] = {}
        self._ran: set[str] = set()

    def absorb(self, report: Any) -> None:
        row = row_of(getattr(report, "user_properties", None))
        if row is None:
            return
        nodeid = report.nodeid
        self._rows[nodeid] = dict(row)
        if report.when == "call" or not report.passed:
            self._ran.add(nodeid)
        self._duration[nodeid] = self._duration.get(nodeid, 0.0) + float(report.duration or 0)
        if nodeid in self._problem:
            return
        pending = getattr(report, "pgclaims_pending", None)
        if pending is not None:
            self._problem[nodeid] = ("PENDING", str(pending))
            return
        if report.failed:
            if report.when == "call" and row.get("verdict") == "REFUTED":
                return
            what = {"setup": "error in setup", "call": "error",
                    "teardown": "error in teardown"}[report.when]
            recorded = row.get("verdict")
            after = f" (after recording {recorded})" if recorded != "ERROR" else ""
            self._problem[nodeid] = ("ERROR", f"{what}{after}: {_crash_message(report)}")
        elif report.skipped and getattr(report, "pgclaims_inconclusive", None) is None:
            message = report.longrepr[2] if isinstance(report.longrepr, tuple | list) else (
                _crash_message(report))
            self._problem[nodeid] = ("INCONCLUSIVE", f"skipped, no verdict: {message}")

    def rows(self) -> list[dict[str, Any]]:
        """Every row, in CLAIMS.md order of claims, then by test id."""
        out = []
        for nodeid, row in self._rows.items():
            row = dict(row)
            row["duration_s"] = round(self._duration.get(nodeid, 0.0), 3)
            if nodeid in self._problem:
                verdict, reason = self._problem[nodeid]
                row.update(verdict=verdict, reason=reason,
                           reason_code=None if verdict in ("ERROR", "PENDING") else "no_data")
                row.pop("reason_detail", None)
                if verdict in ("ERROR", "PENDING"):
                    row.update(statistic=None, interval=None, p_value=None, p_refute=None,
                               decision=None)
            out.append(row)
        return sorted(out, key=results_order)

    def unfinished(self) -> set[str]:
        """Tests that began but never ended their call (a run interrupted in them)."""
        return set(self._rows) - self._ran

    def __len__(self) -> int:
        return len(self._rows)


def results_order(row: Mapping[str, Any]) -> tuple[int, str]:
    """Sort key of rows: CLAIMS.md order of claims (registered ones after), then test id."""
    order = {cid: i for i, cid in enumerate(all_claims())}
    return order.get(row["claim_id"], len(order)), row["nodeid"]


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out = dict.fromkeys(VERDICTS, 0)
    for row in rows:
        out[row["verdict"]] = out.get(row["verdict"], 0) + 1
    return out


# ---------------------------------------------------------------------------------------------
# Run ids and the run's document


def check_run_id(run_id: str) -> str | None:
    """None if ``run_id`` can name a run folder, else what is wrong with it."""
    if not _RUN_ID.match(run_id) or run_id == "latest":
        return (f"--run-id {run_id!r}: use letters, digits, '.', '_' and '-' (not starting "
                "with '.' or '-', and not 'latest')")
    return None


def new_run_id(scale_name: str, reports_dir: Path, now: float | None = None) -> str:
    """``YYYYmmdd-HHMMSS-<scale>`` (UTC), with a numeric suffix if that folder exists."""
    base = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"-{scale_name}"
    run_id, k = base, 1
    while (reports_dir / run_id).exists():
        k += 1
        run_id = f"{base}-{k}"
    return run_id


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def machine() -> str:
    """The machine in one line: CPU model, logical CPUs, memory (Linux; what it cannot read it
    leaves out), e.g. "Intel(R) Xeon(R) Processor, 2 CPUs, 23.6 GiB"."""
    parts = []
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if model:
            parts.append(model.group(1).strip())
    except OSError:
        pass
    parts.append(f"{os.cpu_count()} CPUs")
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        parts.append(f"{mem / 2**30:.1f} GiB")
    except (ValueError, OSError, AttributeError):
        pass
    return ", ".join(parts)


def installed_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Each distribution's installed version, or None when it is not installed."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(scale: Scale, wall_time_s: float,
               extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Where and how the run happened (schema "provenance"); git describes the checkout the
    pgclaims package was imported from."""
    from pgclaims.agents.envs import PAPER_ENVS
    from pgclaims.agents.protocol import get_protocol

    root = Path(__file__).resolve().parent
    packages = installed_versions(PACKAGES)
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return plain({
        "git_commit": _git(root, "rev-parse", "HEAD") or None,
        "git_dirty": None if status is None else bool(status),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": machine(),
        "packages": packages,
        "env_substitution": dict(PAPER_ENVS),
        "protocols": {name: get_protocol(name).to_dict() for name in scale.protocols},
        "wall_time_s": round(wall_time_s, 1),
        "bootstrap": {"method": scale.bootstrap_method,
                      "n_resamples": scale.bootstrap_resamples,
                      "confidence_level": scale.confidence_level},
        **(extra or {}),
    })


def adjust_p_values(rows: list[dict[str, Any]],
                    family_size: int | None = None) -> list[dict[str, Any]]:
    """The rows with ``p_holm``, ``p_bh`` and ``p_side``: Holm and Benjamini-Hochberg
    adjustments over each protocol's family of 2 x ``family_size`` one-sided hypotheses (both
    sides of every row; rows not in ``rows`` count with p = 1, so the values are provisional
    until the family is measured), for the row's smaller one-sided p-value, and which side
    that is ("claim" or "refute"). ``family_size`` None: the rows given are the family. A row
    without ``p_refute`` (an older suite) takes 1 - ``p_value``; one without p-values gets
    None."""
    out = [dict(row, p_holm=None, p_bh=None, p_side=None) for row in rows]
    groups: dict[Any, list[int]] = {}
    for i, row in enumerate(rows):
        if row.get("p_value") is not None and math.isfinite(row["p_value"]):
            groups.setdefault((row.get("params") or {}).get("protocol"), []).append(i)
    for members in groups.values():
        claim = [rows[i]["p_value"] for i in members]
        refute = [rows[i]["p_refute"] if rows[i].get("p_refute") is not None
                  else 1.0 - rows[i]["p_value"] for i in members]
        size = max(family_size or 0, len(members))
        h, bh, side = family_adjusted(claim, refute, size)
        for k, i in enumerate(members):
            out[i].update(p_holm=h[k], p_bh=bh[k], p_side=side[k])
    return out


def error_control_record(control: ErrorControl, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """provenance.error_control: the policy, its level, and how much of each protocol's family
    this run measured, i.e. rows with an interval or p-values, that could err (the Holm / BH
    views are provisional until all of it)."""
    measured: dict[str, int] = {}
    for row in rows:
        decided_on = (row.get("decision") or {}).get("interval")
        if row.get("p_value") is not None or decided_on is not None:
            key = str((row.get("params") or {}).get("protocol", "-"))
            measured[key] = measured.get(key, 0) + 1
    return plain({**control.to_dict(), "rows_measured": measured,
                  "provisional": any(n < control.family_size for n in measured.values()),
                  "expected_false_measured": {k: control.expected_false(n)
                                              for k, n in measured.items()}})


def document(run_id: str, created: str, scale: Scale, rows: list[dict[str, Any]],
             prov: dict[str, Any], figures: dict[str, Any] | None = None,
             partial: dict[str, Any] | None = None, *,
             error_control: ErrorControl | None = None) -> dict[str, Any]:
    """The run's results.json; ``partial`` (a run stopped before every test was measured,
    :func:`pgclaims.suite.stopping.partial_record`) only when there is one; ``error_control``
    the run's (its family size m fixes the Holm / BH family, recorded in provenance)."""
    size = None if error_control is None else error_control.family_size
    rows = [dict(r, reading=reading(r)) if r.get("verdict") == "REFUTED"
            or r.get("claim_id") in DESCRIPTIONS or r.get("reason_code") in READ_CODES else r
            for r in adjust_p_values(rows, size)]
    if error_control is not None:
        prov = {**prov, "error_control": error_control_record(error_control, rows)}
    doc = {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "created": created,
        "scale": scale.to_dict(),
        "provenance": prov,
        "results": rows,
        "figures": figures or {},
    }
    if partial is not None:
        doc["partial"] = partial
    return plain(doc)


def write_json(path: Path, doc: Any) -> Path:
    """Atomic write (temporary file in the same folder, then rename); strict JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

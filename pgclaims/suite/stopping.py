"""Stop any time, resume where you stopped: ``--time-budget`` and Ctrl-C in a claims run.

Every finished measurement is in the on-disk cache (:mod:`pgclaims.measure.cache`), every
trained smoke agent in the agents cache, so a later run of the same command on the same cache
reads them back and measures only what is left. This module makes a run stop cleanly:

- With ``--time-budget DURATION`` (``90s``, ``45m``, ``5h``, ``1h30m``) no new measurement,
  agent training or ablation run starts once the budget is spent: :func:`check` raises
  :class:`Pending` in the test that would have started it (the cache calls it before a
  computation, never before a read). What is in flight finishes and is cached; tests whose
  measurements are all cached still get their verdicts.
- Ctrl-C drops what is in flight (nothing is half written: every file is written to a
  temporary name, then renamed) and ends the session.

Either way, the claims tests not measured are rows of a fourth verdict, ``PENDING``, and
``results.json`` gets a ``partial`` record (:func:`partial_record`): why the run stopped, how
many tests are pending and what remains by the cost plan (tasks, state-action pairs and
core-hours, :mod:`pgclaims.suite.plan`, :mod:`pgclaims.suite.costs`).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

PENDING = "PENDING"
PENDING_ATTR = "pgclaims_pending"
"""Report attribute (a str, the reason) marking a PENDING outcome."""
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


class Pending(Exception):
    """The test was not measured: the run stopped first. Reported as PENDING."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_duration(text: str) -> float:
    """Seconds in ``text``: numbers with a unit each (s, m, h, d), e.g. ``1h30m``; positive."""
    compact = text.strip().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r}: expected a duration such as 90s, 45m, 5h or 1h30m")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r}: expected a positive duration")
    return seconds


def describe_duration(seconds: float) -> str:
    """``5400`` -> ``1h30m``: how a budget is named in reasons and reports."""
    out, left = "", round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            out += f"{left // size}{unit}"
            left %= size
    return out + (f"{left}s" if left or not out else "")


_STATE: dict[str, Any] = {}
"""This process's deadline (``time.time()`` seconds) and the budget's name, set by the plugin."""


def set_deadline(deadline: float | None, budget: str = "") -> None:
    """Stop new work at ``deadline`` in this process (None: never); ``budget`` names it."""
    _STATE.clear()
    if deadline is not None:
        _STATE.update(deadline=deadline, budget=budget)


def over_budget() -> bool:
    """True once this process's deadline has passed."""
    return "deadline" in _STATE and time.time() >= _STATE["deadline"]


def check(what: str) -> None:
    """Raise :class:`Pending` if the time budget is spent, before starting ``what``."""
    if over_budget():
        raise Pending(f"not measured: the time budget ({_STATE['budget']}) ran out before "
                      f"{what}; run the same command again on the same cache to continue")


# ---------------------------------------------------------------------------------------------
# The rows of the tests a run did not measure


def planned_path(run_dir: Path, worker: str) -> Path:
    """Where xdist worker ``worker`` leaves its collected rows for the controller."""
    return run_dir / f".planned-{worker}.json"


def save_planned(rows: Mapping[str, dict[str, Any]], path: Path) -> None:
    from pgclaims.suite.results import write_json

    write_json(path, dict(rows))


def take_planned(path: Path) -> dict[str, dict[str, Any]]:
    """Read and delete the rows at ``path`` ({} if there are none)."""
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}
    finally:
        path.unlink(missing_ok=True)


def stop_reason(interrupted: bool, budget: str | None, exit_status: int) -> str:
    """Why tests went unmeasured, for their rows and the ``partial`` record."""
    if interrupted:
        return "interrupted (Ctrl-C)"
    if budget and over_budget():
        return f"the time budget ({budget}) ran out"
    return f"the session ended first (exit status {exit_status})"


def pending_row(base: dict[str, Any], reason: str) -> dict[str, Any]:
    """The row of a test that never ran."""
    return {**base, "verdict": PENDING, "statistic": None, "interval": None, "p_value": None,
            "reason": f"not measured: {reason}; run the same command again on the same cache "
                      "to continue"}


def with_pending(rows: list[dict[str, Any]], planned: Mapping[str, dict[str, Any]],
                 cut: Collection[str], reason: str) -> list[dict[str, Any]]:
    """``rows`` (the tests that reported) with a PENDING row for every ``planned`` test that
    did not report and for every test ``cut`` short by the stop."""
    kept = [r for r in rows if r["nodeid"] not in cut]
    seen = {r["nodeid"] for r in kept}
    bases = {**{r["nodeid"]: r for r in rows if r["nodeid"] in cut}, **planned}
    return kept + [pending_row(row, reason) for n, row in bases.items() if n not in seen]


# ---------------------------------------------------------------------------------------------
# What remains


def remaining_units(ledger_tests: Mapping[str, Collection[str]], pending: Collection[str],
                    finished: Collection[str], units_done: Collection[str]) -> set[str]:
    """Work units of the ``pending`` tests not done: not reported done by a process and not
    needed by a finished (non-pending) test, which had them measured."""
    done = set(units_done)
    done.update(u for n in finished if n not in pending for u in ledger_tests.get(n, ()))
    return {u for n in pending for u in ledger_tests.get(n, ()) if u not in done}


def partial_record(scale: Any, claim_ids: list[str], units: set[str], reason: str,
                   pending: int, tests: int, budget_s: float | None,
                   cache: Path | None = None) -> dict[str, Any]:
    """The ``partial`` record of results.json: why, how many tests are pending, and what
    remains by the plan (tasks by kind, pairs, core-hours at this machine's rates: with a
    measurement ``cache``, today's kept there (:func:`pgclaims.suite.costs.machine_rates`),
    else measured now, a few seconds per environment; None if that fails or is interrupted)."""
    from pgclaims.suite import costs
    from pgclaims.suite import plan as plan_mod

    record: dict[str, Any] = {"reason": reason, "pending_tests": pending, "tests": tests,
                              "time_budget_s": budget_s,
                              "remaining": {"tasks": 0, "pairs": 0, "core_hours": None,
                                            "by_kind": {}, "rates_measured": None}}
    plan = plan_mod.build(scale, [c for c in claim_ids if c in plan_mod.USES])
    tasks = [plan.tasks[u] for u in sorted(units) if u in plan.tasks]
    remaining = record["remaining"]
    by_kind: dict[str, dict[str, Any]] = {}
    for task in tasks:
        row = by_kind.setdefault(task.kind, {"count": 0, "pairs": 0, "core_hours": None})
        row["count"] += 1
        row["pairs"] += task.pairs
    remaining.update(tasks=len(tasks), pairs=sum(t.pairs for t in tasks), by_kind=by_kind)
    if not tasks:
        remaining["core_hours"] = 0.0
        return record
    try:
        what = (tuple(dict.fromkeys(t.env for t in tasks)),
                tuple(dict.fromkeys(t.algo for t in tasks)), tasks[0].protocol)
        rates = (costs.measure_rates(*what) if cache is None
                 else costs.machine_rates(*what, cache))
    except (Exception, KeyboardInterrupt):  # the verdicts are written regardless
        return record
    for kind, row in by_kind.items():
        row["core_hours"] = sum(costs.task_seconds(t, plan, rates)[0]
                                for t in tasks if t.kind == kind) / 3600
    remaining.update(core_hours=sum(r["core_hours"] for r in by_kind.values()),
                     rates_measured=rates.measured)
    return record


def summary(partial: Mapping[str, Any]) -> str:
    """The terminal's line about a partial run."""
    from pgclaims.suite.costs import duration

    left = partial.get("remaining") or {}
    hours = left.get("core_hours")
    work = (f"; what remains: {left.get('tasks', 0)} measurements or training runs, "
            f"~{left.get('pairs', 0):.2g} pairs" + (f", ~{hours:.2g} core-hours by the plan "
                                                    f"({duration(hours * 3600)} on one core)"
                                                    if hours is not None else "")
            if left else "")
    return (f"partial run: {partial['pending_tests']} of {partial['tests']} tests PENDING "
            f"({partial['reason']}){work}; run the same command again on the same cache to "
            "continue")


__all__ = ["PENDING", "Pending", "check", "describe_duration", "over_budget", "parse_duration",
           "partial_record", "pending_row", "remaining_units", "set_deadline", "summary",
           "with_pending"]

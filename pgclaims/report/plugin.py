"""The report's pytest plugin: renders a finished claims run through the suite's
``pytest_pgclaims_publish`` hook (history line, ``index.html``, ``reports/latest``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .files import update_latest
from .history import append_history, read_history
from .page import render


def pytest_pgclaims_publish(doc: dict[str, Any], run_dir: Path, reports_dir: Path,
                            warn: Callable[[str], None]) -> Path | None:
    history = reports_dir / "history.jsonl"
    index = None
    steps = (("history", lambda: append_history(history, doc)),
             ("report", lambda: render(doc, run_dir, history=read_history(history))),
             ("latest", lambda: update_latest(reports_dir, run_dir)))
    for name, step in steps:
        try:
            out = step()
        except Exception as exc:  # the results are written; one failed step must not lose them
            warn(f"{name} step failed: {type(exc).__name__}: {exc}")
            continue
        if name == "report":
            index = Path(out) if out else run_dir / "index.html"
    return index

"""The report's pytest plugin: renders a finished claims run through the suite's
``pytest_pgclaims_publish`` hook (comparison with the reference runs, history line,
``index.html``, ``reports/latest``).

Options (group "pgclaims report"):

``--reference DIR``
    The reference runs (``DIR/<protocol>/results.json``; default ``docs/reference`` under the
    rootdir, used when it exists). Rows of a protocol whose reference has the run's scale are
    compared (:mod:`pgclaims.report.reference`); the comparison is written into results.json
    and shown by the report. A ``DIR`` given that does not exist, or a damaged reference, is a
    usage error before any test runs.
``--no-reference``
    Compare with nothing.
``--fail-on-drift``
    The run's exit status says whether its verdicts moved from the reference, not whether
    claims were refuted: 1 when a verdict moved (or a row is ERROR, or nothing could be
    compared), else 0, REFUTED rows included (they are findings the reference shares). For a
    nightly that should go red on drift only. Without any reference, a usage error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pgclaims import fsio

from .files import update_latest
from .history import append_history, read_history
from .page import render
from .reference import REFERENCE_DIR, attach, compare, drift, drift_message, load_references
from .schema import ReportError

REFERENCES = pytest.StashKey[dict[str, dict[str, Any]]]()
"""Protocol -> reference results.json, loaded at configure time (empty: compare nothing)."""
DRIFT = pytest.StashKey[str | None]()
"""Under ``--fail-on-drift``, on the controller once published: why the run fails (verdicts
moved, ERROR rows, nothing compared), or None when it passes."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgclaims report")
    group.addoption("--reference", metavar="DIR", default=None,
                    help="reference runs to compare with (DIR/<protocol>/results.json; default "
                    f"{REFERENCE_DIR} under the rootdir when it exists); compared where the "
                    "scale and protocol match")
    group.addoption("--no-reference", action="store_true",
                    help="do not compare with any reference run")
    group.addoption("--fail-on-drift", action="store_true",
                    help="exit status 1 when a verdict moved from the reference")


def pytest_configure(config: pytest.Config) -> None:
    given = config.getoption("--reference", None)
    if config.getoption("--no-reference", False):
        if given is not None or config.getoption("--fail-on-drift", False):
            raise pytest.UsageError("--no-reference goes with neither --reference nor "
                                    "--fail-on-drift")
        config.stash[REFERENCES] = {}
        return
    root = Path(given) if given is not None else config.rootpath / REFERENCE_DIR
    if given is not None and not root.is_absolute():
        root = Path(config.invocation_params.dir) / root
    if given is None and not root.is_dir():
        refs: dict[str, dict[str, Any]] = {}
    else:
        try:
            refs = load_references(root)
        except ReportError as exc:
            raise pytest.UsageError(f"--reference: {exc}") from None
    if config.getoption("--fail-on-drift", False) and not refs:
        raise pytest.UsageError(f"--fail-on-drift: no reference run to compare with in {root}")
    config.stash[REFERENCES] = refs


def pytest_pgclaims_publish(doc: dict[str, Any], run_dir: Path, reports_dir: Path,
                            warn: Callable[[str], None], config: pytest.Config) -> Path | None:
    refs = config.stash.get(REFERENCES, {})
    failing = "the comparison with the reference failed"
    if refs:
        try:
            doc = attach(doc, compare(doc, refs))
            fsio.write_json(run_dir / "results.json", doc, allow_nan=False)
        except (OSError, ValueError) as exc:  # the results without the comparison stay
            warn(f"reference step failed: {type(exc).__name__}: {exc}")
        else:
            errors = sum(r["verdict"] == "ERROR" for r in doc["results"])
            failing = (drift_message(doc) if drift(doc)
                       else "no row was compared with the reference (its scale or protocols "
                            "differ from this run's)" if not doc["reference"]["compared"]
                       else f"{errors} ERROR row(s)" if errors else None)
    if config.getoption("--fail-on-drift", False):
        config.stash[DRIFT] = failing
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


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if DRIFT not in session.config.stash or exitstatus not in (pytest.ExitCode.OK,
                                                               pytest.ExitCode.TESTS_FAILED):
        return  # not published here (an xdist worker), or interrupted / a usage error
    failing = session.config.stash[DRIFT]
    session.exitstatus = pytest.ExitCode.OK if failing is None else pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if DRIFT not in config.stash:
        return
    failing = config.stash[DRIFT]
    if failing is None:
        terminalreporter.write_line("--fail-on-drift: no verdict moved from the reference "
                                    "(exit status 0; REFUTED rows are findings, not drift)",
                                    green=True, bold=True)
    else:
        terminalreporter.write_line(f"--fail-on-drift: {failing}", red=True, bold=True)

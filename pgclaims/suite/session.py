"""Per-run hooks of the claims plugin: parametrization, outcomes, rows, the run's overall
progress lines (:mod:`pgclaims.suite.eta`), and the end of the run.

Registered by :func:`pgclaims.suite.plugin.pytest_configure` as one object per pytest config,
so that two sessions in one process (pytester) never share state.
"""

from __future__ import annotations

import fnmatch
import inspect
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pgclaims.suite import claims as claims_mod
from pgclaims.suite import eta, stopping
from pgclaims.suite import progress as progress_mod
from pgclaims.suite.agents import AgentStore, cache_root, describe_source
from pgclaims.suite.backend import backend_record
from pgclaims.suite.claims import PARAMETERS, Claim
from pgclaims.suite.family import check_rows, parameter_values
from pgclaims.suite.results import (
    base_row,
    counts,
    document,
    item_params,
    plain,
    provenance,
    results_order,
    row_of,
    set_row,
    write_json,
)
from pgclaims.suite.sizes import SIZE_CODE, blocks_all
from pgclaims.suite.state import RunState, state_of
from pgclaims.suite.verdicts import RECORDED, Inconclusive, VerdictRecorder

INCONCLUSIVE_ATTR = "pgclaims_inconclusive"
"""Report attribute (a str, the reason) marking an INCONCLUSIVE outcome."""


def claim_of(node: pytest.Item) -> Claim | None:
    """The claim record of a test's ``@pytest.mark.claim``, or None for other tests."""
    marker = node.get_closest_marker("claim")
    if marker is None:
        return None
    if len(marker.args) != 1 or not isinstance(marker.args[0], str) or marker.kwargs:
        raise ValueError(f"{node.nodeid}: use @pytest.mark.claim('<claim id>'), got "
                         f"args {marker.args} kwargs {marker.kwargs}")
    return claims_mod.get(marker.args[0])


def parameter_id(name: str, value: Any) -> str:
    return {"checkpoint": f"it{value}", "n": f"n{value}"}.get(name, str(value))


def lacking_reason(claim: Claim, label: str, missing: list[str]) -> str:
    return (f"scale {label} lacks {', '.join(missing)} "
            f"(claim {claim.id} needs {' and '.join(claim.needs)})")


class LackingItem(pytest.Item):
    """Stands in for a claims test whose claim needs what the scale lacks: no fixtures, one
    INCONCLUSIVE outcome with the reason."""

    def __init__(self, *, claim: Claim, reason: str, lineno: int, params: dict[str, Any],
                 code: str = "scale_lacks", detail: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claim = claim
        self.reason = reason
        self.lineno = lineno
        self.params = params
        """The original test's own parametrization (e.g. a ``pytest.mark.parametrize``)."""
        self.code = code
        self.detail = detail

    def runtest(self) -> None:
        state = state_of(self.config)
        recorder = VerdictRecorder(self, self.claim, state.scale, self.params,
                                   error_control=state.error_control)
        recorder.unavailable(self.reason, code=self.code, detail=self.detail)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.lineno, self.name


class RunSession:
    def __init__(self, state: RunState, config: pytest.Config) -> None:
        self.state = state
        self.config = config
        self.finished: dict[str, Any] | None = None
        self.warnings: list[str] = []
        self.planned: dict[str, dict[str, Any]] = {}
        """The rows of the collected claims tests (those never run are PENDING at the end)."""
        self.pending: set[str] = set()
        self.eta = eta.Tracker(progress_mod.log_file_sink(state.run_dir / "progress.log",
                                                          state.echo),
                               state.started, config.getoption("pgclaims_eta_every"),
                               units_file=eta.units_path(state.run_dir))

    # -- start ----------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        s = self.state
        node.workerinput.update(pgclaims_run_id=s.run_id, pgclaims_reports_dir=str(s.reports_dir),
                                pgclaims_started=s.started, pgclaims_created=s.created,
                                pgclaims_controller_pid=os.getpid())

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        s = self.state
        lines = [f"pgclaims scale {s.scale_label}: {s.scale.summary().split(': ', 1)[1]}",
                 f"pgclaims run {s.run_id} -> {s.run_dir}; "
                 f"{describe_source(s.scale, cache_root(s.rootdir))}",
                 f"pgclaims error control: {s.error_control.describe()}"]
        if s.scale.agent_shortfall:
            lines.append(f"pgclaims warning: {s.scale.agent_shortfall}")
        if config.option.verbose > 0:
            lines += s.scale.describe().splitlines()[1:]
        return lines

    # -- collection -----------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        try:
            claim = claim_of(metafunc.definition)
        except (ValueError, KeyError) as exc:
            nodeid = metafunc.definition.nodeid
            message = str(exc) if str(exc).startswith(nodeid) else f"{nodeid}: {exc}"
            raise pytest.Collector.CollectError(message) from None
        if claim is None:
            return
        if "protocol" in metafunc.fixturenames:
            protocols = list(self.state.scale.protocols)
            metafunc.parametrize("protocol", protocols, ids=protocols, scope="session")
        if self.state.scale.lacks(claim.needs):
            return
        names = list(claim.over)
        missing = [p for p in names if p not in metafunc.fixturenames]
        extra = [p for p in PARAMETERS if p in metafunc.fixturenames and p not in names]
        if missing or extra:
            fix = (f"add argument(s) {', '.join(missing)} to the test" if missing else
                   f"drop argument(s) {', '.join(extra)} or add them to the claim's `over`")
            raise pytest.Collector.CollectError(
                f"{metafunc.definition.nodeid}: claim {claim.id} is tested per "
                f"{', '.join(names)}; {fix}")
        combos: list[tuple[Any, ...]] = [()]
        for name in names:
            combos = [c + (v,) for c in combos for v in parameter_values(name, claim,
                                                                         self.state.scale)]
        ids = ["-".join(parameter_id(k, v) for k, v in zip(names, c, strict=True))
               for c in combos]
        metafunc.parametrize(names, combos, ids=ids)

    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        s = self.state
        kept, deselected = [], []
        for item in items:
            claim = claim_of(item)
            if s.claim_patterns and (claim is None or not any(
                    fnmatch.fnmatchcase(claim.id, p) for p in s.claim_patterns)):
                deselected.append(item)
                continue
            if claim is not None and s.excluded.intersection(
                    v for v in item_params(item).values() if isinstance(v, str)):
                deselected.append(item)  # e.g. decays_with_task[...-Walker2d-v5] under --env
                continue
            if claim is None:
                kept.append(item)
                continue
            params = item_params(item)
            missing = s.scale.lacks(claim.needs)
            blocked = None if missing else blocks_all(claim, s.scale)
            if missing or blocked:
                reason, code, detail = (
                    (lacking_reason(claim, s.scale_label, missing), "scale_lacks",
                     {"lacks": missing}) if missing else (blocked[0], SIZE_CODE, blocked[1]))
                lacking = LackingItem.from_parent(
                    item.parent, name=item.name, claim=claim, lineno=item.location[1] or 0,
                    reason=reason, params=params, code=code, detail=detail)
                lacking.own_markers.extend(item.own_markers)
                lacking.keywords.update({m.name: m for m in item.own_markers})
                item = lacking
            set_row(item.user_properties, base_row(item.nodeid, claim, params))
            kept.append(item)
        problems = check_rows(
            ((c.id, str(item_params(item).get("protocol", s.scale.protocols[0])))
             for item in items if (c := claim_of(item)) is not None), s.scale)
        if problems:  # the error bound of the family rule does not cover the extra rows
            self.warnings.append("the scale's declared family is smaller than the tests: "
                                 + "; ".join(problems))
        if deselected:
            config.hook.pytest_deselected(items=deselected)
        items[:] = kept
        if any(row_of(item.user_properties) for item in kept):
            progress_mod.set_sink(progress_mod.log_file_sink(s.run_dir / "progress.log", s.echo))
            eta.record_units_to(eta.units_path(s.run_dir))

    @pytest.hookimpl(tryfirst=True)  # in an xdist worker: before xdist reports the collection
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The cost ledger of the run's tests (:mod:`pgclaims.suite.eta`): the controller
        starts its overall progress lines, an xdist worker leaves it for the controller."""
        s = self.state
        rows = [(item.nodeid, row_of(item.user_properties)) for item in session.items]
        if self.config.option.collectonly or not any(row for _, row in rows):
            return
        ledger = eta.build_ledger(s.scale, [(n, row["claim_id"], row["params"]) if row else
                                            (n, None, {}) for n, row in rows],
                                  cache_root(s.rootdir))
        planned = {n: row for n, row in rows if row}
        if s.controller:
            self.eta.start(ledger)
            self.planned = planned
        else:
            eta.save(ledger, eta.ledger_path(s.run_dir, progress_mod.worker_id()))
            stopping.save_planned(planned, stopping.planned_path(s.run_dir,
                                                                 progress_mod.worker_id()))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        ledger = eta.take(eta.ledger_path(self.state.run_dir, node.gateway.id))
        if ledger is not None:
            self.eta.start(ledger.only(ids))
        planned = stopping.take_planned(stopping.planned_path(self.state.run_dir,
                                                              node.gateway.id))
        if not self.planned:
            self.planned = {n: planned[n] for n in ids if n in planned}

    # -- outcomes -------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        result = yield
        if row_of(item.user_properties) is not None and not item.stash.get(RECORDED, False):
            pytest.fail("the claims test ended without a verdict: call verdict.check(...), "
                        "verdict.check_value(...), verdict.check_crossing(...) or "
                        "verdict.unavailable(reason)", pytrace=False)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        if call.excinfo is not None and call.excinfo.errisinstance(stopping.Pending):
            reason = str(call.excinfo.value.reason)
            setattr(report, stopping.PENDING_ATTR, reason)
            report.outcome = "skipped"  # not measured: neither a verdict nor a failure
            report.longrepr = (str(item.path), item.location[1] or 0, f"PENDING: {reason}")
        elif call.excinfo is not None and call.excinfo.errisinstance(Inconclusive):
            reason = str(call.excinfo.value.reason)
            setattr(report, INCONCLUSIVE_ATTR, reason)
            if call.when == "call":
                report.outcome = "passed"
                report.longrepr = None
            elif call.when == "setup":  # "skipped" so that the call phase does not run
                report.outcome = "skipped"
                report.longrepr = (str(item.path), item.location[1] or 0,
                                   f"INCONCLUSIVE: {reason}")
        return report

    def pytest_report_teststatus(self, report: pytest.TestReport,
                                 config: pytest.Config) -> Any:
        if getattr(report, INCONCLUSIVE_ATTR, None) is not None and report.when in (
                "setup", "call"):
            return "inconclusive", "I", ("INCONCLUSIVE", {"yellow": True})
        if getattr(report, stopping.PENDING_ATTR, None) is not None:
            return "pending", "P", ("PENDING", {"cyan": True})
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.state.collector.absorb(report)
        if getattr(report, stopping.PENDING_ATTR, None) is not None:
            self.pending.add(report.nodeid)
        if report.when not in ("setup", "call"):  # teardown, or xdist's report of a crash
            self.eta.finished(report.nodeid, measured=report.nodeid not in self.pending)

    # -- end of the run -------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        s = self.state
        if s.controller:
            self.eta.final()
        if not s.controller or len(s.collector) == 0 and not self.planned:
            return
        wall = time.time() - s.started
        rows, partial = self._rows_and_partial(exitstatus)
        extra = {
            "selection": {"claims": list(s.claim_patterns), "scale": s.scale_label},
            "xdist_workers": plain(getattr(self.config.option, "numprocesses", None)),
            "pytest_args": [str(a) for a in self.config.invocation_params.args],
            "exit_status": int(exitstatus),
            "backend": backend_record(),
            "measure_seed": s.measure_seed,
            **s.scale.provenance_extra(),
        }
        doc = document(s.run_id, s.created, s.scale, rows,
                       provenance(s.scale, wall, extra), self._figures(), partial,
                       error_control=s.error_control)
        results = write_json(s.run_dir / "results.json", doc)
        self.finished = {"wall": wall, "rows": rows, "results": results, "index": None,
                         "partial": partial}
        self.finished["index"] = self._publish(doc)

    def _rows_and_partial(self, exitstatus: int) -> tuple[list[dict[str, Any]],
                                                         dict[str, Any] | None]:
        """Every row, those of collected tests that never reported PENDING; and the
        ``partial`` record when any row is PENDING (:mod:`pgclaims.suite.stopping`)."""
        s = self.state
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        reason = stopping.stop_reason(interrupted, s.time_budget, int(exitstatus))
        # A test cut short by the stop is not measured; one cut by a crash stays an ERROR.
        cut = s.collector.unfinished() if interrupted or stopping.over_budget() else set()
        rows = sorted(stopping.with_pending(s.collector.rows(), self.planned, cut, reason),
                      key=results_order)
        pending = {row["nodeid"] for row in rows if row["verdict"] == stopping.PENDING}
        if not pending:
            return rows, None
        ledger = self.eta.ledger
        units = stopping.remaining_units(ledger.tests if ledger else {}, pending,
                                         self.eta.finished_tests, self.eta.units)
        claims = list(dict.fromkeys(row["claim_id"] for row in rows))
        try:
            partial = stopping.partial_record(s.scale, claims, units, reason, len(pending),
                                              len(rows), s.budget_s, cache_root(s.rootdir))
        except Exception as exc:  # the verdicts must still be written
            self.warnings.append(f"what remains could not be planned ({type(exc).__name__}: "
                                 f"{exc})")
            partial = {"reason": reason, "pending_tests": len(pending), "tests": len(rows),
                       "time_budget_s": s.budget_s, "remaining": None}
        return rows, partial

    def _figures(self) -> dict[str, Any]:
        try:
            from pgclaims.measure import figure_data
        except ImportError:
            return {}
        try:
            kwargs = {}
            s = self.state
            store = AgentStore(s.scale, cache_root(s.rootdir), s.run_id, s.scale.protocols[0])
            if "curves" in inspect.signature(figure_data).parameters:
                kwargs["curves"] = store.available_curves()
            figures = figure_data(self.state.scale, **kwargs)
            ablation = store.available_ablation_curves()
            if ablation:
                figures["ablation_curve"] = ablation
            return plain(figures)
        except Exception as exc:  # the verdicts must still be written
            self.warnings.append(f"figure data failed ({type(exc).__name__}: {exc}); "
                                 "the report has no paper figures")
            return {}

    def _publish(self, doc: dict[str, Any]) -> Path | None:
        s = self.state
        index = self.config.hook.pytest_pgclaims_publish(
            doc=doc, run_dir=s.run_dir, reports_dir=s.reports_dir, warn=self.warnings.append,
            config=self.config)
        if index is None and not self.config.pluginmanager.hasplugin("pgclaims.report.plugin"):
            self.warnings.append("no HTML report: the plugin pgclaims.report.plugin is not "
                                 "loaded (add it to pytest_plugins beside pgclaims.suite.plugin)")
        return index

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int,
                                config: pytest.Config) -> None:
        tr, s, done = terminalreporter, self.state, self.finished
        if done is None:
            return
        tr.write_sep("=", "pgclaims verdicts", bold=True)
        tally = counts(done["rows"])
        tr.write_line(f"scale {s.scale_label}, run {s.run_id}, wall time {done['wall']:.1f} s: "
                      + ", ".join(f"{k} {v}" for k, v in tally.items()
                                  if v or k != stopping.PENDING))
        tr.write_line(f"error control: {s.error_control.describe()}")
        if config.option.verbose > 0:
            for row in done["rows"]:
                tr.write_line(f"  {row['verdict']:<12} {row['nodeid']}: {row['reason']}")
        if done["partial"] is not None:
            tr.write_line(stopping.summary(done["partial"]), bold=True)
        for warning in self.warnings:
            tr.write_line(f"warning: {warning}", yellow=True)
        tr.write_line(f"results: {_show(done['results'])}")
        if done["index"] is not None:
            tr.write_line(f"report:  {_show(done['index'])}", bold=True)


def _show(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel

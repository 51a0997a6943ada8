"""Stop any time, resume where you stopped: ``--time-budget``, Ctrl-C and the PENDING rows.

Toy claims measure through the real on-disk cache (:func:`pgclaims.measure.cache.cached`). The
budget's clock is the stopping module's ``time``; a toy measurement can move it past the
deadline while it runs, so "the budget runs out in the middle of a study" happens at a known
point, not at a time the machine's load decides. Ctrl-C is a real SIGINT to a pytest process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pgclaims.report import load_results
from pgclaims.report.page import build_page
from pgclaims.suite import stopping
from pgclaims.suite.claims import unregister
from pgclaims.suite.eta import Ledger, estimate
from pgclaims.suite.scales import get_scale
from tests.procs import terminal_sigint

pytest_plugins = ["pytester"]

CONFTEST = """
import dataclasses
import numpy as np
from pgclaims.suite.claims import Claim, register

pytest_plugins = ["pgclaims.suite.plugin", "pgclaims.report.plugin"]
register(Claim("toy.stop", "Toy", "Measured once.", "mean", "<", 0.5, "Fig 0",
               over=("env", "algo")))


@dataclasses.dataclass
class Value:
    units: list


def measured(name, center, run_out=False):
    from pgclaims.agents.agent import TrainConfig, make_agent
    from pgclaims.measure import cache
    from pgclaims.suite import stopping

    def compute():
        print("MEASURING", name, flush=True)
        if run_out:  # the budget runs out while this study is in flight
            stopping.time = type("Late", (), {"time": staticmethod(lambda: 1e12)})
        rng = np.random.default_rng(len(name))
        return Value([list(center + 0.01 * rng.standard_normal(5)) for _ in range(3)])

    agent = make_agent(TrainConfig.create("Hopper-v5", "ppo", 0, iterations=1))
    got = cache.cached("toy", agent, {"name": name}, 0, Value, compute)
    return [np.asarray(u) for u in got.units]
"""

TESTS = """
import numpy as np
import pytest
from conftest import measured


def means(units):
    return float(np.mean([u.mean() for u in units]))


@pytest.mark.claim("toy.stop")
def test_a_first(env, algo, verdict):
    verdict.check(measured(f"a-{algo}", 0.1), means)


@pytest.mark.claim("toy.stop")
def test_b_runs_out(env, algo, verdict):
    verdict.check(measured(f"b-{algo}", 0.2, run_out=algo == "trpo"), means)


@pytest.mark.claim("toy.stop")
def test_c_after(env, algo, verdict):
    verdict.check(measured(f"c-{algo}", 0.9), means)


@pytest.mark.claim("toy.stop")
def test_d_cached(env, algo, verdict):
    verdict.check(measured(f"a-{algo}", 0.1), means)
"""


@pytest.fixture
def toy(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_stop=TESTS)
    monkeypatch.setenv("PGCLAIMS_CACHE", str(pytester.path / "cache"))
    monkeypatch.setattr(stopping, "time", time)  # the toy moves it; put the real one back
    yield pytester
    unregister("toy.stop")


def _doc(pytester: pytest.Pytester, run_id: str) -> dict[str, Any]:
    return load_results(pytester.path / "reports" / run_id)


def _verdicts(doc: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {r["nodeid"].split("::")[1]: (r["verdict"], r["statistic"], r["interval"])
            for r in doc["results"]}


# -- units -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("45m", 2700), ("5h", 18000),
                                               ("1h30m", 5400), ("0.5d", 43200)])
def test_durations(text: str, seconds: float) -> None:
    assert stopping.parse_duration(text) == seconds
    assert stopping.parse_duration(stopping.describe_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "5", "h", "-5m", "0s", "5x", "5m 3", "1e9999h"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        stopping.parse_duration(text)


def test_remaining_units_leave_out_what_was_done() -> None:
    tests = {"t1": ("u1", "u2"), "t2": ("u2", "u3"), "t3": ("u4",), "t4": ("u5",)}
    # t1 measured (u1, u2 done), t2 pending, t3 pending but u4 reported by a process, t4 left
    left = stopping.remaining_units(tests, {"t2", "t3", "t4"}, {"t1", "t2", "t3"}, {"u4"})
    assert left == {"u3", "u5"}


def test_pending_tests_move_the_test_count_not_the_pairs() -> None:
    ledger = Ledger({"t1": ("u1",), "t2": ("u2",)}, {"u1": 10, "u2": 30})
    p = estimate(ledger, {"t1", "t2"}, 5.0, unmeasured={"t2"})
    assert (p.tests_done, p.pairs_done, p.pairs) == (2, 10, 40)


def test_the_partial_record_prices_what_remains_by_the_plan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Priced at this machine's rates: measured once and kept in the measurement cache, read
    from there the next time; without a cache, measured on the spot (here failing: no price)."""
    from pgclaims.suite import costs

    smoke = get_scale("smoke")
    ident = "gradients/authors/Hopper-v5/ppo/0/27"
    rec = stopping.partial_record(smoke, ["grad.pairwise_low_at_2k"], {ident}, "why", 1, 3,
                                  60.0, tmp_path)
    left = rec["remaining"]

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("measured again")

    monkeypatch.setattr(costs, "measure_rates", fail)
    again = stopping.partial_record(smoke, ["grad.pairwise_low_at_2k"], {ident}, "why", 1, 3,
                                    60.0, tmp_path)
    assert again["remaining"] == left
    unpriced = stopping.partial_record(smoke, ["grad.pairwise_low_at_2k"], {ident}, "why", 1,
                                       3, 60.0)["remaining"]
    assert unpriced["core_hours"] is None and unpriced["pairs"] == left["pairs"]
    from pgclaims.measure import MeasureConfig, budget
    from pgclaims.suite.plan import measure_config

    assert isinstance(measure_config(smoke, "Hopper-v5"), MeasureConfig)
    assert left["tasks"] == 1 and left["by_kind"]["gradients"]["count"] == 1
    assert left["pairs"] == budget.pairs("gradients", measure_config(smoke, "Hopper-v5"))
    assert left["core_hours"] > 0 and left["rates_measured"]
    assert (rec["pending_tests"], rec["tests"], rec["time_budget_s"]) == (1, 3, 60.0)


# -- a run stopped by its time budget, and resumed ---------------------------------------------


def test_a_spent_budget_leaves_pending_rows_and_a_rerun_continues(toy: pytest.Pytester) -> None:
    first = toy.runpytest("--scale", "smoke", "--run-id", "stopped", "--time-budget", "1h",
                          "-p", "no:cacheprovider", "-s")
    out = first.stdout.str()
    assert first.ret == pytest.ExitCode.OK, out  # PENDING is neither a verdict nor a failure
    doc = _doc(toy, "stopped")
    got = _verdicts(doc)
    # ppo ran before the budget ran out (in test_b's trpo study, which finished and counts)
    assert got["test_a_first[Hopper-v5-ppo]"][0] == "REPRODUCED"
    assert got["test_b_runs_out[Hopper-v5-trpo]"][0] == "REPRODUCED"
    assert got["test_c_after[Hopper-v5-ppo]"][0] == "PENDING"
    assert got["test_c_after[Hopper-v5-trpo]"][0] == "PENDING"
    assert got["test_d_cached[Hopper-v5-ppo]"][0] == "REPRODUCED"  # read from the cache
    pending = [r for r in doc["results"] if r["verdict"] == "PENDING"]
    assert len(pending) == 2 and all(r["statistic"] is None for r in pending)
    assert "the time budget (1h) ran out before toy of Hopper-v5 ppo" in pending[0]["reason"]
    assert doc["partial"]["pending_tests"] == 2 and doc["partial"]["tests"] == 8
    assert doc["partial"]["time_budget_s"] == 3600
    assert out.count("MEASURING c-") == 0 and out.count("MEASURING b-trpo") == 1
    first.stdout.fnmatch_lines(["*REPRODUCED 6, REFUTED 0, INCONCLUSIVE 0, ERROR 0, PENDING 2",
                                "partial run: 2 of 8 tests PENDING*run the same command again*"])
    html = (toy.path / "reports" / "stopped" / "index.html").read_text(encoding="utf-8")
    assert '<div class="partial" id="partial"><b>Partial run.</b>' in html
    assert 'id="count-PENDING"><b>2</b>PENDING' in html
    history = (toy.path / "reports" / "history.jsonl").read_text().splitlines()
    assert len(history) == 6  # a PENDING row has no verdict to remember

    resumed = toy.runpytest("--scale", "smoke", "--run-id", "resumed", "-p", "no:cacheprovider",
                            "-s")
    assert resumed.stdout.str().count("MEASURING") == 2  # only the two c studies
    again = _verdicts(_doc(toy, "resumed"))
    assert "partial" not in _doc(toy, "resumed")
    fresh_cache = toy.path / "fresh"
    os.environ["PGCLAIMS_CACHE"] = str(fresh_cache)  # the fixture's monkeypatch restores it
    fresh = toy.runpytest("--scale", "smoke", "--run-id", "fresh", "-p", "no:cacheprovider")
    assert fresh.ret == pytest.ExitCode.TESTS_FAILED  # c is REFUTED: 0.9 is not < 0.5
    assert again == _verdicts(_doc(toy, "fresh"))


def test_an_unknown_budget_is_a_usage_error(toy: pytest.Pytester) -> None:
    result = toy.runpytest("--time-budget", "soon", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --time-budget 'soon': expected a duration such as "
                                 "90s, 45m, 5h or 1h30m"])


def test_the_report_of_a_partial_run_says_so() -> None:
    rows = [{"nodeid": "t::a", "claim_id": "toy.stop", "section": "Toy", "sentence": "s",
             "statistic_name": "m", "paper": "Fig 0", "params": {}, "direction": "<",
             "threshold": 0.5, "statistic": None, "interval": None, "p_value": None,
             "verdict": "PENDING", "reason": "not measured: the time budget (5h) ran out"}]
    doc = {"schema": 1, "run_id": "r", "created": "2026-12-04T00:00:00+00:00",
           "scale": {"name": "nightly"}, "provenance": {"env_substitution": {}}, "results": rows,
           "partial": {"reason": "the time budget (5h) ran out", "pending_tests": 1, "tests": 1,
                       "time_budget_s": 18000.0,
                       "remaining": {"tasks": 2, "pairs": 2_000_000, "core_hours": 1.5,
                                     "by_kind": {"gradients": {"count": 2, "pairs": 2_000_000,
                                                               "core_hours": 1.5}},
                                     "rates_measured": "2026-12-04 10:00"}}}
    html = build_page(doc)
    assert ("<b>Partial run.</b> the time budget (5h) ran out: 1 of 1 tests are PENDING (not "
            "measured). What remains by the cost plan: 2 measurements or training runs "
            "(2 gradient studies), 2,000,000 state-action pairs, about 1.5 core-hours (rates "
            "measured 2026-12-04 10:00). Run the same command again on the same cache to "
            "continue") in html
    assert "1 tests · partial" in html


# -- Ctrl-C ------------------------------------------------------------------------------------


SLOW_TESTS = """
import os
import time
import numpy as np
import pytest
from conftest import measured


def means(units):
    return float(np.mean([u.mean() for u in units]))


@pytest.mark.claim("toy.stop")
def test_a_first(env, algo, verdict):
    verdict.check(measured(f"a-{algo}", 0.1), means)


@pytest.mark.claim("toy.stop")
def test_b_slow(env, algo, verdict):
    if algo == "trpo":
        open(os.environ["RUNNING_MARKER"], "w").close()
        time.sleep(600)
    verdict.check(measured(f"b-{algo}", 0.1), means)


@pytest.mark.claim("toy.stop")
def test_c_never(env, algo, verdict):
    if algo == "trpo":  # under xdist the other worker may get here before the Ctrl-C
        time.sleep(600)
    verdict.check(measured(f"c-{algo}", 0.1), means)
"""


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_ctrl_c_writes_the_measured_rows_and_the_rest_pending(
        pytester: pytest.Pytester, workers: list[str]) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_stop=SLOW_TESTS)
    marker = pytester.path / "RUNNING"
    env = {**os.environ, "PGCLAIMS_CACHE": str(pytester.path / "cache"),
           "RUNNING_MARKER": str(marker),
           "PYTHONPATH": os.pathsep.join([str(Path(stopping.__file__).parents[2]),
                                          os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--scale", "smoke", "--run-id", "int", "-p",
         "no:cacheprovider", *workers, "test_stop.py"],
        cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=terminal_sigint)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.2)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole process group
        out = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    doc = json.loads((pytester.path / "reports" / "int" / "results.json").read_text())
    got = {r["nodeid"].split("::")[1]: r["verdict"] for r in doc["results"]}
    assert got["test_b_slow[Hopper-v5-trpo]"] == "PENDING", (got, out[-3000:])
    assert got["test_c_never[Hopper-v5-trpo]"] == "PENDING", got
    assert len(got) == 6 and "ERROR" not in got.values(), got
    assert doc["partial"]["reason"] == "interrupted (Ctrl-C)"
    assert doc["partial"]["pending_tests"] == sum(v == "PENDING" for v in got.values())

"""The overall progress line of a claims run (:mod:`pgclaims.suite.eta`): the estimator on
hand-made ledgers, the per-test cost ledger against the run plan, the throttled tracker, and
the line a small claims run prints to stderr and to progress.log (pytester, toy scale)."""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgclaims.suite import eta, plan
from pgclaims.suite import plugin as suite_plugin
from pgclaims.suite.claims import CLAIMS
from pgclaims.suite.scales import get_scale
from pgclaims.suite.session import parameter_values

pytest_plugins = ["pytester"]

# Four tests: t1 and t2 share unit b (the cache serves the second), t4 measures nothing.
LEDGER = eta.Ledger({"t1": ("a", "b"), "t2": ("b",), "t3": ("c",), "t4": ()},
                    {"a": 100, "b": 300, "c": 600})


# ---------------------------------------------------------------------------------------------
# The estimator


def test_nothing_done_means_eta_unknown() -> None:
    p = eta.estimate(LEDGER, set(), 42.0)
    assert (p.tests_done, p.tests, p.pairs_done, p.pairs) == (0, 4, 0, 1000)
    assert p.fraction == 0 and p.eta is None
    assert eta.render(p) == "run: 0/4 tests, ~0 of ~1.0e3 pairs done, elapsed 42 s, ETA unknown"
    # a finished test that measures nothing is no evidence of the rate either
    assert eta.estimate(LEDGER, {"t4"}, 42.0).eta is None


def test_shared_units_are_paid_once_and_weigh_by_pairs() -> None:
    p = eta.estimate(LEDGER, {"t2"}, 30.0)
    assert (p.tests_done, p.pairs_done) == (1, 300)
    assert p.fraction == pytest.approx(0.3)
    assert p.eta == pytest.approx(30.0 * 700 / 300)  # elapsed x remaining / done
    # t1 after t2 adds only unit a: b came from the cache
    p = eta.estimate(LEDGER, {"t1", "t2"}, 40.0)
    assert (p.tests_done, p.pairs_done) == (2, 400)
    assert p.eta == pytest.approx(40.0 * 600 / 400)
    # one expensive test outweighs two cheap ones: counting tests would say half done
    p = eta.estimate(LEDGER, {"t3", "t4"}, 60.0)
    assert p.fraction == pytest.approx(0.6) and p.eta == pytest.approx(40.0)
    assert eta.render(p) == "run: 2/4 tests, ~600 of ~1.0e3 pairs done, elapsed 1.0 min, ETA 40 s"
    done = eta.estimate(LEDGER, {"t1", "t2", "t3", "t4", "not-in-the-run"}, 90.0)
    assert (done.tests_done, done.fraction, done.eta) == (4, 1.0, 0.0)
    assert eta.render(done, final=True) == (
        "run: end, 4/4 tests, ~1.0e3 of ~1.0e3 pairs done, total elapsed 1.5 min")


def test_without_planned_pairs_tests_count_alike() -> None:
    ledger = eta.Ledger({"x": (), "y": (), "z": (), "w": ()}, {})
    p = eta.estimate(ledger, {"x"}, 10.0)
    assert not p.by_pairs and p.fraction == 0.25 and p.eta == pytest.approx(30.0)
    assert eta.render(p) == "run: 1/4 tests, tests weighted equally, elapsed 10 s, ETA 30 s"
    noted = eta.Ledger(ledger.tests, {}, "no plan (KeyError: boom)")
    assert "tests weighted equally: no plan (KeyError: boom)" in eta.render(
        eta.estimate(noted, set(), 1.0))


def test_large_counts_read_as_powers_of_ten() -> None:
    ledger = eta.Ledger({"a": ("u",), "b": ("v",)}, {"u": 12_345_678, "v": 18_654_322})
    line = eta.render(eta.estimate(ledger, {"a"}, 486.0))
    assert line == "run: 1/2 tests, ~1.2e7 of ~3.1e7 pairs done, elapsed 8.1 min, ETA 12 min"


ledgers = st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 10**9), min_size=1).flatmap(
    lambda pairs: st.tuples(st.just(pairs), st.lists(st.sets(st.sampled_from(sorted(pairs))),
                                                     min_size=1, max_size=8)))


@given(ledgers, st.data())
def test_eta_is_monotone(made: tuple[dict[str, int], list[set[str]]], data: Any) -> None:
    pairs, needs = made
    ledger = eta.Ledger({f"t{i}": tuple(sorted(u)) for i, u in enumerate(needs)},
                        {u: p for u, p in pairs.items() if any(u in n for n in needs)})
    tests = list(ledger.tests)
    first = set(data.draw(st.sets(st.sampled_from(tests))))
    more = first | set(data.draw(st.sets(st.sampled_from(tests))))
    a, b = data.draw(st.floats(0, 1e6)), data.draw(st.floats(0, 1e6))
    early, late = sorted((a, b))
    p, q = eta.estimate(ledger, first, early), eta.estimate(ledger, first, late)
    assert 0 <= p.fraction <= 1 and p.fraction == q.fraction
    if p.eta is not None:  # same work done later: the rate is lower, the ETA no shorter
        assert q.eta is not None and q.eta >= p.eta >= 0
    r = eta.estimate(ledger, more, early)  # more tests finished, same time: no later ETA
    assert r.fraction >= p.fraction and r.pairs_done >= p.pairs_done
    if p.eta is not None:
        assert r.eta is not None and r.eta <= p.eta


def test_units_weigh_by_modelled_core_seconds_when_the_ledger_has_them() -> None:
    ledger = eta.Ledger(LEDGER.tests, LEDGER.pairs, seconds={"a": 10.0, "b": 10.0, "c": 80.0})
    p = eta.estimate(ledger, {"t2"}, 20.0)  # b: 300 of 1000 pairs, 10 of 100 core-seconds
    assert p.by_seconds and p.fraction == pytest.approx(0.1) and p.eta == pytest.approx(180.0)
    assert eta.render(p) == ("run: 1/4 tests, ~300 of ~1.0e3 pairs done (10% of the modelled "
                             "core-seconds), elapsed 20 s, ETA 3 min")
    assert eta.render(p, final=True) == (
        "run: end, 1/4 tests, ~300 of ~1.0e3 pairs done, total elapsed 20 s")
    # seconds for only some units: the pairs decide, as without any
    partial = eta.Ledger(LEDGER.tests, LEDGER.pairs, seconds={"a": 10.0, "b": 10.0})
    q = eta.estimate(partial, {"t2"}, 20.0)
    assert not q.by_seconds and q.fraction == pytest.approx(0.3)
    assert eta.Ledger.from_json(ledger.to_json()) == ledger
    assert ledger.only(["t2", "t4"]) == eta.Ledger({"t2": ("b",), "t4": ()}, {"b": 300},
                                                   seconds={"b": 10.0})


# ---------------------------------------------------------------------------------------------
# The ledger against the run plan


def _entries(scale: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """One entry per claims test the plugin would collect (params as in a row)."""
    out = []
    for claim in CLAIMS.values():
        combos: list[dict[str, Any]] = [{}]
        for name in claim.over:
            combos = [{**c, name: v} for c in combos
                      for v in parameter_values(name, claim, scale)]
        for protocol in scale.protocols:
            for combo in combos:
                params = {"protocol": protocol, **combo}
                out.append((f"{claim.id}{params}", claim.id, params))
    return out


def test_units_are_the_tests_own_agents_and_checkpoints() -> None:
    # Hopper-v5 x ppo, trpo x seeds 0, 1; late = 18, 27; an N grid reaching 1e5, which
    # grad.pairwise_rises_with_n needs (smoke's own stops at 8192: no units, not measured)
    smoke = get_scale("smoke").override(seeds=(0, 1), n_grid=(256, 1024, 2048, 131_072))
    assert eta.build_ledger(get_scale("smoke"), [
        ("it9", "grad.pairwise_rises_with_n", {"protocol": "authors", "env": "Hopper-v5",
                                               "algo": "ppo", "checkpoint": 9})]).tests == {
        "it9": ()}
    ledger = eta.build_ledger(smoke, [
        ("late", "grad.true_cos_low_at_2k", {"protocol": "authors", "env": "Hopper-v5",
                                             "algo": "ppo"}),
        ("it9", "grad.pairwise_rises_with_n", {"protocol": "authors", "env": "Hopper-v5",
                                               "algo": "ppo", "checkpoint": 9}),
        ("toy", "toy.not_planned", {}), ("lib", None, {})])
    train = {f"training/authors/Hopper-v5/ppo/{s}" for s in (0, 1)}
    assert set(ledger.tests["late"]) == train | {
        f"gradients/authors/Hopper-v5/ppo/{s}/{it}" for s in (0, 1) for it in (18, 27)}
    assert set(ledger.tests["it9"]) == train | {
        f"gradients/authors/Hopper-v5/ppo/{s}/9" for s in (0, 1)}
    assert ledger.tests["toy"] == ledger.tests["lib"] == ()
    cfg = plan.measure_config(smoke, "Hopper-v5")
    from pgclaims.measure import budget

    assert ledger.pairs["gradients/authors/Hopper-v5/ppo/0/9"] == budget.gradient_pairs(cfg)
    assert ledger.pairs["training/authors/Hopper-v5/ppo/0"] == 30 * 2048


@pytest.mark.parametrize("name", ["smoke", "default"])
def test_all_tests_together_need_exactly_the_plan(name: str) -> None:
    scale = get_scale(name)
    ledger = eta.build_ledger(scale, _entries(scale))
    todo = {t.ident: t.pairs for t in plan.build(scale).todo()}
    assert dict(ledger.pairs) == todo
    assert {u for units in ledger.tests.values() for u in units} == set(todo)
    lacking = [n for n, c, _ in _entries(scale) if scale.lacks(CLAIMS[c].needs)]
    assert all(ledger.tests[n] == () for n in lacking)
    assert lacking or name == "default"  # default has every capability
    if name == "default":  # its ablation runs are read from the store, never trained
        ablation = [n for n, c, _ in _entries(scale) if c in (
            "baseline.needed_for_reward", "regime.more_samples_lower_lr")]
        assert ablation and all(ledger.tests[n] == () for n in ablation)


def test_a_plan_that_cannot_be_built_falls_back_to_counting(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("no fixture store")

    monkeypatch.setattr(plan, "build", broken)
    ledger = eta.build_ledger(get_scale("smoke"), [("a", "grad.true_cos_low_at_2k", {})])
    assert ledger.tests == {"a": ()} and "ValueError: no fixture store" in ledger.note


def test_ledger_files_round_trip_and_are_taken_once(tmp_path: Path) -> None:
    path = eta.ledger_path(tmp_path / "run", "gw1")
    eta.save(LEDGER, path)
    assert path.name == ".eta-gw1.json" and list(path.parent.iterdir()) == [path]
    assert eta.take(path) == LEDGER and not path.exists()
    assert eta.take(path) is None
    assert LEDGER.only(["t2", "t4"]) == eta.Ledger({"t2": ("b",), "t4": ()}, {"b": 300})


# ---------------------------------------------------------------------------------------------
# The tracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tracker_throttles_and_ends_with_the_total() -> None:
    lines: list[str] = []
    clock = Clock()
    wall = [5000.0]
    tracker = eta.Tracker(lines.append, started=5000.0 - 60, every=30, clock=clock,
                          wall=lambda: wall[0])
    tracker.finished("t1")  # before the ledger: nothing to say
    assert lines == [] and tracker.progress() is None
    tracker.start(LEDGER)
    tracker.start(eta.Ledger({}, {}))  # a second worker's ledger changes nothing
    assert len(lines) == 1 and re.fullmatch(
        r"\[main \d\d:\d\d:\d\d\] run: 0/4 tests, ~0 of ~1\.0e3 pairs done, elapsed 1\.0 min, "
        r"ETA unknown", lines[0]), lines
    clock.now += 10
    tracker.finished("t2")  # 10 s after the last line: too soon
    assert len(lines) == 1
    wall[0] -= 3600  # the wall clock jumps back: elapsed time does not
    clock.now += 25
    tracker.finished("t4")
    assert len(lines) == 2 and "run: 2/4 tests, ~300 of ~1.0e3 pairs done, elapsed 1.6 min, " \
        "ETA 4 min" in lines[1]
    assert tracker.elapsed() == pytest.approx(95.0)
    clock.now += 5
    tracker.finished("t3")
    tracker.finished("t1")
    assert len(lines) == 2
    tracker.final()
    assert len(lines) == 3 and lines[2].endswith(
        "run: end, 4/4 tests, ~1.0e3 of ~1.0e3 pairs done, total elapsed 1.7 min")


def test_every_zero_prints_after_each_test() -> None:
    lines: list[str] = []
    tracker = eta.Tracker(lines.append, started=0.0, every=0, clock=Clock(), wall=lambda: 0.0)
    tracker.start(LEDGER)
    for name in ("t1", "t2", "t3", "t4"):
        tracker.finished(name)
    tracker.finished("not-collected")
    assert [line.split("] ", 1)[1].split(",")[0] for line in lines] == [
        "run: 0/4 tests", "run: 1/4 tests", "run: 2/4 tests", "run: 3/4 tests", "run: 4/4 tests"]


def test_units_reported_between_tests_move_the_line(tmp_path: Path) -> None:
    """A unit a worker reports counts before any test ends; a torn last line waits."""
    units = eta.units_path(tmp_path)
    units.write_text("stale-from-an-earlier-run\n")
    lines: list[str] = []
    clock = Clock()
    tracker = eta.Tracker(lines.append, started=0.0, every=30, clock=clock, wall=lambda: 0.0,
                          units_file=units)
    tracker.start(LEDGER)
    tracker._stop.set()  # this test drives tick() itself: no timer
    assert not units.exists() and len(lines) == 1  # an earlier run's file is not this run's
    eta.record_units_to(units)
    try:
        eta.unit_done("c")  # t3's unit, its test still running
        eta.unit_done("not-in-the-ledger")
    finally:
        eta.record_units_to(None)
    eta.unit_done("a")  # outside a claims run: a no-op
    with open(units, "a") as f:
        f.write("b")  # a line still being written
    clock.now += 10
    tracker.tick()
    assert len(lines) == 1  # too soon
    clock.now += 20
    tracker.tick()
    assert len(lines) == 2 and "run: 0/4 tests, ~600 of ~1.0e3 pairs done, elapsed 30 s, " \
        "ETA 20 s" in lines[1], lines
    with open(units, "a") as f:
        f.write("\n")
    tracker.finished("t2")  # b is already done: counted once
    tracker.final()
    assert "run: end, 1/4 tests, ~900 of ~1.0e3 pairs done" in lines[-1], lines
    assert not units.exists()


def test_the_timer_prints_while_no_test_ends(tmp_path: Path) -> None:
    lines: list[str] = []
    tracker = eta.Tracker(lines.append, started=0.0, every=0.05,
                          units_file=eta.units_path(tmp_path))
    tracker.start(LEDGER)
    eta.units_path(tmp_path).write_text("a\n")
    deadline = time.monotonic() + 10
    while not any("~100 of" in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.02)
    tracker.final()
    count = len(lines)
    time.sleep(0.2)
    assert any("run: 0/4 tests, ~100 of ~1.0e3 pairs done" in line for line in lines), lines
    assert len(lines) == count and "run: end" in lines[-1]  # final() stopped the timer



def test_a_line_only_logged_does_not_hold_back_the_next_tests_line() -> None:
    """In a serial run the timer's line is only logged while a test captures (the sink returns
    False); the line at that test's end must still reach the console, and a line the console
    got still throttles the next one."""
    logged: list[str] = []
    shown: list[str] = []
    console = [True]

    def sink(line: str) -> bool:
        logged.append(line)
        if console[0]:
            shown.append(line)
        return console[0]

    clock = Clock()
    tracker = eta.Tracker(sink, started=0.0, every=30, clock=clock, wall=lambda: 0.0)
    tracker.start(LEDGER)
    assert len(shown) == 1
    clock.now += 31
    console[0] = False  # a test is capturing: the timer's line goes to the log only
    tracker.tick()
    assert len(logged) == 2 and len(shown) == 1
    console[0] = True
    clock.now += 5
    tracker.finished("t1")  # 36 s since the console's last line, 5 s since the log's
    assert len(shown) == 2 and "run: 1/4 tests" in shown[-1]
    clock.now += 5
    tracker.finished("t2")
    tracker.tick()
    assert len(shown) == 2 and len(logged) == 3


class _FakeCapture:
    """pytest's capture manager as ``_echo`` sees it: a global capture, started or not, that
    records which threads suspend it."""

    def __init__(self, started: bool, method: str = "fd") -> None:
        self.started, self.method = started, method
        self.suspended_by: list[str] = []
        self._global_capturing = SimpleNamespace(is_started=lambda: self.started)
        self._capture_fixture = None

    def is_globally_capturing(self) -> bool:
        return self.method != "no"

    @contextlib.contextmanager
    def global_and_fixture_disabled(self) -> Iterator[None]:
        self.suspended_by.append(threading.current_thread().name)
        yield


@pytest.mark.parametrize(("started", "method", "capturing"),
                         [(True, "fd", True), (False, "fd", False), (True, "no", False)])
def test_only_the_main_thread_suspends_capture(started: bool, method: str, capturing: bool,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """pytest's capture is not thread-safe: the timer thread never suspends it, and while a
    test phase captures its line is left to progress.log; the main thread prints past it.
    With ``-s`` (method "no") nothing captures, so the timer's line is printed."""
    capman = _FakeCapture(started=started, method=method)
    config = SimpleNamespace(pluginmanager=SimpleNamespace(getplugin=lambda name: capman))
    echo = suite_plugin._echo(config)
    said: list[bool] = []
    thread = threading.Thread(target=lambda: said.append(echo("from the timer")),
                              name="pgclaims-eta")
    thread.start()
    thread.join()
    assert said == [not capturing]  # False: only logged, so the next test's line is not held
    assert echo("from the main thread") is True
    err = capsys.readouterr().err
    assert capman.suspended_by == [threading.main_thread().name]
    assert "from the main thread" in err
    assert ("from the timer" in err) is not capturing


@pytest.mark.parametrize("kind", ["gradients", "value", "steps", "landscape"])
def test_the_claims_study_reports_the_plans_idents(tmp_path: Path, kind: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """What the claims' ``study`` reports is the ident the plan gave that measurement."""
    from claims.conftest import Study
    from pgclaims import measure

    scale = get_scale("smoke")
    agents = SimpleNamespace(protocol="authors", get=lambda *a: SimpleNamespace(
        config=SimpleNamespace(algo="trpo"), policy_opt=None, last_fit=object()))
    fn = {"gradients": "gradients", "value": "value", "steps": "steps",
          "landscape": "landscapes"}[kind]
    monkeypatch.setattr(measure, fn, lambda *a, **k: "result")
    eta.record_units_to(eta.units_path(tmp_path))
    try:
        # smoke measures landscapes only at iteration 0: its reference grid is below the
        # size landscape.misaligned_late and landscape.noisy_at_low_samples need
        it = scale.checkpoints[0] if kind == "landscape" else scale.late[-1]
        assert getattr(Study(scale, agents), kind)("Hopper-v5", "trpo", 1, it) == "result"
    finally:
        eta.record_units_to(None)
    (ident,) = eta.units_path(tmp_path).read_text().splitlines()
    task = plan.build(scale).tasks[ident]
    assert (task.kind, task.protocol, task.env, task.algo, task.seed, task.iteration) == (
        kind, "authors", "Hopper-v5", "trpo", 1, it)


# ---------------------------------------------------------------------------------------------
# A small claims run (pytester): the line reaches stderr and progress.log

CONFTEST = 'pytest_plugins = ["pgclaims.suite.plugin", "pgclaims.report.plugin"]\n'

TESTS = """
import numpy as np
import pytest


def units(center):
    rng = np.random.default_rng(0)
    return [center + 0.01 * rng.standard_normal(10) for _ in range(3)]


def mean(us):
    return float(np.mean([u.mean() for u in us]))


def test_not_a_claim():
    pass


@pytest.mark.claim("grad.true_cos_low_at_2k")
def test_true_cos(env, algo, verdict):
    verdict.check(units(0.1), mean)


@pytest.mark.claim("value.fits_gae_target")
def test_value(env, algo, verdict):
    verdict.check(units(0.1), mean)
"""

LINE = r"\[main \d\d:\d\d:\d\d\] run: "


def _planned(scale: Any, claim_ids: list[str]) -> str:
    total = sum(t.pairs for t in plan.build(scale, claim_ids).todo())
    return eta.render(eta.Progress(0, 1, 0, total, 0.0)).split(" of ")[1].split(" pairs")[0]


@pytest.mark.parametrize("xdist", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_claims_run_prints_its_eta(pytester: pytest.Pytester, xdist: bool) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_toy=TESTS)
    args = ["-p", "xdist", "-n", "2"] if xdist else []
    result = pytester.runpytest(*args, "--scale", "smoke", "--run-id", "eta",
                                "--eta-every", "0", "-p", "no:cacheprovider")
    assert result.parseoutcomes()["passed"] == 5, result.stdout.str()
    total = _planned(get_scale("smoke"), ["grad.true_cos_low_at_2k", "value.fits_gae_target"])
    # 6 agents x (training 61440 + 2 late checkpoints x (gradients 115200 + value 20480))
    assert total == "~2.0e6"
    ours = [line for line in result.stderr.lines if re.match(LINE, line)]
    log = (pytester.path / "reports" / "eta" / "progress.log").read_text().splitlines()
    assert [line for line in log if re.match(LINE, line)] == ours
    assert re.fullmatch(LINE + rf"0/5 tests, ~0 of {total} pairs done, elapsed \d+ s, "
                        "ETA unknown", ours[0]), ours
    # one line per finished test; each claims test pays for its own agents' measurements
    body = [re.sub(LINE, "", line) for line in ours[1:-1]]
    assert [b.split(",")[0] for b in body] == [f"{k}/5 tests" for k in range(1, 6)]
    done = [float(re.search(r"~([\d.e]+) of", b).group(1)) if "~0 of" not in b else 0.0
            for b in body]
    assert done == sorted(done) and done[-1] == float(total[1:]) and 0 < done[1] < done[-1]
    assert all(re.search(r"ETA (unknown|\d+ s)$", b) for b in body), body
    assert not body[1].endswith("ETA unknown")  # the first claims test gave a rate
    assert re.fullmatch(LINE + rf"end, 5/5 tests, {total} of {total} pairs done, "
                        r"total elapsed \d+ s", ours[-1]), ours
    assert not list((pytester.path / "reports" / "eta").glob(".eta-*"))  # ledgers taken


# ---------------------------------------------------------------------------------------------
# Core-seconds: this machine's rates, once a day


def _rates(envs: tuple[str, ...], algos: tuple[str, ...]) -> Any:
    from pgclaims.suite.costs import Rates

    per_env = {e: 1.0 + i for i, e in enumerate(envs)}
    per_ea = {f"{e}/{a}": 1.0 + i for i, e in enumerate(envs) for a in algos}
    return Rates(sample={e: 1e4 / v for e, v in per_env.items()},
                 sample_lockstep={e: 2e4 / v for e, v in per_env.items()},
                 reduce=dict(per_env), fit_step={e: v / 100 for e, v in per_env.items()},
                 iteration=dict(per_ea), update={k: v / 2 for k, v in per_ea.items()})


def test_a_large_run_weighs_its_units_by_the_machines_rates_measured_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    costs = importlib.import_module("pgclaims.suite.costs")  # the module eta imports from

    measured: list[tuple[Any, ...]] = []

    def fake(envs: tuple[str, ...], algos: tuple[str, ...], protocol: str, **kw: Any) -> Any:
        measured.append((envs, algos, protocol))
        return _rates(envs, algos)

    monkeypatch.setattr(costs, "measure_rates", fake)
    scale = get_scale("default")
    ledger = eta.build_ledger(scale, _entries(scale), tmp_path)
    assert sum(ledger.pairs.values()) >= costs.RATES_FROM_PAIRS
    assert measured == [(scale.envs, scale.algos, scale.protocols[0])]
    built = plan.build(scale)
    rates = _rates(scale.envs, scale.algos)
    assert ledger.seconds == {u: costs.task_seconds(built.tasks[u], built, rates)[0]
                              for u in ledger.pairs}
    per_pair = {e: next(ledger.seconds[u] / ledger.pairs[u] for u in ledger.pairs
                        if u.startswith(f"gradients/{scale.protocols[0]}/{e}/"))
                for e in ("Hopper-v5", "Humanoid-v5")}
    assert per_pair["Humanoid-v5"] == pytest.approx(3 * per_pair["Hopper-v5"], rel=0.05)
    cached = list((tmp_path / "rates").glob("*.json"))
    assert len(cached) == 1
    assert eta.build_ledger(scale, _entries(scale), tmp_path) == ledger  # read, not measured
    assert len(measured) == 1
    cached[0].write_text("{not json")  # damaged: measured again, rewritten
    assert eta.build_ledger(scale, _entries(scale), tmp_path) == ledger
    assert len(measured) == 2 and json.loads(cached[0].read_text())["rates"]


def test_a_small_run_or_unmeasurable_rates_weigh_by_pairs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> None:
    costs = importlib.import_module("pgclaims.suite.costs")  # the module eta imports from

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("no such environment")

    monkeypatch.setattr(costs, "measure_rates", broken)
    smoke = get_scale("smoke")  # 5e6 pairs: nothing measured (broken would say so)
    small = eta.build_ledger(smoke, _entries(smoke), tmp_path)
    assert small.pairs and small.seconds == {} and capsys.readouterr().err == ""
    scale = get_scale("default")
    ledger = eta.build_ledger(scale, _entries(scale), tmp_path)
    assert ledger.pairs and ledger.seconds == {}
    assert "units weighed by pairs, rates not measured (no such environment)" in (
        capsys.readouterr().err)
    assert eta.build_ledger(scale, _entries(scale)).seconds == {}  # no cache: no rates


def test_concurrent_callers_measure_the_rates_once(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two xdist workers collect at once: one measures and writes, the other waits on the lock
    and reads its file; a cache that cannot be written still gives rates (measured each time)."""
    costs = importlib.import_module("pgclaims.suite.costs")
    measured: list[str] = []

    def slow(envs: tuple[str, ...], algos: tuple[str, ...], protocol: str, **kw: Any) -> Any:
        measured.append(threading.current_thread().name)
        time.sleep(0.5)
        return _rates(envs, algos)

    monkeypatch.setattr(costs, "measure_rates", slow)
    results = importlib.import_module("pgclaims.suite.results")
    written: list[Path] = []
    write = results.write_json
    monkeypatch.setattr(results, "write_json", lambda p, d: (written.append(p), write(p, d)))
    got: list[Any] = []
    what = (("Hopper-v5",), ("ppo",), "authors")
    threads = [threading.Thread(target=lambda: got.append(costs.machine_rates(*what, tmp_path)),
                                name=f"gw{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(measured) == 1 and len(got) == 2 and got[0] == got[1] == _rates(*what[:2])
    assert len(written) == 1  # the caller that waited read the file and wrote nothing
    blocked = tmp_path / "file"
    blocked.write_text("")  # the cache's place is a file: no folder, no lock
    assert costs.machine_rates(*what, blocked) == got[0] and len(measured) == 2

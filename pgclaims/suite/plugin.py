"""The pytest plugin of the claims suite (loaded by the repository's root ``conftest.py``).

A claims test names its claim and takes exactly the parameters of the claim's ``over``::

    @pytest.mark.claim("grad.true_cos_low_at_2k")          # over = ("env", "algo")
    def test_true_cos_low_at_2k(env, algo, scale, agents, verdict):
        units = [cosines_at_2k(agents, env, algo, seed, scale.late) for seed in scale.seeds]
        verdict.check(units, mean_of_agent_means)

The plugin parametrizes ``env``/``algo``/``checkpoint``/``n`` from the active scale
(``--scale``; ids like ``[Hopper-v5-ppo-it450]``), turns the claim's verdict into the test
outcome (REPRODUCED passes, REFUTED fails, INCONCLUSIVE is its own outcome "I"), gives a claim
whose needs the scale lacks one INCONCLUSIVE test saying so, and at the end of the run writes
``reports/<run-id>/results.json``, the HTML report, the history lines and ``reports/latest``.
Without claims tests in the session it does nothing.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pgclaims.agents.lifeline import die_with_parent
from pgclaims.options import SEED, SEED_MAX
from pgclaims.stats import POLICIES, T_METHODS, ErrorControl
from pgclaims.suite import backend as backend_mod
from pgclaims.suite import claims as claims_mod
from pgclaims.suite import eta as eta_mod
from pgclaims.suite import external, preflight, stopping
from pgclaims.suite import progress as progress_mod
from pgclaims.suite.agents import AgentStore, cache_root
from pgclaims.suite.claims import Claim
from pgclaims.suite.family import family_size
from pgclaims.suite.results import check_run_id, item_params, new_run_id
from pgclaims.suite.scales import SCALES, Scale, UnknownScaleError, get_scale
from pgclaims.suite.session import RunSession, claim_of
from pgclaims.suite.state import STATE, RunState, state_of
from pgclaims.suite.verdicts import RECORDED, Inconclusive, VerdictRecorder

__all__ = ["Inconclusive", "RunState", "VerdictRecorder"]


# ---------------------------------------------------------------------------------------------
# Options and configuration


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pgclaims.suite import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pgclaims", "claims of 'A Closer Look at Deep Policy Gradients'")
    group.addoption("--scale", dest="pgclaims_scale", default="default", metavar="NAME",
                    help=f"scale profile: {', '.join(SCALES)} (default: default)")
    group.addoption("--claim", dest="pgclaims_claim", action="append", default=[],
                    metavar="ID", help="run only the tests of this claim id (repeatable, "
                    "comma-separated or a pattern such as 'grad.*')")
    group.addoption("--protocol", dest="pgclaims_protocol", default=None, metavar="NAME",
                    help="protocol(s) whose agents to measure: authors, corrected, table1, a "
                    "comma-separated list, or all (authors and corrected); default: the "
                    "scale's")
    group.addoption("--agents", dest="pgclaims_agents", default=None, metavar="MANIFEST",
                    help="measure the agents of this manifest (JSON or TOML: per env, algo and "
                    "seed the checkpoint file at each iteration and its adapter; "
                    "docs/adapters.md) instead of the scale's; sample counts stay the scale's")
    group.addoption("--env", dest="pgclaims_env", action="append", default=[],
                    metavar="ENV_ID", help="only this environment of the scale (repeatable)")
    group.addoption("--algo", dest="pgclaims_algo", action="append", default=[],
                    metavar="ALGO", help="only this algorithm of the scale (repeatable)")
    group.addoption("--reports-dir", dest="pgclaims_reports_dir", default=None, metavar="DIR",
                    help="folder of run folders, history.jsonl and latest "
                    "(default: <rootdir>/reports)")
    group.addoption("--run-id", dest="pgclaims_run_id", default=None, metavar="ID",
                    help="name of this run's folder (default: <UTC time>-<scale>)")
    group.addoption("--error-control", dest="pgclaims_error_control", default="family",
                    choices=POLICIES, help="family (default): each row decided at alpha / (2 m) "
                    "per side, m the rows of the scale's declared family, so a row's verdict "
                    "never depends on the selection and a run makes at most alpha false "
                    "decisive verdicts on average; row: each row's own 95%% interval "
                    "(docs/statistics.md)")
    group.addoption("--measure-seed", dest="pgclaims_measure_seed", type=SEED,
                    default=0, metavar="N", help="seed of every measurement (sampling, "
                    f"repeats) in 0..{SEED_MAX} (default 0): the same agents measured anew, "
                    "e.g. to see which verdicts are stable under measurement noise; "
                    "measurements are cached per seed")
    group.addoption("--eta-every", dest="pgclaims_eta_every", type=float, default=eta_mod.EVERY,
                    metavar="SECONDS", help="least seconds between two overall progress lines "
                    f"(tests and pairs done, ETA) of the run (default: {eta_mod.EVERY:g}; 0: after "
                    "every test)")
    group.addoption("--time-budget", dest="pgclaims_time_budget", default=None,
                    metavar="DURATION", help="start no new measurement after DURATION (90s, "
                    "45m, 5h, 1h30m) of the run: what is in flight finishes and is cached, the "
                    "tests not measured are PENDING, and the same command on the same cache "
                    "continues")
    backend_mod.add_options(group)


# Distribution under xdist: `-n N` keeps xdist's `--dist load`, on purpose. Measurements are
# shared through the locked on-disk cache (pgclaims.measure.cache), so no two workers ever
# compute the same one. With `--dist loadscope` both workers walk their modules in the same
# agent order and one keeps waiting on the other's lock: measured on the default scale, one of
# two cores sat idle in the lock's poll loop. Round-robin `load` hands consecutive tests
# (different agents) to different workers, but that was not enough: claims of the same env x algo
# still met, and in the 10-agent authors reference (2026-12-06) one worker sat idle for most of
# the first hour. So each test measures its agents through cache.each_without_waiting: first the
# agents no other worker is measuring, then the rest.


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _narrow(scale: Scale, option: str, given: list[str], have: tuple[Any, ...]) -> tuple[Any, ...]:
    unknown = [g for g in given if g not in have]
    if unknown:
        raise pytest.UsageError(f"--{option} {', '.join(unknown)}: scale {scale.name} has "
                                f"{', '.join(map(str, have))}")
    return tuple(h for h in have if h in given) if given else have


def _claim_patterns(values: list[str]) -> tuple[str, ...]:
    known = list(claims_mod.all_claims())
    for pattern in values:
        if not fnmatch.filter(known, pattern):
            raise pytest.UsageError(f"--claim: {claims_mod.unknown_message(pattern)}")
    return tuple(values)


def _check_folders(given_dir: str | None, reports_dir: Path, rootdir: Path) -> None:
    """Before any test: the folders the run writes to are writable and have room."""
    named = "$PGCLAIMS_CACHE " if os.environ.get("PGCLAIMS_CACHE") else ""
    caches = {cache_root(rootdir), preflight.measure_cache_root()}
    folders = {reports_dir: f"--reports-dir {given_dir}" if given_dir else
               f"reports folder {reports_dir}",
               **{c: f"cache folder {named}{c}" for c in sorted(caches)}}
    for folder, what in folders.items():
        problem = preflight.check_folder(folder, what)
        if problem:
            raise pytest.UsageError(problem)


def _make_state(config: pytest.Config) -> RunState:
    try:
        scale = get_scale(config.getoption("pgclaims_scale"))
    except UnknownScaleError as exc:
        raise pytest.UsageError(f"--scale: {exc}") from None
    manifest = config.getoption("pgclaims_agents")
    if manifest:
        try:
            scale = external.apply(scale, external.read_manifest(
                config.invocation_params.dir / manifest))
        except external.ManifestError as exc:
            raise pytest.UsageError(f"--agents: {exc}") from None
        except ValueError as exc:  # the manifest's agents do not make a valid scale
            raise pytest.UsageError(f"--agents {manifest}: {exc}") from None
    control = _error_control(config, scale)
    envs = _split(config.getoption("pgclaims_env"))
    algos = _split(config.getoption("pgclaims_algo"))
    label = scale.name + "".join(f" (--env {e})" for e in envs) + "".join(
        f" (--algo {a})" for a in algos)
    full = {*scale.envs, *scale.algos}
    scale = scale.override(envs=_narrow(scale, "env", envs, scale.envs),
                           algos=_narrow(scale, "algo", algos, scale.algos))
    excluded = frozenset(full - {*scale.envs, *scale.algos})
    protocol = config.getoption("pgclaims_protocol")
    if protocol:
        names = ("authors", "corrected") if protocol == "all" else tuple(_split([protocol]))
        try:
            scale = scale.override(protocols=names)
        except ValueError as exc:
            raise pytest.UsageError(f"--protocol {protocol}: {exc}") from None
        label += f" (--protocol {protocol})"
    patterns = _claim_patterns(_split(config.getoption("pgclaims_claim")))
    budget = config.getoption("pgclaims_time_budget")
    try:
        budget_s = None if budget is None else stopping.parse_duration(budget)
    except ValueError as exc:
        raise pytest.UsageError(f"--time-budget {exc}") from None
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "pgclaims_run_id" in workerinput:
        return RunState(scale, label, patterns, workerinput["pgclaims_run_id"],
                        Path(workerinput["pgclaims_reports_dir"]), config.rootpath, False,
                        workerinput["pgclaims_started"], workerinput["pgclaims_created"],
                        excluded, budget, budget_s, control,
                        measure_seed=config.getoption("pgclaims_measure_seed"))
    given_dir = config.getoption("pgclaims_reports_dir")
    reports_dir = (config.invocation_params.dir / given_dir if given_dir
                   else config.rootpath / "reports").resolve()
    if not config.option.collectonly:
        _check_folders(given_dir, reports_dir, config.rootpath)
    now = time.time()
    run_id = config.getoption("pgclaims_run_id")
    if run_id is None:
        run_id = new_run_id(scale.name, reports_dir, now)
    else:
        problem = check_run_id(run_id)
        if problem is None and (reports_dir / run_id / "results.json").exists():
            problem = f"--run-id {run_id}: {reports_dir / run_id} already holds a run"
        if problem:
            raise pytest.UsageError(problem)
    created = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now))
    return RunState(scale, label, patterns, run_id, reports_dir, config.rootpath,
                    workerinput is None, now, created, excluded, budget, budget_s,
                    control, measure_seed=config.getoption("pgclaims_measure_seed"))


def _error_control(config: pytest.Config, scale: Scale) -> ErrorControl:
    """The run's error control, its family counted on the whole ``scale`` (before --env,
    --algo, --claim, -k or any file selection narrow what runs)."""
    policy = config.getoption("pgclaims_error_control")
    if policy == "family" and scale.bootstrap_method not in T_METHODS:
        raise pytest.UsageError(
            f"--error-control family: scale {scale.name} uses bootstrap_method "
            f"{scale.bootstrap_method!r}, whose p-values cannot resolve a family level of "
            f"alpha / (2 m); use a t method ({', '.join(T_METHODS)}) or --error-control row")
    return ErrorControl(policy, family_size(scale), round(1.0 - scale.confidence_level, 12))


def _echo(config: pytest.Config) -> progress_mod.Sink:
    """A sink printing to stderr past pytest's capture. pytest's capture is not thread-safe
    (pytest-dev/pytest#13693), so only the main thread suspends it; a line from another thread
    (the progress timer) is printed only while nothing captures (between test phases, and
    always on the xdist controller) and otherwise left to progress.log: then it returns False,
    so that the main thread's next line is not throttled away (:class:`eta.Tracker`)."""
    capman = config.pluginmanager.getplugin("capturemanager")

    def echo(line: str) -> bool:
        if capman is None:
            print(line, file=sys.stderr, flush=True)
        elif threading.current_thread() is threading.main_thread():
            with capman.global_and_fixture_disabled():
                print(line, file=sys.stderr, flush=True)
        elif _capturing_now(capman):
            return False
        else:
            print(line, file=sys.stderr, flush=True)
        return True

    return echo


def _capturing_now(capman: Any) -> bool:
    """Whether a test phase is capturing output now (pytest has no public call for it; with
    ``-s`` its global capture is "started" but captures nothing)."""
    fixture = getattr(getattr(capman, "_capture_fixture", None), "_is_started", None)
    if fixture is not None and fixture():
        return True
    started = getattr(getattr(capman, "_global_capturing", None), "is_started", None)
    return capman.is_globally_capturing() and started is not None and started()


@pytest.hookimpl(tryfirst=True)  # before junitxml reads the --junitxml path we default
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "claim(id): the CLAIMS.md id a claims test checks")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "pgclaims_controller_pid" in workerinput:
        die_with_parent(workerinput["pgclaims_controller_pid"])  # no stray worker if killed
    state = _make_state(config)
    backend_mod.configure(config)
    config.stash[STATE] = state
    if state.budget_s is not None:  # no new work once the budget is spent (suite.stopping)
        from pgclaims.measure import cache as cache_mod

        stopping.set_deadline(state.started + state.budget_s, str(state.time_budget))
        cache_mod.set_gate(stopping.check)
    # Progress lines bypass capture and go to progress.log once claims tests are collected
    # (RunSession); until then (library tests) they are ordinary, captured stderr.
    state.echo = _echo(config)
    state.previous_sink = progress_mod.set_sink(None)
    junit_loaded = hasattr(config.option, "xmlpath")
    if (state.controller and junit_loaded and not config.option.xmlpath
            and not config.option.collectonly):
        state.default_junit = state.run_dir / "junit.xml"
        state.reports_dir_existed = state.reports_dir.exists()
        config.option.xmlpath = str(state.default_junit)
    config.pluginmanager.register(RunSession(state, config), "pgclaims-run")


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """A claims test interrupted by :class:`Inconclusive` before its verdict (a measurement
    the agents cannot support, :class:`pgclaims.suite.external.Unsupported`) records the
    INCONCLUSIVE verdict with that reason, as ``verdict.unavailable(reason)`` would."""
    try:
        return (yield)
    except Inconclusive as exc:
        claim = claim_of(pyfuncitem)
        if claim is None or pyfuncitem.stash.get(RECORDED, False):
            raise
        state = state_of(pyfuncitem.config)
        VerdictRecorder(pyfuncitem, claim, state.scale, item_params(pyfuncitem),
                        error_control=state.error_control).unavailable(
            exc.reason, code=exc.code, detail=exc.detail)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    progress_mod.set_sink(state.previous_sink)
    eta_mod.record_units_to(None)
    if state.budget_s is not None:
        from pgclaims.measure import cache as cache_mod

        stopping.set_deadline(None)
        cache_mod.set_gate(None)
    if state.default_junit is not None and len(state.collector) == 0:
        # No claims test ran (e.g. the library tests): leave no run folder behind.
        state.default_junit.unlink(missing_ok=True)
        for folder in (state.run_dir, None if state.reports_dir_existed else state.reports_dir):
            try:
                if folder is not None:
                    folder.rmdir()
            except OSError:  # not empty: something else wrote there
                pass


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> Scale:
    """The active scale (after --env/--algo filters)."""
    return state_of(request.config).scale


@pytest.fixture(scope="session")
def protocol(request: pytest.FixtureRequest) -> str:
    """The protocol of the test's agents; claims tests are parametrized over the scale's
    protocols (ids like ``[authors-Hopper-v5-ppo]``), other tests get the first."""
    return state_of(request.config).scale.protocols[0]


@pytest.fixture(scope="session")
def agents(request: pytest.FixtureRequest, protocol: str) -> AgentStore:
    """``agents.get(env, algo, seed, iteration)``, ``agents.all(env, algo, iteration)``,
    ``agents.curve(env, algo, seed)``, ``agents.seeds``: the agents of ``protocol``."""
    state = state_of(request.config)
    return AgentStore(state.scale, cache_root(state.rootdir), state.run_id, protocol)


@pytest.fixture
def claim(request: pytest.FixtureRequest) -> Claim:
    """The record of the test's ``@pytest.mark.claim``."""
    found = claim_of(request.node)
    if found is None:
        pytest.fail(f"{request.node.nodeid} asks for `claim` but has no "
                    "@pytest.mark.claim('<id>')", pytrace=False)
    return found


@pytest.fixture
def verdict(request: pytest.FixtureRequest, claim: Claim) -> VerdictRecorder:
    """Reach the test's verdict: ``verdict.check(units, statistic)`` and friends."""
    item, state = request.node, state_of(request.config)
    return VerdictRecorder(item, claim, state.scale, item_params(item),
                           error_control=state.error_control)


def _placeholder(name: str) -> Any:
    def fixture(request: pytest.FixtureRequest) -> Any:
        pytest.fail(f"`{name}` is a claim parameter: it is only set for tests marked with a "
                    f"claim whose `over` includes {name!r}", pytrace=False)

    fixture.__name__ = name
    return pytest.fixture(scope="session", name=name)(fixture)


env = _placeholder("env")
algo = _placeholder("algo")
checkpoint = _placeholder("checkpoint")
n = _placeholder("n")

"""The claims registry, the scales and the pytest plugin (run against toy claims via pytester)."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pgclaims.suite import claims as claims_mod
from pgclaims.suite import progress as progress_mod
from pgclaims.suite.agents import AgentStore
from pgclaims.suite.claims import CLAIMS, Claim, get, register, unregister
from pgclaims.suite.results import plain, seed_for
from pgclaims.suite.scales import SCALES, get_scale

pytest_plugins = ["pytester"]

SPEC = Path(__file__).resolve().parent.parent.parent / "shared" / "CLAIMS.md"


# ---------------------------------------------------------------------------------------------
# The registry against CLAIMS.md


def _spec_rows(text: str) -> list[dict[str, Any]]:
    rows, section = [], None
    for line in text.splitlines():
        heading = re.match(r"^## (.+?)(?: \(.*\))?\s*$", line)
        if heading:
            section = heading.group(1)
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"[a-z]+\.[a-z0-9_]+", cells[0]):
            rule = re.fullmatch(r"(<=|<|>)\s*(.+)", cells[3])
            assert rule, f"cannot parse the verdict rule {cells[3]!r} of {cells[0]}"
            number = math.prod(float(x) for x in re.split(r"\s*x\s*", rule.group(2)))
            rows.append({"id": cells[0], "sentence": cells[1], "statistic": cells[2],
                         "direction": rule.group(1), "threshold": number, "paper": cells[4],
                         "section": section})
    return rows


def test_claims_match_the_specification() -> None:
    if not SPEC.exists():
        pytest.skip(f"{SPEC} not found (the specification lives beside the repository)")
    spec = _spec_rows(SPEC.read_text())
    assert [r["id"] for r in spec] == list(CLAIMS), "ids or their order differ from CLAIMS.md"
    for row in spec:
        claim = CLAIMS[row["id"]]
        got = {k: getattr(claim, k) for k in row}
        assert got == row, f"{row['id']} differs from CLAIMS.md"
    assert CLAIMS["grad.needs_many_samples"].threshold == 10240


def test_claim_records_are_consistent() -> None:
    for claim in CLAIMS.values():
        assert set(claim.over) <= {"env", "algo", "checkpoint", "n"}
        for need in claim.needs:  # every need is something some scale can provide
            assert not SCALES["paper"].lacks([need]), (claim.id, need)
    assert get("grad.decays_with_task").needs == ("humanoid+hopper+walker",)
    assert get("baseline.needed_for_reward").needs == ("zero_baseline_agents",)
    assert get("regime.more_samples_lower_lr").needs == ("lr_grid",)


def test_unknown_claim_names_close_matches() -> None:
    with pytest.raises(KeyError) as err:
        get("grad.true_cos_low_at2k")
    assert "unknown claim id 'grad.true_cos_low_at2k'" in str(err.value)
    assert "grad.true_cos_low_at_2k" in str(err.value)


def test_register_is_idempotent_and_guards_ids() -> None:
    toy = Claim("toy.registered", "Toy", "A toy.", "mean", "<", 1, "Fig 0")
    try:
        register(toy)
        register(Claim("toy.registered", "Toy", "A toy.", "mean", "<", 1, "Fig 0"))
        assert get("toy.registered") is toy
        with pytest.raises(ValueError, match="already registered"):
            register(Claim("toy.registered", "Toy", "Other.", "mean", ">", 1, "Fig 0"))
        with pytest.raises(ValueError, match="direction"):
            Claim("toy.bad", "Toy", "Bad.", "mean", "=>", 1, "Fig 0")
    finally:
        unregister("toy.registered")
    assert "toy.registered" not in claims_mod.all_claims()


# ---------------------------------------------------------------------------------------------
# Scales


def test_scale_profiles() -> None:
    smoke = get_scale("smoke")
    assert (smoke.envs, smoke.seeds, smoke.iterations, smoke.source) == (
        ("Hopper-v5",), (0, 1, 2), 30, "train")  # 3 seeds: CLAIMS.md's least for a verdict
    assert smoke.agent_shortfall is None and "not enough agents" in get_scale(
        "paper-mini").agent_shortfall
    assert smoke.checkpoints == (0, 9, 18, 27) and smoke.late == (18, 27)
    assert get_scale("nightly").checkpoints == (0, 150, 300, 450)
    assert get_scale("default").checkpoints == (0, 300, 450)  # 150 left out, for time
    assert get_scale("default").late == (300, 450)
    for scale in SCALES.values():
        assert 2048 in scale.n_grid
        assert json.loads(json.dumps(scale.to_dict())) == scale.to_dict()
        assert scale.describe().startswith(f"scale {scale.name}:")
        assert len(scale.describe().splitlines()) > 5
    assert get_scale("default").lacks(["humanoid+hopper+walker"]) == []
    assert get_scale("smoke").lacks(["humanoid+hopper+walker"]) == ["humanoid", "walker"]
    assert get_scale("nightly").lacks(["humanoid+hopper+walker"]) == []
    assert get_scale("nightly").true_grad_n_for("Humanoid-v5") == 2_000_000


def test_scale_errors_and_overrides() -> None:
    with pytest.raises(KeyError, match="one of: smoke, default, nightly, paper, paper-mini$"):
        get_scale("bogus")
    smaller = get_scale("default").override(seeds=(0,))
    assert smaller.seeds == (0,) and get_scale("default").seeds == tuple(range(10))
    with pytest.raises(TypeError, match="no field"):
        get_scale("default").override(sedes=(0,))
    with pytest.raises(ValueError, match="include 2048"):
        get_scale("default").override(n_grid=(128, 512))
    with pytest.raises(ValueError, match="high_sample_step_n 4096 needs step_eval_n > 0"):
        get_scale("default").override(high_sample_step_n=4096)
    fields = get_scale("smoke").override(step_eval_n=None).measure_fields()
    assert fields["step_eval_n"] == get_scale("smoke").landscape_ref_n  # None: the reference's


# ---------------------------------------------------------------------------------------------
# Small helpers


def test_plain_converts_to_json_builtins() -> None:
    out = plain({"a": np.float32(0.5), "b": np.int64(3), "c": (1, np.nan), "d": np.arange(2),
                 "e": np.bool_(True), 1: float("inf")})
    assert out == {"a": 0.5, "b": 3, "c": [1, None], "d": [0, 1], "e": True, "1": None}
    assert _builtin_only(out)
    assert seed_for("a::b") == seed_for("a::b") != seed_for("a::c")


def test_progress_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw7")
    lines: list[str] = []
    log = tmp_path / "run" / "progress.log"
    previous = progress_mod.set_sink(progress_mod.log_file_sink(log, lines.append))
    try:
        for _ in progress_mod.steps(range(4), "toy", every=0.5):
            pass
    finally:
        progress_mod.set_sink(previous)
    assert [line.split("] ")[1].split(" (")[0] for line in lines] == ["toy: 2/4", "toy: 4/4"]
    assert re.match(r"^\[gw7 \d\d:\d\d:\d\d\] toy", lines[0])
    assert log.read_text().splitlines() == lines


# ---------------------------------------------------------------------------------------------
# Agents


def test_missing_fixture_names_the_training_command(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGCLAIMS_FIXTURES", str(tmp_path / "empty"))
    store = AgentStore(get_scale("default"), tmp_path / "cache", "run")
    with pytest.raises(pytest.fail.Exception) as err:
        store.get("Hopper-v5", "ppo", 0, 300)
    assert "pgclaims fixtures train --env Hopper-v5 --algo ppo --seed 0 --iterations 500" in str(
        err.value)


def test_failed_training_fails_fast_in_the_same_run(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import pgclaims.agents.train

    calls = []

    def broken(config: Any, run_dir: Path, **kwargs: Any) -> None:
        calls.append(config)
        raise RuntimeError("the policy diverged")

    monkeypatch.setattr(pgclaims.agents.train, "train", broken)
    scale = get_scale("smoke")
    with pytest.raises(RuntimeError, match="the policy diverged"):
        AgentStore(scale, tmp_path, "run-1").get("Hopper-v5", "ppo", 0, 9)
    failed = next(tmp_path.glob("agents/*/FAILED"))
    assert failed.read_text().startswith("run run-1\n") and "Traceback" in failed.read_text()
    with pytest.raises(pytest.fail.Exception, match="failed earlier in this run.*diverged"):
        AgentStore(scale, tmp_path, "run-1").get("Hopper-v5", "ppo", 0, 9)
    assert len(calls) == 1
    with pytest.raises(RuntimeError):  # a later run tries again
        AgentStore(scale, tmp_path, "run-2").get("Hopper-v5", "ppo", 0, 9)
    assert len(calls) == 2


@pytest.mark.slow
def test_training_source_trains_once(tmp_path: Path) -> None:
    scale = get_scale("smoke").override(iterations=1, seeds=(0,))
    store = AgentStore(scale, tmp_path, "run")
    agent = store.get("Hopper-v5", "trpo", 0, 1)
    assert agent.iteration == 1
    assert store.get("Hopper-v5", "trpo", 0, 0).iteration == 0
    assert next(tmp_path.glob("agents/*/COMPLETE")).exists()
    assert len(store.curve("Hopper-v5", "trpo", 0)) == 1


# ---------------------------------------------------------------------------------------------
# The plugin on toy claims

TOY_CONFTEST = """
pytest_plugins = ["pgclaims.suite.plugin", "pgclaims.report.plugin"]
from pgclaims.suite.claims import Claim, register

register(Claim("toy.low", "Toy", "The toy is low.", "mean of agent means", "<", 0.5, "Fig 0"))
register(Claim("toy.high", "Toy", "The toy is high.", "mean of agent means", ">", 0.5, "Fig 0",
               over=("env",)))
register(Claim("toy.per_checkpoint", "Toy", "Low at late checkpoints.", "mean", "<", 0.5,
               "Fig 0", over=("env", "algo", "checkpoint"), checkpoints="late"))
register(Claim("toy.needs_humanoid", "Toy", "Humanoid is harder.", "difference", "<", 0, "Fig 0",
               over=("algo",), needs=("humanoid+hopper",)))
register(Claim("toy.crossing", "Toy", "Needs many samples.", "crossing N", ">", 10240, "Fig 0",
               over=("env",), constants={"level": 0.9}))
"""

TOY_TESTS = """
import numpy as np
import pytest


def agent_means(units):
    return float(np.mean([u.mean() for u in units]))


def units(center, spread=0.01, agents=3, repeats=10):
    rng = np.random.default_rng(0)
    return [center + spread * rng.standard_normal(repeats) for _ in range(agents)]


@pytest.mark.claim("toy.low")
def test_low(env, algo, verdict):
    verdict.check(units(0.1), agent_means, params={"n": 2048})


@pytest.mark.claim("toy.high")
def test_high_refuted(env, verdict):
    verdict.check(units(0.1), agent_means)


@pytest.mark.claim("toy.per_checkpoint")
def test_straddles(env, algo, checkpoint, verdict):
    verdict.check(units(0.5, spread=0.5), agent_means)


@pytest.mark.claim("toy.needs_humanoid")
@pytest.mark.parametrize("easier", ["Hopper-v5", "Walker2d-v5"])
def test_needs_humanoid(algo, easier, verdict):
    raise AssertionError("never runs at a scale without Humanoid")


@pytest.mark.claim("toy.low")
def test_value_from_elsewhere(env, algo, verdict):
    verdict.check_value(0.2, (0.1, 0.3), n_agents=3, confidence_level=verdict.decision_level)


@pytest.mark.claim("toy.crossing")
def test_crossing_censored(env, scale, verdict):
    grid = np.array(scale.n_grid, dtype=float)
    curves = np.stack([np.linspace(0.1, 0.6, len(grid)) + 0.01 * k for k in range(3)])
    verdict.check_crossing(grid, curves)


@pytest.mark.claim("toy.high")
def test_unavailable(env, verdict):
    verdict.unavailable("this scale has no zero-baseline agents")


@pytest.fixture
def zero_baseline_agents(verdict):
    verdict.unavailable("no zero-baseline agents at this scale")


@pytest.mark.claim("toy.high")
def test_unavailable_in_a_fixture(env, zero_baseline_agents, verdict):
    raise AssertionError("never runs: the fixture decided")


def test_not_a_claim():
    pass
"""

TOY_ERRORS = """
import pytest


@pytest.fixture
def broken_measurement():
    raise RuntimeError("sampler exploded")


@pytest.mark.claim("toy.low")
def test_measurement_raises(env, algo, verdict):
    raise RuntimeError("true gradient diverged")


@pytest.mark.claim("toy.low")
def test_setup_raises(env, algo, broken_measurement, verdict):
    pass


@pytest.mark.claim("toy.high")
def test_forgot_the_verdict(env, verdict):
    pass


@pytest.mark.claim("toy.high")
def test_skipped(env, verdict):
    pytest.skip("no MuJoCo here")
"""

TOY_IDS = ("toy.low", "toy.high", "toy.per_checkpoint", "toy.needs_humanoid", "toy.crossing")


@pytest.fixture
def toy(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(TOY_CONFTEST)
    pytester.makepyfile(test_toy=TOY_TESTS)
    yield pytester
    for claim_id in TOY_IDS:  # the toy conftest registered them in this process
        unregister(claim_id)


def _builtin_only(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _builtin_only(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_builtin_only(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def _results(pytester: pytest.Pytester, run_id: str) -> dict[str, Any]:
    path = pytester.path / "reports" / run_id / "results.json"
    doc = json.loads(path.read_text())
    assert _builtin_only(doc)
    try:
        from pgclaims.report import load_results
    except ImportError:
        return doc
    load_results(path.parent)  # validates schema 1
    return doc


def _outcomes(result: pytest.RunResult) -> dict[str, int]:
    """The summary line's counts, without warnings (the report may emit some)."""
    return {k: v for k, v in result.parseoutcomes().items() if k != "warnings"}


def _by_test(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["nodeid"].split("::")[1]: row for row in doc["results"]}


def test_outcomes_rows_and_results_json(toy: pytest.Pytester) -> None:
    result = toy.runpytest("--scale", "smoke", "--run-id", "toy", "-p", "no:cacheprovider")
    outcomes = _outcomes(result)
    assert outcomes == {"passed": 5, "failed": 1, "inconclusive": 9}, result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "pgclaims scale smoke: Hopper-v5 x ppo, trpo x seeds 0, 1, 2*",
        "*REFUTED toy.high (Fig 0): mean of agent means = 0.09*lies entirely at or below the "
        "threshold 0.5 (claim: > 0.5)",
        "*REPRODUCED 4, REFUTED 1, INCONCLUSIVE 9, ERROR 0",
        "results: *reports/toy/results.json",
    ])
    doc = _results(toy, "toy")
    assert doc["run_id"] == "toy" and doc["scale"]["name"] == "smoke"
    assert doc["provenance"]["env_substitution"]["Hopper-v2"] == "Hopper-v5"
    assert doc["provenance"]["backend"] == {"name": "local"}
    assert f"{os.cpu_count()} CPUs" in doc["provenance"]["machine"]  # the reference's machine
    rows = _by_test(doc)
    assert len(doc["results"]) == 14  # every claims test, not test_not_a_claim
    low = rows["test_low[Hopper-v5-ppo]"]
    assert low["verdict"] == "REPRODUCED" and low["params"] == {
        "env": "Hopper-v5", "algo": "ppo", "n": 2048}
    assert low["interval"][1] < 0.5 and 0 < low["p_value"] < 0.05 and low["n_agents"] == 3
    assert rows["test_high_refuted[Hopper-v5]"]["verdict"] == "REFUTED"
    straddle = rows["test_straddles[Hopper-v5-trpo-it27]"]
    assert straddle["verdict"] == "INCONCLUSIVE" and "straddles" in straddle["reason"]
    assert straddle["params"]["checkpoint"] == 27
    power = straddle["power"]  # what would decide it, from the interval's own spread
    assert power["n_agents"] == 3 and power["width"] == pytest.approx(
        straddle["interval"][1] - straddle["interval"][0])
    assert "power" not in low
    # each agent's own value and its noise from its repeats (for the variance components)
    assert [set(v) for v in low["agent_values"]] == [{"value", "within_var", "repeats"}] * 3
    rng = np.random.default_rng(0)
    first = 0.1 + 0.01 * rng.standard_normal(10)
    assert low["agent_values"][0]["value"] == pytest.approx(first.mean())
    assert low["agent_values"][0]["within_var"] == pytest.approx(first.var(ddof=1) / 10)
    assert "agent_values" not in rows["test_value_from_elsewhere[Hopper-v5-ppo]"]
    needs = rows["test_needs_humanoid[Walker2d-v5]"]
    assert needs["verdict"] == "INCONCLUSIVE" and needs["params"] == {"easier": "Walker2d-v5"}
    assert needs["reason"] == ("scale smoke lacks humanoid "
                               "(claim toy.needs_humanoid needs humanoid+hopper)")
    assert rows["test_value_from_elsewhere[Hopper-v5-ppo]"]["verdict"] == "REPRODUCED"
    crossing = rows["test_crossing_censored[Hopper-v5]"]
    assert crossing["verdict"] == "INCONCLUSIVE" and "censored" in crossing["reason"]
    assert rows["test_unavailable[Hopper-v5]"]["reason"] == "this scale has no zero-baseline agents"
    in_fixture = rows["test_unavailable_in_a_fixture[Hopper-v5]"]
    assert in_fixture["verdict"] == "INCONCLUSIVE" and "zero-baseline" in in_fixture["reason"]
    assert all(isinstance(r["duration_s"], float) for r in doc["results"])
    if (toy.path / "reports" / "toy" / "index.html").exists():  # the report module is present
        assert (toy.path / "reports" / "latest").resolve() == (toy.path / "reports" / "toy")
        assert len((toy.path / "reports" / "history.jsonl").read_text().splitlines()) == 14
    assert (toy.path / "reports" / "toy" / "junit.xml").exists()
    again = toy.runpytest("--scale", "smoke", "--run-id", "toy", "-p", "no:cacheprovider")
    assert again.ret == pytest.ExitCode.USAGE_ERROR  # a run folder is never overwritten


def test_only_the_refuted_claim_fails_the_run(toy: pytest.Pytester) -> None:
    result = toy.runpytest("--scale", "smoke", "-k", "not refuted", "-p", "no:cacheprovider")
    assert _outcomes(result) == {"passed": 5, "inconclusive": 9, "deselected": 1}
    assert result.ret == pytest.ExitCode.OK


def test_a_rows_verdict_does_not_depend_on_the_selection(toy: pytest.Pytester) -> None:
    """The family rule's level comes from the whole scale, so a subset (-k, --env) decides
    every row it runs exactly as the whole run does; --error-control row is the 95% rule."""
    toy.runpytest("--scale", "smoke", "--run-id", "full", "-p", "no:cacheprovider")
    toy.runpytest("--scale", "smoke", "--run-id", "part", "-k", "low or straddles",
                  "--env", "Hopper-v5", "-p", "no:cacheprovider")
    full, part = _results(toy, "full"), _results(toy, "part")
    assert 0 < len(part["results"]) < len(full["results"])
    rows = _by_test(full)
    keys = ("verdict", "reason", "interval", "decision", "p_value", "p_refute")
    for name, row in _by_test(part).items():
        assert {k: row[k] for k in keys} == {k: rows[name][k] for k in keys}, name
    control = full["provenance"]["error_control"]
    assert control["policy"] == "family" and control["family_size"] > len(full["results"])
    assert control["provisional"] is True
    assert control["expected_false_max"] == pytest.approx(0.05)
    low = rows["test_low[Hopper-v5-ppo]"]
    assert low["decision"]["confidence_level"] == pytest.approx(control["confidence_level"])
    assert low["p_value"] < low["decision"]["alpha_side"] and low["p_refute"] > 0.5
    toy.runpytest("--scale", "smoke", "--run-id", "row", "--error-control", "row",
                  "-p", "no:cacheprovider")
    row = _by_test(_results(toy, "row"))["test_low[Hopper-v5-ppo]"]
    assert row["reason"].startswith("95% CI") and row["decision"]["policy"] == "row"
    assert low["reason"].startswith("99.9") and "% CI [" in low["reason"]


def test_verbose_outcome_and_claim_selection(toy: pytest.Pytester) -> None:
    result = toy.runpytest("--scale", "smoke", "--claim", "toy.per_*", "-v",
                           "-p", "no:cacheprovider")
    assert re.search(r"test_straddles\[Hopper-v5-ppo-it18\] INCONCLUSIVE", result.stdout.str())
    assert _outcomes(result) == {"inconclusive": 4, "deselected": 11}


@pytest.mark.parametrize("args, message", [
    (["--scale", "bogus"], "ERROR: --scale: unknown scale 'bogus'; choose one of: smoke, "
                           "default, nightly, paper, paper-mini"),
    (["--claim", "toy.lo"], "ERROR: --claim: unknown claim id 'toy.lo'; did you mean toy.low*"),
    (["--claim", "unknown.id"], "ERROR: --claim: unknown claim id 'unknown.id'*"),
    (["--env", "Walker2d-v5", "--scale", "smoke"], "ERROR: --env Walker2d-v5: scale smoke has "
                                                   "Hopper-v5"),
])
def test_usage_errors_write_nothing(toy: pytest.Pytester, args: list[str], message: str) -> None:
    result = toy.runpytest(*args, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert len([line for line in result.stderr.lines if line.strip()]) == 1
    result.stderr.fnmatch_lines([message])
    assert not (toy.path / "reports").exists()


def test_collect_only_lists_readable_ids(toy: pytest.Pytester) -> None:
    result = toy.runpytest("--collect-only", "-q", "--scale", "default", "-p", "no:cacheprovider")
    ids = {line for line in result.stdout.lines if "::" in line}
    assert {"test_toy.py::test_low[Walker2d-v5-trpo]", "test_toy.py::test_high_refuted[Hopper-v5]",
            "test_toy.py::test_straddles[Hopper-v5-ppo-it450]",
            "test_toy.py::test_needs_humanoid[ppo-Hopper-v5]",
            "test_toy.py::test_not_a_claim"} <= ids, sorted(ids)
    assert not any("it150" in i or "it0" in i for i in ids)  # per_checkpoint is "late" only
    assert not (toy.path / "reports").exists()


def test_errors_become_error_rows(toy: pytest.Pytester) -> None:
    toy.makepyfile(test_errors=TOY_ERRORS)
    result = toy.runpytest("test_errors.py", "--scale", "smoke", "--run-id", "errors",
                           "-p", "no:cacheprovider")
    assert _outcomes(result) == {"failed": 3, "errors": 2, "skipped": 1}
    rows = _by_test(_results(toy, "errors"))
    raised = rows["test_measurement_raises[Hopper-v5-ppo]"]
    assert raised["verdict"] == "ERROR" and "true gradient diverged" in raised["reason"]
    setup = rows["test_setup_raises[Hopper-v5-trpo]"]
    assert setup["verdict"] == "ERROR" and setup["reason"].startswith("error in setup")
    assert "sampler exploded" in setup["reason"]
    forgot = rows["test_forgot_the_verdict[Hopper-v5]"]
    assert forgot["verdict"] == "ERROR" and "without a verdict" in forgot["reason"]
    skipped = rows["test_skipped[Hopper-v5]"]
    assert skipped["verdict"] == "INCONCLUSIVE" and "no MuJoCo here" in skipped["reason"]


def test_bad_claims_modules_fail_collection_clearly(toy: pytest.Pytester) -> None:
    toy.makepyfile(
        test_typo="""
import pytest

@pytest.mark.claim("toy.lw")
def test_typo(env, algo, verdict):
    pass
""",
        test_forgot="""
import pytest

@pytest.mark.claim("toy.per_checkpoint")
def test_forgot_checkpoint(env, algo, verdict):
    pass
""")
    result = toy.runpytest("test_typo.py", "test_forgot.py", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([
        "test_typo.py::test_typo: unknown claim id 'toy.lw'; did you mean toy.low*",
        "test_forgot.py::test_forgot_checkpoint: claim toy.per_checkpoint is tested per env, "
        "algo, checkpoint; add argument(s) checkpoint to the test",
    ])


def test_plugin_is_inert_without_claims_tests(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["pgclaims.suite.plugin", "pgclaims.report.plugin"]')
    pytester.makepyfile(test_lib="def test_ok():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert _outcomes(result) == {"passed": 1}
    assert "pgclaims verdicts" not in result.stdout.str()
    assert not (pytester.path / "reports").exists()


@pytest.mark.slow
def test_under_xdist(toy: pytest.Pytester) -> None:
    result = toy.runpytest("-p", "xdist", "-n", "2", "-v", "--scale", "smoke", "--run-id", "xd",
                           "-p", "no:cacheprovider")
    assert _outcomes(result) == {"passed": 5, "failed": 1, "inconclusive": 9}
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # -n keeps xdist's load scheduling: the locked measurement cache shares work across workers
    assert "LoadScheduling" in result.stdout.str()
    doc = _results(toy, "xd")
    assert len(doc["results"]) == 14
    verdicts = sorted(r["verdict"] for r in doc["results"])
    assert verdicts == sorted(["REPRODUCED"] * 4 + ["REFUTED"] + ["INCONCLUSIVE"] * 9)


AGENT_CONFTEST = """
pytest_plugins = ["pgclaims.suite.plugin", "pgclaims.report.plugin"]
from pgclaims.suite.claims import Claim, register
from pgclaims.suite.scales import get_scale, register_scale

register(Claim("toy.trained", "Toy", "The agent trained.", "iteration", ">", 0, "Fig 0"))
register_scale(get_scale("smoke").override(name="tiny", iterations=1, seeds=(0,),
                                           algos=("trpo",)))
"""

AGENT_TEST = """
import numpy as np
import pytest


@pytest.mark.claim("toy.trained")
def test_trained(env, algo, agents, verdict):
    agent = agents.get(env, algo, 0, 1)
    verdict.check([np.array([agent.iteration, agent.iteration], dtype=float)],
                  lambda units: float(units[0].mean()))
"""


@pytest.mark.slow
def test_workers_share_one_training_run(pytester: pytest.Pytester,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from pgclaims.suite.scales import unregister_scale

    monkeypatch.delenv("PGCLAIMS_CACHE", raising=False)
    pytester.makeconftest(AGENT_CONFTEST)
    pytester.makepyfile(test_a=AGENT_TEST, test_b=AGENT_TEST)
    try:
        result = pytester.runpytest("-p", "xdist", "-n", "2", "--scale", "tiny", "--run-id",
                                    "agents", "-p", "no:cacheprovider")
    finally:
        unregister("toy.trained")
        unregister_scale("tiny")
    # one agent: INCONCLUSIVE, however its repeats agree (they were the unit, and decided)
    assert _outcomes(result) == {"inconclusive": 2}
    rows = _results(pytester, "agents")["results"]
    assert {r["reason_code"] for r in rows} == {"not_enough_agents"}
    assert "pgclaims warning: 1 agent per environment and algorithm" in result.stdout.str()
    log = (pytester.path / "reports" / "agents" / "progress.log").read_text()
    assert log.count("] training authors Hopper-v5 trpo seed 0 (1 iterations)") == 1, log
    assert len(list(pytester.path.glob(".cache/pgclaims/agents/*/COMPLETE"))) == 1


PROTOCOL_TESTS = """
import numpy as np
import pytest


@pytest.mark.claim("toy.high")
def test_per_protocol(env, protocol, agents, verdict):
    assert agents.protocol == protocol
    center = 0.9 if protocol == "authors" else 0.1
    rng = np.random.default_rng(0)
    verdict.check([center + 0.01 * rng.standard_normal(10) for _ in range(3)],
                  lambda us: float(np.mean([u.mean() for u in us])))
"""


def test_claims_run_once_per_protocol(pytester: pytest.Pytester) -> None:
    """--protocol all: every claims test once per protocol, the protocol in its id, its row's
    params and the provenance; the refuted row carries its reading."""
    pytester.makeconftest(TOY_CONFTEST)
    pytester.makepyfile(test_protocols=PROTOCOL_TESTS)
    try:
        result = pytester.runpytest("--scale", "smoke", "--protocol", "all", "--run-id", "p",
                                    "-p", "no:cacheprovider")
        assert _outcomes(result) == {"passed": 1, "failed": 1}, result.stdout.str()
        doc = _results(pytester, "p")
        rows = _by_test(doc)
        assert set(rows) == {"test_per_protocol[authors-Hopper-v5]",
                             "test_per_protocol[corrected-Hopper-v5]"}
        authors, corrected = (rows[f"test_per_protocol[{p}-Hopper-v5]"]
                              for p in ("authors", "corrected"))
        assert authors["params"] == {"protocol": "authors", "env": "Hopper-v5"}
        assert authors["verdict"] == "REPRODUCED" and corrected["verdict"] == "REFUTED"
        assert corrected["reading"] is None or "threshold 0.5" in corrected["reading"]
        assert set(doc["provenance"]["protocols"]) == {"authors", "corrected"}
        assert doc["scale"]["protocols"] == ["authors", "corrected"]
        bad = pytester.runpytest("--protocol", "paper", "-p", "no:cacheprovider")
        assert bad.ret == pytest.ExitCode.USAGE_ERROR
        bad.stderr.fnmatch_lines(["ERROR: --protocol paper: *expected a non-empty subset of "
                                  "authors, corrected, table1*"])
    finally:
        for claim_id in TOY_IDS:
            unregister(claim_id)


def test_measure_seed_reaches_every_measurement_and_provenance(
        toy: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """--measure-seed N: the claims' Study hands N to every measurement kind (so the cache
    keeps one entry per seed), results.json records it, and a bad value is a usage error."""
    from types import SimpleNamespace

    from claims.conftest import Study
    from pgclaims import measure
    from pgclaims.suite.scales import get_scale

    seen: dict[str, int] = {}
    for kind in ("gradients", "value", "steps", "landscapes"):
        monkeypatch.setattr(measure, kind, lambda agent, cfg, seed=0, progress=None, kind=kind:
                            seen.__setitem__(kind, seed))
    store = SimpleNamespace(protocol="authors", get=lambda *a: SimpleNamespace(
        optimizer_state=object(), last_fit=object()))
    study = Study(get_scale("smoke"), store, 7)
    monkeypatch.setattr(study, "_stepping", lambda *a: store.get())
    monkeypatch.setattr(study, "_done", lambda *a: a[-1])
    for call in (study.gradients, study.value, study.steps, study.landscape):
        call("Hopper-v5", "ppo", 0, 0)
    assert seen == {"gradients": 7, "value": 7, "steps": 7, "landscapes": 7}

    toy.runpytest("--scale", "smoke", "--run-id", "s3", "--measure-seed", "3", "-k", "low",
                  "-p", "no:cacheprovider")
    assert _results(toy, "s3")["provenance"]["measure_seed"] == 3
    toy.runpytest("--scale", "smoke", "--run-id", "s0", "-k", "low", "-p", "no:cacheprovider")
    assert _results(toy, "s0")["provenance"]["measure_seed"] == 0
    for bad in ("-1", "x", str(2**32)):
        result = toy.runpytest("--measure-seed", bad, "--run-id", "bad", "-p", "no:cacheprovider")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*argument --measure-seed: expected*"])
        assert not (toy.path / "reports" / "bad").exists()

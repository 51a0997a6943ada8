"""The run plan (:mod:`pgclaims.suite.plan`) against what the claims tests actually request, and
its cost arithmetic (:mod:`pgclaims.suite.costs`) on fixed throughputs.

The claims tests in ``claims/`` are called here, with every parametrization the plugin would
give them, against a study that records each measurement and training run it is asked for and
answers with well-shaped random data. The plan must list exactly those requests, per claim.
"""

from __future__ import annotations

import inspect
import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import claims.test_ablations
import claims.test_gradient
import claims.test_landscape
import claims.test_value
from claims.conftest import Study
from pgclaims import cli, measure
from pgclaims.measure.sampler import CHUNK
from pgclaims.suite import costs, plan
from pgclaims.suite.claims import CLAIMS, get
from pgclaims.suite.scales import get_scale
from pgclaims.suite.session import parameter_values
from pgclaims.suite.sizes import blocks_all

MODULES = (claims.test_gradient, claims.test_value, claims.test_landscape, claims.test_ablations)


class RecordingStudy(Study):
    """The claims' study, recording what it is asked for instead of measuring."""

    def __init__(self, scale: Any, protocol: str) -> None:
        super().__init__(scale, SimpleNamespace(protocol=protocol))
        self.protocol_name = protocol
        self.requests: set[str] = set()
        self.configs: list[tuple[str, measure.MeasureConfig]] = []
        self.rng = np.random.default_rng(0)

    def _record(self, kind: str, env: str, algo: str, seed: int, it: int) -> measure.MeasureConfig:
        assert it in self.scale.checkpoints, (kind, it)
        self.requests.add(f"{kind}/{self.protocol_name}/{env}/{algo}/{seed}/{it}")
        cfg = self.cfg_for(env)
        self.configs.append((env, cfg))
        return cfg

    def gradients(self, env, algo, seed, it):
        cfg = self._record("gradients", env, algo, seed, it)
        n = sorted({x if x < CHUNK else -(-x // CHUNK) * CHUNK for x in cfg.n_grid})
        shape = (len(n), cfg.repeats)
        return measure.GradientStudy(
            n=np.asarray(n), pairwise={b: self.rng.uniform(0, 1, shape)
                                       for b in ("valuenet", "true", "zero")},
            true_cos=np.sort(self.rng.uniform(0, 1, shape), axis=0),
            trajectories=np.arange(1, 5), episode_returns=self.rng.normal(size=7),
            true_cos_debiased=np.sort(self.rng.uniform(0, 1, shape), axis=0),
            meta={"true_grad_signal_fraction": list(self.rng.uniform(0, 1, cfg.repeats)),
                  "true_grad_sq_var": list(self.rng.uniform(0, 1, cfg.repeats))})

    def value(self, env, algo, seed, it):
        cfg = self._record("value", env, algo, seed, it)
        r = self.rng.uniform(0, 1, (4, cfg.repeats))
        return measure.ValueStudy(r[0], r[1], r[2, :1], r[3, :1])

    def steps(self, env, algo, seed, it):
        cfg = self._record("steps", env, algo, seed, it)
        r = self.rng.normal(size=(4, cfg.repeats))
        return measure.StepStudy(r[0], np.abs(r[1]), r[2], r[3, :1], np.abs(r[3]))

    def landscape(self, env, algo, seed, it):
        cfg = self._record("landscape", env, algo, seed, it)
        k = len(cfg.landscape_steps)
        grid = lambda: self.rng.normal(size=(k, k))  # noqa: E731
        return measure.Landscape(np.asarray(cfg.landscape_steps), np.asarray(
            cfg.landscape_steps), {str(n): grid() for n in cfg.landscape_n}, grid(), grid(), 1.0)

    def ablation_curve(self, run):
        self.requests.add(f"ablation/{run.config().key()}")
        pairs = [run.steps * (i + 1) for i in range(run.iterations)]
        return {"pairs": pairs, "mean_return": self.rng.uniform(1, 2, len(pairs)).tolist(),
                "episodes": [3] * len(pairs)}


class NoVerdict:
    """Runs the test's statistic on its units (so a malformed unit fails) and decides nothing."""

    def check(self, units, statistic, censored=None, **kwargs):
        statistic(units)
        if censored is not None:
            for outcome in ("REPRODUCED", "REFUTED"):
                assert censored(outcome) is None or "edge of the grid" in censored(outcome)

    def check_ratio(self, units, ratio, denominator, **kwargs):
        ratio(units), denominator(units)

    def check_geometric(self, units, log_statistic, **kwargs):
        log_statistic(units)

    def check_crossing(self, n, curves, **kwargs):
        assert len(n) == np.shape(curves)[1]

    def unavailable(self, reason, **kwargs):
        pass


def claims_tests() -> list[tuple[str, Any]]:
    found = []
    for module in MODULES:
        for _, fn in inspect.getmembers(module, inspect.isfunction):
            marks = getattr(fn, "pytestmark", [])
            ids = [m.args[0] for m in marks if m.name == "claim"]
            if ids:
                found.append((ids[0], fn))
    return found


def calls(claim_id: str, fn: Any, scale: Any) -> list[dict[str, Any]]:
    """Every parametrization the plugin and the test's own marks give ``fn``."""
    claim = get(claim_id)
    combos: list[dict[str, Any]] = [{}]
    for name in claim.over:
        combos = [{**c, name: v} for c in combos
                  for v in parameter_values(name, claim, scale)]
    for mark in getattr(fn, "pytestmark", []):
        if mark.name == "parametrize":
            name, values = mark.args
            combos = [{**c, name: v} for c in combos for v in values]
    return combos


def recorded(scale: Any) -> dict[str, set[str]]:
    """Claim id -> the requests its tests make at ``scale``."""
    out: dict[str, set[str]] = {}
    for claim_id, fn in claims_tests():
        if scale.lacks(get(claim_id).needs) or blocks_all(get(claim_id), scale):
            continue  # INCONCLUSIVE without measuring
        for protocol in scale.protocols:
            study = RecordingStudy(scale, protocol)
            for params in calls(claim_id, fn, scale):
                fn(study=study, verdict=NoVerdict(), **params)
            for env, cfg in study.configs:
                assert cfg == plan.measure_config(scale, env)
            out.setdefault(claim_id, set()).update(study.requests)
    return out


def test_every_claim_has_a_test_and_a_plan_entry() -> None:
    assert sorted(cid for cid, _ in claims_tests()) == sorted(CLAIMS)
    assert set(plan.USES) == set(CLAIMS)


@pytest.mark.parametrize("name, protocol", [("smoke", None), ("smoke", ("authors", "corrected")),
                                            ("paper-mini", None), ("default", None)])
def test_plan_lists_exactly_what_the_claims_tests_request(name: str, protocol: Any) -> None:
    scale = get_scale(name)
    if protocol:
        scale = scale.override(protocols=protocol)
    p = plan.build(scale)
    want = recorded(scale)
    for claim_id in CLAIMS:
        got = {k for k, users in p.users.items() if claim_id in users
               and p.tasks[k].kind != "training"}
        assert got == want.get(claim_id, set()), claim_id
    assert set(p.lacking) == {c for c in CLAIMS if scale.lacks(get(c).needs)}
    assert set(p.short) == {c for c in CLAIMS if c not in p.lacking
                            and blocks_all(get(c), scale)}
    agents = {t.ident for t in p.tasks.values() if t.kind == "training"}
    assert len(agents) == (len(scale.protocols) * len(scale.envs) * len(scale.algos)
                           * len(scale.seeds))


def test_the_default_scale_reads_ablation_runs_of_seeds_0_to_4_only() -> None:
    """Issue 21 trains the ablations on 5 seeds while the agents have 10: the plan prices, and
    the claims read, the runs of seeds 0-4; a scale narrower than that reads its own seeds."""
    default = get_scale("default")
    assert default.seeds == tuple(range(10)) and default.ablation_agents == (0, 1, 2, 3, 4)
    assert default.override(seeds=(3, 4, 5)).ablation_agents == (3, 4)
    assert get_scale("paper").ablation_agents == get_scale("paper").seeds
    p = plan.build(default, ["baseline.needed_for_reward", "regime.more_samples_lower_lr"])
    seeds = {t.seed for t in p.tasks.values() if t.kind == "ablation"}
    assert seeds == {0, 1, 2, 3, 4}
    assert "ablations on seeds 0, 1, 2, 3, 4" in default.describe()


def test_paper_mini_has_every_capability_of_paper() -> None:
    mini, paper = get_scale("paper-mini"), get_scale("paper")
    assert paper.provides <= mini.provides
    assert mini.landscape_steps == paper.landscape_steps and mini.source == "train"
    assert mini.high_sample_step_n > 0 and {1.0} < set(mini.lr_grid)
    assert plan.build(mini).lacking == {}


def test_smoke_pair_counts_per_family() -> None:
    """The arithmetic, by hand, for the smoke scale (1 env x 2 algos x 3 seeds, checkpoints
    0, 9, 18, 27). Its N grid, reference grid, high-sample step and reward estimates are below
    the sizes of grad.pairwise_rises_with_n and four landscape claims, so nothing measures
    gradients at iteration 9 or landscapes late."""
    p = plan.build(get_scale("smoke"))
    assert set(p.short) == {"grad.pairwise_rises_with_n", "landscape.noisy_at_low_samples",
                            "landscape.misaligned_late", "landscape.ppo_high_sample_misleads",
                            "landscape.surrogate_up_reward_down"}
    agents = 6
    grad = 10 * (256 + 1024 + 8192) + 20_480  # streams + true value; 9 x 8192 >= 65536
    value = 10 * 2048
    steps = 10 * 2048 + 8192 + 12 * 8192
    land = 2048 + 9 * (2048 + 4096 + 8192)
    train = 30 * 2048
    assert plan.measure_config(get_scale("smoke"), "Hopper-v5").true_grad_n <= 9 * 8192
    by_kind: dict[str, int] = {}
    for t in p.todo():
        by_kind[t.kind] = by_kind.get(t.kind, 0) + t.pairs
    assert by_kind == {"training": agents * train, "gradients": agents * 3 * grad,
                       "value": agents * 2 * value, "steps": agents * 2 * steps,
                       "landscape": agents * 1 * land}


RATES = costs.Rates(
    sample={"Hopper-v5": 4096.0}, sample_lockstep={"Hopper-v5": 8192.0},
    reduce={"Hopper-v5": 0.1}, fit_step={"Hopper-v5": 1e-3},
    iteration={"Hopper-v5/ppo": 2.0, "Hopper-v5/trpo": 1.0},
    update={"Hopper-v5/ppo": 1.5, "Hopper-v5/trpo": 0.5}, measured="fixed for the test")


def test_cost_arithmetic_on_fixed_rates() -> None:
    scale = get_scale("smoke")
    p = plan.build(scale)
    est = costs.estimate(p, RATES)
    g = next(t for t in p.tasks.values() if t.kind == "gradients")
    fit = 30 * (20_480 // 256) * 1e-3
    reduce = (10 * (256 + 1024 + 8192) * 3 + 0) / CHUNK * 0.1
    assert costs.task_seconds(g, p, RATES) == pytest.approx((g.pairs / 8192 + reduce + fit, fit))
    s = next(t for t in p.tasks.values() if t.kind == "steps" and t.algo == "ppo")
    high = scale.high_sample_step_n  # one stream; the repeats and evaluations in lockstep
    updates = (10 + 4) * 1.5
    # serial: one round after another (one 2K batch, the high batch, one evaluation), updates
    assert costs.task_seconds(s, p, RATES) == pytest.approx(
        ((s.pairs - high) / 8192 + high / 4096 + updates,
         CHUNK / 8192 + high / 4096 + scale.step_eval_n / 8192 + updates))
    land = next(t for t in p.tasks.values() if t.kind == "landscape" and t.algo == "trpo")
    step = CHUNK / 4096 + 0.5  # the step's batch and update, then one point per N
    assert costs.task_seconds(land, p, RATES) == pytest.approx(
        ((land.pairs - CHUNK) / 8192 + step, step + (2048 + 4096 + 8192) / 8192))
    v = next(t for t in p.tasks.values() if t.kind == "value")
    assert costs.task_seconds(v, p, RATES) == (v.pairs / 8192, scale.heldout_n / 8192)
    train = next(t for t in p.tasks.values() if t.kind == "training" and t.algo == "trpo")
    assert costs.task_seconds(train, p, RATES) == (30.0, 30.0)
    assert est.core_s == pytest.approx(sum(costs.task_seconds(t, p, RATES)[0] for t in p.todo()))
    assert est.pairs == sum(t.pairs for t in p.todo())
    assert est.wall_s(1000) == est.critical_s > 0  # enough cores: the serial chain decides
    assert est.wall_s(1, 0.5) == pytest.approx(est.core_s / 0.5)
    assert sum(f["claims"] for f in est.by_family.values()) == len(CLAIMS)


def test_plan_command_prints_a_table_and_json(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(costs, "measure_rates", lambda *a, **k: RATES)
    assert cli.main(["plan", "--scale", "smoke", "--cores", "50"]) == 0
    out = capsys.readouterr().out
    assert "gradient studies" in out and "a cluster of 50 cores" in out
    assert "grad.decays_with_task (lacks humanoid, walker)" in out
    assert cli.main(["plan", "--scale", "smoke", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scale"] == "smoke" and doc["by_kind"]["training"]["count"] == 6
    assert doc["wall_hours"]["cluster_cores"] == 100
    assert cli.main(["plan", "--scale", "smok"]) == 2
    assert "unknown scale 'smok'" in capsys.readouterr().err


def test_rates_keep_the_median_timing_not_an_outlier() -> None:
    """One slow call among the repeats (a cold cache, a neighbour's burst) does not move a
    measured rate: :func:`costs.measure_rates` keeps the median of its timings."""
    import time

    def burn(seconds: float) -> None:
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    median = costs._median_cpu(burn, [(0.01,), (0.5,), (0.01,)])
    assert 0.009 < median < 0.1
    assert costs._median_cpu(burn, [(0.05,)] * costs.REPEATS) >= 0.05

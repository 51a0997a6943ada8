"""What a row may conclude (issue 24, items 3 and 4): never from fewer than 3 agents, never from
a size below the one CLAIMS.md specifies, never from an undefined statistic or a ratio whose
denominator is not established; every such INCONCLUSIVE row carries a machine-readable reason.

The recorder is driven directly, with a stand-in for the pytest item (it only needs a node id,
a stash and user properties).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from claims.conftest import mean_of_means, require_defined
from claims.test_ablations import best_log_lr
from claims.test_landscape import spearman
from pgclaims.suite.claims import MIN_AGENTS, Claim, Size, get, unregister
from pgclaims.suite.readings import reading
from pgclaims.suite.results import PROPERTY
from pgclaims.suite.scales import get_scale
from pgclaims.suite.sizes import blocks_all, deciding_scales, shortfall
from pgclaims.suite.verdicts import REASON_CODES, Inconclusive, VerdictRecorder

pytest_plugins = ["pytester"]

LOW = Claim("guard.low", "Toy", "Low.", "mean", "<", 0.5, "Fig 0")
LOW_AT_SIZE = Claim("guard.sized", "Toy", "Low at 1e6 pairs.", "mean", "<", 0.5, "Fig 0",
                    sizes=(Size("step_eval_n", 1_000_000, "estimates of 1e6 pairs",
                                invalidates=("REPRODUCED",)),))


@dataclass
class Item:
    nodeid: str = "claims/test_toy.py::test_guard"
    stash: pytest.Stash = field(default_factory=pytest.Stash)
    user_properties: list[Any] = field(default_factory=list)


def recorder(claim: Claim = LOW, scale: str = "default") -> VerdictRecorder:
    return VerdictRecorder(Item(), claim, get_scale(scale), {})  # type: ignore[arg-type]


def row_of(rec: VerdictRecorder) -> dict[str, Any]:
    return dict(rec.item.user_properties)[PROPERTY]


def agents(n: int, mean: float = 0.1, spread: float = 0.02, repeats: int = 10,
           seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(m, spread, repeats) for m in rng.normal(mean, spread, n)]


def outcome(rec: VerdictRecorder, call: Any) -> dict[str, Any]:
    try:
        call(rec)
    except Inconclusive:
        pass
    return row_of(rec)


# ---------------------------------------------------------------------------------------------
# Agents


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_agents_is_inconclusive_whatever_the_repeats(n: int) -> None:
    """One agent's 10 tight repeats used to be the unit (an interval far below 0.5: REPRODUCED);
    two agents give an interval over agents, shown, but no verdict."""
    row = outcome(recorder(), lambda r: r.check(agents(n), mean_of_means))
    assert row["verdict"] == "INCONCLUSIVE" and row["reason_code"] == "not_enough_agents"
    assert row["reason"].startswith(f"not enough agents: {n}")
    assert row["reason_detail"] == {"agents": n, "needed": MIN_AGENTS}
    assert row["n_agents"] == n and row["p_value"] is None
    assert (row["interval"] is None) == (n == 1)  # never an interval over one agent's repeats
    assert row["statistic"] == pytest.approx(np.mean([u.mean() for u in agents(n)]))


def test_three_agents_decide() -> None:
    rec = recorder()
    rec.check(agents(3), mean_of_means)
    row = row_of(rec)
    assert row["verdict"] == "REPRODUCED" and row["reason_code"] is None


def test_a_crossing_over_two_agents_is_inconclusive() -> None:
    claim = get("grad.needs_many_samples")
    grid = np.array([2048.0, 8192.0, 16384.0])
    row = outcome(recorder(claim), lambda r: r.check_crossing(grid, np.full((2, 3), 0.2)))
    assert row["verdict"] == "INCONCLUSIVE" and row["reason_code"] == "not_enough_agents"


def test_a_scale_with_fewer_than_three_seeds_says_so() -> None:
    one = get_scale("default").override(seeds=(0,))
    assert "every verdict is INCONCLUSIVE (not enough agents" in one.agent_shortfall
    assert "warning" in one.describe()
    assert get_scale("default").agent_shortfall is None
    assert get_scale("smoke").agent_shortfall is None  # smoke trains 3 seeds


# ---------------------------------------------------------------------------------------------
# Sizes


def test_a_size_below_spec_invalidates_only_the_verdict_it_biases_toward() -> None:
    """Estimation noise that can only push toward the claim: REPRODUCED is no evidence, a
    REFUTED stands."""
    rec = recorder(LOW_AT_SIZE, "nightly")  # step_eval_n 32768
    row = outcome(rec, lambda r: r.check(agents(5, mean=0.1), mean_of_means))
    assert row["verdict"] == "INCONCLUSIVE" and row["reason_code"] == "size_below_spec"
    assert "estimates of 1e6 pairs: scale nightly has step_eval_n 32,768 at most" in row["reason"]
    assert row["reason_detail"]["sizes"] == [{"field": "step_eval_n", "needed": 1_000_000,
                                              "have": 32_768, "rule": "max",
                                              "what": "estimates of 1e6 pairs"}]
    assert row["reason_detail"]["decided_by"] == ["paper"]
    assert row["interval"][1] < 0.5  # the interval is still shown
    refuted = recorder(LOW_AT_SIZE, "nightly")
    with pytest.raises(pytest.fail.Exception):
        refuted.check(agents(5, mean=0.9), mean_of_means)
    assert row_of(refuted)["verdict"] == "REFUTED"
    # default measures no estimate at all (step_eval_n 0): neither verdict, whatever the values
    for mean in (0.1, 0.9):
        unmeasured = outcome(recorder(LOW_AT_SIZE),
                             lambda r, m=mean: r.check(agents(5, mean=m), mean_of_means))
        assert unmeasured["verdict"] == "INCONCLUSIVE"
        assert "scale default has step_eval_n without it" in unmeasured["reason"]
        assert unmeasured["reason_detail"]["sizes"][0]["have"] == 0
    assert blocks_all(LOW_AT_SIZE, get_scale("default")) is not None
    paper = recorder(LOW_AT_SIZE, "paper")
    paper.check(agents(5, mean=0.1), mean_of_means)
    assert row_of(paper)["verdict"] == "REPRODUCED"


@pytest.mark.parametrize("claim_id, decided_by", [
    ("grad.pairwise_rises_with_n", ["nightly", "paper"]),
    ("landscape.noisy_at_low_samples", ["paper"]),
    ("landscape.misaligned_late", ["nightly", "paper"]),
    ("landscape.ppo_high_sample_misleads", ["paper"]),
    ("landscape.surrogate_up_reward_down", ["paper"]),
])
def test_claims_measured_below_their_size_get_no_verdict(claim_id: str,
                                                         decided_by: list[str]) -> None:
    """The default scale's 16K N grid and 8K-pair reference landscape are not the paper's
    1e5-1e6 N and 100K landscape; it takes no low-sample landscape, high-sample step or reward
    estimate at all, so those claims have nothing to be decided on."""
    claim = get(claim_id)
    blocked = blocks_all(claim, get_scale("default"))
    assert blocked is not None and "measured below the specified size" in blocked[0]
    assert deciding_scales(claim) == decided_by
    assert blocks_all(claim, get_scale("paper")) is None


def test_one_sided_sizes_keep_the_other_verdict() -> None:
    default = get_scale("default")
    for claim_id, kept in (("baseline.true_beats_valuenet", "REPRODUCED"),
                           ("baseline.valuenet_marginal", "REPRODUCED")):
        claim = get(claim_id)
        assert blocks_all(claim, default) is None
        assert shortfall(claim, default, kept) is None
        other = ({"REPRODUCED", "REFUTED"} - {kept}).pop()
        assert shortfall(claim, default, other) is not None
        assert deciding_scales(claim) == ["paper"]


def test_size_blocked_rows_are_inconclusive_without_measuring(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
pytest_plugins = ["pgclaims.suite.plugin"]
from pgclaims.suite.claims import Claim, Size, register

register(Claim("guard.axis", "Toy", "Concentrates by 1e5.", "rise", ">", 0.2, "Fig 0",
               sizes=(Size("n_grid", 100000, "an N axis reaching 1e5"),)))
""")
    pytester.makepyfile(test_toy="""
import pytest


@pytest.mark.claim("guard.axis")
def test_axis(env, algo, verdict):
    raise AssertionError("never measured below its size")
""")
    try:
        result = pytester.runpytest("--scale", "smoke", "--run-id", "g", "-p",
                                    "no:cacheprovider")
    finally:
        unregister("guard.axis")
    assert {k: v for k, v in result.parseoutcomes().items() if k != "warnings"} == {
        "inconclusive": 2}
    doc = json.loads((pytester.path / "reports" / "g" / "results.json").read_text())
    rows = doc["results"]
    assert {r["params"]["algo"] for r in rows} == {"ppo", "trpo"}  # one row per parameter
    assert all(r["reason_code"] == "size_below_spec" and r["reason_detail"]["sizes"][0][
        "have"] == 8192 for r in rows)
    assert all(r["reading"] and "Not decided at this scale" in r["reading"] for r in rows)


# ---------------------------------------------------------------------------------------------
# Undefined statistics and ratios


def test_a_constant_grid_has_no_spearman_correlation() -> None:
    flat, ramp = np.zeros((3, 3)), np.arange(9.0).reshape(3, 3)
    assert np.isnan(spearman(flat, ramp)) and np.isnan(spearman(ramp, flat))
    assert spearman(ramp, ramp) == pytest.approx(1.0)


def test_an_undefined_agent_makes_the_row_inconclusive_never_zero() -> None:
    """All agents undefined used to read as 0: [0, 0], both REFUTED ("< 0") and REPRODUCED."""
    units = [np.array([0.3]), np.array([np.nan]), np.array([0.1])]
    rec = recorder(get("landscape.aligned_early"))
    with pytest.raises(Inconclusive):
        require_defined(rec, units, (0, 1, 2), "Spearman correlation of a constant grid")
    row = row_of(rec)
    assert row["verdict"] == "INCONCLUSIVE" and row["reason_code"] == "statistic_undefined"
    assert row["reason_detail"]["seeds"] == [1] and row["n_agents"] == 3


def test_a_ratio_with_an_unresolved_denominator_is_inconclusive() -> None:
    """(c_v - c_z) / (c_t - c_z) at a denominator of about -0.005 used to be REPRODUCED with a
    ratio of about -2."""
    rng = np.random.default_rng(3)
    units = [{"valuenet": rng.normal(0.02, 0.002, 10), "true": rng.normal(0.005, 0.01, 10),
              "zero": rng.normal(0.01, 0.01, 10)} for _ in range(5)]

    def ratio(us: list[dict[str, np.ndarray]]) -> float:
        cv, ct, cz = (np.mean([u[k].mean() for u in us]) for k in ("valuenet", "true", "zero"))
        return float((cv - cz) / (ct - cz))

    def denominator(us: list[dict[str, np.ndarray]]) -> float:
        return float(np.mean([u["true"].mean() - u["zero"].mean() for u in us]))

    claim = get("baseline.valuenet_marginal")
    row = outcome(recorder(claim, "paper"), lambda r: r.check_ratio(
        units, ratio, denominator, paired=True, what="c_true - c_zero"))
    assert row["verdict"] == "INCONCLUSIVE" and row["reason_code"] == "denominator_not_resolved"
    lo, hi = row["reason_detail"]["interval"]
    assert lo <= 0 and row["reason_detail"]["what"] == "c_true - c_zero"
    assert "not above 0" in reading(row)
    for u in units:
        u["true"] = u["true"] + 0.2
    resolved = recorder(claim, "paper")
    resolved.check_ratio(units, ratio, denominator, paired=True, what="c_true - c_zero")
    assert row_of(resolved)["verdict"] == "REPRODUCED"


# ---------------------------------------------------------------------------------------------
# regime.more_samples_lower_lr: a geometric mean of ratios, ties and censoring


def test_best_lr_is_refined_between_grid_points() -> None:
    grid = np.log([0.25, 0.5, 1.0, 2.0, 4.0])
    x = np.log(0.8)
    finals = -((grid - x) ** 2)
    best, censored = best_log_lr(grid, finals)
    assert censored == 0 and best == pytest.approx(x)  # a parabola's vertex, exactly
    assert best_log_lr(grid, grid) == (pytest.approx(grid[-1]), 1)
    assert best_log_lr(grid, -grid) == (pytest.approx(grid[0]), -1)


def test_identical_agents_give_no_verdict_instead_of_a_zero_width_interval() -> None:
    claim = get("regime.more_samples_lower_lr")
    units = [np.array([np.log(0.5)]) for _ in range(5)]
    row = outcome(recorder(claim, "paper"), lambda r: r.check_geometric(
        units, lambda us: float(np.mean([u.mean() for u in us]))))
    assert row["verdict"] == "INCONCLUSIVE" and row["reason_code"] == "no_spread"


def test_the_ratio_is_a_geometric_mean_with_its_interval_back_transformed() -> None:
    """Per-agent ratios 1/2, 1, 2, 1/2, 2: the arithmetic mean of ratios is 1.2, the claim's
    geometric mean 1 (log ratios symmetric about 0)."""
    claim = get("regime.more_samples_lower_lr")
    logs = np.log([0.5, 1.0, 2.0, 0.5, 2.0]) + np.array([0.01, -0.02, 0.0, 0.02, -0.01])
    units = [np.array([v]) for v in logs]
    row = outcome(recorder(claim, "paper"), lambda r: r.check_geometric(
        units, lambda us: float(np.mean([u.mean() for u in us]))))
    assert row["statistic"] == pytest.approx(float(np.exp(logs.mean())))
    lo, hi = row["interval"]
    assert lo < 1 < hi and row["verdict"] == "INCONCLUSIVE"
    low = [np.array([v - 1.5]) for v in logs]
    censored = outcome(recorder(claim, "paper"), lambda r: r.check_geometric(
        low, lambda us: float(np.mean([u.mean() for u in us])),
        unsupported={"REPRODUCED": ("only a lower bound", "censored")}))
    assert censored["verdict"] == "INCONCLUSIVE" and censored["reason_code"] == "censored"
    decided = recorder(claim, "paper")
    decided.check_geometric(low, lambda us: float(np.mean([u.mean() for u in us])))
    assert row_of(decided)["verdict"] == "REPRODUCED" and row_of(decided)["interval"][1] < 1


# ---------------------------------------------------------------------------------------------
# Machine-readable reasons and readings


def test_every_reason_code_is_documented() -> None:
    from pathlib import Path

    schema = (Path(__file__).resolve().parent.parent / "docs" / "results-schema.md").read_text()
    for code in REASON_CODES:
        assert f"`{code}`" in schema, code


def test_readings_describe_ratios_as_ratios() -> None:
    base = {"verdict": "REFUTED", "statistic": 1.7, "interval": [1.2, 2.4], "threshold": 1.0,
            "params": {"protocol": "authors", "env": "Hopper-v5", "algo": "ppo"}}
    for claim_id in ("regime.more_samples_lower_lr", "baseline.needed_for_reward"):
        text = reading({**base, "claim_id": claim_id})
        assert "ratio" in text and "minus" not in text


def test_a_straddling_row_has_a_code_and_no_reading() -> None:
    row = outcome(recorder(), lambda r: r.check(agents(5, mean=0.5, spread=0.2), mean_of_means))
    assert row["reason_code"] == "interval_straddles" and reading(row) is None


# ---------------------------------------------------------------------------------------------
# grad.needs_many_samples under a raw-cosine protocol


class CappedStudy:
    """Gradient studies whose cosine curves rise but never pass 0.7: under the raw cosine a
    true gradient of signal fraction 0.4 caps them at sqrt(0.4) ~ 0.63."""

    def __init__(self, protocol: str, fraction: float) -> None:
        from types import SimpleNamespace

        from claims.conftest import Study

        self.inner = Study(get_scale("default"), SimpleNamespace(protocol=protocol))
        self.scale, self.late = self.inner.scale, self.inner.late
        self.protocol = self.inner.protocol
        self.fraction = fraction
        self.rng = np.random.default_rng(0)

    def cfg_for(self, env: str) -> Any:
        return self.inner.cfg_for(env)

    def gradients(self, env: str, algo: str, seed: int, it: int) -> Any:
        from pgclaims.measure import GradientStudy

        n = np.array([128, 512, 2048, 8192, 16384])
        curve = np.linspace(0.05, 0.6, len(n))[:, None] + self.rng.normal(0, 0.01, (5, 10))
        return GradientStudy(n=n, pairwise={}, true_cos=curve, trajectories=np.ones(1),
                             episode_returns=np.ones(1), true_cos_debiased=curve,
                             meta={"true_grad_signal_fraction": [self.fraction] * 10,
                                   "true_grad_sq_var": [1.0] * 10})

    def true_cos(self, g: Any, n: int | None = None) -> np.ndarray:
        return self.inner.true_cos(g, n)


@pytest.mark.parametrize("protocol, fraction, expected", [
    ("authors", 0.4, "INCONCLUSIVE"), ("authors", 0.95, "REPRODUCED"),
    ("corrected", 0.4, "REPRODUCED")])
def test_a_raw_cosine_capped_below_the_level_is_no_evidence(protocol: str, fraction: float,
                                                            expected: str) -> None:
    """Right-censored at the largest N (> 16384 >= 5 x 2048) is REPRODUCED, unless the raw
    cosine could never have reached 0.9."""
    from claims.test_gradient import test_needs_many_samples

    rec = recorder(get("grad.needs_many_samples"))
    row = outcome(rec, lambda r: test_needs_many_samples(CappedStudy(protocol, fraction), r,
                                                         "Hopper-v5", "ppo"))
    assert row["verdict"] == expected, row["reason"]
    assert row["extra"]["raw_cosine_ceiling"] == pytest.approx(np.sqrt(fraction))
    if expected == "INCONCLUSIVE":
        assert row["reason_code"] == "size_below_spec"
        assert "raw cosine is capped at 0.632" in row["reason"]

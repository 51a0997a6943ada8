"""Calibration of the verdict engine by simulation (:mod:`pgclaims.stats.calibration`): the
vectorized simulation computes exactly the engine's intervals, they hold 95% coverage at 5
agents on the shapes the suite meets, and a run with every effect at its threshold makes at
most 0.1 false decisive verdicts under the default error control (7 under the per-row rule).
The full tables (more trials, 3 and 10 agents, far tails, fitted shapes) are
``benchmarks/calibration.py``'s, in docs/statistics.md."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pgclaims.stats import ErrorControl, hierarchical_bootstrap
from pgclaims.stats.calibration import (
    as_unbounded,
    coverage,
    false_decisive,
    fitted,
    intervals,
    pooled_skewness,
    synthetic_shapes,
)

SEED = 20240024
SHAPES = {s.name: s for s in synthetic_shapes()}
REFERENCES = sorted((Path(__file__).resolve().parents[1] / "docs" / "reference").glob(
    "*/results.json"))
"""The committed reference runs: their per-agent values are the shapes our statistics take."""


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("method", ["auto", "jackknife-t"])
def test_the_simulation_computes_the_engines_intervals(name: str, method: str) -> None:
    shape = SHAPES[name]
    rng = np.random.default_rng(SEED)
    x = shape.draw(rng, (20, 5))
    family = ErrorControl("family", 143).confidence_level
    for level in (0.95, family):
        lo, hi = intervals(x, shape.support, method, level)
        for k in range(len(x)):
            units = [np.array([v]) for v in x[k]]
            iv, _ = hierarchical_bootstrap(units, lambda us: float(np.mean([u[0] for u in us])),
                                           rng=0, method=method, support=shape.support)
            iv = iv.at(level)  # the suite's decision interval
            assert (iv.low, iv.high) == pytest.approx((lo[k], hi[k]), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", ["normal", "exponential", "lognormal(0, 0.5)",
                                  "cosine-like 2 Beta(1.5, 0.5) - 1"])
def test_coverage_at_5_agents_is_095_within_002(name: str) -> None:
    """20000 trials: binomial SE 0.0015, so the +-0.02 band is +-13 SE about 0.95 (measured
    0.937-0.956). The raw jackknife-t holds it only on the normal shape (0.88-0.92 on the
    others), so this fails on the old engine."""
    shape = SHAPES[name]
    c = coverage(shape, 5, "auto", trials=20_000, rng=np.random.default_rng(SEED))
    assert 0.93 <= c.coverage <= 0.97, c
    raw = coverage(shape, 5, "jackknife-t", trials=20_000, rng=np.random.default_rng(SEED))
    assert name == "normal" or raw.coverage < 0.93


def test_lognormal_1_is_the_known_gap() -> None:
    """Skewness 6.2 at the agent level: the log scale lifts coverage from 0.81 to ~0.90 and no
    method here reaches 0.93 (docs/statistics.md says so)."""
    shape = SHAPES["lognormal(0, 1)"]
    c = coverage(shape, 5, "auto", trials=20_000, rng=np.random.default_rng(SEED))
    raw = coverage(shape, 5, "jackknife-t", trials=20_000, rng=np.random.default_rng(SEED))
    assert raw.coverage < 0.85 < c.coverage < 0.93


def test_a_143_row_run_at_the_thresholds_makes_at_most_01_false_verdicts() -> None:
    """Every effect exactly at its threshold, normal agents (5 x 10 repeats): the per-row rule
    makes 2 x 143 x 0.025 = 7.15 false decisive verdicts per run on average; the family rule
    at most 0.05. 2000 runs: the mean's Poisson SE is ~0.005, so the 0.1 bound is 10 SE
    above the expected 0.05."""
    shape = SHAPES["normal"]
    rows, rng = 143, np.random.default_rng(SEED)
    before = false_decisive([shape] * rows, [shape.mean] * rows, 5, ErrorControl("row", rows),
                            "jackknife-t", runs=200, rng=rng)
    after = false_decisive([shape] * rows, [shape.mean] * rows, 5,
                           ErrorControl("family", rows), "auto", runs=2000, rng=rng)
    assert 6.0 < before.mean() < 8.3
    assert after.mean() <= 0.1
    assert np.mean(after > 0) <= 0.1  # runs with any false verdict


@pytest.mark.slow
@pytest.mark.parametrize("name", ["exponential", "cosine-like 2 Beta(1.5, 0.5) - 1"])
def test_skewed_runs_stay_under_01_false_verdicts_on_their_scale(name: str) -> None:
    """The same on skewed and bounded agents: on the support's scale ~0.06 and ~0.045; on the
    raw scale (what an undeclared support gives) 0.9-1.5 per run."""
    shape, rows = SHAPES[name], 143
    control = ErrorControl("family", rows)
    after = false_decisive([shape] * rows, [shape.mean] * rows, 5, control, "auto", runs=2000,
                           rng=np.random.default_rng(SEED))
    raw = false_decisive([as_unbounded(shape)] * rows, [shape.mean] * rows, 5, control, "auto",
                         runs=500, rng=np.random.default_rng(SEED))
    assert after.mean() <= 0.1 < 0.5 < raw.mean()


def test_fitted_shapes_keep_their_moments_and_support() -> None:
    rng = np.random.default_rng(SEED)
    values = [0.34, 0.22, 0.29, 0.41, 0.30]
    for support in ((0.0, math.inf), (0.0, 1.0), (-math.inf, math.inf)):
        shape = fitted("row", values, support, skewness=1.0)
        x = shape.draw(rng, (200_000, 1))
        assert x.mean() == pytest.approx(np.mean(values), rel=0.01)
        assert x.std() == pytest.approx(np.std(values, ddof=1), rel=0.02)
        assert support[0] <= x.min() and x.max() <= support[1]
    moved = fitted("row", values, (0.0, 1.0), mean=0.25)
    assert moved.draw(rng, (200_000, 1)).mean() == pytest.approx(0.25, rel=0.01)
    assert pooled_skewness([[1, 2, 3, 4, 10], [1, 2, 3, 4, 10]]) > 1.0
    assert pooled_skewness([[1, 2, 3], [3, 2, 1]]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.skipif(not REFERENCES, reason="no reference run committed")
def test_coverage_on_shapes_fitted_to_our_agents(tmp_path: Path) -> None:
    """Every row of the committed reference runs whose statistic is a mean of agent values, as
    a shape fitted to its own agents: coverage at 5 agents within 0.95 +- 0.02 (4000 trials
    each, SE 0.0034). The values are read as ``benchmarks/agent_values.py`` reads them."""
    from benchmarks.agent_values import rows_of
    from benchmarks.calibration import fitted_shapes

    runs = [json.loads(p.read_text()) for p in REFERENCES]
    assert all(run["scale"]["name"] == "default" for run in runs)
    values = tmp_path / "agent_values.json"
    values.write_text(json.dumps({"rows": [row for run in runs for row in rows_of(run)]}))
    found = fitted_shapes([values], at_threshold=False)
    assert len(found) >= 80 * len(runs)  # 90 of each reference's 153 rows (2026-12-06)
    rng = np.random.default_rng(SEED)
    for shape, _, _ in found:
        c = coverage(shape, 5, "auto", trials=4000, rng=rng)
        assert 0.93 <= c.coverage <= 0.97, (shape.name, c)

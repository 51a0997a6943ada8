"""Power figures of INCONCLUSIVE verdicts: the implied spread, the agents needed (checked by
simulation), the suite writing them into the row and the report showing them."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest

from pgclaims.report import load_results
from pgclaims.report.page import build_page
from pgclaims.report.power import power_section
from pgclaims.stats import Interval, Outcome, agents_to_decide, decide, hierarchical_bootstrap

DATA = Path(__file__).parent / "data"


def mean_interval(values: np.ndarray, seed: int = 0) -> Interval:
    units = [np.array([v]) for v in values]
    iv, _ = hierarchical_bootstrap(units, lambda us: float(np.mean([u[0] for u in us])),
                                   n_resamples=200, rng=seed, method="jackknife-t")
    return iv


def test_spread_of_a_jackknife_t_mean_is_the_sample_sd() -> None:
    values = np.array([0.1, 0.4, 0.25, 0.7, 0.3])
    power = agents_to_decide(mean_interval(values), threshold=0.5)
    assert power is not None
    assert power.spread == pytest.approx(values.std(ddof=1), rel=1e-9)
    assert power.distance == pytest.approx(abs(values.mean() - 0.5))
    assert power.n_agents == 5


def test_more_distance_needs_fewer_agents_and_none_on_the_threshold() -> None:
    iv = Interval(low=-1.0, high=1.0, estimate=0.0, confidence_level=0.95,
                  method="jackknife-t", n_agents=5, n_repeats=1)
    needs = [agents_to_decide(iv, thr).agents_needed for thr in (0.2, 0.4, 0.8)]
    assert needs[0] > needs[1] > needs[2] >= 2
    assert agents_to_decide(iv, 0.0).agents_needed is None
    one = Interval(low=0.0, high=1.0, estimate=0.5, confidence_level=0.95,
                   method="jackknife-t", n_agents=1, n_repeats=1)
    assert agents_to_decide(one, 0.2) is None
    with pytest.raises(ValueError, match="power"):
        agents_to_decide(iv, 0.2, power=1.5)


def test_the_agents_needed_decide_with_about_the_stated_probability() -> None:
    """Draw m = agents_needed agents from the population the figure assumes; about 80% of
    the resulting intervals must lie wholly above the threshold."""
    spread, distance, threshold = 1.0, 0.9, 0.0
    iv = Interval(low=distance - 2.776 * spread / math.sqrt(5),
                  high=distance + 2.776 * spread / math.sqrt(5), estimate=distance,
                  confidence_level=0.95, method="jackknife-t", n_agents=5, n_repeats=1)
    m = agents_to_decide(iv, threshold).agents_needed
    assert m is not None and 8 <= m <= 16  # (1.96 + 0.84)^2 / 0.9^2 ~ 9.7, plus the t penalty
    rng = np.random.default_rng(7)
    decided = 0
    trials = 400
    for k in range(trials):
        sample = rng.normal(distance, spread, size=m)
        verdict = decide(mean_interval(sample, seed=k), threshold, ">")
        decided += verdict.outcome is Outcome.REPRODUCED
    assert 0.72 <= decided / trials <= 0.88
    fewer = agents_to_decide(iv, threshold, power=0.5).agents_needed
    assert fewer is not None and fewer < m


def test_the_report_lists_power_rows_fewest_agents_first() -> None:
    results = copy.deepcopy(load_results(DATA))
    rows = [r for r in results["results"] if r["verdict"] == "INCONCLUSIVE"][:2]
    assert len(rows) == 2
    rows[0]["power"] = {"width": 0.4, "distance": 0.05, "spread": 0.3, "n_agents": 3,
                        "agents_needed": 300, "power": 0.8}
    rows[1]["power"] = {"width": 0.4, "distance": 0.15, "spread": 0.3, "n_agents": 3,
                        "agents_needed": 33, "power": 0.8}
    section = power_section(results["results"])
    assert section.index(">33<") < section.index(">300<")
    page = build_page(results)
    assert 'id="power-table"' in page and "To decide:" in page
    assert "about 33 agents (now 3)" in page


def test_a_results_file_without_power_says_so() -> None:
    results = load_results(DATA)
    assert "predates power figures" in power_section(results["results"])

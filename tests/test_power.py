"""Power figures of INCONCLUSIVE verdicts: the implied spread, the agents needed (checked by
simulation), the suite writing them into the row and the report showing them."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from pgclaims.report import load_results
from pgclaims.report.page import build_page
from pgclaims.report.power import power_section
from pgclaims.stats import Interval, Outcome, agents_to_decide, decide, hierarchical_bootstrap
from pgclaims.stats.power import assurance

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


def test_assurance_is_the_predictive_probability_it_claims() -> None:
    """Monte Carlo of the same model: spread from its scaled inverse chi-square, effect normal
    about the estimate, then a new run of m agents and its t test at alpha_side per side."""
    distance, se, df, n, m, alpha_side = 0.3, 0.15, 4.0, 5, 20, 0.025 / 141
    rng = np.random.default_rng(11)
    draws = 400_000
    sigma = se * math.sqrt(n) * np.sqrt(df / rng.chisquare(df, draws))
    effect = rng.normal(distance, sigma / math.sqrt(n))
    mean = rng.normal(effect, sigma / math.sqrt(m))
    sd = sigma * np.sqrt(rng.chisquare(m - 1, draws) / (m - 1))
    crit = sps.t.ppf(1 - alpha_side, m - 1)
    simulated = np.mean(np.abs(mean / (sd / math.sqrt(m))) > crit)  # SE ~ 0.0008
    assert assurance(distance, se, df, n, m, alpha_side) == pytest.approx(simulated, abs=0.01)


def test_the_figure_comes_with_its_uncertainty_at_the_decision_level() -> None:
    values = np.array([0.45, 0.62, 0.38, 0.71, 0.52])  # mean 0.536, threshold 0.3
    iv = mean_interval(values)
    row = agents_to_decide(iv, threshold=0.3)
    family = agents_to_decide(iv, threshold=0.3, alpha_side=0.025 / 141)
    assert row is not None and family is not None
    assert row.alpha_side == pytest.approx(0.025) and family.alpha_side < 1e-3
    assert family.agents_needed > row.agents_needed  # a stricter level needs more agents
    # The point figure assumes the estimate and the spread exact; with their uncertainty the
    # same count decides less often, and a predictive 80% needs more agents.
    for p in (row, family):
        assert p.assurance is not None and p.assurance < 0.8
        assert p.agents_needed_predictive is not None
        assert p.agents_needed_predictive > p.agents_needed
        assert "with their uncertainty" in p.sentence()
    quick = agents_to_decide(iv, threshold=0.3, predictive=False)
    assert quick.assurance is None and quick.agents_needed == row.agents_needed


def test_the_report_shows_the_predictive_figures() -> None:
    results = copy.deepcopy(load_results(DATA))
    row = next(r for r in results["results"] if r["verdict"] == "INCONCLUSIVE")
    row["power"] = {"width": 0.4, "distance": 0.15, "spread": 0.3, "n_agents": 5,
                    "agents_needed": 33, "power": 0.8, "alpha_side": 0.000177,
                    "assurance": 0.41, "agents_needed_predictive": 140}
    page = build_page(results)
    section = page.split('id="power-table"', 1)[1].split("</table>", 1)[0]
    assert "predictive probability" in section and ">0.41<" in section and ">140<" in section
    assert "predictive probability 0.41, and 0.8 needs about 140" in page

"""Variance components of agent values and the repeats that pay (pgclaims.stats.components)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pgclaims.stats import components as comp


def _mean_of_means(units):
    return float(np.mean([np.mean(u) for u in units]))


def _simulate(rng, agents, repeats, sb, sw):
    centres = rng.normal(0.0, sb, size=agents)
    return [c + rng.normal(0.0, sw, size=repeats) for c in centres]


def test_an_agents_value_and_noise_are_its_mean_and_squared_standard_error():
    rng = np.random.default_rng(0)
    unit = rng.normal(size=10)
    (v,) = comp.agent_values([unit], _mean_of_means)
    assert v.value == pytest.approx(unit.mean())
    assert v.within_var == pytest.approx(unit.var(ddof=1) / 10)
    assert v.repeats == 10


@pytest.mark.parametrize("sb,sw", [(1.0, 1.0), (0.3, 2.0), (2.0, 0.5)])
def test_components_recover_the_simulated_variances(sb, sw):
    rng = np.random.default_rng(1)
    units = _simulate(rng, 2000, 10, sb, sw)
    c = comp.components(comp.agent_values(units, _mean_of_means))
    assert c.n_agents == 2000 and c.repeats == 10
    assert c.per_repeat_var == pytest.approx(sw**2, rel=0.05)
    assert c.between_var == pytest.approx(sb**2, rel=0.15, abs=0.01)
    assert c.within_share == pytest.approx((sw**2 / 10) / (sb**2 + sw**2 / 10), rel=0.15)


def test_dict_units_take_each_quantitys_noise():
    """late - early, each with its own repeats: the within variance adds over quantities."""
    rng = np.random.default_rng(2)
    units = [{"early": rng.normal(0, 1, 8), "late": rng.normal(1, 2, 16)} for _ in range(1500)]
    c = comp.components(comp.agent_values(
        units, lambda us: float(np.mean([u["late"].mean() - u["early"].mean() for u in us]))))
    assert c.within_var == pytest.approx(1 / 8 + 4 / 16, rel=0.05)
    assert c.between_var < 0.02  # the agents do not differ
    assert c.repeats == 8  # the smaller quantity's repeats


def test_one_repeat_has_no_within_variance_and_is_left_out():
    vals = comp.agent_values([np.array([1.0]), np.array([2.0, 3.0]), np.array([5.0, 6.0])],
                             _mean_of_means)
    assert math.isnan(vals[0].within_var)
    c = comp.components(vals)
    assert c.n_agents == 2 and c.mean == pytest.approx((2.5 + 5.5) / 2)
    with pytest.raises(ValueError, match="need at least 2"):
        comp.components(vals[:2])


def test_the_variance_of_a_design_is_what_simulation_gives():
    rng = np.random.default_rng(3)
    c = comp.components(comp.agent_values(_simulate(rng, 3000, 10, 1.0, 2.0), _mean_of_means))
    sims = [_mean_of_means(_simulate(rng, 5, 4, 1.0, 2.0)) for _ in range(4000)]
    assert c.variance(5, 4) == pytest.approx(np.var(sims), rel=0.1)
    assert comp.width_ratio(c, 5, 40, base_agents=5, base_repeats=10) == pytest.approx(
        math.sqrt((1 + 4 / 40) / (1 + 4 / 10)), rel=0.1)


def test_optimal_repeats_minimise_the_variance_for_a_budget():
    c = comp.Components(n_agents=10, repeats=10, mean=0.0, total_var=1.4, within_var=0.4,
                        between_var=1.0)  # s_w^2 = 4, s_b^2 = 1
    F, cost, budget = 9.0, 1.0, 500.0
    best = comp.optimal_repeats(c, F, cost)
    assert best == pytest.approx(math.sqrt(4 / 1 * 9 / 1))  # 6

    def var_at(r):
        return c.variance(1, r) / (budget / (F + r * cost))  # agents the budget buys
    grid = np.linspace(0.5, 40, 400)
    assert grid[np.argmin([var_at(r) for r in grid])] == pytest.approx(best, abs=0.1)


def test_optimal_repeats_edges():
    flat = comp.Components(2, 10, 0.0, 0.5, 0.5, 0.0)
    assert comp.optimal_repeats(flat, 1.0, 1.0) == math.inf
    exact = comp.Components(2, 10, 0.0, 1.0, 0.0, 1.0)
    assert comp.optimal_repeats(exact, 1.0, 1.0) == 0.0
    with pytest.raises(ValueError, match="cost_per_repeat"):
        comp.optimal_repeats(exact, 1.0, 0.0)
    assert comp.repeats_for_budget(exact, 10, 200.0, 5.0, 3.0) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="does not cover"):
        comp.repeats_for_budget(exact, 10, 40.0, 5.0, 3.0)

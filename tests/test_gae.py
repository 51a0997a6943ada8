"""GAE and returns against explicit sums over random episode layouts.

The reference below is deliberately the textbook double sum, not the backward recursion of
:mod:`pgclaims.agents.gae`: A_t = sum_k (gamma lam)^k delta_{t+k} up to the end of t's
trajectory, with
delta_t = r_t + gamma V(s_{t+1}) - V(s_t), V(s_{t+1}) = 0 after a terminal step and the value of
the stored final observation after a truncated one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgclaims.agents.gae import discounted_returns, gae, next_values


@dataclass
class Layout:
    """Trajectories laid end to end, as in a :class:`pgclaims.agents.rollout.Batch`."""

    rewards: np.ndarray
    values: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_values: np.ndarray  # one per truncated row, in row order
    spans: list[tuple[int, int]]  # [start, stop) of each trajectory

    @property
    def ends(self) -> np.ndarray:
        return self.terminated | self.truncated

    def next_vals(self) -> np.ndarray:
        return next_values(self.values, self.final_values, self.terminated, self.truncated)

    def bootstrap(self, stop: int) -> float:
        """V after the last step of the trajectory ending at row ``stop - 1``."""
        if self.terminated[stop - 1]:
            return 0.0
        return float(self.final_values[int(self.truncated[:stop].sum()) - 1])


finite = st.floats(-10.0, 10.0, allow_nan=False)


@st.composite
def layouts(draw: st.DrawFn, max_trajectories: int = 6, max_len: int = 12) -> Layout:
    lengths = draw(st.lists(st.integers(1, max_len), min_size=1, max_size=max_trajectories))
    kinds = draw(st.lists(st.booleans(), min_size=len(lengths), max_size=len(lengths)))
    n = sum(lengths)
    rewards = np.asarray(draw(st.lists(finite, min_size=n, max_size=n)))
    values = 10 * np.asarray(draw(st.lists(finite, min_size=n, max_size=n)))
    terminated = np.zeros(n, bool)
    truncated = np.zeros(n, bool)
    spans = []
    start = 0
    for length, is_terminal in zip(lengths, kinds, strict=True):
        stop = start + length
        (terminated if is_terminal else truncated)[stop - 1] = True
        spans.append((start, stop))
        start = stop
    k = int(truncated.sum())
    final_values = 10 * np.asarray(draw(st.lists(finite, min_size=k, max_size=k)), float)
    return Layout(rewards, values, terminated, truncated, final_values, spans)


def reference_gae(lay: Layout, gamma: float, lam: float) -> np.ndarray:
    out = np.empty(len(lay.rewards))
    for start, stop in lay.spans:
        nxt = np.append(lay.values[start + 1 : stop], lay.bootstrap(stop))
        delta = lay.rewards[start:stop] + gamma * nxt - lay.values[start:stop]
        for t in range(start, stop):
            k = np.arange(stop - t)
            out[t] = np.sum((gamma * lam) ** k * delta[t - start :])
    return out


def reference_returns(lay: Layout, gamma: float) -> np.ndarray:
    """sum_k gamma^k r_{t+k} + gamma^(stop - t) V_bootstrap, within t's trajectory."""
    out = np.empty(len(lay.rewards))
    for start, stop in lay.spans:
        for t in range(start, stop):
            k = np.arange(stop - t)
            out[t] = np.sum(gamma**k * lay.rewards[t:stop]) + gamma ** (stop - t) * lay.bootstrap(
                stop)
    return out


def close(a: np.ndarray, b: np.ndarray) -> bool:
    return np.allclose(a, b, rtol=1e-9, atol=1e-9)


gammas = st.floats(0.0, 0.999)
lams = st.floats(0.0, 1.0)


@given(layouts())
def test_next_values_follow_the_episode_layout(lay: Layout) -> None:
    nxt = lay.next_vals()
    for start, stop in lay.spans:
        assert np.array_equal(nxt[start : stop - 1], lay.values[start + 1 : stop])
        assert nxt[stop - 1] == lay.bootstrap(stop)


@given(layouts(), gammas, lams)
def test_gae_matches_the_explicit_sum(lay: Layout, gamma: float, lam: float) -> None:
    adv = gae(lay.rewards, lay.values, lay.next_vals(), lay.ends, gamma, lam)
    assert close(adv, reference_gae(lay, gamma, lam))


@given(layouts(), gammas)
def test_lambda_one_is_discounted_return_minus_value(lay: Layout, gamma: float) -> None:
    nxt = lay.next_vals()
    adv = gae(lay.rewards, lay.values, nxt, lay.ends, gamma, 1.0)
    returns = reference_returns(lay, gamma)
    assert close(adv, returns - lay.values)
    assert close(discounted_returns(lay.rewards, nxt, lay.ends, gamma), returns)


@given(layouts(), gammas)
def test_lambda_zero_is_the_td_residual(lay: Layout, gamma: float) -> None:
    nxt = lay.next_vals()
    adv = gae(lay.rewards, lay.values, nxt, lay.ends, gamma, 0.0)
    assert close(adv, lay.rewards + gamma * nxt - lay.values)


@given(layouts(), gammas, lams)
def test_trajectory_boundaries_cut_the_sums(lay: Layout, gamma: float, lam: float) -> None:
    """The advantages of the whole batch are those of each trajectory computed alone."""
    nxt = lay.next_vals()
    whole = gae(lay.rewards, lay.values, nxt, lay.ends, gamma, lam)
    for start, stop in lay.spans:
        alone = gae(lay.rewards[start:stop], lay.values[start:stop], nxt[start:stop],
                    lay.ends[start:stop], gamma, lam)
        assert close(whole[start:stop], alone)


@given(layouts(), gammas, lams, st.data())
def test_a_trajectory_ignores_its_neighbours(lay: Layout, gamma: float, lam: float,
                                             data: st.DataObject) -> None:
    """Changing every reward and value outside one trajectory leaves its advantages alone."""
    i = data.draw(st.integers(0, len(lay.spans) - 1))
    start, stop = lay.spans[i]
    before = gae(lay.rewards, lay.values, lay.next_vals(), lay.ends, gamma, lam)
    outside = np.ones(len(lay.rewards), bool)
    outside[start:stop] = False
    lay.rewards[outside] += 100.0
    lay.values[outside] -= 100.0
    after = gae(lay.rewards, lay.values, lay.next_vals(), lay.ends, gamma, lam)
    assert np.array_equal(before[start:stop], after[start:stop])


@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0])
def test_truncation_bootstraps_and_termination_zeroes_the_future(lam: float) -> None:
    """One 2-step trajectory, r = 1, V = 0, V(final obs) = 10, gamma = 0.5."""
    rewards, values = np.ones(2), np.zeros(2)
    ends = np.array([False, True])
    not_end = np.zeros(2, bool)

    cut = next_values(values, np.array([10.0]), terminated=not_end, truncated=ends)
    adv = gae(rewards, values, cut, ends, 0.5, lam)
    assert adv[1] == 1 + 0.5 * 10  # the time limit is not the end of the MDP
    assert adv[0] == pytest.approx(1 + 0.5 * lam * adv[1])

    term = next_values(values, np.array([]), terminated=ends, truncated=not_end)
    adv = gae(rewards, values, term, ends, 0.5, lam)
    assert adv[1] == 1.0
    assert adv[0] == pytest.approx(1 + 0.5 * lam * 1.0)


@given(layouts(), gammas, lams)
def test_truncation_with_zero_final_value_is_termination(lay: Layout, gamma: float,
                                                          lam: float) -> None:
    lay.final_values[:] = 0.0
    as_terminal = next_values(lay.values, np.array([]), lay.ends, np.zeros_like(lay.ends))
    assert np.array_equal(lay.next_vals(), as_terminal)
    assert np.array_equal(gae(lay.rewards, lay.values, lay.next_vals(), lay.ends, gamma, lam),
                          gae(lay.rewards, lay.values, as_terminal, lay.ends, gamma, lam))


def test_next_values_rejects_a_final_value_count_mismatch() -> None:
    truncated = np.array([False, True, False, True])
    with pytest.raises(ValueError, match="2 truncated steps but 1 final values"):
        next_values(np.zeros(4), np.zeros(1), np.zeros(4, bool), truncated)

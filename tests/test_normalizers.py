"""Table 1 preprocessing against numpy: state normalization and clipping, reward scaling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pgclaims.agents.envs import OBS_CLIP, REWARD_CLIP, ObsNormalizer, RewardScaler, RunningMeanStd

EPS = 1e-8
"""The normalizers' guard against a zero std."""

data_2d = hnp.arrays(
    np.float64,
    st.tuples(st.integers(2, 60), st.integers(1, 5)),
    elements=st.floats(-1e3, 1e3, allow_nan=False),
)
rewards = st.floats(-50.0, 50.0, allow_nan=False)
episodes = st.lists(st.lists(rewards, min_size=1, max_size=15), min_size=1, max_size=5)


def assert_z_close(out: np.ndarray, x: np.ndarray, probe: np.ndarray) -> None:
    """``out`` is the clipped z-score of ``probe`` under numpy's moments of ``x``, up to the
    round-off in the mean (~1e-13 of the data scale), which a near-zero std magnifies."""
    std = x.std(0, ddof=1)
    expected = np.clip((probe - x.mean(0)) / (std + EPS), -OBS_CLIP, OBS_CLIP)
    tol = 1e-6 + 1e-6 * np.abs(expected) + 1e-12 * (1 + np.abs(x).max()) / (std + EPS)
    assert np.all(np.abs(out - expected) <= tol), (out, expected)


def pushed(x: np.ndarray) -> RunningMeanStd:
    rms = RunningMeanStd.zeros(x.shape[1:])
    for row in x:
        rms.push(row)
    return rms


def assert_moments(rms: RunningMeanStd, x: np.ndarray) -> None:
    scale = 1.0 + np.abs(x).max()
    assert rms.count == len(x)
    np.testing.assert_allclose(rms.mean, x.mean(0), rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(rms.var, x.var(0, ddof=1), rtol=1e-7, atol=1e-10 * scale**2)
    np.testing.assert_allclose(rms.std, x.std(0, ddof=1), rtol=1e-7, atol=1e-5 * scale)


@given(data_2d)
def test_running_moments_match_numpy(x: np.ndarray) -> None:
    assert_moments(pushed(x), x)


def test_running_moments_of_one_and_no_sample() -> None:
    """One sample: var = mean**2 (the authors' RunningStat, so the first reward scales to 1)."""
    rms = RunningMeanStd.zeros((2,))
    assert rms.count == 0 and np.array_equal(rms.var, [0.0, 0.0])
    rms.push(np.array([3.0, -2.0]))
    assert np.array_equal(rms.mean, [3.0, -2.0])
    assert np.array_equal(rms.var, [9.0, 4.0])


@given(data_2d)
def test_obs_normalizer_z_scores_with_the_pushed_data(x: np.ndarray) -> None:
    norm = ObsNormalizer(RunningMeanStd.zeros(x.shape[1:]))
    for row in x:
        out = norm(row, update=True)
        assert np.all(np.abs(out) <= OBS_CLIP)
    assert_z_close(out, x, x[-1])
    assert_moments(norm.stats, x)


@given(data_2d, hnp.arrays(np.float64, 5, elements=st.floats(-1e6, 1e6, allow_nan=False)))
def test_frozen_obs_normalizer_does_not_learn(x: np.ndarray, probe: np.ndarray) -> None:
    norm = ObsNormalizer(pushed(x))
    mean, m2, count = norm.stats.mean.copy(), norm.stats.m2.copy(), norm.stats.count
    probe = probe[: x.shape[1]]
    out = norm(probe, update=False)
    assert np.array_equal(norm.stats.mean, mean) and np.array_equal(norm.stats.m2, m2)
    assert norm.stats.count == count
    assert_z_close(out, x, probe)


def test_obs_outliers_clip_to_ten() -> None:
    norm = ObsNormalizer(pushed(np.array([[0.0, 0.0], [1.0, -1.0], [-1.0, 1.0]])))
    assert np.array_equal(norm(np.array([1e6, -1e6]), update=False), [OBS_CLIP, -OBS_CLIP])
    empty = ObsNormalizer(RunningMeanStd.zeros((2,)))
    assert np.array_equal(empty(np.array([50.0, -0.5]), update=False), [OBS_CLIP, -0.5])


def reference_scaling(eps: list[list[float]], gamma: float) -> list[float]:
    """r_t / (std of all discounted returns pushed so far, this one included), clipped."""
    rets: list[float] = []
    out = []
    for ep in eps:
        ret = 0.0
        for r in ep:
            ret = gamma * ret + r
            rets.append(ret)
            std = np.std(rets, ddof=1) if len(rets) > 1 else abs(rets[0])
            out.append(float(np.clip(r / (std + EPS), -REWARD_CLIP, REWARD_CLIP)))
    return out


@given(episodes, st.floats(0.0, 0.999))
def test_reward_scaler_divides_by_the_running_std_of_the_return(eps: list[list[float]],
                                                                gamma: float) -> None:
    scaler = RewardScaler(RunningMeanStd.zeros(()), gamma, normalize=True)
    got = []
    for ep in eps:
        scaler.reset()
        for r in ep:
            got.append(scaler(r, update=True))
    np.testing.assert_allclose(got, reference_scaling(eps, gamma), rtol=1e-6, atol=1e-9)
    assert scaler.stats.count == sum(map(len, eps))


def test_reward_scaler_restarts_the_return_at_each_episode() -> None:
    scaler = RewardScaler(RunningMeanStd.zeros(()), 0.5, normalize=True)
    for r in (1.0, 2.0, 4.0):
        scaler(r, update=True)
    assert scaler.ret == 0.25 * 1 + 0.5 * 2 + 4
    scaler.reset()
    scaler(3.0, update=True)
    assert scaler.ret == 3.0
    assert float(scaler.stats.mean) == pytest.approx((1.0 + 2.5 + 5.25 + 3.0) / 4)


def test_first_reward_scales_to_one_and_outliers_clip() -> None:
    scaler = RewardScaler(RunningMeanStd.zeros(()), 0.99, normalize=True)
    assert scaler(-5.0, update=True) == pytest.approx(-1.0)
    for _ in range(20):
        scaler.reset()
        scaler(0.01, update=True)
    scaler.reset()
    assert scaler(1e4, update=False) == REWARD_CLIP
    assert scaler(-1e4, update=False) == -REWARD_CLIP


@given(st.lists(rewards, min_size=1, max_size=30))
def test_trpo_mode_only_clips(rs: list[float]) -> None:
    """Table 1: reward normalization off for TRPO, reward clipping on."""
    scaler = RewardScaler(RunningMeanStd.zeros(()), 0.99, normalize=False)
    out = [scaler(r, update=True) for r in rs]
    assert out == [float(np.clip(r, -REWARD_CLIP, REWARD_CLIP)) for r in rs]
    assert scaler.stats.count == 0 and scaler.ret == 0.0

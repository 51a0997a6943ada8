"""Tests of the measurement package: estimators against closed forms, numeric kernels, the
cache, determinism and the parallel sampler.

The closed-form problem is ``pgclaims-test/Bandit-v0`` (:mod:`envs_for_tests`): its true policy
gradient is autograd on E[r], so the estimator of eq. (1) can be checked against the truth
rather than against another estimate.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from envs_for_tests import BANDIT, TARGET, bandit_objective
from filelock import FileLock
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pgclaims import measure
from pgclaims.agents.agent import Agent, TrainConfig, advantages, make_agent
from pgclaims.agents.envs import make_env
from pgclaims.agents.networks import flat_grad
from pgclaims.agents.rollout import Batch, collect
from pgclaims.measure import cache, parallel
from pgclaims.measure.gradients import (
    GradStats,
    chunk_stats,
    cosine,
    direct_gradient,
    gradient_study,
    loo_pairwise,
    mean_pairwise_cosine,
    pooled_stats,
)
from pgclaims.measure.landscape import landscape, step_study
from pgclaims.measure.returns import mc_returns
from pgclaims.measure.sampler import CHUNK, FrozenSampler, rng_for
from pgclaims.measure.value import mre, value_error

SEED = 20200101
GAMMA = 0.99
HORIZON = math.ceil(math.log(0.01) / math.log(GAMMA))
"""459: the cut-tail horizon of :func:`mc_returns` at gamma 0.99."""


def bandit_config(algo: str = "ppo", seed: int = 0) -> TrainConfig:
    """Table 1 has no row for the bandit, so its learning rates (and TRPO's KL) are explicit."""
    extra = {"policy_lr": 3e-4} if algo == "ppo" else {"max_kl": 0.05}
    return TrainConfig.create(BANDIT, algo, seed, iterations=1, value_lr=3e-4, **extra)


@pytest.fixture(scope="module")
def bandit() -> Agent:
    return make_agent(bandit_config())


@pytest.fixture(scope="module")
def hopper() -> Agent:
    return make_agent(TrainConfig.create("Hopper-v5", "ppo", 0))


def analytic_gradient(agent: Agent) -> np.ndarray:
    policy64 = copy.deepcopy(agent.policy).double()
    return flat_grad(bandit_objective(policy64), policy64).numpy()


def value_net_stats(agent: Agent, policy64: torch.nn.Module, batch: Batch,
                    baseline: str = "valuenet") -> GradStats:
    hp = agent.hyper
    adv = advantages(agent.value, batch, hp.gamma, hp.gae_lambda, baseline).raw
    return chunk_stats(policy64, batch, adv)


# ---------------------------------------------------------------------------------------------
# The estimator against a closed-form policy gradient


def test_make_env_accepts_a_registered_custom_id() -> None:
    env = make_env(BANDIT)
    obs, _ = env.reset(seed=0)
    _, reward, terminated, truncated, _ = env.step(TARGET)
    assert reward == 0.0 and terminated and not truncated
    env.close()


@pytest.mark.parametrize("baseline", ["valuenet", "zero"])
def test_estimate_converges_to_the_analytic_gradient(bandit: Agent, baseline: str) -> None:
    """Mean cosine with grad J rises along the N grid and exceeds 0.999 from 16K pairs."""
    truth = analytic_gradient(bandit)
    policy64 = copy.deepcopy(bandit.policy).double()
    sampler = FrozenSampler(bandit)
    center = baseline != "zero"
    grid, repeats = (8, 32, 128, 512, 2048), 6
    cos = np.array([[cosine(value_net_stats(bandit, policy64, sampler.batch(n, rng_for(
        SEED, 60, r, k)), baseline).estimate(center), truth) for r in range(repeats)]
        for k, n in enumerate(grid)])
    means = cos.mean(axis=1)
    assert np.all(np.diff(means) > 0), means
    pooled = sum((value_net_stats(bandit, policy64, b, baseline)
                  for b in sampler.chunks(8 * CHUNK, (61,), SEED)), GradStats.zeros(len(truth)))
    assert cosine(pooled.estimate(center), truth) > 0.999
    sampler.close()


def test_gradient_study_true_gradient_is_the_analytic_one(bandit: Agent) -> None:
    study = gradient_study(bandit, (64, 2048, 8192), repeats=3, true_grad_n=6 * CHUNK,
                           true_value_n=CHUNK, seed=SEED, workers=1)
    assert study.n.tolist() == [64, 2048, 8192]
    assert set(study.pairwise) == {"valuenet", "true", "zero"}
    for arr in study.pairwise.values():
        assert arr.shape == (3, 3) and np.all(np.abs(arr) <= 1 + 1e-12)
    assert study.true_cos.shape == (3, 3)
    assert np.all(study.true_cos[-1] > 0.999)
    assert np.all(study.true_cos.mean(axis=1)[:-1] < study.true_cos.mean(axis=1)[-1])
    assert study.meta["true_grad_pairs"] == 2 * 8192 + 0  # two other pools, no extra needed
    assert len(study.episode_returns) == len(study.trajectories) * CHUNK  # one-step episodes


def test_pooled_stats_is_the_analytic_gradient(bandit: Agent) -> None:
    stats = pooled_stats(bandit, 4 * CHUNK, (70,), SEED, workers=1)
    assert stats.n == 4 * CHUNK
    assert cosine(stats.estimate(), analytic_gradient(bandit)) > 0.999


def test_value_error_runs_on_a_custom_env(bandit: Agent) -> None:
    study = value_error(bandit, repeats=2, heldout_n=256, seed=SEED)
    assert study.heldout_gae.shape == study.heldout_returns.shape == (2,)
    assert np.all(np.isfinite(study.heldout_gae)) and np.all(np.isfinite(study.heldout_returns))
    # One-step episodes: the GAE target V + (r - V) is the return itself.
    np.testing.assert_allclose(study.heldout_gae, study.heldout_returns)
    assert study.meta["excluded_cut_tail_states"]["heldout"] == 0


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_steps_and_landscape_run_on_a_custom_env(algo: str) -> None:
    agent = make_agent(bandit_config(algo))
    steps = step_study(agent, repeats=2, eval_n=256, high_n=CHUNK, seed=SEED)
    assert steps.pairwise.shape == steps.surrogate_gain.shape == steps.reward_change.shape == (2,)
    assert np.all(steps.step_norms > 0) and np.isfinite(steps.high_reward_change[0])
    land = landscape(agent, (0.0, 1.0), (64,), 128, seed=SEED)
    assert land.reward["64"].shape == land.reward_ref.shape == land.surrogate.shape == (2, 2)
    assert np.all(np.isfinite(land.reward_ref)) and land.step_norm_ratio > 0


# ---------------------------------------------------------------------------------------------
# Sufficient statistics: any chunking gives the direct gradient


@pytest.fixture(scope="module")
def hopper_batch(hopper: Agent) -> tuple[torch.nn.Module, Batch]:
    sampler = FrozenSampler(hopper)
    batch = sampler.batch(200, rng_for(SEED, 80))
    sampler.close()
    return copy.deepcopy(hopper.policy).double(), batch


def rows(batch: Batch, lo: int, hi: int) -> Batch:
    return dataclasses.replace(batch, obs=batch.obs[lo:hi], actions=batch.actions[lo:hi])


@settings(deadline=None, max_examples=40)
@given(cuts=st.lists(st.integers(1, 199), unique=True, max_size=8).map(sorted),
       adv_seed=st.integers(0, 2**32 - 1), offset=st.floats(-50, 50),
       log_scale=st.floats(-3, 3), center=st.booleans())
def test_chunk_stats_sum_is_the_direct_gradient(hopper_batch: tuple[torch.nn.Module, Batch],
                                                cuts: list[int], adv_seed: int, offset: float,
                                                log_scale: float, center: bool) -> None:
    policy64, batch = hopper_batch
    scale = 10.0**log_scale
    adv = scale * (offset + np.random.default_rng(adv_seed).standard_normal(len(batch)))
    bounds = [0, *cuts, len(batch)]
    total = sum((chunk_stats(policy64, rows(batch, lo, hi), adv[lo:hi])
                 for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)),
                GradStats.zeros(sum(p.numel() for p in policy64.parameters())))
    direct = direct_gradient(policy64, batch, adv, center)
    np.testing.assert_allclose(total.estimate(center), direct, rtol=1e-7,
                               atol=1e-9 * np.abs(direct).max())


def test_chunk_stats_with_real_advantages(hopper: Agent,
                                          hopper_batch: tuple[torch.nn.Module, Batch]) -> None:
    policy64, batch = hopper_batch
    for baseline, center in (("valuenet", True), ("zero", False)):
        hp = hopper.hyper
        adv = advantages(hopper.value, batch, hp.gamma, hp.gae_lambda, baseline).raw
        halves = chunk_stats(policy64, rows(batch, 0, 77), adv[:77]) + chunk_stats(
            policy64, rows(batch, 77, 200), adv[77:])
        np.testing.assert_allclose(halves.estimate(center),
                                   direct_gradient(policy64, batch, adv, center), rtol=1e-8)


# ---------------------------------------------------------------------------------------------
# Mean relative error

nonzero = st.floats(-1e3, 1e3, allow_nan=False).filter(lambda x: x == 0 or abs(x) > 1e-100)


@settings(deadline=None, max_examples=100)
@given(target=hnp.arrays(np.float64, st.integers(1, 30), elements=nonzero))
def test_mre_of_a_perfect_prediction_is_zero(target: np.ndarray) -> None:
    assume(np.any(target != 0))
    err, excluded = mre(target.copy(), target)
    assert err == 0.0
    assert excluded == int(np.sum(np.abs(target) < 0.01 * np.abs(target).mean()))


@settings(deadline=None, max_examples=100)
@given(data=st.data(), n=st.integers(1, 30), power=st.integers(-20, 20), sign=st.sampled_from(
    [-1.0, 1.0]))
def test_mre_is_scale_invariant(data: st.DataObject, n: int, power: int, sign: float) -> None:
    pred = data.draw(hnp.arrays(np.float64, n, elements=nonzero))
    target = data.draw(hnp.arrays(np.float64, n, elements=nonzero))
    assume(np.any(target != 0))
    k = sign * 2.0**power  # a power of two scales exactly, so equality is exact
    assert mre(k * pred, k * target) == mre(pred, target)


def test_mre_divides_by_the_target_not_the_prediction() -> None:
    assert mre(np.array([2.0]), np.array([1.0])) == (1.0, 0)
    assert mre(np.array([1.0]), np.array([2.0])) == (0.5, 0)
    assert mre(np.array([0.0, 3.0]), np.array([-2.0, 4.0])) == ((1.0 + 0.25) / 2, 0)


def test_mre_excludes_and_counts_near_zero_targets() -> None:
    target = np.array([1.0, -1.0, 1e-4, 1.0, 0.0])
    pred = np.array([1.1, -0.9, 5.0, 1.1, 7.0])
    err, excluded = mre(pred, target)
    assert excluded == 2
    assert err == pytest.approx(0.1)


def test_mre_of_all_zero_targets_excludes_everything() -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        err, excluded = mre(np.array([1.0, 2.0]), np.zeros(2))
    assert math.isnan(err) and excluded == 2


# ---------------------------------------------------------------------------------------------
# Pairwise cosine

rows_strategy = st.integers(2, 8).flatmap(lambda r: st.integers(1, 6).flatmap(
    lambda d: hnp.arrays(np.float64, (r, d), elements=st.floats(-10, 10))))


@settings(deadline=None, max_examples=100)
@given(vectors=rows_strategy)
def test_loo_pairwise_mean_is_the_mean_pairwise_cosine(vectors: np.ndarray) -> None:
    assume(np.all(np.linalg.norm(vectors, axis=1) > 1e-3))
    r = len(vectors)
    pairs = [cosine(vectors[i], vectors[j]) for i in range(r) for j in range(i + 1, r)]
    loo = loo_pairwise(vectors)
    assert loo.shape == (r,)
    assert loo.mean() == pytest.approx(np.mean(pairs), abs=1e-12)
    for i in range(r):
        others = [cosine(vectors[i], vectors[j]) for j in range(r) if j != i]
        assert loo[i] == pytest.approx(np.mean(others), abs=1e-12)


@settings(deadline=None, max_examples=100)
@given(vectors=rows_strategy, data=st.data())
def test_loo_pairwise_ignores_positive_row_scales(vectors: np.ndarray,
                                                  data: st.DataObject) -> None:
    assume(np.all(np.linalg.norm(vectors, axis=1) > 1e-3))
    scales = data.draw(hnp.arrays(np.float64, (len(vectors), 1),
                                  elements=st.floats(1e-3, 1e3)))
    np.testing.assert_allclose(loo_pairwise(scales * vectors), loo_pairwise(vectors),
                               atol=1e-12)


def test_loo_pairwise_of_identical_rows_is_one() -> None:
    v = np.random.default_rng(SEED).standard_normal(50)
    np.testing.assert_allclose(loo_pairwise(np.stack([v] * 5)), 1.0, rtol=1e-12)
    assert cosine(v, 3 * v) == pytest.approx(1.0) and cosine(v, -v) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        cosine(v, np.zeros(50))


# ---------------------------------------------------------------------------------------------
# Monte Carlo returns


def make_batch(rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> Batch:
    n = len(rewards)
    return Batch(obs=np.zeros((n, 1), np.float32), actions=np.zeros((n, 1), np.float32),
                 rewards=rewards, raw_rewards=rewards, terminated=terminated,
                 truncated=truncated, final_obs=np.zeros((int(truncated.sum()), 1), np.float32),
                 episode_returns=np.zeros(0), episode_lengths=np.zeros(0, np.int64))


def episodes(lengths: list[int], ends: list[str], rng: np.random.Generator) -> Batch:
    """Trajectories laid end to end; ``ends[i]``: "term" or "cut" (time limit or batch end)."""
    n = sum(lengths)
    term, trunc = np.zeros(n, bool), np.zeros(n, bool)
    stop = np.cumsum(lengths) - 1
    term[stop] = [e == "term" for e in ends]
    trunc[stop] = [e == "cut" for e in ends]
    return make_batch(rng.standard_normal(n), term, trunc)


def brute_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    return np.array([sum(gamma**k * r for k, r in enumerate(rewards[t:]))
                     for t in range(len(rewards))])


@settings(deadline=None, max_examples=30)
@given(spec=st.lists(st.tuples(st.integers(1, 40), st.sampled_from(["term", "cut"])),
                     min_size=1, max_size=6), seed=st.integers(0, 2**32 - 1))
def test_mc_returns_are_exact_discounted_sums(spec: list[tuple[int, str]], seed: int) -> None:
    lengths, ends = [s[0] for s in spec], [s[1] for s in spec]
    batch = episodes(lengths, ends, np.random.default_rng(seed))
    returns, usable = mc_returns(batch, GAMMA)
    start = 0
    for length, end in spec:
        seg = slice(start, start + length)
        np.testing.assert_allclose(returns[seg], brute_returns(batch.rewards[seg], GAMMA),
                                   rtol=1e-12, atol=1e-12)
        # Short cut trajectories lose more than 1% of the discounting: all excluded.
        assert usable[seg].all() if end == "term" else not usable[seg].any()
        start += length


def test_mc_returns_exclude_states_within_the_horizon_of_a_cut() -> None:
    rng = np.random.default_rng(SEED)
    long_cut = HORIZON + 10
    batch = episodes([5, long_cut, HORIZON + 3, 3], ["term", "cut", "term", "cut"], rng)
    returns, usable = mc_returns(batch, GAMMA)
    assert usable[:5].all()
    cut = usable[5 : 5 + long_cut]
    steps_to_cut = long_cut - np.arange(long_cut)  # rewards from the state to the cut, inclusive
    assert cut[steps_to_cut > HORIZON].all()
    assert not cut[steps_to_cut < HORIZON].any()
    assert np.all(GAMMA ** steps_to_cut[cut] < 0.01)  # what is kept misses < 1% of the weight
    assert usable[5 + long_cut : 5 + long_cut + HORIZON + 3].all()  # terminated: all exact
    assert not usable[-3:].any()
    np.testing.assert_allclose(returns[:5], brute_returns(batch.rewards[:5], GAMMA))


# ---------------------------------------------------------------------------------------------
# The cache


@dataclass
class Toy:
    x: np.ndarray
    meta: dict


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PGCLAIMS_CACHE", str(tmp_path))
    return tmp_path / "measure"


def counting(result: Toy) -> tuple[list[int], object]:
    calls: list[int] = []

    def compute() -> Toy:
        calls.append(1)
        return result

    return calls, compute


def test_each_without_waiting_measures_other_agents_while_one_is_locked(
        bandit: Agent, cache_root: Path) -> None:
    """Two workers on claims of the same agents: the item whose entry another process holds
    is done after the others (not waited on first), results and errors stay in item order."""
    order: list[str] = []

    def measure(arg: int) -> Toy:
        def compute() -> Toy:
            order.append(f"computed {arg}")
            return Toy(np.array([float(arg)]), {})
        return cache.cached("toy", bandit, {"a": arg}, SEED, Toy, compute)

    measure(1)  # learn entry 1's path, then hold its lock as another process would
    (entry,) = (cache_root / "toy").glob("*.json")
    entry.unlink()
    order.clear()
    holder = FileLock(str(entry) + ".lock", is_singleton=False)
    holder.acquire()
    got: list[Toy] = []
    worker = threading.Thread(target=lambda: got.extend(cache.each_without_waiting([0, 1, 2],
                                                                                 measure)))
    worker.start()
    deadline = time.monotonic() + 30
    while len(order) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    holder.release()
    worker.join(30)
    assert [float(t.x[0]) for t in got] == [0.0, 1.0, 2.0]
    assert order == ["computed 0", "computed 2", "computed 1"]
    assert not cache._no_wait()

    def failing(arg: int) -> int:
        if arg:
            raise ValueError(f"item {arg}")
        return arg

    with pytest.raises(ValueError, match="item 1"):  # the plain loop's first error
        cache.each_without_waiting([2, 0, 1][::-1], failing)
    assert not cache._no_wait()


def test_cache_computes_once(bandit: Agent, cache_root: Path) -> None:
    toy = Toy(np.array([[1.5, np.nan], [3.0, -0.0]]), {"n": 3, "note": "x"})
    calls, compute = counting(toy)
    first = cache.cached("toy", bandit, {"a": 1}, SEED, Toy, compute)
    second = cache.cached("toy", bandit, {"a": 1}, SEED, Toy, compute)
    assert len(calls) == 1
    assert np.array_equal(second.x, toy.x, equal_nan=True) and second.x.dtype == toy.x.dtype
    assert second.meta == first.meta
    cache.cached("toy", bandit, {"a": 2}, SEED, Toy, compute)
    cache.cached("toy", bandit, {"a": 1}, SEED + 1, Toy, compute)
    assert len(calls) == 3
    assert len(list((cache_root / "toy").glob("*.json"))) == 3
    assert not list(cache_root.rglob("*.tmp"))


def test_a_version_bump_recomputes_only_the_kinds_it_changed(
        bandit: Agent, cache_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Version 4 changed gradient studies (the shrunk noise-corrected cosine): cached value,
    step and landscape studies of version 3 are still read, gradient studies computed again."""
    toy = Toy(np.array([1.0]), {})
    calls, compute = counting(toy)
    monkeypatch.setattr(cache, "MEASURE_VERSION", 3)
    for kind in ("gradients", "value", "steps", "landscape"):
        cache.cached(kind, bandit, {}, SEED, Toy, compute)
    assert len(calls) == 4
    monkeypatch.setattr(cache, "MEASURE_VERSION", 4)
    for kind in ("gradients", "value", "steps", "landscape"):
        cache.cached(kind, bandit, {}, SEED, Toy, compute)
    assert len(calls) == 5
    # records() lists the current version only; the version-3 gradient study stays on disk
    assert [len(cache.records(k)) for k in ("gradients", "steps")] == [1, 1]
    assert len(list((cache_root / "gradients").glob("*.json"))) == 2


def test_agent_id_covers_the_normalizer_statistics(bandit: Agent) -> None:
    """Same weights, other observation or reward statistics (e.g. another VecNormalize file):
    another agent, so the cache never hands one's results to the other."""
    other = copy.deepcopy(bandit)
    assert cache.agent_id(other) == cache.agent_id(bandit)
    other.obs_norm.stats.push(np.ones_like(other.obs_norm.stats.mean))
    assert cache.agent_id(other) != cache.agent_id(bandit)
    third = copy.deepcopy(bandit)
    third.reward_scaler.stats.push(np.asarray(0.5))
    assert cache.agent_id(third) not in {cache.agent_id(bandit), cache.agent_id(other)}


@pytest.mark.parametrize("damage", ['{"index": {"kind"', '{"index": {}, "result": {"y": 1}}',
                                    "[1, 2]", ""])
def test_a_damaged_cache_file_is_recomputed(bandit: Agent, cache_root: Path,
                                            damage: str) -> None:
    toy = Toy(np.arange(3.0), {})
    calls, compute = counting(toy)
    cache.cached("toy", bandit, {}, SEED, Toy, compute)
    (path,) = (cache_root / "toy").glob("*.json")
    path.write_text(damage)
    again = cache.cached("toy", bandit, {}, SEED, Toy, compute)
    assert len(calls) == 2 and np.array_equal(again.x, toy.x)
    assert json.loads(path.read_text())["result"]["x"]["__nd__"] == [0.0, 1.0, 2.0]
    assert not list(cache_root.rglob("*.tmp"))


def test_a_binary_damaged_cache_file_is_recomputed(bandit: Agent, cache_root: Path) -> None:
    calls, compute = counting(Toy(np.arange(3.0), {}))
    cache.cached("toy", bandit, {}, SEED, Toy, compute)
    (path,) = (cache_root / "toy").glob("*.json")
    path.write_bytes(b"\xff\xfe\x00garbage")
    cache.cached("toy", bandit, {}, SEED, Toy, compute)
    assert len(calls) == 2


def test_a_failed_computation_leaves_nothing(bandit: Agent, cache_root: Path) -> None:
    def fail() -> Toy:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache.cached("toy", bandit, {}, SEED, Toy, fail)
    assert not list((cache_root / "toy").glob("*.json"))
    assert not list(cache_root.rglob("*.tmp"))


def test_cached_gradients_round_trip(bandit: Agent, cache_root: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def spy(*args: object, **kwargs: object) -> measure.GradientStudy:
        calls.append(1)
        return gradient_study(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(measure, "gradient_study", spy)
    cfg = measure.MeasureConfig(n_grid=(64, 2048), repeats=2, true_grad_n=CHUNK,
                                true_value_n=0)
    first = measure.gradients(bandit, cfg, seed=SEED)
    second = measure.gradients(bandit, cfg, seed=SEED)
    assert len(calls) == 1
    for f in ("n", "true_cos", "trajectories", "episode_returns"):
        assert np.array_equal(getattr(first, f), getattr(second, f))
    assert {k: v.tolist() for k, v in first.pairwise.items()} == {
        k: v.tolist() for k, v in second.pairwise.items()}
    assert first.meta == second.meta


# ---------------------------------------------------------------------------------------------
# Determinism and the parallel sampler

SMALL_STUDY = {"n_grid": (32, 2048, 4096), "repeats": 3, "true_grad_n": 3 * 4096,
               "true_value_n": CHUNK}


def assert_same_study(a: measure.GradientStudy, b: measure.GradientStudy) -> None:
    for f in ("n", "true_cos", "trajectories", "episode_returns"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert a.pairwise.keys() == b.pairwise.keys()
    for k in a.pairwise:
        assert np.array_equal(a.pairwise[k], b.pairwise[k]), k
    assert a.meta == b.meta


def test_gradient_study_is_deterministic(bandit: Agent) -> None:
    a = gradient_study(bandit, **SMALL_STUDY, seed=SEED, workers=1)
    b = gradient_study(bandit, **SMALL_STUDY, seed=SEED, workers=1)
    assert_same_study(a, b)
    c = gradient_study(bandit, **SMALL_STUDY, seed=SEED + 1, workers=1)
    assert not np.array_equal(a.true_cos, c.true_cos)


def test_parallel_gradient_study_is_bit_identical_to_serial(bandit: Agent) -> None:
    serial = gradient_study(bandit, **SMALL_STUDY, seed=SEED, workers=1)
    assert_same_study(serial, gradient_study(bandit, **SMALL_STUDY, seed=SEED, workers=2))
    assert_same_study(serial, gradient_study(bandit, **SMALL_STUDY, seed=SEED, workers=3))


def _obs_sum(batch: Batch, scale: float) -> tuple[float, int]:
    return scale * float(batch.obs.astype(np.float64).sum()), batch.n_trajectories


def test_chunk_map_matches_serial_on_mujoco(hopper: Agent) -> None:
    jobs = [(300, (90, c), float(c + 1)) for c in range(5)]
    serial = list(parallel.chunk_map(hopper, _obs_sum, jobs, SEED, workers=1))
    assert list(parallel.chunk_map(hopper, _obs_sum, jobs, SEED, workers=2)) == serial
    assert len(set(serial)) == 5


def _fail_on_third(batch: Batch, arg: int) -> int:
    if arg == 2:
        raise ArithmeticError("chunk 2")
    return arg


def test_chunk_map_reraises_a_worker_error(bandit: Agent) -> None:
    jobs = [(16, (91, c), c) for c in range(4)]
    with pytest.raises(ArithmeticError, match="chunk 2"):
        list(parallel.chunk_map(bandit, _fail_on_third, jobs, SEED, workers=2))
    assert list(parallel.chunk_map(bandit, _fail_on_third, jobs[:2], SEED, workers=2)) == [0, 1]


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_frozen_sampler_is_collect_with_frozen_normalizers(algo: str) -> None:
    """The sampler's cached normalizers give bit-identical batches to collect() (the gymnasium
    path; the batched MuJoCo path is compared in tests/test_batched_sampler.py)."""
    agent = make_agent(TrainConfig.create("Hopper-v5", algo, 0))
    rng = np.random.default_rng(SEED)
    for _ in range(3):  # an untouched normalizer (count 0) is the identity with clipping
        ref = collect(make_env("Hopper-v5"), agent.policy.numpy_sampler(),
                      copy.deepcopy(agent.obs_norm), copy.deepcopy(agent.reward_scaler), 300,
                      rng_for(SEED, 92), update_normalizers=False)
        got = FrozenSampler(agent, batched=False).batch(300, rng_for(SEED, 92))
        for f in dataclasses.fields(Batch):
            assert np.array_equal(getattr(got, f.name), getattr(ref, f.name)), f.name
        for _ in range(20):
            agent.obs_norm.stats.push(rng.standard_normal(11) * 3 + 1)
            agent.reward_scaler.stats.push(np.asarray(rng.standard_normal() * 0.05))


def test_default_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PGCLAIMS_WORKERS", raising=False)
    assert parallel.default_workers() >= 1
    monkeypatch.setenv("PGCLAIMS_WORKERS", "3")
    assert parallel.default_workers() == 3
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert parallel.default_workers() == 1
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    monkeypatch.setenv("PGCLAIMS_WORKERS", "zero")
    with pytest.raises(ValueError, match="PGCLAIMS_WORKERS"):
        parallel.default_workers()
    with pytest.raises(ValueError, match="workers"):
        parallel.resolve_workers(0)


# ---------------------------------------------------------------------------------------------
# mean_pairwise_cosine (the kernel behind the pairwise-cosine claims)

finite = st.floats(-1e3, 1e3, allow_nan=False).filter(lambda x: x == 0 or abs(x) > 1e-3)
matrices = hnp.arrays(np.float64, st.tuples(st.integers(2, 6), st.integers(1, 5)), elements=finite)


@given(matrices, st.lists(st.floats(1e-3, 1e3), min_size=6, max_size=6))
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
def test_cosine_invariant_to_positive_row_scaling(v: np.ndarray, scales: list[float]) -> None:
    if np.any(np.all(v == 0, axis=1)):
        with pytest.raises(ValueError, match="zero vector"):
            mean_pairwise_cosine(v)
        return
    scaled = v * np.array(scales[: len(v)])[:, None]
    c = mean_pairwise_cosine(v)
    assert -1.0 <= c <= 1.0
    assert mean_pairwise_cosine(scaled) == pytest.approx(c, abs=1e-9)


@given(hnp.arrays(np.float64, st.integers(1, 8), elements=finite), st.integers(2, 7))
@settings(max_examples=100, deadline=None, derandomize=True, database=None)
def test_cosine_of_identical_rows_is_one(row: np.ndarray, n: int) -> None:
    if np.all(row == 0):
        return
    assert mean_pairwise_cosine(np.tile(row, (n, 1))) == pytest.approx(1.0, abs=1e-12)


def test_cosine_known_values_and_errors() -> None:
    assert mean_pairwise_cosine(np.eye(3)) == 0.0
    assert mean_pairwise_cosine(np.array([[1.0, 0.0], [-2.0, 0.0]])) == pytest.approx(-1.0)
    # pairs: (a,b)=1/sqrt2, (a,c)=0, (b,c)=1/sqrt2
    v = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    assert mean_pairwise_cosine(v) == pytest.approx(2 / (3 * math.sqrt(2)))
    with pytest.raises(ValueError, match="2 rows"):
        mean_pairwise_cosine(np.ones((1, 3)))
    with pytest.raises(ValueError, match="zero vector"):
        mean_pairwise_cosine(np.array([[1.0, 2.0], [0.0, 0.0]]))

"""The batched MuJoCo sampler (:mod:`pgclaims.measure.batched`) against gymnasium v5.

Every comparison of environment quantities is exact (``np.array_equal``): the batched path
makes the same MuJoCo calls and the same float64 arithmetic as gymnasium. The one inexact
quantity is the policy mean of the batched forward pass, compared to 1e-12 (a matrix-matrix
product does not round like ``NumpyPolicy.mean``'s matrix-vector product); its preallocated,
in-place evaluation is compared bit for bit with the plain block-by-block product.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from pgclaims.agents.agent import Agent, TrainConfig, make_agent
from pgclaims.agents.networks import NumpyPolicy, flat_params
from pgclaims.agents.rollout import Batch, collect
from pgclaims.measure import parallel
from pgclaims.measure.batched import (
    BLOCK,
    MUJOCO_ENVS,
    BatchedSampler,
    BlockedMean,
    batched_mean,
    make_task_env,
    rowwise_mean,
)
from pgclaims.measure.sampler import FrozenSampler, perturbed, rng_for
from pgclaims.measure.sims import BatchSims, Sims, Task
from tests.envs_for_tests import BANDIT
from tests.same import assert_same_result

SEED = 11
V5_NOISE = {"Hopper-v5": 5e-3, "Walker2d-v5": 5e-3, "Humanoid-v5": 1e-2}
"""reset_noise_scale defaults of the v5 sources."""


@pytest.fixture(scope="module", params=MUJOCO_ENVS)
def agent(request: pytest.FixtureRequest) -> Agent:
    torch.set_num_threads(1)
    return make_agent(TrainConfig.create(request.param, "ppo", 0))


def assert_same_batch(a: Batch, b: Batch) -> None:
    for f in dataclasses.fields(Batch):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x is None or y is None:
            assert x is None and y is None, f.name
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, f.name
        assert np.array_equal(x, y), f.name


def frozen(agent: Agent, **kw: object) -> tuple[FrozenSampler, BatchedSampler]:
    fs = FrozenSampler(agent, batched=False)
    return fs, BatchedSampler(agent.config.env_id, fs.policy, fs.obs_norm, fs.reward_scaler,
                              **kw)  # type: ignore[arg-type]


SIMS = [(e, kind) for e in MUJOCO_ENVS for kind in ("loop", "batch")
        if not (kind == "batch" and e.startswith("Humanoid"))]
"""Each task with each way of stepping it (Humanoid needs mj_rnePostConstraint: loop only)."""


def make(kind: str, task: Task, k: int, nthread: int = 1) -> Sims | BatchSims:
    return Sims(task, k, None) if kind == "loop" else BatchSims(task, k, nthread)


@pytest.mark.parametrize(("env_id", "kind"), SIMS)
def test_step_matches_gymnasium_exactly(env_id: str, kind: str) -> None:
    """Same initial states (set after reset), same actions (up to 3x outside the bounds), 400
    steps through terminations: observations, rewards, terminated and the MuJoCo state equal
    gymnasium's bit for bit, on 3 sims stepped together on 2 threads."""
    rng = np.random.default_rng(0)
    task = Task(env_id)
    k, steps = 3, 400
    envs = [make_task_env(env_id) for _ in range(k)]
    sims = make(kind, task, k, nthread=2)
    for i, env in enumerate(envs):
        env.reset(seed=i)
        qpos = task.init_qpos + rng.uniform(-0.05, 0.05, task.nq)
        qvel = task.init_qvel + rng.uniform(-0.5, 0.5, task.nv)
        env.unwrapped.set_state(qpos, qvel)  # type: ignore[attr-defined]
        sims.reset(i, np.random.default_rng(i))
        sims.set_state(i, qpos, qvel)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        if isinstance(sims, Sims):
            sims.pool, sims.nthread = pool, 2
        ids = np.arange(k)
        n_term = 0
        for _ in range(steps):
            actions = rng.uniform(-3, 3, (k, task.nu))
            obs, r, term = sims.env_step(ids, actions)
            for i, env in enumerate(envs):
                g_obs, g_r, g_term, g_trunc, _ = env.step(actions[i])
                assert np.array_equal(obs[i], g_obs)
                assert r[i] == g_r and term[i] == g_term and not g_trunc
                u = env.unwrapped
                assert np.array_equal(sims.qpos[i], u.data.qpos)  # type: ignore[attr-defined]
                assert np.array_equal(sims.qvel[i], u.data.qvel)  # type: ignore[attr-defined]
            n_term += int(term.sum())
    assert n_term > 0, "the actions should make the tasks unhealthy"


@pytest.mark.parametrize(("env_id", "kind"), SIMS)
def test_reset_matches_gymnasium_exactly(env_id: str, kind: str) -> None:
    """gymnasium seeds np_random with default_rng(seed) and draws uniform(nq) then uniform(nv)
    with +-reset_noise_scale: the same Generator reproduces every reset exactly."""
    task = Task(env_id)
    assert task.noise_scale == V5_NOISE[env_id]
    env = make_task_env(env_id)
    sims = make(kind, task, 1)
    reset_rng = np.random.default_rng(1234)
    for j in range(5):
        g_obs, _ = env.reset(seed=1234) if j == 0 else env.reset()
        sims.reset(0, reset_rng)
        assert np.array_equal(sims.obs[0], g_obs)
        assert np.array_equal(sims.qpos[0], env.unwrapped.data.qpos)  # type: ignore[attr-defined]
        assert np.array_equal(sims.qvel[0], env.unwrapped.data.qvel)  # type: ignore[attr-defined]
        env.step(np.ones(task.nu))  # a reset after steps restarts from a clean MjData
        sims.env_step(np.arange(1), np.ones((1, task.nu)))


def test_rowwise_reproduces_collect_bit_for_bit(agent: Agent) -> None:
    """With the per-row forward pass the batched sampler is ``collect``: same rng consumption,
    resets, terminations, time-limit truncations (limit 22), cut rows, final_obs, cut_states,
    episode returns, rewards through the frozen scaler."""
    env_id = agent.config.env_id
    fs, bs = frozen(agent, forward="rowwise", max_episode_steps=22, nsim=3)
    env = make_task_env(env_id, 22)
    jobs = [(300, 1), (257, 2), (300, 3)]
    got = bs.sample([(n, rng_for(SEED, c)) for n, c in jobs])
    for (n, c), b in zip(jobs, got, strict=True):
        ref = collect(env, fs.policy, fs.obs_norm, fs.reward_scaler,  # type: ignore[arg-type]
                      n, rng_for(SEED, c), update_normalizers=False)
        assert_same_batch(ref, b)
    lengths = np.concatenate([b.episode_lengths for b in got])
    assert (lengths == 22).any() and (lengths < 22).any()  # truncations and terminations
    assert np.concatenate([b.terminated for b in got]).any()


def test_batched_forward_is_row_independent_and_close(agent: Agent) -> None:
    policy = agent.policy.numpy_sampler()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2 * BLOCK + 5, agent.policy.mean[0].in_features))
    full = batched_mean(policy, x)
    perm = rng.permutation(len(x))
    assert np.array_equal(batched_mean(policy, x[perm]), full[perm])
    for i in (0, 7, len(x) - 1):
        assert np.array_equal(batched_mean(policy, x[i:i + 1])[0], full[i])
    # matmul vs matrix-vector rounding only
    np.testing.assert_allclose(full, rowwise_mean(policy, x), rtol=0, atol=1e-12)


def plain_blocked_mean(policy: NumpyPolicy, x: np.ndarray) -> np.ndarray:
    """``batched_mean`` as first written: padded blocks of BLOCK rows, ``h @ w.T + b``, tanh."""
    pad = (-len(x)) % BLOCK
    h_all = np.concatenate([x, np.zeros((pad, x.shape[1]))]) if pad else x
    out = []
    for s in range(0, len(h_all), BLOCK):
        h = h_all[s:s + BLOCK]
        for i, (w, b) in enumerate(policy.weights):
            h = h @ w.T + b
            h = np.tanh(h) if i < len(policy.weights) - 1 else h
        out.append(h)
    return np.concatenate(out)[:len(x)] if out else np.empty((0, len(policy.std)))


def test_blocked_mean_is_the_plain_blocked_product(agent: Agent) -> None:
    """Preallocated buffers, in-place bias and tanh, tanh on the used rows only: the same
    numbers, bit for bit, for any number of rows and for an evaluator used again."""
    policy = agent.policy.numpy_sampler()
    rng = np.random.default_rng(4)
    width = policy.weights[0][0].shape[1]
    for rows in (0, 1, 5, BLOCK, BLOCK + 1, 3 * BLOCK - 2):
        x = 3 * rng.standard_normal((rows, width))
        assert np.array_equal(batched_mean(policy, x), plain_blocked_mean(policy, x))
    mean = BlockedMean(policy, 7)
    for _ in range(3):
        x = 3 * rng.standard_normal((7, width))
        mean.x[:] = x
        assert np.array_equal(mean(), plain_blocked_mean(policy, x))


@pytest.mark.parametrize(("env_id", "kind"), SIMS)
def test_health_matches_v5_at_the_bounds(env_id: str, kind: str) -> None:
    """v5's ``is_healthy`` against the sims' on states with any two coordinates at, just inside
    or just outside one of v5's health bounds, NaN and inf included (set without
    ``mj_forward``, which rejects them)."""
    task = Task(env_id)
    env = make_task_env(env_id)
    env.reset(seed=0)
    u = env.unwrapped
    rng = np.random.default_rng(5)
    k = 200
    sims = make(kind, task, k)
    ranges = [task.z_range, task.angle_range, task.state_range]
    edges = np.array([b for r in ranges if r is not None for b in r if np.isfinite(b)])
    picks = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf),
                            [np.nan, np.inf, -np.inf, 0.0]])
    states = np.tile(np.r_[task.init_qpos, task.init_qvel], (k, 1))
    for row in states[1:]:
        row[rng.choice(len(row), size=2)] = rng.choice(picks, size=2)
    sims.qstate[:] = states
    _, _, term = sims._finish(np.zeros(k), np.zeros((k, task.nu)), None, None)
    for row, t in zip(states, term, strict=True):
        u.data.qpos[:], u.data.qvel[:] = row[:task.nq], row[task.nq:]  # type: ignore[attr-defined]
        assert t == (not u.is_healthy), row  # type: ignore[attr-defined]
    assert 0 < term.sum() < k


@pytest.mark.parametrize("nsim,nthread", [(1, 1), (3, 2), (16, 1)])
def test_chunk_is_independent_of_its_company(nsim: int, nthread: int) -> None:
    agent = make_agent(TrainConfig.create("Hopper-v5", "ppo", 0))
    fs, alone = frozen(agent, nsim=1)
    _, many = frozen(agent, nsim=nsim, nthread=nthread)
    jobs = [(200 + 37 * c, c) for c in range(5)]
    together = many.sample([(n, rng_for(SEED, 9, c)) for n, c in jobs])
    for (n, c), b in zip(jobs, together, strict=True):
        assert_same_batch(alone.sample([(n, rng_for(SEED, 9, c))])[0], b)
    many.close()


def _perturbed_policies(agent: Agent, k: int) -> list[NumpyPolicy]:
    theta = flat_params(agent.policy).detach()
    gen = torch.Generator().manual_seed(SEED)
    return [perturbed(agent.policy, theta + 0.05 * c * torch.randn(theta.shape, generator=gen,
                                                                   dtype=theta.dtype))
            for c in range(k)]


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Humanoid-v5"])
def test_one_policy_per_job_is_each_job_alone(env_id: str) -> None:
    agent = make_agent(TrainConfig.create(env_id, "ppo", 0))
    _, alone = frozen(agent, nsim=1)
    _, many = frozen(agent, nsim=4)
    policies = _perturbed_policies(agent, 3)
    picks = [policies[c % 3] for c in range(6)]  # each policy on 2 rows of a group
    jobs = [(120 + 29 * c, c) for c in range(6)]
    together = many.sample([(n, rng_for(SEED, 8, c)) for n, c in jobs], policies=picks)
    for (n, c), b, p in zip(jobs, together, picks, strict=True):
        assert_same_batch(alone.sample([(n, rng_for(SEED, 8, c))], p)[0], b)
    assert not np.array_equal(together[0].actions[:50], together[1].actions[:50])
    with pytest.raises(ValueError, match="one policy per job"):
        many.sample([(10, rng_for(SEED, 8, 0))], policies=policies)


class OneAtATime(FrozenSampler):
    """The sampler before lockstep evaluation of landscapes and steps: a batch at a time."""

    def batches(self, jobs, policy=None, policies=None):  # type: ignore[no-untyped-def]
        each = policies if policies is not None else [policy] * len(jobs)
        return [FrozenSampler.batches(self, [(n, rng)], p)[0]
                for (n, rng), p in zip(jobs, each, strict=True)]


def test_steps_value_and_landscape_are_those_of_one_batch_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    landscape_mod = importlib.import_module("pgclaims.measure.landscape")
    value_mod = importlib.import_module("pgclaims.measure.value")

    agent = make_agent(TrainConfig.create("Hopper-v5", "trpo", 0))
    args = [(landscape_mod.step_study, (agent, 3, 600, 1024, SEED)),
            (landscape_mod.landscape, (agent, (0.0, 1.0), (300,), 500, SEED)),
            (value_mod.value_error, (agent, 3, 700, SEED))]
    lockstep = [f(*a) for f, a in args]
    monkeypatch.setattr(parallel, "FrozenSampler", OneAtATime)
    for (f, a), new in zip(args, lockstep, strict=True):
        assert_same_result(f(*a), new, f.__name__)


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_an_algorithm_step_leaves_the_checkpoint_as_it_was(
        algo: str, trained_runs: Callable[[str], tuple[Agent, Path]]) -> None:
    landscape_mod = importlib.import_module("pgclaims.measure.landscape")
    agent, _ = trained_runs(algo)  # trained: PPO's Adam has moments
    batch = FrozenSampler(agent).batch(512, rng_for(SEED, 1))
    saved = copy.deepcopy(agent.policy_opt.state_dict()) if agent.policy_opt else None
    first = landscape_mod.algorithm_step(agent, batch, rng_for(SEED, 2))
    second = landscape_mod.algorithm_step(agent, batch, rng_for(SEED, 2))
    assert torch.equal(first.delta, second.delta)
    if saved is not None:
        now = agent.policy_opt.state_dict()["state"]
        assert saved["state"] and all(torch.equal(v, now[k][n])
                                      for k, st in saved["state"].items() for n, v in st.items())


def _summary(batch: Batch, _: object) -> tuple[float, float, int]:
    return float(batch.obs.sum()), float(batch.raw_rewards.sum()), batch.n_trajectories


def test_chunk_map_batched_independent_of_workers() -> None:
    agent = make_agent(TrainConfig.create("Walker2d-v5", "ppo", 0))
    jobs = [(150, (4, c), None) for c in range(5)]
    serial = list(parallel.chunk_map(agent, _summary, jobs, SEED, workers=1, batched=True))
    assert list(parallel.chunk_map(agent, _summary, jobs, SEED, workers=2, batched=True)) == serial
    sampler = FrozenSampler(agent, batched=True)
    assert _summary(sampler.batch(150, rng_for(SEED, 4, 2)), None) == serial[2]
    gym_path = list(parallel.chunk_map(agent, _summary, jobs, SEED, workers=1, batched=False))
    assert gym_path != serial  # the batched forward rounds differently: other numbers


def test_default_on_and_other_envs_keep_gymnasium() -> None:
    from tests.test_measure import bandit_config
    hopper = make_agent(TrainConfig.create("Hopper-v5", "ppo", 0))
    assert isinstance(FrozenSampler(hopper).vectorized, BatchedSampler)
    assert FrozenSampler(hopper, batched=False).vectorized is None
    bandit = make_agent(bandit_config())
    sampler = FrozenSampler(bandit, batched=True)
    assert sampler.vectorized is None and BANDIT not in MUJOCO_ENVS
    ref = collect(sampler.env, sampler.policy, sampler.obs_norm,  # type: ignore[arg-type]
                  sampler.reward_scaler, 50, rng_for(SEED, 5),  # type: ignore[arg-type]
                  update_normalizers=False)
    assert_same_batch(sampler.batch(50, rng_for(SEED, 5)), ref)


def test_return_distribution_matches_gymnasium_path(agent: Agent) -> None:
    """Independent seeds on the two paths: the episode returns of a fresh (random) policy are
    one distribution (two-sample KS, not rejected at 1%)."""
    fs, bs = frozen(agent, nsim=4)
    gym_returns = np.concatenate([fs.batch(1000, rng_for(1, c)).episode_returns
                                  for c in range(3)])
    vec_returns = np.concatenate([b.episode_returns for b in
                                  bs.sample([(1000, rng_for(2, c)) for c in range(3)])])
    assert min(len(gym_returns), len(vec_returns)) > 80
    assert ks_2samp(gym_returns, vec_returns).pvalue > 0.01

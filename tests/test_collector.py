"""The one collector (:mod:`pgclaims.agents.collector`) against the gymnasium collector.

Training collects through direct MuJoCo stepping, several runs in lockstep, with a leaner
update (:mod:`pgclaims.agents.adam`, :func:`pgclaims.agents.networks.run`). None of that may
change a bit of what training produces: the committed fixtures must still reproduce from their
configs. The reference here is the code they were trained with: ``collect`` on a gymnasium
environment, ``torch.optim.Adam.step`` and ``zero_grad``, and module calls.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from pgclaims.adapters import ExternalAgent, to_pgclaims_agent
from pgclaims.adapters.envs import clipped_env_id
from pgclaims.adapters.modules import MLPSampler, TorchSampler
from pgclaims.agents import agent as agent_mod
from pgclaims.agents import checkpoint, fixtures
from pgclaims.agents import minibatch as minibatch_mod
from pgclaims.agents import networks as networks_mod
from pgclaims.agents import train as train_mod
from pgclaims.agents.agent import Agent, TrainConfig, make_agent, training_env
from pgclaims.agents.collector import Collector, Stream
from pgclaims.agents.envs import FrozenObsNorm, FrozenRewardScaler, make_env
from pgclaims.agents.forward import BlockedMean
from pgclaims.agents.lockstep import LOCKSTEP, train_together
from pgclaims.agents.minibatch import AdamStep, backward
from pgclaims.agents.networks import run
from pgclaims.agents.rollout import Batch, collect
from pgclaims.agents.sims import MUJOCO_ENVS, supports
from pgclaims.agents.train import train
from pgclaims.measure.sampler import FrozenSampler, rng_for

LIMIT = 22
"""A short time limit, so that a few hundred pairs hold terminations and time-limit cuts."""


def assert_same_batch(a: Batch, b: Batch) -> None:
    for f in dataclasses.fields(Batch):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x is None or y is None:
            assert x is None and y is None, f.name
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, f.name
        assert np.array_equal(x, y), f.name


def assert_same_state(a: Agent, b: Agent) -> None:
    """Normalizers (statistics, counts, running return) and the numpy rng."""
    for x, y in ((a.obs_norm.stats, b.obs_norm.stats), (a.reward_scaler.stats,
                                                          b.reward_scaler.stats)):
        assert np.array_equal(x.mean, y.mean) and np.array_equal(x.m2, y.m2)
        assert x.count == y.count
    assert a.reward_scaler.ret == b.reward_scaler.ret
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


def limited_env(env_id: str) -> gym.Env:
    return gym.make(env_id, disable_env_checker=True, max_episode_steps=LIMIT)


# -- the collector is collect -------------------------------------------------------------


@pytest.mark.parametrize("env_id", MUJOCO_ENVS)
def test_training_batches_are_collects_bit_for_bit(env_id: str) -> None:
    """Fresh agents (the first observation and return start the statistics), PPO's reward
    normalization beside TRPO's clip only, streams of different lengths finishing at different
    steps, two rounds: every batch, normalizer and rng equals ``collect``'s."""
    configs = [TrainConfig.create(env_id, "ppo", 0, protocol="authors"),
               TrainConfig.create(env_id, "trpo", 1, protocol="corrected"),
               TrainConfig.create(env_id, "ppo", 2, protocol="corrected")]
    ref = [make_agent(c) for c in configs]
    ours = [copy.deepcopy(a) for a in ref]
    ns = (300, 257, 280)
    env, collector = limited_env(env_id), Collector(env_id, nsim=3, forward="rowwise",
                                                    max_episode_steps=LIMIT)
    for _ in range(2):
        want = [collect(env, a.policy.numpy_sampler(), a.obs_norm, a.reward_scaler, n, a.rng,
                        update_normalizers=True) for a, n in zip(ref, ns, strict=True)]
        got = collector.collect([Stream(n, a.rng, a.policy.numpy_sampler(), a.obs_norm,
                                        a.reward_scaler, update=True)
                                 for a, n in zip(ours, ns, strict=True)])
        for w, g, a, b in zip(want, got, ref, ours, strict=True):
            assert_same_batch(w, g)
            assert_same_state(a, b)
    lengths = np.concatenate([b.episode_lengths for b in got])
    assert (lengths == LIMIT).any() and (lengths < LIMIT).any()


def test_a_shared_updated_normalizer_is_refused() -> None:
    agent = make_agent(TrainConfig.create("Hopper-v5", "ppo", 0))
    stream = Stream(10, agent.rng, agent.policy.numpy_sampler(), agent.obs_norm,
                    agent.reward_scaler, update=True)
    with pytest.raises(ValueError, match="need one each"):
        Collector("Hopper-v5").collect([stream, stream])


# -- the adapters' ids and policies -------------------------------------------------------


def test_wrapped_ids_are_stepped_directly_only_when_reproduced() -> None:
    clipped = clipped_env_id("Humanoid-v5")
    assert supports(clipped) and all(supports(e) for e in MUJOCO_ENVS)
    for name, wrap in (("Rescaled", lambda e: gym.wrappers.RescaleAction(
            e, np.full(3, -2, np.float32), np.full(3, 2, np.float32))),
                       ("Normalized", gym.wrappers.NormalizeObservation)):
        gym.register(f"pgclaims_test/{name}Hopper-v5", disable_env_checker=True,
                     entry_point=lambda wrap=wrap: wrap(gym.make("Hopper-v5")))
        assert not supports(f"pgclaims_test/{name}Hopper-v5")  # a wrapper it does not apply
    assert not supports("Pendulum-v1") and not supports("pgclaims_test/Unregistered-v0")


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Humanoid-v5"])
def test_clipped_ids_reproduce_clip_action_bit_for_bit(env_id: str) -> None:
    """A wide policy (std e) sends actions far outside the bounds: the simulation gets them
    clipped and charges their control cost, the batch keeps the samples."""
    agent = make_agent(TrainConfig.create(env_id, "ppo", 0))
    policy = agent.policy.numpy_sampler()
    policy.std = np.full_like(policy.std, np.e)
    cid = clipped_env_id(env_id)
    env = gym.make(cid, max_episode_steps=LIMIT)
    norm, scale = FrozenObsNorm(agent.obs_norm), FrozenRewardScaler(agent.reward_scaler)
    collector = Collector(cid, nsim=2, forward="rowwise", max_episode_steps=LIMIT)
    got = collector.collect([Stream(200, rng_for(1, c), policy, norm, scale) for c in (0, 1)])
    for c, b in enumerate(got):
        want = collect(env, policy, norm, scale, 200, rng_for(1, c),  # type: ignore[arg-type]
                       update_normalizers=False)
        assert_same_batch(want, b)
    high = env.unwrapped.action_space.high  # type: ignore[attr-defined]
    assert (np.abs(got[0].actions) > high).mean() > 0.5  # stored unclipped


def external(clip: bool, mean: nn.Module) -> Agent:
    torch.manual_seed(0)
    spec = ExternalAgent(mean=mean, log_std=torch.full((3,), -0.5),
                         value=nn.Sequential(nn.Linear(11, 16), nn.ReLU(), nn.Linear(16, 1)),
                         gamma=0.99, gae_lambda=0.95, clip_actions=clip)
    return to_pgclaims_agent(spec, "Hopper-v5")


class Residual(nn.Module):
    """Not a Sequential: the adapters sample it with a torch forward pass per row."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(11, 3), nn.Linear(11, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + torch.relu(self.b(x))


@pytest.mark.parametrize("clip", [False, True])
def test_external_agents_sample_on_the_batched_path(clip: bool) -> None:
    """``clip_actions=False`` used to crash here (``'MLPSampler' object has no attribute
    'weights'``); both kinds now take the batched path, and with the rowwise forward pass it is
    ``collect`` on the agent's environment bit for bit. The batched forward pass of a ReLU
    policy is the plain blocked product of its ops."""
    agent = external(clip, nn.Sequential(nn.Linear(11, 16), nn.ReLU(), nn.Linear(16, 3)))
    sampler = FrozenSampler(agent)
    assert sampler.vectorized is not None and isinstance(sampler.policy, MLPSampler)
    batch = sampler.batch(300, rng_for(2, 0))
    assert len(batch) == 300 and np.isfinite(batch.obs).all()
    x = np.random.default_rng(0).normal(size=(5, 11))
    mean = BlockedMean(sampler.policy, 5)
    mean.x[:] = x
    (w0, b0), relu, (w1, b1) = sampler.policy.ops  # type: ignore[misc]
    pad = np.zeros((16, 11))
    pad[:5] = x
    h = pad @ w0.T + b0
    h[:5] = relu(h[:5])
    assert np.array_equal(mean(), (h @ w1.T + b1)[:5])
    rowwise = Collector(agent.config.env_id, nsim=2, forward="rowwise")
    got = rowwise.collect([Stream(300, rng_for(2, 0), sampler.policy, sampler.obs_norm,
                                  sampler.reward_scaler)])[0]
    want = collect(make_env(agent.config.env_id), sampler.policy, sampler.obs_norm,
                   sampler.reward_scaler, 300, rng_for(2, 0), update_normalizers=False)
    assert_same_batch(want, got)


def test_a_torch_module_policy_is_sampled_row_by_row_exactly() -> None:
    agent = external(False, Residual())
    sampler = FrozenSampler(agent)
    assert isinstance(sampler.policy, TorchSampler) and sampler.policy.ops is None
    got = sampler.batch(200, rng_for(3, 0))
    want = collect(make_env("Hopper-v5"), sampler.policy, sampler.obs_norm,
                   sampler.reward_scaler, 200, rng_for(3, 0), update_normalizers=False)
    assert_same_batch(want, got)


def test_cached_results_of_wrapped_ids_are_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An adapter's ClipAction id left the gymnasium path, so its agent id (the cache key)
    changed; a native id's did not."""
    from pgclaims.measure import cache

    clipped, native = external(True, nn.Linear(11, 3)), external(False, nn.Linear(11, 3))
    now = {a.config.env_id: cache.agent_id(a) for a in (clipped, native)}
    monkeypatch.setattr(cache, "supports", lambda env_id: env_id in MUJOCO_ENVS)
    before = {a.config.env_id: cache.agent_id(a) for a in (clipped, native)}
    assert now["Hopper-v5"] == before["Hopper-v5"]
    assert now[clipped.config.env_id] != before[clipped.config.env_id]


# -- the leaner update --------------------------------------------------------------------


def test_minibatch_steps_are_torch_bit_for_bit() -> None:
    """:func:`run`, :func:`backward` and fused Adam through :class:`AdamStep` against module
    calls, ``loss.backward()`` and ``optimizer.step``: from a fresh state (the first step
    initializes it), with the learning rate changed between steps; a non-fused optimizer falls
    back to its own step."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))
    x, y = torch.randn(64, 5), torch.randn(64, 2)
    for fused in (True, False):
        a, b = copy.deepcopy(net), copy.deepcopy(net)
        opt_a = torch.optim.Adam(a.parameters(), lr=1e-3, eps=1e-5, fused=fused)
        opt_b = torch.optim.Adam(b.parameters(), lr=1e-3, eps=1e-5, fused=fused)
        fast = AdamStep(opt_b)
        assert fast.direct == fused
        for i in range(20):
            for group in (*opt_a.param_groups, *opt_b.param_groups):
                group["lr"] = 1e-3 * (1 - i / 20)
            opt_a.zero_grad(set_to_none=True)
            (a(x) - y).pow(2).mean().backward()
            opt_a.step()
            fast.zero_grad()
            backward((run(b, x) - y).pow(2).mean())
            fast.step()
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            sa, sb = opt_a.state[p], opt_b.state[q]
            assert all(torch.equal(sa[k], sb[k]) for k in sa)


# -- training: every tensor of a run equals the gymnasium collector's ---------------------


@pytest.fixture
def gymnasium_training(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Within the fixture's ``with``: training as the fixtures were trained, with ``collect``
    on a gymnasium environment, ``torch.optim``'s step and zero_grad, and module calls."""
    from contextlib import contextmanager

    @contextmanager
    def reference() -> Iterator[None]:
        with monkeypatch.context() as m:
            m.setattr(agent_mod, "training_env", make_env)
            m.setattr(train_mod, "training_env", make_env)
            m.setattr(minibatch_mod.AdamStep, "step", lambda self: self.optimizer.step())
            m.setattr(minibatch_mod.AdamStep, "zero_grad",
                      lambda self: self.optimizer.zero_grad(set_to_none=True))
            m.setattr(minibatch_mod, "_ENGINE", None)  # loss.backward()
            m.setattr(networks_mod, "run", lambda net, x: net(x))
            yield

    yield reference


def run_files(run_dir: Path) -> dict[str, tuple[dict[str, torch.Tensor], dict]]:
    """Every checkpoint's tensors and metadata (curve timings left out), and the curve."""
    out: dict[str, Any] = {}
    for path in sorted(run_dir.glob("*.safetensors")):
        tensors, meta = checkpoint.read(path)
        meta["curve"] = [{k: v for k, v in r.items() if not k.endswith("_s")}
                         for r in meta["curve"]]
        out[path.name] = (tensors, meta)
    return out


def assert_same_run(a: Path, b: Path) -> None:
    fa, fb = run_files(a), run_files(b)
    assert fa.keys() == fb.keys() and fa
    for name, (ta, ma) in fa.items():
        tb, mb = fb[name]
        assert ta.keys() == tb.keys(), name
        differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
        assert not differ, f"{name}: tensors {differ} differ"
        assert ma == mb, f"{name}: metadata differ"


RUNS = {
    "Hopper-v5": ("ppo", "authors", 0, 20),
    "Walker2d-v5": ("trpo", "corrected", 1, 20),
    "Humanoid-v5": ("ppo", "corrected", 2, 20),
}
"""One run of each env (the update rules and both protocols' cut handling among them)."""


@pytest.mark.slow
@pytest.mark.parametrize("env_id", list(RUNS))
def test_training_reproduces_the_gymnasium_collector(
        env_id: str, tmp_path: Path, gymnasium_training: Callable[..., Any]) -> None:
    algo, protocol, seed, iterations = RUNS[env_id]
    config = TrainConfig.create(env_id, algo, seed, iterations, protocol=protocol)
    assert isinstance(training_env(env_id), Collector)
    with gymnasium_training():
        assert not isinstance(train_mod.training_env(env_id), Collector)
        train(config, tmp_path / "gymnasium", progress=False)
    train(config, tmp_path / "direct", progress=False)
    assert_same_run(tmp_path / "gymnasium", tmp_path / "direct")


@pytest.mark.slow
def test_lockstep_training_reproduces_lone_runs(
        tmp_path: Path, gymnasium_training: Callable[..., Any]) -> None:
    """Three Hopper runs (PPO and TRPO, both protocols) trained together, interrupted after 7
    lockstep iterations and resumed, equal each run trained alone on the gymnasium path."""
    configs = [TrainConfig.create("Hopper-v5", *spec, iterations=20, protocol=protocol)
               for spec, protocol in ((("ppo", 0), "authors"), (("trpo", 1), "corrected"),
                                      (("ppo", 3), "corrected"))]
    with gymnasium_training():
        for i, c in enumerate(configs):
            train(c, tmp_path / f"alone{i}", progress=False)
    dirs = [tmp_path / f"together{i}" for i in range(len(configs))]
    agents = train_together(configs, dirs, stop_after=7)
    assert [a.iteration for a in agents] == [7, 7, 7]
    train_together(configs, dirs)
    for i in range(len(configs)):
        assert_same_run(tmp_path / f"alone{i}", dirs[i])


def test_train_set_trains_lockstep_groups(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``train-set``'s groups: per env, at least ``jobs`` of them, at most LOCKSTEP runs; a
    group's fixtures are the ones trained alone, recorded with the group size."""
    many = [TrainConfig.create(e, "ppo", s, 2) for e in MUJOCO_ENVS for s in range(12)]
    groups = fixtures.lockstep_groups(many, jobs=3)
    assert all(len({c.env_id for c in g}) == 1 and len(g) <= LOCKSTEP for g in groups)
    assert len(groups) == 9 and sorted(c.key() for g in groups for c in g) == sorted(
        c.key() for c in many)
    assert len(fixtures.lockstep_groups(many[:2], jobs=4)) == 2
    configs = [TrainConfig.create("Hopper-v5", algo, seed, 1, protocol="corrected")
               for algo, seed in (("ppo", 0), ("trpo", 1))]
    lines: list[str] = []
    monkeypatch.setenv("PGCLAIMS_FIXTURES", str(tmp_path / "together"))
    entries = fixtures.train_set(configs, jobs=1, say=lines.append)
    assert len(lines) == 3 and "1 lockstep group" in lines[0]
    assert [e["lockstep"] for e in entries] == [2, 2]
    for c in configs:
        fixtures.train_fixture(c, tmp_path / "alone", progress=False)
        key = c.key()
        assert_same_run(tmp_path / "alone" / "store" / key, tmp_path / "together" / "store" / key)
        assert not (tmp_path / "together" / "store" / key / "latest.safetensors").exists()

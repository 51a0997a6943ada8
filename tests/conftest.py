"""Shared settings and fixtures of the library tests.

Hypothesis profiles are registered and loaded here explicitly: hypothesis would otherwise load
its built-in ``ci`` profile whenever ``CI`` is set, and CI would then run other examples, with
other deadlines, than a local run. Choose a profile with ``PGCLAIMS_HYPOTHESIS_PROFILE``:

- ``pgclaims`` (default, local and CI): derandomized, no example database, no deadline (the
  numeric kernels share a noisy machine with fixture training, so wall-clock deadlines would
  only measure the neighbours).
- ``explore``: random examples, 10x as many, with the example database, for hunting bugs locally.

The claims suite's plugins and the report's plotting stack are imported here, once, before any
test runs. pytester's in-process runs (test_plugin, test_eta, test_backend,
test_external_agents) restore ``sys.modules`` when they end, dropping every module the inner
session imported first; native extensions among them (contourpy, scipy's pybind11 modules)
cannot be initialised twice in one process, so a later test on the same xdist worker failed
with ``generic_type: type "FillType" is already registered!`` whenever an inner run happened
to be the first to render a figure there. :data:`PRELOADED` lists what is imported;
``tests/test_report.py`` checks that a claims session plus a report render loads no native
module beyond it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from pgclaims.agents.agent import Agent, TrainConfig, advantages, make_agent
from pgclaims.agents.envs import make_env
from pgclaims.agents.rollout import collect
from pgclaims.agents.train import train

PRELOADED = (
    "pgclaims.suite.plugin",
    "pgclaims.report.plugin",
    "matplotlib.backends.backend_agg",  # loaded by the first text layout of a figure
    "contourpy",  # loaded by the first Axes
    "mujoco",  # loaded by the first MuJoCo environment
    "mujoco.batch",  # loaded by the lockstep sampler
)
for _name in PRELOADED:
    importlib.import_module(_name)

settings.register_profile(
    "pgclaims",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    parent=settings.get_profile("pgclaims"),
    derandomize=False,
    database=DirectoryBasedExampleDatabase(Path(__file__).parents[1] / ".hypothesis" / "examples"),
    max_examples=1000,
)
settings.load_profile(os.environ.get("PGCLAIMS_HYPOTHESIS_PROFILE", "pgclaims"))

TINY_ENV = "Hopper-v5"
TINY_STEPS = 256
"""State-action pairs per iteration in the tiny runs: 8 pairs per minibatch at 32 minibatches."""


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    """One torch thread, as :func:`pgclaims.agents.train.train` uses: the machine is shared."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., TrainConfig]:
    """``tiny_config(algo="ppo", seed=0, iterations=2, **overrides)``: Hopper-v5, 256 pairs per
    iteration, otherwise Table 1."""

    def make(algo: str = "ppo", seed: int = 0, iterations: int = 2, **overrides: object
             ) -> TrainConfig:
        overrides.setdefault("steps_per_iteration", TINY_STEPS)
        return TrainConfig.create(TINY_ENV, algo, seed, iterations, **overrides)

    return make


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Agent, Path]]:
    """``trained_runs(algo)``: a finished 2-iteration tiny run (agent, run directory), trained
    once per session. Tests must not modify the directory; copy it first."""
    cache: dict[str, tuple[Agent, Path]] = {}

    def get(algo: str) -> tuple[Agent, Path]:
        if algo not in cache:
            config = TrainConfig.create(TINY_ENV, algo, 0, 2, steps_per_iteration=TINY_STEPS)
            run_dir = tmp_path_factory.mktemp(f"run-{algo}")
            cache[algo] = (train(config, run_dir, progress=False), run_dir)
        return cache[algo]

    return get


@dataclass
class PolicyBatch:
    """A fresh (untrained) agent and one tiny batch it sampled, as the update rules see it."""

    agent: Agent
    obs: torch.Tensor
    actions: torch.Tensor
    logp_old: torch.Tensor
    adv: torch.Tensor
    """Normalized GAE advantages (float32)."""


@pytest.fixture(scope="session")
def policy_batch() -> Callable[..., PolicyBatch]:
    """``policy_batch(algo, **overrides)``: a fresh agent of the tiny config and its first batch.
    The same config always gives the same agent and batch."""

    def make(algo: str, **overrides: object) -> PolicyBatch:
        overrides.setdefault("steps_per_iteration", TINY_STEPS)
        agent = make_agent(TrainConfig.create(TINY_ENV, algo, 0, 2, **overrides))
        hp = agent.hyper
        env = make_env(TINY_ENV)
        try:
            batch = collect(env, agent.policy.numpy_sampler(), agent.obs_norm,
                            agent.reward_scaler, hp.steps_per_iteration, agent.rng,
                            update_normalizers=True)
        finally:
            env.close()
        adv = advantages(agent.value, batch, hp.gamma, hp.gae_lambda, hp.baseline)
        obs, actions = torch.from_numpy(batch.obs), torch.from_numpy(batch.actions)
        with torch.no_grad():
            logp_old = agent.policy.log_prob(obs, actions)
        return PolicyBatch(agent, obs, actions, logp_old, torch.from_numpy(adv.normalized).float())

    return make

"""An agent: networks, optimizers, normalizers and RNG, and one training iteration.

The data flows one way: :func:`pgclaims.agents.rollout.collect` -> :func:`advantages` ->
the algorithm's ``policy_update`` -> :func:`fit_value`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pgclaims.agents import ppo, trpo
from pgclaims.agents.envs import ObsNormalizer, RewardScaler, RunningMeanStd, make_env
from pgclaims.agents.gae import gae, next_values
from pgclaims.agents.networks import GaussianPolicy, ValueNet
from pgclaims.agents.rollout import Batch, collect

TRAINING_VERSION = 1
"""Bump when a change alters what training produces for a given config (the sampler, an update
rule, a normalizer, initialization). It is part of :meth:`TrainConfig.key`, so every committed
fixture trained under the old semantics stops matching and
``pgclaims.agents.fixtures.load`` asks for
a retrain instead of silently measuring a stale agent."""

ALGOS = ("ppo", "trpo")
Hyper = ppo.PPOConfig | trpo.TRPOConfig


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and so a fixture's content key)."""

    env_id: str
    algo: str
    seed: int
    iterations: int
    checkpoints: tuple[int, ...]
    hyper: Hyper

    @classmethod
    def create(
        cls,
        env_id: str,
        algo: str,
        seed: int,
        iterations: int = 500,
        checkpoints: tuple[int, ...] | None = None,
        **overrides: Any,
    ) -> TrainConfig:
        if algo not in ALGOS:
            raise ValueError(f"unknown algorithm {algo!r}: expected one of {', '.join(ALGOS)}")
        make_env(env_id).close()  # an unknown id fails here, before the Table 1 lookup
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        if checkpoints is None:
            checkpoints = paper_checkpoints(iterations)
        bad = [c for c in checkpoints if not 0 <= c <= iterations]
        if bad:
            raise ValueError(f"checkpoints {bad} outside 0..{iterations}")
        hyper_cls = ppo.PPOConfig if algo == "ppo" else trpo.TRPOConfig
        hyper = hyper_cls.for_env(env_id, **overrides)
        return cls(env_id, algo, seed, iterations, tuple(sorted(set(checkpoints))), hyper)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["checkpoints"] = list(self.checkpoints)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        hyper_cls = ppo.PPOConfig if d["algo"] == "ppo" else trpo.TRPOConfig
        return cls(
            env_id=d["env_id"],
            algo=d["algo"],
            seed=int(d["seed"]),
            iterations=int(d["iterations"]),
            checkpoints=tuple(int(c) for c in d["checkpoints"]),
            hyper=hyper_cls(**d["hyper"]),
        )

    def key(self) -> str:
        """Content address: the config and :data:`TRAINING_VERSION`, hashed."""
        payload = json.dumps(
            {"training_version": TRAINING_VERSION, **self.to_dict()}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def paper_checkpoints(iterations: int) -> tuple[int, ...]:
    """0, 0.3T, 0.6T, 0.9T (the paper's 0, 150, 300, 450 of 500) and the final iteration T."""
    return tuple(sorted({0, round(0.3 * iterations), round(0.6 * iterations),
                         round(0.9 * iterations), iterations}))


@dataclass
class Agent:
    config: TrainConfig
    policy: GaussianPolicy
    value: ValueNet
    policy_opt: torch.optim.Adam | None
    value_opt: torch.optim.Adam
    obs_norm: ObsNormalizer
    reward_scaler: RewardScaler
    rng: np.random.Generator
    iteration: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)
    last_batch: Batch | None = None
    """The batch the value net was last fit on (Train pairs of value.train_vs_heldout)."""
    last_targets: np.ndarray | None = None
    """GAE value targets V_old + A of ``last_batch``, in reward-scaled units."""
    prev_value: dict[str, torch.Tensor] | None = None
    """V_old: the value net's parameters before its last fit (the target net of eq. 4)."""

    @property
    def hyper(self) -> Hyper:
        return self.config.hyper


def make_agent(config: TrainConfig) -> Agent:
    """A fresh agent, every random draw derived from ``config.seed``."""
    torch.manual_seed(config.seed)
    env = make_env(config.env_id)
    obs_dim = env.observation_space.shape[0]
    act_dim = env.action_space.shape[0]
    env.close()
    hp = config.hyper
    policy = GaussianPolicy(obs_dim, act_dim)
    value = ValueNet(obs_dim)
    policy_opt = (
        torch.optim.Adam(policy.parameters(), lr=hp.policy_lr, eps=hp.adam_eps, fused=True)
        if isinstance(hp, ppo.PPOConfig)
        else None
    )
    value_opt = torch.optim.Adam(value.parameters(), lr=hp.value_lr, eps=hp.adam_eps, fused=True)
    return Agent(
        config=config,
        policy=policy,
        value=value,
        policy_opt=policy_opt,
        value_opt=value_opt,
        obs_norm=ObsNormalizer(RunningMeanStd.zeros((obs_dim,))),
        reward_scaler=RewardScaler(RunningMeanStd.zeros(()), hp.gamma, hp.reward_normalization),
        rng=np.random.default_rng(config.seed),
    )


@dataclass
class Advantages:
    """Advantages of a batch under a baseline, and the value-net regression targets."""

    raw: np.ndarray
    """Unnormalized advantages (reward-scaled units)."""
    normalized: np.ndarray
    """What the surrogate uses (eq. 14)."""
    values: np.ndarray
    """V_old(s_t) under the agent's value net (0 for the zero baseline)."""
    targets: np.ndarray
    """V_old + A_GAE: the value net's regression target (eq. 4)."""


def normalize(adv: np.ndarray, center: bool) -> np.ndarray:
    """Batch advantage normalization. The zero baseline is scaled, not centered: centering
    would subtract the batch mean, which is itself a (constant) baseline."""
    if center:
        adv = adv - adv.mean()
    return adv / (adv.std() + 1e-8)


def advantages(
    value: ValueNet, batch: Batch, gamma: float, lam: float, baseline: str = "valuenet"
) -> Advantages:
    """GAE advantages of ``batch`` under the value net, or returns under the zero baseline."""
    with torch.no_grad():
        values = value(torch.from_numpy(batch.obs)).double().numpy()
        final_values = value(torch.from_numpy(batch.final_obs)).double().numpy()
    nxt = next_values(values, final_values, batch.terminated, batch.truncated)
    adv = gae(batch.rewards, values, nxt, batch.ends, gamma, lam)
    targets = values + adv
    if baseline == "valuenet":
        return Advantages(adv, normalize(adv, center=True), values, targets)
    if baseline == "zero":
        zeros = np.zeros_like(values)
        nxt0 = next_values(zeros, np.zeros_like(final_values), batch.terminated, batch.truncated)
        returns = gae(batch.rewards, zeros, nxt0, batch.ends, gamma, 1.0)
        return Advantages(returns, normalize(returns, center=False), zeros, targets)
    raise ValueError(f"unknown baseline {baseline!r}: expected 'valuenet' or 'zero'")


def fit_value(
    value: ValueNet,
    optimizer: torch.optim.Optimizer,
    obs: torch.Tensor,
    targets: torch.Tensor,
    epochs: int,
    minibatches: int,
    rng: np.random.Generator,
) -> float:
    """Minibatch Adam on the squared error to the targets (eq. 4); returns the final-epoch loss."""
    n = len(obs)
    size = n // minibatches
    loss_sum = 0.0
    for _ in range(epochs):
        perm = torch.from_numpy(rng.permutation(n))
        loss_sum = 0.0
        for start in range(0, size * minibatches, size):
            idx = perm[start : start + size]
            loss = (value(obs[idx]) - targets[idx]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
    return loss_sum / minibatches


def iterate(agent: Agent, env: Any) -> dict[str, float]:
    """One training iteration: collect, advantages, policy step, value fit.

    Returns the curve row of the policy *before* the update (``iteration`` = its index), whose
    batch the row's episode statistics describe."""
    hp = agent.hyper
    it = agent.iteration
    t0 = time.perf_counter()
    batch = collect(
        env, agent.policy.numpy_sampler(), agent.obs_norm, agent.reward_scaler,
        hp.steps_per_iteration, agent.rng, update_normalizers=True,
    )
    t_sample = time.perf_counter() - t0
    adv = advantages(agent.value, batch, hp.gamma, hp.gae_lambda, hp.baseline)
    obs = torch.from_numpy(batch.obs)
    actions = torch.from_numpy(batch.actions)
    adv_t = torch.from_numpy(adv.normalized).float()
    with torch.no_grad():
        logp_old = agent.policy.log_prob(obs, actions)
    if isinstance(hp, ppo.PPOConfig):
        assert agent.policy_opt is not None
        info = ppo.policy_update(
            agent.policy, agent.policy_opt, obs, actions, logp_old, adv_t, hp, agent.rng
        )
    else:
        info = trpo.policy_update(agent.policy, obs, actions, logp_old, adv_t, hp, agent.rng)
    value_loss = float("nan")
    agent.prev_value = {k: v.detach().clone() for k, v in agent.value.state_dict().items()}
    if hp.baseline == "valuenet":
        value_loss = fit_value(
            agent.value, agent.value_opt, obs, torch.from_numpy(adv.targets).float(),
            hp.value_epochs, hp.minibatches, agent.rng,
        )
    agent.last_batch, agent.last_targets = batch, adv.targets
    agent.iteration += 1
    returns = batch.episode_returns
    row = {
        "iteration": it,
        "mean_return": float(returns.mean()) if len(returns) else float("nan"),
        "episodes": int(len(returns)),
        "trajectories": batch.n_trajectories,
        "kl": float(info["kl"]),
        "surrogate": float(info["surrogate"]),
        "value_loss": value_loss,
        "log_std": float(agent.policy.log_std.detach().mean()),
        "sample_s": t_sample,
        "total_s": time.perf_counter() - t0,
    }
    agent.curve.append(row)
    return row

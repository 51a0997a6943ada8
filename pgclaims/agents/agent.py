"""An agent: networks, optimizers, normalizers and RNG, and one training iteration.

The data flows one way: :func:`sample` (the lockstep collector, or
:func:`pgclaims.agents.rollout.collect` for an environment not stepped directly) ->
:func:`advantages` -> the algorithm's ``policy_update`` -> :func:`fit_value`.
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
from pgclaims.agents.advantages import (  # noqa: F401 - re-exported: callers import them here
    Advantages,
    advantages,
    normalize,
    policy_advantages,
    time_limit_cuts,
    treated_terminal,
)
from pgclaims.agents.collector import Collector, Stream
from pgclaims.agents.envs import ObsNormalizer, RewardScaler, RunningMeanStd, make_env
from pgclaims.agents.hyper import SEED_MAX
from pgclaims.agents.minibatch import AdamStep, backward
from pgclaims.agents.networks import GaussianPolicy, ValueNet
from pgclaims.agents.protocol import get_protocol
from pgclaims.agents.rollout import Batch, collect
from pgclaims.agents.sims import supports

TRAINING_VERSION = 1
"""Bump when a change alters what training produces for a given config (the sampler, an update
rule, a normalizer, initialization). It is part of :meth:`TrainConfig.key`, so every committed
fixture trained under the old semantics stops matching and
``pgclaims.agents.fixtures.load`` asks for
a retrain instead of silently measuring a stale agent."""

ALGOS = ("ppo", "trpo")
LEGACY_CHOICES: dict[str, Any] = {
    "init": "orthogonal", "anneal_lr": False, "value_clip": None, "adv_norm": "batch",
    "time_limit": "bootstrap", "batch_end": "bootstrap", "value_loss_ends": True,
    "accept_ratio": 0.0,
}
"""Code-level choice fields at the values the first (``table1``) fixtures were trained with."""
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
    protocol: str = "table1"
    """The training protocol whose code-level choices ``hyper`` carries
    (:mod:`pgclaims.agents.protocol`)."""

    @classmethod
    def create(
        cls,
        env_id: str,
        algo: str,
        seed: int,
        iterations: int = 500,
        checkpoints: tuple[int, ...] | None = None,
        protocol: str = "table1",
        **overrides: Any,
    ) -> TrainConfig:
        if algo not in ALGOS:
            raise ValueError(f"unknown algorithm {algo!r}: expected one of {', '.join(ALGOS)}")
        make_env(env_id).close()  # an unknown id fails here, before the Table 1 lookup
        if not 0 <= seed <= SEED_MAX:
            raise ValueError(f"seed must be an integer in 0..{SEED_MAX}, got {seed}")
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        if checkpoints is None:
            checkpoints = paper_checkpoints(iterations)
        bad = [c for c in checkpoints if not 0 <= c <= iterations]
        if bad:
            raise ValueError(f"checkpoints {bad} outside 0..{iterations}")
        hyper_cls = ppo.PPOConfig if algo == "ppo" else trpo.TRPOConfig
        choices = get_protocol(protocol).training_choices(algo, env_id)
        hyper = hyper_cls.for_env(env_id, **{**choices, **overrides})
        return cls(env_id, algo, seed, iterations, tuple(sorted(set(checkpoints))), hyper,
                   protocol)

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
            protocol=str(d.get("protocol", "table1")),
        )

    def key(self) -> str:
        """Content address: the config and :data:`TRAINING_VERSION`, hashed.

        Fields added after the first fixtures (the protocol and the code-level choices) are
        hashed only where they differ from the value that reproduces those fixtures, so the
        ``table1`` fixtures keep their keys."""
        d = self.to_dict()
        if d["protocol"] == "table1":
            del d["protocol"]
        d["hyper"] = {k: v for k, v in d["hyper"].items()
                      if not (k in LEGACY_CHOICES and v == LEGACY_CHOICES[k])}
        payload = json.dumps({"training_version": TRAINING_VERSION, **d}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def paper_checkpoints(iterations: int) -> tuple[int, ...]:
    """0, 0.3T, 0.6T, 0.9T (the paper's 0, 150, 300, 450 of 500) and the final iteration T."""
    return tuple(sorted({0, round(0.3 * iterations), round(0.6 * iterations),
                         round(0.9 * iterations), iterations}))


@dataclass
class FitRecord:
    """What the value net was last fit on, as the value measurements need it: not the
    observations (Humanoid's are 2.8 MB a batch) but the fitted net's values on them."""

    values: np.ndarray
    """V(s_t) of the value net after the fit (reward-scaled units)."""
    targets: np.ndarray
    """The fit's GAE targets V_old + A."""
    rewards: np.ndarray
    raw_rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    cut_states: np.ndarray | None = None
    """MuJoCo qpos and qvel after each truncated row (see :class:`Batch`)."""

    FIELDS = ("values", "targets", "rewards", "raw_rewards", "terminated", "truncated")

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def ends(self) -> np.ndarray:
        return self.terminated | self.truncated

    @classmethod
    def of(cls, value: ValueNet, batch: Batch, targets: np.ndarray) -> FitRecord:
        with torch.no_grad():
            values = value(torch.from_numpy(batch.obs)).double().numpy()
        return cls(values, np.asarray(targets, np.float64), batch.rewards, batch.raw_rewards,
                   batch.terminated, batch.truncated, batch.cut_states)


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
    last_fit: FitRecord | None = None
    """The batch the value net was last fit on (Train pairs of value.train_vs_heldout)."""
    prev_value: dict[str, torch.Tensor] | None = None
    """V_old: the value net's parameters before its last fit (the target net of eq. 4)."""
    prev_policy: dict[str, torch.Tensor] | None = None
    """The policy before its last update: the one that collected ``last_fit``'s batch."""
    max_episode_steps: int | None = None
    """The environment's time limit (steps), to tell a time-limit cut from the batch end."""

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
    max_steps = env.spec.max_episode_steps if env.spec is not None else None
    policy = GaussianPolicy(obs_dim, act_dim, init=hp.init)
    value = ValueNet(obs_dim, init=hp.init)
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
        max_episode_steps=max_steps,
    )


def agent_advantages(agent: Agent, batch: Batch, value: ValueNet | None = None,
                     baseline: str | None = None) -> Advantages:
    """:func:`advantages` exactly as ``agent``'s training computes them (its protocol's cut
    handling), under ``value`` (default: its value net) and ``baseline`` (default: its own)."""
    hp = agent.hyper
    return advantages(value if value is not None else agent.value, batch, hp.gamma,
                      hp.gae_lambda, baseline or hp.baseline, time_limit=hp.time_limit,
                      batch_end=hp.batch_end, max_episode_steps=agent.max_episode_steps)


def lr_factor(hyper: Hyper, iteration: int, iterations: int) -> float:
    """The LR multiplier at ``iteration`` (0-based) of ``iterations``: 1 - i/T when annealed
    (the authors' LambdaLR, stepped after each iteration: the last gets 1/T, T gets 0)."""
    if not getattr(hyper, "anneal_lr", False):
        return 1.0
    return max(0.0, 1.0 - iteration / iterations)


def set_lrs(agent: Agent, iteration: int) -> None:
    """Set both optimizers' LRs for ``iteration`` (a no-op without annealing)."""
    hp = agent.hyper
    f = lr_factor(hp, iteration, agent.config.iterations)
    if agent.policy_opt is not None:
        for group in agent.policy_opt.param_groups:
            group["lr"] = hp.policy_lr * f
    for group in agent.value_opt.param_groups:
        group["lr"] = hp.value_lr * f


def fit_value(
    value: ValueNet,
    optimizer: torch.optim.Optimizer,
    obs: torch.Tensor,
    targets: torch.Tensor,
    epochs: int,
    minibatches: int,
    rng: np.random.Generator,
    *,
    old_values: torch.Tensor | None = None,
    clip: float | None = None,
    mask: torch.Tensor | None = None,
) -> float:
    """Minibatch Adam on the squared error to the targets (eq. 4); returns the final-epoch loss.

    ``clip``: the error is max((V - y)^2, (V_old + clip(V - V_old, +-clip) - y)^2), V_old the
    values at collection (``old_values``). ``mask``: only these rows count in each minibatch's
    mean (a minibatch with none is skipped)."""
    n = len(obs)
    size = n // minibatches
    loss_sum = 0.0
    adam = AdamStep(optimizer)
    for _ in range(epochs):
        perm = torch.from_numpy(rng.permutation(n))
        loss_sum = 0.0
        for start in range(0, size * minibatches, size):
            idx = perm[start : start + size]
            v = value(obs[idx])
            err = (v - targets[idx]).pow(2)
            if clip is not None:
                assert old_values is not None
                v_old = old_values[idx]
                clipped = v_old + (v - v_old).clamp(-clip, clip)
                err = torch.max(err, (clipped - targets[idx]).pow(2))
            if mask is None:
                loss = err.mean()
            else:
                m = mask[idx]
                if not bool(m.any()):
                    continue
                loss = err[m].mean()
            adam.zero_grad()
            backward(loss)
            adam.step()
            loss_sum += loss.item()
    return loss_sum / minibatches


def training_env(env_id: str) -> Collector | Any:
    """What training collects from: the direct MuJoCo collector for an id it steps
    (:func:`pgclaims.agents.sims.supports`; row by row, so every batch is the gymnasium
    collector's bit for bit), else the gymnasium environment. Close it after use."""
    if supports(env_id):
        return Collector(env_id, nsim=1, forward="rowwise")
    return make_env(env_id)


def training_stream(agent: Agent) -> Stream:
    """The agent's next training batch as a collector stream (normalizers updated)."""
    return Stream(agent.hyper.steps_per_iteration, agent.rng, agent.policy.numpy_sampler(),
                  agent.obs_norm, agent.reward_scaler, update=True)


def sample(agent: Agent, env: Any) -> Batch:
    """The agent's next training batch from ``env`` (see :func:`training_env`)."""
    if isinstance(env, Collector):
        return env.collect([training_stream(agent)])[0]
    return collect(
        env, agent.policy.numpy_sampler(), agent.obs_norm, agent.reward_scaler,
        agent.hyper.steps_per_iteration, agent.rng, update_normalizers=True,
    )


def iterate(agent: Agent, env: Any) -> dict[str, float]:
    """One training iteration: collect, advantages, policy step, value fit.

    Returns the curve row of the policy *before* the update (``iteration`` = its index), whose
    batch the row's episode statistics describe."""
    t0 = time.perf_counter()
    batch = sample(agent, env)
    return learn(agent, batch, time.perf_counter() - t0, t0)


def learn(agent: Agent, batch: Batch, sample_s: float, t0: float) -> dict[str, float]:
    """The rest of :func:`iterate` once ``batch`` is collected (``sample_s`` seconds, the
    iteration started at ``perf_counter() == t0``): advantages, policy step, value fit."""
    hp = agent.hyper
    it = agent.iteration
    adv = agent_advantages(agent, batch)
    set_lrs(agent, it)
    obs = torch.from_numpy(batch.obs)
    actions = torch.from_numpy(batch.actions)
    adv_t, center = policy_advantages(hp, adv)
    with torch.no_grad():
        logp_old = agent.policy.log_prob(obs, actions)
    agent.prev_policy = {k: v.detach().clone() for k, v in agent.policy.state_dict().items()}
    if isinstance(hp, ppo.PPOConfig):
        assert agent.policy_opt is not None
        info = ppo.policy_update(agent.policy, agent.policy_opt, obs, actions, logp_old, adv_t,
                                 hp, agent.rng, center=center)
    else:
        info = trpo.policy_update(agent.policy, obs, actions, logp_old, adv_t, hp, agent.rng)
    value_loss = float("nan")
    agent.prev_value = {k: v.detach().clone() for k, v in agent.value.state_dict().items()}
    if hp.baseline == "valuenet":
        mask = None
        if not hp.value_loss_ends:
            mask = torch.from_numpy(
                ~treated_terminal(batch, hp.time_limit, agent.max_episode_steps))
        value_loss = fit_value(
            agent.value, agent.value_opt, obs, torch.from_numpy(adv.targets).float(),
            hp.value_epochs, hp.minibatches, agent.rng,
            old_values=torch.from_numpy(adv.values).float(),
            clip=getattr(hp, "value_clip", None), mask=mask,
        )
    agent.last_fit = FitRecord.of(agent.value, batch, adv.targets)
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
        "lr_factor": lr_factor(hp, it, agent.config.iterations),
        "sample_s": sample_s,
        "total_s": time.perf_counter() - t0,
    }
    agent.curve.append(row)
    return row

"""What any PyTorch agent must provide to be measured, and the pgclaims Agent built from it.

An :class:`ExternalAgent` is plain data: the Gaussian policy's mean (any torch module of the
*normalized* observation) and its state-independent log-std, the value function (same input),
the frozen observation normalization, the reward scale the value function was trained in, how
actions reach the environment, gamma and lambda; optionally the update settings and optimizer
state (for the step and landscape claims) and the last batch with V_old (for the value claims).
:func:`to_pgclaims_agent` turns it into an :class:`~pgclaims.agents.agent.Agent` whose policy,
value and normalizers reproduce the external ones to float rounding, so every measurement in
:mod:`pgclaims.measure` runs on it unchanged.

Normalization convention (SB3 ``VecNormalize``, gymnasium ``NormalizeObservation`` /
``NormalizeReward``, CleanRL): ``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)`` and
``clip(reward / sqrt(return_var + epsilon), -clip, clip)``. pgclaims divides by ``std + 1e-8``
with ``std = sqrt(m2 / (count - 1))``; the statistics are encoded so that the two denominators
agree (a relative difference of one float64 rounding).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from pgclaims.adapters.envs import check_env_id, clipped_env_id, max_episode_steps
from pgclaims.adapters.modules import AdapterError, ExternalPolicy, ExternalValue, same_function
from pgclaims.agents import ppo, trpo
from pgclaims.agents.agent import Agent, FitRecord, TrainConfig, agent_advantages
from pgclaims.agents.envs import ObsNormalizer, RewardScaler, RunningMeanStd, make_env
from pgclaims.agents.networks import ValueNet
from pgclaims.agents.protocol import get_protocol
from pgclaims.agents.rollout import Batch

PGCLAIMS_EPS = 1e-8
"""The constant pgclaims adds to a standard deviation (:mod:`pgclaims.agents.envs`)."""


@dataclass(frozen=True)
class ObsNorm:
    """Frozen observation normalization: ``clip((obs - mean) / sqrt(var + epsilon), +-clip)``."""

    mean: np.ndarray
    var: np.ndarray
    epsilon: float = 1e-8
    clip: float = 10.0
    count: float = 2.0
    """Observations the statistics were computed from (provenance only)."""


@dataclass(frozen=True)
class RewardNorm:
    """The reward scale the value function was fit in: ``clip(r / sqrt(var + epsilon), +-clip)``
    (``var`` of the discounted return, no centering, as SB3 and gymnasium scale rewards)."""

    var: float
    epsilon: float = 1e-8
    clip: float = 10.0
    count: float = 2.0


@dataclass(frozen=True)
class ExternalAgent:
    """Everything pgclaims needs from a PyTorch actor-critic with a diagonal Gaussian policy."""

    mean: nn.Module
    """Normalized observations (n, obs_dim) -> action means (n, act_dim); any architecture."""
    log_std: torch.Tensor
    """(act_dim,) state-independent log standard deviation (a (1, act_dim) tensor is fine)."""
    value: nn.Module
    """Normalized observations (n, obs_dim) -> V(s) as (n,) or (n, 1), in the reward units of
    ``reward_norm``."""
    gamma: float
    gae_lambda: float
    obs_norm: ObsNorm | None = None
    """None: the networks see raw observations (no normalization, no clipping)."""
    reward_norm: RewardNorm | None = None
    """None: the value function was fit on raw rewards."""
    clip_actions: bool = True
    """True: the environment receives the sample clipped to the action bounds while the
    update uses the unclipped sample (SB3, CleanRL); False: the sample as it is."""
    algo: str = "ppo"
    """Which update the step claims replay: "ppo" or "trpo"."""
    update: dict[str, Any] = field(default_factory=dict)
    """:class:`~pgclaims.agents.ppo.PPOConfig` / :class:`~pgclaims.agents.trpo.TRPOConfig`
    fields (policy_lr, value_lr, epochs, minibatches, clip_eps, adv_norm, time_limit, ...);
    without ``policy_lr`` (PPO) there is no policy optimizer and the step claims refuse."""
    policy_opt_state: dict[str, Any] | None = None
    """A torch.optim.Adam state_dict over the policy's parameters in pgclaims' order:
    log_std, then the mean's parameters (``ExternalPolicy.parameters()``)."""
    value_opt_state: dict[str, Any] | None = None
    iteration: int = 0
    """Policy updates made so far (provenance, and the LR factor of annealed updates)."""
    seed: int = 0
    last_batch: Batch | None = None
    """The batch the value function was last fit on, normalized obs (value claims' Train)."""
    prev_value: dict[str, torch.Tensor] | None = None
    """V_old: ``value``'s state_dict before that fit."""
    source: str = "external"
    """Where the agent came from, for messages (e.g. "sb3:model.zip")."""


def frozen_stats(mean: np.ndarray, var: np.ndarray, epsilon: float,
                 count: float) -> RunningMeanStd:
    """pgclaims statistics whose ``std + 1e-8`` equals ``sqrt(var + epsilon)``."""
    denom = np.sqrt(np.asarray(var, np.float64) + epsilon)
    std = denom - PGCLAIMS_EPS
    if np.any(~np.isfinite(std)) or np.any(std <= 0):
        raise AdapterError("normalization variance + epsilon must be finite and > 1e-16")
    n = max(int(round(count)), 2)
    return RunningMeanStd(np.array(mean, np.float64, copy=True), std**2 * (n - 1), n)


def _hyper(spec: ExternalAgent) -> ppo.PPOConfig | trpo.TRPOConfig:
    base = {"gamma": spec.gamma, "gae_lambda": spec.gae_lambda,
            "reward_normalization": spec.reward_norm is not None}
    up = dict(spec.update)
    if spec.algo == "ppo":
        base.update(policy_lr=float("nan"), value_lr=float("nan"))
        return ppo.PPOConfig(**{**base, **up})
    if spec.algo == "trpo":
        base.update(max_kl=float("nan"), value_lr=float("nan"))
        return trpo.TRPOConfig(**{**base, **up})
    raise AdapterError(f"algo must be 'ppo' or 'trpo', got {spec.algo!r}")


def _adam(params: list[nn.Parameter], lr: float, eps: float,
          state: dict[str, Any] | None) -> torch.optim.Adam:
    opt = torch.optim.Adam(params, lr=lr if np.isfinite(lr) else 0.0, eps=eps)
    if state is not None:
        groups = state["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(params):
            raise AdapterError(f"optimizer state has {sum(len(g['params']) for g in groups)} "
                               f"parameters in {len(groups)} groups, the net {len(params)}")
        group = {**opt.state_dict()["param_groups"][0],
                 **{k: groups[0][k] for k in ("betas", "eps", "weight_decay", "amsgrad")
                    if k in groups[0]}}
        opt.load_state_dict({"state": state["state"], "param_groups": [group]})
    return opt


def _check_shapes(policy: ExternalPolicy, value: ExternalValue, obs_dim: int, act_dim: int,
                  env_id: str) -> None:
    x = torch.zeros(2, obs_dim)
    try:
        with torch.no_grad():
            mu, v = policy.mean(x), value(x)
    except RuntimeError as exc:
        raise AdapterError(f"the nets do not take {env_id}'s {obs_dim}-dim observations "
                           f"({exc})") from exc
    if tuple(mu.shape) != (2, act_dim) or policy.log_std.shape != (act_dim,):
        raise AdapterError(f"{env_id} has {act_dim}-dim actions; the policy gives means of shape "
                           f"{tuple(mu.shape[1:])} and log_std {tuple(policy.log_std.shape)}")
    if tuple(v.shape) != (2,):
        raise AdapterError(f"the value function must return one value per state, got shape "
                           f"{tuple(v.shape)} for 2 states")


def to_pgclaims_agent(spec: ExternalAgent, env_id: str, protocol: str = "corrected") -> Agent:
    """A pgclaims Agent computing exactly what ``spec`` computes, on ``env_id``.

    ``protocol`` sets the measurement definitions (:mod:`pgclaims.agents.protocol`); the
    default ``corrected`` bootstraps time-limit cuts like SB3. The config's env id is
    ``pgclaims_clip/<env_id>`` when ``spec.clip_actions`` (:mod:`pgclaims.adapters.envs`)."""
    get_protocol(protocol)
    check_env_id(env_id)
    env = make_env(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    policy = ExternalPolicy(copy.deepcopy(spec.mean).float(), spec.log_std)
    value = ExternalValue(copy.deepcopy(spec.value).float())
    _check_shapes(policy, value, obs_dim, act_dim, env_id)
    hp = _hyper(spec)
    run_id = clipped_env_id(env_id) if spec.clip_actions else env_id
    config = TrainConfig(run_id, spec.algo, spec.seed, max(spec.iteration, 1),
                         (spec.iteration,), hp, protocol)
    if spec.obs_norm is not None:
        on = spec.obs_norm
        if np.shape(on.mean) != (obs_dim,) or np.shape(on.var) != (obs_dim,):
            raise AdapterError(f"observation statistics of shape {np.shape(on.mean)} / "
                               f"{np.shape(on.var)}, {env_id} observations are ({obs_dim},)")
        obs_norm = ObsNormalizer(frozen_stats(on.mean, on.var, on.epsilon, on.count), on.clip)
    else:
        obs_norm = ObsNormalizer(RunningMeanStd.zeros((obs_dim,)), float("inf"))
    if spec.reward_norm is not None:
        rn = spec.reward_norm
        stats = frozen_stats(np.zeros(()), np.asarray(float(rn.var)), rn.epsilon, rn.count)
        reward_scaler = RewardScaler(stats, spec.gamma, True, rn.clip)
    else:
        reward_scaler = RewardScaler(RunningMeanStd.zeros(()), spec.gamma, False, float("inf"))
    policy_lr = getattr(hp, "policy_lr", float("nan"))
    policy_opt = (_adam(list(policy.parameters()), policy_lr, hp.adam_eps, spec.policy_opt_state)
                  if spec.algo == "ppo" and np.isfinite(policy_lr) else None)
    value_opt = _adam(list(value.parameters()), hp.value_lr, hp.adam_eps, spec.value_opt_state)
    agent = Agent(config=config, policy=policy, value=value, policy_opt=policy_opt,
                  value_opt=value_opt, obs_norm=obs_norm, reward_scaler=reward_scaler,
                  rng=np.random.default_rng(spec.seed), iteration=spec.iteration,
                  max_episode_steps=max_episode_steps(env_id))
    _attach_last_fit(agent, spec, obs_dim)
    return agent


def _attach_last_fit(agent: Agent, spec: ExternalAgent, obs_dim: int) -> None:
    """The value claims' Train pairs: the last batch's targets under V_old, and V_old itself
    where :func:`pgclaims.measure.value.value_error` can rebuild it (see its ``ValueNet``)."""
    if spec.prev_value is None and spec.last_batch is None:
        return
    v_old = agent.value
    if spec.prev_value is not None:
        v_old = copy.deepcopy(agent.value)
        v_old.net.load_state_dict(spec.prev_value)
        native = ValueNet(obs_dim)
        try:
            native.net.load_state_dict(spec.prev_value)
            compatible = same_function(native, v_old, obs_dim)
        except RuntimeError:
            compatible = False
        if compatible:
            agent.prev_value = {f"net.{k}": v.detach().clone()
                                for k, v in spec.prev_value.items()}
        else:
            warnings.warn(
                f"{spec.source}: V_old is not a [64, 64] tanh net, which the value error "
                "rebuilds as pgclaims.agents.networks.ValueNet; it is used for the Train "
                "targets only (held-out GAE targets use the current net)", stacklevel=3)
    if spec.last_batch is not None:
        targets = agent_advantages(agent, spec.last_batch, value=v_old,
                                   baseline="valuenet").targets
        agent.last_fit = FitRecord.of(agent.value, spec.last_batch, targets)

"""CleanRL ``ppo_continuous_action`` models (``.cleanrl_model`` state dicts) plus their stats.

The state dict (``torch.save(agent.state_dict(), path)``) holds ``actor_mean.*`` (an MLP),
``actor_logstd`` of shape (1, act_dim) and ``critic.*``; it is read with
``torch.load(weights_only=True)``. CleanRL does not save the running statistics of its
``NormalizeObservation`` / ``NormalizeReward`` wrappers (CleanRL issues #310, #425, #532), and
without them the policy sees different inputs than it was trained on, so :func:`load` refuses
to guess: pass the file written by :func:`save_stats` (or any ``.npz`` in that format):

====================  =====================================================================
``obs_mean``          (obs_dim,) NormalizeObservation ``obs_rms.mean``
``obs_var``           (obs_dim,) ``obs_rms.var``
``obs_count``         scalar, ``obs_rms.count`` (optional)
``obs_epsilon``       scalar, default 1e-8 (the wrapper's ``epsilon``)
``obs_clip``          scalar, default 10 (CleanRL's TransformObservation clip)
``return_var``        scalar, NormalizeReward ``return_rms.var`` (optional: without it the
                      value function is taken to be in raw-reward units)
``reward_epsilon``    scalar, default 1e-8
``reward_clip``       scalar, default 10 (CleanRL's TransformReward clip)
====================  =====================================================================

Update settings default to the script's defaults (lr 3e-4, 2048 steps, 32 minibatches, 10
epochs, clip 0.2, value clipping on, advantages normalized per minibatch; time-limit
truncations are treated as terminal: ``next_done = terminations | truncations``); override
any PPOConfig field with ``update=``. The hidden activation cannot be read from a state dict:
the script's is tanh (``activation=`` otherwise).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from pgclaims.adapters.interface import ExternalAgent, ObsNorm, RewardNorm
from pgclaims.adapters.modules import AdapterError, activation, mlp

DEFAULTS: dict[str, Any] = {
    "policy_lr": 3e-4, "value_lr": 3e-4, "steps_per_iteration": 2048, "minibatches": 32,
    "epochs": 10, "value_epochs": 10, "clip_eps": 0.2, "value_clip": 0.2, "entropy_coef": 0.0,
    "adv_norm": "minibatch", "time_limit": "terminal", "batch_end": "bootstrap",
    "value_loss_ends": True, "adam_eps": 1e-5,
}
"""ppo_continuous_action.py's defaults, as PPOConfig fields."""

HOW_TO_SAVE = """\
CleanRL does not save its observation-normalization statistics (issues #310, #425, #532), and
the policy cannot be measured without the inputs it was trained on. At the end of training, add:

    from pgclaims.adapters.cleanrl import save_stats
    save_stats(envs.envs[0], "run.stats.npz")   # the first sub-environment's wrappers

then pass stats="run.stats.npz" (CLI: --stats run.stats.npz)."""


def _find(env: Any, name: str) -> Any:
    while env is not None:
        if type(env).__name__ == name:
            return env
        env = getattr(env, "env", None)
    return None


def save_stats(env: Any, path: str | os.PathLike[str], obs_clip: float = 10.0,
               reward_clip: float = 10.0) -> None:
    """Write the statistics of ``env``'s NormalizeObservation (and NormalizeReward) wrappers
    in :func:`load`'s format. ``env`` is one sub-environment (``envs.envs[0]``): each
    sub-environment of a CleanRL vector env keeps its own statistics."""
    norm = _find(env, "NormalizeObservation")
    if norm is None:
        raise AdapterError("no NormalizeObservation wrapper in this environment's stack")
    rms = norm.obs_rms
    out = {"obs_mean": rms.mean, "obs_var": rms.var, "obs_count": np.asarray(rms.count),
           "obs_epsilon": np.asarray(getattr(norm, "epsilon", 1e-8)),
           "obs_clip": np.asarray(obs_clip)}
    rew = _find(env, "NormalizeReward")
    if rew is not None:
        out.update(return_var=np.asarray(rew.return_rms.var).reshape(()),
                   reward_epsilon=np.asarray(getattr(rew, "epsilon", 1e-8)),
                   reward_clip=np.asarray(reward_clip))
    np.savez(path, **out)


def read_stats(path: str | os.PathLike[str]) -> tuple[ObsNorm, RewardNorm | None]:
    """The statistics file of the module docstring (``np.load(allow_pickle=False)``)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            d = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{path}: not a readable .npz statistics file ({exc})") from exc
    missing = {"obs_mean", "obs_var"} - d.keys()
    if missing:
        raise AdapterError(f"{path}: missing {', '.join(sorted(missing))} (format: "
                           "pgclaims.adapters.cleanrl docstring)")

    def scalar(k: str, default: float) -> float:
        return float(np.asarray(d[k]).reshape(())) if k in d else default

    obs = ObsNorm(np.asarray(d["obs_mean"], np.float64).reshape(-1),
                  np.asarray(d["obs_var"], np.float64).reshape(-1), scalar("obs_epsilon", 1e-8),
                  scalar("obs_clip", 10.0), scalar("obs_count", 2.0))
    rew = None
    if "return_var" in d:
        rew = RewardNorm(scalar("return_var", 1.0), scalar("reward_epsilon", 1e-8),
                         scalar("reward_clip", 10.0))
    return obs, rew


def _seq(sd: dict[str, torch.Tensor], prefix: str, act: type[nn.Module]) -> nn.Sequential:
    idx = sorted(int(k[len(prefix):].split(".")[0]) for k in sd
                 if k.startswith(prefix) and k.endswith(".weight"))
    if not idx or idx != list(range(0, 2 * len(idx), 2)):
        raise AdapterError(f"{prefix}*: expected Linear layers at 0, 2, 4, ..., found {idx}")
    ws = [sd[f"{prefix}{i}.weight"] for i in idx]
    net = mlp([ws[0].shape[1]] + [w.shape[0] for w in ws], act)
    net.load_state_dict({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)})
    return net


def load(path: str | os.PathLike[str], env_id: str, *,
         stats: str | os.PathLike[str] | None = None, activation_name: str = "tanh",
         gamma: float = 0.99, gae_lambda: float = 0.95, update: dict[str, Any] | None = None,
         iteration: int = 0) -> ExternalAgent:
    """The :class:`ExternalAgent` of a CleanRL ppo_continuous_action state dict."""
    if stats is None:
        raise AdapterError(f"{path}: no observation statistics given.\n{HOW_TO_SAVE}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise AdapterError(f"{path}: not a plain torch state dict ({exc})") from exc
    if not isinstance(sd, dict) or "actor_logstd" not in sd or not any(
            k.startswith("actor_mean.") for k in sd) or not any(k.startswith("critic.")
                                                                for k in sd):
        raise AdapterError(f"{path}: not a ppo_continuous_action Agent state dict (needs "
                           "actor_mean.*, actor_logstd and critic.*)")
    act = activation(activation_name)
    obs_norm, reward_norm = read_stats(stats)
    return ExternalAgent(
        mean=_seq(sd, "actor_mean.", act), log_std=sd["actor_logstd"].reshape(-1),
        value=_seq(sd, "critic.", act), gamma=gamma, gae_lambda=gae_lambda, obs_norm=obs_norm,
        reward_norm=reward_norm, clip_actions=True, algo="ppo",
        update={**DEFAULTS, **(update or {})}, iteration=iteration, source=f"cleanrl:{path}")

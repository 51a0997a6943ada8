"""Stable-Baselines3 PPO and sb3-contrib TRPO ``MlpPolicy`` zips, read without unpickling.

An SB3 zip holds ``data`` (JSON; a field whose value JSON cannot express is a base64 pickle
under ``":serialized:"``, usually with plain-JSON companions beside it), ``policy.pth`` and
``policy.optimizer.pth`` (torch state dicts). This module reads only the plain JSON fields and
the state dicts through ``torch.load(weights_only=True)``; no ``":serialized:"`` blob is ever
decoded. Where a value exists only pickled (a learning-rate or clip-range schedule that is not
constant, in SB3 < 2.3 any schedule) the caller passes it (``learning_rate=``,
``clip_range=``) or the loader says which one is missing.

The architecture comes from the state dict (layer sizes) and the plain ``policy_kwargs``
(``net_arch``, ``activation_fn``); VecNormalize statistics from its ``.pkl`` through
:mod:`pgclaims.adapters.safepickle`. Refused by name: gSDE, squashed outputs, non-MLP or shared
feature extractors and shared layers, image and dict observations, non-Box actions, other
algorithms.

Not representable, and so approximate in the step claims only (gradients, values and returns
are exact): SB3 steps one Adam on policy and value jointly (``vf_coef``) with global gradient
clipping (``max_grad_norm``); pgclaims replays the policy part with the same Adam state and
no clipping. A rollout of ``n_steps * n_envs`` pairs not divisible by ``batch_size`` ends with a
short minibatch in SB3 and drops it in pgclaims.
"""

from __future__ import annotations

import json
import os
import re
import warnings
import zipfile
from typing import Any

import numpy as np
import torch
from torch import nn

from pgclaims.adapters.envs import check_env_id
from pgclaims.adapters.interface import ExternalAgent, ObsNorm, RewardNorm
from pgclaims.adapters.modules import AdapterError, activation, mlp
from pgclaims.adapters.safepickle import read_vecnormalize
from pgclaims.agents.envs import EnvError, make_env

_CLASS = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")
_SCHEDULE = re.compile(r"^ConstantSchedule\(val=([-+0-9.eE]+)\)$")
POLICIES = {"ActorCriticCnnPolicy": "CnnPolicy (image observations)",
            "MultiInputActorCriticPolicy": "MultiInputPolicy (dict observations)"}


def read_zip(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor],
                                                     dict[str, Any] | None]:
    """(data JSON, policy state dict, optimizer state dict or None) of an SB3 zip."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if not {"data", "policy.pth"} <= names:
                raise AdapterError(f"{path}: not an SB3 model zip (no data / policy.pth)")
            data = json.loads(z.read("data"))
            with z.open("policy.pth") as f:
                sd = torch.load(f, map_location="cpu", weights_only=True)
            opt = None
            if "policy.optimizer.pth" in names:
                with z.open("policy.optimizer.pth") as f:
                    opt = torch.load(f, map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError) as exc:
        raise AdapterError(f"{path}: not a readable SB3 zip ({exc})") from exc
    except RuntimeError as exc:  # weights_only refused a pickled object
        raise AdapterError(f"{path}: policy.pth is not a plain tensor state dict ({exc})") from exc
    return data, sd, opt


_MISSING = object()


def _num(data: dict[str, Any], key: str, integer: bool = False, default: Any = _MISSING,
         low: float | None = None) -> Any:
    """The plain JSON number ``data[key]`` (finite, an integer when ``integer``, >= ``low``),
    or :class:`AdapterError` naming the field (``data.n_steps: missing``)."""
    if key not in data or data[key] is None:
        if default is not _MISSING:
            return default
        raise AdapterError(f"data.{key}: missing")
    v = data[key]
    ok = isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) and (
        not integer or float(v).is_integer()) and (low is None or v >= low)
    if not ok:
        what = "an integer" if integer else "a finite number"
        raise AdapterError(f"data.{key}: expected {what}"
                           f"{'' if low is None else f' >= {low:g}'}, got {v!r}")
    return int(v) if integer else float(v)


def _plain(data: dict[str, Any], key: str) -> Any:
    """A field's plain JSON value, or its plain companions' dict; never the pickle."""
    v = data.get(key)
    if isinstance(v, dict):
        return {k: x for k, x in v.items() if k != ":serialized:"}
    return v


def _constant(data: dict[str, Any], key: str, schedule_key: str | None, option: float | None,
              name: str) -> float | None:
    value = _constant_or_none(data, key, schedule_key, option, name)
    if value is not None and not (np.isfinite(value) and value > 0):
        where = name if option is not None else f"data.{key}"
        raise AdapterError(f"{where}: expected a finite number > 0, got {value!r}")
    return value


def _constant_or_none(data: dict[str, Any], key: str, schedule_key: str | None,
                      option: float | None, name: str) -> float | None:
    if option is not None:
        return float(option)
    v = data.get(key)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    for k in (key, schedule_key):
        sched = _plain(data, k) if k else None
        if isinstance(sched, dict):
            m = _SCHEDULE.match(str(sched.get("value_schedule", "")))
            if m:
                return float(m[1])
    if v is None and key == "clip_range_vf":
        return None
    raise AdapterError(f"{key} is stored only as a pickled schedule, which pgclaims does not "
                       f"unpickle: pass {name}=<its value at the checkpoint>")


def _layers(sd: dict[str, torch.Tensor], prefix: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    idx = sorted(int(k[len(prefix):].split(".")[0]) for k in sd
                 if k.startswith(prefix) and k.endswith(".weight"))
    if idx != list(range(0, 2 * len(idx), 2)):
        raise AdapterError(f"{prefix}*: expected Linear layers at 0, 2, 4, ..., found {idx}")
    return [(sd[f"{prefix}{i}.weight"], sd[f"{prefix}{i}.bias"]) for i in idx]


def _net(hidden: list[tuple[torch.Tensor, torch.Tensor]], head: tuple[torch.Tensor, torch.Tensor],
         act: type[nn.Module]) -> nn.Sequential:
    layers = [*hidden, head]
    net = mlp([layers[0][0].shape[1]] + [w.shape[0] for w, _ in layers], act)
    with torch.no_grad():
        for lin, (w, b) in zip([m for m in net if isinstance(m, nn.Linear)], layers, strict=True):
            lin.weight.copy_(w)
            lin.bias.copy_(b)
    return net


def _refuse_variants(data: dict[str, Any], sd: dict[str, torch.Tensor]) -> str:
    """The algorithm ("ppo" or "trpo"); raises for anything this adapter cannot reproduce."""
    if "cg_max_steps" in data:
        algo = "trpo"
    elif "clip_range" in data and "n_epochs" in data:
        algo = "ppo"
    else:
        raise AdapterError("not a PPO or TRPO model (only SB3 PPO and sb3-contrib TRPO zips "
                           "are supported)")
    if data.get("use_sde"):
        raise AdapterError("gSDE (use_sde=True) is not supported: its noise is state-dependent")
    pc = _plain(data, "policy_class") or {}
    m = re.search(r"<function (\w+)\.__init__", str(pc.get("__init__", "")))
    cls = m[1] if m else "ActorCriticPolicy"
    if cls != "ActorCriticPolicy":
        raise AdapterError(f"policy class {cls} is not supported"
                           f"{': ' + POLICIES[cls] if cls in POLICIES else ''}; use MlpPolicy")
    kw = _plain(data, "policy_kwargs") or {}
    if kw.get("squash_output"):
        raise AdapterError("squashed outputs (squash_output=True) are not supported: the "
                           "policy is then not a Gaussian on the action")
    fe = _CLASS.match(str(kw.get("features_extractor_class", "<class 'FlattenExtractor'>")))
    if fe is None or fe[1] != "FlattenExtractor" or any(
            k.startswith(("features_extractor.", "pi_features_extractor.",
                          "vf_features_extractor.")) for k in sd):
        raise AdapterError("non-MLP feature extractors are not supported (features_extractor_"
                           f"class {kw.get('features_extractor_class')}); use MlpPolicy")
    if any(k.startswith("mlp_extractor.shared_net.") for k in sd):
        raise AdapterError("shared policy/value layers (net_arch with a shared part, SB3 < 1.8) "
                           "are not supported")
    obs, act = _plain(data, "observation_space") or {}, _plain(data, "action_space") or {}
    if "Box" not in str(obs.get(":type:")) or len(obs.get("_shape", [])) != 1:
        raise AdapterError(f"observation space {obs.get(':type:')} of shape {obs.get('_shape')}"
                           " is not supported: flat Box observations only (no images, no dicts)")
    if "Box" not in str(act.get(":type:")):
        raise AdapterError(f"action space {act.get(':type:')} is not supported: the policy "
                           "must be a diagonal Gaussian over a Box")
    return algo


def _check_env(data: dict[str, Any], env_id: str) -> None:
    env = make_env(env_id)
    try:
        obs, act = _plain(data, "observation_space"), _plain(data, "action_space")
        if list(obs["_shape"]) != list(env.observation_space.shape) or list(
                act["_shape"]) != list(env.action_space.shape):
            raise AdapterError(f"the model was trained on observations {obs['_shape']} and "
                               f"actions {act['_shape']}; {env_id} has "
                               f"{list(env.observation_space.shape)} and "
                               f"{list(env.action_space.shape)}")
        for bound, have in (("low", env.action_space.low), ("high", env.action_space.high)):
            text = str(act.get(bound, "")).strip("[]").split()
            if text and not np.allclose(np.array(text, float), have):
                raise AdapterError(f"the model's action {bound} {act[bound]} differs from "
                                   f"{env_id}'s {have}")
    finally:
        env.close()


def _opt_state(opt: dict[str, Any] | None, keys: list[str], order: list[str]
               ) -> dict[str, Any] | None:
    """SB3's joint Adam state restricted and re-indexed to ``order`` (state-dict key names)."""
    if opt is None or len(opt["param_groups"]) != 1:
        return None
    if len(opt["param_groups"][0]["params"]) != len(keys):
        return None
    pos = {k: i for i, k in enumerate(keys)}
    state = {j: opt["state"][pos[k]] for j, k in enumerate(order) if pos[k] in opt["state"]}
    group = {**opt["param_groups"][0], "params": list(range(len(order)))}
    return {"state": state, "param_groups": [group]}


def load(path: str | os.PathLike[str], env_id: str, *,
         vecnormalize: str | os.PathLike[str] | None = None, learning_rate: float | None = None,
         clip_range: float | None = None) -> ExternalAgent:
    """The :class:`ExternalAgent` of an SB3 PPO / sb3-contrib TRPO zip trained on ``env_id``.

    ``vecnormalize``: the ``VecNormalize.save`` file of the training env (required when the
    zip shows the model was trained under VecNormalize). Every error names the zip (and the
    ``data`` field, ``data.n_steps: missing``); a field of an unexpected shape is one error,
    never a KeyError or a traceback."""
    try:
        return _load(path, env_id, vecnormalize, learning_rate, clip_range)
    except AdapterError as exc:
        if str(path) in str(exc) or (vecnormalize is not None and str(vecnormalize) in str(exc)):
            raise
        raise AdapterError(f"{path}: {exc}") from None
    except EnvError:  # about the --env id, not the file
        raise
    except (KeyError, TypeError, AttributeError, IndexError, ValueError, RuntimeError) as exc:
        raise AdapterError(f"{path}: not an SB3 model this adapter can read: "
                           f"{type(exc).__name__}: {exc}") from None


def _load(path: str | os.PathLike[str], env_id: str, vecnormalize: Any, learning_rate: Any,
          clip_range: Any) -> ExternalAgent:
    data, sd, opt = read_zip(path)
    if not isinstance(data, dict):
        raise AdapterError(f"data: expected a JSON object, got {type(data).__name__}")
    algo = _refuse_variants(data, sd)
    check_env_id(env_id)
    _check_env(data, env_id)
    kw = _plain(data, "policy_kwargs") or {}
    m = _CLASS.match(str(kw.get("activation_fn", "<class 'Tanh'>")))
    act = activation(m[1] if m else str(kw.get("activation_fn")))
    pi = _layers(sd, "mlp_extractor.policy_net.")
    vf = _layers(sd, "mlp_extractor.value_net.")
    arch = kw.get("net_arch")
    if arch is not None:
        want = arch if isinstance(arch, dict) else {"pi": arch, "vf": arch}
        have = {"pi": [w.shape[0] for w, _ in pi], "vf": [w.shape[0] for w, _ in vf]}
        if isinstance(want, dict) and {k: list(want.get(k, [])) for k in have} != have:
            raise AdapterError(f"net_arch {arch} does not match the weights' layers {have}")
    mean = _net(pi, (sd["action_net.weight"], sd["action_net.bias"]), act)
    value = _net(vf, (sd["value_net.weight"], sd["value_net.bias"]), act)
    obs_norm = reward_norm = None
    if vecnormalize is not None:
        vn = read_vecnormalize(vecnormalize)
        if vn.norm_obs:
            obs_norm = ObsNorm(vn.obs_mean, vn.obs_var, vn.epsilon, vn.clip_obs, vn.obs_count)
        if vn.norm_reward:
            reward_norm = RewardNorm(vn.ret_var, vn.epsilon, vn.clip_reward, vn.ret_count)
            if abs(vn.gamma - _num(data, "gamma")) > 1e-12:
                warnings.warn(f"VecNormalize gamma {vn.gamma} differs from the model's "
                              f"{data['gamma']}", stacklevel=2)
    elif data.get("_last_original_obs") is not None:
        raise AdapterError(f"{path} was trained under VecNormalize (the zip records "
                           "_last_original_obs) but no statistics were given: pass the file "
                           "from VecNormalize.save (--vecnormalize vecnormalize.pkl)")
    steps = _num(data, "n_steps", True, low=1) * _num(data, "n_envs", True, 1, low=1)
    lr = _constant(data, "learning_rate", "lr_schedule", learning_rate, "learning_rate")
    eps = float(opt["param_groups"][0].get("eps", 1e-5)) if opt else 1e-5
    common = {"steps_per_iteration": steps,
              "minibatches": max(1, steps // _num(data, "batch_size", True, low=1)),
              "value_lr": lr, "adam_eps": eps, "time_limit": "bootstrap",
              "batch_end": "bootstrap", "value_loss_ends": True}
    keys = list(sd)
    pi_keys = ["log_std"] + [k for k in keys if k.startswith("mlp_extractor.policy_net.")] + [
        "action_net.weight", "action_net.bias"]
    vf_keys = [k for k in keys if k.startswith("mlp_extractor.value_net.")] + [
        "value_net.weight", "value_net.bias"]
    if algo == "ppo":
        if not data.get("normalize_advantage", True):
            warnings.warn("normalize_advantage=False: replayed PPO steps normalize per "
                          "minibatch anyway (gradient measurements are unaffected)", stacklevel=2)
        update = {**common, "policy_lr": lr, "epochs": _num(data, "n_epochs", True, low=1),
                  "value_epochs": _num(data, "n_epochs", True, low=1),
                  "clip_eps": _constant(data, "clip_range", None, clip_range, "clip_range"),
                  "value_clip": _constant(data, "clip_range_vf", None, None, "clip_range_vf"),
                  "entropy_coef": _num(data, "ent_coef", default=0.0),
                  "adv_norm": "minibatch"}
    else:
        update = {**common, "max_kl": _num(data, "target_kl"),
                  "value_epochs": _num(data, "n_critic_updates", True, low=1),
                  "fisher_fraction": 1.0 / _num(data, "sub_sampling_factor", True, 1, low=1),
                  "cg_iters": _num(data, "cg_max_steps", True, low=1),
                  "cg_damping": _num(data, "cg_damping"),
                  "backtrack_iters": _num(data, "line_search_max_iter", True, low=1),
                  "backtrack_coeff": _num(data, "line_search_shrinking_factor")}
    return ExternalAgent(
        mean=mean, log_std=sd["log_std"], value=value, gamma=_num(data, "gamma"),
        gae_lambda=_num(data, "gae_lambda"), obs_norm=obs_norm, reward_norm=reward_norm,
        clip_actions=True, algo=algo, update=update,
        policy_opt_state=_opt_state(opt, keys, pi_keys) if algo == "ppo" else None,
        value_opt_state=_opt_state(opt, keys, vf_keys),
        iteration=_num(data, "num_timesteps", True, 0, low=0) // steps,
        seed=_num(data, "seed", True, 0, low=0),
        source=f"sb3:{path}")

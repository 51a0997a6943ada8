"""Checkpoints: one safetensors file holding everything needed to continue exactly.

Tensors: policy and value parameters (and both nets before their last update), Adam states,
normalizer statistics, the torch RNG state and the record of the last value fit
(:class:`pgclaims.agents.agent.FitRecord`; format 1 stored the whole batch, observations
included, and is still read). Metadata (JSON in
the safetensors header): format name and version, the training config, iteration, numpy RNG
state, the training curve so far. Nothing is ever unpickled. Writes are atomic (temporary
file in the same directory, then rename), and a parameter or optimizer state that is not
finite is never written: a diverged run stops with an error instead of leaving a NaN agent
behind. :func:`load` checks the file's sha256 against the one recorded for it (the fixture
manifest, or the run folder's ``sha256.json``: :mod:`pgclaims.agents.digests`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes

from pgclaims import fsio
from pgclaims.agents import digests
from pgclaims.agents.agent import Agent, FitRecord, TrainConfig, make_agent
from pgclaims.agents.rollout import Batch

FORMAT = "pgclaims.checkpoint"
"""The file format's name in every header: an identifier, not a module path (kept on moves)."""
FORMAT_VERSION = 2
READS = ("1", "2")
BATCH_FIELDS = ("obs", "actions", "rewards", "raw_rewards", "terminated", "truncated",
                "final_obs", "episode_returns", "episode_lengths")
"""The batch fields of a format-1 checkpoint."""


FINITE_PREFIXES = ("policy/", "value/", "prev_value/", "prev_policy/", "policy_opt/",
                   "value_opt/", "obs_norm/", "reward_norm/")
"""Tensors that must be finite in a checkpoint (the networks, their optimizers, the
normalizers); a non-finite one means training diverged."""


class CheckpointError(ValueError):
    """A checkpoint file that is missing, corrupt, truncated, foreign or of another version."""


class NonFiniteError(CheckpointError):
    """An agent whose parameters or optimizer state hold NaN or infinity: never saved."""


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors of :data:`FINITE_PREFIXES` that hold a NaN or an infinity."""
    return [k for k, t in tensors.items() if k.startswith(FINITE_PREFIXES)
            and t.is_floating_point() and not bool(torch.isfinite(t).all())]


def _opt_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], Any]:
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for k, v in state.items():
            tensors[f"{prefix}/state/{idx}/{k}"] = torch.as_tensor(v).clone()
    return tensors, sd["param_groups"]


def _load_opt(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
              groups: Any) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        if name.startswith(prefix + "/state/"):
            _, _, idx, k = name.split("/")
            state.setdefault(int(idx), {})[k] = t
    opt.load_state_dict({"state": state, "param_groups": groups})


def save(agent: Agent, path: str | os.PathLike[str]) -> Path:
    """Write ``agent`` to ``path`` atomically; returns the path. Raises
    :class:`NonFiniteError` (writing nothing) when a parameter or optimizer state is not
    finite. A training run records the file's digest (:func:`pgclaims.agents.digests.record`)."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for name, p in agent.policy.state_dict().items():
        tensors[f"policy/{name}"] = p.detach().clone()
    for name, p in agent.value.state_dict().items():
        tensors[f"value/{name}"] = p.detach().clone()
    for name, p in (agent.prev_value or {}).items():
        tensors[f"prev_value/{name}"] = p.clone()
    for name, p in (agent.prev_policy or {}).items():
        tensors[f"prev_policy/{name}"] = p.clone()
    meta: dict[str, Any] = {}
    if agent.policy_opt is not None:
        t, meta["policy_opt_groups"] = _opt_tensors("policy_opt", agent.policy_opt)
        tensors.update(t)
    t, meta["value_opt_groups"] = _opt_tensors("value_opt", agent.value_opt)
    tensors.update(t)
    on, rs = agent.obs_norm.stats, agent.reward_scaler.stats
    tensors["obs_norm/mean"] = torch.from_numpy(on.mean.copy())
    tensors["obs_norm/m2"] = torch.from_numpy(on.m2.copy())
    tensors["reward_norm/mean"] = torch.from_numpy(np.atleast_1d(rs.mean).copy())
    tensors["reward_norm/m2"] = torch.from_numpy(np.atleast_1d(rs.m2).copy())
    tensors["torch_rng"] = torch.get_rng_state()
    fit = agent.last_fit
    if fit is not None:
        for f in FitRecord.FIELDS:
            tensors[f"fit/{f}"] = torch.from_numpy(np.ascontiguousarray(getattr(fit, f)))
        if fit.cut_states is not None:
            tensors["fit/cut_states"] = torch.from_numpy(np.ascontiguousarray(fit.cut_states))
    meta.update(
        config=agent.config.to_dict(),
        iteration=agent.iteration,
        obs_norm_count=on.count,
        reward_norm_count=rs.count,
        numpy_rng=agent.rng.bit_generator.state,
        curve=agent.curve,
    )
    bad = non_finite(tensors)
    if bad:
        raise NonFiniteError(f"{path}: not written: iteration {agent.iteration} has non-finite "
                             f"values in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} "
                             "(training diverged)")
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
              "pgclaims": json.dumps(meta)}
    data = save_bytes({k: v.contiguous() for k, v in tensors.items()}, metadata=header)
    fsio.write_bytes(path, data)
    return path


def read(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a checkpoint, validated; raises :class:`CheckpointError`, or
    :class:`~pgclaims.agents.digests.DigestError` when the folder's ``sha256.json`` records
    another digest for the file (a fixture's is checked by :func:`pgclaims.agents.fixtures.load`
    against its manifest entry)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.safetensors"))
        hint = f"; it holds {', '.join(found[:6])}" if found else ""
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file (give one "
                              f"ckpt_NNNN.safetensors{hint})")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    digests.verify(path)
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a pgclaims checkpoint (header field 'format' is "
            f"{header.get('format')!r}, expected {FORMAT!r})"
        )
    if header.get("format_version") not in READS:
        raise CheckpointError(
            f"{path}: checkpoint format_version {header.get('format_version')!r}, this pgclaims "
            f"reads {', '.join(READS)}"
        )
    bad = non_finite(tensors)
    if bad:  # written by something other than save(), or damaged after its digest was taken
        raise CheckpointError(f"{path}: not finite: {', '.join(bad[:3])}"
                              f"{' ...' if len(bad) > 3 else ''} hold NaN or infinity (a "
                              "diverged or damaged agent; pgclaims never writes one)")
    meta_version = header.get("format_version")
    try:
        meta = json.loads(header["pgclaims"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: header field 'pgclaims' is missing or not JSON") from exc
    meta["format_version"] = int(meta_version)
    return tensors, meta


def load(path: str | os.PathLike[str]) -> Agent:
    """Rebuild the agent saved at ``path`` (exactly: continuing it continues the run); its
    digest is checked as :func:`read` says."""
    tensors, meta = read(path)
    try:
        config = TrainConfig.from_dict(meta["config"])
        agent = make_agent(config)
        agent.policy.load_state_dict(
            {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("policy/")})
        agent.value.load_state_dict(
            {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("value/")})
        prev = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("prev_value/")}
        agent.prev_value = prev or None
        prev_pi = {k.split("/", 1)[1]: v for k, v in tensors.items()
                   if k.startswith("prev_policy/")}
        agent.prev_policy = prev_pi or None
        if agent.policy_opt is not None:
            _load_opt("policy_opt", agent.policy_opt, tensors, meta["policy_opt_groups"])
        _load_opt("value_opt", agent.value_opt, tensors, meta["value_opt_groups"])
        on, rs = agent.obs_norm.stats, agent.reward_scaler.stats
        on.mean[...] = tensors["obs_norm/mean"].numpy()
        on.m2[...] = tensors["obs_norm/m2"].numpy()
        on.count = int(meta["obs_norm_count"])
        rs.mean = np.asarray(tensors["reward_norm/mean"].numpy()[0])
        rs.m2 = np.asarray(tensors["reward_norm/m2"].numpy()[0])
        rs.count = int(meta["reward_norm_count"])
        agent.rng.bit_generator.state = meta["numpy_rng"]
        torch.set_rng_state(tensors["torch_rng"])
        agent.iteration = int(meta["iteration"])
        agent.curve = list(meta["curve"])
        if "fit/values" in tensors:
            cut = tensors.get("fit/cut_states")
            agent.last_fit = FitRecord(
                **{f: tensors[f"fit/{f}"].numpy() for f in FitRecord.FIELDS},
                cut_states=None if cut is None else cut.numpy())
        elif "last_batch/obs" in tensors:  # format 1: the whole batch
            batch = Batch(**{f: tensors[f"last_batch/{f}"].numpy() for f in BATCH_FIELDS})
            agent.last_fit = FitRecord.of(agent.value, batch,
                                          tensors["last_batch/targets"].numpy())
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{Path(path)}: inconsistent checkpoint contents ({exc})") from exc
    return agent

"""Training runs: iterate an agent, save checkpoints, resume after an interruption.

A run directory holds ``config.json``, ``ckpt_<iteration>.safetensors`` at the requested
iterations (and the final one), ``latest.safetensors`` (every ``save_every`` iterations, for
resuming) and ``curve.json`` (one row per iteration). Every file is written atomically, so an
interrupted run loses at most ``save_every`` iterations and never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from pgclaims.agents import checkpoint
from pgclaims.agents.agent import Agent, TrainConfig, iterate, make_agent, training_env


class RunDirError(ValueError):
    """A run directory that belongs to a different training config."""


def ckpt_name(iteration: int) -> str:
    return f"ckpt_{iteration:04d}.safetensors"


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (temporary file in the same directory, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, allow_nan=True)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _resume_or_start(config: TrainConfig, run_dir: Path) -> Agent:
    cfg_file = run_dir / "config.json"
    if cfg_file.exists():
        try:
            existing = json.loads(cfg_file.read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{cfg_file}: not valid JSON ({exc})") from exc
        if existing != config.to_dict():
            raise RunDirError(
                f"{run_dir} holds a run with a different config ({cfg_file}); "
                "choose another --out or delete that directory"
            )
    latest = run_dir / "latest.safetensors"
    if latest.exists():
        agent = checkpoint.load(latest)
        if agent.config != config:
            raise RunDirError(f"{latest}: checkpoint config differs from the requested run")
        return agent
    return make_agent(config)


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    save_every: int = 10,
    progress: bool = True,
    stop_after: int | None = None,
) -> Agent:
    """Train ``config`` in ``run_dir``, resuming from ``latest.safetensors`` when present.

    ``stop_after`` ends the call after that many iterations (used to test interruption).
    """
    run_dir = Path(run_dir)
    torch.set_num_threads(1)
    agent = _resume_or_start(config, run_dir)
    write_json(run_dir / "config.json", config.to_dict())
    env = training_env(config.env_id)
    label = f"{config.env_id} {config.algo} seed {config.seed}"
    bar = tqdm(
        total=config.iterations, initial=agent.iteration, desc=label, unit="it",
        disable=not progress, file=sys.stderr, mininterval=1.0, dynamic_ncols=True,
    )
    done = 0
    try:
        while agent.iteration < config.iterations:
            if agent.iteration in config.checkpoints:
                checkpoint.save(agent, run_dir / ckpt_name(agent.iteration))
            row = iterate(agent, env)
            done += 1
            bar.update(1)
            bar.set_postfix(ret=f"{row['mean_return']:.0f}", kl=f"{row['kl']:.3f}", refresh=False)
            finished = agent.iteration == config.iterations
            if agent.iteration % save_every == 0 or finished:
                checkpoint.save(agent, run_dir / "latest.safetensors")
                write_json(run_dir / "curve.json", agent.curve)
            if stop_after is not None and done >= stop_after and not finished:
                return agent
        if config.iterations in config.checkpoints:
            checkpoint.save(agent, run_dir / ckpt_name(config.iterations))
    finally:
        bar.close()
        env.close()
    return agent

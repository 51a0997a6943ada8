"""Training runs: iterate an agent, save checkpoints, resume after an interruption.

A run directory holds ``config.json``, ``ckpt_<iteration>.safetensors`` at the requested
iterations (and the final one), ``latest.safetensors`` (every ``save_every`` iterations, for
resuming), ``curve.json`` (one row per iteration) and ``sha256.json``, the digest of each of
those files (:mod:`pgclaims.agents.digests`). Every file is written atomically, so an
interrupted run loses at most ``save_every`` iterations and never leaves a half-written file.

What survives: one process trains into a folder at a time (:mod:`pgclaims.agents.runlock`);
a finished run is never trained again (a rerun verifies its digests and says so); a run
whose parameters stop being finite ends with an error naming the iteration, and nothing of
that iteration is written.
"""

from __future__ import annotations

import errno
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from pgclaims import fsio
from pgclaims.agents import checkpoint, digests, runlock
from pgclaims.agents.agent import Agent, TrainConfig, iterate, make_agent, training_env
from pgclaims.agents.hyper import check_numbers

LATEST = "latest.safetensors"
CURVE_CHECKED = ("kl", "surrogate")
"""Curve fields that are finite in every healthy iteration (the value loss is NaN by design
under the zero baseline, the mean return when no episode ended)."""


class RunDirError(ValueError):
    """A run directory that belongs to a different training config."""


class DivergedError(ValueError):
    """Training produced a non-finite loss or parameter; the iteration is named."""


def ckpt_name(iteration: int) -> str:
    return f"ckpt_{iteration:04d}.safetensors"


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (temporary file in the same directory, then rename)."""
    fsio.write_json(path, obj)


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
    latest = run_dir / LATEST
    if latest.exists():
        agent = checkpoint.load(latest)
        if agent.config != config:
            raise RunDirError(f"{latest}: checkpoint config differs from the requested run")
        return agent
    return make_agent(config)


def _finished(config: TrainConfig, run_dir: Path, agent: Agent) -> bool:
    """Whether ``run_dir`` holds the whole run: the final iteration and every checkpoint."""
    return agent.iteration >= config.iterations and all(
        (run_dir / ckpt_name(c)).exists() for c in config.checkpoints)


def _verify_finished(run_dir: Path) -> str:
    """Check every file ``sha256.json`` lists; what was checked, for the no-op message."""
    recorded = digests.read(run_dir)
    for name, expected in recorded.items():
        if (run_dir / name).exists():
            digests.check(run_dir / name, expected, str(run_dir / digests.FILE))
    if not recorded:
        return "no digests recorded (a run of an older pgclaims), so nothing was verified"
    return f"the sha256 of its {len(recorded)} files verified"


def _check_finite(agent: Agent, row: dict[str, float], run_dir: Path) -> None:
    """Stop a diverged run before anything of the iteration is saved."""
    bad = [f"{name} {row[name]}" for name in CURVE_CHECKED if not math.isfinite(row[name])]
    if agent.hyper.baseline == "valuenet" and not math.isfinite(row["value_loss"]):
        bad.append(f"value_loss {row['value_loss']}")
    for net_name, net in (("policy", agent.policy), ("value", agent.value)):
        bad += [f"{net_name}/{n}" for n, p in net.named_parameters()
                if not bool(torch.isfinite(p).all())]
    if bad:
        raise DivergedError(
            f"{run_dir}: training diverged at iteration {row['iteration']}: non-finite "
            f"{', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}; nothing of that iteration "
            "was saved (resuming continues from the last good checkpoint); lower the learning "
            "rates or the KL bound")


def _prepare(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder (--out names the "
                                 "run folder)", str(run_dir))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(run_dir)) from exc


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    save_every: int = 10,
    progress: bool = True,
    stop_after: int | None = None,
    say: Callable[[str], None] | None = None,
) -> Agent:
    """Train ``config`` in ``run_dir``, resuming from ``latest.safetensors`` when present.

    A finished run is not trained again: its digests are verified and ``say`` is told so.
    Raises :class:`~pgclaims.agents.runlock.RunLockedError` when another process trains into
    ``run_dir``, :class:`DivergedError` when an iteration ends with a non-finite loss or
    parameter. ``stop_after`` ends the call after that many iterations (used to test
    interruption).
    """
    run_dir = Path(run_dir)
    check_numbers(config.hyper, unknown=False)  # before the folder is made
    _prepare(run_dir)
    with runlock.hold(run_dir):
        return _train_locked(config, run_dir, save_every, progress, stop_after, say)


def _train_locked(config: TrainConfig, run_dir: Path, save_every: int, progress: bool,
                  stop_after: int | None, say: Callable[[str], None] | None) -> Agent:
    torch.set_num_threads(1)
    agent = _resume_or_start(config, run_dir)
    if _finished(config, run_dir, agent):
        checked = _verify_finished(run_dir)
        if say is not None:
            say(f"{run_dir}: already finished ({config.iterations} iterations), {checked}; "
                "nothing to train")
        return agent
    if not (run_dir / "config.json").exists():
        write_json(run_dir / "config.json", config.to_dict())
        digests.record(run_dir, ["config.json"])
    env = training_env(config.env_id)
    label = f"{config.env_id} {config.algo} seed {config.seed}"
    bar = tqdm(
        total=config.iterations, initial=agent.iteration, desc=label, unit="it",
        disable=not progress, file=sys.stderr, mininterval=1.0, dynamic_ncols=True,
    )
    done = 0

    def save(name: str) -> None:
        checkpoint.save(agent, run_dir / name)
        digests.record(run_dir, [name])

    try:
        while agent.iteration < config.iterations:
            if agent.iteration in config.checkpoints:
                save(ckpt_name(agent.iteration))
            row = iterate(agent, env)
            _check_finite(agent, row, run_dir)
            done += 1
            bar.update(1)
            bar.set_postfix(ret=f"{row['mean_return']:.0f}", kl=f"{row['kl']:.3f}", refresh=False)
            finished = agent.iteration == config.iterations
            if agent.iteration % save_every == 0 or finished:
                save(LATEST)
                write_json(run_dir / "curve.json", agent.curve)
                digests.record(run_dir, ["curve.json"])
            if stop_after is not None and done >= stop_after and not finished:
                return agent
        if config.iterations in config.checkpoints:
            save(ckpt_name(config.iterations))
    finally:
        bar.close()
        env.close()
    return agent

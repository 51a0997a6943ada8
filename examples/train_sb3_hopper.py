"""Train Stable-Baselines3 PPO agents on Hopper-v5 and write a ``pytest claims --agents`` manifest.

The agents the claims suite can then be run on (``docs/adapters.md``, "Claims on your agents")::

    .venv/bin/python examples/train_sb3_hopper.py --out /work/sb3_agents --seeds 0 1 2
    .venv/bin/pytest claims --scale smoke --agents /work/sb3_agents/manifest.json

One agent per seed: ``PPO("MlpPolicy")`` under ``VecNormalize`` (observations and rewards,
both clipped at 10) with Table 1's PPO settings where SB3 can express them: 2048 pairs per
iteration, 10 epochs of 32 minibatches (batch 64), gamma 0.99, GAE lambda 0.95, clip 0.2, no
entropy bonus, [64, 64] tanh policy and value nets. SB3 steps one Adam over both nets, so
Table 1's separate Hopper learning rates (policy 4.5e-4, value 2e-4) become one constant
``--learning-rate`` (3e-4, SB3's default); everything Table 1 is silent on keeps SB3's default
(``max_grad_norm`` 0.5, ``vf_coef`` 0.5, orthogonal init, per-minibatch advantage
normalization, time-limit bootstrapping).

The training length and the checkpoints are those of a pgclaims scale (``--scale``; smoke:
30 iterations, checkpoints 0, 9, 18, 27). The checkpoint of iteration ``k`` is saved when the
rollout that follows the ``k``-th update ends, before the next update: the policy, value net
and Adam state after ``k`` updates, and the VecNormalize statistics the next update's batch
was normalized with (at ``k = 0`` statistics from a single reset observation would make the
frozen normalization degenerate). The zip's ``num_timesteps`` therefore counts ``k + 1``
rollouts; the manifest's iteration keys are the update counts.

Writes ``<out>/seed<s>/it<kkkk>.zip`` and ``vn<kkkk>.pkl``, ``<out>/training.json`` (the mean
return of the last 10 training episodes at each iteration, per seed) and
``<out>/manifest.json``. Seeded: the same command on the same machine gives the same agents.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from pgclaims.suite.scales import get_scale

ENV_ID = "Hopper-v5"
PACKAGES = ("stable-baselines3", "gymnasium", "mujoco", "torch", "numpy")


class SaveAtIterations(BaseCallback):
    """Save the model and its VecNormalize statistics after the listed numbers of updates."""

    def __init__(self, folder: Path, iterations: tuple[int, ...]) -> None:
        super().__init__()
        self.folder = folder
        self.iterations = set(iterations)
        self.updates = 0
        """Updates made so far: rollouts ended, minus the one that just ended."""
        self.curve: list[float | None] = []
        """Mean return of the last 10 finished episodes, at the end of each rollout."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        episodes = [info["r"] for info in self.model.ep_info_buffer]
        self.curve.append(float(np.mean(episodes[-10:])) if episodes else None)
        if self.updates in self.iterations:
            self.model.save(self.folder / f"it{self.updates:04d}.zip")
            venv = self.model.get_vec_normalize_env()
            assert venv is not None, "the model is not trained under VecNormalize"
            venv.save(str(self.folder / f"vn{self.updates:04d}.pkl"))
        self.updates += 1


def train_one(seed: int, out: Path, iterations: int, checkpoints: tuple[int, ...],
              learning_rate: float) -> list[float | None]:
    """Train seed ``seed`` for ``iterations`` updates; returns its training curve."""
    if max(checkpoints) >= iterations:
        raise ValueError(f"checkpoint {max(checkpoints)} needs the rollout after update "
                         f"{max(checkpoints)}: train more than {iterations} iterations")
    folder = out / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    venv = VecNormalize(make_vec_env(ENV_ID, n_envs=1, seed=seed), norm_obs=True,
                        norm_reward=True, clip_obs=10.0, clip_reward=10.0, gamma=0.99)
    model = PPO("MlpPolicy", venv, learning_rate=learning_rate, n_steps=2048, batch_size=64,
                n_epochs=10, gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.0,
                policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]},
                               "activation_fn": torch.nn.Tanh},
                seed=seed, device="cpu", verbose=0)
    saver = SaveAtIterations(folder, checkpoints)
    model.learn(total_timesteps=2048 * iterations, callback=saver)
    venv.close()
    return saver.curve


def versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in PACKAGES}


def manifest(out: Path, seeds: list[int], checkpoints: tuple[int, ...], command: str,
             learning_rate: float) -> dict[str, Any]:
    source = (f"SB3 PPO MlpPolicy on {ENV_ID} under VecNormalize, trained by `{command}` "
              f"(examples/train_sb3_hopper.py: n_steps 2048, batch 64, 10 epochs, lr "
              f"{learning_rate:g}, gamma 0.99, lambda 0.95, clip 0.2; checkpoint k = after k "
              f"updates)")
    agents = [{"env": ENV_ID, "algo": "ppo", "seed": s, "adapter": "sb3",
               "checkpoints": {str(k): {"path": f"seed{s}/it{k:04d}.zip",
                                        "vecnormalize": f"seed{s}/vn{k:04d}.pkl"}
                               for k in checkpoints}} for s in seeds]
    return {"source": source, "versions": versions(), "agents": agents}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/sb3_hopper"),
                        help="folder for the agents and manifest.json (default runs/sb3_hopper)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scale", default="smoke",
                        help="pgclaims scale whose training length and checkpoints to use")
    parser.add_argument("--learning-rate", type=float, default=3e-4,
                        help="SB3's one Adam LR for policy and value (default 3e-4)")
    args = parser.parse_args(argv)
    scale = get_scale(args.scale)
    torch.set_num_threads(1)
    out = args.out.resolve()
    command = shlex.join(["python", "examples/train_sb3_hopper.py", *sys.argv[1:]])
    curves = {}
    for seed in args.seeds:
        curve = train_one(seed, out, scale.iterations, scale.checkpoints, args.learning_rate)
        curves[str(seed)] = curve
        print(f"seed {seed}: mean return of the last 10 episodes {curve[-1]:.1f} after "
              f"{len(curve)} rollouts", flush=True)
    (out / "training.json").write_text(json.dumps(
        {"env": ENV_ID, "iterations": scale.iterations, "checkpoints": list(scale.checkpoints),
         "mean_return_last10": curves}, indent=1) + "\n")
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest(out, args.seeds, scale.checkpoints, command,
                                        args.learning_rate), indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

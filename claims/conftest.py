"""Glue between the scale, the agents and the measurements, for the claims tests.

``study`` answers "the measurement M of agent (env, algo, seed) at iteration t" through the
on-disk cache of :mod:`pgclaims.measure`, so tests that share an agent share its samples, and
two xdist workers never compute the same measurement twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pgclaims import measure

try:
    from pgclaims.suite.progress import progress as _progress
except ImportError:  # pragma: no cover - the plugin provides it
    def _progress(msg: str) -> None:
        import sys

        print(msg, file=sys.stderr)


class Study:
    def __init__(self, scale: Any, agents: Any) -> None:
        self.scale = scale
        self.agents = agents
        self.cfg = self.cfg_for(scale.envs[0])

    def cfg_for(self, env: str) -> measure.MeasureConfig:
        """The scale's sample counts, the true-gradient N resolved for ``env``."""
        fields = dict(self.scale.measure_fields(env))
        return measure.MeasureConfig(**{k: tuple(v) if isinstance(v, list) else v
                                        for k, v in fields.items()})

    @property
    def late(self) -> tuple[int, ...]:
        return tuple(self.scale.late)

    @property
    def first(self) -> int:
        return int(self.scale.checkpoints[0])

    @property
    def last(self) -> int:
        return int(self.scale.checkpoints[-1])

    def agent(self, env: str, algo: str, seed: int, it: int) -> Any:
        return self.agents.get(env, algo, seed, it)

    def _say(self, what: str, env: str, algo: str, seed: int, it: int) -> Callable[[str], None]:
        return lambda msg: _progress(f"{what} {env} {algo} seed {seed} it {it}: {msg}")

    def gradients(self, env: str, algo: str, seed: int, it: int) -> measure.GradientStudy:
        return measure.gradients(self.agent(env, algo, seed, it), self.cfg_for(env),
                                 progress=self._say("gradients", env, algo, seed, it))

    def value(self, env: str, algo: str, seed: int, it: int) -> measure.ValueStudy:
        return measure.value(self.agent(env, algo, seed, it), self.cfg_for(env))

    def steps(self, env: str, algo: str, seed: int, it: int) -> measure.StepStudy:
        return measure.steps(self.agent(env, algo, seed, it), self.cfg_for(env))

    def landscape(self, env: str, algo: str, seed: int, it: int) -> measure.Landscape:
        return measure.landscapes(self.agent(env, algo, seed, it), self.cfg_for(env),
                                  progress=self._say("landscape", env, algo, seed, it))

    def train_variant(self, env: str, algo: str, seed: int, **overrides: Any) -> Any:
        """A training run of the scale's length with Table 1 changed by ``overrides`` (ablations),
        trained once into the cache under a lock; a completed run is just reloaded."""
        from filelock import FileLock

        from pgclaims.agents.agent import TrainConfig
        from pgclaims.agents.train import train
        from pgclaims.measure.cache import cache_dir

        cfg = TrainConfig.create(env, algo, seed, self.scale.iterations, (),
                                 protocol=self.agents.protocol, **overrides)
        run_dir = cache_dir().parent / "ablations" / cfg.key()
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(run_dir) + ".lock"):
            _progress(f"ablation {env} {algo} seed {seed} {overrides}: training or loading")
            return train(cfg, run_dir, progress=False)

    @property
    def protocol(self) -> Any:
        from pgclaims.agents.protocol import get_protocol

        return get_protocol(self.agents.protocol)

    def true_cos(self, g: measure.GradientStudy, n: int | None = None) -> np.ndarray:
        """Cosines with the true gradient as the protocol defines them: the paper's raw cosine,
        or (corrected) the one whose |g_true| is freed of the true gradient's own sampling
        noise, which otherwise pulls every cosine toward 0. All N, or the row at ``n``."""
        if self.protocol.true_cosine == "debiased":
            cos = g.true_cos_debiased
            if cos is None:
                raise ValueError("this cached gradient study has no noise-corrected cosine; "
                                 "clear .cache/pgclaims/measure and re-run")
        else:
            cos = g.true_cos
        return cos if n is None else cos[g.at(n)]

    def per_agent(self, fn: Callable[[int], Any]) -> list[Any]:
        """One unit per agent (training seed): the replication unit of CLAIMS.md."""
        return [fn(seed) for seed in self.scale.seeds]

    def over(self, its: tuple[int, ...], fn: Callable[[int], np.ndarray]) -> np.ndarray:
        """Repeats of one agent pooled over checkpoints (e.g. the late ones)."""
        return np.concatenate([np.ravel(fn(it)) for it in its])


@pytest.fixture(scope="session")
def study(scale: Any, agents: Any) -> Study:
    return Study(scale, agents)


def mean_of_means(units: list[np.ndarray]) -> float:
    """Mean over agents of each agent's mean over repeats."""
    return float(np.mean([np.mean(u) for u in units]))


def diff_of_means(a: str, b: str) -> Callable[[list[dict[str, np.ndarray]]], float]:
    """Mean over agents of (mean of quantity a - mean of quantity b)."""
    return lambda units: float(np.mean([np.mean(u[a]) - np.mean(u[b]) for u in units]))

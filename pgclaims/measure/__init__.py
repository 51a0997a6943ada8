"""The paper's measurements as plain functions of (checkpoint, measurement config, seed).

Each public function here is the cached form of a function in a submodule: gradients
(Figures 1, 2, 4, 9, 10), value (Figures 3, 11, 12), landscape (A.4, Figures 5-7, 13-20).
The data flows one way: sampler -> batch -> measurement record; nothing here trains an agent
or decides a verdict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pgclaims.agents.agent import Agent
from pgclaims.measure import cache
from pgclaims.measure.figures import figure_data
from pgclaims.measure.gradients import GradientStudy, gradient_study
from pgclaims.measure.landscape import Landscape, StepStudy, landscape, step_study
from pgclaims.measure.value import ValueStudy, value_error


@dataclass(frozen=True)
class MeasureConfig:
    """What a scale asks of the measurements (all counts in state-action pairs)."""

    n_grid: tuple[int, ...] = (128, 512, 2048, 8192)
    repeats: int = 10
    true_grad_n: int = 65536
    heldout_n: int = 2048
    true_value_n: int = 20480
    landscape_steps: tuple[float, ...] = (0.0, 1.5, 3.0)
    landscape_n: tuple[int, ...] = (2048, 8192)
    landscape_ref_n: int = 16384
    high_sample_step_n: int = 16384
    step_eval_n: int = 16384
    """Pairs behind each true-reward estimate of a step's effect (paper: 1e6)."""

    @classmethod
    def from_obj(cls, obj: Any) -> MeasureConfig:
        """Pick the fields of this config from a scale (or any object with those attributes)."""
        kwargs = {}
        for f in dataclasses.fields(cls):
            if hasattr(obj, f.name):
                v = getattr(obj, f.name)
                kwargs[f.name] = tuple(v) if isinstance(v, list) else v
        if kwargs.get("step_eval_n") is None and hasattr(obj, "landscape_ref_n"):
            kwargs["step_eval_n"] = obj.landscape_ref_n
        return cls(**kwargs)


ARGS = {
    "gradients": lambda cfg: {"n_grid": list(cfg.n_grid), "repeats": cfg.repeats,
                              "true_grad_n": cfg.true_grad_n, "true_value_n": cfg.true_value_n},
    "value": lambda cfg: {"repeats": cfg.repeats, "heldout_n": cfg.heldout_n},
    "steps": lambda cfg: {"repeats": cfg.repeats, "eval_n": cfg.step_eval_n,
                          "high_n": cfg.high_sample_step_n},
    "landscape": lambda cfg: {"steps": list(cfg.landscape_steps), "ns": list(cfg.landscape_n),
                              "ref_n": cfg.landscape_ref_n},
}
"""The arguments a cached measurement is keyed by (and figures are selected by)."""


def gradients(agent: Agent, cfg: MeasureConfig, seed: int = 0, progress: Any = None
              ) -> GradientStudy:
    args = ARGS["gradients"](cfg)
    return cache.cached("gradients", agent, args, seed, GradientStudy, lambda: gradient_study(
        agent, cfg.n_grid, cfg.repeats, cfg.true_grad_n, cfg.true_value_n, seed, progress))


def value(agent: Agent, cfg: MeasureConfig, seed: int = 0) -> ValueStudy:
    args = ARGS["value"](cfg)
    return cache.cached("value", agent, args, seed, ValueStudy,
                        lambda: value_error(agent, cfg.repeats, cfg.heldout_n, seed))


def steps(agent: Agent, cfg: MeasureConfig, seed: int = 0) -> StepStudy:
    args = ARGS["steps"](cfg)
    return cache.cached("steps", agent, args, seed, StepStudy, lambda: step_study(
        agent, cfg.repeats, cfg.step_eval_n, cfg.high_sample_step_n, seed))


def landscapes(agent: Agent, cfg: MeasureConfig, seed: int = 0, progress: Any = None
               ) -> Landscape:
    args = ARGS["landscape"](cfg)
    return cache.cached("landscape", agent, args, seed, Landscape, lambda: landscape(
        agent, cfg.landscape_steps, cfg.landscape_n, cfg.landscape_ref_n, seed, progress))


__all__ = ["GradientStudy", "figure_data", "Landscape", "MeasureConfig", "StepStudy", "ValueStudy",
           "gradients", "landscapes", "steps", "value"]

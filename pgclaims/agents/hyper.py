"""Checks shared by the PPO and TRPO hyperparameter dataclasses."""

from __future__ import annotations

from typing import Any

BASELINES = ("valuenet", "zero")


def check_common(cfg: Any) -> None:
    """Reject settings the updates cannot run with, before anything is trained or written."""
    if cfg.steps_per_iteration < cfg.minibatches:
        raise ValueError(
            f"steps_per_iteration ({cfg.steps_per_iteration}) must be at least minibatches "
            f"({cfg.minibatches}): each minibatch needs at least one state-action pair"
        )
    if cfg.baseline not in BASELINES:
        raise ValueError(f"baseline must be 'valuenet' or 'zero', got {cfg.baseline!r}")

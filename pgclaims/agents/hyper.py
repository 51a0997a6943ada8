"""Checks shared by the PPO and TRPO hyperparameter dataclasses."""

from __future__ import annotations

from typing import Any

BASELINES = ("valuenet", "zero")
CHOICES = {
    "init": ("orthogonal", "xavier"),
    "adv_norm": ("batch", "minibatch"),
    "time_limit": ("bootstrap", "terminal"),
    "batch_end": ("bootstrap", "last_value"),
}
"""The allowed values of the code-level choice fields of PPOConfig and TRPOConfig."""


def check_common(cfg: Any) -> None:
    """Reject settings the updates cannot run with, before anything is trained or written."""
    if cfg.steps_per_iteration < cfg.minibatches:
        raise ValueError(
            f"steps_per_iteration ({cfg.steps_per_iteration}) must be at least minibatches "
            f"({cfg.minibatches}): each minibatch needs at least one state-action pair"
        )
    if cfg.baseline not in BASELINES:
        raise ValueError(f"baseline must be 'valuenet' or 'zero', got {cfg.baseline!r}")
    for name, allowed in CHOICES.items():
        value = getattr(cfg, name, allowed[0])
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, "
                             f"got {value!r}")
    clip = getattr(cfg, "value_clip", None)
    if clip is not None and not clip > 0:
        raise ValueError(f"value_clip must be None or > 0, got {clip!r}")

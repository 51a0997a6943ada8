"""Checks shared by the PPO and TRPO hyperparameter dataclasses."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

SEED_MAX = 2**32 - 1
"""The largest seed (training or measurement): numpy's and gymnasium's seeds are 32-bit, so a
larger one would be refused (or silently reduced) deep inside a run."""
BASELINES = ("valuenet", "zero")
CHOICES = {
    "init": ("orthogonal", "xavier"),
    "adv_norm": ("batch", "minibatch"),
    "time_limit": ("bootstrap", "terminal"),
    "batch_end": ("bootstrap", "last_value"),
}
"""The allowed values of the code-level choice fields of PPOConfig and TRPOConfig."""


Rule = tuple[Callable[[float], bool], str]
POSITIVE: Rule = (lambda v: v > 0, "> 0")
NON_NEGATIVE: Rule = (lambda v: v >= 0, ">= 0")
UNIT_OPEN: Rule = (lambda v: 0 < v < 1, "in (0, 1)")
UNIT_HALF_OPEN: Rule = (lambda v: 0 < v <= 1, "in (0, 1]")
UNIT_CLOSED: Rule = (lambda v: 0 <= v <= 1, "in [0, 1]")
REALS: dict[str, Rule] = {
    "policy_lr": POSITIVE, "value_lr": POSITIVE, "max_kl": POSITIVE, "clip_eps": POSITIVE,
    "adam_eps": POSITIVE, "cg_damping": NON_NEGATIVE, "entropy_coef": NON_NEGATIVE,
    "accept_ratio": NON_NEGATIVE, "gamma": UNIT_HALF_OPEN, "gae_lambda": UNIT_CLOSED,
    "fisher_fraction": UNIT_HALF_OPEN, "backtrack_coeff": UNIT_OPEN,
}
"""Real-valued hyperparameters: finite, and in these ranges (a KL bound of -1 or an infinite
learning rate trains nothing, or trains NaN)."""
COUNTS = ("steps_per_iteration", "epochs", "value_epochs", "minibatches", "cg_iters",
          "backtrack_iters")
"""Integer hyperparameters, each at least 1."""


UNKNOWN_OK = ("policy_lr", "value_lr", "max_kl")
"""Step sizes an adapted agent may not know (NaN: its steps cannot be replayed,
:mod:`pgclaims.adapters.interface`); training needs every one (:func:`check_numbers` with
``unknown=False``)."""


def check_numbers(cfg: Any, unknown: bool = True) -> None:
    """Every numeric field of ``cfg`` finite and in its range, one line naming the field; NaN
    is accepted for the step sizes of :data:`UNKNOWN_OK` when ``unknown`` (not for training)."""
    for name, (ok, rule) in REALS.items():
        if not hasattr(cfg, name):
            continue
        v = getattr(cfg, name)
        if unknown and name in UNKNOWN_OK and isinstance(v, float) and math.isnan(v):
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or (
                not ok(v)):
            raise ValueError(f"{name} must be a finite number {rule}, got {v!r}")
    for name in COUNTS:
        if not hasattr(cfg, name):
            continue
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")


def check_overrides(cls: type, algo: str, overrides: dict[str, Any]) -> None:
    """Refuse a hyperparameter of the other algorithm (or none at all) by name."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not {algo.upper()} hyperparameters "
                         f"({algo.upper()} has {', '.join(sorted(names))})")


def from_table(cls: type, algo: str, env_id: str, table: dict[str, dict[str, Any]],
               needed: tuple[str, ...], overrides: dict[str, Any]) -> Any:
    """``cls`` with Table 1's row for ``env_id`` updated by ``overrides``; an env without a
    row needs the ``needed`` hyperparameters among the overrides."""
    row = table.get(env_id)
    if row is None and not set(needed) <= overrides.keys():
        raise ValueError(
            f"Table 1 has no {algo.upper()} row for {env_id!r}: pass {' and '.join(needed)} "
            f"(rows exist for {', '.join(table)})")
    check_overrides(cls, algo, overrides)
    return cls(**{**(row or {}), **overrides})


def check_common(cfg: Any) -> None:
    """Reject settings the updates cannot run with, before anything is trained or written."""
    check_numbers(cfg)
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
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float)
                             or not math.isfinite(clip) or not clip > 0):
        raise ValueError(f"value_clip must be None or a finite number > 0, got {clip!r}")

"""How many state-action pairs each measurement samples, without sampling.

One function per measurement of this package, each the arithmetic of its sampling loop
(:func:`pgclaims.measure.gradients.gradient_study`, :func:`~pgclaims.measure.value.value_error`,
:func:`~pgclaims.measure.landscape.step_study`, :func:`~pgclaims.measure.landscape.landscape`);
``tests/test_budget.py`` checks each against the pairs the real measurement reports having
drawn. The counts are of the frozen sampler's batches: the ``corrected`` protocol's returns
continuations (up to 688 steps past each cut) come on top and are not counted.
"""

from __future__ import annotations

from typing import Any

from pgclaims.measure.sampler import CHUNK

KINDS = ("gradients", "value", "steps", "landscape")
"""The cached measurements of :mod:`pgclaims.measure` a claims run requests."""


def _chunks(n: int) -> int:
    """Whole 2048-pair chunks covering ``n`` pairs."""
    return -(-n // CHUNK)


def gradient_parts(cfg: Any) -> dict[str, int]:
    """Pairs of one gradient study by purpose: the true-value fit, the ``repeats`` estimate
    streams (with their shorter batches below 2048), and the extra pool that tops the
    leave-one-out true gradient up to ``true_grad_n``."""
    small = [n for n in cfg.n_grid if n < CHUNK]
    big = [_chunks(n) * CHUNK for n in cfg.n_grid if n >= CHUNK]
    n_max = max(big) if big else CHUNK
    extra = max(0, cfg.true_grad_n - (cfg.repeats - 1) * n_max)
    return {"true_value": _chunks(cfg.true_value_n) * CHUNK if cfg.true_value_n else 0,
            "streams": cfg.repeats * (sum(small) + n_max),
            "extra_pool": _chunks(extra) * CHUNK}


def gradient_pairs(cfg: Any) -> int:
    return sum(gradient_parts(cfg).values())


def value_pairs(cfg: Any) -> int:
    """``repeats`` held-out batches (the train pairs are the checkpoint's own record)."""
    return cfg.repeats * cfg.heldout_n


def step_pairs(cfg: Any) -> int:
    """``repeats`` 2048-pair steps, the high-sample step's batch, and a true-reward estimate at
    theta0, after each step and after the high-sample step (none with ``step_eval_n`` 0)."""
    high = cfg.high_sample_step_n
    evals = 1 + cfg.repeats + (1 if high else 0)
    return cfg.repeats * CHUNK + high + evals * cfg.step_eval_n


def landscape_pairs(cfg: Any) -> int:
    """The step's batch, then every grid point once per N and once for the reference."""
    points = len(cfg.landscape_steps) ** 2
    return CHUNK + points * (sum(cfg.landscape_n) + cfg.landscape_ref_n)


def pairs(kind: str, cfg: Any) -> int:
    """Pairs the measurement ``kind`` samples with the sample counts of ``cfg`` (a
    :class:`pgclaims.measure.MeasureConfig`)."""
    counts = {"gradients": gradient_pairs, "value": value_pairs, "steps": step_pairs,
              "landscape": landscape_pairs}
    if kind not in counts:
        raise ValueError(f"unknown measurement {kind!r}: expected one of {', '.join(KINDS)}")
    return counts[kind](cfg)


def training_pairs(iterations: int, steps_per_iteration: int = CHUNK) -> int:
    """A training run: one batch per iteration."""
    return iterations * steps_per_iteration

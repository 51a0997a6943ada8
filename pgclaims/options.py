"""Checked command-line values: every number finite and in range, refused by argparse with one
line naming the option (``pgclaims train: error: argument --value-lr: expected a finite number
> 0, got 'inf'``) before anything is trained, measured or written."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from pgclaims.agents.hyper import SEED_MAX


def real(rule: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: a finite float for which ``ok`` holds (``rule`` says which)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or not ok(v):
            raise argparse.ArgumentTypeError(f"expected a finite number {rule}, got {text!r}")
        return v

    parse.__name__ = "number"  # argparse names the type in some messages
    return parse


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low`` (and <= ``high`` when given)."""
    rule = f">= {low}" if high is None else f"in {low}..{high}"

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {rule}, got {text!r}") from None
        if v < low or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"expected an integer {rule}, got {text!r}")
        return v

    parse.__name__ = "integer"
    return parse


def int_list(text: str) -> tuple[int, ...]:
    """Comma-separated integers >= 0, at least one (``--checkpoints``, ``--seeds``)."""
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {text!r}")
    negative = [v for v in values if v < 0]
    if negative:
        raise argparse.ArgumentTypeError(f"expected integers >= 0, got {negative}")
    return values


def seed_list(text: str) -> tuple[int, ...]:
    """Comma-separated seeds, each in 0..:data:`SEED_MAX` (``--seeds``)."""
    values = int_list(text)
    large = [v for v in values if v > SEED_MAX]
    if large:
        raise argparse.ArgumentTypeError(f"expected seeds in 0..{SEED_MAX}, got {large}")
    return values


def positive_list(text: str) -> tuple[float, ...]:
    """Comma-separated finite numbers > 0, at least one (``--multipliers``)."""
    parse = real("> 0", lambda v: v > 0)
    values = tuple(parse(x.strip()) for x in text.split(",") if x.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    return values


def count_list(text: str) -> tuple[int, ...]:
    """Comma-separated integers >= 1, at least one (``--steps`` of train-ablations)."""
    values = int_list(text)
    if 0 in values:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


SEED = integer(0, SEED_MAX)
POSITIVE = real("> 0", lambda v: v > 0)
FRACTION = real("in (0, 1]", lambda v: 0 < v <= 1)
COUNT = integer(1)
NON_NEGATIVE_INT = integer(0)

__all__ = ["COUNT", "FRACTION", "NON_NEGATIVE_INT", "POSITIVE", "SEED", "SEED_MAX",
           "count_list", "int_list", "integer", "positive_list", "real", "seed_list"]

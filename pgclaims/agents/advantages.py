"""Advantages of a batch under a baseline, with each protocol's handling of cuts.

GAE itself is :mod:`pgclaims.agents.gae`; this module decides what the next value of every row
is (a terminal, a time-limit cut, the batch end) and how the policy update sees the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pgclaims.agents.gae import gae, next_values
from pgclaims.agents.networks import ValueNet
from pgclaims.agents.rollout import Batch


@dataclass
class Advantages:
    """Advantages of a batch under a baseline, and the value-net regression targets."""

    raw: np.ndarray
    """Unnormalized advantages (reward-scaled units)."""
    normalized: np.ndarray
    """What the surrogate uses (eq. 14)."""
    values: np.ndarray
    """V_old(s_t) under the agent's value net (0 for the zero baseline)."""
    targets: np.ndarray
    """V_old + A_GAE: the value net's regression target (eq. 4)."""


def normalize(adv: np.ndarray, center: bool) -> np.ndarray:
    """Batch advantage normalization. The zero baseline is scaled, not centered: centering
    would subtract the batch mean, which is itself a (constant) baseline."""
    if center:
        adv = adv - adv.mean()
    return adv / (adv.std() + 1e-8)


def episode_steps(ends: np.ndarray) -> np.ndarray:
    """Each row's step number within its trajectory (1 at a reset; every batch starts at one)."""
    steps = np.empty(len(ends), np.int64)
    k = 0
    for t in range(len(ends)):
        k += 1
        steps[t] = k
        if ends[t]:
            k = 0
    return steps


def time_limit_cuts(batch: Batch, max_episode_steps: int | None) -> np.ndarray:
    """Rows cut by the environment's time limit (the rest of ``truncated`` is the batch end)."""
    if max_episode_steps is None:
        return np.zeros(len(batch), bool)
    return batch.truncated & (episode_steps(batch.ends) >= max_episode_steps)


def treated_terminal(batch: Batch, time_limit: str, max_episode_steps: int | None) -> np.ndarray:
    """Rows whose successor's value counts as 0: true terminals, and time-limit cuts when the
    protocol treats them as terminal."""
    if time_limit == "terminal":
        return batch.terminated | time_limit_cuts(batch, max_episode_steps)
    return batch.terminated.copy()


def advantages(
    value: ValueNet, batch: Batch, gamma: float, lam: float, baseline: str = "valuenet",
    *, time_limit: str = "bootstrap", batch_end: str = "bootstrap",
    max_episode_steps: int | None = None,
) -> Advantages:
    """GAE advantages of ``batch`` under the value net, or returns under the zero baseline.

    ``time_limit="terminal"`` gives a time-limit cut next value 0; ``batch_end="last_value"``
    gives the batch's last step its own value as next value (both as the authors' code does);
    otherwise a cut bootstraps from the value of its final observation."""
    with torch.no_grad():
        values = value(torch.from_numpy(batch.obs)).double().numpy()
        final_values = value(torch.from_numpy(batch.final_obs)).double().numpy()
    terminal = treated_terminal(batch, time_limit, max_episode_steps)
    truncated = batch.truncated & ~terminal
    final_values = final_values[truncated[batch.truncated]]
    if batch_end == "last_value" and truncated[-1] and not (
            time_limit_cuts(batch, max_episode_steps)[-1]):
        final_values = final_values.copy()
        final_values[-1] = values[-1]
    nxt = next_values(values, final_values, terminal, truncated)
    adv = gae(batch.rewards, values, nxt, batch.ends, gamma, lam)
    targets = values + adv
    if baseline == "valuenet":
        return Advantages(adv, normalize(adv, center=True), values, targets)
    if baseline == "zero":
        zeros = np.zeros_like(values)
        nxt0 = next_values(zeros, np.zeros_like(final_values), terminal, truncated)
        returns = gae(batch.rewards, zeros, nxt0, batch.ends, gamma, 1.0)
        return Advantages(returns, normalize(returns, center=False), zeros, targets)
    raise ValueError(f"unknown baseline {baseline!r}: expected 'valuenet' or 'zero'")


def policy_advantages(hyper: Any, adv: Advantages) -> tuple[torch.Tensor, bool]:
    """What the policy update takes: batch-normalized advantages, or raw ones that PPO
    normalizes per minibatch; and whether to center (not for the zero baseline)."""
    center = hyper.baseline == "valuenet"
    if getattr(hyper, "adv_norm", "batch") == "minibatch":
        return torch.from_numpy(adv.raw).float(), center
    return torch.from_numpy(adv.normalized).float(), center

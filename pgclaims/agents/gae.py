"""Generalized advantage estimation (Schulman et al., 2015c), given each row's next value.

Which rows are terminal and what a cut row's next value is (bootstrapped, 0 as the authors'
code treats a time limit, or the row's own value at the batch end) is decided by the protocol,
in :mod:`pgclaims.agents.advantages`. Treating a 1000-step cut as terminal biases value targets
near the cut (Pardo et al., 2018): a cut is not a property of the MDP. The ``corrected``
protocol bootstraps; ``authors`` mirrors the code.
"""

from __future__ import annotations

import numpy as np


def next_values(
    values: np.ndarray, final_values: np.ndarray, terminated: np.ndarray, truncated: np.ndarray
) -> np.ndarray:
    """V(s_{t+1}) for every t: the next row's value, 0 after a terminal step, and the value of
    the stored final observation after a truncated step (``final_values`` in row order)."""
    nxt = np.empty_like(values)
    nxt[:-1] = values[1:]
    nxt[terminated] = 0.0
    if truncated.sum() != len(final_values):
        raise ValueError(
            f"{int(truncated.sum())} truncated steps but {len(final_values)} final values"
        )
    nxt[truncated] = final_values
    return nxt


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_vals: np.ndarray,
    ends: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Advantages A_t = sum_k (gamma lam)^k delta_{t+k}, the sum cut at each trajectory end.

    ``next_vals`` comes from :func:`next_values`; ``ends`` = terminated | truncated. With lam = 1
    this is the discounted return (bootstrapped at truncation) minus V; with lam = 0 the TD
    residual.
    """
    deltas = rewards + gamma * next_vals - values
    adv = np.empty_like(deltas)
    running = 0.0
    decay = gamma * lam
    for t in range(len(deltas) - 1, -1, -1):
        if ends[t]:
            running = 0.0
        running = deltas[t] + decay * running
        adv[t] = running
    return adv


def discounted_returns(
    rewards: np.ndarray, next_vals: np.ndarray, ends: np.ndarray, gamma: float
) -> np.ndarray:
    """Discounted return-to-go, cut at each trajectory end where ``next_vals`` is added."""
    out = np.empty_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        if ends[t]:
            running = next_vals[t]
        running = rewards[t] + gamma * running
        out[t] = running
    return out

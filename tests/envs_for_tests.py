"""Environments with a closed-form policy gradient, registered with gymnasium for the tests.

``pgclaims-test/Bandit-v0``: one step per episode from a constant observation; the reward is
``-SCALE * sum_d (a_d - TARGET_d)^2``. For a diagonal Gaussian policy with mean m and log-std
s (both functions of theta through the constant observation),

    J(theta) = E[r] = -SCALE * sum_d ((m_d - TARGET_d)^2 + exp(2 s_d)),

so the true policy gradient is autograd on :func:`bandit_objective`. With one-step episodes the
GAE advantage is r - V(obs), a constant shift, so the normalized-advantage estimator of eq. (1)
converges to grad J / std(r): parallel to the true gradient.

Importing this module registers the environment (idempotently).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from pgclaims.agents.networks import GaussianPolicy

BANDIT = "pgclaims-test/Bandit-v0"
OBS = np.array([0.5, -1.0, 2.0])
"""The constant observation (inside the [-10, 10] observation clip, so frozen at iteration 0
the normalizer passes it through unchanged)."""
TARGET = np.array([0.5, -0.3])
SCALE = 0.1
"""Keeps rewards far from the [-10, 10] reward clip (it would bias E[r])."""


class Bandit(gym.Env):
    """A one-step continuous bandit with a quadratic reward."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-10.0, 10.0, OBS.shape, np.float64)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, TARGET.shape, np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return OBS.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward = -SCALE * float(np.sum((np.asarray(action, float) - TARGET) ** 2))
        return OBS.copy(), reward, True, False, {}


def bandit_objective(policy: GaussianPolicy) -> torch.Tensor:
    """J(theta) = E[r] in closed form, differentiable in the policy's parameters."""
    p = next(policy.parameters())
    m = policy.mean(torch.as_tensor(OBS, dtype=p.dtype))
    target = torch.as_tensor(TARGET, dtype=p.dtype)
    return -SCALE * ((m - target).pow(2) + (2 * policy.log_std).exp()).sum()


if BANDIT not in gym.registry:
    gym.register(BANDIT, entry_point=Bandit)

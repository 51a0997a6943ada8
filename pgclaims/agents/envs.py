"""MuJoCo environments and the paper's preprocessing (Table 1 of Ilyas et al., 2020).

The paper used mujoco-py ``*-v2`` tasks; their maintained equivalents are gymnasium's ``*-v5`` on
the ``mujoco`` bindings (Humanoid-v5 observations are 348-dim, v2 had 376). The normalizers live
here rather than in gymnasium wrappers so that their statistics are part of a checkpoint and can
be frozen for measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

PAPER_ENVS: dict[str, str] = {
    "Hopper-v2": "Hopper-v5",
    "Walker2d-v2": "Walker2d-v5",
    "Humanoid-v2": "Humanoid-v5",
}
"""The paper's environment -> the one we run."""

SUPPORTED_ENVS: tuple[str, ...] = tuple(PAPER_ENVS.values())
OBS_CLIP = 10.0
"""Table 1, "State clipping [-10, 10]"."""
REWARD_CLIP = 10.0
"""Table 1, "Reward clipping [-10, 10]"."""


class EnvError(ValueError):
    """An environment id that gymnasium cannot make, or one without a Box action space."""


def make_env(env_id: str) -> gym.Env:
    """Make ``env_id`` with gymnasium's TimeLimit and without the passive checker.

    Any registered environment with Box observation and action spaces works; the paper's three
    are in :data:`SUPPORTED_ENVS`.
    """
    if env_id in PAPER_ENVS:
        raise EnvError(
            f"{env_id!r} is the paper's mujoco-py id, which gymnasium no longer ships; "
            f"use {PAPER_ENVS[env_id]!r}"
        )
    try:
        env = gym.make(env_id, disable_env_checker=True)
    except gym.error.Error as exc:
        known = ", ".join(SUPPORTED_ENVS)
        raise EnvError(
            f"unknown environment id {env_id!r} ({exc}); the paper's are: {known}") from exc
    if not isinstance(env.action_space, gym.spaces.Box) or not isinstance(
        env.observation_space, gym.spaces.Box
    ):
        env.close()
        raise EnvError(f"{env_id!r} needs Box observation and action spaces")
    return env


@dataclass
class RunningMeanStd:
    """Running mean and variance (Welford), as the authors' ``RunningStat``.

    ``var`` is the sample variance (n - 1) for n > 1 and ``mean**2`` for n == 1, exactly like the
    authors' code, so that the first reward is scaled to magnitude 1 rather than divided by 0.
    """

    mean: np.ndarray
    m2: np.ndarray
    count: int = 0

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> RunningMeanStd:
        return cls(np.zeros(shape, np.float64), np.zeros(shape, np.float64), 0)

    def push(self, x: np.ndarray) -> None:
        self.count += 1
        if self.count == 1:
            self.mean[...] = x
            return
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)

    @property
    def var(self) -> np.ndarray:
        if self.count > 1:
            return self.m2 / (self.count - 1)
        return np.square(self.mean)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)


@dataclass
class ObsNormalizer:
    """z-score with running statistics, clipped to [-10, 10] (Table 1)."""

    stats: RunningMeanStd
    clip: float = OBS_CLIP

    def __call__(self, obs: np.ndarray, update: bool) -> np.ndarray:
        if update:
            self.stats.push(obs)
        if self.stats.count == 0:
            return np.clip(obs, -self.clip, self.clip)
        return np.clip((obs - self.stats.mean) / (self.stats.std + 1e-8), -self.clip, self.clip)


@dataclass
class RewardScaler:
    """Divide rewards by the running std of the discounted return, then clip (Table 1).

    ``normalize=False`` (TRPO in Table 1) keeps only the clipping. ``ret`` is the discounted
    return of the current episode; it restarts at every reset.
    """

    stats: RunningMeanStd
    gamma: float
    normalize: bool
    clip: float = REWARD_CLIP
    ret: float = 0.0

    def reset(self) -> None:
        self.ret = 0.0

    def __call__(self, reward: float, update: bool) -> float:
        if not self.normalize:
            return float(np.clip(reward, -self.clip, self.clip))
        self.ret = self.ret * self.gamma + reward
        if update:
            self.stats.push(np.asarray(self.ret))
        scaled = reward / (float(self.stats.std) + 1e-8) if self.stats.count else reward
        return float(np.clip(scaled, -self.clip, self.clip))


class FrozenObsNorm:
    """:class:`ObsNormalizer` with its statistics fixed (measurement): the same arithmetic,
    with the standard deviation computed once instead of at every step (it is ~10% of a step)."""

    def __init__(self, norm: ObsNormalizer) -> None:
        self.clip = norm.clip
        self.identity = norm.stats.count == 0
        self.mean = norm.stats.mean.copy()
        self.denom = norm.stats.std + 1e-8

    def __call__(self, obs: np.ndarray, update: bool) -> np.ndarray:
        if update:
            raise ValueError("a frozen normalizer cannot be updated")
        x = obs if self.identity else (obs - self.mean) / self.denom
        return np.minimum(np.maximum(x, -self.clip), self.clip)


class FrozenRewardScaler:
    """:class:`RewardScaler` with its statistics fixed (measurement). Without updates the
    running return never feeds back into the scale, so it is not tracked."""

    def __init__(self, scaler: RewardScaler) -> None:
        self.clip = scaler.clip
        self.denom = (float(scaler.stats.std) + 1e-8
                      if scaler.normalize and scaler.stats.count else None)

    def reset(self) -> None:
        pass

    def __call__(self, reward: float, update: bool) -> float:
        if update:
            raise ValueError("a frozen reward scaler cannot be updated")
        scaled = reward / self.denom if self.denom is not None else reward
        return min(max(scaled, -self.clip), self.clip)

"""The gymnasium collector: run a policy and collect state-action pairs as trajectories.

It serves training (normalizers updated as the authors' filters do) and measurement
(normalizers frozen) on any gymnasium environment, one step at a time. For the MuJoCo tasks
both collect through :mod:`pgclaims.agents.collector` instead, which steps MuJoCo directly,
many streams in lockstep, and reproduces this function bit for bit (training's row-by-row
forward pass); :func:`collect` is its reference. Every batch starts from a fresh reset seeded
from ``rng``, as in the authors' code, so a batch depends only on (policy, normalizer state,
rng state): resuming a run and re-sampling a checkpoint are exact. The last trajectory of a
batch is cut at ``n_steps`` and flagged truncated, like a time-limit truncation.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from pgclaims.agents.envs import ObsNormalizer, RewardScaler
from pgclaims.agents.networks import NumpyPolicy


@dataclass
class Batch:
    """``n`` consecutive state-action pairs, trajectories laid end to end.

    ``obs`` are normalized as the networks saw them; ``rewards`` are after the agent's own
    scaling and clipping (value-target units), ``raw_rewards`` the environment's. ``terminated``
    marks a true terminal step (next value 0); ``truncated`` marks a time-limit cut or the end
    of the batch (next value bootstrapped from ``final_obs`` at that row).
    """

    obs: np.ndarray  # (n, obs_dim) float32
    actions: np.ndarray  # (n, act_dim) float32
    rewards: np.ndarray  # (n,) float64
    raw_rewards: np.ndarray  # (n,) float64
    terminated: np.ndarray  # (n,) bool
    truncated: np.ndarray  # (n,) bool
    final_obs: np.ndarray  # (n_truncated, obs_dim) normalized obs after each truncated step
    episode_returns: np.ndarray  # raw undiscounted returns of the complete episodes
    episode_lengths: np.ndarray
    cut_states: np.ndarray | None = None
    """(n_truncated, nq + nv) MuJoCo qpos and qvel after each truncated step (where the cut
    trajectory would continue), or None for an environment without MuJoCo state."""

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def ends(self) -> np.ndarray:
        return self.terminated | self.truncated

    @property
    def n_trajectories(self) -> int:
        """Trajectories (complete or cut) in the batch."""
        return int(self.ends.sum())

    @property
    def n_complete(self) -> int:
        """Episodes that ended by termination or by the time limit, i.e. not cut by the batch."""
        return len(self.episode_returns)


def collect(
    env: gym.Env,
    policy: NumpyPolicy,
    obs_norm: ObsNormalizer,
    reward_scaler: RewardScaler,
    n_steps: int,
    rng: np.random.Generator,
    *,
    update_normalizers: bool,
) -> Batch:
    """Run ``policy`` for ``n_steps`` state-action pairs from a fresh, seeded reset."""
    obs_dim = env.observation_space.shape[0]
    act_dim = env.action_space.shape[0]
    obs_buf = np.empty((n_steps, obs_dim), np.float32)
    act_buf = np.empty((n_steps, act_dim), np.float32)
    rew = np.empty(n_steps)
    raw = np.empty(n_steps)
    term = np.zeros(n_steps, bool)
    trunc = np.zeros(n_steps, bool)
    final_obs: list[np.ndarray] = []
    cut_states: list[np.ndarray] = []
    data = getattr(env.unwrapped, "data", None)
    has_state = data is not None and hasattr(data, "qpos") and hasattr(data, "qvel")
    ep_returns: list[float] = []
    ep_lengths: list[int] = []

    raw_obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
    reward_scaler.reset()
    obs = obs_norm(raw_obs, update_normalizers)
    ep_ret, ep_len = 0.0, 0
    for t in range(n_steps):
        action = policy.sample(obs, rng)
        obs_buf[t] = obs
        act_buf[t] = action
        raw_obs, r, terminated, truncated, _ = env.step(action)
        raw[t] = r
        rew[t] = reward_scaler(float(r), update_normalizers)
        ep_ret += float(r)
        ep_len += 1
        next_obs = obs_norm(raw_obs, update_normalizers)
        if terminated or truncated or t == n_steps - 1:
            term[t] = terminated
            trunc[t] = not terminated
            if trunc[t]:
                final_obs.append(next_obs)
                if has_state:
                    cut_states.append(np.concatenate([data.qpos, data.qvel]))
            if terminated or truncated:
                ep_returns.append(ep_ret)
                ep_lengths.append(ep_len)
            if t < n_steps - 1:
                raw_obs, _ = env.reset()
                reward_scaler.reset()
                next_obs = obs_norm(raw_obs, update_normalizers)
            ep_ret, ep_len = 0.0, 0
        obs = next_obs
    return Batch(
        obs=obs_buf,
        actions=act_buf,
        rewards=rew,
        raw_rewards=raw,
        terminated=term,
        truncated=trunc,
        final_obs=np.asarray(final_obs, np.float32).reshape(-1, obs_dim),
        episode_returns=np.asarray(ep_returns),
        episode_lengths=np.asarray(ep_lengths, np.int64),
        cut_states=np.asarray(cut_states, np.float64).reshape(
            len(final_obs), data.qpos.size + data.qvel.size) if has_state else None,
    )

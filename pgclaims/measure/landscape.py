"""Steps and optimization landscapes (A.4; Figures 5, 6, 7, 13-20).

A step is the parameter change the algorithm itself makes from a batch: PPO's change after its
epochs of minibatch Adam from the checkpoint's optimizer state; TRPO's natural step after the
line search. The surrogate is the algorithm's own objective on that batch (PPO: clipped;
TRPO: eq. 14). The landscape is theta0 + a * step + b * d on a grid, d a seeded Gaussian
direction of unit L2 norm.

Reward estimates on a landscape grid use independent seeds per point: their jaggedness at low N
is what Figure 5 measures. Before/after comparisons of a single step (does the reward fall?)
use common random numbers (the same seeds at theta0 and theta0 + step), so the comparison is
not dominated by sampling noise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pgclaims.agents import ppo, trpo
from pgclaims.agents.agent import Agent, agent_advantages, lr_factor, policy_advantages
from pgclaims.agents.networks import flat_params, set_flat_params
from pgclaims.agents.rollout import Batch
from pgclaims.measure.gradients import loo_pairwise
from pgclaims.measure.parallel import study_map
from pgclaims.measure.sampler import CHUNK, mean_episode_return, perturbed_module, rng_for


@dataclass
class Step:
    theta0: torch.Tensor
    delta: torch.Tensor
    batch: Batch
    obs: torch.Tensor
    actions: torch.Tensor
    logp_old: torch.Tensor
    adv: torch.Tensor

    def objective(self, agent: Agent, theta: torch.Tensor) -> float:
        """The algorithm's own surrogate at ``theta`` on this step's batch."""
        policy = copy.deepcopy(agent.policy)
        set_flat_params(policy, theta.float())
        with torch.no_grad():
            logp = policy.log_prob(self.obs, self.actions)
            if isinstance(agent.hyper, ppo.PPOConfig):
                return float(ppo.clipped_surrogate(logp, self.logp_old, self.adv,
                                                   agent.hyper.clip_eps))
            return float((torch.exp(logp - self.logp_old) * self.adv).mean())


def algorithm_step(agent: Agent, batch: Batch, rng: np.random.Generator) -> Step:
    """The update the algorithm makes from ``batch``, applied to a copy of the checkpoint."""
    hp = agent.hyper
    policy = copy.deepcopy(agent.policy)
    advs = agent_advantages(agent, batch)
    adv_update, center = policy_advantages(hp, advs)
    adv = torch.from_numpy(advs.normalized).float()  # the surrogate's advantages (eq. 14)
    obs, act = torch.from_numpy(batch.obs), torch.from_numpy(batch.actions)
    with torch.no_grad():
        logp_old = policy.log_prob(obs, act)
    if isinstance(hp, ppo.PPOConfig):
        assert agent.policy_opt is not None
        opt = torch.optim.Adam(policy.parameters(), lr=hp.policy_lr, eps=hp.adam_eps, fused=True)
        # a copy: load_state_dict keeps the checkpoint's moment tensors when dtype and device
        # match, and Adam updates them in place, so each step would start from the last one's
        opt.load_state_dict(copy.deepcopy(agent.policy_opt.state_dict()))
        for group in opt.param_groups:  # the LR the agent's next iteration would use
            group["lr"] = hp.policy_lr * lr_factor(hp, agent.iteration, agent.config.iterations)
        ppo.policy_update(policy, opt, obs, act, logp_old, adv_update, hp, rng, center=center)
    else:
        trpo.policy_update(policy, obs, act, logp_old, adv_update, hp, rng)
    theta0 = flat_params(agent.policy).double()
    return Step(theta0, flat_params(policy).double() - theta0, batch, obs, act, logp_old, adv)


@dataclass
class StepStudy:
    """Independent 2K steps at one checkpoint, and one high-sample step."""

    pairwise: np.ndarray
    """(repeats,): step i's mean cosine with the other steps (A.4)."""
    surrogate_gain: np.ndarray
    """(repeats,): surrogate(a=1) - surrogate(a=0) on the step's own batch."""
    reward_change: np.ndarray
    """(repeats,): true reward at theta0 + step minus at theta0 (common random numbers)."""
    high_reward_change: np.ndarray
    """(1,): the same for the step from ``high_n`` pairs."""
    step_norms: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def _batch(batch: Batch, arg: Any) -> Batch:
    return batch


def _batches(agent: Agent, jobs: list[tuple[int, tuple[int, ...]]], seed: int) -> list[Batch]:
    """The batches of ``(pairs, rng path)`` jobs drawn with the checkpoint's policy (copied
    when they arrive read-only, as Ray's object store hands out its arrays)."""
    batches = study_map(agent, _batch, [(n, path, None) for n, path in jobs], seed)
    return [b if b.obs.flags.writeable else copy.deepcopy(b) for b in batches]


def _rewards(agent: Agent, thetas: list[torch.Tensor], n: int,
             rng_paths: list[tuple[int, ...]], seed: int) -> list[float]:
    """The true reward (mean episode return from ``n`` pairs) at each of ``thetas``, the
    i-th from the stream ``rng_paths[i]``; drawn together (in lockstep, or on the cluster),
    each as if alone."""
    jobs = [(n, path, None, perturbed_module(agent.policy, th))
            for path, th in zip(rng_paths, thetas, strict=True)]
    return study_map(agent, _mean_return, jobs, seed)


def _mean_return(batch: Batch, arg: Any) -> float:
    return mean_episode_return(batch)


def step_study(agent: Agent, repeats: int, eval_n: int, high_n: int, seed: int) -> StepStudy:
    if high_n and not eval_n:
        raise ValueError(f"a {high_n}-pair high-sample step needs true-reward evaluations "
                         "(eval_n > 0) to say what it did")
    torch.set_num_threads(1)
    batches = _batches(agent, [(CHUNK, (40, r)) for r in range(repeats)], seed)
    steps = [algorithm_step(agent, b, rng_for(seed, 41, r)) for r, b in enumerate(batches)]
    theta0 = steps[0].theta0
    gains = [s.objective(agent, theta0 + s.delta) - s.objective(agent, theta0) for s in steps]
    thetas = [theta0] + [theta0 + s.delta for s in steps]
    if high_n:
        hi = algorithm_step(agent, _batches(agent, [(high_n, (43,))], seed)[0],
                            rng_for(seed, 44))
        thetas.append(theta0 + hi.delta)
    if eval_n:
        # common random numbers: every evaluation draws from the same stream (42,)
        rewards = _rewards(agent, thetas, eval_n, [(42,)] * len(thetas), seed)
    else:  # the scale measures the steps only (grad.steps_disagree): no reward estimates
        rewards = [np.nan] * len(thetas)
    base = rewards[0]
    changes = [r - base for r in rewards[1:1 + len(steps)]]
    high_change = np.array([rewards[-1] - base if high_n else np.nan])
    deltas = np.stack([s.delta.numpy() for s in steps])
    return StepStudy(
        pairwise=loo_pairwise(deltas),
        surrogate_gain=np.asarray(gains),
        reward_change=np.asarray(changes),
        high_reward_change=high_change,
        step_norms=np.linalg.norm(deltas, axis=1),
        meta={"eval_pairs": eval_n, "high_sample_pairs": high_n, "base_reward": base,
              "pairs_sampled": repeats * CHUNK + high_n + eval_n * len(thetas),
              "reward_comparison": "common random numbers at theta0 and theta0 + step"},
    )


@dataclass
class Landscape:
    a: np.ndarray
    b: np.ndarray
    reward: dict[str, np.ndarray]
    """str(N) -> (len(a), len(b)) mean episode return from N pairs per point."""
    reward_ref: np.ndarray
    """An independent high-sample grid: the reference and the "true reward"."""
    surrogate: np.ndarray
    step_norm_ratio: float
    meta: dict[str, Any] = field(default_factory=dict)


def landscape(agent: Agent, steps: tuple[float, ...], ns: tuple[int, ...], ref_n: int,
              seed: int, progress: Any = None) -> Landscape:
    if ref_n in ns:
        raise ValueError(f"the reference grid ({ref_n} pairs) must be independent of the "
                         f"grids it is compared with ({list(ns)}): choose another ref_n")
    torch.set_num_threads(1)
    step = algorithm_step(agent, _batches(agent, [(CHUNK, (50,))], seed)[0], rng_for(seed, 51))
    d = rng_for(seed, 52).standard_normal(len(step.theta0))
    d = torch.from_numpy(d / np.linalg.norm(d))
    a = np.asarray(steps, float)
    grid = {n: np.zeros((len(a), len(a))) for n in (*ns, ref_n)}
    surr = np.zeros((len(a), len(a)))
    points = [(i, j) for i in range(len(a)) for j in range(len(a))]
    thetas = [step.theta0 + a[i] * step.delta + a[j] * d for i, j in points]
    for (i, j), theta in zip(points, thetas, strict=True):
        surr[i, j] = step.objective(agent, theta)
    pairs = CHUNK
    for k, n in enumerate(grid):  # every point at once for each N
        rewards = _rewards(agent, thetas, n, [(53, k, i, j) for i, j in points], seed)
        for (i, j), r in zip(points, rewards, strict=True):
            grid[n][i, j] = r
        pairs += n * len(points)
        if progress:
            progress(f"landscape N {k + 1}/{len(grid)} ({n} pairs per point; "
                     f"{pairs} pairs)")
    ref = grid.pop(ref_n)
    return Landscape(a=a, b=a.copy(), reward={str(n): g for n, g in grid.items()},
                     reward_ref=ref, surrogate=surr,
                     step_norm_ratio=float(step.delta.norm() / d.norm()),
                     meta={"grid_pairs_per_point": list(ns), "reference_pairs": ref_n,
                           "pairs_sampled": pairs,
                           "direction": "Gaussian, unit L2 norm, seeded"})

"""TRPO (Schulman et al., 2015a) as configured in Table 1 of Ilyas et al. (2020).

Code order follows A.1: the gradient g of the surrogate (eq. 14) at theta_old, the Fisher
matrix F estimated on a 10% subsample, s = F^-1 g by conjugate gradient, the maximal step
sqrt(2 delta / s^T F s) s, then a backtracking line search that accepts the first step with
mean KL <= delta (on the whole batch) and a surrogate improvement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pgclaims.agents.hyper import check_common, from_table
from pgclaims.agents.networks import GaussianPolicy, flat_grad, flat_params, set_flat_params

TABLE1_TRPO: dict[str, dict[str, float]] = {
    "Humanoid-v5": {"max_kl": 0.07, "value_lr": 3e-4},
    "Walker2d-v5": {"max_kl": 0.04, "value_lr": 3e-4},
    "Hopper-v5": {"max_kl": 0.13, "value_lr": 2e-4},
}


@dataclass(frozen=True)
class TRPOConfig:
    """TRPO hyperparameters. Defaults and :meth:`for_env` are Table 1 of the paper.

    The line search checks KL on the whole batch (not the Fisher subsample) so the accepted
    step satisfies the constraint the paper states, as the authors' code does. Value network:
    32 minibatches per epoch (authors' code; the table is silent). Initialization, the line
    search's expected-improvement ratio and time-limit handling are protocol fields
    (:mod:`pgclaims.agents.protocol`; the defaults here are ``table1``'s).
    """

    max_kl: float
    """Table 1 "KL constraint (delta)": 0.07 Humanoid, 0.04 Walker2d, 0.13 Hopper (nats)."""
    value_lr: float
    """Table 1 "Value network LR": 3e-4 Humanoid, 3e-4 Walker2d, 2e-4 Hopper."""
    steps_per_iteration: int = 2048
    """Table 1 "Timesteps per iteration" (state-action pairs)."""
    gamma: float = 0.99
    """Table 1 "Discount factor"."""
    gae_lambda: float = 0.95
    """Table 1 "GAE discount"."""
    value_epochs: int = 10
    """Table 1 "Value net num. epochs"."""
    minibatches: int = 32
    """Value-net minibatches per epoch (authors' code)."""
    fisher_fraction: float = 0.1
    """Table 1 "Fisher est. fraction"."""
    cg_iters: int = 10
    """Table 1 "Conjugate grad. steps"."""
    cg_damping: float = 0.1
    """Table 1 "CG damping"."""
    backtrack_iters: int = 10
    """Table 1 "Backtracking steps"."""
    backtrack_coeff: float = 0.5
    """Step shrink factor per backtracking step (authors' code)."""
    reward_normalization: bool = False
    """Table 1 "Reward normalization": Off for TRPO (reward clipping stays on)."""
    baseline: str = "valuenet"
    """"valuenet" (the paper) or "zero" (advantages = returns)."""
    adam_eps: float = 1e-5
    """Adam epsilon for the value net (authors' code)."""
    # Code-level choices Table 1 is silent on; defaults are the ``table1`` protocol, left out
    # of the fixture key at their default (see PPOConfig).
    init: str = "orthogonal"
    """Weight init of both nets: "orthogonal" or "xavier" (authors' TRPO configs)."""
    accept_ratio: float = 0.0
    """Line search: also require actual / expected surrogate improvement > this (authors 0.1)."""
    time_limit: str = "bootstrap"
    """A time-limit cut: "bootstrap" its successor's value, or "terminal" (authors' code)."""
    batch_end: str = "bootstrap"
    """The batch's last step: "bootstrap" from the next state, or "last_value" V(s_last)."""
    value_loss_ends: bool = True
    """Whether the value loss counts steps treated as terminal (authors' code: it does not)."""

    def __post_init__(self) -> None:
        check_common(self)

    @classmethod
    def for_env(cls, env_id: str, **overrides: object) -> TRPOConfig:
        needed = ("max_kl", "value_lr")
        return from_table(cls, "trpo", env_id, TABLE1_TRPO, needed, dict(overrides))


def conjugate_gradient(
    avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int, tol: float = 1e-10
) -> torch.Tensor:
    """Approximately solve A x = b for symmetric positive definite A given x -> A x."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    if rr < tol:  # b = 0 (e.g. constant advantages): the solution is 0, not 0/0
        return x
    for _ in range(iters):
        ap = avp(p)
        alpha = rr / (p @ ap)
        x += alpha * p
        r -= alpha * ap
        rr_new = r @ r
        if rr_new < tol:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def mean_kl(policy: GaussianPolicy, obs: torch.Tensor, mu_old: torch.Tensor,
            log_std_old: torch.Tensor) -> torch.Tensor:
    """Mean over states of KL(pi_old(.|s) || pi(.|s)) for diagonal Gaussians (nats)."""
    mu = policy.mean(obs)
    log_std = policy.log_std
    var_old, var = (2 * log_std_old).exp(), (2 * log_std).exp()
    kl = log_std - log_std_old + (var_old + (mu_old - mu).pow(2)) / (2 * var) - 0.5
    return kl.sum(-1).mean()


def surrogate(policy: GaussianPolicy, obs: torch.Tensor, actions: torch.Tensor,
              logp_old: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """Eq. 14: mean of pi(a|s) / pi_old(a|s) * A."""
    return (torch.exp(policy.log_prob(obs, actions) - logp_old) * adv).mean()


def natural_step(
    policy: GaussianPolicy,
    obs: torch.Tensor,
    actions: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    cfg: TRPOConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The maximal natural-gradient step sqrt(2 delta / s^T F s) s (before the line search)."""
    loss = surrogate(policy, obs, actions, logp_old, adv)
    g = flat_grad(loss, policy)
    n_fisher = max(1, int(round(cfg.fisher_fraction * len(obs))))
    sub = torch.from_numpy(rng.choice(len(obs), n_fisher, replace=False))
    obs_f = obs[sub]
    with torch.no_grad():
        mu_f = policy.mean(obs_f)
        log_std_f = policy.log_std.detach().clone()

    def fvp(v: torch.Tensor) -> torch.Tensor:
        kl = mean_kl(policy, obs_f, mu_f, log_std_f)
        grad_kl = flat_grad(kl, policy, create_graph=True)
        return flat_grad(grad_kl @ v, policy) + cfg.cg_damping * v

    s = conjugate_gradient(fvp, g, cfg.cg_iters)
    shs = float(s @ fvp(s))
    scale = np.sqrt(2 * cfg.max_kl / shs) if shs > 0 else 0.0
    step = s * scale
    return step, {"surrogate_before": loss.item(), "grad_norm": g.norm().item(),
                  "expected_improvement": float(g @ step)}


def policy_update(
    policy: GaussianPolicy,
    obs: torch.Tensor,
    actions: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    cfg: TRPOConfig,
    rng: np.random.Generator,
) -> dict[str, float]:
    """One TRPO step: natural step, then backtracking until KL <= delta and the surrogate rises."""
    full_step, info = natural_step(policy, obs, actions, logp_old, adv, cfg, rng)
    theta_old = flat_params(policy)
    with torch.no_grad():
        mu_old = policy.mean(obs)
        log_std_old = policy.log_std.detach().clone()
        surr_old = info["surrogate_before"]
        accepted, kl, surr = 0.0, 0.0, surr_old
        for i in range(cfg.backtrack_iters):
            frac = cfg.backtrack_coeff**i
            set_flat_params(policy, theta_old + frac * full_step)
            kl = float(mean_kl(policy, obs, mu_old, log_std_old))
            surr = float(surrogate(policy, obs, actions, logp_old, adv))
            improve = surr - surr_old
            expected = frac * info["expected_improvement"]
            ratio_ok = cfg.accept_ratio <= 0 or (expected > 0 and improve / expected
                                                 > cfg.accept_ratio)
            if kl <= cfg.max_kl and improve > 0 and ratio_ok:
                accepted = frac
                break
        else:
            set_flat_params(policy, theta_old)
            kl, surr = 0.0, surr_old
    return {"surrogate": surr, "kl": kl, "step_fraction": accepted, **info}

"""Protocols: every code-level choice, in training and in measurement, where the paper's text is
silent or the authors' code differs from it, as data.

Three protocols:

- ``authors`` (the default): Table 1 wherever it speaks; the authors' public code
  (MadryLab/implementation-matters, commit 1b8af2d) wherever the table is silent, per
  algorithm; and the authors' measurement definitions. Where their configs contradict Table 1
  (Humanoid PPO policy LR 1.5e-4 vs 2.5e-4, no reward or observation clipping for TRPO),
  Table 1 wins: it is what the paper states.
- ``corrected``: the same, except that a time-limit cut and the batch end are bootstrapped
  from the value net instead of treated as terminal, and the measurements use Monte Carlo
  returns continued past every cut and a true-gradient cosine corrected for the true
  gradient's own sampling noise.
- ``table1``: the first fixtures: Table 1 literally, our own choices where it is silent
  (bootstrapped cuts, no annealing, no value clipping, orthogonal init for both algorithms),
  and the first measurement definitions. Kept for comparison; never a stand-in for the other
  two.

Citations name files of the authors' repository. This module is plain data: it imports nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

AUTHORS_REPO = "MadryLab/implementation-matters"


@dataclass(frozen=True)
class Protocol:
    """One protocol's choices. Training fields become fields of PPOConfig / TRPOConfig (and so
    part of a fixture's key); measurement fields are read by :mod:`pgclaims.measure`."""

    name: str
    """``authors``, ``corrected`` or ``table1``."""
    summary: str
    """One sentence for the report."""
    # -- training ---------------------------------------------------------------------------
    time_limit: str
    """A 1000-step cut: "terminal" (next value 0: ``advantage_and_return`` in
    src/policy_gradients/agent.py multiplies V(s_t+1) by not_dones) or "bootstrap"."""
    batch_end: str
    """The batch's last step: "last_value" (its own V(s_T-1) stands for V(s_T), same function)
    or "bootstrap" from the next state's value."""
    value_loss_ends: bool
    """Whether the value loss counts steps treated as terminal (``value_loss_gae`` in
    src/policy_gradients/steps.py averages over not_dones only: False)."""
    ppo_init: str
    """PPO weight init: "orthogonal" (configs/*_ppo.py; ``initialize_weights`` in models.py)."""
    trpo_init: str
    """TRPO weight init: "xavier" uniform, gain 1, zero biases (configs/*_trpo.py)."""
    ppo_anneal_lr: bool
    """PPO: both Adam LRs times 1 - i/T at iteration i (configs/*_ppo.py ``anneal_lr``; the
    LambdaLR in ``Trainer.__init__``, agent.py, stepped after each iteration's updates)."""
    ppo_value_clip: tuple[tuple[str, float | None], ...]
    """PPO value-loss clip per env (``value_clipping``, ``clip_val_eps`` 0.2 in src/MuJoCo.json;
    configs/hopper_ppo.py turns it off, walker_ppo.py and humanoid_ppo.py keep it on)."""
    ppo_adv_norm: str
    """PPO advantage normalization: per "minibatch" (``surrogate_reward`` in steps.py
    normalizes each minibatch's advantages) or over the "batch"."""
    trpo_accept_ratio: float
    """TRPO line search: accept only if actual / expected surrogate gain > this
    (``backtracking_line_search`` in src/policy_gradients/torch_utils.py: 0.1)."""
    # -- measurement -------------------------------------------------------------------------
    returns_target: str
    """The value net's "returns" target: "to_cut" (discounted rewards up to the next cut, no
    bootstrap: ``discount_path`` in torch_utils.py), "continued" (the trajectory continued past
    every cut with the same policy) or "cut_excluded" (states within H steps of a cut
    dropped; the first pgclaims definition)."""
    mre_states: str
    """States a value MRE averages over: "not_ends" (``value_loss_returns`` in steps.py masks
    done steps) or "all"."""
    heldout_policy: str
    """Held-out pairs for the value error come from the "pre_update" policy (``take_steps``
    in agent.py draws them before the update) or the "checkpoint" (post-update) policy."""
    true_cosine: str
    """Cosine with the true gradient: "raw" (the paper's) or "debiased" (|g_true|^2 estimated
    without bias from independent pools; see :mod:`pgclaims.measure.gradients`)."""

    def training_choices(self, algo: str, env_id: str) -> dict[str, Any]:
        """The PPOConfig / TRPOConfig fields this protocol sets for ``algo`` on ``env_id``."""
        common = {"time_limit": self.time_limit, "batch_end": self.batch_end,
                  "value_loss_ends": self.value_loss_ends}
        if algo == "ppo":
            clips = dict(self.ppo_value_clip)
            return {**common, "init": self.ppo_init, "anneal_lr": self.ppo_anneal_lr,
                    "value_clip": clips.get(env_id, clips.get("*")),
                    "adv_norm": self.ppo_adv_norm}
        return {**common, "init": self.trpo_init, "accept_ratio": self.trpo_accept_ratio}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ppo_value_clip"] = {k: v for k, v in self.ppo_value_clip}
        return d

    def differences(self, other: Protocol) -> list[str]:
        """Names of the fields whose values differ from ``other``'s (name and summary aside)."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if k not in ("name", "summary") and a[k] != b[k]]


AUTHORS = Protocol(
    name="authors",
    summary="Table 1 where it speaks, the authors' code where it is silent, and their "
            "measurement definitions.",
    time_limit="terminal",
    batch_end="last_value",
    value_loss_ends=False,
    ppo_init="orthogonal",
    trpo_init="xavier",
    ppo_anneal_lr=True,
    ppo_value_clip=(("Hopper-v5", None), ("Walker2d-v5", 0.2), ("Humanoid-v5", 0.2),
                    ("*", 0.2)),
    ppo_adv_norm="minibatch",
    trpo_accept_ratio=0.1,
    returns_target="to_cut",
    mre_states="not_ends",
    heldout_policy="pre_update",
    true_cosine="raw",
)

CORRECTED = Protocol(
    **{**AUTHORS.__dict__,
       "name": "corrected",
       "summary": "The authors' protocol with time-limit cuts and the batch end bootstrapped, "
                  "returns continued past every cut, and a noise-corrected true-gradient "
                  "cosine.",
       "time_limit": "bootstrap",
       "batch_end": "bootstrap",
       "returns_target": "continued",
       "mre_states": "all",
       "true_cosine": "debiased"},
)

TABLE1 = Protocol(
    name="table1",
    summary="The first pgclaims fixtures: Table 1 literally, our own choices where it is "
            "silent (kept for comparison).",
    time_limit="bootstrap",
    batch_end="bootstrap",
    value_loss_ends=True,
    ppo_init="orthogonal",
    trpo_init="orthogonal",
    ppo_anneal_lr=False,
    ppo_value_clip=(("*", None),),
    ppo_adv_norm="batch",
    trpo_accept_ratio=0.0,
    returns_target="cut_excluded",
    mre_states="all",
    heldout_policy="checkpoint",
    true_cosine="raw",
)

PROTOCOLS = {p.name: p for p in (AUTHORS, CORRECTED, TABLE1)}


class UnknownProtocolError(ValueError):
    pass


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UnknownProtocolError(
            f"unknown protocol {name!r}: choose one of {', '.join(PROTOCOLS)}") from None

"""Where an interval's width comes from: between-agent and within-agent variance, and the repeats
per agent that buy the narrowest interval for a budget.

A claim's statistic is a function of one entry per agent (see :mod:`pgclaims.stats.intervals`).
Evaluated on one agent alone it gives that agent's value ``v_i``; its noise from the agent's own
repeats is the leave-one-repeat-out jackknife variance ``w_i`` (the interval code's one-agent
jackknife). With ``R`` repeats per agent, the usual one-way random-effects model
``v_i = mu + b_i + e_i``, ``Var b = s_b^2``, ``Var e = s_w^2 / R`` gives, by the method of moments,

    s_w^2 / R  ~  mean_i w_i                      (within-agent variance of one agent's value)
    s_b^2      ~  max(0, var_i(v_i) - mean_i w_i)   (between-agent variance of true agent values)

and the variance of a mean over ``A`` agents of ``R`` repeats is ``(s_b^2 + s_w^2 / R) / A``.

If an agent costs ``F`` (what it costs whatever its repeats, e.g. its true gradient, or its
training) and a repeat ``c``, a budget ``A (F + R c)`` is best spent on

    R* = sqrt(s_w^2 / s_b^2 * F / c)

repeats per agent (the classic allocation of a two-stage design; Cochran, *Sampling
Techniques*, 3rd ed., section 10.6). When the agents are fixed (committed fixtures) and only
repeats can be bought, :func:`width_ratio` says how much narrower or wider an interval gets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pgclaims.stats.intervals import Statistic, Unit, _evaluate, _loo, _prepare
from pgclaims.stats.pivot import jackknife_var


@dataclass(frozen=True)
class AgentValue:
    """One agent's value of a statistic and its noise from the agent's own repeats."""

    value: float
    within_var: float
    """Jackknife variance of :attr:`value` over the agent's repeats (NaN with one repeat)."""
    repeats: int
    """The agent's repeats (the smallest over its quantities)."""

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "within_var": self.within_var, "repeats": self.repeats}


def agent_values(units: Sequence[Unit], statistic: Statistic, *, paired: bool = False,
                 vectorized: bool = False) -> list[AgentValue]:
    """Each agent's value of ``statistic`` (evaluated on that agent alone) and its
    within-agent jackknife variance; ``units``, ``statistic``, ``paired`` and ``vectorized`` as
    for :func:`pgclaims.stats.hierarchical_bootstrap`."""
    data = _prepare(units, paired)
    out = []
    for i, unit in enumerate(data.units):
        one = [unit]
        value = _evaluate(statistic, data, one, vectorized)
        lengths = data.lengths[i]
        repeats = int(lengths.min())
        if repeats < 2:
            within = float("nan")
        else:
            loo = _loo(lambda us: _evaluate(statistic, data, us, vectorized), one, data.groups,
                       lengths, axis=0)
            within = float(jackknife_var(loo).sum())
        out.append(AgentValue(value, within, repeats))
    return out


@dataclass(frozen=True)
class Components:
    """Variance components of a statistic's agent values (see the module docstring)."""

    n_agents: int
    repeats: float
    """Mean repeats per agent."""
    mean: float
    """Mean of the agent values."""
    total_var: float
    """Sample variance of the agent values (ddof 1)."""
    within_var: float
    """Mean within-agent variance of an agent's value at its repeats (``s_w^2 / R``)."""
    between_var: float
    """``max(0, total_var - within_var)``: variance of the true agent values (``s_b^2``)."""

    @property
    def within_share(self) -> float:
        """Share of the agent values' variance that is within-agent noise (may exceed 1 by
        chance when the agents barely differ); NaN without spread."""
        return self.within_var / self.total_var if self.total_var > 0 else float("nan")

    @property
    def per_repeat_var(self) -> float:
        """``s_w^2``: the within-agent variance one repeat contributes."""
        return self.within_var * self.repeats

    def variance(self, agents: int, repeats: float) -> float:
        """Variance of a mean over ``agents`` agents with ``repeats`` repeats each."""
        if agents < 1 or repeats <= 0:
            raise ValueError(f"agents={agents}, repeats={repeats}: need agents >= 1, repeats > 0")
        return (self.between_var + self.per_repeat_var / repeats) / agents

    def to_dict(self) -> dict[str, float | int]:
        return {"n_agents": self.n_agents, "repeats": self.repeats, "mean": self.mean,
                "total_var": self.total_var, "within_var": self.within_var,
                "between_var": self.between_var, "within_share": self.within_share}


def components(values: Sequence[AgentValue]) -> Components:
    """Method-of-moments variance components from agent values (at least 2 agents, each with
    at least 2 repeats)."""
    vals = [v for v in values if math.isfinite(v.value) and math.isfinite(v.within_var)]
    if len(vals) < 2:
        raise ValueError(f"{len(vals)} agents with a finite value and within-agent variance; "
                         "need at least 2")
    x = np.array([v.value for v in vals])
    total = float(np.var(x, ddof=1))
    within = float(np.mean([v.within_var for v in vals]))
    return Components(n_agents=len(vals), repeats=float(np.mean([v.repeats for v in vals])),
                      mean=float(x.mean()), total_var=total, within_var=within,
                      between_var=max(0.0, total - within))


def optimal_repeats(c: Components, cost_per_agent: float, cost_per_repeat: float) -> float:
    """``R* = sqrt(s_w^2 / s_b^2 * F / c)``: the repeats per agent that minimise the variance
    of the mean over agents for a fixed budget. ``inf`` when the agents do not differ
    (``s_b^2 = 0``: buy repeats, not agents); 0 when the repeats do not vary."""
    if cost_per_agent < 0 or cost_per_repeat <= 0:
        raise ValueError(f"cost_per_agent={cost_per_agent}, cost_per_repeat={cost_per_repeat}: "
                         "need cost_per_agent >= 0 and cost_per_repeat > 0")
    if c.per_repeat_var == 0:
        return 0.0
    if c.between_var == 0:
        return math.inf
    return math.sqrt(c.per_repeat_var / c.between_var * cost_per_agent / cost_per_repeat)


def width_ratio(c: Components, agents: int, repeats: float, *, base_agents: int | None = None,
                base_repeats: float | None = None) -> float:
    """Standard error with ``agents`` x ``repeats`` over that of the design measured
    (``base_agents`` x ``base_repeats``, default the measured one). It ignores the change of the
    t quantile with the agent count (the interval's width changes by that too)."""
    a0 = c.n_agents if base_agents is None else base_agents
    r0 = c.repeats if base_repeats is None else base_repeats
    return math.sqrt(c.variance(agents, repeats) / c.variance(a0, r0))


def repeats_for_budget(c: Components, agents: int, budget: float, cost_per_agent: float,
                       cost_per_repeat: float) -> float:
    """Repeats per agent that ``budget`` buys for ``agents`` fixed agents (each costing
    ``cost_per_agent`` plus ``cost_per_repeat`` per repeat); raises if it buys none."""
    r = (budget / agents - cost_per_agent) / cost_per_repeat
    if r <= 0:
        raise ValueError(f"a budget of {budget} does not cover {agents} agents' fixed cost "
                         f"{cost_per_agent} each")
    return r

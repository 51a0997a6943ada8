"""Evidence-based readings of refuted verdicts, one per claim, beside the claim records.

A REFUTED verdict is a finding, and a reader needs to know what it rests on: which measurement,
which numbers, which protocol field could explain it. Each reading below is a template filled
from its row (``{statistic}``, ``{low}``, ``{high}``, ``{threshold}``, ``{protocol}``, and the
row's parameters such as ``{env}``); a claim may give a reading per protocol. The suite writes
the filled reading into every REFUTED row of ``results.json`` and the report shows it. Readings
never change a verdict, and thresholds stay as ``CLAIMS.md`` sets them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

COMMON = "{statistic} with 95% interval [{low}, {high}] against the threshold {threshold}"

READINGS: Mapping[str, Mapping[str, str]] = {
    "grad.pairwise_low_at_2k": {"*": (
        "The mean pairwise cosine of 2K-pair estimates is " + COMMON + ": this {protocol} "
        "agent's gradient estimates at the training batch size agree more than the paper's. "
        "The training fields of the protocol (annealing, value clipping) change the late "
        "policies, and so the spread of their estimates.")},
    "grad.pairwise_rises_with_n": {"*": (
        "The rise of the pairwise cosine from 2K to the largest N (at least 1e5 pairs, the "
        "concentrated end of Figure 1's axis) is " + COMMON + ". Read the 2K value in Fig 1 "
        "of this report: at iteration 0 it is already near 1, so there is no room to rise (a "
        "ceiling, not a contradiction); late in training a small rise means the estimates "
        "have not concentrated even at that N.")},
    "grad.true_cos_low_at_2k": {
        "*": ("The cosine of 2K-pair estimates with the true gradient is " + COMMON + ": the "
              "estimates point closer to the true gradient than the paper reports."),
        "corrected": ("The noise-corrected cosine with the true gradient is " + COMMON + ". "
                      "The raw cosine is pulled toward 0 by the true gradient's own sampling "
                      "noise (protocol field true_cosine); with that removed the 2K estimates "
                      "are less orthogonal than the raw figure suggests."),
    },
    "grad.needs_many_samples": {"*": (
        "The N at which the cosine with the true gradient reaches the paper's level is "
        + COMMON + ": fewer pairs suffice for this agent than the paper states.")},
    "grad.decays_with_training": {"*": (
        "The change of the 2K cosine from the first to the last checkpoint is " + COMMON
        + ": gradient quality did not fall with training for these agents; compare the "
        "training curves (Fig 8): an agent that stopped improving keeps a simpler policy.")},
    "grad.decays_with_task": {"*": (
        "Humanoid minus {easier} 2K cosine is " + COMMON + ": the harder task's estimates "
        "were not worse at this checkpoint.")},
    "grad.steps_disagree": {"*": (
        "The pairwise cosine of computed 2K steps is " + COMMON + ": the algorithm's own "
        "steps agree more than its raw gradients would suggest (PPO's clipping and TRPO's "
        "trust region both shrink and align steps).")},
    "grad.trajectories_shrink": {"*": (
        "The change in trajectories per 2K batch over training is " + COMMON + ": episodes "
        "did not lengthen, i.e. the agents did not learn to stay up longer.")},
    "train.reward_improves": {"*": (
        "The return gain over training is " + COMMON + ": these {protocol} agents did not "
        "improve; see their training curves (Fig 8) and the fixture manifest.")},
    "value.fits_gae_target": {"*": (
        "The held-out MRE against the GAE target is " + COMMON + ": the value net does not "
        "fit its own training target on fresh states.")},
    "value.misses_true_returns": {
        "*": ("The held-out MRE against Monte Carlo returns is " + COMMON + "."),
        "authors": ("The held-out MRE against returns summed up to the next cut (the authors' "
                    "target: no bootstrap at the time limit or the batch end; protocol field "
                    "returns_target) is " + COMMON + ". The value net fits this target better "
                    "than the paper's ~50%."),
        "corrected": ("The held-out MRE against returns continued past every cut (protocol "
                      "field returns_target = continued) is " + COMMON + ": against the "
                      "untruncated task's returns the value net is not off by ~50%."),
        "table1": ("The held-out MRE against returns with states near a cut excluded "
                   "(returns_target = cut_excluded, which also drops about half of every late "
                   "trajectory from the average) is " + COMMON + "."),
    },
    "value.returns_gap": {"*": (
        "Returns MRE minus GAE-target MRE is " + COMMON + ": the returns target is fitted "
        "as well as the GAE target under this protocol's returns definition.")},
    "value.train_vs_heldout": {"*": (
        "Held-out minus train returns MRE is " + COMMON + ": no generalisation gap; the "
        "train record is the batch of the last fit, with the same returns definition.")},
    "baseline.true_beats_valuenet": {"*": (
        "True-value minus value-net baseline pairwise cosine is " + COMMON + ". The 'true "
        "value' of this scale is fit on far fewer pairs than the paper's ~5e6, so it may be "
        "no better than the agent's own value net.")},
    "baseline.valuenet_beats_zero": {"*": (
        "Value-net minus zero baseline pairwise cosine is " + COMMON + ": the value net did "
        "not reduce gradient variance here.")},
    "baseline.valuenet_marginal": {"*": (
        "The value net's share of the achievable variance reduction is " + COMMON + ": it "
        "is not marginal relative to the true-value baseline of this scale (fit on few "
        "pairs, so the comparison is weak).")},
    "baseline.needed_for_reward": {"*": (
        "The ratio of the zero-baseline agents' mean final return to the value-net agents' is "
        + COMMON + ": without a baseline the agents reached more than 0.3 times the reward "
        "with the same budget of pairs.")},
    "landscape.noisy_at_low_samples": {"*": (
        "The rank agreement of the 2K landscape with the reference is " + COMMON + ": at "
        "this grid size 2K pairs already order the points as the reference does.")},
    "landscape.aligned_early": {"*": (
        "The surrogate-vs-true-reward rank correlation early in training is " + COMMON
        + ": PPO's clipped surrogate flattens outside the clip region while the reward keeps "
        "rising, which breaks rank agreement on a coarse grid.")},
    "landscape.misaligned_late": {"*": (
        "The surrogate-vs-true-reward rank correlation late in training is " + COMMON
        + ": the surrogate still orders the grid as the reward does for these agents.")},
    "landscape.surrogate_up_reward_down": {"*": (
        "The share of 2K steps that raise the surrogate but lower the true reward is "
        + COMMON + ".")},
    "landscape.ppo_high_sample_misleads": {"*": (
        "The true-reward change of the high-sample step is " + COMMON + ": with many pairs "
        "the step did not lower the reward.")},
    "regime.more_samples_lower_lr": {"*": (
        "The ratio of the best LR at 20480 steps per iteration to the best LR at 2048 "
        "(geometric mean over agents) is " + COMMON + ": with 10x the samples per iteration "
        "these agents did best at a larger step size.")},
}

READ_CODES = ("size_below_spec", "not_enough_agents", "statistic_undefined",
              "denominator_not_resolved")
"""``reason_code``s of INCONCLUSIVE rows that get a reading: the ones that say why no verdict
was possible (a straddling interval needs none)."""

CODE_READINGS: Mapping[str, str] = {
    "size_below_spec": (
        "Not decided at this scale, by design: {sizes}. At the smaller size the statistic is "
        "not the claim's, and its shortfall could produce a {invalidates} verdict on its own. "
        "{deciders}"),
    "not_enough_agents": (
        "{agents} agent(s) behind this row, and CLAIMS.md asks for 3 before any verdict: the "
        "agent (training seed) is the replication unit, and repeats of one agent say nothing "
        "about other seeds. The estimate {statistic} is shown for information only."),
    "statistic_undefined": (
        "The statistic is not defined for every agent ({what}); an agent cannot be left out "
        "without biasing the mean over agents, and an undefined value is never read as a "
        "number."),
    "denominator_not_resolved": (
        "This claim's statistic is a ratio, and its denominator {what} has a {den_level} "
        "interval "
        "[{den_low}, {den_high}] that is not above 0: the ratio's size and sign are not "
        "defined by the data."),
}



def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _baseline_runs(extra: Mapping[str, Any]) -> str | None:
    finals = extra.get("final_returns")
    budget = extra.get("budget_pairs")
    if not finals or not budget:
        return None
    zero = [float(v["zero"]) for v in finals.values()]
    value = [float(v["valuenet"]) for v in finals.values()]
    per_seed = "; ".join(f"seed {s}: {float(v['zero']):.0f} vs {float(v['valuenet']):.0f}"
                         for s, v in finals.items())
    window = int(extra.get("final_window_pairs") or 0)
    return (f"Each agent trained for {int(budget):,} state-action pairs; final return (the "
            f"episodes of its last {window} pairs) without a baseline {_mean(zero):.0f}, with the "
            f"value net {_mean(value):.0f}, mean over {len(zero)} seeds ({per_seed}).")


def _regime_runs(extra: Mapping[str, Any]) -> str | None:
    grid, best = extra.get("lr_multipliers"), extra.get("best_multiplier")
    steps, budget = extra.get("steps_per_iteration"), extra.get("budget_pairs")
    if not grid or not best or not steps or not budget:
        return None
    knob = {"policy_lr": "Adam LR", "max_kl": "KL bound"}.get(extra.get("knob"), "step size")
    low, high = (str(n) for n in steps)
    grid_s = ", ".join(f"x{m:g}" for m in grid)
    per_seed = "; ".join(f"seed {s}: x{b[low]:g} -> x{b[high]:g}" for s, b in best.items())
    edges = []
    for n in (low, high):
        at = [b[n] for b in best.values()]
        lo, hi = at.count(min(grid)), at.count(max(grid))
        if lo or hi:
            edges.append(f"at {n} pairs/iteration {lo} of {len(at)} seeds at the lowest "
                         f"(x{min(grid):g}) and {hi} at the highest (x{max(grid):g})")
    edge = ("Best at a grid edge, so only a bound (censored): " + "; ".join(edges) + "."
            if edges else "No best step size at an edge of the grid.")
    anneal = ("; the LR annealed to 0 over each run's own iterations"
              if extra.get("knob") == "policy_lr" else "")
    return (f"Grid: the {knob} at {grid_s} of Table 1's {float(extra['table1']):g}, at {low} "
            f"and {high} pairs per iteration, every run {int(budget):,} pairs "
            f"({int(budget) // int(low)} and {int(budget) // int(high)} iterations{anneal}). "
            f"Best multiplier by final return "
            f"({low} -> {high}): {per_seed}. {edge}{_grid_means(extra, grid, (low, high))}")


def _grid_means(extra: Mapping[str, Any], grid: list[float], steps: tuple[str, str]) -> str:
    """Mean final return over seeds per batch size and step size: how flat the grid is."""
    finals = extra.get("final_returns") or {}
    parts = []
    for n in steps:
        cells = [[float(f[k]) for f in finals.values() if (k := f"{n}/x{m:g}") in f]
                 for m in grid]
        if all(cells):
            parts.append(f"at {n}: " + ", ".join(f"x{m:g} {_mean(c):.0f}"
                                                 for m, c in zip(grid, cells, strict=True)))
    return (" Mean final return over seeds per step size, " + "; ".join(parts) + "."
            if parts else "")


DESCRIPTIONS: Mapping[str, Callable[[Mapping[str, Any]], str | None]] = {
    "baseline.needed_for_reward": _baseline_runs,
    "regime.more_samples_lower_lr": _regime_runs,
}
"""Claims whose every measured row gets a reading, whatever its verdict, from the row's
``extra``: what was trained (the budget, the grid) and what each seed gave."""


def _num(x: Any) -> str:
    if x is None:
        return "n/a"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _code_reading(row: Mapping[str, Any]) -> str | None:
    code = row.get("reason_code")
    if row.get("verdict") != "INCONCLUSIVE" or code not in CODE_READINGS:
        return None
    detail = dict(row.get("reason_detail") or {})
    sizes = "; ".join(f"{z['what']} (this scale: {z['field']} {_num(z['have'])}, specified "
                      f"{_num(z['needed'])})" for z in detail.get("sizes", []))
    deciders = detail.get("decided_by") or []
    fields = {
        "sizes": sizes, "invalidates": " or ".join(detail.get("invalidates", [])) or "any",
        "deciders": (f"Decided by the {', '.join(deciders)} scale." if deciders else
                     "No built-in scale reaches it."),
        "agents": _num(detail.get("agents")), "statistic": _num(row.get("statistic")),
        "what": detail.get("what", "see the reason"),
        "den_low": _num((detail.get("interval") or [None, None])[0]),
        "den_high": _num((detail.get("interval") or [None, None])[1]),
        "den_level": f"{100 * float(detail.get('confidence_level') or 0.95):.6g}%",
    }
    return CODE_READINGS[code].format(**fields)


def reading(row: Mapping[str, Any]) -> str | None:
    """The reading of a result row: an INCONCLUSIVE row's reading of its :data:`READ_CODES`
    reason, the filled template of a REFUTED row (a row without a verdict counts as one) and,
    for :data:`DESCRIPTIONS`' claims, what the runs gave; None when there is none."""
    parts = []
    coded = _code_reading(row)
    if coded is not None:
        parts.append(coded)
    elif row.get("verdict", "REFUTED") == "REFUTED":
        parts.append(_template(row))
    describe = DESCRIPTIONS.get(row["claim_id"])
    if describe is not None:
        parts.append(describe(row.get("extra") or {}))
    text = " ".join(p for p in parts if p)
    return text or None


def _template(row: Mapping[str, Any]) -> str | None:
    notes = READINGS.get(row["claim_id"])
    if notes is None:
        return None
    params = dict(row.get("params") or {})
    protocol = params.get("protocol", "")
    template = notes.get(protocol, notes["*"])
    interval = row.get("interval") or [None, None]
    fields = {k: _num(v) for k, v in params.items()}
    fields.update(statistic=_num(row.get("statistic")), low=_num(interval[0]),
                  high=_num(interval[1]), threshold=_num(row.get("threshold")),
                  protocol=protocol or "these")
    try:
        return template.format(**fields)
    except (KeyError, IndexError):  # a parameter the row lacks: the reading without it
        return template.format_map({**fields, **{"easier": "the easier task"}})

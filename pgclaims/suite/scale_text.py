"""The printable profile of a :class:`pgclaims.suite.scales.Scale` (the claims run's
header under ``-v``)."""

from __future__ import annotations

from typing import Any


def describe(scale: Any) -> str:
    """A multi-line printable profile: agents, training, every sample count, intervals,
    capabilities and the expected wall time."""
    by_env = "".join(f", {e}: {n}" for e, n in scale.true_grad_n_by_env)
    lines = [
        f"scale {scale.name}: {scale.description}",
        f"  agents        {', '.join(scale.envs)} x {', '.join(scale.algos)} x seeds "
        f"{', '.join(map(str, scale.seeds))} ({scale.source})",
        f"  training      {scale.iterations} iterations; checkpoints "
        f"{', '.join(map(str, scale.checkpoints))} (late: {', '.join(map(str, scale.late))})",
        f"  gradients     N grid {', '.join(map(str, scale.n_grid))}; true gradient "
        f"{scale.true_grad_n}{by_env} pairs; {scale.repeats} repeats",
        f"  value         held-out {scale.heldout_n} pairs; true value fit on "
        f"{scale.true_value_n} pairs",
        f"  landscape     a, b in {', '.join(f'{x:g}' for x in scale.landscape_steps)}; "
        f"N per point {', '.join(map(str, scale.landscape_n)) or 'none'}; reference "
        f"{scale.landscape_ref_n}; high-sample step {scale.high_sample_step_n or 'none'}",
        f"  intervals     {scale.confidence_level:.0%} {scale.bootstrap_method}, "
        f"{scale.bootstrap_resamples} resamples",
        f"  capabilities  {', '.join(sorted(scale.provides))}"
        + (f"; LR grid x{', x'.join(f'{x:g}' for x in scale.lr_grid)}" if scale.lr_grid
           else "")
        + (f"; ablations on seeds {', '.join(map(str, scale.ablation_agents))}"
           if scale.ablation_seeds else ""),
        f"  wall time     {scale.wall_time}",
    ]
    if scale.agent_shortfall:
        lines.insert(2, f"  warning       {scale.agent_shortfall}")
    return "\n".join(lines)

"""What a fixture scale's ablation fixtures cost, and what of them is committed
(``pgclaims plan``).

A fixture scale reads its training ablations from the ablation store
(:mod:`pgclaims.agents.ablations`); ``pgclaims fixtures train-ablations`` trains them, not the
claims run, so they are priced apart from the run. A run still to train is priced from the
measured training speed: the CPU time per iteration that the committed runs of the same env,
algorithm, baseline and batch size took (their manifest's ``cpu_time_s`` over
``cpu_iterations``; trained agents, whose episodes are longer than a fresh agent's), else from
:func:`pgclaims.suite.costs.measure_rates`' training iteration of a fresh agent, scaled
linearly in the batch (a 20480-pair iteration measured 5.8x (PPO) and 7.1x (TRPO) a 2048-pair
one on fresh Hopper agents, so until runs are committed the 20480 runs are overstated).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgclaims.measure.sampler import CHUNK
from pgclaims.suite.plan import Plan

Cell = tuple[str, str, str, str]
"""(protocol, env, algo, study): "baseline" holds the zero-baseline runs, "regime" the grid
(with the value-net run at Table 1's step size, which the baseline claim also reads)."""


@dataclass
class AblationCost:
    """The scale's ablation runs: committed or to train, and the core-seconds to train."""

    runs: int = 0
    committed: int = 0
    """In the ablation store, or the committed agents' own training (``from_fixtures``)."""
    from_fixtures: int = 0
    todo_pairs: int = 0
    todo_core_s: float = 0.0
    spent_core_s: float = 0.0
    """CPU time the committed store runs took (their manifest's, scaled to whole runs)."""
    priced_by_committed: int = 0
    """Runs still to train priced from committed runs' measured speed (the rest: rates)."""
    longest_s: float = 0.0
    """The longest run still to train, in core-seconds (a run is serial)."""
    store_bytes: int = 0
    by_cell: dict[Cell, dict[str, float]] = field(default_factory=dict)

    def wall_s(self, cores: int, efficiency: float) -> float:
        """Training the rest on ``cores`` cores, one run per core."""
        return max(self.todo_core_s / (cores * efficiency), self.longest_s)


def estimate(plan: Plan, rates: Any, base: Path | None = None) -> AblationCost | None:
    """The cost of ``plan``'s stored ablation runs (None when it has none)."""
    from pgclaims.agents import ablations

    committed, todo = plan.ablation_fixtures()
    if not committed and not todo:
        return None
    entries = {e["key"]: e for e in ablations.read_manifest(base)["runs"]}
    speeds = ablations.iteration_costs(entries.values())
    cost = AblationCost(runs=len(committed) + len(todo), committed=len(committed))
    root = ablations.root(base)
    cost.store_bytes = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()
                           and "partial" not in p.relative_to(root).parts) if root.exists() else 0
    done = {t.ident for t in committed}
    for task in committed + todo:
        study = task.run.study if task.run is not None else "regime"
        cell = cost.by_cell.setdefault((task.protocol, task.env, task.algo, study),
                                       {"runs": 0, "committed": 0, "core_s_todo": 0.0})
        cell["runs"] += 1
        entry = entries.get(task.ident.split("/", 1)[1])
        if task.ident in done:
            cell["committed"] += 1
            if entry is None:
                cost.from_fixtures += 1
            elif entry.get("cpu_iterations"):
                cost.spent_core_s += entry["cpu_time_s"] / entry["cpu_iterations"] * (
                    entry["iterations"])
            continue
        run = task.run
        key = (task.protocol, task.env, task.algo, run.baseline if run else "valuenet",
               str(task.steps_per_iteration))
        if key in speeds:
            seconds = speeds[key] * task.iterations
            cost.priced_by_committed += 1
        else:
            seconds = (task.iterations * rates.iteration[f"{task.env}/{task.algo}"]
                       * task.steps_per_iteration / CHUNK)
        cell["core_s_todo"] += seconds
        cost.todo_core_s += seconds
        cost.todo_pairs += task.pairs
        cost.longest_s = max(cost.longest_s, seconds)
    return cost


def render(cost: AblationCost, cores: int, local: int, efficiency: float,
           duration: Callable[[float], str]) -> list[str]:
    """Lines for ``pgclaims plan``'s table (``duration`` formats seconds)."""
    lines = ["", f"ablation fixtures (fixtures/ablations; trained by `pgclaims fixtures "
             f"train-ablations`, not by the run): {cost.runs} runs, {cost.committed} committed "
             f"({cost.from_fixtures} are the committed agents' own training), "
             f"{cost.runs - cost.committed} to train",
             f"{'env':<12} {'algo':<5} {'study':<9} {'runs':>5} {'committed':>9} "
             f"{'core-hours to train':>20}"]
    for (protocol, env, algo, study), c in sorted(cost.by_cell.items()):
        lines.append(f"{env:<12} {algo:<5} {study:<9} {c['runs']:>5} {c['committed']:>9} "
                     f"{c['core_s_todo'] / 3600:>20.3g}" + (
                         f"  ({protocol})" if protocol != "authors" else ""))
    lines.append(f"to train: {cost.todo_pairs:.3g} pairs, {cost.todo_core_s / 3600:.3g} "
                 f"core-hours ({cost.priced_by_committed} runs priced from committed runs' "
                 f"measured CPU time, the rest from this machine's training iteration); "
                 f"{duration(cost.wall_s(local, efficiency))} on this machine's {local} cores, "
                 f"{duration(cost.wall_s(cores, efficiency))} on {cores}")
    lines.append(f"committed: {cost.store_bytes / 1e6:.2f} MB in the ablation store, "
                 f"{cost.spent_core_s / 3600:.3g} core-hours of training (manifest CPU time)")
    return lines


def to_dict(cost: AblationCost, cores: int, local: int, efficiency: float) -> dict[str, Any]:
    return {
        "runs": cost.runs, "committed": cost.committed, "from_fixtures": cost.from_fixtures,
        "to_train": cost.runs - cost.committed, "pairs_to_train": cost.todo_pairs,
        "core_hours_to_train": cost.todo_core_s / 3600,
        "priced_by_committed": cost.priced_by_committed,
        "wall_hours": {"this_machine": cost.wall_s(local, efficiency) / 3600,
                       "cluster": cost.wall_s(cores, efficiency) / 3600},
        "committed_core_hours": cost.spent_core_s / 3600, "store_bytes": cost.store_bytes,
        "by_cell": [{"protocol": p, "env": e, "algo": a, "study": s, **c}
                    for (p, e, a, s), c in sorted(cost.by_cell.items())],
    }

"""The ablation store: training runs with Table 1 changed, kept as curves, not as agents.

Two claims are about training itself, not about a trained agent: ``baseline.needed_for_reward``
(agents trained without a baseline) and ``regime.more_samples_lower_lr`` (the step size that
wins at 2048 and at 20480 pairs per iteration). Both read only final returns, so a run keeps
its training curve and nothing else: no checkpoint, which keeps the store at a few MB.

Every run gets the committed agents' budget of state-action pairs (500 iterations x 2048),
so a run at 20480 pairs per iteration has 50 iterations; PPO's annealed LR (``authors``) goes
to 0 over the run's own iterations. The value-net agent at Table 1's step size and 2048 pairs
per iteration *is* the committed fixture (same config): it is read from the fixture store,
never trained again.

Layout under ``fixtures/ablations/``::

    manifest.json      one entry per complete run (see :func:`manifest_entry`)
    runs/<key>.json    its TrainConfig and its curve: per iteration the pairs sampled so far,
                       the mean return and the number of episodes of that iteration's batch
    partial/<key>/     a run in progress (latest checkpoint, full curve): deleted when the run
                       is complete, ignored by git

``<key>`` is :meth:`pgclaims.agents.agent.TrainConfig.key`, so a change of
:data:`pgclaims.agents.agent.TRAINING_VERSION` makes every run stale, as it does the fixtures.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pgclaims.agents import digests, fixtures
from pgclaims.agents.agent import Hyper, TrainConfig

SCHEMA = 1
STUDIES = ("baseline", "regime")
"""``baseline``: zero-baseline agents (baseline.needed_for_reward); ``regime``: the step-size
grid at two batch sizes (regime.more_samples_lower_lr)."""
FIXTURE_ITERATIONS = 500
"""The committed agents' length (iterations of Table 1's 2048 pairs): the runs' budget."""
FINAL_TABLE1_ITERATIONS = 10
"""The final return is over the last 10 iterations' worth of Table 1 batches, as the fixture
manifest's ``final_mean_return`` (one iteration at 20480 pairs)."""
CURVE_FIELDS = ("pairs", "mean_return", "episodes")


class AblationMissing(LookupError):
    """A run the claims need is not in the ablation store; the message says what to run."""


@functools.cache
def _table1(env_id: str, algo: str, protocol: str = "table1") -> Hyper:
    """Table 1's hyperparameters under ``protocol`` (cached: a config builds an environment)."""
    return TrainConfig.create(env_id, algo, 0, 1, (), protocol=protocol).hyper


def table1_steps(env_id: str, algo: str) -> int:
    return _table1(env_id, algo).steps_per_iteration


def knob(algo: str) -> str:
    """The step-size field the LR grid scales: PPO's Adam LR, TRPO's KL bound."""
    return "policy_lr" if algo == "ppo" else "max_kl"


def table1_value(env_id: str, algo: str) -> float:
    """Table 1's step size (:func:`knob`) for ``env_id`` and ``algo``: the grid's x1."""
    return float(getattr(_table1(env_id, algo), knob(algo)))


@dataclass(frozen=True)
class Run:
    """One ablation training run. ``budget``: state-action pairs in all (default: the
    committed agents', :data:`FIXTURE_ITERATIONS` x Table 1's batch)."""

    protocol: str
    env_id: str
    algo: str
    seed: int
    baseline: str = "valuenet"
    multiplier: float = 1.0
    """Step size as a multiple of Table 1's (:func:`knob`)."""
    steps: int = 0
    """Pairs per iteration; 0: Table 1's."""
    budget: int = 0
    """Pairs in all; 0: the committed agents'."""

    def __post_init__(self) -> None:
        t1 = table1_steps(self.env_id, self.algo)
        object.__setattr__(self, "steps", self.steps or t1)
        object.__setattr__(self, "budget", self.budget or FIXTURE_ITERATIONS * t1)
        if self.budget % self.steps:
            raise ValueError(f"budget {self.budget} pairs is not a whole number of iterations "
                             f"of {self.steps} pairs")
        if not self.multiplier > 0:
            raise ValueError(f"step-size multiplier must be > 0, got {self.multiplier}")

    @property
    def study(self) -> str:
        return "baseline" if self.baseline == "zero" else "regime"

    @property
    def iterations(self) -> int:
        return self.budget // self.steps

    @property
    def label(self) -> str:
        base = "zero baseline" if self.baseline == "zero" else "value net"
        return f"{base}, step size x{self.multiplier:g} at {self.steps} pairs/iteration"

    def config(self) -> TrainConfig:
        """The TrainConfig: Table 1 under ``protocol``, with the variant's fields changed."""
        return _config(self)

    @property
    def committed(self) -> bool:
        """Whether this run is a committed fixture's training (the same config)."""
        return self.config().hyper == _table1(self.env_id, self.algo, self.protocol)

    def variant(self) -> dict[str, Any]:
        cfg = self.config()
        return {"baseline": self.baseline, "knob": knob(self.algo),
                "multiplier": self.multiplier, "step_size": getattr(cfg.hyper, knob(self.algo)),
                "steps_per_iteration": self.steps}

    def command(self) -> str:
        return command_for([self])


@functools.cache
def _config(run: Run) -> TrainConfig:
    k = knob(run.algo)
    hyper = replace(_table1(run.env_id, run.algo, run.protocol), baseline=run.baseline,
                    steps_per_iteration=run.steps,
                    **{k: getattr(_table1(run.env_id, run.algo, run.protocol), k)
                       * run.multiplier})
    return TrainConfig(run.env_id, run.algo, run.seed, run.iterations, (), hyper, run.protocol)


def command_for(runs: list[Run]) -> str:
    """One ``train-ablations`` command per study that trains every run of ``runs`` (and any
    other run of the product of their envs, algos, seeds and variants: finished ones are
    skipped)."""

    def joined(values: Any, fmt: str = "{}", sep: str = " ") -> str:
        return sep.join(fmt.format(v) for v in sorted(set(values)))

    out = []
    for study, budget in sorted({(r.study, r.budget) for r in runs}):
        rs = [r for r in runs if (r.study, r.budget) == (study, budget)]
        seeds = joined((r.seed for r in rs), sep=",")
        cmd = (f"pgclaims fixtures train-ablations --study {study} --protocol "
               f"{joined(r.protocol for r in rs)} --env {joined(r.env_id for r in rs)} "
               f"--algo {joined(r.algo for r in rs)} --seeds {seeds}")
        if study == "regime":
            cmd += (f" --multipliers {joined((r.multiplier for r in rs), '{:g}', ',')} "
                    f"--steps {joined((r.steps for r in rs), sep=',')}")
        if budget != FIXTURE_ITERATIONS * table1_steps(rs[0].env_id, rs[0].algo):
            cmd += f" --budget {budget}"
        out.append(cmd)
    return " && ".join(out)


def runs_for(study: str, protocol: str, env_id: str, algo: str, seed: int,
             multipliers: tuple[float, ...] = (1.0,), steps: tuple[int, ...] = (),
             budget: int = 0) -> list[Run]:
    """The runs of ``study`` for one agent seed: the zero-baseline run (``baseline``), or
    every multiplier at every batch size of ``steps`` (``regime``; default: Table 1's)."""
    if study == "baseline":
        return [Run(protocol, env_id, algo, seed, baseline="zero", budget=budget)]
    if study == "regime":
        return [Run(protocol, env_id, algo, seed, multiplier=m, steps=n, budget=budget)
                for n in (steps or (0,)) for m in multipliers]
    raise ValueError(f"unknown ablation study {study!r}: expected one of {', '.join(STUDIES)}")


# -- the store ---------------------------------------------------------------------------


def root(base: Path | None = None) -> Path:
    """``fixtures/ablations`` (under ``PGCLAIMS_FIXTURES`` when set)."""
    return (base or fixtures.root()) / "ablations"


def read_manifest(base: Path | None = None) -> dict[str, Any]:
    path = root(base) / "manifest.json"
    if not path.exists():
        return {"schema": SCHEMA, "runs": []}
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest["runs"], list):
            raise TypeError("'runs' is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise fixtures.FixtureError(f"{path}: field 'runs': not an ablation manifest "
                                    f"({exc})") from exc
    return manifest


def iteration_costs(entries: Iterable[dict[str, Any]]) -> dict[tuple[str, ...], float]:
    """Median CPU seconds per iteration of finished runs (manifest entries), per (protocol,
    env, algo, baseline, batch size)."""
    per: dict[tuple[str, ...], list[float]] = {}
    for e in entries:
        if e.get("cpu_iterations"):
            key = (e["protocol"], e["env_id"], e["algo"], e["variant"]["baseline"],
                   str(e["variant"]["steps_per_iteration"]))
            per.setdefault(key, []).append(e["cpu_time_s"] / e["cpu_iterations"])
    return {k: statistics.median(v) for k, v in per.items()}


def iteration_cost(costs: dict[tuple[str, ...], float], run: Run) -> float | None:
    """What an iteration of ``run`` costs by :func:`iteration_costs`: the runs of its own
    protocol, else the median over the other protocols' (same env, algo, baseline and batch
    size: the protocols change no step's work), else None."""
    key = (run.protocol, run.env_id, run.algo, run.baseline, str(run.steps))
    if key in costs:
        return costs[key]
    others = [c for k, c in costs.items() if k[1:] == key[1:]]
    return statistics.median(others) if others else None


def compact_curve(rows: list[dict[str, float]], steps: int) -> dict[str, list[float]]:
    """The training curve as the claims and the report need it, one list per field:
    ``pairs`` sampled up to and including iteration i, the ``mean_return`` of the episodes
    completed in its batch (NaN without one) and their number (``episodes``)."""
    return {"pairs": [(int(r["iteration"]) + 1) * steps for r in rows],
            "mean_return": [float(r["mean_return"]) for r in rows],
            "episodes": [int(r["episodes"]) for r in rows]}


def final_return(curve: dict[str, list[float]], window: int) -> float | None:
    """Mean return of the episodes completed in the run's last ``window`` pairs, each episode
    weighted once (so 10 batches of 2048 and one of 20480 are the same estimate); None if
    none completed."""
    end = curve["pairs"][-1] if curve["pairs"] else 0
    total = count = 0.0
    for pairs, ret, eps in zip(curve["pairs"], curve["mean_return"], curve["episodes"],
                               strict=True):
        if pairs > end - window and eps > 0 and not math.isnan(ret):
            total += ret * eps
            count += eps
    return total / count if count else None


def binned(curve: dict[str, list[float]], width: int) -> dict[str, list[float | None]]:
    """The curve in bins of ``width`` pairs (by the pairs at each iteration's end): per bin,
    its last ``pairs`` and the mean return of the episodes completed in it (None without
    one), as :func:`final_return` weighs them; for figures of runs of different batch sizes."""
    out: dict[str, list[float | None]] = {"pairs": [], "mean_return": []}
    total = count = 0.0
    edge = width
    for i, (pairs, ret, eps) in enumerate(zip(curve["pairs"], curve["mean_return"],
                                              curve["episodes"], strict=True)):
        if eps > 0 and not math.isnan(ret):
            total += ret * eps
            count += eps
        if pairs >= edge or i == len(curve["pairs"]) - 1:
            out["pairs"].append(pairs)
            out["mean_return"].append(total / count if count else None)
            total = count = 0.0
            edge = (pairs // width + 1) * width
    return out


def final_window(env_id: str, algo: str) -> int:
    return FINAL_TABLE1_ITERATIONS * table1_steps(env_id, algo)


def run_file(run: Run, base: Path | None = None) -> Path:
    """Where a finished run's curve is stored: ``runs/<config key>.json`` of the ablation
    store (written last but one, before its manifest entry)."""
    return root(base) / "runs" / f"{run.config().key()}.json"


def curve(run: Run, base: Path | None = None) -> dict[str, list[float]]:
    """The run's compact curve: from the ablation store, or for a committed fixture's run
    from the fixture store. :class:`AblationMissing` names the command that trains it."""
    if run.committed:
        rows = fixtures.curve(run.env_id, run.algo, run.seed, run.iterations, base,
                              protocol=run.protocol)
        return compact_curve(rows, run.steps)
    key = run.config().key()
    runs = read_manifest(base)["runs"]
    index = next((i for i, r in enumerate(runs) if isinstance(r, dict) and r.get("key") == key),
                 None)
    path = run_file(run, base)
    if index is None:
        raise AblationMissing(f"ablation fixtures missing: {run.protocol} {run.env_id} "
                              f"{run.algo} seed {run.seed}, {run.label} is not in "
                              f"{root(base) / 'manifest.json'}; run: {run.command()}")
    try:
        data = json.loads(path.read_text())
        out = {k: list(data["curve"][k]) for k in CURVE_FIELDS}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fixtures.FixtureError(f"{path}: field 'curve': unreadable ({exc}); retrain: "
                                    f"delete its entry from the manifest and run "
                                    f"{run.command()}") from exc
    check_run_file(runs[index], index, base)
    return out


def check_run_file(entry: dict[str, Any], index: int, base: Path | None = None) -> bool:
    """Check a run's ``runs/<key>.json`` against the ``sha256`` of its manifest entry
    (``runs[index]``); :class:`FixtureError` names the file when it is missing or differs.
    False when the entry has no digest (written before digests; ``pgclaims fixtures verify
    --write-missing`` records them)."""
    path = root(base) / "runs" / f"{entry['key']}.json"
    if not path.is_file():
        raise fixtures.FixtureError(f"{path}: missing (listed by runs[{index}] of "
                                    f"{root(base) / 'manifest.json'}); restore it or retrain")
    recorded = entry.get("sha256")
    if recorded is None:
        return False
    try:
        digests.check(path, str(recorded), f"{root(base) / 'manifest.json'} "
                                           f"runs[{index}].sha256")
    except digests.DigestError as exc:
        raise fixtures.FixtureError(str(exc)) from None
    return True


def describe(base: Path | None = None) -> str:
    rows = read_manifest(base)["runs"]
    if not rows:
        return f"no ablation runs in {root(base)}"
    lines = [f"{'protocol':9} {'env':13} {'algo':5} {'study':8} {'variant':26} {'seed':>4} "
             f"{'final return':>12}  key"]
    for r in rows:
        v = r["variant"]
        var = ("zero baseline" if v["baseline"] == "zero"
               else f"x{v['multiplier']:g} at {v['steps_per_iteration']}")
        ret = r["final_mean_return"]
        ret_s = f"{ret:12.1f}" if ret is not None else f"{'n/a':>12}"
        lines.append(f"{r['protocol']:9} {r['env_id']:13} {r['algo']:5} {r['study']:8} "
                     f"{var:26} {r['seed']:>4} {ret_s}  {r['key']}")
    return "\n".join(lines)


__all__ = ["STUDIES", "AblationMissing", "Run", "binned", "check_run_file", "command_for",
           "compact_curve", "curve", "describe", "final_return", "final_window", "iteration_cost",
           "iteration_costs", "read_manifest", "root", "run_file",
           "runs_for"]

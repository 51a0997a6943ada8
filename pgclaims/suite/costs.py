"""What a run's tasks cost in time: throughput measured on the spot, core-seconds per task, and
wall-time estimates for this machine and for a cluster (``pgclaims plan``).

:func:`measure_rates` times, per environment and on one core, training iterations per
algorithm of a fresh agent, frozen sampling, one chunk's gradient reduction and a few steps of
the true-value fit, in CPU time, so that a shared machine still gives the core-seconds of a
free one; each warmed up, the first three the median of :data:`REPEATS` timings (single cold
timings differed by 1.7x on one machine). :func:`estimate` turns a
:class:`pgclaims.suite.plan.Plan` into core-seconds with them. The model, and what it leaves out:

- sampling costs the same per pair whatever the checkpoint (a fresh agent's short episodes
  reset more often than a trained one's; the ``corrected`` protocol's return continuations
  are not counted);
- a training run costs ``iterations x steps/2048`` times one 2048-pair iteration;
- a step (and a landscape's step) costs one iteration's non-sampling part, scaled by its batch;
- within a gradient study the chunks run in parallel, the true-value fit does not; within a
  value, step or landscape study the jobs of one round (the held-out batches; the ten 2K
  steps' batches, their evaluations; a landscape's points at one N) run side by side, as on
  Ray (:func:`pgclaims.measure.parallel.study_map`), the rounds and the steps' updates one
  after the other (locally a study is one process, which the core-seconds already count);
  training runs are serial.

A machine of K cores then needs max(core-seconds / (K x efficiency), critical path): the
critical path is the longest chain of serial work, an agent's training then its longest
serial measurement, or the longest ablation run.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pgclaims.measure import budget
from pgclaims.measure.sampler import CHUNK
from pgclaims.suite.plan import Plan, Task, family

EFFICIENCY = 0.8
"""Assumed fraction of the cores' time spent on tasks (scheduling, stragglers, lock waits)."""

REPEATS = 3
"""Timings per figure in :func:`measure_rates`, whose median it keeps."""


def _median_cpu(fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> float:
    """The median CPU time of ``fn(*args)`` over ``calls`` (after the caller's warm-up)."""
    times = []
    for args in calls:
        t0 = time.process_time()
        fn(*args)
        times.append(time.process_time() - t0)
    return sorted(times)[len(times) // 2]


@dataclass(frozen=True)
class Rates:
    """Throughput on one core of this machine (CPU time), measured by :func:`measure_rates`."""

    sample: dict[str, float]
    """env -> frozen-sampler pairs per second, one batch at a time (a high-sample step's
    batch, a landscape's step batch)."""
    sample_lockstep: dict[str, float]
    """env -> the same, chunks drawn in lockstep as the batched sampler draws a gradient
    study's, a value study's repeats and a step or landscape study's evaluations
    (:mod:`pgclaims.measure.batched`; equal to :attr:`sample` where it is off)."""
    reduce: dict[str, float]
    """env -> seconds to reduce one 2048-pair chunk to gradient statistics, per baseline."""
    fit_step: dict[str, float]
    """env -> seconds per minibatch step of the true-value fit."""
    iteration: dict[str, float]
    """"env/algo" -> seconds per training iteration of 2048 pairs."""
    update: dict[str, float]
    """"env/algo" -> the part of that iteration that is not sampling."""
    contention: float = 1.0
    """Wall-clock seconds per CPU second while measuring: how much slower than its core-seconds
    this machine ran a single task at the time (1 when the cores are free)."""
    measured: str = ""
    """When, and the load average then (the cores may be shared)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_rates(envs: tuple[str, ...], algos: tuple[str, ...], protocol: str = "authors",
                  say: Callable[[str], None] | None = None) -> Rates:
    """Time the units of :func:`estimate` on this machine with fresh agents, in CPU seconds of
    this (single-threaded) process: a core-second is what a task takes from a core it has to
    itself, so the figures hold on an idle machine even when measured on a shared one. The
    wall-clock slowdown seen meanwhile is :attr:`Rates.contention`."""
    import torch

    from pgclaims.agents.agent import TrainConfig, iterate, make_agent, training_env
    from pgclaims.measure.gradients import BASELINES, GradReducer
    from pgclaims.measure.sampler import FrozenSampler, rng_for
    from pgclaims.measure.truevalue import LR, MINIBATCH

    torch.set_num_threads(1)
    rates: dict[str, dict[str, float]] = {k: {} for k in (
        "sample", "sample_lockstep", "reduce", "fit_step", "iteration", "update")}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for env_id in envs:
        agents = {}
        for algo in algos:
            agent = make_agent(TrainConfig.create(env_id, algo, 0, 10, protocol=protocol))
            env = training_env(env_id)  # what training collects from
            iterate(agent, env)  # warm-up
            rates["iteration"][f"{env_id}/{algo}"] = _median_cpu(
                iterate, [(agent, env)] * REPEATS)
            env.close()
            agents[algo] = agent
        agent = next(iter(agents.values()))
        sampler = FrozenSampler(agent)
        batches = [sampler.batch(CHUNK, rng_for(0, 99, 0))]  # warm-up, and the one reduced
        rates["sample"][env_id] = CHUNK / _median_cpu(
            sampler.batch, [(CHUNK, rng_for(0, 99, c)) for c in range(1, REPEATS + 1)])
        group = min(sampler.nsim, 8)  # a few seconds; lockstep gains little beyond
        t0 = time.process_time()
        sampler.batches([(CHUNK, rng_for(0, 98, c)) for c in range(group)])
        rates["sample_lockstep"][env_id] = group * CHUNK / (time.process_time() - t0)
        sampler.close()
        for algo in algos:
            rates["update"][f"{env_id}/{algo}"] = max(
                0.0, rates["iteration"][f"{env_id}/{algo}"] - CHUNK / rates["sample"][env_id])
        reducer = GradReducer(agent, agent.value)
        reducer(batches[0], BASELINES)  # warm-up
        rates["reduce"][env_id] = _median_cpu(
            reducer, [(batches[0], BASELINES)] * REPEATS) / len(BASELINES)
        net = agent.value
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        x = torch.from_numpy(batches[0].obs[:MINIBATCH])
        y = torch.zeros(len(x))
        t0 = time.process_time()
        for _ in range(50):
            loss = (net(x) - y).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rates["fit_step"][env_id] = (time.process_time() - t0) / 50
        if say:
            say(f"throughput {env_id}: {rates['sample'][env_id]:.0f} pairs/s sampling, "
                + ", ".join(f"{a} {rates['iteration'][f'{env_id}/{a}']:.2f} s/iteration"
                            for a in algos) + " (CPU time)")
    contention = (time.perf_counter() - wall0) / max(time.process_time() - cpu0, 1e-9)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    return Rates(**rates, contention=contention,
                 measured=f"{stamp}, load average {load} on {os.cpu_count()} cores")


def machine_rates(envs: tuple[str, ...], algos: tuple[str, ...], protocol: str,
                  cache: Path) -> Rates:
    """:func:`measure_rates` once per machine and day, kept in ``cache/rates/<key>.json`` (key:
    the day, machine, package versions, protocol, envs and algos). Concurrent callers (xdist
    workers) measure once: the others wait on ``<key>.json.lock`` and read the file."""
    import hashlib
    import json

    from filelock import FileLock

    from pgclaims.suite.results import PACKAGES, installed_versions, machine, write_json

    what = {"day": time.strftime("%Y-%m-%d"), "machine": machine(),
            "versions": installed_versions(PACKAGES), "protocol": protocol,
            "envs": list(envs), "algos": list(algos)}
    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
    path = cache / "rates" / f"{key}.json"

    def kept() -> Rates | None:
        try:
            return Rates(**json.loads(path.read_text())["rates"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    if (rates := kept()) is not None:
        return rates
    lock = FileLock(f"{path}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError:  # a read-only cache: measured here, and again next time
        return measure_rates(envs, algos, protocol)
    try:  # another process may have measured while this one waited: read, not written again
        if (rates := kept()) is None:
            rates = measure_rates(envs, algos, protocol)
            with contextlib.suppress(OSError):
                write_json(path, {"key": what, "rates": rates.to_dict()})
        return rates
    finally:
        lock.release()


def task_seconds(task: Task, plan: Plan, rates: Rates) -> tuple[float, float]:
    """(core-seconds, of which serial) of one task."""
    ea = f"{task.env}/{task.algo}"
    if task.kind in ("training", "ablation"):
        s = task.iterations * rates.iteration[ea] * task.steps_per_iteration / CHUNK
        return s, s
    if task.kind == "gradients":
        sample = task.pairs / rates.sample_lockstep[task.env]
        from pgclaims.measure.truevalue import EPOCHS, MINIBATCH
        from pgclaims.suite.plan import measure_config

        cfg = measure_config(plan.scale, task.env)
        parts = budget.gradient_parts(cfg)
        baselines = 3 if parts["true_value"] else 2
        reduce = (parts["streams"] * baselines + parts["extra_pool"]) / CHUNK * rates.reduce[
            task.env]
        fit = EPOCHS * math.ceil(parts["true_value"] / MINIBATCH) * rates.fit_step[task.env]
        return sample + reduce + fit, fit
    # Value, step and landscape studies draw their batches in lockstep (the repeats, the
    # evaluations, a landscape's points), except one stream each: the high-sample step's
    # batch, a landscape's step batch. Their serial part is one job of each round (the rounds
    # run one after the other; under Ray a round's jobs run side by side) and the updates.
    lockstep = rates.sample_lockstep[task.env]
    cfg = plan.scale
    if task.kind == "steps":
        high = cfg.high_sample_step_n
        eval_n = cfg.measure_fields()["step_eval_n"]
        updates = (cfg.repeats + high / CHUNK) * rates.update[ea]  # 2K steps, the high one
        s = (task.pairs - high) / lockstep + high / rates.sample[task.env] + updates
        return s, CHUNK / lockstep + high / rates.sample[task.env] + eval_n / lockstep + updates
    if task.kind == "landscape":
        step = CHUNK / rates.sample[task.env] + rates.update[ea]
        s = (task.pairs - CHUNK) / lockstep + step
        return s, step + (sum(cfg.landscape_n) + cfg.landscape_ref_n) / lockstep
    return task.pairs / lockstep, cfg.heldout_n / lockstep  # value


RATES_FROM_PAIRS = 10_000_000
"""Planned pairs from which a claims run's progress line weighs its units by modelled
core-seconds at this machine's rates (:func:`machine_rates`; :mod:`pgclaims.suite.eta`): the
default scale's 4.6e7 pairs mix environments whose pairs cost up to several times more than
others'. A smaller run (the smoke scale's 5e6, one environment) weighs by pairs."""


def unit_seconds(plan: Plan, pairs: Mapping[str, int], cache: Path | None) -> dict[str, float]:
    """Each unit's modelled core-seconds, or nothing (no cache, a small run, or rates that
    cannot be measured here: an adapter's environment, a toy one)."""
    if cache is None or sum(pairs.values()) < RATES_FROM_PAIRS:
        return {}
    tasks = [plan.tasks[u] for u in pairs]
    try:
        rates = machine_rates(tuple(dict.fromkeys(t.env for t in tasks)),
                              tuple(dict.fromkeys(t.algo for t in tasks)), tasks[0].protocol,
                              cache)
        return {u: task_seconds(plan.tasks[u], plan, rates)[0] for u in pairs}
    except Exception as exc:  # progress lines must never stop a claims run
        from pgclaims.suite.progress import stamp

        print(stamp(f"progress: units weighed by pairs, rates not measured ({exc})"),
              file=sys.stderr)
        return {}


@dataclass
class Estimate:
    """Pairs and core-seconds of a plan, by kind of task and by claim family."""

    plan: Plan
    rates: Rates
    by_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    by_family: dict[str, dict[str, Any]] = field(default_factory=dict)
    pairs: int = 0
    core_s: float = 0.0
    critical_s: float = 0.0
    """The longest chain of serial work (module docstring)."""
    ablations: Any = None
    """A fixture scale's ablation fixtures, trained apart from the run
    (:class:`pgclaims.suite.ablation_costs.AblationCost`); None without them."""

    def wall_s(self, cores: int, efficiency: float = EFFICIENCY) -> float:
        """Estimated wall time on ``cores`` cores."""
        if cores < 1 or not 0 < efficiency <= 1:
            raise ValueError(f"cores must be >= 1 and efficiency in (0, 1], got {cores} and "
                             f"{efficiency}")
        return max(self.core_s / (cores * efficiency), self.critical_s)


KIND_ORDER = ("training", "gradients", "value", "steps", "landscape", "ablation")
KIND_LABELS = {"training": "agents trained", "gradients": "gradient studies",
               "value": "value studies", "steps": "step studies", "landscape": "landscapes",
               "ablation": "ablation runs"}


def estimate(plan: Plan, rates: Rates) -> Estimate:
    """Core-seconds of every task still to do, totals, and the critical path."""
    est = Estimate(plan, rates)
    by_kind = {k: {"count": 0, "pairs": 0, "core_s": 0.0} for k in KIND_ORDER}
    chains: dict[tuple[str, str, str, int], float] = {}
    agent_s: dict[tuple[str, str, str, int], float] = {}
    fam = {family(c): {"claims": 0, "lacking": 0, "pairs": 0, "core_s": 0.0}
           for c in plan.claims}
    for cid in plan.claims:
        fam[family(cid)]["claims"] += 1
        fam[family(cid)]["lacking"] += cid in plan.lacking or cid in plan.short
    todo = {t.ident for t in plan.todo()}
    for ident, task in plan.tasks.items():
        if ident not in todo:
            continue
        seconds, serial = task_seconds(task, plan, rates)
        row = by_kind[task.kind]
        row["count"] += 1
        row["pairs"] += task.pairs
        row["core_s"] += seconds
        est.pairs += task.pairs
        est.core_s += seconds
        who = (task.protocol, task.env, task.algo, task.seed)
        if task.kind == "training":
            agent_s[who] = serial
        elif task.kind == "ablation":
            est.critical_s = max(est.critical_s, serial)
        else:
            chains[who] = max(chains.get(who, 0.0), serial)
        for f in {family(c) for c in plan.users[ident]}:
            fam[f]["pairs"] += task.pairs
            fam[f]["core_s"] += seconds
    for who, serial in chains.items():
        est.critical_s = max(est.critical_s, agent_s.get(who, 0.0) + serial)
    est.by_kind = {k: v for k, v in by_kind.items() if v["count"]}
    est.by_family = fam
    from pgclaims.suite import ablation_costs

    est.ablations = ablation_costs.estimate(plan, rates)
    return est


def duration(seconds: float) -> str:
    """A readable duration: 45 s, 12 min, 3.4 h, 2.1 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def to_dict(est: Estimate, cores: int, efficiency: float = EFFICIENCY) -> dict[str, Any]:
    """The estimate as JSON built-ins (``pgclaims plan --json``)."""
    local = os.cpu_count() or 1
    plan = est.plan
    return {
        "scale": plan.scale.name, "protocols": list(plan.scale.protocols),
        "claims": len(plan.claims),
        "lacking": {cid: list(m) for cid, m in plan.lacking.items()},
        "below_size": {cid: plan.short[cid] for cid in plan.short},
        "agents_present": len(plan.present),
        "by_kind": est.by_kind, "by_family": est.by_family,
        "pairs": int(est.pairs), "core_hours": est.core_s / 3600,
        "critical_path_hours": est.critical_s / 3600,
        "efficiency": efficiency,
        "wall_hours": {"this_machine": est.wall_s(local, efficiency) / 3600,
                       "this_machine_cores": local,
                       "this_machine_as_shared": est.wall_s(local, efficiency)
                       * est.rates.contention / 3600,
                       "cluster": est.wall_s(cores, efficiency) / 3600,
                       "cluster_cores": cores},
        "rates": est.rates.to_dict(),
        **({"ablation_fixtures": _ablation_dict(est, cores, local, efficiency)}
           if est.ablations is not None else {}),
    }


def _ablation_dict(est: Estimate, cores: int, local: int, efficiency: float) -> dict[str, Any]:
    from pgclaims.suite import ablation_costs

    return ablation_costs.to_dict(est.ablations, cores, local, efficiency)


def render(est: Estimate, cores: int, efficiency: float = EFFICIENCY) -> str:
    """The estimate as a table for people."""
    plan, scale = est.plan, est.plan.scale
    local = os.cpu_count() or 1
    lines = [f"plan for scale {scale.name}: {scale.summary().split(': ', 1)[1]}; protocol(s) "
             f"{', '.join(scale.protocols)}", ""]
    lines.append(f"{'task':<18} {'count':>6} {'pairs':>10} {'core-hours':>11}")
    for kind, row in est.by_kind.items():
        lines.append(f"{KIND_LABELS[kind]:<18} {row['count']:>6} {row['pairs']:>10.3g} "
                     f"{row['core_s'] / 3600:>11.3g}")
    lines.append(f"{'total':<18} {'':>6} {est.pairs:>10.3g} {est.core_s / 3600:>11.3g}")
    if plan.present:
        lines.append(f"({len(plan.present)} agents are committed fixtures: not trained again)")
    lines += ["", f"{'claim family':<18} {'claims':>6} {'pairs':>10} {'core-hours':>11}  "
              "(a measurement shared by families counts in each)"]
    for name, row in est.by_family.items():
        note = (f"  {row['lacking']} lacking from the scale or below its sizes"
                if row["lacking"] else "")
        lines.append(f"{name:<18} {row['claims']:>6} {row['pairs']:>10.3g} "
                     f"{row['core_s'] / 3600:>11.3g}{note}")
    if plan.lacking or plan.short:
        lines.append("INCONCLUSIVE without measuring: " + "; ".join(
            [f"{cid} (lacks {', '.join(m)})" for cid, m in plan.lacking.items()]
            + [f"{cid} (below the size CLAIMS.md specifies)" for cid in plan.short]))
    lines += ["", f"wall time at {efficiency:.0%} efficiency (critical path "
              f"{duration(est.critical_s)}):",
              f"  this machine, {local} cores to itself: "
              f"{duration(est.wall_s(local, efficiency))}"
              + (f" (shared as while measuring, {est.rates.contention:.1f}x slower: "
                 f"{duration(est.wall_s(local, efficiency) * est.rates.contention)})"
                 if est.rates.contention > 1.2 else ""),
              f"  a cluster of {cores} cores: {duration(est.wall_s(cores, efficiency))}"]
    if est.ablations is not None:
        from pgclaims.suite import ablation_costs

        lines += ablation_costs.render(est.ablations, cores, local, efficiency, duration)
    lines += ["", f"throughput measured {est.rates.measured} (CPU time, one core each):"]
    for env, rate in est.rates.sample.items():
        its = ", ".join(f"{ea.split('/')[1]} {s:.2f} s" for ea, s in est.rates.iteration.items()
                        if ea.startswith(env + "/"))
        lockstep = est.rates.sample_lockstep[env]
        lines.append(f"  {env:<12} {rate:>7.0f} pairs/s sampling ({lockstep:.0f} in lockstep); "
                     f"training iteration {its}; gradient reduction "
                     f"{est.rates.reduce[env] * 1e3:.0f} ms/chunk/baseline")
    return "\n".join(lines)

"""What a claims run will do, without sampling: every agent it trains and every measurement it
requests, with their state-action pairs (``pgclaims plan``).

:data:`USES` says which measurements each claims test asks of the ``study`` fixture
(``claims/conftest.py``) and at which checkpoints; :func:`build` expands it over the scale's
protocols, environments, algorithms and seeds into distinct :class:`Task` objects, shared
between claims exactly as the measurement cache shares them (one per checkpoint, kind and
sample counts; one per training config for the ablation runs). ``tests/test_plan.py`` runs
every claims test against a recording study and checks that it requests exactly these tasks,
so the table cannot drift from the tests. Pair counts come from :mod:`pgclaims.measure.budget`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

from pgclaims.agents.ablations import Run
from pgclaims.measure import MeasureConfig, budget
from pgclaims.measure.sampler import CHUNK
from pgclaims.suite.claims import Claim, all_claims
from pgclaims.suite.scales import Scale
from pgclaims.suite.sizes import blocks_all

CHECKPOINT_SETS = ("first", "last", "late", "all", "first+late")


@dataclass(frozen=True)
class Use:
    """A measurement a claims test requests of every agent it pools: ``kind`` (one of
    :data:`pgclaims.measure.budget.KINDS`, or "ablation": training runs with Table 1 changed)
    at the checkpoints ``at``, or for an ablation the ``variants`` ("baseline": zero and value
    baselines; "lr_grid": the LR grid at the claim's two batch sizes)."""

    kind: str
    at: str = ""
    variants: str = ""


GRAD_LATE = (Use("gradients", "late"),)
FIRST_LAST = (Use("gradients", "first"), Use("gradients", "last"))
VALUE_LATE = (Use("value", "late"),)
USES: dict[str, tuple[Use, ...]] = {
    "grad.pairwise_low_at_2k": GRAD_LATE,
    "grad.pairwise_rises_with_n": (Use("gradients", "all"),),  # over its checkpoint parameter
    "grad.true_cos_low_at_2k": GRAD_LATE,
    "grad.needs_many_samples": GRAD_LATE,
    "grad.decays_with_training": FIRST_LAST,
    "grad.decays_with_task": (Use("gradients", "all"),),
    "grad.steps_disagree": (Use("steps", "late"),),
    "grad.trajectories_shrink": FIRST_LAST,
    "train.reward_improves": FIRST_LAST,
    "value.fits_gae_target": VALUE_LATE,
    "value.misses_true_returns": VALUE_LATE,
    "value.returns_gap": VALUE_LATE,
    "value.train_vs_heldout": VALUE_LATE,
    "baseline.true_beats_valuenet": GRAD_LATE,
    "baseline.valuenet_beats_zero": GRAD_LATE,
    "baseline.valuenet_marginal": GRAD_LATE,
    "baseline.needed_for_reward": (Use("ablation", variants="baseline"),),
    "landscape.noisy_at_low_samples": (Use("landscape", "first+late"),),
    "landscape.aligned_early": (Use("landscape", "first"),),
    "landscape.misaligned_late": (Use("landscape", "first+late"),),
    "landscape.surrogate_up_reward_down": (Use("steps", "late"),),
    "landscape.ppo_high_sample_misleads": (Use("steps", "late"),),
    "regime.more_samples_lower_lr": (Use("ablation", variants="lr_grid"),),
}
"""Per claim of CLAIMS.md, what its test measures. Every test pools all seeds, and every env
and algorithm its parameters do not fix (grad.decays_with_task compares tasks,
landscape.ppo_high_sample_misleads algorithms): each claim uses every agent of the scale."""


@dataclass(frozen=True)
class Task:
    """One unit of work: training an agent ("training", "ablation") or one cached measurement
    of one checkpoint (a kind of :data:`pgclaims.measure.budget.KINDS`)."""

    kind: str
    protocol: str
    env: str
    algo: str
    seed: int
    iteration: int = -1
    """The checkpoint measured; -1 for training."""
    pairs: int = 0
    """State-action pairs sampled."""
    iterations: int = 0
    """Training runs: iterations of ``steps_per_iteration`` pairs."""
    steps_per_iteration: int = CHUNK
    run: Run | None = None
    """Ablations: the training run (:class:`pgclaims.agents.ablations.Run`)."""
    ident: str = ""
    """What makes two requests the same task (the cache's or the training run's identity)."""


@dataclass
class Plan:
    """Every task of a run, the claims using each, and the claims the scale cannot measure."""

    scale: Scale
    claims: list[str] = field(default_factory=list)
    """The claim ids planned for, in CLAIMS.md order."""
    tasks: dict[str, Task] = field(default_factory=dict)
    """By :attr:`Task.ident`, in the order first requested."""
    users: dict[str, set[str]] = field(default_factory=dict)
    """Task ident -> the claim ids whose tests need it."""
    lacking: dict[str, list[str]] = field(default_factory=dict)
    """Claim id -> the capabilities the scale lacks (INCONCLUSIVE without measuring)."""
    short: dict[str, str] = field(default_factory=dict)
    """Claim id -> why the scale's sizes leave it no verdict (CLAIMS.md "Sizes"; INCONCLUSIVE
    without measuring, :mod:`pgclaims.suite.sizes`)."""
    present: set[str] = field(default_factory=set)
    """Idents of tasks already done: committed fixtures ("training"), and ablation runs in
    the ablation store or that are a committed fixture's training ("ablation")."""

    def add(self, task: Task, claim_id: str) -> None:
        self.tasks.setdefault(task.ident, task)
        self.users.setdefault(task.ident, set()).add(claim_id)

    def todo(self) -> list[Task]:
        """The tasks a run from an empty cache performs: present fixtures excluded, and at a
        fixture scale every ablation run (read from the ablation store, never trained by the
        run: :meth:`ablation_fixtures`)."""
        return [t for k, t in self.tasks.items() if k not in self.present
                and not self.stored(t)]

    def stored(self, task: Task) -> bool:
        """Whether ``task`` comes from a store the run only reads (a fixture scale's ablation
        runs; ``pgclaims fixtures train-ablations`` trains them)."""
        return task.kind == "ablation" and self.scale.source == "fixtures"

    def ablation_fixtures(self) -> tuple[list[Task], list[Task]]:
        """A fixture scale's ablation runs: (committed, still to train)."""
        runs = [t for t in self.tasks.values() if self.stored(t)]
        return ([t for t in runs if t.ident in self.present],
                [t for t in runs if t.ident not in self.present])


def family(claim_id: str) -> str:
    """The claim's family: its id up to the first dot (grad, train, value, baseline, ...)."""
    return claim_id.split(".", 1)[0]


def checkpoints(scale: Scale, at: str) -> tuple[int, ...]:
    """The checkpoints of ``scale`` a :class:`Use` names."""
    cps = scale.checkpoints
    sets = {"first": cps[:1], "last": cps[-1:], "late": scale.late, "all": cps,
            "first+late": tuple(dict.fromkeys((cps[0], *scale.late)))}
    if at not in sets:
        raise ValueError(f"unknown checkpoint set {at!r}: expected one of {CHECKPOINT_SETS}")
    return sets[at]


def ablation_budget(claim: Claim, scale: Scale, variants: str) -> int:
    """Pairs per ablation run: the scale's agents' (``iterations`` x 2048), for the LR grid
    rounded up to whole iterations at the claim's largest batch (at 500 iterations: 1,024,000
    pairs, 50 iterations of 20480; at paper-mini's 3: 20480 pairs, 10 and 1 iterations)."""
    pairs = scale.iterations * CHUNK
    if variants == "lr_grid":
        high = int(claim.constants["n_high"])
        pairs = -(-pairs // high) * high
    return pairs


def ablation_runs(claim: Claim, scale: Scale, protocol: str, env: str, algo: str, seed: int,
                  variants: str) -> list[Run]:
    """Every training run an ablation claim's test reads for one agent seed, each the same
    budget of pairs: "baseline": the zero-baseline run, then the value-net run; "lr_grid":
    each step-size multiplier of the scale at the claim's two batch sizes, low then high."""
    budget = ablation_budget(claim, scale, variants)
    if variants == "baseline":
        return [Run(protocol, env, algo, seed, baseline="zero", budget=budget),
                Run(protocol, env, algo, seed, budget=budget)]
    if variants == "lr_grid":
        steps = (int(claim.constants["n_low"]), int(claim.constants["n_high"]))
        return [Run(protocol, env, algo, seed, multiplier=m, steps=n, budget=budget)
                for n in steps for m in scale.lr_grid]
    raise ValueError(f"claim {claim.id}: unknown ablation variants {variants!r}")


def ablation_task(run: Run) -> Task:
    """The training run ``run`` (its config key is the identity of the run, in the ablation
    store and in the cache alike)."""
    return Task("ablation", run.protocol, run.env_id, run.algo, run.seed,
                pairs=budget.training_pairs(run.iterations, run.steps),
                iterations=run.iterations, steps_per_iteration=run.steps,
                run=run,
                ident=ablation_ident(_run_key(run)))


@functools.cache
def _run_key(run: Run) -> str:
    return run.config().key()


def measure_ident(kind: str, protocol: str, env: str, algo: str, seed: int, it: int) -> str:
    """The :attr:`Task.ident` of measurement ``kind`` of one agent at checkpoint ``it``."""
    return f"{kind}/{protocol}/{env}/{algo}/{seed}/{it}"


def training_ident(protocol: str, env: str, algo: str, seed: int) -> str:
    """The :attr:`Task.ident` of training one of the scale's own agents."""
    return f"training/{protocol}/{env}/{algo}/{seed}"


def ablation_ident(config_key: str) -> str:
    """The :attr:`Task.ident` of the ablation run whose training config key is ``config_key``."""
    return f"ablation/{config_key}"


def measure_config(scale: Scale, env: str) -> MeasureConfig:
    """The sample counts the claims' study uses for ``env`` (true-gradient N resolved)."""
    return MeasureConfig(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in scale.measure_fields(env).items()})


def agent_task(scale: Scale, protocol: str, env: str, algo: str, seed: int) -> Task:
    """Training one of the scale's own agents (``iterations`` of 2048 pairs)."""
    return Task("training", protocol, env, algo, seed,
                pairs=budget.training_pairs(scale.iterations), iterations=scale.iterations,
                ident=training_ident(protocol, env, algo, seed))


def _fixture_present(scale: Scale, task: Task) -> bool:
    from pgclaims.agents import fixtures

    try:
        fixtures.find(task.env, task.algo, task.seed, scale.iterations, protocol=task.protocol)
    except fixtures.FixtureError:
        return False
    return True


def build(scale: Scale, claim_ids: Iterable[str] | None = None) -> Plan:
    """The tasks of a claims run of ``scale`` (all claims, or ``claim_ids``)."""
    claims = all_claims()
    plan = Plan(scale, list(claim_ids) if claim_ids is not None else list(claims))
    for cid in plan.claims:
        claim = claims[cid]
        missing = scale.lacks(claim.needs)
        if missing:
            plan.lacking[cid] = missing
            continue
        blocked = blocks_all(claim, scale)
        if blocked:
            plan.short[cid] = blocked[0]
            continue
        if cid not in USES:
            raise KeyError(f"claim {cid} has no entry in pgclaims.suite.plan.USES: say which "
                           "measurements its test requests")
        for protocol in scale.protocols:
            for env in scale.envs:
                cfg = measure_config(scale, env)
                for algo in scale.algos:
                    for seed in scale.seeds:
                        _add_claim(plan, claim, cfg, protocol, env, algo, seed)
    for ident, task in plan.tasks.items():
        if task.kind == "training" and scale.source == "fixtures" and _fixture_present(
                scale, task):
            plan.present.add(ident)
    if scale.source == "fixtures":
        plan.present |= committed_ablations(plan)
    return plan


def committed_ablations(plan: Plan) -> set[str]:
    """Idents of the plan's ablation runs already committed: in the ablation store, or (the
    value-net run at Table 1's step size and batch) a committed fixture."""
    from pgclaims.agents import ablations, fixtures

    keys = {r["key"] for r in ablations.read_manifest()["runs"]}
    out = set()
    for ident, task in plan.tasks.items():
        if task.kind != "ablation":
            continue
        if ident.split("/", 1)[1] in keys:
            out.add(ident)
        elif task.run is not None and task.run.committed:
            try:
                fixtures.find(task.env, task.algo, task.seed, task.iterations,
                              protocol=task.protocol)
            except fixtures.FixtureError:
                continue
            out.add(ident)
    return out


def _add_claim(plan: Plan, claim: Claim, cfg: MeasureConfig, protocol: str, env: str,
               algo: str, seed: int) -> None:
    scale = plan.scale
    measures = False
    for use in USES[claim.id]:
        if use.kind == "ablation":
            if seed not in scale.ablation_agents:
                continue
            for run in ablation_runs(claim, scale, protocol, env, algo, seed, use.variants):
                plan.add(ablation_task(run), claim.id)
            continue
        measures = True
        pairs = budget.pairs(use.kind, cfg)
        for it in checkpoints(scale, use.at):
            plan.add(Task(use.kind, protocol, env, algo, seed, it, pairs,
                          ident=measure_ident(use.kind, protocol, env, algo, seed, it)),
                     claim.id)
    if measures and scale.source != "external":
        plan.add(agent_task(scale, protocol, env, algo, seed), claim.id)

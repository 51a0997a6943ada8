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

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pgclaims.measure import MeasureConfig, budget
from pgclaims.measure.sampler import CHUNK
from pgclaims.suite.claims import Claim, all_claims
from pgclaims.suite.scales import Scale

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
    overrides: tuple[tuple[str, Any], ...] = ()
    """Ablations: the Table 1 fields changed."""
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
    present: set[str] = field(default_factory=set)
    """Idents of "training" tasks already done: committed fixtures in the store."""

    def add(self, task: Task, claim_id: str) -> None:
        self.tasks.setdefault(task.ident, task)
        self.users.setdefault(task.ident, set()).add(claim_id)

    def todo(self) -> list[Task]:
        """The tasks a run from an empty cache performs (present fixtures excluded)."""
        return [t for k, t in self.tasks.items() if k not in self.present]


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


@functools.cache
def _table1(env: str, algo: str, name: str) -> float:
    from pgclaims.agents.agent import TrainConfig

    return float(getattr(TrainConfig.create(env, algo, 0).hyper, name))


def ablation_variants(claim: Claim, scale: Scale, env: str, algo: str, variants: str
                      ) -> list[dict[str, Any]]:
    """The Table 1 overrides of every training run an ablation claim's test asks for."""
    if variants == "baseline":
        return [{"baseline": "zero"}, {}]
    if variants == "lr_grid":
        knob = "policy_lr" if algo == "ppo" else "max_kl"
        base = _table1(env, algo, knob)
        steps = (int(claim.constants["n_low"]), int(claim.constants["n_high"]))
        return [{"steps_per_iteration": n, knob: base * m} for n in steps for m in scale.lr_grid]
    raise ValueError(f"claim {claim.id}: unknown ablation variants {variants!r}")


@functools.cache
def _variant_config(env: str, algo: str, iterations: int, protocol: str,
                    overrides: tuple[tuple[str, Any], ...]) -> Any:
    from pgclaims.agents.agent import TrainConfig

    return TrainConfig.create(env, algo, 0, iterations, (), protocol=protocol, **dict(overrides))


def ablation_task(scale: Scale, protocol: str, env: str, algo: str, seed: int,
                  overrides: dict[str, Any]) -> Task:
    """The training run ``study.train_variant(env, algo, seed, **overrides)`` performs (its
    config key is the cache's identity of the run)."""
    items = tuple(sorted(overrides.items()))
    cfg = dataclasses.replace(_variant_config(env, algo, scale.iterations, protocol, items),
                              seed=seed)
    steps = cfg.hyper.steps_per_iteration
    return Task("ablation", protocol, env, algo, seed, pairs=budget.training_pairs(
        scale.iterations, steps), iterations=scale.iterations, steps_per_iteration=steps,
        overrides=items, ident=ablation_ident(cfg.key()))


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
    return plan


def _add_claim(plan: Plan, claim: Claim, cfg: MeasureConfig, protocol: str, env: str,
               algo: str, seed: int) -> None:
    scale = plan.scale
    measures = False
    for use in USES[claim.id]:
        if use.kind == "ablation":
            for overrides in ablation_variants(claim, scale, env, algo, use.variants):
                plan.add(ablation_task(scale, protocol, env, algo, seed, overrides), claim.id)
            continue
        measures = True
        pairs = budget.pairs(use.kind, cfg)
        for it in checkpoints(scale, use.at):
            plan.add(Task(use.kind, protocol, env, algo, seed, it, pairs,
                          ident=measure_ident(use.kind, protocol, env, algo, seed, it)),
                     claim.id)
    if measures and scale.source != "external":
        plan.add(agent_task(scale, protocol, env, algo, seed), claim.id)

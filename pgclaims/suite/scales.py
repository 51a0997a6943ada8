"""Scales: how much of the paper's protocol a claims run performs (CLAIMS.md, "Scope per scale").

A :class:`Scale` fixes the agents (environments, algorithms, seeds, training length, where they
come from) and every sample count the measurements use. The five profiles in :data:`SCALES` are
fixed data; experiments derive variants with :meth:`Scale.override` and make them selectable
with :func:`register_scale`. Sample counts are in state-action pairs; training length in
iterations of 2048 pairs.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SOURCES = ("fixtures", "train", "external")
ENV_TAGS = {"Hopper-v5": "hopper", "Walker2d-v5": "walker", "Humanoid-v5": "humanoid"}
"""Capability provided by an environment in a scale (see :meth:`Scale.provides`)."""


def env_tag(env_id: str) -> str:
    return ENV_TAGS.get(env_id, env_id.split("-v")[0].lower())


def paper_grid(start: float, stop: float, per_decade: int, include: Iterable[int] = ()) -> tuple[
        int, ...]:
    """Log-spaced integers from ``start`` to ``stop`` (state-action pairs), plus ``include``."""
    k = round(math.log10(stop / start) * per_decade)
    pts = {round(start * 10 ** (i / per_decade)) for i in range(k + 1)}
    return tuple(sorted(pts | set(include)))


@dataclass(frozen=True)
class Scale:
    """A profile of the claims run. Every field is plain data (see :meth:`to_dict`)."""

    name: str
    description: str
    wall_time: str
    """Expected wall time, as a sentence (machine stated)."""
    envs: tuple[str, ...]
    algos: tuple[str, ...]
    seeds: tuple[int, ...]
    """Training seeds: the replication unit (one agent per env, algo, seed)."""
    iterations: int
    """Training length T of the agents (iterations of 2048 pairs); checkpoints derive from it."""
    source: str
    """"fixtures": the committed fixture store; "train": train (and cache) agents at run time;
    "external": checkpoints from an ``--agents`` manifest (:mod:`pgclaims.suite.external`)."""
    n_grid: tuple[int, ...]
    """N values for gradient-estimate curves (pairs); must include 2048 (CLAIMS.md "N")."""
    repeats: int
    """Within-agent replicates per measurement (CLAIMS.md: 10)."""
    true_grad_n: int
    """Pairs behind each true gradient (paper: ~1e6; Humanoid 1e7)."""
    heldout_n: int
    """Pairs in each held-out value batch."""
    true_value_n: int
    """Pairs to fit the "true value" baseline (paper: ~5e6)."""
    landscape_steps: tuple[float, ...]
    """Grid values of a and b (multiples of the step and of the random direction)."""
    landscape_n: tuple[int, ...]
    """Pairs per landscape point, one landscape per value (paper Fig 5: 2K, 20K, 100K)."""
    landscape_ref_n: int
    """Pairs per point of the reference grid ("true reward" of the landscape claims)."""
    high_sample_step_n: int
    """Pairs behind the high-sample step (paper: 1e6)."""
    step_eval_n: int | None = None
    """Pairs behind each true-reward estimate of one step's effect (paper: 1e6); None means
    ``landscape_ref_n``, 0 that the scale measures the steps without their effect on the
    reward (then ``high_sample_step_n`` is 0 too)."""
    capabilities: frozenset[str] = frozenset()
    """What the scale offers beyond its envs and algos, e.g. "zero_baseline_agents"."""
    lr_grid: tuple[float, ...] = ()
    """Step sizes for regime.more_samples_lower_lr, as multiples of Table 1's (PPO's Adam LR,
    TRPO's KL bound); empty when the scale trains no such grid. A non-empty grid provides the
    "lr_grid" capability."""
    ablation_seeds: tuple[int, ...] = ()
    """Seeds of the training ablations' runs (zero-baseline agents, the LR grid), read where
    they are among :attr:`seeds`; empty: all of the seeds. Each seed costs a run per variant."""
    true_grad_n_by_env: tuple[tuple[str, int], ...] = ()
    """Per-environment overrides of :attr:`true_grad_n` (Humanoid needs more)."""
    bootstrap_resamples: int = 2000
    """Replicates behind each p-value (and interval, for bootstrap methods)."""
    bootstrap_method: str = "auto"
    """Interval method of :func:`pgclaims.stats.hierarchical_bootstrap`; "auto" computes the
    jackknife-t on the scale each claim's declared support calls for (docs/statistics.md)."""
    confidence_level: float = 0.95
    """CLAIMS.md "Verdict": 95% intervals."""
    protocols: tuple[str, ...] = ("authors",)
    """Protocols whose agents the run measures, each with its own verdicts
    (:mod:`pgclaims.agents.protocol`; ``--protocol`` chooses)."""
    checkpoint_list: tuple[int, ...] = ()
    """Explicit checkpoints (an ``--agents`` manifest's iterations); empty: derived from
    :attr:`iterations`."""
    external: str = ""
    """The ``--agents`` manifest as JSON (source, versions, files, installed packages) when
    ``source`` is "external"; written to results.json as the scale's ``external``."""

    def __post_init__(self) -> None:
        from pgclaims.agents.protocol import PROTOCOLS

        problems = []
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown or not self.protocols:
            problems.append(f"protocols {list(self.protocols)}: expected a non-empty subset of "
                            f"{', '.join(PROTOCOLS)}")
        if self.source not in SOURCES:
            problems.append(f"source {self.source!r} is not one of {SOURCES}")
        if not self.envs or not self.algos or not self.seeds:
            problems.append("envs, algos and seeds must be non-empty")
        if self.iterations < 1:
            problems.append(f"iterations must be >= 1, got {self.iterations}")
        if 2048 not in self.n_grid or list(self.n_grid) != sorted(set(self.n_grid)):
            problems.append(f"n_grid must be increasing and include 2048, got {self.n_grid}")
        if list(self.checkpoint_list) != sorted(set(self.checkpoint_list)) or any(
                c < 0 for c in self.checkpoint_list):
            problems.append(f"checkpoint_list must be increasing and >= 0, got "
                            f"{self.checkpoint_list}")
        if (self.source == "external") != bool(self.external):
            problems.append("source 'external' and the external manifest go together")
        if self.high_sample_step_n and self.step_eval_n == 0:
            problems.append(f"high_sample_step_n {self.high_sample_step_n} needs step_eval_n > 0 "
                            "(the true-reward estimate that says what the step did)")
        if self.repeats < 2:
            problems.append(f"repeats must be >= 2 (pairwise cosines), got {self.repeats}")
        if problems:
            raise ValueError(f"scale {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))

    # -- derived ---------------------------------------------------------------------------

    @property
    def checkpoints(self) -> tuple[int, ...]:
        """0, 0.3T, 0.6T, 0.9T (the paper's 0, 150, 300, 450 of 500), or
        :attr:`checkpoint_list` when given."""
        if self.checkpoint_list:
            return tuple(self.checkpoint_list)
        t = self.iterations
        return tuple(sorted({0, round(0.3 * t), round(0.6 * t), round(0.9 * t)}))

    @property
    def late(self) -> tuple[int, ...]:
        """The last two checkpoints (CLAIMS.md "late")."""
        return self.checkpoints[-2:]

    @property
    def trained(self) -> tuple[int, ...]:
        """Every checkpoint but iteration 0."""
        return tuple(c for c in self.checkpoints if c > 0)

    @property
    def ablation_agents(self) -> tuple[int, ...]:
        """The seeds whose ablation runs the claims read: :attr:`seeds` that are in
        :attr:`ablation_seeds`, or every seed when it is empty."""
        if not self.ablation_seeds:
            return self.seeds
        return tuple(s for s in self.seeds if s in self.ablation_seeds)

    @property
    def provides(self) -> frozenset[str]:
        """Capabilities: one tag per env ("hopper", "walker", "humanoid"), the algorithm names,
        "lr_grid" if :attr:`lr_grid` is set, and :attr:`capabilities`."""
        grid = {"lr_grid"} if self.lr_grid else set()
        return frozenset({env_tag(e) for e in self.envs} | set(self.algos) | self.capabilities
                         | grid)

    def lacks(self, needs: Iterable[str]) -> list[str]:
        """The capabilities of ``needs`` ("a+b" means a and b) this scale does not provide."""
        missing: list[str] = []
        for need in needs:
            for atom in need.split("+"):
                if atom and atom not in self.provides and atom not in missing:
                    missing.append(atom)
        return missing

    def short_of(self, sizes: Iterable[Any]) -> list[tuple[Any, int]]:
        """The :class:`pgclaims.suite.claims.Size` requirements this scale does not meet, each
        with the scale's value (its largest, for a "max" rule)."""
        fields = self.measure_fields()
        out = []
        for size in sizes:
            have = fields.get(size.field, getattr(self, size.field, None))
            if have is None:
                raise ValueError(f"size of field {size.field!r}: scale {self.name} has no such "
                                 "sample count")
            values = tuple(have) if isinstance(have, tuple | list) else (int(have),)
            largest = max(values, default=0)  # 0: the scale does not measure it
            if size.rule == "has":
                if size.minimum not in values:
                    out.append((size, largest))
            elif largest < size.minimum:
                out.append((size, largest))
        return out

    @property
    def agent_shortfall(self) -> str | None:
        """Why no verdict of this scale can be decisive, if it has fewer seeds (agents per env
        and algorithm) than CLAIMS.md's 3; None otherwise."""
        from pgclaims.suite.claims import MIN_AGENTS

        if len(self.seeds) >= MIN_AGENTS:
            return None
        return (f"{len(self.seeds)} agent{'s' if len(self.seeds) != 1 else ''} per environment "
                f"and algorithm (seeds {', '.join(map(str, self.seeds))}): every verdict is "
                f"INCONCLUSIVE (not enough agents; CLAIMS.md needs {MIN_AGENTS})")

    def true_grad_n_for(self, env_id: str) -> int:
        return dict(self.true_grad_n_by_env).get(env_id, self.true_grad_n)

    def measure_fields(self, env_id: str | None = None) -> dict[str, Any]:
        """The MeasureConfig fields (docs/measure-api.md), true_grad_n resolved for ``env_id``."""
        return {
            "n_grid": self.n_grid,
            "repeats": self.repeats,
            "true_grad_n": self.true_grad_n if env_id is None else self.true_grad_n_for(env_id),
            "heldout_n": self.heldout_n,
            "true_value_n": self.true_value_n,
            "landscape_steps": self.landscape_steps,
            "landscape_n": self.landscape_n,
            "landscape_ref_n": self.landscape_ref_n,
            "high_sample_step_n": self.high_sample_step_n,
            "step_eval_n": (self.landscape_ref_n if self.step_eval_n is None
                            else self.step_eval_n),
        }

    def override(self, **changes: Any) -> Scale:
        """A copy with some fields changed (for experiments; the profiles stay as they are)."""
        names = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(changes) - names)
        if bad:
            raise TypeError(f"Scale has no field(s) {bad}; fields: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON built-ins: the fields plus checkpoints, late and capabilities (all provided)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "capabilities":
                value = sorted(self.provides)
            elif f.name in ("checkpoint_list", "external", "ablation_seeds") and not value:
                continue  # derived checkpoints, agents of the scale's own: as before
            elif f.name == "external":
                value = json.loads(value)
            elif f.name == "true_grad_n_by_env":
                value = {k: int(v) for k, v in value}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        out["checkpoints"] = list(self.checkpoints)
        out["late"] = list(self.late)
        return out

    def provenance_extra(self) -> dict[str, Any]:
        """``{"agents": <the external manifest>}`` for results.json's provenance; ``{}`` for
        the scale's own agents."""
        return {"agents": json.loads(self.external)} if self.external else {}

    def summary(self) -> str:
        """One line: name, agents and training length."""
        return (f"{self.name}: {', '.join(self.envs)} x {', '.join(self.algos)} x seeds "
                f"{', '.join(map(str, self.seeds))}; {self.iterations} iterations "
                f"(checkpoints {', '.join(map(str, self.checkpoints))}) from {self.source}")

    def describe(self) -> str:
        """A multi-line printable profile (:func:`pgclaims.suite.scale_text.describe`)."""
        from pgclaims.suite.scale_text import describe

        return describe(self)


HALF_STEPS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
"""CLAIMS.md landscape grid: a, b in {0, 0.5, ..., 3}."""
LR_GRID = (0.5, 1.0, 2.0)
"""Step sizes x0.5, x1, x2 of Table 1's for regime.more_samples_lower_lr: issue 21's grid, and
paper-mini's (its agents are toys)."""
LR_GRID_WIDE = (0.25, 0.5, 1.0, 2.0, 4.0)
"""LR_GRID widened to x0.25 and x4: on Hopper-v5 the best step size of 16 of 20 (seed, batch)
cells fell at an edge of x0.5-x2 (censored), so the committed ablation fixtures, the default
scale and ``pgclaims fixtures train-ablations`` use this grid."""

SMOKE = Scale(
    name="smoke",
    description="trains its own tiny Hopper agents (3 seeds, the fewest CLAIMS.md allows a "
                "verdict on; 30 iterations) and runs every claim at small N: checks the "
                "pipeline end to end; most verdicts are INCONCLUSIVE",
    wall_time="about 5-10 min on 2 CPU cores with -n 2, training included (5.0e6 pairs, 0.19 "
              "core-hours by `pgclaims plan`, 2026-12-04: the third seed costs what the claims "
              "now left unmeasured below their sizes saved)",
    envs=("Hopper-v5",), algos=("ppo", "trpo"), seeds=(0, 1, 2), iterations=30, source="train",
    n_grid=(256, 1024, 2048, 8192), repeats=10, true_grad_n=65_536, heldout_n=2048,
    true_value_n=20_480, landscape_steps=(0.0, 1.5, 3.0), landscape_n=(2048, 4096),
    landscape_ref_n=8192, high_sample_step_n=8192, step_eval_n=8192, bootstrap_resamples=1000,
)
DEFAULT = Scale(
    name="default",
    description="the committed Hopper, Walker2d and Humanoid fixtures of the authors protocol "
                "(500 iterations, 10 seeds), measured at iterations 0, 300 and 450 (150 is "
                "left out for time: no claim needs it) with N up to 16384, 1.5e5-pair true "
                "gradients, 3x3 surrogate landscapes against an 8K-pair reference at "
                "iteration 0 and 2K steps without reward estimates (the claims those would "
                "feed are below CLAIMS.md's sizes here); the training ablations "
                "(zero-baseline agents, the LR grid at 2048 and 20480 pairs per iteration) "
                "(seeds 0-4) read from the committed ablation fixtures, nothing trained at run "
                "time",
    wall_time="58 min on 2 CPU cores with -n auto (the authors reference run from a fresh "
              "clone, 2026-12-06; `pgclaims plan` priced its 4.6e7 pairs at 1.83 core-hours "
              "that day): over the 30-min target, which no scale with Humanoid meets here "
              "(docs/scales.md); --protocol all measures the corrected agents too and takes "
              "about twice as long",
    envs=("Hopper-v5", "Walker2d-v5", "Humanoid-v5"), algos=("ppo", "trpo"),
    seeds=tuple(range(10)), iterations=500, source="fixtures", checkpoint_list=(0, 300, 450),
    n_grid=(128, 512, 2048, 8192, 16_384), repeats=10, true_grad_n=147_456, heldout_n=4096,
    true_value_n=20_480, landscape_steps=(0.0, 1.5, 3.0), landscape_n=(),
    landscape_ref_n=8192, high_sample_step_n=0, step_eval_n=0, protocols=("authors",),
    capabilities=frozenset({"zero_baseline_agents"}), lr_grid=LR_GRID_WIDE,
    ablation_seeds=tuple(range(5)),
)
NIGHTLY = Scale(
    name="nightly",
    description="both protocols' committed fixtures (3 envs x 2 algos x 10 seeds); N up to "
                "1.3e5 with 1e6-pair true gradients (2e6 for Humanoid), 4x4 landscapes up to "
                "2e4 pairs per point. A cluster job (--backend ray): it does not fit the 2-hour "
                "budget on 2 cores (docs/scales.md)",
    wall_time="cluster scale: about 115 core-hours (1.75e9 pairs), about 90 min on 100 "
              "cores and 3 days on 2 (estimated by `pgclaims plan --scale nightly`, 2026-12-05)",
    envs=("Hopper-v5", "Walker2d-v5", "Humanoid-v5"), algos=("ppo", "trpo"),
    seeds=tuple(range(10)), iterations=500, source="fixtures",
    n_grid=(128, 512, 2048, 8192, 32_768, 131_072), repeats=10,
    true_grad_n=1_000_000, true_grad_n_by_env=(("Humanoid-v5", 2_000_000),), heldout_n=8192,
    true_value_n=204_800, landscape_steps=(0.0, 1.0, 2.0, 3.0), landscape_n=(2048, 20_480),
    landscape_ref_n=102_400, high_sample_step_n=204_800, step_eval_n=32_768,
    protocols=("authors", "corrected"),
)
PAPER = Scale(
    name="paper",
    description="the paper's protocol (1e7-pair true gradients for Humanoid, 5e6-pair true "
                "value, 1e6 pairs per landscape point, zero-baseline agents, a learning-rate "
                "grid); the paper ran 'multiple trials' per configuration without a count, we "
                "use 10 seeds. A cluster-scale run",
    wall_time="cluster scale: about 1.4e3 core-hours (1.9e10 pairs), about 17 h on 100 "
              "cores (estimated by `pgclaims plan --scale paper`, 2026-12-01)",
    envs=("Hopper-v5", "Walker2d-v5", "Humanoid-v5"), algos=("ppo", "trpo"),
    seeds=tuple(range(10)), iterations=500, source="fixtures",
    n_grid=paper_grid(100, 1_000_000, 2, include=(2048,)), repeats=10,
    true_grad_n=1_000_000, true_grad_n_by_env=(("Humanoid-v5", 10_000_000),),
    heldout_n=20_480, true_value_n=5_000_000, landscape_steps=HALF_STEPS,
    landscape_n=(2048, 20_480, 102_400), landscape_ref_n=1_000_000,
    high_sample_step_n=1_000_000, step_eval_n=1_000_000,
    capabilities=frozenset({"zero_baseline_agents"}), lr_grid=LR_GRID_WIDE,
    bootstrap_resamples=500,  # the paper's "500 sample bootstrapping" (Fig 1, 2)
)

PAPER_MINI = Scale(
    name="paper-mini",
    description="the paper scale's protocol end to end at toy sizes: trains its own Hopper, "
                "Walker2d and Humanoid agents (2 seeds, 3 iterations), zero-baseline agents, "
                "the LR grid at 2048 and 20480 steps per iteration, 7x7 landscapes and the "
                "high-sample step, so every claim runs through the paper's code; with 2 "
                "seeds every verdict is INCONCLUSIVE (not enough agents), and 3-iteration "
                "agents are not trained agents anyway",
    wall_time="38 min measured on 2 CPU cores with -n 2 from a fresh clone, training included "
              "(2026-12-01; about 1.4 core-hours, 1.3e7 pairs, by `pgclaims plan`)",
    envs=("Hopper-v5", "Walker2d-v5", "Humanoid-v5"), algos=("ppo", "trpo"), seeds=(0, 1),
    iterations=3, source="train", n_grid=(256, 1024, 2048, 8192), repeats=10,
    true_grad_n=65_536, heldout_n=2048, true_value_n=20_480, landscape_steps=HALF_STEPS,
    landscape_n=(256, 512), landscape_ref_n=1024, high_sample_step_n=16_384, step_eval_n=2048,
    capabilities=frozenset({"zero_baseline_agents"}), lr_grid=LR_GRID,
    bootstrap_resamples=1000,
)

SCALES: dict[str, Scale] = {s.name: s for s in (SMOKE, DEFAULT, NIGHTLY, PAPER, PAPER_MINI)}
_BUILTIN = frozenset(SCALES)


class UnknownScaleError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register_scale(scale: Scale) -> Scale:
    """Make ``scale`` selectable with ``--scale <name>`` (e.g. from a ``conftest.py``).
    Registering an equal profile again is a no-op; the built-in profiles cannot be replaced."""
    known = SCALES.get(scale.name)
    if known is not None and known != scale:
        raise ValueError(f"scale {scale.name!r} is already registered with other values")
    SCALES[scale.name] = scale
    return scale


def unregister_scale(name: str) -> None:
    if name in _BUILTIN:
        raise ValueError(f"scale {name!r} is one of the built-in profiles")
    SCALES.pop(name, None)


def get_scale(name: str) -> Scale:
    """The profile called ``name``; an unknown name raises :class:`UnknownScaleError` listing
    the valid ones."""
    try:
        return SCALES[name]
    except KeyError:
        near = difflib.get_close_matches(name, list(SCALES), n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise UnknownScaleError(
            f"unknown scale {name!r}{hint}; choose one of: {', '.join(SCALES)}") from None


__all__ = ["SCALES", "Scale", "UnknownScaleError", "get_scale", "register_scale",
           "unregister_scale"]

"""The claims of "A Closer Look at Deep Policy Gradients" as declarative records.

One :class:`Claim` per row of ``CLAIMS.md`` (the product specification), in its order, with the
sentence, statistic, verdict rule and paper figure copied from it. A claims test names its
record with ``@pytest.mark.claim("grad.true_cos_low_at_2k")``; the threshold and direction live
here only, never in a test body (``tests/test_plugin.py`` checks them against
``CLAIMS.md``).

Projects pointing the suite at their own claims add records with :func:`register` (e.g. from a
``conftest.py``); :func:`get` resolves both.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DIRECTIONS = ("<", ">", "<=")
PARAMETERS = ("env", "algo", "checkpoint", "n")
"""What a claims test may be parametrized over (see :attr:`Claim.over`)."""
CHECKPOINT_SETS = ("all", "late", "trained")
MIN_AGENTS = 3
"""CLAIMS.md "Replication unit": at least 3 agents for a decisive verdict. Fewer agents give
INCONCLUSIVE ("not enough agents"), whatever the interval; repeats are never the unit."""
OUTCOMES = ("REPRODUCED", "REFUTED")
SIZE_RULES = ("max", "has")


@dataclass(frozen=True)
class Size:
    """A sample size CLAIMS.md ("Sizes", or the claim's own sentence) fixes for a statistic.

    A scale whose field ``field`` falls short (``rule`` "max": its largest value is below
    ``minimum``; "has": ``minimum`` is not one of its values) measures something else under the
    claim's name. ``invalidates`` names the verdicts the smaller size cannot support: both, when
    it can move the statistic either way (those rows are INCONCLUSIVE without measuring), or
    only the one it biases toward (e.g. estimation noise that can only make a step look as if
    it lowered reward cannot support REPRODUCED, but leaves a REFUTED standing)."""

    field: str
    """A :class:`pgclaims.suite.scales.Scale` field of state-action pairs."""
    minimum: int
    what: str
    """What the size is, for the reason, e.g. "true-reward estimates of 1e6 pairs (CLAIMS.md
    Sizes)"."""
    rule: str = "max"
    invalidates: tuple[str, ...] = OUTCOMES

    def __post_init__(self) -> None:
        if self.rule not in SIZE_RULES:
            raise ValueError(f"size {self.field}: rule {self.rule!r}, expected {SIZE_RULES}")
        bad = [o for o in self.invalidates if o not in OUTCOMES]
        if bad or not self.invalidates:
            raise ValueError(f"size {self.field}: invalidates {self.invalidates}, expected a "
                             f"non-empty subset of {OUTCOMES}")

    @property
    def blocks_all(self) -> bool:
        """Whether a shortfall leaves no verdict possible (no need to measure)."""
        return set(self.invalidates) == set(OUTCOMES)


@dataclass(frozen=True)
class Claim:
    """One testable hypothesis: ``statistic direction threshold``."""

    id: str
    section: str
    """The CLAIMS.md section heading, without its parenthesis (e.g. "Gradient estimation")."""
    sentence: str
    statistic: str
    direction: str
    """One of "<", ">", "<=": the side of the threshold the claim puts the statistic on."""
    threshold: float
    paper: str
    """Where the paper shows it, e.g. "Fig 1, 9"."""
    over: tuple[str, ...] = ("env", "algo")
    """The parameters the plugin parametrizes the test over, a subset of :data:`PARAMETERS`,
    with values from the active scale; the test takes exactly these as arguments. Everything
    else (e.g. the late checkpoints, the seeds) the test pools itself."""
    checkpoints: str = "all"
    """For claims over "checkpoint": which of the scale's checkpoints: "all", "late" (the last
    two, CLAIMS.md "Checkpoints") or "trained" (all but iteration 0)."""
    needs: tuple[str, ...] = ()
    """Scale capabilities the claim needs; "a+b" needs both a and b. A scale lacking one gives a
    single INCONCLUSIVE test naming it (see :meth:`pgclaims.suite.scales.Scale.lacks`)."""
    constants: Mapping[str, float] = field(default_factory=dict, hash=False)
    """Numbers that define the statistic (not the verdict), e.g. {"n": 2048} for "at 2K"."""
    support: tuple[float, float] = (-math.inf, math.inf)
    """The values the per-agent statistic can take, (lo, hi), inf allowed. The interval is
    computed on the scale this calls for (:mod:`pgclaims.stats.pivot`: Fisher's z between two
    bounds, the log beside one); the threshold must lie strictly inside."""
    comparisons: int = 1
    """Rows per parametrization: a test that adds its own ``pytest.mark.parametrize`` (e.g.
    grad.decays_with_task's two easier tasks) declares their number here, so that the scale's
    declared family (:func:`pgclaims.suite.family.family_size`) counts its rows."""
    sizes: tuple[Size, ...] = ()
    """Sample sizes the statistic is specified at (CLAIMS.md "Sizes"); a scale short of one is
    INCONCLUSIVE on the verdicts the shortfall cannot support (see :class:`Size`)."""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"claim {self.id}: direction {self.direction!r}, expected one of "
                             f"{DIRECTIONS}")
        bad = [p for p in self.over if p not in PARAMETERS]
        if bad:
            raise ValueError(f"claim {self.id}: over has {bad}, expected names from {PARAMETERS}")
        if self.checkpoints not in CHECKPOINT_SETS:
            raise ValueError(f"claim {self.id}: checkpoints {self.checkpoints!r}, expected one of "
                             f"{CHECKPOINT_SETS}")
        lo, hi = (float(x) for x in self.support)
        if not lo < self.threshold < hi:
            raise ValueError(f"claim {self.id}: threshold {self.threshold} must lie strictly "
                             f"inside its support [{lo}, {hi}]")
        if self.comparisons < 1:
            raise ValueError(f"claim {self.id}: comparisons {self.comparisons}, expected >= 1")
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "support", (lo, hi))
        object.__setattr__(self, "constants", MappingProxyType(dict(self.constants)))

    @property
    def rule(self) -> str:
        """The verdict rule as CLAIMS.md states it, e.g. "< 0.5"."""
        t = self.threshold
        return f"{self.direction} {int(t) if t.is_integer() else t:g}"


GRAD = "Gradient estimation"
VALUE = "Value prediction"
LANDSCAPE = "Optimization landscape"
REGIME = "Sample regime"
K2 = {"n": 2048}
"""CLAIMS.md "N": "2K" is 2048, the samples of one training iteration."""
PER_CHECKPOINT = ("env", "algo", "checkpoint")
COSINE = (-1.0, 1.0)
"""A cosine, a mean of cosines or a Spearman correlation. The cosine with the true gradient
keeps the default (the whole line): the noise-corrected one of protocol ``corrected`` divides
by an estimate of |g_true| that can fall below the truth, so it can leave [-1, 1]."""
COSINE_CHANGE = (-2.0, 2.0)
"""The difference of two of them."""
FRACTION = (0.0, 1.0)
FRACTION_CHANGE = (-1.0, 1.0)
ERROR = (0.0, math.inf)
"""A mean relative error, |V - y| / |y| averaged over states."""
POSITIVE = (0.0, math.inf)
CONCENTRATED_N = 100_000
"""CLAIMS.md "Sizes": the 1e5-1e6 end of the N axis for concentration (Figure 1's axis runs
from 1e2 to 1e6); a grid stopping below 1e5 makes estimates look as if they never
concentrate."""
SMOOTH_LANDSCAPE_N = 100_000
"""CLAIMS.md "Sizes": 100K pairs per point for a smooth landscape (Figure 5's third column)."""
HIGH_SAMPLE_N = 1_000_000
"""CLAIMS.md "Sizes": 1e6 pairs for a high-sample step or a step's true-reward estimate
(Figures 6, 7, 13-18)."""
TRUE_VALUE_N = 5_000_000
"""The "~5e6 pairs" of baseline.true_beats_valuenet's sentence (Figure 4's true value)."""
EVAL_NOISE = ("true-reward estimates of {n:,} pairs (CLAIMS.md Sizes): estimation noise makes "
              "a step that barely changes the reward look as if it lowered it about half the "
              "time, whether it truly raised or lowered it")
WEAK_TRUE_VALUE = (Size("true_value_n", TRUE_VALUE_N,
                        "a true value fit on ~5e6 pairs (the claim's sentence): a true value fit "
                        "on fewer pairs is a worse baseline, which can only lower c_true",
                        invalidates=("REFUTED",)),)

_RECORDS = (
    # Gradient estimation (Section 2.1, Figures 1, 2, 9, 10, A.4)
    Claim("grad.pairwise_low_at_2k", GRAD,
          "At 2K pairs, independent gradient estimates of a late checkpoint agree poorly.",
          "mean pairwise cosine at N=2048, late checkpoints", "<", 0.5, "Fig 1, 9",
          constants=K2,
          support=COSINE),
    Claim("grad.pairwise_rises_with_n", GRAD,
          "Agreement grows with N: estimates concentrate given enough samples.",
          "pairwise cosine at the largest N minus at 2K", ">", 0.2, "Fig 1, 9",
          over=PER_CHECKPOINT, checkpoints="all", constants=K2,
          sizes=(Size("n_grid", CONCENTRATED_N,
                      "an N grid reaching 1e5, the concentrated end of Figure 1's axis "
                      "(CLAIMS.md Sizes: a short N axis makes estimates look as if they never "
                      "concentrate)"),),
          support=COSINE_CHANGE),
    Claim("grad.true_cos_low_at_2k", GRAD,
          "At 2K pairs, estimates correlate poorly with the true gradient (late checkpoints).",
          "mean cosine with the true gradient at N=2048", "<", 0.5, "Fig 2, 10",
          constants=K2),
    Claim("grad.needs_many_samples", GRAD,
          "Reaching a good estimate needs several-fold more samples than 2K.",
          "smallest N whose mean cosine with the true gradient reaches 0.9 (log-interpolated)",
          ">", 5 * 2048, "Fig 2",
          constants={"level": 0.9, "n": 2048}),
    Claim("grad.decays_with_training", GRAD,
          "Estimate quality falls as training progresses.",
          "cosine with true gradient at 2K: last checkpoint minus iteration 0", "<", 0.0,
          "Fig 1, 2", constants=K2),
    Claim("grad.decays_with_task", GRAD,
          "Estimate quality falls with task complexity.",
          "cosine with true gradient at 2K: Humanoid minus Hopper, and Humanoid minus Walker2d, "
          "same checkpoint", "<", 0.0, "Fig 1, 2 vs 9, 10",
          over=("algo", "checkpoint"), checkpoints="all", needs=("humanoid+hopper+walker",),
          constants=K2,
          comparisons=2),
    Claim("grad.steps_disagree", GRAD,
          "The same holds for the steps the algorithms actually take (PPO's step after its "
          "epochs, TRPO's natural step).",
          "mean pairwise cosine of steps computed from independent 2K batches, late checkpoints",
          "<", 0.5, "A.4, footnote 1", constants=K2,
          support=COSINE),
    Claim("grad.trajectories_shrink", GRAD,
          "The number of complete trajectories per iteration decreases during training.",
          "trajectories in a 2048-step batch: last checkpoint minus iteration 0", "<", 0.0,
          "Sec 2.1", constants=K2),
    Claim("train.reward_improves", GRAD,
          "Agents improve throughout training despite poor gradients.",
          "mean episode return: last checkpoint minus iteration 0", ">", 0.0, "Fig 8"),
    # Value prediction (Section 2.2, Figures 3, 4, 11, 12)
    Claim("value.fits_gae_target", VALUE,
          "The value net solves its own supervised task: small error on the GAE target "
          "V_old + A_GAE, held-out.",
          "held-out MRE against V_old + A_GAE", "<", 0.25, "Fig 3 left, 12 left",
          support=ERROR),
    Claim("value.misses_true_returns", VALUE,
          "It does not fit the true value: large error against returns, held-out "
          "(\"off by about 50%\").",
          "held-out MRE against discounted Monte Carlo returns", ">", 0.3,
          "Fig 3 right, 12 right",
          support=ERROR),
    Claim("value.returns_gap", VALUE,
          "The returns error exceeds the GAE-target error.",
          "held-out returns MRE minus held-out GAE-target MRE", ">", 0.0, "Fig 3",),
    Claim("value.train_vs_heldout", VALUE,
          "Returns error is small on train pairs and large on held-out pairs.",
          "held-out returns MRE minus train returns MRE", ">", 0.0, "Fig 11 vs 12",),
    Claim("baseline.true_beats_valuenet", VALUE,
          "A true value baseline (fit to returns with ~5e6 pairs from the current policy) gives "
          "much lower-variance gradients than the value net.",
          "pairwise cosine at 2K: true-value baseline minus value-net baseline", ">", 0.0,
          "Fig 4", constants=K2, sizes=WEAK_TRUE_VALUE,
          support=COSINE_CHANGE),
    Claim("baseline.valuenet_beats_zero", VALUE,
          "The value net still reduces variance against no baseline (advantages replaced by "
          "returns).",
          "pairwise cosine at the largest N: value-net minus zero baseline", ">", 0.0, "Fig 4",
          support=COSINE_CHANGE),
    Claim("baseline.valuenet_marginal", VALUE,
          "The value net recovers only a small part of what the true value achieves.",
          "(c_valuenet - c_zero) / (c_true - c_zero), pairwise cosine at 2K", "<", 0.5,
          "Fig 4, Sec 3", constants=K2, sizes=WEAK_TRUE_VALUE),
    Claim("baseline.needed_for_reward", VALUE,
          "Agents trained without a baseline reach almost an order of magnitude worse reward.",
          "final mean return: zero-baseline agents / value-net agents (same algorithm, same "
          "budget)", "<", 0.3, "Sec 2.2", needs=("zero_baseline_agents",),
          support=POSITIVE),
    # Optimization landscape (Section 2.3, Figures 5, 6, 7, 13-20)
    Claim("landscape.noisy_at_low_samples", LANDSCAPE,
          "The true reward landscape estimated from 2K pairs is jagged; from 100K pairs it is "
          "smooth.",
          "Spearman correlation of the grid with an independent high-sample reference grid: "
          "2K minus 100K", "<", 0.0, "Fig 5, 19, 20",
          constants={"n_low": 2048, "n_high": SMOOTH_LANDSCAPE_N},
          sizes=(Size("landscape_n", 2048, "a landscape from 2K pairs per point", rule="has"),
                 Size("landscape_n", SMOOTH_LANDSCAPE_N,
                      "a landscape from 100K pairs per point (CLAIMS.md Sizes)")),
          support=COSINE_CHANGE),
    Claim("landscape.aligned_early", LANDSCAPE,
          "Early in training, surrogate and true reward agree.",
          "Spearman correlation, over the grid, of surrogate and true reward at iteration 0",
          ">", 0.0, "Fig 6, 7",
          support=COSINE),
    Claim("landscape.misaligned_late", LANDSCAPE,
          "Later, in the 2K regime, the surrogate predicts the true reward less well.",
          "that correlation: late checkpoints minus iteration 0", "<", 0.0, "Fig 6, 7",
          sizes=(Size("landscape_ref_n", SMOOTH_LANDSCAPE_N,
                      "a true-reward grid of 100K pairs per point (CLAIMS.md Sizes: a smooth "
                      "landscape); a noisier grid lowers the correlation by a factor that "
                      "differs between checkpoints, either way"),),
          support=COSINE_CHANGE),
    Claim("landscape.surrogate_up_reward_down", LANDSCAPE,
          "Late in training, steps that increase the surrogate often decrease the true reward.",
          "fraction of late 2K steps with surrogate(a=1) > surrogate(0) whose true reward "
          "(1e6-pair estimate) falls", ">", 0.25, "Fig 6, 7", constants={"a": 1.0, "n": 2048},
          sizes=(Size("step_eval_n", HIGH_SAMPLE_N, EVAL_NOISE.format(n=HIGH_SAMPLE_N)
                      + ": small rises counted as falls raise the fraction, small falls "
                      "counted as rises lower it"),),
          support=FRACTION),
    Claim("landscape.ppo_high_sample_misleads", LANDSCAPE,
          "With 1e6-pair steps, TRPO's step raises true reward while PPO's step often lowers it.",
          "fraction of high-sample steps lowering true reward: PPO minus TRPO", ">", 0.0,
          "Sec 2.3, Fig 7, 13", over=("env",), needs=("ppo+trpo",),
          sizes=(Size("high_sample_step_n", HIGH_SAMPLE_N,
                      "a high-sample step from 1e6 pairs (CLAIMS.md Sizes)"),
                 Size("step_eval_n", HIGH_SAMPLE_N, EVAL_NOISE.format(n=HIGH_SAMPLE_N)
                      + ", more often for the algorithm whose steps change it less")),
          support=FRACTION_CHANGE),
    # Sample regime (Section 1, Section 5)
    Claim("regime.more_samples_lower_lr", REGIME,
          "Better gradient estimates (10x samples per iteration) do not admit a larger learning "
          "rate, contrary to supervised-learning intuition.",
          "best LR (by final return over a log grid) at 20480 steps/iteration divided by best LR "
          "at 2048", "<=", 1.0, "Sec 1, 5", needs=("lr_grid",),
          constants={"n_low": 2048, "n_high": 20480}),
)

CLAIMS: dict[str, Claim] = {c.id: c for c in _RECORDS}
"""Every claim of CLAIMS.md, in its order."""

_EXTRA: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    """Add a claim of your own (e.g. from a ``conftest.py``) so tests can mark it.

    Registering an equal record again is a no-op (conftests are re-imported under pytester and
    xdist); a different record under a taken id is an error."""
    known = CLAIMS.get(claim.id) or _EXTRA.get(claim.id)
    if known is not None and known != claim:
        raise ValueError(f"claim id {claim.id!r} is already registered with another record")
    if known is None:
        _EXTRA[claim.id] = claim
    return known or claim


def unregister(claim_id: str) -> None:
    """Remove a claim added with :func:`register` (the paper's claims cannot be removed)."""
    _EXTRA.pop(claim_id, None)


def all_claims() -> dict[str, Claim]:
    """The paper's claims followed by registered ones."""
    return {**CLAIMS, **_EXTRA}


def close_matches(claim_id: str, n: int = 3) -> list[str]:
    return difflib.get_close_matches(claim_id, list(all_claims()), n=n, cutoff=0.5)


def unknown_message(claim_id: str) -> str:
    """What to say about an unknown id: the closest ids, or else every id (the spec file
    CLAIMS.md is not shipped with the package, so the message itself lists them)."""
    near = close_matches(claim_id)
    if near:
        return f"unknown claim id {claim_id!r}; did you mean {', '.join(near)}?"
    ids = list(all_claims())
    families = sorted({i.split(".")[0] + ".*" for i in ids})
    return (f"unknown claim id {claim_id!r}; the {len(ids)} ids are {', '.join(ids)} "
            f"(a pattern such as {families[0]!r} selects a family)")


class UnknownClaimError(KeyError):
    """A claim id that is neither in CLAIMS.md nor registered."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0])


def get(claim_id: str) -> Claim:
    """The record of ``claim_id``; an unknown id raises :class:`UnknownClaimError` naming the
    closest known ids."""
    found = CLAIMS.get(claim_id) or _EXTRA.get(claim_id)
    if found is None:
        raise UnknownClaimError(unknown_message(claim_id))
    return found


__all__ = ["CLAIMS", "MIN_AGENTS", "Claim", "Size", "UnknownClaimError", "all_claims", "get",
           "register", "unregister"]

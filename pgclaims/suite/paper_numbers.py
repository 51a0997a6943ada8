"""What the paper itself reports for each claim: the number to show beside ours, or "ordinal".

One :class:`PaperNumber` per claim of :mod:`pgclaims.suite.claims`, in its order. A number is
either *quoted* (``source`` is the paper's sentence, verbatim) or *read off a figure* (``source``
names the figure and panel; the value is a range, never more precise than the figure). Where the
paper states only an ordering ("lower late in training", "often"), the record is *ordinal*, its
value is None and ``text`` says what ordering the paper reports. ``setting`` says where the
paper's measurement differs from ours (v2 environments on mujoco-py, sample counts, which env
and algorithm the number is for). Values are in the units of the claim's statistic.

This module is the one place the paper's numbers are typed; ``docs/paper-numbers.md`` is
generated from it (``python -m pgclaims.suite.paper_numbers --markdown``).

The project's copy of the paper is text extracted from the PDF, in which the tick labels of
the plotted curves are lost; no value is read off a curve here. The only figure values are the
trajectory counts printed as labels in Figures 19 and 20.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

from pgclaims.suite.claims import CLAIMS, UnknownClaimError

KINDS = ("quoted", "figure", "ordinal")
INF = math.inf
BOUNDED = (-1.0, 1.0)
"""Support of a cosine, a Spearman correlation, or a difference of two fractions."""
BOUNDED_DIFF = (-2.0, 2.0)
"""Support of a difference of two cosines or two correlations."""
FRACTION = (0.0, 1.0)
NONNEGATIVE = (0.0, INF)
REAL = (-INF, INF)

_ALL_ENVS = "Humanoid-v2, Walker2d-v2, Hopper-v2 (mujoco-py)"
_AGENTS = "PPO and TRPO with Table 1 hyperparameters in the authors' code"
_CHECKPOINTS = "checkpoints 0, 150, 300, 450 of 500 iterations"
_TRUE_GRAD = "true gradient from 1e7 pairs (Humanoid) or about 1e6 (Walker2d, Hopper)"
_FIG4 = ("Fig 4: Walker2d-v2 and Hopper-v2 only (mujoco-py), iterations 150, 300, 450; "
         "N on a linear axis up to 10,000 pairs; true value fit on 5e6 pairs; 10-resample "
         "bootstrap intervals")
_LANDSCAPES = ("Figs 6, 7: Humanoid-v2 TRPO and PPO; Figs 13-18: every env x algo (v2, "
               "mujoco-py); true reward from 1e6 pairs per grid point; judged by eye, no "
               "correlation computed")
_NO_TICKS = "tick labels lost in our copy, so no value is read off"


@dataclass(frozen=True)
class PaperNumber:
    """The paper's magnitude for one claim, in the units of the claim's statistic."""

    claim_id: str
    kind: str
    """One of :data:`KINDS`: "quoted" (from the text), "figure" (read off a figure), "ordinal"
    (no magnitude: the paper states a direction, or a word such as "often")."""
    value: float | tuple[float, float] | None
    """A number, a (low, high) range (always for "figure"), or None (exactly for "ordinal")."""
    text: str
    """A short rendering for a report cell, e.g. '~0.5 ("off by about 50%"), held-out returns
    MRE'; any "double-quoted" fragment in it is the paper's words, verbatim."""
    source: str
    """Quoted: the paper's sentence, verbatim. Ordinal: the sentence stating the ordering,
    verbatim. Figure: the figure and panel; any "double-quoted" fragment in it is verbatim."""
    setting: str
    """Where the paper's measurement differs from ours: envs, algorithms, sample counts."""
    support: tuple[float, float]
    """The values the claim's statistic can take (a cosine difference lies in [-2, 2])."""

    def __post_init__(self) -> None:
        where = f"paper number for {self.claim_id}"
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind {self.kind!r}, expected one of {KINDS}")
        if (self.kind == "ordinal") != (self.value is None):
            raise ValueError(f"{where}: kind {self.kind!r} with value {self.value!r} (ordinal "
                             "and only ordinal has no value)")
        if self.kind == "figure" and not isinstance(self.value, tuple):
            raise ValueError(f"{where}: a value read off a figure is a (low, high) range")
        if isinstance(self.value, tuple):
            object.__setattr__(self, "value", tuple(float(x) for x in self.value))
            if len(self.value) != 2 or not self.value[0] <= self.value[1]:
                raise ValueError(f"{where}: range {self.value} is not (low, high)")
        elif self.value is not None:
            object.__setattr__(self, "value", float(self.value))
        bounds = () if self.value is None else (
            self.value if isinstance(self.value, tuple) else (self.value,))
        for x in bounds:
            if not math.isfinite(x) or not self.support[0] <= x <= self.support[1]:
                raise ValueError(f"{where}: value {x} outside the statistic's support "
                                 f"{self.support}")

    def as_dict(self) -> dict[str, Any]:
        """Built-in types only, for a results.json row (a range becomes [low, high])."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"claim_id": self.claim_id, "kind": self.kind, "value": value,
                "text": self.text, "source": self.source, "setting": self.setting}


_RECORDS = (
    # Gradient estimation (Section 2.1)
    PaperNumber(
        "grad.pairwise_low_at_2k", "ordinal", None,
        "far from concentrated at 2K, more so after the first iterations (Fig 1, 9; "
        + _NO_TICKS + ")",
        "In general, it seems that obtaining tightly concentrated gradient estimates would "
        "require significantly more samples than are used in practice, particularly after the "
        "first few timesteps.",
        f"{_ALL_ENVS}; {_AGENTS}; ten estimates per N; {_CHECKPOINTS}; one curve per seed",
        BOUNDED),
    PaperNumber(
        "grad.pairwise_rises_with_n", "ordinal", None,
        "concentrates only with significantly more than 2K pairs (Fig 1, 9; " + _NO_TICKS
        + ")",
        "In general, it seems that obtaining tightly concentrated gradient estimates would "
        "require significantly more samples than are used in practice, particularly after the "
        "first few timesteps.",
        f"{_ALL_ENVS}; {_AGENTS}; N axis 1e2 to 1e6 pairs; {_CHECKPOINTS}",
        BOUNDED_DIFF),
    PaperNumber(
        "grad.true_cos_low_at_2k", "ordinal", None,
        "poor at 2K, \"sometimes\" \"zero or even negative\" for some agents: no mean is "
        "given (Fig 2, 10; " + _NO_TICKS + ")",
        "In fact, we sometimes observe a zero or even negative correlation in the relevant "
        "sample regime",
        f"{_ALL_ENVS}; which env, algo and checkpoint is not stated; {_TRUE_GRAD}; raw cosine "
        "(no correction for the true gradient's own noise)",
        BOUNDED),
    PaperNumber(
        "grad.needs_many_samples", "ordinal", None,
        "\"several-fold\" more samples than 2K; no N is given, and no cosine level "
        "(the 0.9 level is CLAIMS.md's)",
        "Observe that although it is possible to empirically estimate the true gradient, this "
        "requires several-fold more samples than are used commonly in practical applications "
        "of these algorithms.",
        f"Humanoid-v2 (Fig 2); {_AGENTS}; {_TRUE_GRAD}; N axis 1e2 to 1e6 pairs",
        NONNEGATIVE),
    PaperNumber(
        "grad.decays_with_training", "ordinal", None,
        "the 2K cosine with the true gradient is lower at later checkpoints (Fig 1, 2)",
        "See additionally that the estimation task becomes more difficult further into "
        "training.",
        f"Humanoid-v2 (Fig 2; Fig 10 for Walker2d-v2, Hopper-v2); {_AGENTS}; {_CHECKPOINTS}",
        BOUNDED_DIFF),
    PaperNumber(
        "grad.decays_with_task", "ordinal", None,
        "Humanoid below Walker2d and Hopper, which are \"slightly better\" (Fig 2 vs 10)",
        "For other tasks such as Walker2d-v2 and Hopper-v2 the plots (seen in Appendix Figure "
        "10) have similar trends, except that gradient estimation is slightly better.",
        f"{_ALL_ENVS}; {_AGENTS}; {_TRUE_GRAD}",
        BOUNDED_DIFF),
    PaperNumber(
        "grad.steps_disagree", "ordinal", None,
        "the steps behave as the gradients do (footnote 1); no value",
        "in Appendix A.4 we show that our results also hold true for these computed steps.",
        "A.4 of our copy shows only gradient plots (Figs 9, 10): no plot of steps survives, so "
        "neither env (v2, mujoco-py), algo nor value is known",
        BOUNDED),
    PaperNumber(
        "grad.trajectories_shrink", "figure", (-57.0, -45.0),
        "about -45 (Humanoid TRPO, ~61 to ~16) to -57 (Humanoid PPO, ~73 to ~16) trajectories "
        "per 2,000 pairs, iteration 0 to 450",
        "Fig 19 (Humanoid-v2 TRPO) and Fig 20 (Humanoid-v2 PPO), the trajectory-count labels "
        "under the 2,000-pair panels, first row minus last row: \"(~61 trajectories)\" and "
        "\"(~73 trajectories)\" to \"(~16 trajectories)\"",
        "Humanoid-v2 (mujoco-py) only; counted in 2,000-pair landscape samples (ours: a 2048-"
        "step batch); rows taken as iterations 0, 150, 300, 450 (the row labels are lost in "
        "our copy; the second row matches Fig 5's iteration 150)",
        (-2048.0, 2048.0)),
    PaperNumber(
        "train.reward_improves", "ordinal", None,
        "agents \"continually improve throughout training\" (Fig 8; " + _NO_TICKS + ")",
        "This is in spite of the fact that our agents continually improve throughout "
        "training, and attain nowhere near the maximum reward possible on each task.",
        f"{_ALL_ENVS}; {_AGENTS}; 24 seeds per algorithm, 10 shown; 500 iterations",
        REAL),
    # Value prediction (Section 2.2)
    PaperNumber(
        "value.fits_gae_target", "ordinal", None,
        "\"low and stable\" held-out MRE on the GAE target (Fig 3 left, 12 left; " + _NO_TICKS
        + ")",
        "Our results (Figure 3a) show that the value network does succeed at both fitting the "
        "given loss function and generalizing to unseen data, showing low and stable mean "
        "relative error (MRE).",
        "Walker2d-v2 (Fig 3), Hopper-v2 and Humanoid-v2 (Fig 12), mujoco-py; held-out pairs "
        "over iterations 0-500",
        NONNEGATIVE),
    PaperNumber(
        "value.misses_true_returns", "quoted", 0.5,
        "~0.5 (\"off by about 50%\"), held-out returns MRE",
        "the learned value function is off by about 50% with respect to the underlying true "
        "value function",
        "Walker2d-v2 (Fig 3 right), and in the same words Hopper-v2 and Humanoid-v2 (Fig 12 "
        "right), mujoco-py; the plotted agents, algorithm not named; returns as the authors' "
        "code cuts them (our authors protocol); over iterations 0-500",
        NONNEGATIVE),
    PaperNumber(
        "value.returns_gap", "ordinal", None,
        "returns MRE (about 50%) well above the GAE-target MRE (\"low\"); no difference given",
        "However, the significant drop in performance as shown in Figure 3 indicates that the "
        "supervised learning problem induced by (4) does not lead to V π θ learning the "
        "underlying true value function.",
        "Walker2d-v2 (Fig 3), Hopper-v2 and Humanoid-v2 (Fig 12), mujoco-py; held-out pairs",
        REAL),
    PaperNumber(
        "value.train_vs_heldout", "ordinal", None,
        "train returns MRE \"quite small\" (Fig 11), held-out about 50% (Fig 12)",
        "We observe that the returns MRE is quite small as well (right column).",
        f"{_ALL_ENVS}; Fig 11 on the batch the value net was fit on, Fig 12 held-out",
        REAL),
    PaperNumber(
        "baseline.true_beats_valuenet", "ordinal", None,
        "true-value baseline gives a \"significantly lower-variance\" gradient (Fig 4)",
        "We observe that using the true value function leads to a significantly "
        "lower-variance estimate of the gradient compared to the value network.",
        _FIG4,
        BOUNDED_DIFF),
    PaperNumber(
        "baseline.valuenet_beats_zero", "ordinal", None,
        "value net gives a \"noticeable\" reduction against the zero baseline, small at 2K "
        "(Fig 4)",
        "In turn, employing the value network yields a noticeable variance reduction compared "
        "to the zero baseline function, even though this difference may appear rather small in "
        "the small-sample regime (2K).",
        _FIG4 + " (its largest N)",
        BOUNDED_DIFF),
    PaperNumber(
        "baseline.valuenet_marginal", "ordinal", None,
        "\"rather marginal\" share of the true value's variance reduction; no ratio given",
        "However, this decrease is rather marginal compared to the variance reduction offered "
        "by the true value function.",
        _FIG4,
        REAL),
    PaperNumber(
        "baseline.needed_for_reward", "quoted", 0.1,
        "~0.1 (\"almost an order of magnitude worse reward\", so a little above 0.1)",
        "Indeed, agents trained without a baseline reach almost an order of magnitude worse "
        "reward.",
        "v2 envs on mujoco-py; which env and algorithm, budget and seeds not stated; no "
        "figure",
        REAL),
    # Optimization landscape (Section 2.3)
    PaperNumber(
        "landscape.noisy_at_low_samples", "ordinal", None,
        "2K landscape \"very noisy\", 100K \"well-behaved\" (Fig 5, 19, 20)",
        "While the landscape is very noisy in the low-sample regime, large numbers of samples "
        "reveal a well-behaved underlying landscape.",
        "Humanoid-v2 (mujoco-py) only: TRPO at iteration 150 (Fig 5), TRPO and PPO at four "
        "checkpoints (Figs 19, 20); 2,000 / 20,000 / 100,000 pairs per point; judged by eye",
        BOUNDED_DIFF),
    PaperNumber(
        "landscape.aligned_early", "ordinal", None,
        "surrogate and true reward \"approximately aligned\" early (Fig 6, 7)",
        "Figure 6 shows that in the early stages of training, the optimization landscapes of "
        "the true reward and surrogate objective are indeed approximately aligned.",
        _LANDSCAPES,
        BOUNDED),
    PaperNumber(
        "landscape.misaligned_late", "ordinal", None,
        "surrogate \"much less predictive\" of true reward later, in the 2K regime (Fig 6, 7)",
        "However, as training progresses, the surrogate objective becomes much less predictive "
        "of the true reward in the relevant sample regime.",
        _LANDSCAPES,
        BOUNDED_DIFF),
    PaperNumber(
        "landscape.surrogate_up_reward_down", "ordinal", None,
        "\"often\"; no fraction given (the threshold is CLAIMS.md's)",
        "In particular, we often observe that directions that increase the surrogate objective "
        "lead to a decrease of the true reward (see Figures 6, 7).",
        _LANDSCAPES + "; steps from 2,000 pairs",
        FRACTION),
    PaperNumber(
        "landscape.ppo_high_sample_misleads", "ordinal", None,
        "PPO's 1e6-pair step \"consistently\" lowers true reward, TRPO's \"matches the true "
        "reward much more closely\"; no fraction given",
        "However, for PPO we consistently observe landscapes where the step direction leads to "
        "lower true reward, even in the high-sample regime.",
        _LANDSCAPES + "; steps from 1e6 pairs",
        BOUNDED),
    # Sample regime (Sections 1, 5)
    PaperNumber(
        "regime.more_samples_lower_lr", "ordinal", None,
        "better estimates \"can require lower learning rates\"; no value",
        "better gradient estimates can require lower learning rates and can induce degenerate "
        "agent behavior",
        "stated in Sec 1 and Sec 5 only (v2 envs on mujoco-py): no experiment in our copy, "
        "no batch sizes or learning-rate grid",
        NONNEGATIVE),
)

NUMBERS: dict[str, PaperNumber] = {r.claim_id: r for r in _RECORDS}
"""The paper's number for every claim of :data:`pgclaims.suite.claims.CLAIMS`, in its order."""


def paper_number(claim_id: str) -> PaperNumber:
    """The paper's number for ``claim_id``; an unknown id raises
    :class:`~pgclaims.suite.claims.UnknownClaimError` naming it and the known ids."""
    found = NUMBERS.get(claim_id)
    if found is None:
        raise UnknownClaimError(
            f"no paper number for claim id {claim_id!r}: the paper's numbers cover the "
            f"{len(NUMBERS)} claims of CLAIMS.md, {', '.join(NUMBERS)}")
    return found


def all_numbers() -> tuple[PaperNumber, ...]:
    """Every record, in the order of CLAIMS.md."""
    return tuple(NUMBERS.values())


def as_dict() -> dict[str, dict[str, Any]]:
    """claim id -> :meth:`PaperNumber.as_dict`, built-in types only (JSON-ready)."""
    return {r.claim_id: r.as_dict() for r in _RECORDS}


def _cell(s: str) -> str:
    """A table cell: a pipe would end it, and GitHub reads a tilde as strikethrough."""
    return s.replace("|", "\\|").replace("~", "\\~")


def markdown() -> str:
    """``docs/paper-numbers.md``: the table claim -> the paper's number -> where -> setting."""
    count = {k: sum(r.kind == k for r in _RECORDS) for k in KINDS}
    lines = [
        "# The paper's numbers",
        "",
        "What \"A Closer Look at Deep Policy Gradients\" itself reports for each claim, to "
        f"read beside our estimate and verdict. Of its {len(_RECORDS)} claims, "
        f"{count['quoted']} have a magnitude quoted from the text, {count['figure']} one read "
        f"off a figure, and {count['ordinal']} none (\"ordinal\": the text states a direction, "
        "or a word such as \"often\").",
        "",
        "A number is in the units of the claim's statistic (CLAIMS.md). The setting says where "
        "the paper's measurement differs from ours: it ran the v2 environments on mujoco-py "
        "with the authors' code, we run v5 on the mujoco bindings. Quoted sources are "
        "verbatim (whitespace aside). Our copy of the paper is text extracted from the PDF, "
        "in which the tick labels of plotted curves are lost, so no value is read off a curve; "
        "the one figure value comes from labels printed in the figure.",
        "",
        "Generated from `pgclaims/suite/paper_numbers.py` by "
        "`python -m pgclaims.suite.paper_numbers --markdown > docs/paper-numbers.md`; "
        "`tests/test_paper_numbers.py` checks that this page is current.",
        "",
        "| claim | paper's number | kind | claim cites | source | setting |",
        "|---|---|---|---|---|---|",
    ]
    for r in _RECORDS:
        source = r.source if r.kind == "figure" else f"\"{r.source}\""
        lines.append(f"| `{r.claim_id}` | {_cell(r.text)} | {r.kind} | "
                     f"{_cell(CLAIMS[r.claim_id].paper)} | {_cell(source)} | "
                     f"{_cell(r.setting)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgclaims.suite.paper_numbers",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true",
                        help="print docs/paper-numbers.md to standard output")
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.print_help()
        return 2
    print(markdown(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Which verdicts a scale's sample sizes can support (CLAIMS.md "Sizes"), and which scales can.

A claim's record lists the sizes its statistic is specified at (:class:`pgclaims.suite.claims.
Size`). A scale short of one measures something else under the claim's name, so the verdicts
the shortfall could produce are INCONCLUSIVE, with the reason, the sizes and the scales that
reach them (results.json ``reason_code`` "size_below_spec" and ``reason_detail``). A shortfall
that can move the statistic either way leaves no verdict at all: those rows are INCONCLUSIVE
without being measured (:func:`blocks_all`), and ``pgclaims plan`` does not price them.
"""

from __future__ import annotations

from typing import Any

from pgclaims.suite.claims import MIN_AGENTS, Claim
from pgclaims.suite.scales import SCALES, Scale

SIZE_CODE = "size_below_spec"


def deciding_scales(claim: Claim) -> list[str]:
    """The registered scales with what ``claim`` needs: capabilities, sizes and 3 agents."""
    return [name for name, s in SCALES.items()
            if not s.lacks(claim.needs) and not s.short_of(claim.sizes)
            and len(s.seeds) >= MIN_AGENTS]


def shortfall(claim: Claim, scale: Scale, outcome: str | None = None
              ) -> tuple[str, dict[str, Any]] | None:
    """(reason, detail) if ``scale`` is short of a size that invalidates ``outcome`` ("REPRODUCED"
    or "REFUTED"; None: a size that invalidates both), else None. A size the scale does not
    measure at all (0, or an empty grid) invalidates both: there is nothing to decide on."""
    short = [(size, have) for size, have in scale.short_of(claim.sizes)
             if not have or (size.blocks_all if outcome is None
                             else outcome in size.invalidates)]
    if not short:
        return None
    deciders = deciding_scales(claim)
    parts = [f"{size.what}: scale {scale.name} has {size.field} "
             + (f"{have:,} at most" if size.rule == "max" and have else "without it")
             + f", the claim needs {size.minimum:,}" for size, have in short]
    which = (f"the {', '.join(deciders)} scale{'s' if len(deciders) > 1 else ''} "
             f"{'reach' if len(deciders) > 1 else 'reaches'} it (`pgclaims plan --scale "
             f"{deciders[-1]}` prices a run)" if deciders else "no built-in scale reaches it")
    verdict = "no verdict" if outcome is None else f"a {outcome} verdict is not evidence"
    reason = f"measured below the specified size, so {verdict}: " + "; ".join(parts) + f"; {which}"
    detail = {"sizes": [{"field": size.field, "needed": size.minimum, "have": have,
                         "rule": size.rule, "what": size.what} for size, have in short],
              "invalidates": sorted({o for size, _ in short for o in size.invalidates}),
              "decided_by": deciders}
    return reason, detail


def blocks_all(claim: Claim, scale: Scale) -> tuple[str, dict[str, Any]] | None:
    """The shortfall that leaves ``claim`` no verdict at ``scale`` (measure nothing), if any."""
    return shortfall(claim, scale, None)

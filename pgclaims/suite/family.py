"""The scale's declared family: the rows whose errors a run's verdicts control together.

A verdict's level under the default error control is alpha / (2 m) per side
(:class:`pgclaims.stats.ErrorControl`), m the number of rows of the family. m must not depend
on what a user selects (``-k``, ``--claim``, ``--env``, ``--algo``, a file, a run stopped
early), or a row's verdict would. So it is counted here from the claim records and the scale
alone: every claim the scale can measure (a claim whose ``needs`` the scale lacks is
INCONCLUSIVE without measuring and cannot err), times its parametrization over the scale's
environments, algorithms, checkpoints or N (:attr:`pgclaims.suite.claims.Claim.over`), times
its own ``comparisons``. One family per protocol: ``--protocol all`` measures two sets of
agents, each its own replication of the paper's claims.

The collected claims tests must never produce more rows of a claim than counted here
(:func:`check_rows`): the plugin warns when they do (e.g. two tests marked with one claim),
and ``tests/test_family.py`` checks that the paper's claims suite matches the count on every
built-in scale, so it cannot drift from the tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from pgclaims.suite.claims import Claim, all_claims
from pgclaims.suite.scales import Scale


def parameter_values(name: str, claim: Claim, scale: Scale) -> tuple[Any, ...]:
    """The values the plugin parametrizes ``name`` (one of :data:`PARAMETERS`) over."""
    if name == "env":
        return scale.envs
    if name == "algo":
        return scale.algos
    if name == "n":
        return scale.n_grid
    return {"all": scale.checkpoints, "late": scale.late, "trained": scale.trained}[
        claim.checkpoints]


def parametrizations(claim: Claim, test: Any, scale: Scale) -> list[dict[str, Any]]:
    """Every parameter combination the plugin and ``test``'s own ``parametrize`` marks give a
    claims test of ``claim`` on ``scale``, one protocol (``len`` of it: the rows it makes)."""
    combos: list[dict[str, Any]] = [{}]
    for name in claim.over:
        combos = [{**c, name: v} for c in combos for v in parameter_values(name, claim, scale)]
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize":
            name, values = mark.args
            combos = [{**c, name: v} for c in combos for v in values]
    return combos


def rows_of(claim: Claim, scale: Scale) -> int:
    """Rows of ``claim`` per protocol on ``scale`` (0 when the scale lacks what it needs)."""
    if scale.lacks(claim.needs):
        return 0
    count = claim.comparisons
    for name in claim.over:
        count *= len(parameter_values(name, claim, scale))
    return count


def family_size(scale: Scale, claims: Iterable[Claim] | None = None) -> int:
    """m: the rows per protocol of every claim (default: the paper's and registered ones) on
    the whole ``scale`` (before ``--env`` / ``--algo`` narrow it); at least 1."""
    chosen = all_claims().values() if claims is None else claims
    return max(1, sum(rows_of(c, scale) for c in chosen))


def check_rows(collected: Iterable[tuple[str, str]], scale: Scale) -> list[str]:
    """Problems with the collected rows, as (claim id, protocol) pairs: a claim with more rows
    than its record declares on ``scale`` (e.g. a test's own parametrize without
    ``comparisons``). Empty when the declaration holds."""
    claims = all_claims()
    problems = []
    for (claim_id, protocol), n in sorted(Counter(collected).items()):
        claim = claims.get(claim_id)
        declared = 0 if claim is None else rows_of(claim, scale)
        if claim is not None and declared and n > declared:
            problems.append(
                f"claim {claim_id} has {n} tests for protocol {protocol} at scale {scale.name} "
                f"but its record declares {declared} (over {', '.join(claim.over) or '-'} x "
                f"comparisons {claim.comparisons}): the family rule's bound does not cover the "
                "extra rows; set `comparisons` in its Claim record")
    return problems


__all__ = ["check_rows", "family_size", "parameter_values", "parametrizations", "rows_of"]

"""Error control over a run: the scale's declared family (:mod:`pgclaims.suite.family`), the
per-row level it fixes (:class:`pgclaims.stats.ErrorControl`) and the Holm / BH views over it."""

from __future__ import annotations

import inspect
import math

import pytest

import claims.test_ablations
import claims.test_gradient
import claims.test_landscape
import claims.test_value
from pgclaims.stats import ErrorControl, benjamini_hochberg, family_adjusted, holm
from pgclaims.suite.claims import Claim, get
from pgclaims.suite.family import check_rows, family_size, parametrizations, rows_of
from pgclaims.suite.results import adjust_p_values
from pgclaims.suite.scales import SCALES, get_scale

MODULES = (claims.test_gradient, claims.test_value, claims.test_landscape, claims.test_ablations)


def collected_rows(scale) -> dict[str, int]:
    """Claim id -> the tests the plugin and the tests' own marks make at ``scale`` (one
    protocol), for the claims the scale can measure."""
    out: dict[str, int] = {}
    for module in MODULES:
        for _, fn in inspect.getmembers(module, inspect.isfunction):
            ids = [m.args[0] for m in getattr(fn, "pytestmark", []) if m.name == "claim"]
            if ids and not scale.lacks(get(ids[0]).needs):
                out[ids[0]] = out.get(ids[0], 0) + len(parametrizations(get(ids[0]), fn, scale))
    return out


@pytest.mark.parametrize("name", list(SCALES))
def test_the_declared_family_is_what_the_claims_tests_make(name: str) -> None:
    scale = get_scale(name)
    rows = collected_rows(scale)
    assert family_size(scale) == sum(rows.values())
    for claim_id, n in rows.items():
        assert rows_of(get(claim_id), scale) == n, claim_id


def test_default_family_and_its_level() -> None:
    scale = get_scale("default")
    # 153 tests, every one in the family: 141 measured rows as the series was written, plus the
    # two ablation claims' 6 rows each, which the default scale now decides from the ablation
    # store (one INCONCLUSIVE lacking-test each before, outside the family)
    assert family_size(scale) == 153
    # --env narrows what runs, never the family: the level stays the whole scale's.
    narrowed = scale.override(envs=("Hopper-v5",))
    assert family_size(narrowed) < family_size(scale)
    control = ErrorControl("family", family_size(scale))
    assert control.alpha_side == pytest.approx(0.05 / (2 * 153))
    assert control.confidence_level == pytest.approx(1 - 0.05 / 153)
    assert control.expected_false() == pytest.approx(0.05)
    assert control.expected_false(10) == pytest.approx(0.05 * 10 / 153)
    row = ErrorControl("row", 153)
    assert row.alpha_side == 0.025 and row.confidence_level == pytest.approx(0.95)
    assert row.expected_false() == pytest.approx(2 * 153 * 0.025)
    assert "family rule" in control.describe() and "99.967%" in control.describe()
    assert control.to_dict()["policy"] == "family"
    with pytest.raises(ValueError, match="error control"):
        ErrorControl("fdr", 10)
    with pytest.raises(ValueError, match="family_size"):
        ErrorControl("family", 0)


def test_family_adjustments_count_unmeasured_rows_as_p_one() -> None:
    p_claim, p_refute = [0.001, 0.7, None], [0.999, 0.3, None]
    h, bh, side = family_adjusted(p_claim, p_refute, family_size=4)
    padded = [0.001, 0.999, 0.7, 0.3] + [1.0] * 4
    assert h[:2] == [holm(padded)[0], holm(padded)[3]]
    assert bh[:2] == [benjamini_hochberg(padded)[0], benjamini_hochberg(padded)[3]]
    assert side == ["claim", "refute", None] and h[2] is None
    # Provisional values are upper bounds: measuring the rest can only lower them.
    more, _, _ = family_adjusted([0.001, 0.7, 0.002, 0.01], [0.999, 0.3, 0.998, 0.99], 4)
    assert more[0] <= h[0]
    with pytest.raises(ValueError, match="family"):
        family_adjusted([0.1] * 3, [0.9] * 3, 2)


def test_adjusted_columns_are_per_protocol_over_the_declared_family() -> None:
    rows = [{"p_value": 0.001, "p_refute": 0.999, "params": {"protocol": "authors"}},
            {"p_value": 0.001, "p_refute": 0.999, "params": {"protocol": "corrected"}},
            {"p_value": None, "params": {"protocol": "authors"}}]
    out = adjust_p_values(rows, family_size=50)
    assert out[0]["p_holm"] == out[1]["p_holm"] == pytest.approx(0.001 * 100)
    assert out[0]["p_side"] == "claim" and out[2]["p_holm"] is None
    old = adjust_p_values([{"p_value": 0.2, "params": {}}])  # an older row: no p_refute
    assert old[0]["p_side"] == "claim" and old[0]["p_holm"] == pytest.approx(0.4)


def test_a_record_must_keep_its_threshold_inside_its_support() -> None:
    with pytest.raises(ValueError, match="strictly inside"):
        Claim("x.bad", "S", "s", "a fraction", ">", 1.0, "Fig 0", support=(0.0, 1.0))
    with pytest.raises(ValueError, match="comparisons"):
        Claim("x.bad", "S", "s", "stat", ">", 0.0, "Fig 0", comparisons=0)
    ok = Claim("x.ok", "S", "s", "an MRE", "<", 0.25, "Fig 0", support=(0, math.inf))
    assert ok.support == (0.0, math.inf)


def test_more_tests_than_declared_are_reported() -> None:
    scale = get_scale("smoke")
    claim_id = "grad.pairwise_low_at_2k"  # over env x algo: 2 rows at smoke
    assert check_rows([(claim_id, "authors")] * 2, scale) == []
    problems = check_rows([(claim_id, "authors")] * 3, scale)
    assert len(problems) == 1 and "comparisons" in problems[0]
    assert check_rows([(claim_id, "authors")] * 2 + [(claim_id, "corrected")] * 2, scale) == []

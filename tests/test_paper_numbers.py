"""The paper's numbers: one record per claim, quotes verbatim, values in the statistic's units,
and the generated docs page current."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pgclaims.suite import paper_numbers as pn
from pgclaims.suite.claims import CLAIMS, UnknownClaimError

REPO = Path(__file__).resolve().parent.parent
PAPER = REPO.parent / "shared" / "paper" / "closer-look-at-deep-policy-gradients.txt"
PAGE = REPO / "docs" / "paper-numbers.md"


def _normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_every_claim_has_exactly_one_record_and_no_record_is_unknown() -> None:
    ids = [r.claim_id for r in pn.all_numbers()]
    assert len(ids) == len(set(ids)), "a claim has two records"
    assert ids == list(CLAIMS), "records and claims differ (or are in another order)"
    assert list(pn.as_dict()) == list(CLAIMS)


@pytest.mark.parametrize("record", pn.all_numbers(), ids=lambda r: r.claim_id)
def test_values_fit_their_kind_and_the_statistic(record: pn.PaperNumber) -> None:
    assert record.kind in pn.KINDS
    assert record.text and record.source and record.setting
    low, high = record.support
    assert low < high
    if record.kind == "ordinal":
        assert record.value is None
        return
    bounds = record.value if isinstance(record.value, tuple) else (record.value,)
    if record.kind == "figure":
        assert isinstance(record.value, tuple) and len(record.value) == 2, \
            "a value read off a figure is a (low, high) range"
    assert list(bounds) == sorted(bounds)
    for x in bounds:
        assert isinstance(x, float) and math.isfinite(x) and low <= x <= high


@pytest.mark.parametrize("record", pn.all_numbers(), ids=lambda r: r.claim_id)
def test_the_support_holds_the_claims_threshold(record: pn.PaperNumber) -> None:
    """The support is the statistic's, so the verdict rule's threshold lies inside it."""
    low, high = record.support
    assert low <= CLAIMS[record.claim_id].threshold <= high


def test_every_setting_names_the_papers_environments() -> None:
    """The paper ran v2 environments on mujoco-py; every row says so (or which v2 env)."""
    missing = [r.claim_id for r in pn.all_numbers() if "v2" not in r.setting]
    assert not missing


def test_a_figure_value_says_so() -> None:
    for r in pn.all_numbers():
        if r.kind == "figure":
            assert re.search(r"\bFigs?\b", r.source), f"{r.claim_id}: name the figure"


@pytest.mark.parametrize("bad", [
    dict(kind="guessed", value=None),
    dict(kind="ordinal", value=0.5),
    dict(kind="quoted", value=None),
    dict(kind="figure", value=0.5),
    dict(kind="figure", value=(0.6, 0.4)),
    dict(kind="figure", value=(0.1, 0.2, 0.3)),
    dict(kind="quoted", value=math.nan),
    dict(kind="quoted", value=1.5),
])
def test_an_inconsistent_record_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="grad.x"):
        pn.PaperNumber("grad.x", text="t", source="s", setting="s", support=(-1.0, 1.0),
                       **bad)


def test_an_unknown_id_names_itself_and_the_known_ids() -> None:
    with pytest.raises(UnknownClaimError) as info:
        pn.paper_number("grad.no_such_claim")
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "grad.no_such_claim" in message
    assert all(claim_id in message for claim_id in CLAIMS)
    assert pn.paper_number("value.misses_true_returns").kind == "quoted"


def test_as_dict_is_json_of_built_in_types() -> None:
    data = pn.as_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    for claim_id, row in data.items():
        assert row["claim_id"] == claim_id
        assert set(row) == {"claim_id", "kind", "value", "text", "source", "setting"}
        assert row["value"] is None or isinstance(row["value"], (float, list))


def _verbatim_parts(record: pn.PaperNumber) -> list[str]:
    """A quoted or ordinal source is one verbatim sentence; a figure source names the figure
    and puts any verbatim fragment (a label printed in the figure) in double quotes, as the
    short text does with the paper's words."""
    quoted = re.findall(r'"([^"]+)"', record.text)
    if record.kind == "figure":
        return quoted + re.findall(r'"([^"]+)"', record.source)
    return quoted + [record.source]


@pytest.mark.parametrize("record", pn.all_numbers(), ids=lambda r: r.claim_id)
def test_sources_occur_verbatim_in_the_paper(record: pn.PaperNumber) -> None:
    if not PAPER.is_file():
        pytest.skip(f"{PAPER} not found (the paper's text lives beside the repository)")
    paper = _normalized(PAPER.read_text(encoding="utf-8"))
    for part in _verbatim_parts(record):
        assert _normalized(part) in paper, f"{record.claim_id}: not in the paper: {part!r}"


def test_the_docs_page_is_generated_from_the_records() -> None:
    assert PAGE.read_text(encoding="utf-8") == pn.markdown(), (
        f"{PAGE} is out of date; run: python -m pgclaims.suite.paper_numbers --markdown "
        f"> {PAGE.relative_to(REPO)}")
    for claim_id in CLAIMS:
        assert f"`{claim_id}`" in PAGE.read_text(encoding="utf-8")


def test_the_command_prints_the_page() -> None:
    out = subprocess.run([sys.executable, "-m", "pgclaims.suite.paper_numbers", "--markdown"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out == pn.markdown()

"""The report's first screen (``pgclaims.report.answer``): one line per claim."""

from __future__ import annotations

import copy
import re
from pathlib import Path

from pgclaims.report import load_results
from pgclaims.report.answer import answer_section
from pgclaims.report.page import build_page

DATA = Path(__file__).parent / "data"


def _lines(html: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-claim-id="([^"]+)">(.*?)</tr>', html))


def test_one_line_per_claim_with_its_counts_per_protocol() -> None:
    doc = load_results(DATA)
    lines = _lines(answer_section(doc))
    claims = list(dict.fromkeys(r["claim_id"] for r in doc["results"]))
    assert list(lines) == claims
    protocols = list(dict.fromkeys(r["params"]["protocol"] for r in doc["results"]))
    for claim, line in lines.items():
        cells = re.findall(r'<td class="answer-verdicts">(.*?)</td>', line)
        assert len(cells) == len(protocols)
        for p, cell in zip(protocols, cells, strict=True):
            rows = [r for r in doc["results"] if r["claim_id"] == claim
                    and r["params"]["protocol"] == p]
            shown = sum(int(n) for n in re.findall(r'title="(\d+) [A-Z]+"', cell))
            assert shown == len(rows)


def test_the_paper_number_and_a_refuted_reading_are_on_the_line() -> None:
    doc = copy.deepcopy(load_results(DATA))
    refuted = next(r for r in doc["results"] if r["verdict"] == "REFUTED")
    refuted["reading"] = "a reading that explains the refutation"
    for r in doc["results"]:
        if r["claim_id"] == refuted["claim_id"]:
            r["paper_number"] = {"kind": "quoted", "text": "about 0.5 (quoted)"}
    line = _lines(answer_section(doc))[refuted["claim_id"]]
    assert "about 0.5 (quoted)" in line
    assert "a reading that explains the refutation" in line
    assert refuted["sentence"] in line


def test_the_answer_comes_before_every_other_section_and_the_profile_is_closed() -> None:
    html = build_page(load_results(DATA))
    sections = re.findall(r'<section id="([^"]+)"', html)
    assert sections[0] == "answer"
    assert "<details open><summary>Scale profile" not in html

"""The published results page is generated, never typed: ``docs/results.md`` and the README's
headline block equal what ``pgclaims report --markdown`` makes from the committed reference
runs (``docs/reference/<protocol>/results.json``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgclaims.report.markdown import END, START, results_page, update_readme
from pgclaims.report.reference import REFERENCE_DIR, find_references, load_references

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = ROOT / REFERENCE_DIR

pytestmark = pytest.mark.skipif(
    not REFERENCES.is_dir() or not find_references(REFERENCES),
    reason=f"no reference run committed under {REFERENCE_DIR} yet")


def test_results_page_is_generated_from_the_reference_runs() -> None:
    page = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert page == results_page(load_references(REFERENCES)), (
        "docs/results.md differs from the reference runs: run `pgclaims report --markdown "
        "--readme README.md`")


def test_readme_headline_is_the_generated_block() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert START in readme and END in readme
    assert readme == update_readme(readme, load_references(REFERENCES))

"""The rendered report as a person sees it: Debian's headless Chromium, no network at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Route, sync_playwright

from pgclaims.report import load_results, render

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DATA = Path(__file__).parent / "data"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: this test drives "
                       "Debian's chromium (apt-get install chromium), never a downloaded browser"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("run")
    shutil.copy(DATA / "results.json", run_dir / "results.json")
    results = load_results(run_dir)
    return render(results, run_dir / "index.html"), results


def test_report_in_chromium_offline(report: tuple[Path, dict], tmp_path: Path) -> None:
    index, results = report
    claim_ids = list(dict.fromkeys(r["claim_id"] for r in results["results"]))
    blocked: list[str] = []
    console_errors: list[str] = []

    def gate(route: Route) -> None:
        # Every resource must come from the file itself; anything else is counted and refused.
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", gate)
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error"
                    else None)
            page.goto(index.as_uri(), wait_until="load")

            table = page.locator("#verdict-table")
            assert table.is_visible()
            rows = table.locator("tr[data-claim-id]")
            assert rows.count() == len(claim_ids)
            assert [rows.nth(i).get_attribute("data-claim-id") for i in range(rows.count())] == \
                claim_ids
            for i in range(rows.count()):
                cells = rows.nth(i).locator("td[data-verdict]")
                assert cells.count() >= 1
                assert cells.count() == rows.nth(i).locator("td").count()
                assert all(v in {"REPRODUCED", "REFUTED", "INCONCLUSIVE", "ERROR", "MIXED", "NONE"}
                           for v in cells.evaluate_all("cs => cs.map(c => c.dataset.verdict)"))

            boxes = page.eval_on_selector_all(
                "svg", "els => els.map(e => { const r = e.getBoundingClientRect();"
                " return [r.width, r.height]; })")
            assert boxes, "no inline svg in the report"
            assert all(w > 0 and h > 0 for w, h in boxes), boxes

            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            page.screenshot(path=str(tmp_path / "report-top.png"))
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()

    assert blocked == [], f"the report tried to fetch: {json.dumps(blocked)[:300]}"
    assert console_errors == []

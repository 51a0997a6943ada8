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


@pytest.fixture(scope="module")
def three_env_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The committed results spread over the shape of a default run: every row repeated for
    the three environments and both algorithms its parameters name, plus results over one
    environment with no algorithm (a claim comparing algorithms) for each environment."""
    doc = json.loads((DATA / "results.json").read_text())
    envs, algos = ["Hopper-v5", "Walker2d-v5", "Humanoid-v5"], ["ppo", "trpo"]
    first = next(r for r in doc["results"] if {"env", "algo"} <= r["params"].keys())
    per_env = json.loads(json.dumps(first))
    del per_env["params"]["algo"]
    rows = []
    for row in [*doc["results"], per_env]:
        p = row["params"]
        for env in envs if "env" in p else [None]:
            for algo in algos if "algo" in p else [None]:
                new = json.loads(json.dumps(row))
                new["params"].update({k: v for k, v in (("env", env), ("algo", algo)) if v})
                new["nodeid"] = f"{row['nodeid']}[{env}-{algo}]"
                rows.append(new)
    doc["results"] = rows
    run_dir = tmp_path_factory.mktemp("run3")
    (run_dir / "results.json").write_text(json.dumps(doc))
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


# Every table against the box it sits in: a table may not be wider than its container, and a
# scrolling wrapper (div.scroll) may not have anything to scroll sideways.
TABLE_FIT = """() => [...document.querySelectorAll('table')].map(t => {
  const box = t.parentElement;
  return {id: t.id || t.className, width: t.getBoundingClientRect().width,
          room: box.clientWidth, overflow: box.scrollWidth - box.clientWidth};
})"""


@pytest.mark.parametrize("which", ["report", "three_env_report"])
def test_report_fits_a_laptop_screen(which: str, request: pytest.FixtureRequest,
                                     tmp_path: Path) -> None:
    """At 1400 x 900 nothing overflows sideways, and the protocol comparison is on the page."""
    index, results = request.getfixturevalue(which)
    comparisons = {(r["claim_id"], json.dumps({k: v for k, v in r["params"].items()
                                               if k != "protocol"}, sort_keys=True))
                   for r in results["results"]}
    protocols = list(dict.fromkeys(r["params"]["protocol"] for r in results["results"]))
    assert len(protocols) > 1, "the fixture should compare protocols"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.route("**/*", lambda route: route.continue_()
                       if route.request.url.startswith("file://") else route.abort())
            page.goto(index.as_uri(), wait_until="load")

            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            inner_width = page.evaluate("window.innerWidth")
            assert scroll_width <= inner_width, (scroll_width, inner_width)
            tables = page.evaluate(TABLE_FIT)
            assert len(tables) >= 3
            too_wide = [t for t in tables if t["width"] > t["room"] + 0.5 or t["overflow"] > 0]
            assert too_wide == [], too_wide

            table = page.locator("#protocol-table")
            table.scroll_into_view_if_needed()
            assert table.is_visible()
            assert table.locator("tbody tr[data-claim-id]").count() == len(comparisons)
            heads = table.locator("thead th").all_inner_texts()
            assert heads == ["claim", "parameters", *protocols, "differs"]
            assert table.locator('td[data-differs="true"]').count() >= 1
            assert page.locator("nav a[href='#protocols']").is_visible()

            page.screenshot(path=str(tmp_path / "report-1400.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.parametrize("width", [1400, 800])
def test_the_first_screen_is_the_answer(width: int, three_env_report: tuple[Path, dict]) -> None:
    """At 1400 and 800 px the answer table starts on the first screen, holds one line per
    claim with its sentence, and nothing overflows sideways; the scale profile is collapsed."""
    index, results = three_env_report
    claims = list(dict.fromkeys(r["claim_id"] for r in results["results"]))
    sentences = {r["claim_id"]: r["sentence"] for r in results["results"]}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(index.as_uri(), wait_until="load")
            table = page.locator("#answer-table")
            top = table.bounding_box()["y"]
            assert top < 900 * 0.75, f"the answer starts at {top} px, below the first screen"
            lines = table.locator("tbody tr[data-claim-id]")
            assert lines.count() == len(claims)
            for i, claim in enumerate(claims):
                text = lines.nth(i).inner_text()
                assert sentences[claim] in " ".join(text.split()) and claim in text
            assert page.locator("header details").get_attribute("open") is None
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            labels = page.evaluate("""() => [...document.querySelectorAll('.nw')]
                .map(s => [s.textContent, s.getClientRects().length])""")
            assert any("=" in text for text, _ in labels)  # e.g. checkpoint=300 is among them
            broken = [text for text, boxes in labels if boxes > 1]
            assert broken == [], broken  # no label part wraps inside itself
            cells = page.evaluate("""() => [...document.querySelectorAll(
                '#multiple-testing-table td:not(.params)')].map(td => {
                    const r = document.createRange(); r.selectNodeContents(td);
                    return [td.textContent, r.getClientRects().length]; })""")
            assert cells, "no multiple-testing table to check"
            split = [text for text, boxes in cells if boxes > 1]
            assert split == [], split  # a p-value such as 1.40e-04 stays on one line
        finally:
            browser.close()

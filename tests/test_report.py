"""The report package: validation of results.json, the rendered page, history and the CLI."""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import textwrap
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pgclaims.report import (
    ReportError,
    append_history,
    load_results,
    main_report,
    read_history,
    render,
    update_latest,
)
from pgclaims.report.history import HISTORY_KEYS, previous_verdicts, result_key
from pgclaims.report.page import build_page, num
from pgclaims.stats import benjamini_hochberg, holm

DATA = Path(__file__).parent / "data"
RUN_ID = "20261123-201500-smoke"
FLIPPED = "grad.needs_many_samples"  # REFUTED in the fixture, REPRODUCED in the earlier run


@pytest.fixture(scope="module")
def fixture_results() -> dict:
    return load_results(DATA)


def small(results: dict, n_rows: int = 2) -> dict:
    """A copy with few rows and no figures: cheap to render."""
    out = copy.deepcopy(results)
    out["results"] = out["results"][:n_rows]
    out["figures"] = {}
    return out


def earlier_run(results: dict, run_id: str, created: str, scale: str = "smoke") -> dict:
    out = copy.deepcopy(results)
    out.update(run_id=run_id, created=created)
    out["scale"]["name"] = scale
    return out


@pytest.fixture(scope="module")
def reports_dir(tmp_path_factory: pytest.TempPathFactory, fixture_results: dict) -> Path:
    """reports/<run>/results.json plus a history with one earlier run of the same scale."""
    reports = tmp_path_factory.mktemp("reports")
    run_dir = reports / RUN_ID
    run_dir.mkdir()
    shutil.copy(DATA / "results.json", run_dir / "results.json")
    before = earlier_run(fixture_results, "20261122-100000-smoke", "2026-11-22T10:00:00+00:00")
    for row in before["results"]:
        if row["claim_id"] == FLIPPED:
            row["verdict"] = "REPRODUCED"
    other_scale = earlier_run(fixture_results, "20261123-000000-paper", "2026-11-23T00:00:00+00:00",
                              scale="paper")
    for row in other_scale["results"]:
        row["verdict"] = "ERROR"
    for doc in (before, other_scale, fixture_results):  # this run's own lines are there too
        append_history(reports / "history.jsonl", doc)
    return reports


@pytest.fixture(scope="module")
def page(reports_dir: Path) -> str:
    assert main_report([str(reports_dir / RUN_ID)]) == 0
    return (reports_dir / RUN_ID / "index.html").read_text(encoding="utf-8")


class _Cells(HTMLParser):
    """Collects the verdict table's claim rows and their cells' data-verdict values."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.ids: list[str] = []
        self._in_table = False
        self._row: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "id" in a:
            self.ids.append(str(a["id"]))
        if tag == "table":
            self._in_table = a.get("id") == "verdict-table"
        elif self._in_table and tag == "tr" and "data-claim-id" in a:
            self._row = str(a["data-claim-id"])
            self.rows[self._row] = []
        elif self._in_table and tag == "td" and "data-verdict" in a and self._row:
            self.rows[self._row].append(str(a["data-verdict"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False


# ---------------------------------------------------------------- the page


def test_every_claim_id_has_a_row_with_verdict_cells(page: str, fixture_results: dict) -> None:
    parser = _Cells()
    parser.feed(page)
    claim_ids = list(dict.fromkeys(r["claim_id"] for r in fixture_results["results"]))
    assert list(parser.rows) == claim_ids
    for claim_id, cells in parser.rows.items():
        assert cells, claim_id
        assert f'id="claim-{claim_id}"' in page
    assert len(parser.ids) == len(set(parser.ids)), "duplicate element ids (inline SVGs collide)"


def test_header_counts_every_verdict(page: str, fixture_results: dict) -> None:
    for verdict in ("REPRODUCED", "REFUTED", "INCONCLUSIVE", "ERROR"):
        n = sum(r["verdict"] == verdict for r in fixture_results["results"])
        assert re.search(rf'id="count-{verdict}"><b>{n}</b>', page), verdict
    assert RUN_ID in page and "smoke" in page and "5 min 12 s" in page


def test_states_the_environment_substitution(page: str) -> None:
    assert ("the paper used the mujoco-py v2 environments; this run uses gymnasium v5 "
            "environments on the mujoco bindings") in page
    assert "Hopper-v2 → Hopper-v5" in page


def test_self_contained_without_any_external_reference(page: str) -> None:
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page and "@import" not in page
    assert "data:image" not in page  # all plots are vector, nothing embedded as a picture
    assert page.count("<svg") >= 10


def test_all_figure_keys_are_drawn(page: str) -> None:
    assert "could not be drawn" not in page
    assert "Not measured at this scale" not in page
    for anchor in ("fig-8", "fig-8-ablations", "fig-1-9", "fig-2-10", "fig-3-11-12", "fig-4",
                   "fig-5", "fig-6-7"):
        section = page.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]
        assert "<svg" in section, anchor
    assert "step_norm_ratio" in page


def test_claim_details_show_rule_reason_and_missing_data(page: str) -> None:
    assert "the claim holds when the statistic is below 0.5 (&lt; 0.5)" in page
    assert "needs Humanoid-v5, not in scale smoke" in page  # INCONCLUSIVE for missing data
    assert "RuntimeError: value network checkpoint missing" in page  # ERROR row
    assert "[0.12, 0.33]" in page and "Fig 1, 9" in page


def test_multiple_testing_table_adjusts_the_given_p_values(page: str,
                                                           fixture_results: dict) -> None:
    table = page.split('id="multiple-testing-table"', 1)[1].split("</table>", 1)[0]
    p = [r["p_value"] for r in fixture_results["results"] if r["p_value"] is not None]
    assert table.count("<tr>") == len(p) + 1
    assert f"m = {len(p)}" in page
    first = fixture_results["results"][0]  # p = 0.001: its Holm value, as the suite wrote it
    assert f'<td class="sig">{num(first["p_holm"])}</td>' in table


def test_changed_since_previous_run_shows_the_flip_only(page: str,
                                                       fixture_results: dict) -> None:
    changes = page.split('<section id="changes">', 1)[1].split("</section>", 1)[0]
    assert 'id="changes-table"' in changes
    # The earlier run had every FLIPPED row REPRODUCED (one per protocol): those not
    # REPRODUCED now are the changes, and nothing else is.
    flips = [r for r in fixture_results["results"]
             if r["claim_id"] == FLIPPED and r["verdict"] != "REPRODUCED"]
    assert flips and changes.count('class="changed"') == len(flips)
    assert f'data-claim-id="{FLIPPED}"' in changes and "20261122-100000-smoke" in changes
    assert "REPRODUCED" in changes and "REFUTED" in changes
    assert "was REPRODUCED" in page  # also beside the result in its claim's table


def test_no_history_and_missing_figures_are_said(fixture_results: dict) -> None:
    html = build_page(small(fixture_results))
    assert "No earlier run of scale <code>smoke</code> in the history" in html
    assert html.count("Not measured at this scale.") == 8  # every paper figure


def test_same_input_same_bytes(fixture_results: dict) -> None:
    assert build_page(small(fixture_results)) == build_page(small(fixture_results))


def test_censored_and_nan_values_render(fixture_results: dict) -> None:
    results = small(fixture_results, 1)
    results["results"][0].update(statistic=float("inf"), interval=[0.7, float("inf")])
    results["results"].append({**results["results"][0], "params": {"env": "x"},
                               "statistic": float("nan"), "interval": None})
    html = build_page(results)
    assert "[0.7, ∞]" in html and ">nan<" in html


def test_render_to_directory_and_atomically(tmp_path: Path, fixture_results: dict,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out = render(small(fixture_results), tmp_path)
    assert out == tmp_path / "index.html" and out.stat().st_mode & 0o644 == 0o644
    before = out.read_bytes()

    def broken(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError("drawing failed")

    monkeypatch.setattr("pgclaims.report.page.build_page", broken)
    with pytest.raises(RuntimeError):
        render(small(fixture_results), out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]


# ---------------------------------------------------------------- protocols


def protocol_of(row: dict) -> str | None:
    return row["params"].get("protocol")


def without_protocol(params: dict) -> str:
    return json.dumps({k: v for k, v in params.items() if k != "protocol"}, sort_keys=True)


class _Table(HTMLParser):
    """Rows of one table (by id): each row's attributes and its cells' (attributes, text)."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.rows: list[tuple[dict, list[tuple[dict, str]]]] = []
        self._depth = 0  # > 0 inside the table
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and (self._depth or a.get("id") == self.table_id):
            self._depth += 1
        elif self._depth and tag == "tr" and "data-claim-id" in a:
            self.rows.append((a, []))
        elif self._depth and tag == "td" and self.rows:
            self.rows[-1][1].append((a, ""))
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._depth:
            self._depth -= 1
        elif tag == "td" and self._cell is not None:
            attrs, _ = self.rows[-1][1][-1]
            self.rows[-1][1][-1] = (attrs, "".join(self._cell))
            self._cell = None


def _protocol_rows(page: str) -> list[tuple[dict, list[tuple[dict, str]]]]:
    parser = _Table("protocol-table")
    parser.feed(page)
    return parser.rows


def test_fixture_compares_two_protocols_and_one_verdict_differs(fixture_results: dict) -> None:
    """The data file itself: every row names its protocol, both are described, one differs."""
    rows = fixture_results["results"]
    protocols = fixture_results["provenance"]["protocols"]
    assert {protocol_of(r) for r in rows} == {"authors", "corrected"} == set(protocols)
    verdicts: dict[tuple, dict] = {}
    for r in rows:
        verdicts.setdefault((r["claim_id"], without_protocol(r["params"])), {})[
            protocol_of(r)] = r
    differing = [v for v in verdicts.values()
                 if len(v) == 2 and v["authors"]["verdict"] != v["corrected"]["verdict"]]
    assert differing
    assert any(r["verdict"] == "REFUTED" and r.get("reading") for v in differing
               for r in v.values())


def test_protocol_table_has_one_row_per_claim_and_params(page: str,
                                                         fixture_results: dict) -> None:
    rows = fixture_results["results"]
    names = list(dict.fromkeys(protocol_of(r) for r in rows))
    expected: dict[tuple[str, str], dict] = {}
    for r in rows:
        expected.setdefault((r["claim_id"], without_protocol(r["params"])), {})[
            protocol_of(r)] = r["verdict"]
    table = _protocol_rows(page)
    assert len(table) == len(expected)
    assert [attrs["data-claim-id"] for attrs, _ in table] == [c for c, _ in expected]
    for (_, cells), verdicts in zip(table, expected.values(), strict=True):
        by_protocol = {c["data-protocol"]: c["data-verdict"] for c, _ in cells
                       if "data-protocol" in c}
        assert list(by_protocol) == names
        assert by_protocol == {n: verdicts.get(n, "NONE") for n in names}


def test_protocol_table_flags_and_explains_differing_verdicts(page: str,
                                                              fixture_results: dict) -> None:
    described = fixture_results["provenance"]["protocols"]
    authors, corrected = described["authors"], described["corrected"]
    fields = [k for k in authors if k not in ("name", "summary") and authors[k] != corrected[k]]
    assert fields == ["time_limit", "batch_end", "returns_target", "mre_states", "true_cosine"]
    flagged = 0
    for _, cells in _protocol_rows(page):
        verdicts = {c["data-verdict"] for c, _ in cells if "data-protocol" in c} - {"NONE"}
        diff_attrs, diff_text = cells[-1]
        if len(verdicts) > 1:
            flagged += 1
            assert diff_attrs["data-differs"] == "true"
            assert "differs" in diff_text
            assert re.findall(r"\w+", diff_text.split("fields that differ:")[1]) == fields
        else:
            assert diff_attrs["data-differs"] != "true"
            assert "differs" not in diff_text
    refuted = [r for r in fixture_results["results"] if r.get("reading")]
    assert flagged >= 1 and refuted
    section = page.split('<section id="protocols">', 1)[1].split("</section>", 1)[0]
    for r in refuted:
        assert escape(r["reading"]) in section  # the reading, shown in the protocol's cell
    for name, protocol in described.items():
        assert f'<li id="protocol-{name}"><b>{name}</b>: {escape(protocol["summary"])}' in section
    assert "<a href='#protocols'>protocols</a>" in page  # in the navigation


def test_reading_is_shown_under_the_reason(page: str, fixture_results: dict) -> None:
    for r in fixture_results["results"]:
        article = page.split(f'id="claim-{r["claim_id"]}"', 1)[1].split("</article>", 1)[0]
        if r.get("reading"):
            assert f'<p class="reading"><b>Reading:</b> {escape(r["reading"])}</p>' in article
    assert page.count('<p class="reading">') == sum(
        bool(r.get("reading")) for r in fixture_results["results"])


def test_single_protocol_is_one_sentence_without_a_table(fixture_results: dict) -> None:
    doc = small(fixture_results, len(fixture_results["results"]))
    doc["results"] = [r for r in doc["results"] if protocol_of(r) == "corrected"]
    html = build_page(doc)
    summary = fixture_results["provenance"]["protocols"]["corrected"]["summary"]
    assert ("measured under the <b>corrected</b> protocol: " + escape(summary)) in html
    assert 'id="protocol-table"' not in html and "href='#protocols'" not in html


def test_rows_without_protocol_get_no_protocol_view(fixture_results: dict) -> None:
    """An older results.json: no params.protocol, no provenance.protocols."""
    doc = small(fixture_results, len(fixture_results["results"]))
    doc["results"] = [dict(r, params={k: v for k, v in r["params"].items() if k != "protocol"})
                      for r in doc["results"] if protocol_of(r) == "authors"]
    del doc["provenance"]["protocols"]
    html = build_page(doc)
    assert 'id="protocol-sentence"' not in html and 'id="protocol-table"' not in html
    assert 'id="protocols"' not in html and 'id="protocol-fields"' not in html


# ---------------------------------------------------------------- bad input


def _write(run_dir: Path, text: str | bytes) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    (run_dir / "results.json").write_bytes(data)


def _mutated(change) -> str:  # noqa: ANN001 - a callable editing the parsed fixture
    doc = json.loads((DATA / "results.json").read_text())
    change(doc)
    return json.dumps(doc)


FULL = (DATA / "results.json").read_text()
BAD = {
    "truncated": (FULL[: len(FULL) // 2], "not valid JSON"),
    "corrupt": ("{'schema': 1,}", "not valid JSON"),
    "empty": ("", "empty file"),
    "binary": (b"\xff\xfe\x00garbage", "not UTF-8"),
    "foreign list": ("[1, 2, 3]", "field '<top level>': expected a JSON object"),
    "foreign object": ('{"name": "left-pad", "version": "1.3.0"}', "field 'schema'"),
    "newer schema": (_mutated(lambda d: d.update(schema=2)), "field 'schema': expected 1"),
    "bad verdict": (_mutated(lambda d: d["results"][1].update(verdict="PASS")),
                    "field 'results[1].verdict': expected one of 'REPRODUCED'"),
    "missing key": (_mutated(lambda d: d["results"][0].pop("threshold")),
                    "field 'results[0].threshold': expected a number or null, but it is missing"),
    "string statistic": (_mutated(lambda d: d["results"][0].update(statistic="0.2")),
                         "field 'results[0].statistic': expected a number or null, got '0.2'"),
    "reversed interval": (_mutated(lambda d: d["results"][0].update(interval=[0.4, 0.1])),
                          "field 'results[0].interval': expected [lo, hi] with lo <= hi"),
    "no substitution": (_mutated(lambda d: d["provenance"].pop("env_substitution")),
                        "field 'provenance.env_substitution'"),
    "ragged curve": (_mutated(lambda d: d["figures"]["grad_true"][0]["lo"].pop()),
                     "field 'figures.grad_true[0].lo': expected 4 values"),
    "bad landscape": (_mutated(lambda d: d["figures"]["landscape"][0]["z"].pop()),
                      "field 'figures.landscape[0].z': expected a 3 x 3 list"),
    "numeric protocol": (_mutated(lambda d: d["results"][2]["params"].update(protocol=1)),
                         "field 'results[2].params.protocol': expected a protocol name"),
    "protocol without summary": (
        _mutated(lambda d: d["provenance"]["protocols"]["corrected"].pop("summary")),
        "field 'provenance.protocols.corrected.summary': expected a string, but it is missing"),
    "reading not text": (_mutated(lambda d: d["results"][2].update(reading=["x"])),
                         "field 'results[2].reading': expected a string or null"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_results_raise_one_line_naming_file_and_field(tmp_path: Path, case: str) -> None:
    text, expected = BAD[case]
    _write(tmp_path, text)
    with pytest.raises(ReportError) as info:
        load_results(tmp_path)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "results.json") + ": ")
    assert expected in message and "\n" not in message


def test_missing_results_file(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"results\.json: not found; run the claims suite"):
        load_results(tmp_path)


@pytest.mark.parametrize("case", ["truncated", "foreign object", "bad verdict"])
def test_cli_bad_input_exits_2_and_keeps_index(tmp_path: Path, case: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    _write(run_dir, BAD[case][0])
    (run_dir / "index.html").write_text("previous report")
    before = sorted(p.name for p in run_dir.iterdir())
    assert main_report([str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pgclaims report: error: ")
    assert str(run_dir / "results.json") in err
    assert (run_dir / "index.html").read_text() == "previous report"
    assert sorted(p.name for p in run_dir.iterdir()) == before


@pytest.mark.parametrize("argv", [[], ["a", "b"], ["--bogus", "x"]])
def test_cli_usage_errors_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main_report(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pgclaims report: error: ")


def test_cli_out_folder_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    _write(run_dir, FULL)
    assert main_report([str(run_dir), "--out", str(tmp_path / "nope" / "x.html")]) == 2
    assert "output folder does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------- history


def test_history_round_trip_uses_builtin_types(tmp_path: Path, fixture_results: dict) -> None:
    file = tmp_path / "reports" / "history.jsonl"
    append_history(file, fixture_results)
    append_history(file, earlier_run(fixture_results, "r2", "2026-11-24T00:00:00+00:00"))
    rows = read_history(file)
    n = len(fixture_results["results"])
    assert len(rows) == 2 * n
    assert [r["run_id"] for r in rows] == [RUN_ID] * n + ["r2"] * n
    assert set(rows[0]) == set(HISTORY_KEYS) and rows[0]["scale"] == "smoke"
    assert rows[0]["params"] == fixture_results["results"][0]["params"]
    assert rows[0]["interval"] == fixture_results["results"][0]["interval"]


def test_history_skips_and_repairs_a_torn_last_line(tmp_path: Path, fixture_results: dict) -> None:
    file = tmp_path / "history.jsonl"
    append_history(file, fixture_results)
    n = len(fixture_results["results"])
    with file.open("a") as f:
        f.write('{"run_id": "killed-mid-wri')
    assert len(read_history(file)) == n
    append_history(file, earlier_run(fixture_results, "r2", "2026-11-24T00:00:00+00:00"))
    assert len(read_history(file)) == 2 * n
    assert "killed-mid-wri" not in file.read_text()


def test_history_damage_in_the_middle_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "history.jsonl"
    file.write_text('not json\n{"run_id": "x"}\n')
    with pytest.raises(ReportError, match=r"history\.jsonl: line 1: not valid JSON"):
        read_history(file)
    assert read_history(tmp_path / "absent.jsonl") == []


def test_history_non_finite_numbers_become_null(tmp_path: Path, fixture_results: dict) -> None:
    results = small(fixture_results, 1)
    results["results"][0].update(statistic=float("inf"), interval=[1.0, float("inf")])
    append_history(tmp_path / "h.jsonl", results)
    row = json.loads((tmp_path / "h.jsonl").read_text())  # strict JSON: no Infinity token
    assert row["statistic"] is None and row["interval"] == [1.0, None]


def _append_many(args: tuple[str, dict, int]) -> None:
    file, results, k = args
    for i in range(3):
        append_history(Path(file), earlier_run(results, f"p{k}-{i}", "2026-11-24T00:00:00+00:00"))


def test_history_concurrent_appends_do_not_interleave(tmp_path: Path,
                                                      fixture_results: dict) -> None:
    file = tmp_path / "history.jsonl"
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        pool.map(_append_many, [(str(file), fixture_results, k) for k in range(3)])
    rows = read_history(file)
    assert len(rows) == 9 * len(fixture_results["results"])
    assert file.read_text().count("\n") == len(rows)


def test_previous_verdict_is_the_latest_earlier_run_of_the_same_scale(
        fixture_results: dict) -> None:
    key_row = fixture_results["results"][0]
    history = []
    for run_id, created, scale, verdict in [
            ("old", "2026-11-20T00:00:00+00:00", "smoke", "REFUTED"),
            ("newer", "2026-11-21T00:00:00+00:00", "smoke", "ERROR"),
            ("other-scale", "2026-11-22T00:00:00+00:00", "paper", "INCONCLUSIVE"),
            ("future", "2026-11-30T00:00:00+00:00", "smoke", "INCONCLUSIVE"),
            (RUN_ID, fixture_results["created"], "smoke", "REPRODUCED")]:
        history.append({"run_id": run_id, "created": created, "scale": scale,
                        "claim_id": key_row["claim_id"], "params": dict(key_row["params"]),
                        "verdict": verdict, "statistic": None, "interval": None})
    previous = previous_verdicts(history, fixture_results)
    assert [row["run_id"] for row in previous.values()] == ["newer"]


def _history_of(results: dict, run_id: str, created: str) -> list[dict]:
    return [{"run_id": run_id, "created": created, "scale": "smoke", "claim_id": r["claim_id"],
             "params": dict(r["params"]), "verdict": r["verdict"], "statistic": None,
             "interval": None} for r in results["results"]]


def test_an_authors_row_never_counts_as_a_change_of_a_corrected_row(
        fixture_results: dict) -> None:
    """Same claim and parameters, other protocol: not the same result, so never a change."""
    doc = small(fixture_results, len(fixture_results["results"]))
    by_key: dict[tuple, dict] = {}
    for r in doc["results"]:
        by_key.setdefault((r["claim_id"], without_protocol(r["params"])), {})[protocol_of(r)] = r
    pair = next(v for v in by_key.values()
                if len(v) == 2 and v["authors"]["verdict"] != v["corrected"]["verdict"])
    authors, corrected = pair["authors"], pair["corrected"]
    # The earlier run measured only the corrected protocol, with the verdict it has now.
    earlier = {**doc, "results": [corrected]}
    history = _history_of(earlier, "earlier", "2026-11-22T00:00:00+00:00")
    previous = previous_verdicts(history, doc)
    assert result_key(authors["claim_id"], authors["params"]) not in previous
    assert previous[result_key(corrected["claim_id"], corrected["params"])]["verdict"] == \
        corrected["verdict"]
    html = build_page(doc, history)
    assert "No verdict changed since the previous run" in html
    assert '<span class="changed">was' not in html
    # Had the protocol been left out of the identity, the authors row would be a change.
    assert result_key(authors["claim_id"], authors["params"]) != \
        result_key(corrected["claim_id"], corrected["params"])


def test_rows_without_a_protocol_match_earlier_rows_without_one(fixture_results: dict) -> None:
    doc = small(fixture_results, 1)
    row = doc["results"][0]
    row["params"] = {k: v for k, v in row["params"].items() if k != "protocol"}
    old = copy.deepcopy(doc)
    old["results"][0]["verdict"] = "ERROR"
    history = _history_of(old, "older", "2026-11-22T00:00:00+00:00")
    tagged = copy.deepcopy(history[0])
    tagged.update(run_id="tagged", params={**row["params"], "protocol": "authors"},
                  verdict="INCONCLUSIVE")
    previous = previous_verdicts([*history, tagged], doc)
    assert previous[result_key(row["claim_id"], row["params"])]["run_id"] == "older"
    assert result_key(row["claim_id"], {**row["params"], "protocol": None}) == \
        result_key(row["claim_id"], row["params"])
    assert "was ERROR" in build_page(doc, history)


# ---------------------------------------------------------------- latest link


def test_update_latest_is_a_relative_symlink_replaced_in_place(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / "run-a").mkdir(parents=True)
    (reports / "run-b").mkdir()
    update_latest(reports, reports / "run-a")
    assert os.readlink(reports / "latest") == "run-a"
    update_latest(reports, reports / "run-b")
    assert os.readlink(reports / "latest") == "run-b"
    assert (reports / "latest").resolve() == (reports / "run-b").resolve()
    assert sorted(p.name for p in reports.iterdir()) == ["latest", "run-a", "run-b"]


# ---------------------------------------------------------------- multiple testing


def test_multiple_testing_columns_are_holm_and_bh_of_the_family(page: str,
                                                                fixture_results: dict) -> None:
    family = [r for r in fixture_results["results"] if r["p_value"] is not None]
    p = [r["p_value"] for r in family]
    table = page.split('id="multiple-testing-table"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><th scope=\"row\">.*?</tr>", table)
    assert len(rows) == len(family)
    for row, h, bh in zip(rows, holm(p), benjamini_hochberg(p), strict=True):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        assert cells[2:4] == [num(h), num(bh)]


def test_results_without_adjustments_say_so_instead_of_computing_them(
        fixture_results: dict) -> None:
    """The report shows the suite's Holm/BH values; it never computes them itself."""
    doc = small(fixture_results, n_rows=len(fixture_results["results"]))
    for row in doc["results"]:
        row.pop("p_holm", None)
        row.pop("p_bh", None)
    html = build_page(doc)
    assert "carries no Holm / Benjamini-Hochberg adjustments" in html
    assert 'id="multiple-testing-table"' not in html


def test_render_loads_no_native_module_beyond_the_preloaded(tmp_path: Path) -> None:
    """An inner claims session (pytester restores ``sys.modules`` after it) and a report render
    load no extension module that tests/conftest.py did not import already: one loaded first
    inside an inner run would be initialised a second time by the next test on that worker."""
    code = textwrap.dedent(f"""
        import importlib.machinery, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import conftest  # noqa: F401  (imports conftest.PRELOADED)

        def native():
            suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
            return {{name for name, mod in list(sys.modules.items())
                     if str(getattr(mod, "__file__", None) or "").endswith(suffixes)}}

        before = native()
        import pgclaims.measure, pgclaims.stats, pgclaims.suite.plugin, pgclaims.report.plugin
        from pgclaims.report import load_results, render
        render(load_results(Path({str(DATA)!r})), Path({str(tmp_path)!r}))
        print(sorted(native() - before))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert (tmp_path / "index.html").is_file()
    assert out.stdout.strip() == "[]", out.stdout


def test_the_report_says_which_error_control_decided(fixture_results: dict) -> None:
    from pgclaims.stats import ErrorControl
    from pgclaims.suite.results import error_control_record

    old = build_page(small(fixture_results, n_rows=4))
    assert "Error control: not recorded" in old and "0.025 per side" in old
    doc = small(fixture_results, n_rows=4)
    control = ErrorControl("family", 141)
    doc["provenance"]["error_control"] = error_control_record(control, doc["results"])
    for row in doc["results"]:
        row["decision"] = {"policy": "family", "alpha_side": control.alpha_side}
        if row["p_value"] is not None:
            row["p_refute"] = 1 - row["p_value"]
    html = build_page(doc)
    text = html.split('<p id="error-control">', 1)[1].split("</p>", 1)[0]
    assert "Error control (family)" in text and "at most 0.05 false decisive verdicts" in text
    assert "rows measured here" in text
    table = html.split('id="multiple-testing-table"', 1)[1].split("</table>", 1)[0]
    assert "m = 141 rows per protocol" in html and "<b>provisional</b>" in html
    # A raw p-value is marked at its row's level (0.000177), not at 0.05.
    first = doc["results"][0]
    assert 1.8e-4 < first["p_value"] < 0.05
    assert f'<td>{num(first["p_value"])}</td>' in table

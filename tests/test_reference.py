"""A run against the reference runs (``pgclaims.report.reference``) and the generated results
page (``pgclaims.report.markdown``), through ``pgclaims report``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pgclaims.report import load_results, main_report
from pgclaims.report.markdown import END, START, headline, results_page, update_readme
from pgclaims.report.page import build_page
from pgclaims.report.reference import attach, compare, drift, load_references, outside
from pgclaims.report.schema import ReportError, validate

DATA = Path(__file__).parent / "data"

pytest_plugins = ["pytester"]


@pytest.fixture()
def run() -> dict:
    return load_results(DATA)


def by_protocol(doc: dict) -> dict[str, dict]:
    """The fixture run split into one reference document per protocol."""
    out = {}
    for p in {r["params"].get("protocol") for r in doc["results"]}:
        one = copy.deepcopy(doc)
        one["run_id"] = f"ref-{p}"
        one["results"] = [r for r in one["results"] if r["params"].get("protocol") == p]
        one["figures"] = {}
        out[str(p)] = one
    return out


def write_refs(root: Path, refs: dict[str, dict]) -> Path:
    for p, doc in refs.items():
        (root / p).mkdir(parents=True)
        (root / p / "results.json").write_text(json.dumps(doc))
    return root


def decided(doc: dict) -> dict:
    """A row of ``doc`` with a statistic and an interval (to move and to push outside)."""
    return next(r for r in doc["results"] if r["statistic"] is not None and r["interval"]
                and r["verdict"] in ("REPRODUCED", "REFUTED"))


def test_the_same_run_as_its_reference_moves_nothing(run: dict) -> None:
    comparison = compare(run, by_protocol(run))
    s = comparison["summary"]
    assert s["rows"] == len(run["results"]) and s["missing"] == 0
    assert s["moved"] == 0
    assert s["compared"] + s["pending"] == s["rows"]
    # a statistic inside its own interval is never "outside"
    assert s["outside"] == sum(1 for r in run["results"]
                               if outside(r["statistic"], r["interval"]))


def test_a_moved_verdict_and_a_statistic_outside_are_flagged(run: dict) -> None:
    refs = by_protocol(run)
    now = copy.deepcopy(run)
    row = decided(now)
    row["verdict"] = "REFUTED" if row["verdict"] == "REPRODUCED" else "REPRODUCED"
    lo, hi = row["interval"]
    row["statistic"] = hi + (hi - lo) + 1.0
    out = attach(now, compare(now, refs))
    validate(json.loads(json.dumps(out)), Path("results.json"))  # the schema takes it
    assert out["reference"]["moved"] == 1
    flagged = [r for r in out["results"] if r["reference"]["moved"]]
    assert [r["nodeid"] for r in flagged] == [row["nodeid"]] == [r["nodeid"] for r in drift(out)]
    assert flagged[0]["reference"]["outside"] is True
    html = build_page(out)
    assert 'id="reference-table"' in html and "verdict moved" in html
    assert "reference" not in now  # attach does not change its input
    assert not any("reference" in r for r in now["results"])


def test_another_scale_is_never_compared(run: dict) -> None:
    refs = by_protocol(run)
    for doc in refs.values():
        doc["scale"]["name"] = "nightly"
    s = compare(run, refs)["summary"]
    assert s["rows"] == s["compared"] == s["moved"] == 0
    assert all(not r["used"] and "nightly" in r["why_not"] for r in s["references"].values())


def test_a_row_the_reference_lacks_is_counted_missing(run: dict) -> None:
    refs = by_protocol(run)
    p, doc = next(iter(refs.items()))
    dropped = doc["results"].pop(0)
    s = compare(run, refs)["summary"]
    assert s["missing"] == 1
    assert dropped["nodeid"] not in compare(run, refs)["rows"]


def test_report_cli_fails_on_drift_after_writing_the_report(tmp_path: Path, run: dict,
                                                           capsys: pytest.CaptureFixture) -> None:
    refs = write_refs(tmp_path / "ref", by_protocol(run))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(run))
    assert main_report([str(run_dir), "--reference", str(refs), "--fail-on-drift"]) == 0
    now = copy.deepcopy(run)
    row = decided(now)
    row["verdict"] = "INCONCLUSIVE"
    (run_dir / "results.json").write_text(json.dumps(now))
    (run_dir / "index.html").unlink()
    assert main_report([str(run_dir), "--reference", str(refs), "--fail-on-drift"]) == 1
    err = capsys.readouterr().err
    assert "1 verdict(s) moved from the reference" in err and row["claim_id"] in err
    assert "Against the reference" in (run_dir / "index.html").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--fail-on-drift", "RUN"], "--fail-on-drift needs --reference DIR"),
    ([], "give a run folder (RUN_DIR), or --markdown"),
    (["--markdown", "RUN"], "--markdown reads the reference runs"),
    (["RUN", "--readme", "README.md"], "--readme goes with --markdown"),
    (["RUN", "--reference", "nosuch"], "nosuch: no such reference folder"),
])
def test_report_cli_usage_errors_are_one_line(tmp_path: Path, run: dict, argv: list[str],
                                              message: str, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "RUN").mkdir()
    (tmp_path / "RUN" / "results.json").write_text(json.dumps(run))
    assert main_report(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_markdown_page_counts_every_row_and_flags_differing_protocols(run: dict) -> None:
    refs = by_protocol(run)
    page = results_page(refs)
    for doc in refs.values():
        assert f"run `{doc['run_id']}`" in page
    for claim in {r["claim_id"] for r in run["results"]}:
        assert f"### {claim}" in page
    head = headline(refs)
    letters = {"R": "REPRODUCED", "F": "REFUTED", "I": "INCONCLUSIVE", "E": "ERROR",
               "P": "PENDING"}
    total = 0
    for line in head.splitlines()[2:]:
        if not line.startswith("| [`"):
            continue
        for cell in line.split("|")[3:3 + len(refs)]:
            for part in cell.split():
                if part != "-":
                    total += int(part[:-1])
                    assert part[-1] in letters
    assert total == len(run["results"])
    # the fixture has one claim whose verdict differs between its two protocols
    assert "row(s)**" in head


def test_markdown_without_references_is_an_error() -> None:
    with pytest.raises(ReportError, match="no reference run"):
        results_page({})


def test_markdown_cli_writes_the_page_and_the_readme_block(tmp_path: Path, run: dict) -> None:
    refs = write_refs(tmp_path / "ref", by_protocol(run))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{START}\nold\n{END}\n\nafter\n")
    out = tmp_path / "results.md"
    assert main_report(["--markdown", "--reference", str(refs), "--out", str(out),
                        "--readme", str(readme)]) == 0
    assert out.read_text() == results_page(load_references(refs))
    text = readme.read_text()
    assert "old" not in text and text.endswith("after\n") and "docs/results.md#" in text
    assert update_readme(text, load_references(refs)) == text  # idempotent


def test_a_readme_without_markers_is_left_intact(tmp_path: Path, run: dict) -> None:
    refs = write_refs(tmp_path / "ref", by_protocol(run))
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    out = tmp_path / "results.md"
    assert main_report(["--markdown", "--reference", str(refs), "--out", str(out),
                        "--readme", str(readme)]) == 2
    assert readme.read_text() == "# no markers\n" and not out.exists()


# -- the claims run: --reference, --fail-on-drift ------------------------------------------------

TOY_CONFTEST = """
import numpy as np
from pgclaims.suite.claims import Claim, register

pytest_plugins = ["pgclaims.suite.plugin", "pgclaims.report.plugin"]
register(Claim("toy.ref", "Toy", "Compared with a reference.", "mean", "<", 0.5, "Fig 0",
               over=("env", "algo")))
"""

TOY_TESTS = """
import os
import numpy as np
import pytest


@pytest.mark.claim("toy.ref")
def test_toy(protocol, env, algo, verdict):
    if os.environ.get("TOY_RAISE") == algo:
        raise RuntimeError("a broken measurement")
    center = float(os.environ.get("TOY_CENTER", "0.1"))
    rng = np.random.default_rng(0 if algo == "ppo" else 1)
    verdict.check([center + 0.01 * rng.standard_normal(5) for _ in range(3)],
                  lambda units: float(np.mean([u.mean() for u in units])))
"""


@pytest.fixture
def toy(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    from pgclaims.suite.claims import unregister

    pytester.makeconftest(TOY_CONFTEST)
    pytester.makepyfile(test_toy=TOY_TESTS)
    monkeypatch.setenv("PGCLAIMS_CACHE", str(pytester.path / "cache"))
    yield pytester
    unregister("toy.ref")


def _publish_reference(pytester: pytest.Pytester, run_id: str) -> Path:
    doc = load_results(pytester.path / "reports" / run_id)
    protocols = {r["params"].get("protocol") for r in doc["results"]}
    assert len(protocols) == 1 and None not in protocols
    ref = pytester.path / "docs" / "reference" / str(protocols.pop())
    ref.mkdir(parents=True)
    (ref / "results.json").write_text(json.dumps(doc))
    return ref.parent


def test_a_claims_run_is_compared_with_the_reference_by_default(
        toy: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # the reference: every toy row REFUTED (a REFUTED claims test fails, so exit status 1)
    monkeypatch.setenv("TOY_CENTER", "0.9")
    assert toy.runpytest("--run-id", "first", "-p", "no:cacheprovider").ret == 1
    first = load_results(toy.path / "reports" / "first")
    assert "reference" not in first  # no docs/reference yet: nothing compared
    _publish_reference(toy, "first")
    # same numbers: compared by default (docs/reference under the rootdir), nothing moved;
    # under --fail-on-drift the REFUTED rows are findings the reference shares: exit 0
    assert toy.runpytest("--run-id", "same", "-p", "no:cacheprovider").ret == 1
    result = toy.runpytest("--run-id", "same2", "--fail-on-drift", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--fail-on-drift: no verdict moved from the reference*"])
    same = load_results(toy.path / "reports" / "same")
    assert same["reference"]["compared"] == len(same["results"]) == 6  # 3 envs x 2 algos
    assert same["reference"]["moved"] == 0
    assert all(r["reference"]["verdict"] == r["verdict"] for r in same["results"])
    # the statistic crosses the threshold: every verdict moves to REPRODUCED; the run passes
    # as a claims run, and fails only under --fail-on-drift
    monkeypatch.setenv("TOY_CENTER", "0.1")
    assert toy.runpytest("--run-id", "moved", "-p", "no:cacheprovider").ret == 0
    result = toy.runpytest("--run-id", "drift", "--fail-on-drift", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*--fail-on-drift: 6 verdict(s) moved from the reference*"])
    for run_id in ("moved", "drift"):
        doc = load_results(toy.path / "reports" / run_id)
        assert doc["reference"]["moved"] == 6 and doc["reference"]["outside"] == 6
        assert "Against the reference" in (toy.path / "reports" / run_id /
                                           "index.html").read_text()
    # an ERROR row fails a --fail-on-drift run even where its verdict did not move
    monkeypatch.setenv("TOY_CENTER", "0.9")
    monkeypatch.setenv("TOY_RAISE", "trpo")
    result = toy.runpytest("--run-id", "error", "--fail-on-drift", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*--fail-on-drift: 3 verdict(s) moved from the reference*"])
    monkeypatch.delenv("TOY_RAISE")
    monkeypatch.setenv("TOY_CENTER", "0.1")
    assert toy.runpytest("--run-id", "none", "--no-reference",
                         "-p", "no:cacheprovider").ret == 0
    assert "reference" not in load_results(toy.path / "reports" / "none")


@pytest.mark.parametrize("argv, message", [
    (["--reference", "nosuch"], "--reference: */nosuch: no such reference folder*"),
    (["--fail-on-drift"], "--fail-on-drift: no reference run to compare with in *"),
    (["--no-reference", "--fail-on-drift"], "--no-reference goes with neither*"),
])
def test_reference_usage_errors_come_before_any_test(toy: pytest.Pytester, argv: list[str],
                                                     message: str) -> None:
    result = toy.runpytest(*argv, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert not (toy.path / "reports").exists() or not any((toy.path / "reports").iterdir())


def test_a_damaged_reference_is_a_usage_error(toy: pytest.Pytester) -> None:
    bad = toy.path / "docs" / "reference" / "authors"
    bad.mkdir(parents=True)
    (bad / "results.json").write_text('{"schema": 1, "run_id": ')
    result = toy.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --reference: */authors/results.json: not valid JSON*"])

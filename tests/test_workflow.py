"""The nightly workflow can finish on a hosted runner: what it runs and what it keeps.

The workflow is not run here; these tests read it. Its jobs must run the default scale under
both protocols and the nightly scale with a time budget on a carried cache, with torch pinned,
and each time budget plus what follows it must fit the job's time limit.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from pgclaims.suite.stopping import parse_duration

yaml = pytest.importorskip("yaml", reason="PyYAML reads the workflow file")

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "nightly.yml"
AFTER_BUDGET_S = 45 * 60
"""What a job does after its budget is spent, at most: the studies in flight finish (the
longest nightly one, a Humanoid gradient study with a 2e6-pair true gradient, ~30 min on one
core), the rates of the "what remains" estimate are measured and the report is written; plus
checkout and installation before the run starts."""


@pytest.fixture(scope="module")
def jobs() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]


def _runs(job: dict[str, Any]) -> list[list[str]]:
    return [shlex.split(step["run"].replace("\n", " ")) for step in job["steps"]
            if "run" in step and "pytest" in step["run"]]


def _option(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


def test_torch_is_pinned_to_the_cpu_build() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert re.fullmatch(r"torch==\d+\.\d+\.\d+", doc["env"]["TORCH"])
    assert doc["env"]["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    for job in doc["jobs"].values():
        install = next(s["run"] for s in job["steps"] if s.get("name") == "Install")
        assert '--index-url "$TORCH_INDEX" "$TORCH"' in install


def test_the_default_scale_runs_under_both_protocols(jobs: dict[str, Any]) -> None:
    (cmd,) = _runs(jobs["default"])
    assert _option(cmd, "--scale") == "default" and _option(cmd, "--protocol") == "all"


def test_the_default_job_fails_on_drift_once_references_are_committed(
        jobs: dict[str, Any], tmp_path: Path) -> None:
    """Without references --fail-on-drift would fail every night ("nothing compared")."""
    (step,) = [s["run"] for s in jobs["default"]["steps"] if "pytest" in s.get("run", "")]
    assert 'if [ -f docs/reference/authors/results.json ]; then drift="--fail-on-drift"' in step
    assert step.rstrip().endswith("$drift")
    from pgclaims.report.reference import REFERENCE_DIR, find_references
    assert Path(REFERENCE_DIR) == Path("docs/reference")  # the folder the step tests
    (tmp_path / "authors").mkdir()
    (tmp_path / "authors" / "results.json").write_text("{}")
    assert set(find_references(tmp_path)) == {"authors"}  # the file the step tests


def test_the_nightly_scale_accumulates_on_a_carried_cache(jobs: dict[str, Any]) -> None:
    job = jobs["nightly-scale"]
    cmds = _runs(job)
    assert {_option(c, "--scale") for c in cmds} == {"nightly"}
    assert all(_option(c, "--time-budget") for c in cmds)
    assert any(_option(c, "--backend") == "ray" for c in cmds)  # where a cluster is configured
    restore = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/cache/restore"))
    save = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/cache/save"))
    assert ".cache/pgclaims" in restore["with"]["path"] and "history.jsonl" in save["with"]["path"]
    assert save["if"] == "always()"  # a night whose claims fail or time out still keeps its work
    assert restore["with"]["restore-keys"] and save["with"]["key"] == restore["with"]["key"]


@pytest.mark.parametrize("name", ["default", "nightly-scale"])
def test_each_budget_fits_its_job(jobs: dict[str, Any], name: str) -> None:
    job = jobs[name]
    for cmd in _runs(job):
        budget = parse_duration(str(_option(cmd, "--time-budget")))
        assert budget + AFTER_BUDGET_S <= job["timeout-minutes"] * 60, (name, cmd)
    history = [s for s in job["steps"] if s.get("uses", "").startswith("actions/cache/")
               and "history.jsonl" in s["with"]["path"]]
    assert len(history) == 2, "the verdict history is restored and saved"

"""End to end: the claims suite at smoke scale, as a user runs it, in a subprocess.

A REFUTED or INCONCLUSIVE verdict at smoke scale is a finding, not a failure of this test; a
crash, a claim missing from results.json, or a missing report is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgclaims.suite.claims import all_claims

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = {"REPRODUCED", "REFUTED", "INCONCLUSIVE"}


@pytest.mark.slow
def test_smoke_scale_end_to_end(tmp_path):
    reports = tmp_path / "reports"
    env = {**os.environ, "PGCLAIMS_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "pytest", "claims", "--scale", "smoke", "-n", "2",
           "--reports-dir", str(reports), "--run-id", "e2e-smoke", "-p", "no:cacheprovider",
           "-q"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    tail = (proc.stdout + proc.stderr)[-4000:]
    # 0: all reproduced or inconclusive; 1: some refuted (a finding). Anything else is a crash.
    assert proc.returncode in (0, 1), f"claims run crashed (exit {proc.returncode}):\n{tail}"
    run_dir = reports / "e2e-smoke"
    results = json.loads((run_dir / "results.json").read_text())
    rows = results["results"]
    seen = {r["claim_id"] for r in rows}
    missing = sorted(set(all_claims()) - seen)
    assert not missing, f"claims without a verdict: {missing}\n{tail}"
    errors = [(r["nodeid"], r["reason"]) for r in rows if r["verdict"] not in VERDICTS]
    assert not errors, f"claims that errored instead of giving a verdict: {errors}"
    html = (run_dir / "index.html").read_text()
    assert "verdict-table" in html
    assert all(cid in html for cid in seen)
    print(f"smoke verdicts: {json.dumps(_counts(rows))}; wall "
          f"{results['provenance'].get('wall_time_s')} s", file=sys.stderr)


def _counts(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["verdict"]] = out.get(r["verdict"], 0) + 1
    return out

"""``pgclaims fixtures verify``: the whole fixture store against its digests.

The agents (:func:`pgclaims.agents.storecheck.verify_agents`) and the ablation runs
(:func:`verify_ablations`: each ``ablations/runs/<key>.json`` against the ``sha256`` of its
manifest entry) are checked in one pass and summed up in one line. This module sits above both
stores (:mod:`pgclaims.agents.ablations` reads the agent store's helpers), so neither imports
the other's checker.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from pgclaims import fsio
from pgclaims.agents import ablations, fixtures
from pgclaims.agents.manifest import FixtureError
from pgclaims.agents.storecheck import verify_agents
from pgclaims.agents.train import write_json


def verify(base: Path | None = None, write_missing: bool = False,
           say: Callable[[str], Any] = print) -> int:
    """Check the store (default: :func:`pgclaims.agents.fixtures.root`): ``say`` one line per
    problem and a summary; with ``write_missing``, record the digests of entries written
    before digests existed (an existing digest is never replaced). Returns the number of
    problems (0: the store is whole)."""
    base = base or fixtures.root()
    agents, files, problems = verify_agents(base, write_missing, say)
    runs, checked, bad = verify_ablations(base, write_missing, say)
    problems += bad
    say(f"{base}: {agents} agents, {files} files checked; {runs} ablation runs, "
        f"{checked} checked; {'no problem' if not problems else f'{problems} problems'}")
    return problems


def verify_ablations(base: Path, write_missing: bool = False,
                     say: Callable[[str], Any] = print) -> tuple[int, int, int]:
    """The ablation store's part of :func:`verify`: every run's ``runs/<key>.json`` against
    the ``sha256`` of its manifest entry (recorded for entries without one when
    ``write_missing``). Returns (runs listed, files checked, problems)."""
    if not (ablations.root(base) / "manifest.json").exists():
        return 0, 0, 0
    path = ablations.root(base) / "manifest.json"
    try:
        runs = ablations.read_manifest(base)["runs"]
    except FixtureError as exc:
        say(str(exc))
        return 0, 0, 1
    checked = problems = 0
    missing = []
    for i, entry in enumerate(runs):
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                raise FixtureError(f"{path}: runs[{i}]: not a run entry (no 'key')")
            if ablations.check_run_file(entry, i, base):
                checked += 1
            else:
                missing.append(entry["key"])
        except FixtureError as exc:
            problems += 1
            say(str(exc))
    if missing and write_missing:
        with FileLock(str(ablations.root(base) / ".manifest.lock")):  # training appends too
            doc = ablations.read_manifest(base)
            for entry in doc["runs"]:
                if entry.get("key") in missing and "sha256" not in entry:
                    run_path = ablations.root(base) / "runs" / f"{entry['key']}.json"
                    entry["sha256"] = fsio.sha256_file(run_path)
                    checked += 1
            write_json(path, doc)
        say(f"recorded the sha256 of {len(missing)} ablation runs in {path}")
    elif missing:
        problems += len(missing)
        say(f"{path}: {len(missing)} ablation runs have no sha256 digest (e.g. {missing[0]}); "
            "record them with `pgclaims fixtures verify --write-missing`")
    return len(runs), checked, problems


__all__ = ["verify", "verify_ablations"]

"""Checking the agent fixtures against the digests in their manifest (``fixtures verify``).

Every file of a fixture (checkpoints, config, curve) has its sha256 in the manifest entry. An
entry written before digests existed has none: :func:`verify_agents` with ``write_missing``
records them, but only after :func:`bless` has checked that each file is what the entry says
(a readable checkpoint of the entry's config at its iteration, finite, a parsable curve); a
digest already recorded is never replaced.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from pgclaims import fsio
from pgclaims.agents import checkpoint, digests, manifest
from pgclaims.agents.agent import TrainConfig
from pgclaims.agents.manifest import FixtureError
from pgclaims.agents.train import ckpt_name, write_json


def check_files(entry: dict[str, Any], where: str, base: Path) -> int:
    """Verify every file of a manifest entry against its ``sha256``; the number checked.
    :class:`FixtureError` names the first missing, unrecorded or changed file."""
    folder = base / "store" / entry["key"]
    recorded = entry.get("sha256")
    if recorded is None:
        raise FixtureError(
            f"{base / 'manifest.json'}: {where} ({entry['env_id']} {entry['algo']} seed "
            f"{entry['seed']}): no sha256 digests, so its files cannot be verified; record "
            "them with `pgclaims fixtures verify --write-missing` (it checks each file first)")
    for name in manifest.expected_files(entry):
        path = folder / name
        if not path.is_file():
            raise FixtureError(f"{path}: missing (listed by {where} of "
                               f"{base / 'manifest.json'}); restore it or retrain the fixture")
        if name not in recorded:
            raise FixtureError(f"{path}: no digest in {where}.sha256 of "
                               f"{base / 'manifest.json'}")
        try:
            digests.check(path, recorded[name], f"{base / 'manifest.json'} {where}.sha256")
        except digests.DigestError as exc:
            raise FixtureError(str(exc)) from None
    return len(recorded)


def entry_digests(entry: dict[str, Any], run_dir: Path) -> dict[str, str]:
    """sha256 of the fixture's files; those the run recorded are checked first (a file that
    changed since it was written is not blessed)."""
    recorded = digests.read(run_dir)
    out = {}
    for name in manifest.expected_files(entry):
        if name in recorded:
            digests.check(run_dir / name, recorded[name], str(run_dir / digests.FILE))
        out[name] = fsio.sha256_file(run_dir / name)
    return out


def bless(entry: dict[str, Any], where: str, base: Path) -> dict[str, str]:
    """Digests for an entry written before digests existed, after checking that its files are
    what the entry says: every checkpoint a readable pgclaims checkpoint of the entry's config
    at its iteration with finite parameters, the config hashing to the entry's key."""
    folder = base / "store" / entry["key"]
    cfg_path = folder / "config.json"
    try:
        config = TrainConfig.from_dict(json.loads(cfg_path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FixtureError(f"{cfg_path}: not the config of {where} ({exc})") from None
    if config.key() != entry["key"]:
        raise FixtureError(f"{cfg_path}: its config hashes to {config.key()}, not {where}'s key "
                           f"{entry['key']}")
    for it in entry["checkpoints"]:
        path = folder / ckpt_name(it)
        tensors, meta = checkpoint.read(path)
        bad = checkpoint.non_finite(tensors)
        try:  # configs of older checkpoints lack later fields: compare what they hash to
            key = TrainConfig.from_dict(meta["config"]).key()
        except (KeyError, TypeError, ValueError):
            key = None
        if meta.get("iteration") != it or key != entry["key"] or bad:
            raise FixtureError(f"{path}: not {where}'s checkpoint at iteration {it} (iteration "
                               f"{meta.get('iteration')}, config key {key}, non-finite "
                               f"{bad[:3]})")
    try:
        json.loads((folder / "curve.json").read_text())
    except (OSError, ValueError) as exc:
        raise FixtureError(f"{folder / 'curve.json'}: not a training curve ({exc})") from None
    return {name: fsio.sha256_file(folder / name) for name in manifest.expected_files(entry)}


def verify_agents(base: Path, write_missing: bool = False,
                  say: Callable[[str], Any] = print) -> tuple[int, int, int]:
    """The agents' part of :func:`pgclaims.agents.storeverify.verify`: check every file of
    every manifest entry against its sha256, ``say`` one line per problem. With
    ``write_missing``, entries without digests get them (after :func:`bless` checks their
    files); an existing digest is never replaced. Returns (agents listed, files checked,
    problems). A store folder that does not exist is a :class:`FixtureError` (nothing verified
    is not a store verified)."""
    if not base.is_dir():
        what = "does not exist" if not base.exists() else "is not a folder"
        raise FixtureError(f"{base}: {what}, so there is no fixture store to verify (the store "
                           "is $PGCLAIMS_FIXTURES, else the checkout's fixtures/)")
    doc = manifest.read(base)
    problems = files = 0
    missing: list[str] = []
    for i, entry in enumerate(doc["agents"]):
        where = f"agents[{i}]"
        if "sha256" not in entry:
            missing.append(entry["key"])
            continue
        try:
            files += check_files(entry, where, base)
        except FixtureError as exc:
            problems += 1
            say(str(exc))
    if missing and write_missing:
        with FileLock(str(base / ".manifest.lock")):  # other writers append meanwhile
            doc = manifest.read(base)
            for i, entry in enumerate(doc["agents"]):
                if entry["key"] in missing and "sha256" not in entry:
                    try:
                        entry["sha256"] = bless(entry, f"agents[{i}]", base)
                    except (FixtureError, checkpoint.CheckpointError, OSError) as exc:
                        problems += 1
                        say(f"not digested: {exc}")
                        continue
                    files += len(entry["sha256"])
                    say(f"recorded the sha256 of {len(entry['sha256'])} files of agents[{i}] "
                        f"({entry['env_id']} {entry['algo']} seed {entry['seed']})")
            write_json(base / "manifest.json", doc)
    elif missing:
        problems += len(missing)
        say(f"{base / 'manifest.json'}: {len(missing)} entries have no sha256 digests "
            f"(e.g. {missing[0]}); record them with `pgclaims fixtures verify --write-missing`")
    listed = {a["key"] for a in doc["agents"]}
    stray = sorted(p.name for p in (base / "store").glob("*") if p.is_dir()
                   and p.name not in listed) if (base / "store").is_dir() else []
    if stray:
        say(f"note: {len(stray)} store folders are not in the manifest (training in progress or "
            f"interrupted; not checked): {', '.join(stray[:5])}{' ...' if len(stray) > 5 else ''}")
    return len(doc["agents"]), files, problems


__all__ = ["bless", "check_files", "entry_digests", "verify_agents"]

"""The committed fixture store: trained agents, content-addressed by their training config.

Layout under ``fixtures/``::

    manifest.json              one entry per complete agent (see :func:`manifest_entry`)
    store/<key>/config.json    the TrainConfig
    store/<key>/curve.json     per-iteration training metrics
    store/<key>/ckpt_NNNN.safetensors

Every file of a fixture has its sha256 in the manifest entry (``sha256``), checked whenever it
is loaded; ``pgclaims fixtures verify`` checks the whole store (:mod:`pgclaims.agents.storeverify`).
A finished fixture is never trained again, and the manifest entry is written before the files
kept only for resuming (``latest.safetensors``, ``sha256.json``) are removed, so a failed
manifest write loses nothing: the rerun finds the run finished and writes the entry.

``<key>`` is :meth:`pgclaims.agents.agent.TrainConfig.key`, a hash of the config and
:data:`pgclaims.agents.agent.TRAINING_VERSION`. Changing training semantics means bumping that
constant: every existing fixture then stops matching, and :func:`load` names the command that
retrains it rather than measuring a stale agent.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from pgclaims.agents import backend, checkpoint, digests, manifest, storecheck
from pgclaims.agents.agent import TRAINING_VERSION, Agent, TrainConfig
from pgclaims.agents.lockstep import groups_of, train_together
from pgclaims.agents.manifest import FixtureError
from pgclaims.agents.setprogress import RunWork, SetProgress
from pgclaims.agents.sims import supports
from pgclaims.agents.storecheck import check_files
from pgclaims.agents.train import LATEST, ckpt_name, train, write_json

ROOT = Path(__file__).resolve().parents[2] / "fixtures"
"""The repository's fixture directory (override with the ``PGCLAIMS_FIXTURES`` variable)."""


def root() -> Path:
    return Path(os.environ.get("PGCLAIMS_FIXTURES", ROOT))


def train_command(env_id: str, algo: str, seed: int, iterations: int,
                  protocol: str = "table1") -> str:
    return (f"pgclaims fixtures train --env {env_id} --algo {algo} --seed {seed} "
            f"--iterations {iterations} --protocol {protocol}")


def read_manifest(base: Path | None = None) -> dict[str, Any]:
    """The store's manifest, every entry validated (:mod:`pgclaims.agents.manifest`)."""
    return manifest.read(base or root())


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("pgclaims", "torch", "gymnasium", "mujoco", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def manifest_entry(agent: Agent, wall_time_s: float) -> dict[str, Any]:
    cfg = agent.config
    rets = [r["mean_return"] for r in agent.curve[-10:] if not math.isnan(r["mean_return"])]
    return {
        "key": cfg.key(),
        "env_id": cfg.env_id,
        "algo": cfg.algo,
        "seed": cfg.seed,
        "iterations": cfg.iterations,
        "protocol": cfg.protocol,
        "checkpoints": list(cfg.checkpoints),
        "training_version": TRAINING_VERSION,
        "final_mean_return": sum(rets) / len(rets) if rets else None,
        "final_mean_return_note": "mean episode return over the last 10 training iterations",
        "command": train_command(cfg.env_id, cfg.algo, cfg.seed, cfg.iterations, cfg.protocol),
        "versions": versions(),
        "platform": platform.platform(),
        "wall_time_s": round(wall_time_s, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _store_dir(config: TrainConfig, base: Path) -> Path:
    """The store directory of ``config``, which must be one of its protocol's fixtures."""
    standard = TrainConfig.create(config.env_id, config.algo, config.seed, config.iterations,
                                  protocol=config.protocol)
    if config != standard:
        raise ValueError(
            "the fixture store holds its protocols' agents only (its lookup rebuilds the config "
            "from env, algo, seed, iterations and protocol); train variants with "
            "`pgclaims train --out DIR`"
        )
    return base / "store" / config.key()


def _record(agent: Agent, base: Path, run_dir: Path, wall_time_s: float,
            **extra: Any) -> dict[str, Any]:
    """Record a finished agent in the manifest, with the sha256 of its files; only then are
    the files kept for resuming removed (a failed manifest write keeps them)."""
    entry = {**manifest_entry(agent, wall_time_s), **extra}
    entry["sha256"] = storecheck.entry_digests(entry, run_dir)
    with FileLock(str(base / ".manifest.lock")):
        doc = read_manifest(base)
        doc["agents"] = [a for a in doc["agents"] if a["key"] != entry["key"]]
        doc["agents"].append(entry)
        doc["agents"].sort(key=lambda a: (a.get("protocol", "table1"), a["env_id"],
                                          a["algo"], a["seed"]))
        write_json(base / "manifest.json", doc)
    for name in (LATEST, digests.FILE):  # only needed to resume; the manifest holds it all now
        (run_dir / name).unlink(missing_ok=True)
    return entry


def _locate(base: Path, key: str) -> tuple[int, dict[str, Any]] | None:
    for i, a in enumerate(read_manifest(base)["agents"]):
        if a["key"] == key:
            return i, a
    return None


def finished(config: TrainConfig, base: Path | None = None) -> str | None:
    """None if ``config`` is not in the manifest; else, its files verified against their
    digests (:class:`FixtureError` otherwise), the line that says so."""
    base = base or root()
    found = _locate(base, config.key())
    if found is None:
        return None
    i, entry = found
    n = check_files(entry, f"agents[{i}]", base)
    return (f"fixture {entry['key']} ({entry.get('protocol', 'table1')} {entry['env_id']} "
            f"{entry['algo']} seed {entry['seed']}) is already in {base / 'manifest.json'}: "
            f"the sha256 of its {n} files verified; nothing trained, nothing written")


def train_fixture(config: TrainConfig, base: Path | None = None, progress: bool = True,
                  say: Any = None) -> dict[str, Any]:
    """Train (or resume) ``config`` into the store and record it in the manifest.

    A fixture already in the manifest is not trained again: its files are verified against
    their digests and ``say`` is told so. The manifest is read before training (a damaged
    one stops the command before any work) and written before ``latest.safetensors`` is
    removed (a failed write keeps it, and the rerun only writes the entry)."""
    base = base or root()
    run_dir = _store_dir(config, base)
    found = _locate(base, config.key())
    if found is not None:
        done = finished(config, base)
        if say is not None and done is not None:
            say(done)
        return found[1]
    t0 = time.perf_counter()
    agent = train(config, run_dir, progress=progress, say=say)
    return _record(agent, base, run_dir, time.perf_counter() - t0)


def train_fixtures_together(configs: list[TrainConfig], base: Path | None = None
                            ) -> list[dict[str, Any]]:
    """Train (or resume) fixtures of one environment in lockstep
    (:func:`pgclaims.agents.lockstep.train_together`: the same agents as
    :func:`train_fixture` of each), recording each in the manifest as it finishes. An entry's
    ``wall_time_s`` is the group's time until that agent finished, ``lockstep`` the group size."""
    base = base or root()
    read_manifest(base)  # a damaged manifest stops the group before any training
    dirs = [_store_dir(c, base) for c in configs]
    t0 = time.perf_counter()
    entries: list[dict[str, Any]] = []
    train_together(configs, dirs, on_finish=lambda agent, run_dir: entries.append(_record(
        agent, base, run_dir, time.perf_counter() - t0, lockstep=len(configs))))
    return entries


def find(env_id: str, algo: str, seed: int, iterations: int = 500,
         base: Path | None = None, protocol: str = "table1") -> Path:
    """The store directory of a complete fixture, or a :class:`FixtureError` saying what to run."""
    return _find(env_id, algo, seed, iterations, base or root(), protocol)[0]


def _find(env_id: str, algo: str, seed: int, iterations: int, base: Path,
          protocol: str) -> tuple[Path, dict[str, Any], str]:
    """(store folder, manifest entry, its field path) of a complete fixture."""
    config = TrainConfig.create(env_id, algo, seed, iterations, protocol=protocol)
    key = config.key()
    agents = read_manifest(base)["agents"]
    for i, a in enumerate(agents):
        if a["key"] == key:
            return base / "store" / key, a, f"agents[{i}]"
    cmd = train_command(env_id, algo, seed, iterations, protocol)
    same = [a for a in agents if (a["env_id"], a["algo"], a["seed"], a["iterations"],
                                  a.get("protocol", "table1"))
            == (env_id, algo, seed, iterations, protocol)]
    if same:
        raise FixtureError(
            f"fixture {env_id} {algo} seed {seed} in {base / 'manifest.json'} was trained with "
            f"training_version {same[0].get('training_version')} / another config (key "
            f"{same[0]['key']}, expected {key}); retrain it: {cmd}")
    raise FixtureError(f"no {protocol} fixture {env_id} {algo} seed {seed} ({iterations} "
                       f"iterations) in {base / 'manifest.json'}; train it: {cmd}")


def load(env_id: str, algo: str, seed: int, iteration: int, iterations: int = 500,
         base: Path | None = None, protocol: str = "table1") -> Agent:
    """The committed agent ``env_id``/``algo``/``seed`` of ``protocol`` at ``iteration``, its
    file checked against the manifest's sha256 first."""
    base = base or root()
    run_dir, entry, where = _find(env_id, algo, seed, iterations, base, protocol)
    path = run_dir / ckpt_name(iteration)
    if not path.exists():
        have = sorted(p.name for p in run_dir.glob("ckpt_*.safetensors"))
        raise FixtureError(f"{path}: no checkpoint at iteration {iteration}; have {have}")
    _check_one(path, entry, where, base)
    return checkpoint.load(path)


def _check_one(path: Path, entry: dict[str, Any], where: str, base: Path) -> None:
    recorded = entry.get("sha256")
    source = f"{base / 'manifest.json'} {where}.sha256"
    if recorded is None or path.name not in recorded:
        raise FixtureError(
            f"{path}: no sha256 in {source}, so the file cannot be verified; record the "
            "digests with `pgclaims fixtures verify --write-missing` (it checks each file "
            "first)")
    try:
        digests.check(path, recorded[path.name], source)
    except digests.DigestError as exc:
        raise FixtureError(str(exc)) from None


def curve(env_id: str, algo: str, seed: int, iterations: int = 500,
          base: Path | None = None, protocol: str = "table1") -> list[dict[str, float]]:
    """The fixture's training curve, checked against the manifest's sha256."""
    base = base or root()
    run_dir, entry, where = _find(env_id, algo, seed, iterations, base, protocol)
    path = run_dir / "curve.json"
    _check_one(path, entry, where, base)
    return json.loads(path.read_text())


def describe(base: Path | None = None) -> str:
    rows = read_manifest(base)["agents"]
    if not rows:
        return "no fixtures"
    lines = [f"{'protocol':9} {'env':13} {'algo':5} {'seed':>4} {'iters':>5} "
             f"{'final return':>12}  key"]
    for a in sorted(rows, key=lambda a: (a.get("protocol", "table1"), a["env_id"], a["algo"],
                                         a["seed"])):
        ret = a["final_mean_return"]
        ret_s = f"{ret:12.1f}" if ret is not None else f"{'n/a':>12}"
        lines.append(f"{a.get('protocol', 'table1'):9} {a['env_id']:13} {a['algo']:5} "
                     f"{a['seed']:>4} {a['iterations']:>5} {ret_s}  {a['key']}")
    return "\n".join(lines)




def final_return_text(entry: dict[str, Any]) -> str:
    """``final mean return R``, or what stands in for it when no episode ended (None)."""
    ret = entry.get("final_mean_return")
    if ret is None:
        return "no final mean return (no episode ended in its last 10 iterations)"
    return f"final mean return {ret:.0f}"


def train_job(job: tuple[TrainConfig, Path]) -> dict[str, Any]:
    """Train (or resume) one fixture, ``(config, store base)``."""
    config, base = job
    return train_fixture(config, base, progress=False)


def group_job(job: tuple[list[TrainConfig], Path]) -> list[dict[str, Any]]:
    """Train (or resume) a lockstep group, ``(configs, store base)``: the unit of
    :func:`train_set` (a group of one environment the collector does not step directly is one
    config, trained alone)."""
    configs, base = job
    if len(configs) == 1 and not supports(configs[0].env_id):
        return [train_fixture(configs[0], base, progress=False)]
    return train_fixtures_together(configs, base)


def lockstep_groups(configs: list[TrainConfig], jobs: int) -> list[list[TrainConfig]]:
    """``configs`` cut into lockstep groups, one environment id (one simulation task) each
    (:func:`pgclaims.agents.lockstep.groups_of`)."""
    return groups_of(configs, lambda c: c.env_id, lambda c: c.env_id, jobs)


def train_set(configs: list[TrainConfig], jobs: int = 1,
              say: Any = print) -> list[dict[str, Any]]:
    """Train (or resume) every config into the store, ``jobs`` lockstep groups at a time
    (:func:`lockstep_groups`; the runs of a group collect their batches together, each agent
    still exactly what it is alone), each group in its own process, or as a Ray task under the
    ray backend (:mod:`pgclaims.agents.backend`; a task whose worker dies resumes every agent
    from its latest checkpoint); deterministic whatever the order, grouping or backend. ``say``
    gets a line per finished agent with the set's overall ETA. Agents already in the manifest
    are skipped, their files verified against their digests first. Ray workers write to the
    store path as this process sees it, so a cluster of several machines needs it on a shared
    filesystem."""
    base = root().resolve()
    have = {a["key"] for a in read_manifest(base)["agents"]}
    todo = [c for c in configs if c.key() not in have]
    for c in configs:
        if c.key() in have:
            finished(c, base)  # verified against its digests (FixtureError names a change)
    groups = lockstep_groups(todo, jobs)
    say(f"{len(configs) - len(todo)} of {len(configs)} agents already in the store (their "
        "sha256 verified); "
        f"training {len(todo)} in {len(groups)} lockstep group(s) with {jobs} job(s)")
    done: list[dict[str, Any]] = []
    if not todo:
        return done
    work = [RunWork.of(c, _store_dir(c, base)) for c in todo]
    with SetProgress(work, say, "agents") as progress:
        for _, entries in backend.run_each(group_job, [(g, base) for g in groups], jobs):
            for entry in entries:
                done.append(entry)
                say(f"[{len(done)}/{len(todo)}] {entry['protocol']} {entry['env_id']} "
                    f"{entry['algo']} seed {entry['seed']}: {final_return_text(entry)}, "
                    f"{entry['wall_time_s']:.0f} s; set {progress.short()}")
    return done


__all__ = ["FixtureError", "check_files", "curve", "describe", "find", "finished", "load",
           "lockstep_groups", "train_fixture", "train_fixtures_together", "train_set"]

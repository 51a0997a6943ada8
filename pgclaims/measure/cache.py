"""On-disk cache of measurement results, content-addressed and safe under pytest-xdist.

Key: the checkpoint's identity (training-config key, iteration, a hash of its parameters), the
measurement kind and arguments, the seed and the kind's version (:func:`version`). A file lock
per key means two workers never compute the same thing twice: the second waits and reads.
Results are written atomically (temporary file, then rename), so an interrupted computation
leaves nothing behind.

Each entry carries the sha256 of its index and result (:func:`digest`). An entry whose digest
or index does not match, or that does not parse, is discarded with a warning naming the file
and recomputed: a flipped bit or a hand edit is never read as a measurement. Entries written
before digests existed are read as they are and get their digest on that first read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from filelock import FileLock, Timeout

from pgclaims import fsio
from pgclaims.agents.agent import Agent
from pgclaims.agents.networks import flat_params
from pgclaims.agents.sims import MUJOCO_ENVS, supports

MEASURE_VERSION = 4
"""Bump when a change alters what a measurement returns for the same inputs (2: the batched
MuJoCo sampler is the default for Hopper-v5, Walker2d-v5 and Humanoid-v5, and agent ids cover
the normalizer statistics; 3: a PPO step starts from a copy of the checkpoint's Adam state,
which earlier steps of the same process used to advance in place; 4: the gradient study's
noise-corrected cosine divides by the shrunk |g_true|^2, defined for every study). A bump that
changes a kind listed in :data:`KIND_VERSIONS` takes that kind out of it."""

KIND_VERSIONS = {"value": 2, "steps": 3, "landscape": 3}
"""Kinds whose results the latest bumps did not change keep their version, so their cached
results stay valid: version 3 changed algorithm steps only, which the gradient and value
studies never take (the step and landscape studies do); version 4 changed gradient studies
only."""


def version(kind: str) -> int:
    """The version in ``kind``'s cache keys: :data:`MEASURE_VERSION` unless the latest bumps
    left the kind's results unchanged (:data:`KIND_VERSIONS`)."""
    return KIND_VERSIONS.get(kind, MEASURE_VERSION)


T = TypeVar("T")
K = TypeVar("K")


def cache_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / ".cache" / "pgclaims" / "measure"
    return Path(os.environ.get("PGCLAIMS_CACHE", default.parent)) / "measure" if os.environ.get(
        "PGCLAIMS_CACHE") else default


def agent_id(agent: Agent) -> str:
    """The checkpoint's identity: config key, iteration, parameters and the frozen normalizer
    statistics (one set of weights with two VecNormalize files is two agents). A wrapped
    environment id that the collector steps directly (an adapter's ``ClipAction`` id: sampled
    through gymnasium before the collector served the adapters, so its numbers changed by
    the batched forward pass's rounding) is marked, so no result cached before is read."""
    h = hashlib.sha256()
    h.update(agent.config.key().encode())
    h.update(str(agent.iteration).encode())
    if supports(agent.config.env_id) and agent.config.env_id not in MUJOCO_ENVS:
        h.update(b"direct collector")
    h.update(flat_params(agent.policy).numpy().tobytes())
    h.update(flat_params(agent.value).numpy().tobytes())
    for norm in (agent.obs_norm, agent.reward_scaler):
        stats = norm.stats
        h.update(np.ascontiguousarray(stats.mean, np.float64).tobytes())
        h.update(np.ascontiguousarray(stats.m2, np.float64).tobytes())
        h.update(str((stats.count, getattr(norm, "clip", None))).encode())
    return h.hexdigest()[:16]


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__nd__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__nd__" in obj:
            return np.asarray(obj["__nd__"], dtype=obj["dtype"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def to_json(result: Any) -> dict[str, Any]:
    return {f.name: _encode(getattr(result, f.name)) for f in dataclasses.fields(result)}


_gate: Callable[[str], None] | None = None


def set_gate(gate: Callable[[str], None] | None) -> None:
    """Call ``gate(what)`` before each measurement the cache does not hold yet (never before a
    read); it may raise to keep the measurement from starting (a claims run whose time budget
    is spent, :mod:`pgclaims.suite.stopping`). None: no gate."""
    global _gate
    _gate = gate


class Busy(Exception):
    """Another process is computing this measurement, and the caller asked not to wait
    (:func:`each_without_waiting`)."""


_local = threading.local()
"""``_local.no_wait`` is true while :func:`each_without_waiting` tries an item in this thread:
a held lock raises :class:`Busy`."""


def _no_wait() -> bool:
    return getattr(_local, "no_wait", False)


def each_without_waiting(items: Sequence[K], fn: Callable[[K], T]) -> list[T]:
    """``[fn(item) for item in items]``, computed so that this process never waits on a
    measurement another one is computing while it has other work: a first pass skips each item
    whose measurement is locked by another process (what it measured before the lock is cached),
    then the skipped items are done in order, waiting where they must.

    Two xdist workers running claims of the same agents otherwise walk the agents in the same
    order, and the later one waits on every lock of the earlier one: on the default scale one
    of two cores sat idle for most of an hour. The results, and the exception raised (the one
    of the first item, in ``items``' order, that raised one), are those of the plain loop."""
    outer = _no_wait()  # nested inside another first pass: its Busy defers the outer item
    results: dict[int, T] = {}
    errors: dict[int, Exception] = {}
    skipped: list[int] = []
    try:
        for i, item in enumerate(items):
            _local.no_wait = True
            try:
                results[i] = fn(item)
            except Busy:
                skipped.append(i)
            except Exception as exc:  # raised below, in order, after the others are measured
                errors[i] = exc
        _local.no_wait = outer
        for i in skipped:
            try:
                results[i] = fn(items[i])
            except Exception as exc:
                errors[i] = exc
    finally:
        _local.no_wait = outer
    if errors:
        raise errors[min(errors)]
    return [results[i] for i in range(len(items))]


@contextmanager
def _waiting_said(lock: FileLock, what: str) -> Iterator[None]:
    """Hold ``lock``; if another process holds it, say on stderr that this one waits (for
    what), since it may wait as long as that measurement takes; or, inside the first pass of
    :func:`each_without_waiting`, raise :class:`Busy`."""
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if _no_wait():
            raise Busy(what) from None
        print(f"pgclaims: waiting for {lock.lock_file}: another process is computing the same "
              f"measurement ({what}); it is read from the cache when that one finishes",
              file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


class CacheDigestWarning(UserWarning):
    """A cache entry that was damaged or edited: discarded, and recomputed."""


def digest(index: dict[str, Any], result: Any) -> str:
    """sha256 of an entry's index and (JSON-encoded) result, keys sorted."""
    text = json.dumps({"index": index, "result": result}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _entry(path: Path, index: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checked record at ``path``; ValueError saying what is wrong with it. A record of
    the time before digests gets its digest written (the caller holds the entry's lock)."""
    try:
        record = json.loads(path.read_text())
        stored, result, recorded = record["index"], record["result"], record.get("sha256")
    except (ValueError, KeyError, TypeError) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise ValueError(f"not a cache entry ({type(exc).__name__}: {exc})") from None
    if index is not None and stored != json.loads(json.dumps(index)):
        raise ValueError("its index is not the one its file name stands for")
    expected = digest(stored, result)
    if recorded is None:  # written before digests existed
        if index is not None:
            fsio.write_text(path, json.dumps({**record, "sha256": expected}))
    elif recorded != expected:
        raise ValueError(f"sha256 {expected[:16]}... of its content differs from the "
                         f"{str(recorded)[:16]}... it records (damaged or edited)")
    return record


def cached(kind: str, agent: Agent, args: dict[str, Any], seed: int, cls: type[T],
           compute: Callable[[], T]) -> T:
    """``compute()`` once per (checkpoint, kind, args, seed); later calls read the file."""
    index = {"kind": kind, "agent_id": agent_id(agent), "env": agent.config.env_id,
             "algo": agent.config.algo, "seed": agent.config.seed,
             "iteration": agent.iteration, "args": args, "measure_seed": seed,
             "measure_version": version(kind)}
    if agent.config.protocol != "table1":  # keyed since protocols exist; table1 keys unchanged
        index["protocol"] = agent.config.protocol
    key = hashlib.sha256(json.dumps(index, sort_keys=True).encode()).hexdigest()[:20]
    folder = cache_dir() / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.json"
    what = (f"{kind} of {agent.config.env_id} {agent.config.algo} seed {agent.config.seed} "
            f"it {agent.iteration}")
    with _waiting_said(FileLock(str(path) + ".lock"), what):
        if path.exists():
            try:
                return cls(**_decode(_entry(path, index)["result"]))
            except (ValueError, KeyError, TypeError) as exc:
                warnings.warn(f"{path}: {exc}; discarded, recomputing", CacheDigestWarning,
                              stacklevel=2)
                path.unlink()  # a foreign or damaged entry is recomputed, never trusted
        if _gate is not None:
            _gate(what)
        result = compute()
        encoded = to_json(result)
        fsio.write_text(path, json.dumps({"index": index, "result": encoded,
                                          "sha256": digest(index, encoded)}))
    return result


def records(kind: str, args: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Cached records of ``kind`` (index and decoded result) of its current :func:`version`,
    and measured with ``args`` when given, for redrawing figures."""
    out = []
    for path in sorted((cache_dir() / kind).glob("*.json")):
        try:
            rec = _entry(path)
            ix = rec["index"]
            if ix["measure_version"] != version(kind) or (
                    args is not None and ix["args"] != json.loads(json.dumps(args))):
                continue
            out.append({"index": ix, "result": _decode(rec["result"])})
        except ValueError as exc:
            warnings.warn(f"{path}: {exc}; left out", CacheDigestWarning, stacklevel=2)
        except (KeyError, TypeError, OSError):
            continue
    return out

"""``pytest claims --agents MANIFEST``: the claims measured on agents trained elsewhere.

The manifest (JSON, or TOML when the file ends in ``.toml``) lists per env x algo x seed the
checkpoint file at each iteration and the adapter that reads it (``docs/adapters.md``)::

    {"source": "my SB3 runs", "versions": {"stable-baselines3": "2.3.0"},
     "agents": [{"env": "Hopper-v5", "algo": "ppo", "seed": 0, "adapter": "sb3",
                 "options": {"vecnormalize": "vn0.pkl"},
                 "checkpoints": {"0": "s0/a0.zip", "150": {"path": "s0/a150.zip",
                                                           "vecnormalize": "s0/vn150.pkl"}}}]}

Paths (checkpoints and the options in :data:`PATH_OPTIONS`) are relative to the manifest's
folder. Seeds are the replication unit, as for the fixtures: every env x algo needs the same
seeds, every agent the same iteration keys. :func:`read_manifest` validates all of it and
raises :class:`ManifestError` naming the file and the field; :func:`apply` makes the run's scale
from it. The suite never imports the adapters (they are a room of their own): the claims'
``conftest.py`` gives :class:`~pgclaims.suite.agents.AgentStore` the loader.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgclaims.suite.results import installed_versions
from pgclaims.suite.scales import Scale
from pgclaims.suite.verdicts import Inconclusive

PATH_OPTIONS = ("vecnormalize", "stats")
"""Adapter options that name a file (SB3's VecNormalize pickle, CleanRL's statistics)."""
PACKAGES = ("stable-baselines3", "sb3-contrib", "cleanrl", "torch", "gymnasium", "mujoco")
"""Installed versions recorded beside the manifest's own ``versions``."""
DEFAULT_PROTOCOL = "corrected"
"""External agents are measured with the corrected protocol unless ``--protocol`` says
otherwise: SB3 and CleanRL bootstrap time-limit cuts (CleanRL: see docs/adapters.md)."""
LACKS = {
    "training_batch": "the batch the value function was last fit on (and V_old): an adapted "
                      "checkpoint does not carry it, so there is no train-pair value error",
    "optimizer_state": "the policy optimizer's state and update settings: the algorithm's "
                       "step cannot be replayed",
    "training_run": "the training run itself (curves, ablations): the agents were trained "
                    "elsewhere",
}
"""What an external agent may lack, and why a measurement needing it cannot be made."""
_TOP = {"source", "versions", "agents"}
_AGENT = {"env", "algo", "seed", "adapter", "options", "checkpoints"}


class ManifestError(ValueError):
    """The manifest is unreadable or invalid; the message names the file and the field."""


class Unsupported(Inconclusive):
    """A measurement needs what the external agents do not carry (see :data:`LACKS`)."""

    def __init__(self, lack: str, who: str = "") -> None:
        super().__init__(f"{who + ': ' if who else ''}external agents lack {lack} "
                         f"({LACKS[lack]})", code="agents_lack", detail={"lacks": lack})
        self.lack = lack


@dataclass(frozen=True)
class Entry:
    """One agent of the manifest: resolved absolute paths and options per iteration."""

    env: str
    algo: str
    seed: int
    adapter: str
    checkpoints: dict[int, tuple[str, dict[str, Any]]]
    """iteration -> (checkpoint path, adapter options for that file)."""

    def to_dict(self) -> dict[str, Any]:
        return {"env": self.env, "algo": self.algo, "seed": self.seed, "adapter": self.adapter,
                "checkpoints": {str(it): {"path": p, "options": o}
                                for it, (p, o) in sorted(self.checkpoints.items())}}


@dataclass(frozen=True)
class Manifest:
    """A validated manifest (``path`` absolute)."""

    path: str
    source: str
    versions: dict[str, Any]
    agents: tuple[Entry, ...]

    @property
    def envs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.env for a in self.agents))

    @property
    def algos(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.algo for a in self.agents))

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted({a.seed for a in self.agents}))

    @property
    def iterations(self) -> tuple[int, ...]:
        return tuple(sorted(self.agents[0].checkpoints))

    def entry(self, env: str, algo: str, seed: int) -> Entry:
        for a in self.agents:
            if (a.env, a.algo, a.seed) == (env, algo, seed):
                return a
        raise KeyError(f"{self.path}: no agent {env} {algo} seed {seed}")

    def to_json(self) -> str:
        """Plain JSON: the manifest's data, the sha256 of every file (checkpoints and the
        option files of :data:`PATH_OPTIONS`) and the installed versions
        (what ``results.json`` records as the agents' source)."""
        packages = installed_versions(PACKAGES)
        digests = {f: _sha256(f) for a in self.agents for p, o in a.checkpoints.values()
                   for f in (p, *(o[k] for k in PATH_OPTIONS if k in o))}
        return json.dumps({"manifest": self.path, "manifest_sha256": _sha256(self.path),
                           "source": self.source, "versions": self.versions,
                           "packages": packages, "agents": [a.to_dict() for a in self.agents],
                           "sha256": digests}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        d = json.loads(text)
        agents = tuple(Entry(a["env"], a["algo"], a["seed"], a["adapter"],
                             {int(k): (v["path"], v["options"])
                              for k, v in a["checkpoints"].items()}) for a in d["agents"])
        return cls(d["manifest"], d["source"], d["versions"], agents)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load(path: Path) -> Any:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc.strerror})") from None
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text.decode())
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:  # JSON and TOML errors are ValueErrors
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise ManifestError(f"{path}: not valid {kind} ({exc})") from None


def read_manifest(path: str | Path) -> Manifest:
    """The validated manifest at ``path``; :class:`ManifestError` names the file and field."""
    path = Path(path).resolve()
    data = _load(path)
    folder = path.parent

    def bad(field: str, problem: str) -> ManifestError:
        return ManifestError(f"{path}: field {field!r}: {problem}")

    if not isinstance(data, dict):
        raise bad("<top>", f"expected an object with {sorted(_TOP)}")
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise bad(unknown[0], f"unknown field; expected {', '.join(sorted(_TOP))}")
    source = data.get("source")
    if not isinstance(source, str) or not source.strip():
        raise bad("source", "required: a non-empty string saying where the agents come from")
    versions = data.get("versions", {})
    if not isinstance(versions, dict):
        raise bad("versions", "expected an object (name -> version)")
    agents = data.get("agents")
    if not isinstance(agents, list) or not agents:
        raise bad("agents", "required: a non-empty list of agents")
    entries = [_entry(a, f"agents[{i}]", folder, bad) for i, a in enumerate(agents)]
    _check_grid(entries, bad)
    return Manifest(str(path), source, dict(versions), tuple(entries))


def _file(value: Any, field: str, folder: Path, bad: Any) -> str:
    if not isinstance(value, str) or not value:
        raise bad(field, "expected a file path (relative to the manifest's folder)")
    try:
        p = (folder / value).resolve()
        is_file = p.is_file()
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a symlink loop
        raise bad(field, f"not a usable file path ({exc})") from None
    if not is_file:
        raise bad(field, f"no such file: {p}")
    return str(p)


def _env(value: str, field: str, bad: Any) -> None:
    """An id gymnasium knows, checked when the manifest is read (not when a test runs)."""
    import gymnasium

    try:
        gymnasium.spec(value)
    except gymnasium.error.Error as exc:
        raise bad(field, f"unknown environment id {value!r} ({exc})") from None


def _options(raw: Any, field: str, folder: Path, bad: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise bad(field, "expected an object of adapter options")
    return {k: _file(v, f"{field}.{k}", folder, bad) if k in PATH_OPTIONS else v
            for k, v in raw.items()}


def _entry(raw: Any, field: str, folder: Path, bad: Any) -> Entry:
    if not isinstance(raw, dict):
        raise bad(field, "expected an object")
    unknown = sorted(set(raw) - _AGENT)
    if unknown:
        raise bad(f"{field}.{unknown[0]}", f"unknown field; expected {', '.join(sorted(_AGENT))}")
    for key in ("env", "algo", "adapter"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise bad(f"{field}.{key}", "required: a non-empty string")
    _env(raw["env"], f"{field}.env", bad)
    if raw["algo"] not in ("ppo", "trpo"):
        raise bad(f"{field}.algo", f"expected 'ppo' or 'trpo', got {raw['algo']!r}")
    seed = raw.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise bad(f"{field}.seed", f"required: an integer >= 0, got {seed!r}")
    options = _options(raw.get("options", {}), f"{field}.options", folder, bad)
    ckpts = raw.get("checkpoints")
    if not isinstance(ckpts, dict) or not ckpts:
        raise bad(f"{field}.checkpoints", "required: an object iteration -> file")
    out: dict[int, tuple[str, dict[str, Any]]] = {}
    for key, value in ckpts.items():
        where = f"{field}.checkpoints.{key}"
        try:
            it = int(key)
        except ValueError:
            it = -1
        if it < 0 or str(it) != str(key).strip():
            raise bad(where, "iteration keys must be integers >= 0")
        if isinstance(value, dict):
            own = dict(value)
            path = own.pop("path", None)
            out[it] = (_file(path, f"{where}.path", folder, bad),
                       {**options, **_options(own, where, folder, bad)})
        else:
            out[it] = (_file(value, where, folder, bad), dict(options))
    return Entry(raw["env"], raw["algo"], seed, raw["adapter"], dict(sorted(out.items())))


def _check_grid(entries: list[Entry], bad: Any) -> None:
    """The same iterations everywhere, each agent once, every env x algo with every seed."""
    first = sorted(entries[0].checkpoints)
    seen: set[tuple[str, str, int]] = set()
    for i, e in enumerate(entries):
        if sorted(e.checkpoints) != first:
            raise bad(f"agents[{i}].checkpoints", f"iterations {sorted(e.checkpoints)} differ "
                      f"from agents[0]'s {first}: every agent needs the same iteration keys")
        who = (e.env, e.algo, e.seed)
        if who in seen:
            raise bad(f"agents[{i}]", f"{e.env} {e.algo} seed {e.seed} is listed twice")
        seen.add(who)
    envs = dict.fromkeys(e.env for e in entries)
    algos = dict.fromkeys(e.algo for e in entries)
    seeds = sorted({e.seed for e in entries})
    missing = [f"{env} {algo} seed {s}" for env in envs for algo in algos for s in seeds
               if (env, algo, s) not in seen]
    if missing:
        raise bad("agents", f"seeds are the replication unit: every env x algo needs seeds "
                  f"{seeds}; missing {', '.join(missing)}")


def apply(scale: Scale, manifest: Manifest) -> Scale:
    """``scale`` with the manifest's agents: envs, algos, seeds and checkpoints from it,
    source "external" (sample counts stay the scale's); protocol "corrected"."""
    its = manifest.iterations
    return scale.override(name=f"{scale.name}-external", source="external",
                          envs=manifest.envs, algos=manifest.algos, seeds=manifest.seeds,
                          iterations=max(max(its), 1), checkpoint_list=its,
                          protocols=(DEFAULT_PROTOCOL,), capabilities=frozenset(), lr_grid=(),
                          external=manifest.to_json())


__all__ = ["DEFAULT_PROTOCOL", "LACKS", "Manifest", "ManifestError", "Unsupported", "apply",
           "read_manifest"]

"""The ``agents`` fixture: checkpoints of the scale's agents, from fixtures or trained once.

Scales with ``source="fixtures"`` load the committed fixture store
(:func:`pgclaims.agents.fixtures.load`); a missing or stale fixture fails the test with the
command that trains it. Scales with ``source="train"`` (smoke) train each agent once into a
cache shared by all xdist workers and later runs: ``$PGCLAIMS_CACHE/agents/<config key>/`` (default
``<rootdir>/.cache/pgclaims``). A file lock makes one worker train while the others wait; if
training raises, a ``FAILED`` file holding the traceback makes every other worker of the same
run fail at once with that message instead of training again (a later run retries).
Scales with ``source="external"`` (``--agents MANIFEST``) adapt the manifest's checkpoint
files (:mod:`pgclaims.suite.external`) with the loader the claims' ``conftest.py`` passes
(``pgclaims.adapters.adapt``: the suite itself never imports the adapters).
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from filelock import FileLock, Timeout

from pgclaims.suite import external, stopping
from pgclaims.suite.eta import unit_done
from pgclaims.suite.progress import progress, worker_id
from pgclaims.suite.scales import Scale

if TYPE_CHECKING:
    from pgclaims.agents.agent import Agent, TrainConfig

COMPLETE = "COMPLETE"
FAILED = "FAILED"
FIGURE_POINTS = 50
"""Points per ablation run in the report's figure (a 500-iteration run: one per 10)."""


def ablation_run_dir(run: Any) -> Path:
    """Where a scale that trains its own agents trains the ablation run ``run`` (any scale's
    run of the same config shares it)."""
    from pgclaims.measure.cache import cache_dir

    return cache_dir().parent / "ablations" / run.config().key()


def cache_root(rootdir: Path) -> Path:
    """``$PGCLAIMS_CACHE`` or ``<rootdir>/.cache/pgclaims``."""
    env = os.environ.get("PGCLAIMS_CACHE")
    return Path(env) if env else rootdir / ".cache" / "pgclaims"


class AgentStore:
    """``agents.get(env, algo, seed, iteration)`` for the active scale; every call returns a
    fresh :class:`pgclaims.agents.agent.Agent` (callers may mutate it).

    ``loader(adapter, path, env_id, protocol=..., **options)`` reads an external checkpoint
    (``pgclaims.adapters.adapt``); only ``source="external"`` scales need it."""

    def __init__(self, scale: Scale, cache: Path, run_id: str, protocol: str = "authors",
                 loader: Callable[..., Any] | None = None) -> None:
        self.scale = scale
        self.cache = cache
        self.run_id = run_id
        self.protocol = protocol
        self.loader = loader
        self._trained: dict[str, Path] = {}
        self._manifest: external.Manifest | None = None

    @property
    def manifest(self) -> external.Manifest:
        """The ``--agents`` manifest of an external scale."""
        if self._manifest is None:
            if self.scale.source != "external":
                raise ValueError(f"scale {self.scale.name} has no external agents")
            self._manifest = external.Manifest.from_json(self.scale.external)
        return self._manifest

    def with_loader(self, loader: Callable[..., Any]) -> AgentStore:
        """The same store, reading external checkpoints with ``loader``."""
        return AgentStore(self.scale, self.cache, self.run_id, self.protocol, loader)

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.scale.seeds

    def config(self, env: str, algo: str, seed: int) -> TrainConfig:
        from pgclaims.agents.agent import TrainConfig

        checkpoints = tuple(sorted({*self.scale.checkpoints, self.scale.iterations}))
        return TrainConfig.create(env, algo, seed, self.scale.iterations, checkpoints,
                                  protocol=self.protocol)

    def get(self, env: str, algo: str, seed: int, iteration: int) -> Agent:
        """The agent ``env``/``algo``/``seed`` at checkpoint ``iteration``."""
        if iteration not in self.scale.checkpoints and iteration != self.scale.iterations:
            raise ValueError(f"iteration {iteration} is not a checkpoint of scale "
                             f"{self.scale.name} ({self.scale.checkpoints}, or "
                             f"{self.scale.iterations})")
        if self.scale.source == "external":
            return self._adapt(env, algo, seed, iteration)
        if self.scale.source == "fixtures":
            from pgclaims.agents import fixtures

            try:
                return fixtures.load(env, algo, seed, iteration, self.scale.iterations,
                                     protocol=self.protocol)
            except fixtures.FixtureError as exc:
                pytest.fail(f"FixtureError: {exc}", pytrace=False)
        from pgclaims.agents import checkpoint
        from pgclaims.agents.train import ckpt_name

        return checkpoint.load(self._ensure_trained(env, algo, seed) / ckpt_name(iteration))

    def all(self, env: str, algo: str, iteration: int) -> list[Agent]:
        """One agent per seed of the scale, at ``iteration``."""
        return [self.get(env, algo, s, iteration) for s in self.seeds]

    def curve(self, env: str, algo: str, seed: int) -> list[dict[str, float]]:
        """The training curve (one row per iteration, see :func:`pgclaims.agents.agent.iterate`);
        external agents have none (:class:`~pgclaims.suite.external.Unsupported`)."""
        if self.scale.source == "external":
            raise external.Unsupported("training_run", f"{env} {algo} seed {seed}: no curve")
        if self.scale.source == "fixtures":
            from pgclaims.agents import fixtures

            try:
                return fixtures.curve(env, algo, seed, self.scale.iterations,
                                      protocol=self.protocol)
            except fixtures.FixtureError as exc:
                pytest.fail(f"FixtureError: {exc}", pytrace=False)
        path = self._ensure_trained(env, algo, seed) / "curve.json"
        return json.loads(path.read_text())

    def available_curves(self) -> dict[tuple[str, str, int], list[dict[str, float]]]:
        """Training curves of the scale's agents that exist already (never trains, never
        fails): for the report's Figure 8."""
        out: dict[tuple[str, str, int], list[dict[str, float]]] = {}
        if self.scale.source == "external":
            return out
        for env in self.scale.envs:
            for algo in self.scale.algos:
                for seed in self.seeds:
                    try:
                        if self.scale.source == "fixtures":
                            from pgclaims.agents import fixtures

                            out[(env, algo, seed)] = fixtures.curve(
                                env, algo, seed, self.scale.iterations, protocol=self.protocol)
                            continue
                        run_dir = self.cache / "agents" / self.config(env, algo, seed).key()
                        if (run_dir / COMPLETE).exists():
                            out[(env, algo, seed)] = json.loads(
                                (run_dir / "curve.json").read_text())
                    except Exception:  # a missing or unreadable agent: no curve to draw
                        continue
        return out

    def available_ablation_curves(self, points: int = FIGURE_POINTS) -> list[dict[str, Any]]:
        """Training curves of the scale's ablation runs that exist already (never trains,
        never fails), binned to about ``points`` points per run: for the report's figure of
        return vs pairs per baseline, step size and batch size."""
        from pgclaims.agents import ablations
        from pgclaims.suite.claims import get
        from pgclaims.suite.plan import USES, ablation_runs

        out: list[dict[str, Any]] = []
        if self.scale.source == "external":
            return out
        for claim_id, uses in USES.items():
            claim = get(claim_id)
            variants = [u.variants for u in uses if u.kind == "ablation"]
            if not variants or self.scale.lacks(claim.needs):
                continue
            for env in self.scale.envs:
                for algo in self.scale.algos:
                    for seed in self.scale.ablation_agents:
                        for run in ablation_runs(claim, self.scale, self.protocol, env, algo,
                                                 seed, variants[0]):
                            curve = self._ablation_curve(run)
                            if curve is None:
                                continue
                            width = max(run.steps, run.budget // points)
                            out.append({"env": env, "algo": algo, "seed": seed,
                                        "study": "baseline" if variants[0] == "baseline"
                                        else "regime", "baseline": run.baseline,
                                        "multiplier": run.multiplier, "steps": run.steps,
                                        **ablations.binned(curve, width)})
        return out

    def _ablation_curve(self, run: Any) -> dict[str, list[float]] | None:
        from pgclaims.agents import ablations

        try:
            if self.scale.source == "fixtures":
                return ablations.curve(run)
            path = ablation_run_dir(run) / "curve.json"
            rows = json.loads(path.read_text()) if path.exists() else []
            if len(rows) < run.iterations:
                return None
            return ablations.compact_curve(rows, run.steps)
        except Exception:  # a missing or unreadable run: no curve to draw
            return None

    # -- external agents ------------------------------------------------------------------

    def _adapt(self, env: str, algo: str, seed: int, iteration: int) -> Agent:
        entry = self.manifest.entry(env, algo, seed)
        path, options = entry.checkpoints[iteration]
        if self.loader is None:
            pytest.fail("external agents need a loader: the claims' conftest.py passes "
                        "pgclaims.adapters.adapt (AgentStore.with_loader)", pytrace=False)
        try:
            agent = self.loader(entry.adapter, path, env, protocol=self.protocol, **options)
        except Exception as exc:
            pytest.fail(f"{type(exc).__name__}: {self.manifest.path}: {env} {algo} seed {seed} "
                        f"iteration {iteration} ({entry.adapter}: {path}): {exc}",
                        pytrace=False)
        if agent.config.algo != algo:
            pytest.fail(f"{self.manifest.path}: {env} seed {seed} iteration {iteration}: the "
                        f"manifest says {algo}, {path} holds {agent.config.algo}", pytrace=False)
        return agent

    # -- training for source="train" ------------------------------------------------------

    def _ensure_trained(self, env: str, algo: str, seed: int) -> Path:
        config = self.config(env, algo, seed)
        key = config.key()
        if key in self._trained:
            return self._trained[key]
        run_dir = self.cache / "agents" / key
        label = f"{self.protocol} {env} {algo} seed {seed} ({config.iterations} iterations)"
        if not (run_dir / COMPLETE).exists():
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(run_dir) + ".lock")
            try:
                lock.acquire(timeout=0)
            except Timeout:
                progress(f"waiting for {label}: another worker is training it")
                lock.acquire()
            try:
                self._train_locked(config, run_dir, label)
            finally:
                lock.release()
        from pgclaims.suite.plan import training_ident

        unit_done(training_ident(self.protocol, env, algo, seed))
        self._trained[key] = run_dir
        return run_dir

    def _train_locked(self, config: TrainConfig, run_dir: Path, label: str) -> None:
        if (run_dir / COMPLETE).exists():
            return
        failed = run_dir / FAILED
        if failed.exists():
            text = failed.read_text()
            first, _, rest = text.partition("\n")
            if first == f"run {self.run_id}":
                last = rest.strip().splitlines()[-1] if rest.strip() else "unknown error"
                pytest.fail(f"training {label} failed earlier in this run: {last} "
                            f"(traceback: {failed}; a new run retries)", pytrace=False)
            failed.unlink()  # left by an earlier run: try again
        stopping.check(f"training {label}")  # a spent --time-budget starts no training
        from pgclaims.agents.train import train

        progress(f"training {label} into {run_dir}")
        try:
            agent = train(config, run_dir, progress=False)
        except Exception as exc:
            run_dir.mkdir(parents=True, exist_ok=True)
            failed.write_text(f"run {self.run_id}\nworker {worker_id()}\n"
                              f"{traceback.format_exc()}")
            raise RuntimeError(f"training {label} failed: {exc} (traceback: {failed})") from exc
        last = agent.curve[-1]["mean_return"] if agent.curve else float("nan")
        (run_dir / COMPLETE).write_text(json.dumps(
            {"run_id": self.run_id, "worker": worker_id(), "final_mean_return": last}) + "\n")
        progress(f"trained {label}: last mean return {last:.1f}")


def describe_source(scale: Scale, cache: Path) -> str:
    if scale.source == "external":
        m = external.Manifest.from_json(scale.external)
        return f"external agents from {m.path} ({m.source})"
    if scale.source == "fixtures":
        from pgclaims.agents.fixtures import root

        return f"fixtures from {root()}"
    return f"agents trained into {cache / 'agents'}"


"""Glue between the scale, the agents and the measurements, for the claims tests.

``study`` answers "the measurement M of agent (env, algo, seed) at iteration t" through the
on-disk cache of :mod:`pgclaims.measure`, so tests that share an agent share its samples, and
two xdist workers never compute the same measurement twice.

Agents trained elsewhere (``--agents MANIFEST``) are read by :func:`pgclaims.adapters.adapt`;
a measurement needing what an adapted checkpoint lacks (the value claims' training batch, the
policy optimizer behind the step claims, a training run) raises
:class:`pgclaims.suite.external.Unsupported`, which the plugin reports as INCONCLUSIVE with
that reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pytest

from pgclaims import measure
from pgclaims.suite.external import Unsupported
from pgclaims.suite.verdicts import Inconclusive

try:
    from pgclaims.suite.progress import progress as _progress
except ImportError:  # pragma: no cover - the plugin provides it
    def _progress(msg: str) -> None:
        import sys

        print(msg, file=sys.stderr)


T = TypeVar("T")


class Study:
    def __init__(self, scale: Any, agents: Any, seed: int = 0) -> None:
        self.scale = scale
        self.agents = agents
        self.seed = seed
        """The measurement seed (``--measure-seed``)."""
        self.cfg = self.cfg_for(scale.envs[0])

    def cfg_for(self, env: str) -> measure.MeasureConfig:
        """The scale's sample counts, the true-gradient N resolved for ``env``."""
        fields = dict(self.scale.measure_fields(env))
        return measure.MeasureConfig(**{k: tuple(v) if isinstance(v, list) else v
                                        for k, v in fields.items()})

    @property
    def late(self) -> tuple[int, ...]:
        return tuple(self.scale.late)

    @property
    def first(self) -> int:
        return int(self.scale.checkpoints[0])

    @property
    def last(self) -> int:
        return int(self.scale.checkpoints[-1])

    def agent(self, env: str, algo: str, seed: int, it: int) -> Any:
        return self.agents.get(env, algo, seed, it)

    def _say(self, what: str, env: str, algo: str, seed: int, it: int) -> Callable[[str], None]:
        return lambda msg: _progress(f"{what} {env} {algo} seed {seed} it {it}: {msg}")

    def _done(self, kind: str, env: str, algo: str, seed: int, it: int, result: T) -> T:
        """``result``, after telling the run's overall progress line that this unit is done."""
        from pgclaims.suite.eta import unit_done
        from pgclaims.suite.plan import measure_ident

        unit_done(measure_ident(kind, self.agents.protocol, env, algo, seed, it))
        return result

    def gradients(self, env: str, algo: str, seed: int, it: int) -> measure.GradientStudy:
        return self._done("gradients", env, algo, seed, it, measure.gradients(
            self.agent(env, algo, seed, it), self.cfg_for(env), self.seed,
            progress=self._say("gradients", env, algo, seed, it)))

    @property
    def external(self) -> bool:
        return self.scale.source == "external"

    def value(self, env: str, algo: str, seed: int, it: int) -> measure.ValueStudy:
        agent = self.agent(env, algo, seed, it)
        study = self._done("value", env, algo, seed, it, measure.value(agent, self.cfg_for(env),
                                                                   self.seed))
        if self.external and agent.last_fit is None:
            return _WithoutTrainPairs(study, f"{env} {algo} seed {seed} it {it}")  # type: ignore
        return study

    def _stepping(self, env: str, algo: str, seed: int, it: int) -> Any:
        """The agent, if its algorithm's step can be replayed (PPO needs its optimizer)."""
        agent = self.agent(env, algo, seed, it)
        if agent.config.algo == "ppo" and agent.policy_opt is None:
            raise Unsupported("optimizer_state", f"{env} {algo} seed {seed} it {it}")
        return agent

    def steps(self, env: str, algo: str, seed: int, it: int) -> measure.StepStudy:
        return self._done("steps", env, algo, seed, it, measure.steps(
            self._stepping(env, algo, seed, it), self.cfg_for(env), self.seed))

    def landscape(self, env: str, algo: str, seed: int, it: int) -> measure.Landscape:
        return self._done("landscape", env, algo, seed, it, measure.landscapes(
            self._stepping(env, algo, seed, it), self.cfg_for(env), self.seed,
            progress=self._say("landscape", env, algo, seed, it)))

    def ablation_runs(self, claim_id: str, env: str, algo: str, variants: str) -> list[Any]:
        """Per ablation seed of the scale (``Scale.ablation_agents``), the training runs an
        ablation claim reads (:func:`pgclaims.suite.plan.ablation_runs`: the plan prices
        exactly these)."""
        from pgclaims.suite.claims import get
        from pgclaims.suite.plan import ablation_runs

        if self.external:
            raise Unsupported("training_run", f"{env} {algo}: no ablation runs")
        return [ablation_runs(get(claim_id), self.scale, self.agents.protocol, env, algo, seed,
                              variants) for seed in self.scale.ablation_agents]

    def final_returns(self, runs: list[Any]) -> dict[Any, float]:
        """Each run's final return (:func:`pgclaims.agents.ablations.final_return`): from the
        ablation store at fixture scales (a missing run makes the claim INCONCLUSIVE, naming
        the command that trains every missing run), trained once into the cache otherwise."""
        from pgclaims.agents import ablations

        curves: dict[Any, dict[str, list[float]]] = {}
        missing = []
        for run in runs:
            try:
                curves[run] = self.ablation_curve(run)
            except ablations.AblationMissing:
                missing.append(run)
        if missing:
            raise Inconclusive(f"ablation fixtures missing: {len(missing)} of {len(runs)} "
                               f"runs; run: {ablations.command_for(missing)}")
        out = {}
        for run, curve in curves.items():
            final = ablations.final_return(curve, ablations.final_window(run.env_id, run.algo))
            if final is None:
                raise Inconclusive(f"{run.env_id} {run.algo} seed {run.seed}, {run.label}: no "
                                   "episode completed in the run's final window")
            out[run] = final
        return out

    def ablation_curve(self, run: Any) -> dict[str, list[float]]:
        """The compact training curve of ``run`` (:func:`pgclaims.agents.ablations.curve`)."""
        from pgclaims.agents import ablations

        if self.scale.source == "fixtures":
            from pgclaims.agents.fixtures import FixtureError

            try:
                curve = ablations.curve(run)
            except FixtureError as exc:  # a committed fixture, missing or stale
                pytest.fail(f"FixtureError: {exc}", pytrace=False)
        else:
            curve = self._train_ablation(run)
        from pgclaims.suite.eta import unit_done
        from pgclaims.suite.plan import ablation_ident

        unit_done(ablation_ident(run.config().key()))
        return curve

    def _train_ablation(self, run: Any) -> dict[str, list[float]]:
        """Train ``run`` once into the cache, under a lock; a completed run is just reloaded."""
        from filelock import FileLock

        from pgclaims.agents.ablations import compact_curve
        from pgclaims.agents.train import train
        from pgclaims.suite.agents import ablation_run_dir
        from pgclaims.suite.stopping import check

        cfg = run.config()
        run_dir = ablation_run_dir(run)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        label = f"ablation {run.env_id} {run.algo} seed {run.seed}, {run.label}"
        with FileLock(str(run_dir) + ".lock"):
            curve = run_dir / "curve.json"
            if not (curve.exists() and len(json.loads(curve.read_text())) >= cfg.iterations):
                check(label)  # a run not trained to the end: only within the time budget
            _progress(f"{label}: training or loading")
            agent = train(cfg, run_dir, progress=False)
        return compact_curve(agent.curve, run.steps)

    @property
    def protocol(self) -> Any:
        from pgclaims.agents.protocol import get_protocol

        return get_protocol(self.agents.protocol)

    def true_cos(self, g: measure.GradientStudy, n: int | None = None) -> np.ndarray:
        """Cosines with the true gradient as the protocol defines them: the paper's raw cosine,
        or (corrected) the one whose |g_true| is freed of the true gradient's own sampling
        noise, which otherwise pulls every cosine toward 0 (defined for every study: its
        squared norm is shrunk by its own standard error, :mod:`pgclaims.measure.cosines`).
        All N, or the row at ``n``."""
        if self.protocol.true_cosine == "debiased":
            cos = g.true_cos_debiased
            if cos is None or "true_grad_sq_var" not in g.meta:
                raise ValueError("this cached gradient study predates the shrunk noise-corrected "
                                 "cosine; clear .cache/pgclaims/measure and re-run")
            if np.isnan(cos).any():  # a pool of fewer than 2 independent groups
                raise Inconclusive(
                    f"noise-corrected cosine undefined for {int(np.isnan(cos).sum())} of "
                    f"{cos.size} estimates of one agent's study: its "
                    f"{g.meta.get('true_grad_pairs', '?')}-pair true gradient has fewer than 2 "
                    "independent groups of chunks, so neither |g_true|^2 nor its noise can be "
                    "estimated (more repeats or a larger true_grad_n decides)",
                    code="statistic_undefined",
                    detail={"what": "noise-corrected cosine with the true gradient"})
        else:
            cos = g.true_cos
        return cos if n is None else cos[g.at(n)]

    def per_agent(self, fn: Callable[[int], Any]) -> list[Any]:
        """One unit per agent (training seed): the replication unit of CLAIMS.md. In seed
        order; measured first where no other worker is measuring the same agent."""
        from pgclaims.measure.cache import each_without_waiting

        return each_without_waiting(self.scale.seeds, fn)

    def over(self, its: tuple[int, ...], fn: Callable[[int], np.ndarray]) -> np.ndarray:
        """Repeats of one agent pooled over checkpoints (e.g. the late ones)."""
        return np.concatenate([np.ravel(fn(it)) for it in its])


class _WithoutTrainPairs:
    """A value study of an agent without its last training batch: the held-out errors as
    they are, the train-pair ones :class:`Unsupported` (not NaN) when a claim reads them."""

    def __init__(self, study: measure.ValueStudy, who: str) -> None:
        self._study = study
        self._who = who

    def __getattr__(self, name: str) -> Any:
        if name.startswith("train_"):
            raise Unsupported("training_batch", self._who)
        return getattr(self._study, name)


def pytest_configure(config: pytest.Config) -> None:
    """An ``--agents`` manifest naming an adapter or an environment that does not exist is a
    usage error, before any test runs."""
    from pgclaims.suite.state import STATE

    state = config.stash.get(STATE, None)
    if state is None or state.scale.source != "external":
        return
    from pgclaims.adapters import AdapterError, load_adapter
    from pgclaims.adapters.envs import check_env_id
    from pgclaims.suite.external import Manifest

    manifest = Manifest.from_json(state.scale.external)
    checked: set[str] = set()
    for i, entry in enumerate(manifest.agents):
        try:
            load_adapter(entry.adapter)
        except AdapterError as exc:
            raise pytest.UsageError(f"--agents: {manifest.path}: field "
                                    f"'agents[{i}].adapter': {exc}") from None
        if entry.env not in checked:
            try:
                check_env_id(entry.env)
            except ValueError as exc:  # an unknown id, or an env the suite cannot measure
                raise pytest.UsageError(f"--agents: {manifest.path}: field "
                                        f"'agents[{i}].env': {exc}") from None
            checked.add(entry.env)


@pytest.fixture(scope="session")
def agents(agents: Any) -> Any:
    """The plugin's store, reading external (``--agents``) checkpoints with the adapters."""
    if agents.scale.source != "external":
        return agents
    from pgclaims.adapters import adapt

    return agents.with_loader(adapt)


@pytest.fixture(scope="session")
def study(scale: Any, agents: Any, request: pytest.FixtureRequest) -> Study:
    from pgclaims.suite.state import state_of

    return Study(scale, agents, state_of(request.config).measure_seed)


def mean_of_means(units: list[np.ndarray]) -> float:
    """Mean over agents of each agent's mean over repeats."""
    return float(np.mean([np.mean(u) for u in units]))


def diff_of_means(a: str, b: str) -> Callable[[list[dict[str, np.ndarray]]], float]:
    """Mean over agents of (mean of quantity a - mean of quantity b)."""
    return lambda units: float(np.mean([np.mean(u[a]) - np.mean(u[b]) for u in units]))


def undefined_agents(units: list[Any]) -> list[int]:
    """Indices of the agents with a non-finite value (an undefined statistic, never a number)."""
    def finite(u: Any) -> bool:
        values = u.values() if isinstance(u, dict) else (u,)
        return all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in values)

    return [i for i, u in enumerate(units) if not finite(u)]


def require_defined(verdict: Any, units: list[Any], seeds: tuple[int, ...], what: str) -> None:
    """INCONCLUSIVE ("statistic_undefined") when ``what`` is undefined for some agent: an agent
    cannot be dropped without biasing the mean over agents, and NaN is never read as 0."""
    bad = undefined_agents(units)
    if bad:
        who = [int(seeds[i]) for i in bad]
        verdict.unavailable(
            f"{what} is undefined for {len(bad)} of {len(units)} agents (seeds "
            f"{', '.join(map(str, who))})", code="statistic_undefined",
            detail={"what": what, "seeds": who}, n_agents=len(units))

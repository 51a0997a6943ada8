"""Seconds per training iteration (2048 state-action pairs, Table 1 config), against SB3.

One iteration = collect 2048 pairs, GAE, the policy update, the value fit. The baseline is
Stable-Baselines3's PPO with the same networks ([64, 64] tanh, separate policy and value nets)
and the same update schedule (n_steps=2048, batch_size=64, n_epochs=10), timed in the same
rounds, so the ratio SB3/ours survives a noisy shared machine better than seconds do. SB3 trains
policy and value with one joint loss (320 Adam steps per iteration); our PPO takes 320 policy
and 320 value steps, and TRPO one natural step plus 320 value steps.

Each round times, one after the other on one core:

- ``sb3``: one SB3 PPO iteration;
- ``ours``: one iteration of a lone PPO run as ``pgclaims train`` runs it (the direct MuJoCo
  collector, :func:`pgclaims.agents.agent.training_env`);
- ``lockstep``: one iteration of :data:`~pgclaims.agents.fixtures.LOCKSTEP` PPO runs in lockstep,
  as ``pgclaims fixtures train-set`` runs them (reported per run-iteration: the round / runs);
- ``previous``: one iteration on the gymnasium collector with ``torch.optim``'s own step, what
  training ran before the direct collector (the same bits, tests/test_collector.py);
- ``trpo``: one iteration of a lone TRPO run;
- ``physics``: raw MuJoCo for the pairs the lone PPO run and the lockstep runs collected this
  round: their actions replayed by ``mj_step(nstep=frame_skip)`` alone on plain ``MjData``,
  every episode from the state the collector started it from (as benchmarks/bench_sampler.py).
  Physics seconds over collecting seconds is how close sampling is to the physics limit.

Medians over the rounds, wall time and the CPU time of this process (on a shared machine the
latter still measures the code rather than the scheduler)::

    pip install -e '.[bench]'    # Stable-Baselines3; without it the SB3 ratios are skipped
    pytest benchmarks/bench_training.py -p no:cacheprovider -s    # never with -n
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np
import pytest
import torch

from pgclaims.agents import minibatch as minibatch_mod
from pgclaims.agents import networks as networks_mod
from pgclaims.agents.agent import (
    Agent,
    TrainConfig,
    iterate,
    learn,
    make_agent,
    sample,
    training_env,
    training_stream,
)
from pgclaims.agents.collector import Collector
from pgclaims.agents.envs import make_env
from pgclaims.agents.fixtures import LOCKSTEP
from pgclaims.agents.rollout import Batch
from pgclaims.agents.sims import Task, task_for

ENVS = ("Hopper-v5", "Humanoid-v5")
PAIRS = 2048
"""Table 1 "Timesteps per iteration"."""
ROUNDS = 3
WARMUP = 1
"""Rounds timed, and rounds run first untimed (first-call costs, the first short episodes)."""

try:
    import stable_baselines3
except ImportError:
    stable_baselines3 = None
NO_SB3 = "Stable-Baselines3 not installed (pip install -e '.[bench]'); no baseline to compare"


def sb3_iteration(env_id: str) -> Callable[[], None]:
    """One SB3 PPO iteration per call (one 2048-pair rollout, then 10 epochs of minibatch 64)."""
    from stable_baselines3 import PPO

    model = PPO(
        "MlpPolicy", env_id, n_steps=PAIRS, batch_size=64, n_epochs=10, seed=0, device="cpu",
        verbose=0,
        policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]},
                       "activation_fn": torch.nn.Tanh},
    )
    return lambda: model.learn(PAIRS, reset_num_timesteps=False)


Recorded = tuple[dict[str, Any], Batch]
"""The numpy rng state an iteration started from, and the batch it collected."""


def start_states(task: Task, rng_state: dict[str, Any], episodes: int
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (qpos, qvel) each episode of a batch started from: the reset stream of
    :mod:`pgclaims.agents.collector` (``default_rng`` of the stream's first
    ``integers(2**31 - 1)``, then ``uniform(nq)`` and ``uniform(nv)`` per reset)."""
    g = np.random.Generator(np.random.PCG64())
    g.bit_generator.state = rng_state
    reset_rng = np.random.default_rng(int(g.integers(2**31 - 1)))
    s = task.noise_scale
    return [(task.init_qpos + reset_rng.uniform(low=-s, high=s, size=task.nq),
             task.init_qvel + reset_rng.uniform(low=-s, high=s, size=task.nv))
            for _ in range(episodes)]


def replay(task: Task, recorded: list[Recorded]) -> float:
    """Seconds of raw MuJoCo for the recorded batches (actions and episode starts)."""
    m, fs = task.model, task.frame_skip
    d = mujoco.MjData(m)
    work = []
    for state, batch in recorded:
        ends = batch.ends
        work.append((batch.actions.astype(np.float64), ends,
                     start_states(task, state, 1 + int(ends[:-1].sum()))))
    t0 = time.perf_counter()
    for actions, ends, starts in work:
        mujoco.mj_resetData(m, d)
        d.qpos[:], d.qvel[:] = starts[0]
        mujoco.mj_forward(m, d)
        episode = 0
        for a, end in zip(actions, ends, strict=True):
            d.ctrl[:] = a
            mujoco.mj_step(m, d, nstep=fs)
            if end and episode + 1 < len(starts):
                episode += 1
                mujoco.mj_resetData(m, d)
                d.qpos[:], d.qvel[:] = starts[episode]
                mujoco.mj_forward(m, d)
    return time.perf_counter() - t0


class Runs:
    """The timed training runs of one env and their record of this round's batches."""

    def __init__(self, env_id: str) -> None:
        def agent(algo: str, seed: int) -> Agent:
            return make_agent(TrainConfig.create(env_id, algo, seed, iterations=100))

        self.ours, self.trpo, self.previous = agent("ppo", 0), agent("trpo", 0), agent("ppo", 0)
        self.env = training_env(env_id)
        assert isinstance(self.env, Collector)
        self.gym = make_env(env_id)
        self.team = [agent("ppo", s) for s in range(LOCKSTEP)]
        self.collector = Collector(env_id, nsim=LOCKSTEP, forward="rowwise")
        self.sample_s: dict[str, float] = {}
        self.recorded: dict[str, list[Recorded]] = {}

    def lone(self) -> None:
        state = self.ours.rng.bit_generator.state
        t0 = time.perf_counter()
        batch = sample(self.ours, self.env)
        self.sample_s["ours"] = time.perf_counter() - t0
        learn(self.ours, batch, self.sample_s["ours"], t0)
        self.recorded["ours"] = [(state, batch)]

    def lockstep(self) -> None:
        states = [a.rng.bit_generator.state for a in self.team]
        t0 = time.perf_counter()
        batches = self.collector.collect([training_stream(a) for a in self.team])
        self.sample_s["lockstep"] = time.perf_counter() - t0
        for a, b in zip(self.team, batches, strict=True):
            learn(a, b, self.sample_s["lockstep"] / LOCKSTEP, t0)
        self.recorded["lockstep"] = list(zip(states, batches, strict=True))

    def before(self) -> None:
        """An iteration as training ran before the direct collector: gymnasium's env, and
        ``torch.optim``'s step and zero_grad, ``loss.backward()`` and module calls (the same
        bits, slower)."""
        step = minibatch_mod.AdamStep
        saved = (step.step, step.zero_grad, minibatch_mod._ENGINE, networks_mod.run)
        step.step = lambda self: self.optimizer.step()  # type: ignore[method-assign]
        step.zero_grad = (  # type: ignore[method-assign]
            lambda self: self.optimizer.zero_grad(set_to_none=True))
        minibatch_mod._ENGINE = None  # loss.backward()
        networks_mod.run = lambda net, x: net(x)
        try:
            iterate(self.previous, self.gym)
        finally:
            step.step, step.zero_grad, minibatch_mod._ENGINE, networks_mod.run = saved


def timed(fn: Callable[[], Any], wall: dict[str, list[float]], cpu: dict[str, list[float]],
          name: str) -> None:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    wall.setdefault(name, []).append(time.perf_counter() - w0)
    cpu.setdefault(name, []).append(time.process_time() - c0)


@pytest.mark.parametrize("env_id", ENVS)
def test_training_iteration(benchmark: Any, env_id: str,
                            ratio_table: list[tuple[str, str]]) -> None:
    runs = Runs(env_id)
    sb3 = sb3_iteration(env_id) if stable_baselines3 is not None else None
    task = task_for(env_id)
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    phys: dict[str, list[float]] = {}
    warm = [WARMUP]

    def one_round() -> None:
        steps = {"ours": runs.lone, "lockstep": runs.lockstep, "previous": runs.before,
                 "trpo": lambda: iterate(runs.trpo, runs.env)}
        if sb3 is not None:
            steps["sb3"] = sb3
        w, c = ({}, {}) if warm[0] else (wall, cpu)
        for name, fn in steps.items():
            timed(fn, w, c, name)
        if not warm[0]:
            for name in ("ours", "lockstep"):
                raw = replay(task, runs.recorded[name])
                phys.setdefault(name, []).append(raw / runs.sample_s[name])
        warm[0] = max(0, warm[0] - 1)

    for _ in range(WARMUP):
        one_round()
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    for m in (med, cmed):
        m["lockstep"] /= LOCKSTEP  # per run-iteration
    physics = {k: round(statistics.median(v), 3) for k, v in phys.items()}
    info: dict[str, Any] = {
        "seconds_per_iteration": {k: round(v, 3) for k, v in med.items()},
        "cpu_seconds_per_iteration": {k: round(v, 3) for k, v in cmed.items()},
        "physics_over_sampling": physics, "lockstep_runs": LOCKSTEP,
        "ours_over_previous": round(med["previous"] / med["ours"], 2),
        "lockstep_over_previous": round(med["previous"] / med["lockstep"], 2),
        "cpu_lockstep_over_previous": round(cmed["previous"] / cmed["lockstep"], 2)}
    if sb3 is not None:
        info.update(
            sb3_over_ours=round(med["sb3"] / med["ours"], 2),
            sb3_over_lockstep=round(med["sb3"] / med["lockstep"], 2),
            sb3_over_previous=round(med["sb3"] / med["previous"], 2),
            cpu_sb3_over_ours=round(cmed["sb3"] / cmed["ours"], 2),
            cpu_sb3_over_lockstep=round(cmed["sb3"] / cmed["lockstep"], 2),
            sb3_version=stable_baselines3.__version__)
    benchmark.extra_info.update(env_id=env_id, **info)
    base = (f"SB3 PPO / ours: lone {info['sb3_over_ours']:.2f}x, lockstep "
            f"{info['sb3_over_lockstep']:.2f}x, before {info['sb3_over_previous']:.2f}x"
            if sb3 is not None else NO_SB3)
    ratio_table.append((f"{env_id} ppo", f"{base}; s/iteration {info['seconds_per_iteration']}; "
                        f"physics/sampling {physics}"))
    print(f"\n{env_id}: {info}")

"""Seconds per training iteration (2048 state-action pairs, Table 1 config), against SB3.

One iteration = collect 2048 pairs, GAE, the policy update, the value fit. The baseline is
Stable-Baselines3's PPO with the same networks ([64, 64] tanh, separate policy and value nets)
and the same update schedule (n_steps=2048, batch_size=64, n_epochs=10), timed the same way in
the same run, so the ratio ours/SB3 survives a noisy shared machine better than seconds do.
SB3 trains policy and value with one joint loss (320 Adam steps per iteration); our PPO takes
320 policy and 320 value steps, and TRPO one natural step plus 320 value steps.

    pip install -e '.[bench]'    # Stable-Baselines3; without it the ratios are skipped
    pytest benchmarks            # never with -n
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from pgclaims.agents.agent import TrainConfig, iterate, make_agent
from pgclaims.agents.envs import make_env

ENVS = ("Hopper-v5", "Humanoid-v5")
PAIRS = 2048
"""Table 1 "Timesteps per iteration"."""
TIMING = {"rounds": 3, "iterations": 1, "warmup_rounds": 1}
"""Each round is one whole training iteration; the warm-up round pays for first-call costs."""

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


@pytest.fixture(scope="session")
def sb3_seconds() -> Callable[[str], float | None]:
    """Median seconds per SB3 iteration on ``env_id`` in this run (None without SB3).

    :func:`test_sb3_ppo_iteration` fills the cache; a pgclaims benchmark selected without it
    (``-k``) times SB3 here the same way (perf_counter, same rounds)."""
    cache: dict[str, float] = {}

    def get(env_id: str) -> float | None:
        if stable_baselines3 is None:
            return None
        if env_id not in cache:
            step = sb3_iteration(env_id)
            for _ in range(TIMING["warmup_rounds"]):
                step()
            times = []
            for _ in range(TIMING["rounds"]):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
            cache[env_id] = sorted(times)[len(times) // 2]
        return cache[env_id]

    get.cache = cache  # type: ignore[attr-defined]
    return get


@pytest.mark.parametrize("env_id", ENVS)
def test_sb3_ppo_iteration(benchmark: Any, env_id: str,
                           sb3_seconds: Callable[[str], float | None]) -> None:
    if stable_baselines3 is None:
        pytest.skip(NO_SB3)
    benchmark.group = f"{env_id}: one training iteration of {PAIRS} pairs"
    benchmark.extra_info.update(env_id=env_id, algo="sb3-ppo",
                                sb3_version=stable_baselines3.__version__)
    benchmark.pedantic(sb3_iteration(env_id), **TIMING)
    sb3_seconds.cache[env_id] = benchmark.stats.stats.median  # type: ignore[attr-defined]


@pytest.mark.parametrize("env_id", ENVS)
@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_pgclaims_iteration(benchmark: Any, algo: str, env_id: str,
                            sb3_seconds: Callable[[str], float | None],
                            ratio_table: list[tuple[str, str]]) -> None:
    agent = make_agent(TrainConfig.create(env_id, algo, 0, iterations=100))
    assert agent.hyper.steps_per_iteration == PAIRS
    env = make_env(env_id)
    benchmark.group = f"{env_id}: one training iteration of {PAIRS} pairs"
    benchmark.extra_info.update(env_id=env_id, algo=algo)
    try:
        benchmark.pedantic(iterate, args=(agent, env), **TIMING)
    finally:
        env.close()
    ours = benchmark.stats.stats.median
    base = sb3_seconds(env_id)
    name = f"{env_id} {algo}"
    if base is None:
        benchmark.extra_info["ratio_to_sb3_ppo"] = None
        benchmark.extra_info["ratio_note"] = NO_SB3
        ratio_table.append((name, f"{ours:.2f} s/iteration; {NO_SB3}"))
        return
    ratio = ours / base
    benchmark.extra_info.update(seconds_median=ours, sb3_ppo_seconds_median=base,
                                ratio_to_sb3_ppo=ratio)
    ratio_table.append((name, f"ours/SB3 = {ratio:.2f}  ({ours:.2f} s vs {base:.2f} s median)"))

"""Training runs: determinism, resuming after an interruption, run directories, fixture store."""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pgclaims.agents import agent as agent_mod
from pgclaims.agents import checkpoint, fixtures
from pgclaims.agents import train as train_mod
from pgclaims.agents.agent import TRAINING_VERSION, Agent, TrainConfig
from pgclaims.agents.checkpoint import CheckpointError
from pgclaims.agents.digests import DigestError
from pgclaims.agents.fixtures import FixtureError
from pgclaims.agents.train import RunDirError, train
from pgclaims.cli import _config, build_parser

TIMINGS = ("sample_s", "total_s")


def params(agent: Agent) -> dict[str, torch.Tensor]:
    return {**{f"policy.{k}": v for k, v in agent.policy.state_dict().items()},
            **{f"value.{k}": v for k, v in agent.value.state_dict().items()}}


def same_params(a: Agent, b: Agent) -> bool:
    pa, pb = params(a), params(b)
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def untimed(curve: list[dict]) -> str:
    return json.dumps([{k: v for k, v in r.items() if k not in TIMINGS} for r in curve])


def snapshot(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and modification time (ns)."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run_dir.iterdir())}


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def checkpoint_contents(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = checkpoint.read(path)
    meta["curve"] = untimed(meta["curve"])
    return tensors, meta


# ---------------------------------------------------------------------------------------------
# Determinism


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_same_seed_same_bits_other_seed_other_bits(
    algo: str, tiny_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    a = train(tiny_config(algo, seed=0), tmp_path / "a", progress=False)
    b = train(tiny_config(algo, seed=0), tmp_path / "b", progress=False)
    c = train(tiny_config(algo, seed=1), tmp_path / "c", progress=False)
    assert same_params(a, b)
    assert np.array_equal(a.obs_norm.stats.mean, b.obs_norm.stats.mean)
    assert untimed(a.curve) == untimed(b.curve)
    pa, pc = params(a), params(c)
    assert not any(torch.equal(pa[k], pc[k]) for k in pa if "weight" in k)


# ---------------------------------------------------------------------------------------------
# Resuming


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_resumed_run_is_identical_to_an_uninterrupted_one(
    algo: str, tiny_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    config = tiny_config(algo, iterations=3, checkpoints=(0, 1, 3))
    whole = train(config, tmp_path / "whole", save_every=1, progress=False)

    cut = tmp_path / "cut"
    stopped = train(config, cut, save_every=1, stop_after=1, progress=False)
    assert stopped.iteration == 1
    assert sorted(p.name for p in cut.iterdir()) == [
        "ckpt_0000.safetensors", "config.json", "curve.json", "latest.safetensors",
        "sha256.json"]
    resumed = train(config, cut, save_every=1, progress=False)  # nothing deleted in between

    assert resumed.iteration == whole.iteration == 3
    assert same_params(whole, resumed)
    assert untimed(whole.curve) == untimed(resumed.curve)
    assert untimed(json.loads((cut / "curve.json").read_text())) == untimed(whole.curve)
    names = sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert names == sorted(p.name for p in cut.iterdir())
    for name in names:
        if name.endswith(".safetensors"):
            (t1, m1), (t2, m2) = (checkpoint_contents(d / name) for d in (tmp_path / "whole", cut))
            assert t1.keys() == t2.keys() and all(torch.equal(t1[k], t2[k]) for k in t1), name
            assert json.dumps(m1, sort_keys=True) == json.dumps(m2, sort_keys=True), name


def test_a_crash_between_saves_loses_only_unsaved_iterations(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed during iteration 3 with save_every=2: the resume redoes iterations 2 and 3."""
    config = tiny_config("trpo", iterations=4, checkpoints=(0, 4))
    whole = train(config, tmp_path / "whole", save_every=2, progress=False)

    real_iterate = train_mod.iterate
    calls = []

    def killed_in_third(agent: Agent, env: object) -> dict:
        calls.append(agent.iteration)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_iterate(agent, env)

    monkeypatch.setattr(train_mod, "iterate", killed_in_third)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", save_every=2, progress=False)
    assert checkpoint.load(tmp_path / "cut" / "latest.safetensors").iteration == 2
    monkeypatch.setattr(train_mod, "iterate", real_iterate)
    resumed = train(config, tmp_path / "cut", save_every=2, progress=False)
    assert same_params(whole, resumed)
    assert untimed(whole.curve) == untimed(resumed.curve)


def test_a_finished_run_resumes_to_itself(trained_runs: Callable, tmp_path: Path) -> None:
    agent, src = trained_runs("ppo")
    again = train(agent.config, copy_run(src, tmp_path / "run"), progress=False)
    assert again.iteration == agent.config.iterations
    assert same_params(agent, again)


# ---------------------------------------------------------------------------------------------
# Bad input leaves existing files intact


def test_a_run_directory_of_another_config_is_refused_untouched(
    tiny_config: Callable[..., TrainConfig], trained_runs: Callable, tmp_path: Path
) -> None:
    run_dir = copy_run(trained_runs("ppo")[1], tmp_path / "run")
    before = snapshot(run_dir)
    with pytest.raises(RunDirError, match=re.escape(str(run_dir / "config.json"))):
        train(tiny_config("ppo", seed=1), run_dir, progress=False)
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("damage", ["config.json", "latest.safetensors"])
def test_a_damaged_run_directory_is_refused_untouched(
    damage: str, trained_runs: Callable, tmp_path: Path
) -> None:
    agent, src = trained_runs("ppo")
    run_dir = copy_run(src, tmp_path / "run")
    data = (run_dir / damage).read_bytes()
    (run_dir / damage).write_bytes(data[: len(data) // 2])
    before = snapshot(run_dir)
    with pytest.raises((RunDirError, CheckpointError, DigestError),
                       match=re.escape(str(run_dir / damage))):
        train(agent.config, run_dir, progress=False)
    assert snapshot(run_dir) == before


# ---------------------------------------------------------------------------------------------
# The fixture store

FIXTURE = ("Hopper-v5", "trpo", 0, 2)
"""env, algo, seed, iterations: the smallest fixture ``fixtures.find`` can address (it rebuilds
the config with Table 1 defaults, so 2048 pairs per iteration)."""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("fixtures")
    env_id, algo, seed, iterations = FIXTURE
    entry = fixtures.train_fixture(TrainConfig.create(env_id, algo, seed, iterations), base=base,
                                   progress=False)
    return base, entry


def test_train_fixture_writes_a_complete_store_entry(store: tuple[Path, dict]) -> None:
    base, entry = store
    env_id, algo, seed, iterations = FIXTURE
    config = TrainConfig.create(env_id, algo, seed, iterations)
    assert entry["key"] == config.key()
    assert (entry["env_id"], entry["algo"], entry["seed"], entry["iterations"]) == FIXTURE
    assert entry["checkpoints"] == [0, 1, 2]
    assert entry["training_version"] == TRAINING_VERSION
    assert math.isfinite(entry["final_mean_return"])
    assert entry["command"] == ("pgclaims fixtures train --env Hopper-v5 --algo trpo --seed 0 "
                                "--iterations 2 --protocol table1")
    assert {"python", "torch", "gymnasium", "mujoco", "numpy"} <= entry["versions"].keys()
    assert entry["wall_time_s"] >= 0 and entry["platform"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["created"])
    manifest = json.loads((base / "manifest.json").read_text())
    assert manifest["agents"] == [entry]
    run_dir = base / "store" / entry["key"]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "ckpt_0000.safetensors", "ckpt_0001.safetensors", "ckpt_0002.safetensors",
        "config.json", "curve.json"]


def test_load_returns_the_agent_the_config_trains(store: tuple[Path, dict],
                                                  tmp_path: Path) -> None:
    base, _ = store
    env_id, algo, seed, iterations = FIXTURE
    loaded = fixtures.load(env_id, algo, seed, 2, iterations, base=base)
    fresh = train(TrainConfig.create(env_id, algo, seed, iterations), tmp_path, progress=False)
    assert loaded.iteration == 2 and same_params(loaded, fresh)
    assert untimed(fixtures.curve(env_id, algo, seed, iterations, base=base)) == untimed(
        fresh.curve)
    assert fixtures.load(env_id, algo, seed, 0, iterations, base=base).iteration == 0


def test_the_fixtures_variable_selects_the_store(store: tuple[Path, dict],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    base, entry = store
    monkeypatch.setenv("PGCLAIMS_FIXTURES", str(base))
    assert fixtures.root() == base
    assert fixtures.find(*FIXTURE) == base / "store" / entry["key"]
    assert entry["key"] in fixtures.describe()


def test_a_missing_fixture_names_the_command_to_run(store: tuple[Path, dict]) -> None:
    base, _ = store
    with pytest.raises(FixtureError, match=re.escape(
            "train it: pgclaims fixtures train --env Hopper-v5 --algo trpo --seed 7 "
            "--iterations 2 --protocol table1")):
        fixtures.load("Hopper-v5", "trpo", 7, 0, 2, base=base)
    with pytest.raises(FixtureError, match=r"no checkpoint at iteration 5; have \["):
        fixtures.load(*FIXTURE[:3], 5, FIXTURE[3], base=base)


def test_a_stale_fixture_asks_for_a_retrain(store: tuple[Path, dict],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    base, entry = store
    monkeypatch.setattr(agent_mod, "TRAINING_VERSION", TRAINING_VERSION + 1)
    with pytest.raises(FixtureError) as err:
        fixtures.load(*FIXTURE[:3], 2, FIXTURE[3], base=base)
    message = str(err.value)
    assert f"training_version {TRAINING_VERSION}" in message
    assert entry["key"] in message
    assert message.endswith("retrain it: pgclaims fixtures train --env Hopper-v5 --algo trpo "
                            "--seed 0 --iterations 2 --protocol table1")


def test_a_corrupt_manifest_is_named(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(FixtureError, match=re.escape(str(tmp_path / "manifest.json"))):
        fixtures.find(*FIXTURE, base=tmp_path)
    assert fixtures.describe(tmp_path / "empty") == "no fixtures"


def test_the_store_takes_table1_agents_only(tiny_config: Callable[..., TrainConfig],
                                            tmp_path: Path) -> None:
    """A variant (here: fewer steps per iteration) could never be found by ``load``, which
    rebuilds Table 1 configs; the store refuses it and writes nothing."""
    with pytest.raises(ValueError, match="protocols' agents only"):
        fixtures.train_fixture(tiny_config("trpo", iterations=1), base=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_the_manifest_command_retrains_the_same_fixture(store: tuple[Path, dict]) -> None:
    """The command a manifest entry records rebuilds the same config key."""
    _, entry = store
    argv = shlex.split(entry["command"])
    assert argv[:3] == ["pgclaims", "fixtures", "train"]
    assert _config(build_parser().parse_args(argv[1:])).key() == entry["key"]

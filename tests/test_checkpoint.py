"""Checkpoints: complete round trips, atomic writes, and actionable errors on bad files."""

from __future__ import annotations

import ast
import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

import pgclaims
from pgclaims.agents import checkpoint
from pgclaims.agents.agent import Agent, FitRecord, TrainConfig, iterate, make_agent
from pgclaims.agents.checkpoint import CheckpointError
from pgclaims.agents.envs import make_env
from tests.faults import full_disk

PACKAGE = Path(pgclaims.__file__).parent


def state_dicts_equal(a: dict[str, torch.Tensor] | None, b: dict[str, torch.Tensor] | None
                      ) -> bool:
    if a is None or b is None:
        return a is b
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def optimizers_equal(a: torch.optim.Optimizer | None, b: torch.optim.Optimizer | None) -> bool:
    if a is None or b is None:
        return a is b
    sa, sb = a.state_dict(), b.state_dict()
    # The header is JSON, so a loaded group's betas are a list; Adam unpacks either.
    return same_json(sa["param_groups"], sb["param_groups"]) and sa["state"].keys() == sb[
        "state"].keys() and all(state_dicts_equal(sa["state"][i], sb["state"][i])
                                for i in sa["state"])


def same_json(a: object, b: object) -> bool:
    """Equality that treats NaN as equal to itself (curves hold NaN value losses)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


TIMINGS = ("sample_s", "total_s")
"""Curve fields that measure wall-clock time, so differ between two runs of the same thing."""


def untimed(curve: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in curve]


def assert_same_agent(a: Agent, b: Agent, *, same_timings: bool = True) -> None:
    assert a.config == b.config and a.iteration == b.iteration
    assert state_dicts_equal(a.policy.state_dict(), b.policy.state_dict())
    assert state_dicts_equal(a.value.state_dict(), b.value.state_dict())
    assert state_dicts_equal(a.prev_value, b.prev_value)
    assert optimizers_equal(a.policy_opt, b.policy_opt)
    assert optimizers_equal(a.value_opt, b.value_opt)
    for x, y in [(a.obs_norm.stats, b.obs_norm.stats), (a.reward_scaler.stats,
                                                        b.reward_scaler.stats)]:
        assert x.count == y.count
        assert np.array_equal(x.mean, y.mean) and np.array_equal(x.m2, y.m2)
        assert x.mean.shape == y.mean.shape
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    if same_timings:
        assert same_json(a.curve, b.curve)
    else:
        assert same_json(untimed(a.curve), untimed(b.curve))
    for name in ("prev_value", "prev_policy"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name
    if a.last_fit is None or b.last_fit is None:
        assert a.last_fit is b.last_fit is None
        return
    for f in (*FitRecord.FIELDS, "cut_states"):
        x, y = getattr(a.last_fit, f), getattr(b.last_fit, f)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), f


def one_iteration_agent(algo: str) -> tuple[Agent, object]:
    config = TrainConfig.create("Hopper-v5", algo, 0, 2, steps_per_iteration=256)
    agent, env = make_agent(config), make_env(config.env_id)
    iterate(agent, env)
    return agent, env


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_round_trip_keeps_all_state(trained_runs: Callable, algo: str, tmp_path: Path) -> None:
    agent, _ = trained_runs(algo)
    assert agent.last_fit is not None and agent.prev_value is not None and agent.curve
    assert agent.prev_policy is not None
    path = checkpoint.save(agent, tmp_path / "a.safetensors")
    rng_at_save = torch.get_rng_state()
    torch.manual_seed(12345)
    loaded = checkpoint.load(path)
    assert_same_agent(agent, loaded)
    assert torch.equal(torch.get_rng_state(), rng_at_save)


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_a_loaded_agent_continues_exactly(algo: str, tmp_path: Path) -> None:
    agent, env = one_iteration_agent(algo)
    loaded = checkpoint.load(checkpoint.save(agent, tmp_path / "a.safetensors"))
    iterate(agent, env)
    iterate(loaded, env)
    env.close()
    assert_same_agent(agent, loaded, same_timings=False)


def test_saving_a_loaded_agent_reproduces_the_file(trained_runs: Callable,
                                                   tmp_path: Path) -> None:
    first = checkpoint.save(trained_runs("ppo")[0], tmp_path / "a.safetensors")
    second = checkpoint.save(checkpoint.load(first), tmp_path / "b.safetensors")
    (t1, m1), (t2, m2) = checkpoint.read(first), checkpoint.read(second)
    assert t1.keys() == t2.keys()
    assert all(t1[k].dtype == t2[k].dtype and torch.equal(t1[k], t2[k]) for k in t1)
    assert same_json(m1, m2)


def test_round_trip_of_an_untrained_agent(tmp_path: Path) -> None:
    agent = make_agent(TrainConfig.create("Hopper-v5", "trpo", 3, 2, steps_per_iteration=256))
    loaded = checkpoint.load(checkpoint.save(agent, tmp_path / "a.safetensors"))
    assert loaded.last_fit is None and loaded.prev_value is None and loaded.iteration == 0
    assert_same_agent(agent, loaded)


def test_round_trip_of_a_batch_without_complete_episodes(tmp_path: Path) -> None:
    """A batch cut before any episode ends, ending on a terminal step: empty arrays survive."""
    agent, env = one_iteration_agent("ppo")
    env.close()
    b = agent.last_fit
    term = np.zeros(len(b), bool)
    term[-1] = True
    agent.last_fit = FitRecord(b.values, b.targets, b.rewards, b.raw_rewards, term,
                               np.zeros(len(b), bool), np.zeros((0, 12)))
    loaded = checkpoint.load(checkpoint.save(agent, tmp_path / "a.safetensors"))
    assert_same_agent(agent, loaded)


def test_checkpoints_keep_the_fit_record_not_the_observations(tmp_path: Path) -> None:
    """Format 2 stores the fitted net's values on the batch, not the batch's observations."""
    agent, env = one_iteration_agent("ppo")
    env.close()
    tensors, meta = checkpoint.read(checkpoint.save(agent, tmp_path / "a.safetensors"))
    assert meta["format_version"] == 2
    assert not any(k.startswith("last_batch/") for k in tensors)
    assert tensors["fit/values"].shape == (256,)
    assert tensors["fit/cut_states"].shape[1] == 12  # Hopper: nq 6 + nv 6


def test_format_1_checkpoints_still_load_with_the_same_fit_values() -> None:
    """The committed table1 fixtures are format 1: their batch becomes a fit record."""
    from pgclaims.agents import fixtures

    path = fixtures.find("Hopper-v5", "ppo", 0) / "ckpt_0150.safetensors"
    tensors, meta = checkpoint.read(path)
    assert meta["format_version"] == 1
    agent = checkpoint.load(path)
    with torch.no_grad():
        expect = agent.value(tensors["last_batch/obs"]).double().numpy()
    assert np.array_equal(agent.last_fit.values, expect)
    assert np.array_equal(agent.last_fit.targets, tensors["last_batch/targets"].numpy())


# ---------------------------------------------------------------------------------------------
# Atomic writes


def test_save_leaves_only_the_checkpoint(trained_runs: Callable, tmp_path: Path) -> None:
    checkpoint.save(trained_runs("ppo")[0], tmp_path / "sub" / "a.safetensors")
    assert os.listdir(tmp_path / "sub") == ["a.safetensors"]
    assert (tmp_path / "sub" / "a.safetensors").stat().st_mode & 0o777 == 0o644


def test_a_failed_save_keeps_the_previous_file(trained_runs: Callable, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    agent = trained_runs("ppo")[0]
    path = checkpoint.save(agent, tmp_path / "a.safetensors")
    before = path.read_bytes()

    full_disk(monkeypatch, room=1000)  # the disk fills up in the middle of the file
    with pytest.raises(OSError, match="No space left") as err:
        checkpoint.save(agent, path)
    assert err.value.filename == str(path)  # the file the user knows, not the temporary one
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.safetensors"]


# ---------------------------------------------------------------------------------------------
# Bad files


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    agent = make_agent(TrainConfig.create("Hopper-v5", "ppo", 0, 2, steps_per_iteration=256))
    return checkpoint.save(agent, tmp_path_factory.mktemp("valid") / "v.safetensors").read_bytes()


def rewrite_header(src: bytes, dst: Path, **changes: str) -> None:
    """Re-save a valid checkpoint's tensors with some header fields changed."""
    tmp = dst.with_suffix(".src")
    tmp.write_bytes(src)
    with safe_open(str(tmp), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    tmp.unlink()
    save_file(tensors, str(dst), metadata={**meta, **changes})


BAD_FILES: dict[str, Callable[[bytes, Path], None]] = {
    "random bytes": lambda v, p: p.write_bytes(np.random.default_rng(0).bytes(len(v))),
    "empty": lambda v, p: p.write_bytes(b""),
    "truncated": lambda v, p: p.write_bytes(v[: len(v) // 2]),
    "header only": lambda v, p: p.write_bytes(v[: 8 + int.from_bytes(v[:8], "little")]),
    "foreign safetensors": lambda v, p: save_file({"w": torch.zeros(3)}, str(p)),
    "foreign format": lambda v, p: rewrite_header(v, p, format="someone.else"),
    "format_version 99": lambda v, p: rewrite_header(v, p, format_version="99"),
    "metadata not JSON": lambda v, p: rewrite_header(v, p, pgclaims="{not json"),
    "metadata without config": lambda v, p: rewrite_header(v, p, pgclaims="{}"),
    "missing": lambda v, p: None,
    "a directory": lambda v, p: p.mkdir(),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_file_raises_checkpoint_error_naming_it(kind: str, valid_bytes: bytes,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    BAD_FILES[kind](valid_bytes, path)
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_wrong_version_message_says_both_versions(valid_bytes: bytes, tmp_path: Path) -> None:
    path = tmp_path / "v3.safetensors"
    rewrite_header(valid_bytes, path, format_version="3")
    with pytest.raises(CheckpointError, match=r"format_version '3', this pgclaims reads 1, 2"):
        checkpoint.read(path)


@settings(max_examples=50)
@given(st.binary(max_size=4096))
def test_random_bytes_are_rejected(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.safetensors"
        path.write_bytes(data)
        with pytest.raises(CheckpointError):
            checkpoint.load(path)


@settings(max_examples=50)
@given(st.data())
def test_every_proper_prefix_is_rejected(valid_bytes: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(valid_bytes) - 1))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.safetensors"
        path.write_bytes(valid_bytes[:cut])
        with pytest.raises(CheckpointError):
            checkpoint.load(path)


@settings(max_examples=100)
@given(st.data())
def test_a_damaged_header_loads_or_raises_checkpoint_error(valid_bytes: bytes,
                                                           data: st.DataObject) -> None:
    """Flipping header bytes may leave a loadable file (a changed digit) but never raises
    anything other than CheckpointError."""
    header_end = 8 + int.from_bytes(valid_bytes[:8], "little")
    damaged = bytearray(valid_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        damaged[data.draw(st.integers(0, header_end - 1))] = data.draw(st.integers(0, 255))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.safetensors"
        path.write_bytes(bytes(damaged))
        try:
            checkpoint.load(path)
        except CheckpointError:
            pass


# ---------------------------------------------------------------------------------------------
# Nothing is unpickled

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve",
                  "marshal"}


ALLOW_LISTED_UNPICKLER = "adapters/safepickle.py"
"""The one module that may import pickle: its Unpickler resolves only an allow-list of globals
(tested in tests/test_adapters.py with a pickle that would run code)."""


def _weights_only(call: ast.Call) -> bool:
    return any(k.arg == "weights_only" and isinstance(k.value, ast.Constant)
               and k.value.value is True for k in call.keywords)


def unsafe_uses(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
                UNSAFE_MODULES):
            found.append(f"from {node.module}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                node.func.attr == "load" and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch" and not _weights_only(node)):
            found.append("torch.load")
        elif isinstance(node, ast.keyword) and node.arg == "allow_pickle" and not (
                isinstance(node.value, ast.Constant) and node.value.value is False):
            found.append("allow_pickle")
    return found


def test_the_package_never_unpickles() -> None:
    """No pickle outside the allow-listed unpickler; torch.load only with weights_only=True."""
    assert unsafe_uses("import pickle\nimport torch\ntorch.load('x')\nnp.load(f, "
                       "allow_pickle=True)\n") == ["pickle", "torch.load", "allow_pickle"]
    assert unsafe_uses("torch.load('x', weights_only=False)\n") == ["torch.load"]
    assert unsafe_uses("torch.load('x', weights_only=True)\n") == []
    offenders = {str(p.relative_to(PACKAGE)): unsafe_uses(p.read_text())
                 for p in sorted(PACKAGE.rglob("*.py"))}
    assert offenders.pop(ALLOW_LISTED_UNPICKLER) == ["pickle"]
    assert {k: v for k, v in offenders.items() if v} == {}


def test_loading_runs_no_unpickler(valid_bytes: bytes, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("checkpoint loading unpickled something")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    path = tmp_path / "v.safetensors"
    path.write_bytes(valid_bytes)
    assert checkpoint.load(path).iteration == 0

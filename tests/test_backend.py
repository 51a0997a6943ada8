"""The backends: the setting and its errors, and on a real local Ray (one per test process,
``start_local_ray(num_cpus=2)``, skipped when Ray is not installed) the same numbers as the local
backend, for measurements and fixture training, also when a worker is killed mid-run."""

from __future__ import annotations

import dataclasses
import importlib
import os
import signal
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import envs_for_tests
import numpy as np
import pytest
import torch

from pgclaims.agents import backend, checkpoint, fixtures
from pgclaims.agents.agent import Agent, TrainConfig, make_agent
from pgclaims.agents.rollout import Batch
from pgclaims.cli import main
from pgclaims.measure import parallel
from pgclaims.measure.gradients import GradientStudy, gradient_study
from pgclaims.measure.sampler import CHUNK
from pgclaims.measure.value import value_error
from pgclaims.suite import backend as suite_backend
from tests.same import assert_same_result

pytest_plugins = ["pytester"]

SEED = 20201
STUDY = {"n_grid": (32, 2048, 4096), "repeats": 3, "true_grad_n": 3 * 4096,
         "true_value_n": CHUNK}
"""A small Figure 1+2 study: 11 gradient chunks and one true-value chunk."""


@pytest.fixture
def local_backend() -> Iterator[None]:
    previous = backend.set_backend("local")
    yield
    backend.restore_backend(previous)


# ---------------------------------------------------------------------------------------------
# The setting (no Ray needed)


def test_the_backend_is_local_unless_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = backend.set_backend("local")
    try:
        backend.restore_backend({})
        monkeypatch.delenv("PGCLAIMS_BACKEND", raising=False)
        assert backend.backend() == "local"
        monkeypatch.setenv("PGCLAIMS_BACKEND", "ray")
        assert backend.backend() == "ray"
        backend.set_backend("local", None)
        assert backend.backend() == "local"
    finally:
        backend.restore_backend(previous)


def test_an_unknown_backend_names_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(backend.BackendError, match="backend='dask': expected one of local, ray"):
        backend.set_backend("dask")
    previous = backend.set_backend("local")
    backend.restore_backend({})
    try:
        monkeypatch.setenv("PGCLAIMS_BACKEND", "spark")
        with pytest.raises(backend.BackendError, match="PGCLAIMS_BACKEND='spark'"):
            backend.backend()
    finally:
        backend.restore_backend(previous)


def test_ray_address_comes_from_the_setting_then_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    previous = backend.set_backend("ray")
    try:
        assert backend.ray_address() == "10.0.0.1:6379"
        backend.set_backend("ray", "10.0.0.2:6379")
        assert backend.ray_address() == "10.0.0.2:6379"
    finally:
        backend.restore_backend(previous)


def test_without_ray_the_cli_names_the_install_command(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    previous = backend.set_backend("local")
    try:
        assert main(["measure", "--fixture", "Hopper-v5", "ppo", "0", "450",
                     "--backend", "ray"]) == 2
    finally:
        backend.restore_backend(previous)
    assert "pip install -e '.[ray]'" in capsys.readouterr().err


def test_the_cli_refuses_a_ray_address_without_the_ray_backend(
        capsys: pytest.CaptureFixture[str], local_backend: None) -> None:
    assert main(["measure", "--fixture", "Hopper-v5", "ppo", "0", "450",
                 "--ray-address", "10.0.0.1:6379"]) == 2
    assert "--ray-address needs --backend ray" in capsys.readouterr().err


SUITE_TEST = """
from pgclaims.agents import backend


def test_backend():
    assert backend.backend() == "ray"
"""


def test_the_suite_option_sets_the_backend_for_the_run_only(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, local_backend: None) -> None:
    # A stand-in module: a real Ray first imported inside a pytester test is dropped from
    # sys.modules at its end, and Ray's native half segfaults when imported a second time.
    monkeypatch.setitem(sys.modules, "ray", types.ModuleType("ray"))
    pytester.makeconftest('pytest_plugins = ["pgclaims.suite.plugin"]')
    pytester.makepyfile(test_it=SUITE_TEST)
    pytester.runpytest("--backend", "ray", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert backend.backend() == "local"
    pytester.runpytest("--backend", "local", "-p", "no:cacheprovider").assert_outcomes(failed=1)


def test_the_suite_options_fail_as_usage_errors(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, local_backend: None) -> None:
    pytester.makeconftest('pytest_plugins = ["pgclaims.suite.plugin"]')
    pytester.makepyfile(test_it=SUITE_TEST)
    result = pytester.runpytest("--ray-address", "10.0.0.1:6379", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ray-address needs --backend ray*"])
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = pytester.runpytest("--backend", "ray", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "the ray backend needs Ray" in result.stderr.str()
    assert "pip install -e '.[ray]'" in result.stderr.str()


def _square(x: int) -> int:
    return x * x


def test_run_each_gives_every_item_its_result(local_backend: None) -> None:
    assert sorted(backend.run_each(_square, [1, 2, 3], jobs=2)) == [(1, 1), (2, 4), (3, 9)]
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        list(backend.run_each(_square, [1], jobs=0))


# ---------------------------------------------------------------------------------------------
# On a real local Ray


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """One local Ray with 2 CPUs for the whole test process (~5 s to start)."""
    ray = pytest.importorskip("ray")
    # The reducers of this module and the test bandit go to the workers by value: they cannot
    # import a test module.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.cloudpickle.register_pickle_by_value(envs_for_tests)
    started = not ray.is_initialized()
    if started:
        backend.start_local_ray(num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture
def on_ray(ray_cluster: Any) -> Iterator[Any]:
    previous = backend.set_backend("ray")
    yield ray_cluster
    backend.restore_backend(previous)


def test_xdist_workers_share_the_controllers_cluster(on_ray: Any) -> None:
    node = types.SimpleNamespace(workerinput={})
    suite_backend._Controller("ray").pytest_configure_node(node)
    address = on_ray.get_runtime_context().gcs_address
    assert node.workerinput == {"pgclaims_backend": "ray", "pgclaims_ray_address": address,
                                "pgclaims_ray_auth_mode": os.environ.get("RAY_AUTH_MODE")}
    cleanups: list[Callable[[], None]] = []
    worker = types.SimpleNamespace(workerinput=node.workerinput, add_cleanup=cleanups.append)
    previous = backend.set_backend("local")
    try:
        suite_backend.configure(worker)  # type: ignore[arg-type]
        assert (backend.backend(), backend.ray_address()) == ("ray", address)
        cleanups.pop()()
        assert backend.backend() == "local"
    finally:
        backend.restore_backend(previous)


def test_the_backend_record_names_the_backend_and_the_cluster(on_ray: Any) -> None:
    record = suite_backend.backend_record()
    assert record["name"] == "ray" and record["address"] == backend.ray_address()
    assert record["cluster_cpus"] == on_ray.cluster_resources()["CPU"] > 0
    with backend.using("local"):
        assert suite_backend.backend_record() == {"name": "local"}


def test_using_restores_the_previous_setting() -> None:
    previous = backend.set_backend("local")
    address = backend.ray_address()
    try:
        with pytest.raises(RuntimeError), backend.using("ray", "10.0.0.2:6379"):
            assert (backend.backend(), backend.ray_address()) == ("ray", "10.0.0.2:6379")
            raise RuntimeError("the block failed")
        assert (backend.backend(), backend.ray_address()) == ("local", address)
    finally:
        backend.restore_backend(previous)


@pytest.mark.parametrize("code", [signal.SIGTERM, 1])
def test_a_sigterm_while_ray_init_runs_reaches_the_commands_handler(code: int) -> None:
    """``ray.init`` sets a SIGTERM handler that calls ``sys.exit(signum)`` (ray/_private/
    worker.py, ``sigterm_handler``): a SIGTERM in that window must still run the command's own
    handler (its message, stopping Ray); another SystemExit passes through untouched. Either
    way the command's handler is in place afterwards."""
    calls: list[int] = []

    def mine(signum: int, frame: object) -> None:
        calls.append(signum)

    before = signal.signal(signal.SIGTERM, mine)
    try:
        with pytest.raises(SystemExit) as exc, backend._sigterm_kept():
            signal.signal(signal.SIGTERM, lambda s, f: sys.exit(s))  # as ray.init does
            raise SystemExit(code)
        assert exc.value.code == code
        assert calls == ([signal.SIGTERM] if code == signal.SIGTERM else [])
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_sigterm_while_ray_init_runs_keeps_the_default_handler_when_none_was_set() -> None:
    """pytest and notebooks (no handler of their own) keep Ray's handling: nothing is called."""
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with pytest.raises(SystemExit), backend._sigterm_kept():
            raise SystemExit(signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)


def on(name: str, run: Callable[[], Any]) -> Any:
    with backend.using(name):
        return run()


def assert_same_study(a: GradientStudy, b: GradientStudy) -> None:
    for f in dataclasses.fields(GradientStudy):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y, equal_nan=True), f.name
        elif f.name == "pairwise":
            assert x.keys() == y.keys()
            assert all(np.array_equal(x[k], y[k]) for k in x), f.name
        else:
            assert x == y, f.name


def test_a_gradient_study_on_ray_is_bit_identical_to_local(ray_cluster: Any) -> None:
    # The bandit is fast to sample, and registered in this process only: the workers get its
    # spec with the agent.
    agent = make_agent(TrainConfig.create(envs_for_tests.BANDIT, "ppo", 0, iterations=1,
                                          policy_lr=3e-4, value_lr=3e-4))
    local = on("local", lambda: gradient_study(agent, **STUDY, seed=SEED, workers=2))
    ray_study = on("ray", lambda: gradient_study(agent, **STUDY, seed=SEED))
    assert_same_study(local, ray_study)


def test_value_step_and_landscape_studies_on_ray_match_local(ray_cluster: Any) -> None:
    landscape_mod = importlib.import_module("pgclaims.measure.landscape")
    agent = make_agent(TrainConfig.create("Hopper-v5", "ppo", 0))
    runs = [(landscape_mod.step_study, (agent, 3, 600, 1024, SEED)),
            (landscape_mod.landscape, (agent, (0.0, 1.0), (300,), 500, SEED)),
            (value_error, (agent, 3, 700, SEED))]
    for f, args in runs:
        local = on("local", lambda: f(*args))  # noqa: B023 (called at once)
        assert_same_result(local, on("ray", lambda: f(*args)), f.__name__)  # noqa: B023


def _obs_sum(batch: Batch, scale: float) -> tuple[float, int]:
    return scale * float(batch.obs.astype(np.float64).sum()), batch.n_trajectories


@pytest.mark.parametrize("batched", [False, True], ids=["gymnasium", "batched"])
def test_chunk_map_on_ray_matches_local(
        on_ray: Any, trained_runs: Callable[[str], tuple[Agent, Path]], batched: bool) -> None:
    agent, _ = trained_runs("trpo")
    jobs = [(300, (90, c), float(c + 1)) for c in range(5)]
    local = on("local", lambda: list(parallel.chunk_map(agent, _obs_sum, jobs, SEED, 1,
                                                        batched)))
    assert list(parallel.chunk_map(agent, _obs_sum, jobs, SEED, batched=batched)) == local
    assert len(set(local)) == 5


@dataclasses.dataclass
class KillOnce:
    """``_obs_sum``, but the first process to reduce chunk ``at`` kills itself (SIGKILL, as
    the OOM killer or a lost node would) after writing its pid to ``marker``."""

    marker: Path
    at: float

    def __call__(self, batch: Batch, scale: float) -> tuple[float, int]:
        if scale == self.at and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return _obs_sum(batch, scale)


def test_a_killed_worker_costs_its_chunk_a_retry_not_the_run(
        on_ray: Any, trained_runs: Callable[[str], tuple[Agent, Path]], tmp_path: Path) -> None:
    agent, _ = trained_runs("trpo")
    jobs = [(300, (91, c), float(c + 1)) for c in range(6)]
    local = on("local", lambda: list(parallel.chunk_map(agent, _obs_sum, jobs, SEED, 1)))
    marker = tmp_path / "killed"
    got = list(parallel.chunk_map(agent, KillOnce(marker, at=4.0), jobs, SEED))
    assert marker.exists(), "no worker was killed: the test did not test the retry"
    assert int(marker.read_text()) != os.getpid()
    assert got == local


def _fail_on_third(batch: Batch, arg: int) -> int:
    if arg == 2:
        raise ArithmeticError("chunk 2")
    return arg


def test_a_reduce_error_on_ray_reaches_the_caller(
        on_ray: Any, trained_runs: Callable[[str], tuple[Agent, Path]]) -> None:
    agent, _ = trained_runs("trpo")
    jobs = [(16, (92, c), c) for c in range(4)]
    with pytest.raises(ArithmeticError, match="chunk 2"):
        list(parallel.chunk_map(agent, _fail_on_third, jobs, SEED))
    assert list(parallel.chunk_map(agent, _fail_on_third, jobs[:2], SEED)) == [0, 1]


def _store(base: Path) -> dict[str, Any]:
    """Every stored checkpoint's tensors and metadata, timings left out, by (key, file)."""
    out = {}
    for path in sorted(base.glob("store/*/ckpt_*.safetensors")):
        tensors, meta = checkpoint.read(path)
        meta["curve"] = [{k: v for k, v in r.items() if not k.endswith("_s")}
                         for r in meta["curve"]]
        out[(path.parent.name, path.name)] = ({k: v.clone() for k, v in tensors.items()}, meta)
    return out


def test_fixture_training_on_ray_matches_local(
        ray_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = [TrainConfig.create("Hopper-v5", "trpo", seed, 1) for seed in (0, 1)]
    stores = {}
    for name in ("local", "ray"):
        monkeypatch.setenv("PGCLAIMS_FIXTURES", str(tmp_path / name))
        lines: list[str] = []
        on(name, lambda say=lines.append: fixtures.train_set(configs, jobs=2, say=say))
        assert len(lines) == 3, lines  # the plan, then one line per agent
        stores[name] = _store(tmp_path / name)
    local, ray_store = stores["local"], stores["ray"]
    assert len(local) == 4 and local.keys() == ray_store.keys()  # 2 agents x iterations 0, 1
    for key, (tensors, meta) in local.items():
        other_tensors, other_meta = ray_store[key]
        assert tensors.keys() == other_tensors.keys()
        assert all(torch.equal(tensors[k], other_tensors[k]) for k in tensors), key
        assert meta == other_meta, key


def test_the_cli_trains_a_fixture_as_a_ray_task(
        ray_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], local_backend: None) -> None:
    monkeypatch.setenv("PGCLAIMS_FIXTURES", str(tmp_path))
    assert main(["fixtures", "train", "--env", "Hopper-v5", "--algo", "trpo", "--seed", "0",
                 "--iterations", "1", "--protocol", "table1", "--backend", "ray"]) == 0
    key = TrainConfig.create("Hopper-v5", "trpo", 0, 1).key()
    assert f"fixture {key}: Hopper-v5 trpo seed 0" in capsys.readouterr().out
    assert backend.backend() == "ray"  # the CLI's choice holds for the rest of its process
    assert fixtures.find("Hopper-v5", "trpo", 0, 1) == tmp_path / "store" / key

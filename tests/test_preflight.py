"""Fail before the work, not after: what a claims run and ``pgclaims measure`` check first.

The reports and cache folders must be writable and have room, a Ray address must answer within
a stated time, and an --env selection must not collect tests of the environments it left out.
Each problem is one line (a pytest usage error, or ``pgclaims CMD: error: ...``) before any
test runs. Read-only and full file systems are injected here (a root user writes through
permission bits, and a test should not mount file systems); the not-a-folder cases are real.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import sys
import threading
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from pgclaims.agents import backend
from pgclaims.agents.agent import TrainConfig, make_agent
from pgclaims.cli import main
from pgclaims.measure import cache
from pgclaims.suite import preflight
from pgclaims.suite.claims import unregister
from tests.test_plugin import TOY_CONFTEST, TOY_IDS, TOY_TESTS

pytest_plugins = ["pytester"]

Usage = namedtuple("Usage", "total used free")


@pytest.fixture
def toy(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(TOY_CONFTEST)
    pytester.makepyfile(test_toy=TOY_TESTS)
    yield pytester
    for claim_id in TOY_IDS:
        unregister(claim_id)


def _one_usage_error(result: pytest.RunResult, message: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, lines
    result.stderr.fnmatch_lines([message])
    assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()


# -- the folders -----------------------------------------------------------------------------


def test_check_folder_accepts_a_new_folder_and_creates_nothing(tmp_path: Path) -> None:
    assert preflight.check_folder(tmp_path / "a" / "b", "--reports-dir a/b") is None
    assert list(tmp_path.iterdir()) == []


def test_check_folder_refuses_a_file_and_a_path_through_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    assert preflight.check_folder(tmp_path / "f", "R") == f"R: {tmp_path / 'f'} is not a folder"
    assert preflight.check_folder(tmp_path / "f" / "sub", "R") == (
        f"R: {tmp_path / 'f'} is not a folder ({tmp_path / 'f'} is in its path)")


def test_check_folder_refuses_a_read_only_or_full_file_system(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as m:
        m.setattr(preflight.tempfile, "mkstemp", refuse)
        assert preflight.check_folder(tmp_path, "R") == (
            f"R: cannot write in {tmp_path} (Read-only file system)")
    with monkeypatch.context() as m:
        m.setattr(preflight.shutil, "disk_usage", lambda p: Usage(10 * 2**20, 9 * 2**20, 2**20))
        assert preflight.check_folder(tmp_path, "R") == (
            f"R: only 1.0 MiB free on the file system of {tmp_path}; a run needs at least 64 MiB"
            " (free some, or choose another folder)")
    assert list(tmp_path.iterdir()) == []  # no probe file left behind


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_check_folder_refuses_a_folder_without_write_permission(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    try:
        assert preflight.check_folder(locked / "reports", "R") == (
            f"R: cannot write in {locked} (Permission denied)")
    finally:
        locked.chmod(0o755)


def test_a_reports_dir_that_is_a_file_fails_before_any_test(toy: pytest.Pytester) -> None:
    (toy.path / "taken").write_text("not a folder")
    result = toy.runpytest("--scale", "smoke", "--reports-dir", "taken", "-p", "no:cacheprovider")
    _one_usage_error(result, f"ERROR: --reports-dir taken: {toy.path / 'taken'} is not a folder")
    assert (toy.path / "taken").read_text() == "not a folder"


def test_a_full_reports_dir_fails_before_any_test(toy: pytest.Pytester,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage
    full = toy.path / "full"
    full.mkdir()
    monkeypatch.setattr(preflight.shutil, "disk_usage",
                        lambda p: Usage(2**30, 2**30, 0) if Path(p) == full else real(p))
    result = toy.runpytest("--scale", "smoke", "--reports-dir", "full", "-p", "no:cacheprovider")
    _one_usage_error(result, "ERROR: --reports-dir full: only 0.0 MiB free on the file system "
                     f"of {full}; a run needs at least 64 MiB*")
    assert list(full.iterdir()) == []


def test_a_read_only_cache_fails_before_any_test(toy: pytest.Pytester,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ro = toy.path / "ro-cache"
    ro.mkdir()
    monkeypatch.setenv("PGCLAIMS_CACHE", str(ro))
    real = preflight.tempfile.mkstemp

    def mkstemp(*args: Any, dir: Any = None, **kwargs: Any) -> Any:  # noqa: A002 (its name)
        if Path(dir) == ro:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(preflight.tempfile, "mkstemp", mkstemp)
    result = toy.runpytest("--scale", "smoke", "-p", "no:cacheprovider")
    _one_usage_error(result, f"ERROR: cache folder $PGCLAIMS_CACHE {ro}: cannot write in {ro} "
                     "(Read-only file system)")
    assert not (toy.path / "reports").exists()


# -- the Ray address -------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


needs_ray = pytest.mark.skipif(not shutil.which("ray") and "ray" not in sys.modules and
                               not __import__("importlib").util.find_spec("ray"),
                               reason="Ray is not installed (pip install -e '.[ray]')")


@pytest.mark.slow
@needs_ray
def test_measure_with_a_silent_ray_address_fails_in_15_s(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    previous = backend.set_backend("local")
    try:
        t0 = time.monotonic()
        rc = main(["measure", "--fixture", "Hopper-v5", "ppo", "0", "450", "--backend", "ray",
                   "--ray-address", address])
        waited = time.monotonic() - t0
    finally:
        backend.restore_backend(previous)
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"pgclaims measure: error: no Ray cluster answers at {address} "
                              "within 15 s"), err
    assert waited >= backend.RAY_ANSWER_S  # it waited the stated time, then gave up


@pytest.mark.slow
@needs_ray
def test_a_claims_run_with_a_silent_ray_address_is_a_usage_error(
        toy: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "RAY_ANSWER_S", 2.0)
    address = f"127.0.0.1:{_closed_port()}"
    result = toy.runpytest("--scale", "smoke", "--backend", "ray", "--ray-address", address,
                           "-p", "no:cacheprovider")
    _one_usage_error(result, f"ERROR: no Ray cluster answers at {address} within 2 s*")
    assert not (toy.path / "reports").exists()


# -- the selection ---------------------------------------------------------------------------


def test_an_env_selection_drops_tests_of_the_envs_it_left_out(toy: pytest.Pytester) -> None:
    result = toy.runpytest("--collect-only", "-q", "--scale", "default", "--env", "Hopper-v5",
                           "-p", "no:cacheprovider")
    ids = {line for line in result.stdout.lines if "::" in line}
    assert "test_toy.py::test_needs_humanoid[Hopper-v5]" in ids  # INCONCLUSIVE: lacks humanoid
    assert not [i for i in ids if "Walker2d" in i or "Humanoid" in i], sorted(ids)


# -- the cache lock --------------------------------------------------------------------------


def test_a_measurement_waiting_on_the_cache_lock_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
        ) -> None:
    monkeypatch.setenv("PGCLAIMS_CACHE", str(tmp_path))
    agent = make_agent(TrainConfig.create("Hopper-v5", "ppo", 0, iterations=1))
    results: list[Any] = []

    @__import__("dataclasses").dataclass
    class Result:
        value: int

    def measure() -> None:
        results.append(cache.cached("toy", agent, {"n": 1}, 0, Result, lambda: Result(7)))

    measure()  # learn the entry's path, then hold its lock as another process would
    (entry,) = (tmp_path / "measure" / "toy").glob("*.json")
    entry.unlink()
    holder = FileLock(str(entry) + ".lock", is_singleton=False)
    holder.acquire()
    waiter = threading.Thread(target=measure)
    waiter.start()
    deadline = time.monotonic() + 30
    while "waiting for" not in (said := capfd.readouterr().err) and time.monotonic() < deadline:
        time.sleep(0.05)
    holder.release()
    waiter.join(30)
    assert f"pgclaims: waiting for {entry}.lock: another process is computing the same " \
           "measurement (toy of Hopper-v5 ppo seed 0 it 0)" in said
    assert [r.value for r in results] == [7, 7]


@pytest.mark.parametrize("env", [None, "given"])
def test_the_cache_folder_checked_is_the_measurement_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str | None) -> None:
    if env is None:
        monkeypatch.delenv("PGCLAIMS_CACHE", raising=False)
    else:
        monkeypatch.setenv("PGCLAIMS_CACHE", str(tmp_path / env))
    assert preflight.measure_cache_root() == cache.cache_dir().parent

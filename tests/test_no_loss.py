"""Nothing finished is ever destroyed (issue 20, item 1).

A rerun of a finished fixture or run verifies it and writes nothing; a damaged manifest stops
``fixtures train`` before any training; a manifest that cannot be written keeps every
checkpoint, and the rerun only writes the entry; a second process training into the same
folder is refused with the holder's pid and host.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pgclaims.agents import fixtures
from pgclaims.agents.agent import TrainConfig
from pgclaims.agents.train import train
from pgclaims.cli import main

FIXTURE_ARGS = ["fixtures", "train", "--env", "Hopper-v5", "--algo", "trpo", "--iterations", "2",
                "--quiet"]
"""The smallest fixture the store can hold (Table 1's 2048 pairs per iteration)."""
RUN_ARGS = ["train", "--env", "Hopper-v5", "--algo", "ppo", "--iterations", "2", "--steps", "256",
            "--quiet"]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: bytes and modification time (ns)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "fixtures"
    monkeypatch.setenv("PGCLAIMS_FIXTURES", str(base))
    return base


def test_rerunning_a_finished_fixture_verifies_it_and_writes_nothing(
        store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(FIXTURE_ARGS, capsys)[0] == 0
    before = snapshot(store)
    code, _, err = run(FIXTURE_ARGS, capsys)
    assert code == 0, err
    assert "already in" in err and "sha256" in err and "nothing trained" in err
    assert snapshot(store) == before


def test_rerunning_a_finished_run_verifies_it_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*RUN_ARGS, "--out", str(tmp_path / "run")]
    assert run(argv, capsys)[0] == 0
    before = snapshot(tmp_path / "run")
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert "already finished" in err and "sha256" in err and "nothing to train" in err
    assert snapshot(tmp_path / "run") == before


def test_a_damaged_manifest_stops_fixtures_train_before_any_training(
        store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store.mkdir()
    (store / "manifest.json").write_text('{"schema": 1, "agents": [')
    code, out, err = run(FIXTURE_ARGS, capsys)
    assert code == 2 and out == ""
    assert err.startswith("pgclaims fixtures: error: ") and str(store / "manifest.json") in err
    assert err.count("\n") == 1
    assert not (store / "store").exists()  # nothing was trained


def test_a_failed_manifest_write_keeps_every_checkpoint(
        store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest write fails (a full disk): every checkpoint and latest.safetensors stay, and
    the rerun, with room again, writes the entry without training anything again."""
    real = fixtures.write_json

    def disk_full(path: Path, obj: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(fixtures, "write_json", disk_full)
    code, _, err = run(FIXTURE_ARGS, capsys)
    assert code == 2
    assert err == (f"pgclaims fixtures: error: {store / 'manifest.json'}: "
                   "No space left on device\n")
    [run_dir] = (store / "store").iterdir()
    kept = {p.name for p in run_dir.iterdir()}
    assert {"ckpt_0000.safetensors", "ckpt_0001.safetensors", "ckpt_0002.safetensors",
            "latest.safetensors"} <= kept
    checkpoints = {p.name: p.stat().st_mtime_ns for p in run_dir.glob("ckpt_*")}

    monkeypatch.setattr(fixtures, "write_json", real)
    code, _, err = run(FIXTURE_ARGS, capsys)
    assert code == 0, err
    assert "already finished" in err  # the run was complete: only the entry was missing
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.glob("ckpt_*")} == checkpoints
    [entry] = json.loads((store / "manifest.json").read_text())["agents"]
    assert entry["key"] == run_dir.name and not (run_dir / "latest.safetensors").exists()


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.1)


def test_a_second_process_training_into_the_same_folder_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    argv = ["train", "--env", "Hopper-v5", "--algo", "ppo", "--iterations", "400", "--steps",
            "256", "--quiet", "--out", str(run_dir)]
    holder = subprocess.Popen([sys.executable, "-m", "pgclaims.cli", *argv],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(run_dir / "ckpt_0000.safetensors", holder)
        before = snapshot(run_dir)
        code, out, err = run(argv, capsys)
        assert holder.poll() is None  # still training: the refusal was not a late success
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    assert code == 2 and out == ""
    assert f"pid {holder.pid} on host {socket.gethostname()}" in err
    assert err.startswith(f"pgclaims train: error: {run_dir}: another process is training")
    assert err.count("\n") == 1
    assert {k: v for k, v in snapshot(run_dir).items() if k.startswith("ckpt_0000")} == {
        k: v for k, v in before.items() if k.startswith("ckpt_0000")}


def test_a_lock_left_by_a_killed_process_does_not_block_the_rerun(
        tiny_config: object, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code = ("import sys, time; from pathlib import Path; from pgclaims.agents import runlock\n"
            "with runlock.hold(Path(sys.argv[1])):\n    print('held', flush=True); "
            "time.sleep(600)")
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    assert (run_dir / ".lock").exists()  # left behind by kill -9; the kernel freed the lock
    config: TrainConfig = tiny_config("ppo")  # type: ignore[operator]
    agent = train(config, run_dir, progress=False)
    assert agent.iteration == 2 and not (run_dir / ".lock").exists()


def test_a_lockstep_group_is_refused_when_another_process_holds_one_of_its_folders(
        tmp_path: Path) -> None:
    from pgclaims.agents.lockstep import train_together
    from pgclaims.agents.runlock import RunLockedError

    dirs = [tmp_path / "a", tmp_path / "b"]
    dirs[1].mkdir()
    code = ("import sys, time; from pathlib import Path; from pgclaims.agents import runlock\n"
            "with runlock.hold(Path(sys.argv[1])):\n    print('held', flush=True); "
            "time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(dirs[1])],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        configs = [TrainConfig.create("Hopper-v5", "ppo", s, 2, steps_per_iteration=256)
                   for s in (0, 1)]
        with pytest.raises(RunLockedError, match=f"pid {holder.pid} on host"):
            train_together(configs, dirs)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    assert [p.name for p in dirs[0].iterdir()] == []  # nothing trained into the free one

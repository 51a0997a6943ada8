"""The ``pgclaims`` command: help, one-line errors with exit status 2, and a tiny training run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pgclaims.cli import main, measure_summary


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``pgclaims argv`` in-process: (exit status, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: --help and usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_console_script_help() -> None:
    exe = Path(sys.executable).with_name("pgclaims")
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: pgclaims" in done.stdout
    assert {"train", "fixtures", "report"} <= set(done.stdout.replace(",", " ").split())


def test_train_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["train", "--help"], capsys)
    assert code == 0
    for flag in ("--env", "--algo", "--seed", "--iterations", "--checkpoints", "--steps", "--out"):
        assert flag in out


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(["--env", "NoSuchEnv-v5"], "unknown environment id 'NoSuchEnv-v5'",
                 id="unknown-env"),
    pytest.param(["--env", "Hopper-v2"], "use 'Hopper-v5'", id="v2-env"),
    pytest.param(["--env", "CartPole-v1"], "needs Box observation and action spaces",
                 id="discrete-env"),
    pytest.param(["--env", "Hopper-v5", "--iterations", "2", "--checkpoints", "0,5"],
                 "checkpoints [5] outside 0..2", id="checkpoint-out-of-range"),
    pytest.param(["--env", "Hopper-v5", "--iterations", "0"],
                 "argument --iterations: expected an integer >= 1, got '0'",
                 id="zero-iterations"),
    pytest.param(["--env", "Hopper-v5", "--checkpoints", "1,x"],
                 "argument --checkpoints: expected comma-separated integers, got '1,x'",
                 id="checkpoints-not-integers"),
    pytest.param(["--env", "Hopper-v5", "--algo", "a2c"],
                 "argument --algo: invalid choice: 'a2c'", id="unknown-algo"),
])
def test_bad_input_is_one_error_line_and_exit_2(args: list[str], expected: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--algo", "ppo", *args, "--out", str(tmp_path / "run"), "--quiet"]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("pgclaims train: error: ") and expected in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert not (tmp_path / "run").exists()


def test_too_few_steps_for_the_minibatches_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--steps below the 32 minibatches fails inside the update after writing files; it should
    be refused up front, naming the option."""
    argv = ["train", "--env", "Hopper-v5", "--algo", "ppo", "--iterations", "2", "--steps", "16",
            "--out", str(tmp_path / "run"), "--quiet"]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("pgclaims train: error: ") and "steps" in err
    assert not (tmp_path / "run").exists()


def test_a_two_iteration_run_writes_checkpoints_and_curve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "run"
    argv = ["train", "--env", "Hopper-v5", "--algo", "ppo", "--iterations", "2", "--steps", "256",
            "--out", str(out_dir), "--quiet"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert out.startswith(f"{out_dir}: 2 iterations, last mean return ")
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "ckpt_0000.safetensors", "ckpt_0001.safetensors", "ckpt_0002.safetensors",
        "config.json", "curve.json", "latest.safetensors", "sha256.json"]
    curve = json.loads((out_dir / "curve.json").read_text())
    assert [row["iteration"] for row in curve] == [0, 1]
    config = json.loads((out_dir / "config.json").read_text())
    assert config["hyper"]["steps_per_iteration"] == 256 and config["checkpoints"] == [0, 1, 2]

    code, out, _ = run(argv, capsys)  # the same command again resumes a finished run
    assert code == 0 and out.startswith(f"{out_dir}: 2 iterations")

    argv[argv.index("--iterations") + 1] = "3"
    code, _, err = run(argv, capsys)
    assert code == 2 and "different config" in err and err.count("\n") == 1


def test_fixtures_list_of_an_empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PGCLAIMS_FIXTURES", str(tmp_path))
    code, out, _ = run(["fixtures", "list"], capsys)
    assert code == 0 and out == "no fixtures\n"


def test_measure_summary_keeps_the_n_grid_and_averages_nested_records() -> None:
    """The stdout of ``pgclaims measure``: per-N means over repeats, the grid as it is."""
    nd = lambda x: {"__nd__": x, "dtype": "float64"}  # noqa: E731 - cache.to_json's encoding
    out = {"gradients": {"n": nd([256, 2048]), "true_cos": nd([[0.1, 0.3], [0.5, 0.7]]),
                         "pairwise": {"valuenet": nd([[0.0, 0.2], [0.4, 0.4]])},
                         "meta": {"true_grad_pairs": 4096}},
           "value": {"heldout_gae": nd([0.1, 0.2, 0.3])}}
    assert measure_summary(out) == {
        "gradients": {"n": [256, 2048], "true_cos": [0.2, 0.6],
                      "pairwise": {"valuenet": [0.1, 0.4]}},
        "value": {"heldout_gae": 0.2}}


def test_main_in_process_leaves_the_sigterm_handler_as_it_found_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The SIGTERM message (``pgclaims: terminated; re-run ...``, docs/faults.md) is set for the
    command's lifetime only: a test or notebook calling main() keeps its own handler."""
    import signal

    def mine(signum: int, frame: object) -> None:  # pragma: no cover - never sent
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        assert run(["plan", "--scale", "nosuch"], capsys)[0] == 2  # gets past parsing
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("stderr", ["open", "closed"])
def test_sigterm_says_how_to_resume_and_dies_of_it_even_without_stderr(stderr: str) -> None:
    """The handler dies of the signal whatever happens while it speaks (a closed stderr)."""
    code = ("import os, signal, threading, time\n"
            "from pgclaims.cli import _say_terminated\n"
            "threading.Timer = lambda *a: os.write(2, b'watchdog started')  # none without Ray\n"
            "_say_terminated(os.getpid())\n"
            + ("os.close(2)\n" if stderr == "closed" else "")
            + "os.kill(os.getpid(), signal.SIGTERM)\n"
            "time.sleep(30)\n"
            "raise SystemExit(3)  # the handler did not end the process\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == -15, proc.stderr
    if stderr == "open":
        assert "pgclaims: terminated; re-run the same command to resume" in proc.stderr
        assert "watchdog started" not in proc.stderr  # Ray was never used: nothing to bound

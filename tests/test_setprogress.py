"""The overall progress line of a training set: read from the runs' curve files, weighted by
environment steps, with an ETA from the rate since the call started (never from runs that were
already done), and said while the set trains."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from pgclaims.agents.setprogress import (
    RunWork,
    SetProgress,
    clock_text,
    iterations_done,
    weights,
)


def write_curve(run_dir: Path, rows: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "curve.json").write_text(json.dumps([{"iteration": i} for i in range(rows)]))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_share_is_weighted_by_steps_and_the_eta_counts_only_work_since_the_start(
        tmp_path: Path) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    write_curve(small, 50)  # resumed: half done before the call
    runs = [RunWork(small, 100, 2048), RunWork(big, 100, 20480)]  # big: absent so far
    clock = Clock()
    progress = SetProgress(runs, print, "runs", clock=clock)
    assert progress.total == 100 * 2048 + 100 * 20480
    assert "ETA not known until an iteration is saved" in progress.short()
    clock.t = 600.0
    write_curve(big, 10)  # 10 x 20480 steps in 10 minutes
    line = progress.line()
    done = 50 * 2048 + 10 * 20480
    assert f"{done / progress.total:.0%} done" in line
    rate = 10 * 20480 / 600.0
    assert f"ETA {clock_text((progress.total - done) / rate)}" in line
    assert line.startswith("training 2 runs (2.25e+06 environment steps): ")
    write_curve(small, 130)  # a curve never counts beyond the run's iterations
    assert progress.done() == 100 * 2048 + 10 * 20480


def test_a_missing_or_half_written_curve_counts_as_nothing(tmp_path: Path) -> None:
    assert iterations_done(tmp_path / "absent") == 0
    (tmp_path / "curve.json").write_text("[{\"iteration\": 0}, {\"itera")
    assert iterations_done(tmp_path) == 0


def test_the_line_is_said_while_the_set_trains_and_only_when_it_moved(tmp_path: Path) -> None:
    lines: list[str] = []
    run = tmp_path / "run"
    with SetProgress([RunWork(run, 20, 2048)], lines.append, "agents", every=0.05):
        time.sleep(0.2)
        assert lines == []  # nothing saved yet: nothing said
        write_curve(run, 10)
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
    assert len(lines) == 1 and "training 1 agent (" in lines[0] and "50% done" in lines[0]


def test_clock_text() -> None:
    assert clock_text(59) == "1 min" and clock_text(3600 + 33 * 60) == "1 h 33 min"


def test_a_run_whose_folder_goes_when_it_finishes_counts_whole(tmp_path: Path) -> None:
    """An ablation run's partial folder is removed once its curve file is written: the share
    must not fall back (it did: a finished lockstep group dropped out of the count)."""
    work, marker = tmp_path / "partial" / "k", tmp_path / "runs" / "k.json"
    write_curve(work, 40)
    run = RunWork(work, 50, 2048, finished=marker)
    progress = SetProgress([run], print)
    assert progress.done() == 40 * 2048
    marker.parent.mkdir()
    marker.write_text("{}")
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    assert progress.done() == 50 * 2048


def test_a_failing_say_ends_the_line_not_the_training(tmp_path: Path, monkeypatch) -> None:
    said, escaped = [], []

    def say(line: str) -> None:
        said.append(line)
        raise BrokenPipeError("stderr closed")

    monkeypatch.setattr(threading, "excepthook", escaped.append)
    run = tmp_path / "run"
    with SetProgress([RunWork(run, 20, 2048)], say, every=0.02):
        write_curve(run, 5)
        deadline = time.monotonic() + 5
        while not said and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
    assert len(said) == 1 and escaped == []  # tried once, stopped quietly


def test_known_costs_weigh_the_share_and_a_run_without_one_takes_their_median_per_step(
        tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    runs = [RunWork(a, 100, 2048, cost=1.0), RunWork(b, 10, 20480, cost=5.0),
            RunWork(c, 100, 2048)]
    # per step 1/2048 and 0.5/2048: c is priced at the median, 0.75 an iteration
    assert weights(runs) == [1.0, 5.0, 0.75]
    assert weights([RunWork(a, 1, 2048), RunWork(b, 1, 20480)]) == [2048.0, 20480.0]
    clock = Clock()
    progress = SetProgress(runs, print, clock=clock)
    assert progress.total == 100 * 1.0 + 10 * 5.0 + 100 * 0.75
    clock.t = 60.0
    write_curve(b, 10)  # b, all of it: 50 of the 225 in a minute
    line = progress.line()
    assert line.startswith("training 3 runs (6.14e+05 environment steps): 22% done")
    assert f"ETA {clock_text(175 / (50 / 60))}" in line

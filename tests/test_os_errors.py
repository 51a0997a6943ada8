"""Every OS error is one line (issue 20, item 6): ``pgclaims CMD: error: PATH: reason``, exit
status 2, nothing half written, an existing file left as it was.

Faults are injected where every writer passes (:mod:`tests.faults`: ``os.fdopen`` runs out of
room, ``mkstemp``/``mkdir`` refuse under a folder); where this machine lets the tests mount a
tmpfs, the same commands also run against a real read-only and a real full file system.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pgclaims.cli import main
from tests.faults import full_disk, read_only, real_mounts

TRAIN = ["train", "--env", "Hopper-v5", "--algo", "ppo", "--iterations", "2", "--steps", "256",
         "--quiet"]
RESULTS = Path(__file__).parent / "data" / "results.json"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str, cmd: str, path: Path | str, reason: str) -> bool:
    return err == f"pgclaims {cmd}: error: {path}: {reason}\n"


def no_temporary_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@dataclass
class Tiny:
    """Stands in for a measurement: the commands' file handling is what is tested."""

    x: np.ndarray


@pytest.fixture
def quick_measure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """``pgclaims measure --what value`` returns a tiny record at once (counting calls)."""
    import pgclaims.measure

    calls: list[int] = []

    def value(*args: object, **kwargs: object) -> Tiny:
        calls.append(1)
        return Tiny(np.arange(3.0))

    monkeypatch.setattr(pgclaims.measure, "value", value)
    monkeypatch.setenv("PGCLAIMS_CACHE", str(tmp_path / "cache"))
    return calls


@pytest.fixture
def ckpt(trained_runs: object) -> str:
    _, run_dir = trained_runs("ppo")  # type: ignore[operator]
    return str(run_dir / "ckpt_0002.safetensors")


# -- train ------------------------------------------------------------------------------------


def test_train_out_an_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    code, out, err = run([*TRAIN, "--out", str(target)], capsys)
    assert (code, out) == (2, "")
    assert one_line(err, "train", target, "exists and is not a folder (--out names the run "
                    "folder)")
    assert target.read_text() == "mine"


def test_train_into_a_read_only_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    read_only(monkeypatch, tmp_path / "ro")
    code, out, err = run([*TRAIN, "--out", str(tmp_path / "ro" / "run")], capsys)
    assert (code, out) == (2, "")
    assert one_line(err, "train", tmp_path / "ro" / "run", "Read-only file system")


def test_train_on_a_full_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    full_disk(monkeypatch, room=100)
    run_dir = tmp_path / "run"
    code, out, err = run([*TRAIN, "--out", str(run_dir)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"pgclaims train: error: {run_dir}/") and err.count("\n") == 1
    assert err.endswith(": No space left on device\n")
    assert no_temporary_files(tmp_path)


def test_fixtures_train_into_a_read_only_store(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGCLAIMS_FIXTURES", str(tmp_path / "fixtures"))
    read_only(monkeypatch, tmp_path / "fixtures")
    code, out, err = run(["fixtures", "train", "--env", "Hopper-v5", "--algo", "ppo",
                          "--iterations", "2", "--quiet"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"pgclaims fixtures: error: {tmp_path / 'fixtures'}")
    assert err.endswith(": Read-only file system\n") and err.count("\n") == 1


# -- measure ----------------------------------------------------------------------------------


def test_measure_out_an_existing_folder_is_refused_before_measuring(
        ckpt: str, tmp_path: Path, quick_measure: list[int],
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["measure", ckpt, "--what", "value", "--quiet", "--out",
                          str(tmp_path)], capsys)
    assert (code, out) == (2, "")
    assert one_line(err, "measure", tmp_path, "is a folder; --out takes a file name")
    assert quick_measure == []


def test_measure_out_in_a_read_only_folder_is_refused_before_measuring(
        ckpt: str, tmp_path: Path, quick_measure: list[int], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    read_only(monkeypatch, tmp_path / "ro")
    code, out, err = run(["measure", ckpt, "--what", "value", "--quiet", "--out",
                          str(tmp_path / "ro" / "m.json")], capsys)
    assert (code, out) == (2, "")
    assert one_line(err, "measure", tmp_path / "ro", "Read-only file system")
    assert quick_measure == []


def test_measure_with_a_read_only_cache(ckpt: str, tmp_path: Path, quick_measure: list[int],
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    read_only(monkeypatch, tmp_path / "cache")
    code, out, err = run(["measure", ckpt, "--what", "value", "--quiet"], capsys)
    assert (code, out) == (2, "")
    assert one_line(err, "measure", tmp_path / "cache" / "measure", "Read-only file system")
    assert quick_measure == []


def test_measure_out_on_a_full_disk_keeps_the_previous_file(
        ckpt: str, tmp_path: Path, quick_measure: list[int], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.json"
    target.write_text('{"previous": true}')
    (tmp_path / "cache").mkdir()
    full_disk(monkeypatch, room=10)
    code, _, err = run(["measure", ckpt, "--what", "value", "--quiet", "--out", str(target)],
                       capsys)
    assert code == 2
    assert one_line(err, "measure", target, "No space left on device")
    assert json.loads(target.read_text()) == {"previous": True}
    assert no_temporary_files(tmp_path)


# -- report -----------------------------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "reports" / "run"
    folder.mkdir(parents=True)
    shutil.copy(RESULTS, folder / "results.json")
    return folder


def test_report_on_a_full_disk_names_the_file_and_keeps_the_previous_one(
        run_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    (run_dir / "index.html").write_text("previous report")
    full_disk(monkeypatch, room=1000)
    code, out, err = run(["report", str(run_dir)], capsys)
    assert (code, out) == (2, "")
    assert one_line(err, "report", run_dir / "index.html", "No space left on device")
    assert (run_dir / "index.html").read_text() == "previous report"
    assert no_temporary_files(run_dir)


def test_report_into_a_read_only_folder(run_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ro").mkdir()
    read_only(monkeypatch, tmp_path / "ro")
    code, out, err = run(["report", str(run_dir), "--out", str(tmp_path / "ro" / "r.html")],
                         capsys)
    assert (code, out) == (2, "")
    assert one_line(err, "report", tmp_path / "ro", "Read-only file system")


# -- real file systems ------------------------------------------------------------------------


def test_on_real_read_only_and_full_file_systems(
        tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same commands against a read-only tmpfs and a 64 KiB one (skipped where the tests
    may not mount: they need root)."""
    with real_mounts(tmp_path) as (ro, full):
        code, _, err = run([*TRAIN, "--out", str(ro / "run")], capsys)
        assert code == 2 and one_line(err, "train", ro / "run", "Read-only file system")
        code, _, err = run([*TRAIN, "--out", str(full / "run")], capsys)
        assert code == 2 and err.count("\n") == 1
        assert err.startswith(f"pgclaims train: error: {full / 'run'}/")
        assert err.endswith(": No space left on device\n")
        assert no_temporary_files(full)
        shutil.rmtree(full / "run")
        (full / "filler").write_bytes(bytes(60 * 1024))  # 4 KiB left: less than a report
        code, _, err = run(["report", str(run_dir), "--out", str(full / "index.html")], capsys)
        assert code == 2 and one_line(err, "report", full / "index.html",
                                      "No space left on device")
        assert sorted(p.name for p in full.iterdir()) == ["filler"]

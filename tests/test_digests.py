"""Digests (issue 20, item 2): a changed file is one error naming it, never a measurement.

Fixture files have their sha256 in the manifest, checked on load; ``pgclaims fixtures verify``
checks the whole store and, with ``--write-missing``, records the digests an entry lacks after
checking its files; a run folder has its own ``sha256.json``; a cache entry carries the digest
of its content and is recomputed, with a warning, when it does not match.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pgclaims.agents import checkpoint, fixtures, storeverify
from pgclaims.agents.agent import Agent, TrainConfig
from pgclaims.agents.fixtures import FixtureError
from pgclaims.cli import main
from pgclaims.measure import cache

FIXTURE = ("Hopper-v5", "trpo", 0, 2)
REPO_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_a_bit(path: Path) -> None:
    """Flip the sign bit of the file's last float (a tensor byte, not the header)."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x80
    path.write_bytes(bytes(data))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fixtures")
    env_id, algo, seed, iterations = FIXTURE
    fixtures.train_fixture(TrainConfig.create(env_id, algo, seed, iterations), base=base,
                           progress=False)
    return base


@pytest.fixture
def store(trained_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the trained store, which the test may damage; PGCLAIMS_FIXTURES points at it."""
    base = tmp_path / "fixtures"
    shutil.copytree(trained_store, base)
    monkeypatch.setenv("PGCLAIMS_FIXTURES", str(base))
    return base


def entry_of(base: Path) -> dict:
    [entry] = json.loads((base / "manifest.json").read_text())["agents"]
    return entry


def test_every_fixture_file_has_its_sha256_in_the_manifest(store: Path) -> None:
    entry = entry_of(store)
    folder = store / "store" / entry["key"]
    names = ["ckpt_0000.safetensors", "ckpt_0001.safetensors", "ckpt_0002.safetensors",
             "config.json", "curve.json"]
    assert entry["sha256"] == {n: sha256(folder / n) for n in names}
    assert sorted(p.name for p in folder.iterdir()) == names  # nothing kept only to resume


def test_a_flipped_bit_in_a_fixture_checkpoint_stops_its_load(store: Path) -> None:
    env_id, algo, seed, iterations = FIXTURE
    path = store / "store" / entry_of(store)["key"] / "ckpt_0002.safetensors"
    flip_a_bit(path)
    with pytest.raises(FixtureError) as err:
        fixtures.load(env_id, algo, seed, 2, iterations, base=store)
    assert str(err.value).startswith(f"{path}: sha256 ") and "\n" not in str(err.value)
    fixtures.load(env_id, algo, seed, 1, iterations, base=store)  # the others still load


def test_measure_of_a_changed_checkpoint_is_one_error_before_any_sample(
        trained_runs: object, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pgclaims.measure

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured a changed checkpoint")

    monkeypatch.setattr(pgclaims.measure, "value", never)
    monkeypatch.setenv("PGCLAIMS_CACHE", str(tmp_path / "cache"))
    _, src = trained_runs("ppo")  # type: ignore[operator]
    shutil.copytree(src, tmp_path / "run")
    path = tmp_path / "run" / "ckpt_0002.safetensors"
    flip_a_bit(path)
    code, out, err = run(["measure", str(path), "--what", "value", "--quiet"], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"pgclaims measure: error: {path}: sha256 ") and err.count("\n") == 1


def test_a_changed_curve_is_refused(store: Path) -> None:
    env_id, algo, seed, iterations = FIXTURE
    path = store / "store" / entry_of(store)["key"] / "curve.json"
    rows = json.loads(path.read_text())
    rows[-1]["mean_return"] += 1000.0
    path.write_text(json.dumps(rows))
    with pytest.raises(FixtureError, match=f"^{path}: sha256 "):
        fixtures.curve(env_id, algo, seed, iterations, base=store)


def _strip_digests(base: Path) -> None:
    doc = json.loads((base / "manifest.json").read_text())
    for entry in doc["agents"]:
        entry.pop("sha256", None)
    (base / "manifest.json").write_text(json.dumps(doc))


def test_an_entry_without_digests_is_refused_with_the_command_that_records_them(
        store: Path) -> None:
    """An entry of the time before digests (the background training writes such entries) is
    not loaded unverified: the error names the command that records its digests."""
    _strip_digests(store)
    env_id, algo, seed, iterations = FIXTURE
    with pytest.raises(FixtureError, match="pgclaims fixtures verify --write-missing"):
        fixtures.load(env_id, algo, seed, 2, iterations, base=store)


def test_fixtures_verify_checks_the_whole_store(store: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["fixtures", "verify"], capsys)
    assert code == 0 and out.strip().endswith(
        "1 agents, 5 files checked; 0 ablation runs, 0 checked; no problem")
    folder = store / "store" / entry_of(store)["key"]
    flip_a_bit(folder / "ckpt_0001.safetensors")
    (folder / "ckpt_0000.safetensors").unlink()
    (store / "store" / "0123456789abcdef").mkdir()  # an agent in training: noted, not a problem
    code, out, _ = run(["fixtures", "verify"], capsys)
    lines = out.splitlines()
    assert code == 1
    assert any(line.startswith(f"{folder / 'ckpt_0000.safetensors'}: missing") for line in lines)
    assert any("0123456789abcdef" in line and line.startswith("note:") for line in lines)
    assert lines[-1].endswith("1 problems")


def test_write_missing_records_digests_after_checking_each_file(
        store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digested = entry_of(store)["sha256"]
    _strip_digests(store)
    code, out, _ = run(["fixtures", "verify"], capsys)
    assert code == 1 and "--write-missing" in out
    code, out, _ = run(["fixtures", "verify", "--write-missing"], capsys)
    assert code == 0, out
    assert entry_of(store)["sha256"] == digested
    assert run(["fixtures", "verify"], capsys)[0] == 0
    env_id, algo, seed, iterations = FIXTURE
    fixtures.load(env_id, algo, seed, 2, iterations, base=store)


def test_write_missing_does_not_bless_a_damaged_file(store: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _strip_digests(store)
    path = store / "store" / entry_of(store)["key"] / "ckpt_0002.safetensors"
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    code, out, _ = run(["fixtures", "verify", "--write-missing"], capsys)
    assert code == 1 and f"not digested: {path}" in out
    assert "sha256" not in entry_of(store)


def test_write_missing_never_replaces_a_digest(store: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    before = entry_of(store)["sha256"]
    flip_a_bit(store / "store" / entry_of(store)["key"] / "ckpt_0002.safetensors")
    code, _, _ = run(["fixtures", "verify", "--write-missing"], capsys)
    assert code == 1 and entry_of(store)["sha256"] == before


def test_train_set_verifies_the_agents_it_skips(store: Path) -> None:
    env_id, algo, seed, iterations = FIXTURE
    config = TrainConfig.create(env_id, algo, seed, iterations)
    lines: list[str] = []
    assert fixtures.train_set([config], say=lines.append) == []
    assert "already in the store (their sha256 verified)" in lines[0]
    path = store / "store" / entry_of(store)["key"] / "ckpt_0001.safetensors"
    flip_a_bit(path)
    with pytest.raises(FixtureError, match=f"^{path}: sha256 "):
        fixtures.train_set([config], say=lines.append)


def test_a_run_folder_records_and_checks_its_digests(trained_runs: object,
                                                     tmp_path: Path) -> None:
    _, src = trained_runs("ppo")  # type: ignore[operator]
    run_dir = tmp_path / "run"
    shutil.copytree(src, run_dir)
    recorded = json.loads((run_dir / "sha256.json").read_text())["files"]
    written = sorted(p.name for p in run_dir.iterdir() if p.name != "sha256.json")
    assert recorded == {name: sha256(run_dir / name) for name in written}
    flip_a_bit(run_dir / "ckpt_0002.safetensors")
    with pytest.raises(ValueError, match=f"^{run_dir / 'ckpt_0002.safetensors'}: sha256 "):
        checkpoint.load(run_dir / "ckpt_0002.safetensors")
    checkpoint.load(run_dir / "ckpt_0001.safetensors")


def test_lockstep_runs_record_their_digests(tmp_path: Path) -> None:
    from pgclaims.agents.lockstep import train_together

    configs = [TrainConfig.create("Hopper-v5", algo, 0, 2, steps_per_iteration=256)
               for algo in ("ppo", "trpo")]
    dirs = [tmp_path / "a", tmp_path / "b"]
    train_together(configs, dirs)
    for run_dir in dirs:
        recorded = json.loads((run_dir / "sha256.json").read_text())["files"]
        written = sorted(p.name for p in run_dir.iterdir() if p.name != "sha256.json")
        assert recorded == {name: sha256(run_dir / name) for name in written}
        assert ".lock" not in written


# ---------------------------------------------------------------------------------------------
# Cache entries


@dataclass
class Toy:
    x: np.ndarray
    meta: dict


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PGCLAIMS_CACHE", str(tmp_path))
    return tmp_path / "measure"


@pytest.fixture(scope="module")
def agent() -> Agent:
    from pgclaims.agents.agent import make_agent

    return make_agent(TrainConfig.create("Hopper-v5", "ppo", 0, 2, steps_per_iteration=256))


def test_an_edited_cache_entry_is_discarded_with_a_warning_and_recomputed(
        agent: Agent, cache_root: Path) -> None:
    calls = []

    def compute() -> Toy:
        calls.append(1)
        return Toy(np.array([0.25, 0.5]), {"n": 2})

    cache.cached("toy", agent, {}, 0, Toy, compute)
    [path] = (cache_root / "toy").glob("*.json")
    record = json.loads(path.read_text())
    record["result"]["x"]["__nd__"] = [0.75, 0.5]  # another valid value
    path.write_text(json.dumps(record))
    with pytest.warns(UserWarning, match=str(path)):
        again = cache.cached("toy", agent, {}, 0, Toy, compute)
    assert len(calls) == 2 and again.x.tolist() == [0.25, 0.5]
    assert json.loads(path.read_text())["result"]["x"]["__nd__"] == [0.25, 0.5]


def test_a_cache_entry_of_another_index_is_discarded(agent: Agent, cache_root: Path) -> None:
    """A file copied over another (same format, valid digest of its own) is not read."""
    cache.cached("toy", agent, {"a": 1}, 0, Toy, lambda: Toy(np.array([1.0]), {}))
    cache.cached("toy", agent, {"a": 2}, 0, Toy, lambda: Toy(np.array([2.0]), {}))
    one, two = sorted((cache_root / "toy").glob("*.json"),
                      key=lambda p: json.loads(p.read_text())["index"]["args"]["a"])
    shutil.copyfile(two, one)
    with pytest.warns(UserWarning, match=str(one)):
        got = cache.cached("toy", agent, {"a": 1}, 0, Toy, lambda: Toy(np.array([1.0]), {}))
    assert got.x.tolist() == [1.0]


def test_a_cache_entry_from_before_digests_is_read_and_gets_one(agent: Agent,
                                                                cache_root: Path) -> None:
    cache.cached("toy", agent, {}, 0, Toy, lambda: Toy(np.array([3.0]), {}))
    [path] = (cache_root / "toy").glob("*.json")
    record = json.loads(path.read_text())
    del record["sha256"]
    path.write_text(json.dumps(record))

    def never() -> Toy:
        raise AssertionError("recomputed an intact entry")

    assert cache.cached("toy", agent, {}, 0, Toy, never).x.tolist() == [3.0]
    assert json.loads(path.read_text())["sha256"] == cache.digest(record["index"],
                                                                  record["result"])


# ---------------------------------------------------------------------------------------------
# The committed store


def test_the_committed_fixture_store_is_fully_digested_and_intact() -> None:
    """Every entry of fixtures/manifest.json has its digests and every file matches them (run
    ``pgclaims fixtures verify --write-missing`` after adding agents with an older pgclaims)."""
    if not (REPO_FIXTURES / "manifest.json").exists():
        pytest.skip("no fixture store in this checkout")
    lines: list[str] = []
    problems = storeverify.verify(REPO_FIXTURES, say=lines.append)
    assert problems == 0, "\n".join(lines)

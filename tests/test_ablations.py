"""The ablation store (pgclaims.agents.ablations): runs, budget, resuming, the manifest."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pgclaims.agents import ablation_training, ablations, fixtures
from pgclaims.agents.ablations import AblationMissing, Run
from pgclaims.agents.agent import TrainConfig, lr_factor
from pgclaims.cli import main
from pgclaims.suite.scales import LR_GRID

ENV = "Hopper-v5"
TINY = {"steps": 512, "budget": 4 * 512}
"""4 iterations of 512 pairs: the smallest runs that still take a few updates."""


def test_every_run_gets_the_committed_agents_budget() -> None:
    runs = ablations.runs_for("regime", "authors", ENV, "ppo", 0, LR_GRID, (2048, 20480))
    assert [(r.steps, r.multiplier) for r in runs] == [
        (2048, 0.5), (2048, 1.0), (2048, 2.0), (20480, 0.5), (20480, 1.0), (20480, 2.0)]
    assert {r.budget for r in runs} == {500 * 2048}
    assert [r.iterations for r in runs] == [500] * 3 + [50] * 3
    table1 = TrainConfig.create(ENV, "ppo", 0, protocol="authors").hyper.policy_lr
    big = runs[3].config()
    assert big.hyper.policy_lr == 0.5 * table1 and big.hyper.steps_per_iteration == 20480
    # the authors' PPO anneals over the run's own 50 iterations: the last one gets 1/50
    assert big.hyper.anneal_lr and lr_factor(big.hyper, 49, big.iterations) == pytest.approx(
        1 / 50)
    kl = ablations.runs_for("regime", "authors", ENV, "trpo", 0, (2.0,))[0].config().hyper
    assert kl.max_kl == 2 * TrainConfig.create(ENV, "trpo", 0).hyper.max_kl
    [zero] = ablations.runs_for("baseline", "authors", ENV, "trpo", 3)
    assert zero.config().hyper.baseline == "zero" and zero.iterations == 500


def test_only_the_table1_value_net_run_is_the_committed_fixture() -> None:
    runs = ablations.runs_for("regime", "authors", ENV, "ppo", 0, LR_GRID, (2048, 20480))
    assert [r.committed for r in runs] == [False, True, False, False, False, False]
    assert not ablations.runs_for("baseline", "authors", ENV, "ppo", 0)[0].committed
    with pytest.raises(ValueError, match="committed fixture"):
        ablation_training.train_run(runs[1])
    with pytest.raises(ValueError, match="whole number of iterations"):
        Run("authors", ENV, "ppo", 0, steps=20480, budget=30_000)


def test_final_return_weights_each_episode_of_the_last_window_once() -> None:
    curve = {"pairs": [10, 20, 30, 40], "mean_return": [100.0, 1.0, float("nan"), 4.0],
             "episodes": [5, 1, 0, 3]}
    assert ablations.final_return(curve, 30) == pytest.approx((1 * 1 + 4 * 3) / 4)
    assert ablations.final_return(curve, 40) == pytest.approx((500 + 1 + 12) / 9)
    assert ablations.final_return({**curve, "episodes": [0, 0, 0, 0]}, 40) is None


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run, dict]:
    base = tmp_path_factory.mktemp("fx")
    run = Run("authors", ENV, "ppo", 0, multiplier=2.0, **TINY)
    return base, run, ablation_training.train_run(run, base)


def test_a_run_keeps_its_curve_and_nothing_else(trained: tuple[Path, Run, dict]) -> None:
    base, run, entry = trained
    key = run.config().key()
    assert entry["key"] == key and entry["total_pairs"] == TINY["budget"]
    assert entry["variant"]["step_size"] == 2 * TrainConfig.create(ENV, "ppo", 0).hyper.policy_lr
    files = sorted(p.relative_to(ablations.root(base)).as_posix()
                   for p in ablations.root(base).rglob("*") if p.is_file())
    assert [f for f in files if not f.endswith(".lock")] == ["manifest.json", f"runs/{key}.json"]
    assert not (ablations.root(base) / "partial" / key).exists()
    curve = ablations.curve(run, base)
    assert curve["pairs"] == [512, 1024, 1536, 2048]
    assert entry["final_mean_return"] == ablations.final_return(curve, 10 * 2048)
    [listed] = ablations.read_manifest(base)["runs"]
    assert listed == entry


def test_an_interrupted_run_resumes_to_the_same_curve(trained: tuple[Path, Run, dict],
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    base, run, entry = trained
    monkeypatch.setattr(ablation_training, "SAVE_PAIRS", 2 * TINY["steps"])  # every 2 its
    assert ablation_training.train_run(run, tmp_path, stop_after=3) is None
    work = ablations.root(tmp_path) / "partial" / run.config().key()
    assert len(json.loads((work / "curve.json").read_text())) == 2  # resumes from iteration 2
    assert ablations.read_manifest(tmp_path)["runs"] == []
    resumed = ablation_training.train_run(run, tmp_path)
    assert resumed is not None and not work.exists()
    assert ablations.curve(run, tmp_path) == ablations.curve(run, base)
    assert resumed["final_mean_return"] == entry["final_mean_return"]
    assert resumed["cpu_iterations"] == 2


def test_a_finished_run_is_never_trained_again(trained: tuple[Path, Run, dict]) -> None:
    base, run, entry = trained
    path = ablations.root(base) / "runs" / f"{entry['key']}.json"
    before = path.stat().st_mtime_ns
    assert ablation_training.train_run(run, base) == entry
    lines: list[str] = []
    assert ablation_training.train_runs([run], say=lines.append, base=base) == []
    assert path.stat().st_mtime_ns == before and lines[0].startswith("1 of 1 runs already")


def test_a_run_file_is_checked_against_its_digest(trained: tuple[Path, Run, dict],
                                                  tmp_path: Path) -> None:
    """Issue 20's digests for the ablation store: a finished run's manifest entry holds the
    sha256 of its curve file, the claims' read checks it, and ``fixtures verify`` checks every
    run (and records digests for entries written before them, with --write-missing)."""
    import shutil

    from pgclaims import fsio
    from pgclaims.agents import storeverify

    base, run, entry = trained
    copy = tmp_path / "fx"
    shutil.copytree(ablations.root(base), ablations.root(copy))
    path = ablations.root(copy) / "runs" / f"{entry['key']}.json"
    assert entry["sha256"] == fsio.sha256_file(path)
    lines: list[str] = []
    assert storeverify.verify_ablations(copy, say=lines.append) == (1, 1, 0)
    data = json.loads(path.read_text())
    data["curve"]["mean_return"][-1] += 1000.0  # an edit to another valid curve
    path.write_text(json.dumps(data))
    with pytest.raises(fixtures.FixtureError, match=rf"{path}: sha256 .* runs\[0\]\.sha256"):
        ablations.curve(run, copy)
    assert storeverify.verify_ablations(copy, say=lines.append) == (1, 0, 1)
    manifest = ablations.root(copy) / "manifest.json"
    doc = json.loads(manifest.read_text())
    del doc["runs"][0]["sha256"]  # an entry from before digests
    manifest.write_text(json.dumps(doc))
    assert storeverify.verify_ablations(copy, say=lines.append) == (1, 0, 1)
    assert "have no sha256 digest" in lines[-1] and "--write-missing" in lines[-1]
    assert storeverify.verify_ablations(copy, write_missing=True, say=lines.append) == (1, 1, 0)
    assert ablations.curve(run, copy)["mean_return"][-1] == data["curve"]["mean_return"][-1]
    path.unlink()
    assert storeverify.verify_ablations(copy, say=lines.append) == (1, 0, 1)
    assert lines[-1].startswith(f"{path}: missing (listed by runs[0]")


def test_a_missing_run_names_the_command_that_trains_it(tmp_path: Path) -> None:
    run = Run("authors", ENV, "trpo", 3, multiplier=0.5, steps=20480)
    with pytest.raises(AblationMissing, match="ablation fixtures missing") as err:
        ablations.curve(run, tmp_path)
    assert ("run: pgclaims fixtures train-ablations --study regime --protocol authors --env "
            "Hopper-v5 --algo trpo --seeds 3 --multipliers 0.5 --steps 20480") in str(err.value)


def test_a_corrupt_manifest_is_named_and_left_intact(tmp_path: Path) -> None:
    path = ablations.root(tmp_path) / "manifest.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"runs": 3}')
    with pytest.raises(fixtures.FixtureError, match=r"manifest.json: field 'runs'"):
        ablations.read_manifest(tmp_path)
    assert path.read_text() == '{"runs": 3}'


def test_the_committed_runs_curve_comes_from_the_fixture_store(tmp_path: Path) -> None:
    config = TrainConfig.create(ENV, "trpo", 0, 1, protocol="authors")
    fixtures.train_fixture(config, base=tmp_path, progress=False)
    run = Run("authors", ENV, "trpo", 0, budget=2048)
    assert run.committed
    rows = fixtures.curve(ENV, "trpo", 0, 1, tmp_path, protocol="authors")
    assert ablations.curve(run, tmp_path) == ablations.compact_curve(rows, 2048)


def test_the_command_trains_in_parallel_and_lists(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PGCLAIMS_FIXTURES", str(tmp_path))
    args = ["fixtures", "train-ablations", "--study", "baseline", "regime", "--env", ENV,
            "--algo", "trpo", "--seeds", "0", "--multipliers", "1", "--steps", "256,512",
            "--budget", "2048", "--jobs", "2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "0 of 3 runs already" in err and "[3/3]" in err and "ETA" in err
    assert main(args) == 0
    assert "3 of 3 runs already" in capsys.readouterr().err
    assert main(["fixtures", "list", "--ablations"]) == 0
    out = capsys.readouterr().out
    assert "zero baseline" in out and "x1 at 256" in out and "x1 at 512" in out
    finals = [r["final_mean_return"] for r in ablations.read_manifest(tmp_path)["runs"]]
    assert len(finals) == 3 and all(f is None or math.isfinite(f) for f in finals)


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_a_runs_config_is_table1_with_only_the_variant_changed(algo: str) -> None:
    k = ablations.knob(algo)
    base = getattr(TrainConfig.create(ENV, algo, 0, protocol="corrected").hyper, k)
    run = Run("corrected", ENV, algo, 2, baseline="zero", multiplier=0.5, steps=20480)
    assert run.config() == TrainConfig.create(
        ENV, algo, 2, 50, (), protocol="corrected", baseline="zero", steps_per_iteration=20480,
        **{k: base * 0.5})


def test_a_lockstep_group_stores_the_runs_it_would_store_alone(
        trained: tuple[Path, Run, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, run, entry = trained
    others = [Run("authors", ENV, "trpo", 1, multiplier=0.5, **TINY),
              Run("authors", ENV, "ppo", 2, baseline="zero", **TINY)]
    monkeypatch.setattr(ablation_training, "SAVE_PAIRS", 2 * TINY["steps"])
    assert ablation_training.train_group([run, *others], tmp_path, stop_after=3) == []
    entries = ablation_training.train_group([run, *others], tmp_path)  # resumed
    assert sorted(e["key"] for e in entries) == sorted(r.config().key() for r in [run, *others])
    assert all(e["lockstep"] == 3 and e["cpu_iterations"] == 2 for e in entries)
    assert ablations.curve(run, tmp_path) == ablations.curve(run, base)  # as trained alone
    alone = ablation_training.train_run(others[0], tmp_path / "alone")
    assert ablations.curve(others[0], tmp_path) == ablations.curve(others[0], tmp_path / "alone")
    assert alone["final_mean_return"] == next(
        e for e in entries if e["key"] == alone["key"])["final_mean_return"]
    assert not list((ablations.root(tmp_path) / "partial").glob("*/"))


def test_lockstep_groups_hold_one_env_and_batch_size() -> None:
    runs = [Run("authors", env, "ppo", s, multiplier=m, steps=n)
            for env in (ENV, "Walker2d-v5") for n in (2048, 20480) for m in LR_GRID
            for s in range(5)]
    groups = ablation_training.lockstep_groups(runs, jobs=2)
    assert all(len({(r.env_id, r.steps) for r in g}) == 1 for g in groups)
    assert sorted(len(g) for g in groups) == [7] * 4 + [8] * 4  # 15 runs a kind, >= 2 groups
    assert sorted(map(repr, (r for g in groups for r in g))) == sorted(map(repr, runs))
    with pytest.raises(ValueError, match="one environment and one batch size"):
        ablation_training.train_group(runs[:1] + runs[-1:])


def test_an_iteration_is_priced_from_its_own_protocol_else_from_the_others() -> None:
    def entry(protocol: str, steps: int, cpu: float) -> dict[str, object]:
        return {"protocol": protocol, "env_id": "Hopper-v5", "algo": "ppo", "cpu_time_s": cpu,
                "cpu_iterations": 10, "variant": {"baseline": "valuenet",
                                                  "steps_per_iteration": steps}}

    costs = ablations.iteration_costs([entry("authors", 2048, 5.0), entry("authors", 2048, 7.0),
                                       entry("table1", 2048, 10.0), entry("corrected", 20480, 30.0),
                                       {**entry("authors", 20480, 1.0), "cpu_iterations": 0}])
    assert costs == {("authors", "Hopper-v5", "ppo", "valuenet", "2048"): 0.6,
                     ("table1", "Hopper-v5", "ppo", "valuenet", "2048"): 1.0,
                     ("corrected", "Hopper-v5", "ppo", "valuenet", "20480"): 3.0}
    assert ablations.iteration_cost(costs, Run("authors", "Hopper-v5", "ppo", 0)) == 0.6
    assert ablations.iteration_cost(costs, Run("corrected", "Hopper-v5", "ppo", 0)) == 0.8
    assert ablations.iteration_cost(
        costs, Run("authors", "Hopper-v5", "ppo", 0, steps=20480)) == 3.0
    assert ablations.iteration_cost(
        costs, Run("authors", "Hopper-v5", "ppo", 0, baseline="zero")) is None
    assert ablations.iteration_cost(costs, Run("authors", "Walker2d-v5", "ppo", 0)) is None

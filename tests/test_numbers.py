"""Every number checked (issue 20, item 5).

Learning rates, KL bounds, clip ranges, cores, efficiency and counts are finite and in range,
refused in one line naming the option before anything is trained, measured or written; a flag
of the other algorithm names both; a run whose loss or parameters stop being finite ends with
an error naming the iteration, and no checkpoint holding a NaN is ever written.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pgclaims.agents import checkpoint, ppo, trpo
from pgclaims.agents import train as train_mod
from pgclaims.agents.agent import TrainConfig, make_agent
from pgclaims.cli import main

TRAIN = ["train", "--env", "Hopper-v5", "--iterations", "2", "--steps", "256", "--quiet"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(["--algo", "ppo", "--value-lr", "inf"],
                 "argument --value-lr: expected a finite number > 0, got 'inf'", id="value-lr-inf"),
    pytest.param(["--algo", "ppo", "--policy-lr", "nan"],
                 "argument --policy-lr: expected a finite number > 0, got 'nan'",
                 id="policy-lr-nan"),
    pytest.param(["--algo", "ppo", "--policy-lr", "0"],
                 "argument --policy-lr: expected a finite number > 0, got '0'", id="policy-lr-0"),
    pytest.param(["--algo", "trpo", "--max-kl", "-1"],
                 "argument --max-kl: expected a finite number > 0, got '-1'", id="max-kl-negative"),
    pytest.param(["--algo", "trpo", "--max-kl", "1e400"],
                 "argument --max-kl: expected a finite number > 0, got '1e400'",
                 id="max-kl-overflow"),
    pytest.param(["--algo", "ppo", "--checkpoints", ""],
                 "argument --checkpoints: expected at least one integer, got ''",
                 id="checkpoints-empty"),
    pytest.param(["--algo", "ppo", "--steps", "0"],
                 "argument --steps: expected an integer >= 1, got '0'", id="steps-0"),
    pytest.param(["--algo", "ppo", "--seed", "-1"],
                 "argument --seed: expected an integer in 0..4294967295, got '-1'",
                 id="seed-negative"),
    pytest.param(["--algo", "trpo", "--policy-lr", "1e-3"],
                 "--policy-lr is PPO's policy learning rate, not an option of --algo trpo",
                 id="trpo-with-policy-lr"),
    pytest.param(["--algo", "ppo", "--max-kl", "0.1"],
                 "--max-kl is TRPO's KL bound, not an option of --algo ppo", id="ppo-with-max-kl"),
])
def test_a_bad_training_number_is_one_line_naming_the_option(
        args: list[str], expected: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([*TRAIN, *args, "--out", str(tmp_path / "run")], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("pgclaims train: error: ") and expected in err, err
    assert err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(["--cores", "-3"], "argument --cores: expected an integer >= 1, got '-3'",
                 id="cores-negative"),
    pytest.param(["--cores", "0"], "argument --cores: expected an integer >= 1, got '0'",
                 id="cores-0"),
    pytest.param(["--efficiency", "0"],
                 "argument --efficiency: expected a finite number in (0, 1], got '0'",
                 id="efficiency-0"),
    pytest.param(["--efficiency", "1.5"],
                 "argument --efficiency: expected a finite number in (0, 1], got '1.5'",
                 id="efficiency-above-1"),
    pytest.param(["--efficiency", "nan"],
                 "argument --efficiency: expected a finite number in (0, 1], got 'nan'",
                 id="efficiency-nan"),
])
def test_a_bad_plan_number_is_refused_before_measuring_throughput(
        args: list[str], expected: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pgclaims.suite import costs

    def never(*a: object, **k: object) -> None:
        raise AssertionError("throughput measured before the options were checked")

    monkeypatch.setattr(costs, "measure_rates", never)
    code, out, err = run(["plan", "--scale", "smoke", *args], capsys)
    assert (code, out) == (2, "")
    assert err == f"pgclaims plan: error: {expected}\n"


@pytest.mark.parametrize(("argv", "expected"), [
    pytest.param(["fixtures", "train-set", "--env", "Hopper-v5", "--jobs", "0"],
                 "argument --jobs: expected an integer >= 1, got '0'", id="jobs-0"),
    pytest.param(["fixtures", "train-set", "--env", "Hopper-v5", "--seeds", ""],
                 "argument --seeds: expected at least one integer", id="seeds-empty"),
    pytest.param(["measure", "x.safetensors", "--seed", "-2"],
                 "argument --seed: expected an integer in 0..4294967295, got '-2'",
                 id="measure-seed"),
])
def test_other_counts_are_checked(argv: list[str], expected: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert (code, out) == (2, "") and expected in err and err.count("\n") == 1


@pytest.mark.parametrize(("cls", "env", "field", "value"), [
    (ppo.PPOConfig, "Hopper-v5", "policy_lr", math.inf),
    (ppo.PPOConfig, "Hopper-v5", "value_lr", -1e-3),
    (ppo.PPOConfig, "Hopper-v5", "clip_eps", 0.0),
    (ppo.PPOConfig, "Hopper-v5", "gamma", 1.5),
    (ppo.PPOConfig, "Hopper-v5", "gae_lambda", math.nan),
    (ppo.PPOConfig, "Hopper-v5", "epochs", 0),
    (ppo.PPOConfig, "Hopper-v5", "value_clip", math.inf),
    (trpo.TRPOConfig, "Hopper-v5", "max_kl", -1.0),
    (trpo.TRPOConfig, "Hopper-v5", "max_kl", math.inf),
    (trpo.TRPOConfig, "Hopper-v5", "backtrack_coeff", 1.0),
    (trpo.TRPOConfig, "Hopper-v5", "fisher_fraction", 0.0),
    (trpo.TRPOConfig, "Hopper-v5", "cg_iters", 0),
])
def test_every_hyperparameter_is_checked_by_name(cls: type, env: str, field: str,
                                                 value: float) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be "):
        cls.for_env(env, **{field: value})


def test_a_hyperparameter_of_the_other_algorithm_is_named() -> None:
    with pytest.raises(ValueError, match="^policy_lr: not TRPO hyperparameters"):
        TrainConfig.create("Hopper-v5", "trpo", 0, 2, policy_lr=1e-3)
    with pytest.raises(ValueError, match="^max_kl: not PPO hyperparameters"):
        TrainConfig.create("Hopper-v5", "ppo", 0, 2, max_kl=0.1)


def test_training_needs_every_step_size(tiny_config: object, tmp_path: Path) -> None:
    """NaN means "unknown" for an adapted agent's step sizes, never for training."""
    import dataclasses

    config: TrainConfig = tiny_config("ppo")  # type: ignore[operator]
    config = dataclasses.replace(config, hyper=dataclasses.replace(config.hyper,
                                                                   value_lr=math.nan))
    with pytest.raises(ValueError, match="^value_lr must be a finite number > 0, got nan"):
        train_mod.train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def _all_finite(path: Path) -> bool:
    from safetensors.torch import load_file

    return all(bool(torch.isfinite(t).all()) for t in load_file(str(path)).values()
               if t.is_floating_point())


def test_a_diverged_run_stops_naming_the_iteration_and_writes_no_nan(
        tiny_config: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = train_mod.iterate

    def diverge_at_1(agent: object, env: object) -> dict:
        row = real(agent, env)  # type: ignore[arg-type]
        if row["iteration"] == 1:
            with torch.no_grad():
                next(agent.value.parameters()).fill_(math.nan)  # type: ignore[attr-defined]
        return row

    monkeypatch.setattr(train_mod, "iterate", diverge_at_1)
    config: TrainConfig = tiny_config("ppo", iterations=3, checkpoints=(0, 1, 2, 3))  # type: ignore[operator]
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match="diverged at iteration 1") as err:
        train_mod.train(config, run_dir, save_every=1, progress=False)
    assert str(run_dir) in str(err.value) and "\n" not in str(err.value)
    written = sorted(p.name for p in run_dir.glob("*.safetensors"))
    assert written == ["ckpt_0000.safetensors", "ckpt_0001.safetensors", "latest.safetensors"]
    assert all(_all_finite(run_dir / name) for name in written)
    assert checkpoint.load(run_dir / "latest.safetensors").iteration == 1


def test_a_diverged_lockstep_run_stops_the_group_naming_the_iteration(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pgclaims.agents import lockstep

    real = lockstep.learn

    def diverge_trpo_at_1(agent: object, *args: object) -> dict:
        row = real(agent, *args)  # type: ignore[arg-type]
        if row["iteration"] == 1 and agent.config.algo == "trpo":  # type: ignore[attr-defined]
            with torch.no_grad():
                agent.policy.log_std.fill_(math.nan)  # type: ignore[attr-defined]
        return row

    monkeypatch.setattr(lockstep, "learn", diverge_trpo_at_1)
    configs = [TrainConfig.create("Hopper-v5", algo, 0, 3, (0, 1, 2, 3), steps_per_iteration=256)
               for algo in ("ppo", "trpo")]
    dirs = [tmp_path / "ppo", tmp_path / "trpo"]
    with pytest.raises(ValueError, match=f"^{dirs[1]}: training diverged at iteration 1"):
        lockstep.train_together(configs, dirs, save_every=1)
    assert sorted(p.name for p in dirs[1].glob("ckpt_*")) == ["ckpt_0000.safetensors",
                                                             "ckpt_0001.safetensors"]
    assert all(_all_finite(p) for d in dirs for p in d.glob("*.safetensors"))


def test_a_huge_learning_rate_ends_in_one_line_naming_the_iteration(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--value-lr 1e30 is finite, so argparse lets it through; the first value fit turns the
    net into NaN, and training stops there with nothing of that iteration written."""
    run_dir = tmp_path / "run"
    code, out, err = run([*TRAIN, "--algo", "ppo", "--value-lr", "1e30", "--out", str(run_dir)],
                         capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"pgclaims train: error: {run_dir}: training diverged at iteration 0")
    assert err.count("\n") == 1
    assert all(_all_finite(p) for p in run_dir.glob("*.safetensors"))
    assert not (run_dir / "latest.safetensors").exists()


def test_a_checkpoint_with_a_nan_is_never_written(tmp_path: Path) -> None:
    agent = make_agent(TrainConfig.create("Hopper-v5", "ppo", 0, 2, steps_per_iteration=256))
    with torch.no_grad():
        agent.policy.log_std.fill_(math.inf)
    with pytest.raises(ValueError, match="policy/log_std"):
        checkpoint.save(agent, tmp_path / "a.safetensors")
    assert list(tmp_path.iterdir()) == []

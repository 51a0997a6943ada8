# ruff: noqa: E402 - stable_baselines3 is an optional extra: skip before importing it
"""``pytest claims --agents MANIFEST``: the claims on agents trained elsewhere (SB3 here).

Two tiny SB3 PPO agents (Hopper-v5, VecNormalize, seeds 0 and 1) are saved after 128 and 256
steps ("iterations" 1 and 2) and run through a few claims at a tiny scale in a subprocess, as a
user runs them; the manifest's validation is tested directly and through pytest's usage errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("stable_baselines3")

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from pgclaims.suite import external
from pgclaims.suite.agents import describe_source
from pgclaims.suite.scales import get_scale

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
ENV = "Hopper-v5"
TINY_SCALE = """
from pgclaims.suite.scales import get_scale, register_scale

register_scale(get_scale("smoke").override(
    name="exttiny", n_grid=(512, 2048), repeats=2, true_grad_n=4096, heldout_n=512,
    true_value_n=2048, bootstrap_resamples=200))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seeds, checkpoints (zip + VecNormalize pickle) at iterations 1 and 2."""
    root = tmp_path_factory.mktemp("sb3runs")
    for seed in (0, 1):
        torch.manual_seed(seed)
        venv = VecNormalize(make_vec_env(ENV, n_envs=1, seed=seed))
        model = PPO("MlpPolicy", venv, n_steps=128, batch_size=64, n_epochs=1, seed=seed,
                    device="cpu", policy_kwargs={"net_arch": {"pi": [16], "vf": [16]}})
        (root / f"s{seed}").mkdir()
        for it in (1, 2):
            model.learn(128, reset_num_timesteps=it == 1)
            model.save(root / f"s{seed}" / f"a{it}.zip")
            venv.save(str(root / f"s{seed}" / f"vn{it}.pkl"))
    return root


def _agent(seed: int, **changes: Any) -> dict[str, Any]:
    entry = {"env": ENV, "algo": "ppo", "seed": seed, "adapter": "sb3",
             "checkpoints": {str(it): {"path": f"s{seed}/a{it}.zip",
                                       "vecnormalize": f"s{seed}/vn{it}.pkl"} for it in (1, 2)}}
    return {**entry, **changes}


def _manifest(root: Path, name: str = "manifest.json", **changes: Any) -> Path:
    doc = {"source": "tiny SB3 runs of test_external_agents", "versions": {"trained_by": "sb3"},
           "agents": [_agent(0), _agent(1)], **changes}
    path = root / name
    path.write_text(json.dumps(doc))
    return path


# -- the manifest -------------------------------------------------------------------------


def test_manifest_makes_the_scale(runs: Path) -> None:
    m = external.read_manifest(_manifest(runs))
    assert (m.envs, m.algos, m.seeds, m.iterations) == ((ENV,), ("ppo",), (0, 1), (1, 2))
    path, options = m.entry(ENV, "ppo", 1).checkpoints[2]
    assert path == str(runs / "s1" / "a2.zip") and options == {
        "vecnormalize": str(runs / "s1" / "vn2.pkl")}
    scale = external.apply(get_scale("smoke"), m)
    assert (scale.source, scale.seeds, scale.checkpoints, scale.late, scale.trained) == (
        "external", (0, 1), (1, 2), (1, 2), (1, 2))
    assert scale.protocols == ("corrected",) and scale.heldout_n == get_scale("smoke").heldout_n
    assert scale.lacks(["zero_baseline_agents"]) == ["zero_baseline_agents"]
    d = scale.to_dict()
    assert d["checkpoints"] == [1, 2] and d["external"]["source"].startswith("tiny SB3")
    assert d["external"]["packages"]["stable-baselines3"]
    assert scale.provenance_extra()["agents"] == d["external"]
    assert "checkpoint_list" not in get_scale("smoke").to_dict()  # the profiles as before
    assert external.Manifest.from_json(m.to_json()) == m
    assert describe_source(scale, runs) == f"external agents from {m.path} ({m.source})"


def test_toml_manifest(runs: Path) -> None:
    path = runs / "manifest.toml"
    path.write_text('source = "toml runs"\n' + "".join(
        f'[[agents]]\nenv = "{ENV}"\nalgo = "ppo"\nseed = {s}\nadapter = "sb3"\n'
        f'options = {{vecnormalize = "s{s}/vn2.pkl"}}\n'
        f'checkpoints = {{"1" = "s{s}/a1.zip", "2" = "s{s}/a2.zip"}}\n' for s in (0, 1)))
    m = external.read_manifest(path)
    assert m.source == "toml runs" and m.entry(ENV, "ppo", 0).checkpoints[1][1] == {
        "vecnormalize": str(runs / "s0" / "vn2.pkl")}


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"source": ""}, "'source'", "non-empty string"),
    ({"agents": []}, "'agents'", "non-empty list"),
    ({"color": 1}, "'color'", "unknown field"),
    ({"agents": [{**_agent(0), "seed": -1}, _agent(1)]}, "'agents[0].seed'", "integer >= 0"),
    ({"agents": [_agent(0, algo="sac"), _agent(1)]}, "'agents[0].algo'", "'ppo' or 'trpo'"),
    ({"agents": [_agent(0), _agent(1, checkpoints={"1": "s1/nope.zip", "2": "s1/a2.zip"})]},
     "'agents[1].checkpoints.1'", "no such file"),
    ({"agents": [_agent(0), _agent(1, checkpoints={"1": "s1/a1.zip"})]},
     "'agents[1].checkpoints'", "same iteration keys"),
    ({"agents": [_agent(0), _agent(1, checkpoints={"x": "s1/a1.zip", "2": "s1/a2.zip"})]},
     "'agents[1].checkpoints.x'", "integers >= 0"),
    ({"agents": [_agent(0), _agent(0)]}, "'agents[1]'", "listed twice"),
    ({"agents": [_agent(0), _agent(1), _agent(0, algo="trpo")]}, "'agents'",
     "missing Hopper-v5 trpo seed 1"),
    ({"agents": [_agent(0, options={"vecnormalize": "gone.pkl"}), _agent(1)]},
     "'agents[0].options.vecnormalize'", "no such file"),
])
def test_manifest_errors_name_the_file_and_field(runs: Path, changes: dict[str, Any],
                                                 field: str, message: str) -> None:
    path = _manifest(runs, "bad.json", **changes)
    with pytest.raises(external.ManifestError, match=message) as info:
        external.read_manifest(path)
    assert str(path) in str(info.value) and f"field {field}" in str(info.value)


def test_unreadable_manifests(tmp_path: Path) -> None:
    with pytest.raises(external.ManifestError, match="cannot read the manifest"):
        external.read_manifest(tmp_path / "missing.json")
    (tmp_path / "m.toml").write_text("source = ")
    with pytest.raises(external.ManifestError, match="m.toml: not valid TOML"):
        external.read_manifest(tmp_path / "m.toml")


@pytest.mark.parametrize(("name", "message"), [
    ("missing.json", "cannot read the manifest"),
    ("bad.json", "field 'agents[0].seed'"),
])
def test_usage_errors_write_nothing(pytester: pytest.Pytester, runs: Path, name: str,
                                    message: str) -> None:
    _manifest(runs, "bad.json", agents=[{**_agent(0), "seed": "zero"}, _agent(1)])
    pytester.makeconftest('pytest_plugins = ["pgclaims.suite.plugin", "pgclaims.report.plugin"]')
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest(f"--agents={runs / name}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"--agents: {runs / name}" in err and message in err, err
    assert not (pytester.path / "reports").exists()


# -- the claims on the agents -------------------------------------------------------------


def _claims(tmp: Path, manifest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp / "exttiny_scale.py").write_text(TINY_SCALE)
    env = {**os.environ, "PGCLAIMS_CACHE": str(tmp / "cache"),
           "PYTHONPATH": os.pathsep.join([str(tmp), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "claims", "--agents", str(manifest), "--scale",
           "exttiny", "-p", "exttiny_scale", "--reports-dir", str(tmp / "reports"),
           "-p", "no:cacheprovider", "-q", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_claims_on_external_agents(runs: Path, tmp_path: Path) -> None:
    proc = _claims(tmp_path, _manifest(runs), "--run-id", "ext", "--claim", "value.*",
                   "--claim", "grad.pairwise_low_at_2k", "--claim", "baseline.needed_for_reward")
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode in (0, 1), tail  # 1: a REFUTED verdict is a finding, not a crash
    doc = json.loads((tmp_path / "reports" / "ext" / "results.json").read_text())
    rows = {r["claim_id"]: r for r in doc["results"]}
    assert set(rows) == {"value.fits_gae_target", "value.misses_true_returns",
                         "value.returns_gap", "value.train_vs_heldout",
                         "grad.pairwise_low_at_2k", "baseline.needed_for_reward"}, tail
    for row in rows.values():
        assert row["verdict"] in ("REPRODUCED", "REFUTED", "INCONCLUSIVE"), (row, tail)
        assert row["params"].get("protocol") == "corrected"
        if "env" in row["params"]:
            assert (row["params"]["env"], row["params"]["algo"]) == (ENV, "ppo")
    train = rows["value.train_vs_heldout"]
    assert train["verdict"] == "INCONCLUSIVE", train
    assert "lack training_batch (the batch the value function was last fit on" in train["reason"]
    assert rows["value.fits_gae_target"]["statistic"] is not None  # held-out errors measured
    assert rows["grad.pairwise_low_at_2k"]["statistic"] is not None
    assert "zero_baseline_agents" in rows["baseline.needed_for_reward"]["reason"]
    ext = doc["scale"]["external"]
    assert doc["scale"]["source"] == "external" and doc["scale"]["checkpoints"] == [1, 2]
    assert ext["source"] == "tiny SB3 runs of test_external_agents"
    assert ext["versions"] == {"trained_by": "sb3"} and ext["packages"]["stable-baselines3"]
    assert [a["adapter"] for a in ext["agents"]] == ["sb3", "sb3"]
    assert {str(runs / "s0" / "a1.zip"), str(runs / "s0" / "vn1.pkl")} <= set(ext["sha256"])
    assert doc["provenance"]["agents"] == ext
    html = (tmp_path / "reports" / "ext" / "index.html").read_text(encoding="utf-8")
    provenance = html.split('<section id="provenance">', 1)[1]
    assert '<h3 id="agents">Agents: trained elsewhere</h3>' in provenance
    assert "<td>tiny SB3 runs of test_external_agents</td>" in provenance
    assert f"stable-baselines3 {ext['packages']['stable-baselines3']}" in provenance
    assert provenance.count('title="' + str(runs / "s0" / "a1.zip") + '"') == 1


def test_unknown_adapter_is_a_usage_error(runs: Path, tmp_path: Path) -> None:
    manifest = _manifest(runs, "adapter.json", agents=[_agent(0, adapter="nope"), _agent(1)])
    proc = _claims(tmp_path, manifest, "--collect-only")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "field 'agents[0].adapter': unknown adapter 'nope'" in proc.stderr
    assert not (tmp_path / "reports").exists()


def test_what_adapted_agents_lack_is_unsupported(runs: Path) -> None:
    from claims.conftest import Study
    from pgclaims.adapters import adapt
    from pgclaims.suite.agents import AgentStore

    scale = external.apply(get_scale("smoke"), external.read_manifest(_manifest(runs)))
    store = AgentStore(scale, runs / "cache", "r", "corrected")
    with pytest.raises(pytest.fail.Exception, match="need a loader"):
        store.get(ENV, "ppo", 0, 1)
    store = store.with_loader(adapt)
    agent = store.get(ENV, "ppo", 0, 2)
    assert agent.config.protocol == "corrected" and agent.policy_opt is not None
    with pytest.raises(external.Unsupported, match="lack training_run"):
        store.curve(ENV, "ppo", 0)
    assert store.available_curves() == {}

    class NoOptimizer(AgentStore):  # a CleanRL agent without update settings, say
        def get(self, *args: Any) -> Any:
            agent = super().get(*args)
            agent.policy_opt = None
            return agent

    study = Study(scale, NoOptimizer(scale, runs / "cache", "r", "corrected", adapt))
    for measure in (study.steps, study.landscape):
        with pytest.raises(external.Unsupported, match="lack optimizer_state") as info:
            measure(ENV, "ppo", 0, 2)
        assert info.value.reason.startswith("Hopper-v5 ppo seed 0 it 2: ")
    with pytest.raises(external.Unsupported, match="lack training_run"):
        study.ablation_runs("baseline.needed_for_reward", ENV, "ppo", "baseline")


def test_unknown_env_id_is_a_usage_error_at_start(runs: Path, tmp_path: Path) -> None:
    manifest = _manifest(runs, "env.json", agents=[_agent(0, env="Hoper-v5"),
                                                   _agent(1, env="Hoper-v5")])
    proc = _claims(tmp_path, manifest, "--collect-only")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "field 'agents[0].env': unknown environment id 'Hoper-v5'" in proc.stderr
    assert not (tmp_path / "reports").exists()

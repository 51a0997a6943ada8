# ruff: noqa: E402 - stable_baselines3 is an optional extra: skip before importing it
"""Adapters: an SB3 / CleanRL agent measured by pgclaims computes what its library computes.

One small SB3 PPO agent is trained here (Hopper-v5, VecNormalize, a ReLU [32, 16] / [24]
architecture unlike pgclaims' own) and shared by the module's tests.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sb3 = pytest.importorskip("stable_baselines3")

from scipy import stats
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from pgclaims.adapters import AdapterError, ExternalAgent, adapt, cleanrl, load_adapter, registry
from pgclaims.adapters.modules import MLPSampler
from pgclaims.adapters.safepickle import UnsafePickleError, read_vecnormalize
from pgclaims.agents.agent import agent_advantages
from pgclaims.agents.networks import flat_grad
from pgclaims.measure.gradients import chunk_stats
from pgclaims.measure.sampler import FrozenSampler, rng_for

ENV = "Hopper-v5"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("sb3")
    torch.manual_seed(0)
    venv = VecNormalize(make_vec_env(ENV, n_envs=1, seed=0))
    model = PPO("MlpPolicy", venv, n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu",
                policy_kwargs={"net_arch": {"pi": [32, 16], "vf": [24]},
                               "activation_fn": torch.nn.ReLU})
    model.learn(384)
    model.save(root / "model.zip")
    venv.save(str(root / "vecnormalize.pkl"))
    return {"root": root, "model": model, "venv": venv, "zip": str(root / "model.zip"),
            "vn": str(root / "vecnormalize.pkl")}


@pytest.fixture(scope="module")
def adapted(trained: dict[str, Any]) -> Any:
    return adapt("sb3", trained["zip"], ENV, vecnormalize=trained["vn"])


@pytest.fixture(scope="module")
def batch(adapted: Any) -> Any:
    sampler = FrozenSampler(adapted)
    b = sampler.batch(512, rng_for(0, 7))
    sampler.close()
    return b


# -- (a) exactness ------------------------------------------------------------------------


def test_the_adapted_agent_reads_the_zip(adapted: Any, trained: dict[str, Any]) -> None:
    hp = adapted.hyper
    assert adapted.config.env_id == "pgclaims_clip/Hopper-v5"
    assert (hp.steps_per_iteration, hp.minibatches, hp.epochs, hp.clip_eps) == (128, 2, 2, 0.2)
    assert (hp.policy_lr, hp.gamma, hp.gae_lambda, hp.adv_norm) == (3e-4, 0.99, 0.95,
                                                                     "minibatch")
    assert adapted.iteration == 3 and adapted.max_episode_steps == 1000
    assert isinstance(adapted.policy.numpy_sampler(), MLPSampler)  # ReLU, no torch fallback
    assert adapted.policy_opt.state_dict()["state"][0]["step"] > 0


def test_observations_are_normalized_as_vecnormalize_does(adapted: Any, trained: dict[str, Any],
                                                          batch: Any) -> None:
    venv = trained["venv"]
    env = FrozenSampler(adapted).env
    raw, _ = env.reset(seed=3)
    ours = FrozenSampler(adapted).obs_norm(raw, False).astype(np.float32)
    np.testing.assert_allclose(ours, venv.normalize_obs(raw[None])[0], rtol=0, atol=1e-6)
    r = 1.7
    got = FrozenSampler(adapted).reward_scaler(r, False)
    assert got == pytest.approx(float(venv.normalize_reward(np.array([r]))[0]), rel=1e-6)  # f32
    assert got == pytest.approx(r / np.sqrt(venv.ret_rms.var + venv.epsilon), rel=1e-12)


def test_log_probs_and_values_match_sb3(adapted: Any, trained: dict[str, Any],
                                        batch: Any) -> None:
    obs, act = torch.from_numpy(batch.obs), torch.from_numpy(batch.actions)
    with torch.no_grad():
        v, logp, _ = trained["model"].policy.evaluate_actions(obs, act)
        np.testing.assert_allclose(adapted.policy.log_prob(obs, act), logp, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(adapted.value(obs), v.flatten(), rtol=1e-6, atol=1e-6)
        mu = trained["model"].policy.get_distribution(obs).distribution.mean
    sampler = adapted.policy.numpy_sampler()
    np.testing.assert_allclose(np.stack([sampler.mean(o) for o in batch.obs[:32]]), mu[:32],
                               rtol=1e-5, atol=1e-5)


def _sb3_advantages(model: PPO, agent: Any, batch: Any) -> np.ndarray:
    """GAE of ``batch`` by SB3's own RolloutBuffer (reward bootstrapped at time limits as
    SB3's collect_rollouts does; none occur in these short episodes)."""
    n = len(batch)
    buf = RolloutBuffer(n, model.observation_space, model.action_space, device="cpu",
                        gamma=model.gamma, gae_lambda=model.gae_lambda, n_envs=1)
    with torch.no_grad():
        values = agent.value(torch.from_numpy(batch.obs)).numpy()
        last = agent.value(torch.from_numpy(batch.final_obs[-1:])).reshape(1, 1)
    starts = np.zeros(n, np.float32)
    starts[0] = 1
    starts[1:] = batch.ends[:-1]
    buf.rewards[:, 0], buf.values[:, 0], buf.episode_starts[:, 0] = batch.rewards, values, starts
    buf.pos, buf.full = n, True
    buf.compute_returns_and_advantage(last, np.array([batch.terminated[-1]]))
    return buf.advantages[:, 0].astype(np.float64)


def test_gradient_equals_sb3_surrogate_gradient(adapted: Any, trained: dict[str, Any],
                                                batch: Any) -> None:
    model = trained["model"]
    assert not batch.truncated[:-1].any()  # no time limit inside: the bootstrap rule is moot
    adv = agent_advantages(adapted, batch).raw
    np.testing.assert_allclose(adv, _sb3_advantages(model, adapted, batch), rtol=1e-4,
                               atol=1e-5)
    obs, act = torch.from_numpy(batch.obs), torch.from_numpy(batch.actions)
    a = torch.from_numpy(adv).float()
    a_hat = (a - a.mean()) / (a.std() + 1e-8)  # SB3's per-minibatch normalization (n - 1)

    def loss(logp: torch.Tensor) -> torch.Tensor:
        ratio = torch.exp(logp - logp.detach())
        return -torch.min(ratio * a_hat, ratio.clamp(0.8, 1.2) * a_hat).mean()

    ours = flat_grad(loss(adapted.policy.log_prob(obs, act)), adapted.policy)
    _, logp_sb3, _ = model.policy.evaluate_actions(obs, act)
    named = dict(model.policy.named_parameters())
    order = ["log_std"] + [k for k in named if k.startswith("mlp_extractor.policy_net.")] + [
        "action_net.weight", "action_net.bias"]
    assert [n for n, _ in adapted.policy.named_parameters()][0] == "log_std"
    grads = torch.autograd.grad(loss(logp_sb3), [named[k] for k in order])
    theirs = torch.cat([g.reshape(-1) for g in grads])
    diff = float((ours - theirs).abs().max())
    print(f"max |grad difference| {diff:.3g} (max |grad| {float(theirs.abs().max()):.3g})")
    assert diff <= 1e-5 * float(theirs.abs().max())
    # The measurement's estimator (biased std over the batch) is the same vector, rescaled.
    est = chunk_stats(__import__("copy").deepcopy(adapted.policy).double(), batch, adv).estimate()
    scale = (a.double().std() + 1e-8) / (a.double().std(unbiased=False) + 1e-8)
    np.testing.assert_allclose(-est, theirs.double().numpy() * float(scale), rtol=1e-3,
                               atol=1e-5 * float(theirs.abs().max()))


# -- (b) same return distribution ---------------------------------------------------------


def test_sampled_returns_match_sb3_evaluate_policy(adapted: Any, trained: dict[str, Any]) -> None:
    n = 150
    venv = VecNormalize.load(trained["vn"], make_vec_env(ENV, n_envs=1, seed=11))
    venv.training, venv.norm_reward = False, False
    model = PPO.load(trained["zip"], device="cpu")
    model.set_random_seed(11)
    theirs, _ = evaluate_policy(model, venv, n_eval_episodes=n, deterministic=False,
                                return_episode_rewards=True)
    sampler = FrozenSampler(adapted)
    ours = sampler.batch(12000, rng_for(5, 0)).episode_returns
    sampler.close()
    assert len(ours) >= n
    ks = stats.ks_2samp(ours[:n], theirs)
    mw = stats.mannwhitneyu(ours[:n], theirs)
    print(f"KS p {ks.pvalue:.3f}, MWU p {mw.pvalue:.3f}; means {np.mean(ours[:n]):.1f} vs "
          f"{np.mean(theirs):.1f}")
    assert ks.pvalue > 0.01 and mw.pvalue > 0.01


# -- (c) safety ---------------------------------------------------------------------------


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("nested", [False, True])
def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path, nested: bool) -> None:
    marker = tmp_path / "pwned"
    payload = {"obs_rms": np.zeros(3), "x": _Evil(marker)} if nested else _Evil(marker)
    path = tmp_path / "vecnormalize.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafePickleError, match=r"global (posix|os)\.system"):
        read_vecnormalize(path)
    assert not marker.exists()


def test_the_real_vecnormalize_file_reads(trained: dict[str, Any]) -> None:
    vn = read_vecnormalize(trained["vn"])
    np.testing.assert_array_equal(vn.obs_mean, trained["venv"].obs_rms.mean)
    assert vn.clip_obs == 10.0 and vn.norm_reward and vn.epsilon == 1e-8


# -- (d) refusals -------------------------------------------------------------------------


def _rewrite(src: str, dst: Path, data_fn: Any = None, sd_fn: Any = None) -> str:
    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    data = json.loads(files["data"])
    if data_fn:
        data_fn(data)
    files["data"] = json.dumps(data).encode()
    if sd_fn:
        import io

        sd = torch.load(io.BytesIO(files["policy.pth"]), weights_only=True)
        sd_fn(sd)
        buf = io.BytesIO()
        torch.save(sd, buf)
        files["policy.pth"] = buf.getvalue()
    with zipfile.ZipFile(dst, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    return str(dst)


def _set(*path: str, value: Any) -> Any:
    def fn(data: dict[str, Any]) -> None:
        d = data
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return fn


@pytest.mark.parametrize(("data_fn", "sd_fn", "message"), [
    (_set("use_sde", value=True), None, "gSDE"),
    (_set("policy_kwargs", "squash_output", value=True), None, "squash"),
    (_set("policy_class", "__init__", value="<function ActorCriticCnnPolicy.__init__ at 0x1>"),
     None, "CnnPolicy"),
    (None, lambda sd: sd.update({"features_extractor.cnn.0.weight": torch.zeros(2)}),
     "non-MLP feature"),
    (None, lambda sd: sd.update({"mlp_extractor.shared_net.0.weight": torch.zeros(2)}),
     "shared"),
    (_set("observation_space", "_shape", value=[3, 64, 64]), None, "no images"),
    (lambda d: d.pop("clip_range"), None, "not a PPO or TRPO"),
    (_set("learning_rate", value={":type:": "<class 'function'>", ":serialized:": "gAU="}),
     None, "pass learning_rate="),
])
def test_unsupported_variants_are_refused_by_name(trained: dict[str, Any], tmp_path: Path,
                                                  data_fn: Any, sd_fn: Any,
                                                  message: str) -> None:
    path = _rewrite(trained["zip"], tmp_path / "variant.zip", data_fn, sd_fn)
    if message == "pass learning_rate=":  # the schedule's plain companion is gone too
        path = _rewrite(path, tmp_path / "v2.zip", lambda d: d.pop("lr_schedule"))
    with pytest.raises(AdapterError, match=message):
        load_adapter("sb3")(path, ENV, vecnormalize=trained["vn"])


@pytest.mark.parametrize("old", ["Hopper-v2", "Hopper-v3"])
def test_mujoco_py_ids_are_refused_with_the_nearest(trained: dict[str, Any], old: str) -> None:
    with pytest.raises(AdapterError, match="Hopper-v4' or 'Hopper-v5"):
        adapt("sb3", trained["zip"], old, vecnormalize=trained["vn"])


def test_v4_ids_are_accepted(trained: dict[str, Any]) -> None:
    agent = adapt("sb3", trained["zip"], "Hopper-v4", vecnormalize=trained["vn"])
    assert agent.config.env_id == "pgclaims_clip/Hopper-v4"


def test_missing_vecnormalize_and_wrong_env_are_refused(trained: dict[str, Any]) -> None:
    with pytest.raises(AdapterError, match="trained under VecNormalize"):
        adapt("sb3", trained["zip"], ENV)
    with pytest.raises(AdapterError, match="Walker2d-v5 has"):
        adapt("sb3", trained["zip"], "Walker2d-v5", vecnormalize=trained["vn"])


def test_trpo_zips_are_read(tmp_path: Path) -> None:
    contrib = pytest.importorskip("sb3_contrib")
    model = contrib.TRPO("MlpPolicy", ENV, n_steps=64, batch_size=32, seed=0, device="cpu",
                         policy_kwargs={"net_arch": [16], "activation_fn": torch.nn.ELU})
    model.save(tmp_path / "trpo.zip")
    agent = adapt("sb3", str(tmp_path / "trpo.zip"), ENV)
    assert agent.config.algo == "trpo" and agent.policy_opt is None
    assert (agent.hyper.max_kl, agent.hyper.cg_iters, agent.hyper.backtrack_coeff) == (
        0.01, 15, 0.8)
    obs = torch.randn(16, 11)
    act = torch.randn(16, 3)
    with torch.no_grad():
        v, logp, _ = model.policy.evaluate_actions(obs, act)
        np.testing.assert_allclose(agent.policy.log_prob(obs, act), logp, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(agent.value(obs), v.flatten(), rtol=1e-6, atol=1e-6)


# -- (e) CleanRL --------------------------------------------------------------------------


class _CleanRLAgent(torch.nn.Module):
    """The network of CleanRL's ppo_continuous_action.py (initialization aside)."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        nn = torch.nn
        self.critic = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64),
                                    nn.Tanh(), nn.Linear(64, 1))
        self.actor_mean = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64),
                                        nn.Tanh(), nn.Linear(64, act_dim))
        self.actor_logstd = nn.Parameter(torch.full((1, act_dim), -0.3))


def test_cleanrl_round_trip(tmp_path: Path) -> None:
    import gymnasium as gym

    torch.manual_seed(1)
    net = _CleanRLAgent(11, 3)
    torch.save(net.state_dict(), tmp_path / "ppo.cleanrl_model")
    env = gym.wrappers.NormalizeReward(gym.wrappers.NormalizeObservation(gym.make(ENV)))
    env.reset(seed=0)
    for _ in range(50):
        env.step(env.action_space.sample())
    cleanrl.save_stats(env, tmp_path / "stats.npz")
    agent = adapt("cleanrl", str(tmp_path / "ppo.cleanrl_model"), ENV,
                  stats=str(tmp_path / "stats.npz"))
    assert agent.hyper.time_limit == "terminal" and agent.hyper.value_clip == 0.2
    norm = env.env  # NormalizeObservation
    raw = np.random.default_rng(0).normal(size=11)
    want = np.clip((raw - norm.obs_rms.mean) / np.sqrt(norm.obs_rms.var + norm.epsilon), -10, 10)
    got = FrozenSampler(agent).obs_norm(raw, False)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    obs, act = torch.randn(8, 11), torch.randn(8, 3)
    with torch.no_grad():
        dist = torch.distributions.Normal(net.actor_mean(obs), net.actor_logstd.exp())
        np.testing.assert_allclose(agent.policy.log_prob(obs, act), dist.log_prob(act).sum(1),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(agent.value(obs), net.critic(obs).flatten(), rtol=1e-6)


def test_cleanrl_without_stats_says_why_and_how(tmp_path: Path) -> None:
    torch.save(_CleanRLAgent(11, 3).state_dict(), tmp_path / "ppo.cleanrl_model")
    with pytest.raises(AdapterError, match=r"(?s)does not save.*#310.*save_stats"):
        adapt("cleanrl", str(tmp_path / "ppo.cleanrl_model"), ENV)


# -- the loader registry ------------------------------------------------------------------


def my_loader(path: str, env_id: str) -> ExternalAgent:
    """A third-party loader named as module:function."""
    nn = torch.nn
    return ExternalAgent(mean=nn.Sequential(nn.Linear(11, 8), nn.GELU(), nn.Linear(8, 3)),
                         log_std=torch.zeros(3), value=nn.Linear(11, 1), gamma=0.99,
                         gae_lambda=0.95, clip_actions=False, source=path)


def test_loaders_resolve_by_module_function_and_entry_point(monkeypatch: Any) -> None:
    agent = adapt("tests.test_adapters:my_loader", "x", ENV)
    assert agent.config.env_id == ENV and agent.policy_opt is None
    s = agent.policy.numpy_sampler()
    assert isinstance(s, MLPSampler)
    x = np.random.default_rng(0).normal(size=11)
    with torch.no_grad():
        np.testing.assert_allclose(s.mean(x), agent.policy.mean(torch.from_numpy(x).float()),
                                   rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(registry, "entry_points", lambda: {"mine": "tests.test_adapters:my_loader"})
    assert load_adapter("mine").__qualname__ == "my_loader"
    with pytest.raises(AdapterError, match="unknown adapter 'nope'.*cleanrl, mine, sb3"):
        load_adapter("nope")
    with pytest.raises(AdapterError, match="cannot import module"):
        load_adapter("no_such_module_xyz:load")
    with pytest.raises(AdapterError, match="has no attribute"):
        load_adapter("tests.test_adapters:missing")


# -- the measurements run on an adapted agent ---------------------------------------------


def test_measurements_run_on_the_adapted_agent(adapted: Any) -> None:
    from pgclaims.measure.gradients import gradient_study
    from pgclaims.measure.landscape import step_study
    from pgclaims.measure.value import value_error

    study = gradient_study(adapted, (128,), repeats=2, true_grad_n=2048, true_value_n=0,
                           seed=0, workers=1)
    assert study.meta["n_params"] == sum(p.numel() for p in adapted.policy.parameters())
    assert np.isfinite(study.true_cos).all()
    values = value_error(adapted, repeats=1, heldout_n=256, seed=0)
    assert np.isfinite(values.heldout_gae).all()
    steps = step_study(adapted, repeats=2, eval_n=256, high_n=0, seed=0)
    assert (steps.step_norms > 0).all()


def test_pgclaims_measure_runs_on_an_sb3_zip(trained: dict[str, Any], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line: `pgclaims measure --adapter sb3 model.zip --env ... --vecnormalize`."""
    import json

    from pgclaims.cli import main

    monkeypatch.setenv("PGCLAIMS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "m.json"
    code = main(["measure", "--adapter", "sb3", trained["zip"], "--env", ENV, "--vecnormalize",
                 trained["vn"], "--what", "value", "--scale", "smoke", "--quiet",
                 "--out", str(out)])
    assert code == 0
    value = json.loads(out.read_text())["value"]
    assert value["meta"]["protocol"] == "corrected"
    code = main(["measure", "--adapter", "sb3", trained["zip"], "--what", "value"])
    assert code == 2 and "--adapter needs the agent's file and --env" in capsys.readouterr().err

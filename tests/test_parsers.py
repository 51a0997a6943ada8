"""Every parser strict and named (issue 20, item 7).

Each reader of a file a user hands pgclaims (a fixture manifest, a results.json, an
``--agents`` manifest, an SB3 zip, adapter options, the ``measure`` arguments) either returns
a valid value or raises one error whose one line names the file and the field. The fuzz tests
feed each of them hypothesis-made documents: any input is a valid load or one clean error.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgclaims.agents import checkpoint, fixtures, storeverify
from pgclaims.agents.agent import TrainConfig, make_agent
from pgclaims.agents.fixtures import FixtureError
from pgclaims.cli import main
from pgclaims.report.schema import ReportError, load_results
from pgclaims.suite import external

RESULTS = Path(__file__).parent / "data" / "results.json"
KEY = "34616b94937a4e06"

json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(
    max_size=8)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=8), inner, max_size=3), max_leaves=8)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def one_clean_line(exc: BaseException) -> bool:
    text = str(exc)
    return bool(text.strip()) and "\n" not in text


# ---------------------------------------------------------------------------------------------
# Fixture manifests


def good_entry() -> dict[str, Any]:
    return {"key": KEY, "env_id": "Hopper-v5", "algo": "ppo", "seed": 0, "iterations": 500,
            "protocol": "authors", "checkpoints": [0, 150, 300, 450, 500],
            "training_version": 1, "final_mean_return": 2281.1, "command": "pgclaims ...",
            "wall_time_s": 417.5, "created": "2026-12-01T09:26:07Z"}


def without(key: str) -> dict[str, Any]:
    entry = good_entry()
    del entry[key]
    return entry


@pytest.mark.parametrize(("agents", "expected"), [
    pytest.param([good_entry(), good_entry() | {"key": "0" * 16}, without("env_id")],
                 "agents[2].env_id: missing", id="no-env-id"),
    pytest.param([None], "agents[0]: expected an object (one agent), got null", id="null-entry"),
    pytest.param([3], "agents[0]: expected an object (one agent), got 3", id="number-entry"),
    pytest.param([good_entry() | {"key": "../../etc"}],
                 "agents[0].key: expected 16 hex digits, got \"../../etc\"", id="key-escapes"),
    pytest.param([good_entry() | {"seed": "0"}], "agents[0].seed: expected an integer >= 0",
                 id="string-seed"),
    pytest.param([good_entry() | {"final_mean_return": math.nan}],
                 "agents[0].final_mean_return: expected a finite number or null",
                 id="nan-return"),
    pytest.param([good_entry() | {"checkpoints": [0, 600]}],
                 "agents[0].checkpoints: [600] beyond iterations 500", id="late-checkpoint"),
    pytest.param([good_entry(), good_entry()], "agents[1].key: 34616b94937a4e06 is listed twice",
                 id="duplicate"),
    pytest.param({"a": 1}, "agents: expected a list", id="agents-not-a-list"),
])
def test_a_bad_fixture_manifest_is_one_line_naming_the_field(
        agents: Any, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGCLAIMS_FIXTURES", str(tmp_path))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"schema": 1, "agents": agents}))
    code, out, err = run(["fixtures", "list"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"pgclaims fixtures: error: {manifest}: ") and expected in err, err
    assert err.count("\n") == 1


def _mutated_manifest(data: st.DataObject) -> Any:
    kind = data.draw(st.sampled_from(["value", "entry", "field"]))
    if kind == "value":
        return data.draw(json_values)
    entry = good_entry()
    if kind == "entry":
        return {"schema": 1, "agents": [data.draw(json_values)]}
    field = data.draw(st.sampled_from(sorted(entry)))
    if data.draw(st.booleans()):
        del entry[field]
    else:
        entry[field] = data.draw(json_values)
    return {"schema": 1, "agents": [entry]}


@settings(max_examples=150)
@given(st.data())
def test_any_fixture_manifest_is_a_valid_load_or_one_fixture_error(data: st.DataObject) -> None:
    doc = _mutated_manifest(data)
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        (base / "manifest.json").write_text(json.dumps(doc))
        for use in (lambda: fixtures.describe(base),
                    lambda: fixtures.find("Hopper-v5", "ppo", 0, 500, base, "authors"),
                    lambda: storeverify.verify(base, say=lambda line: None)):
            try:
                use()
            except FixtureError as exc:
                assert one_clean_line(exc) and str(base / "manifest.json") in str(exc)


# ---------------------------------------------------------------------------------------------
# results.json


def _results(**edits: Any) -> dict[str, Any]:
    doc = json.loads(RESULTS.read_text())
    for path, value in edits.items():
        target = doc
        *parents, last = path.split("__")
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        target[int(last) if isinstance(target, list) else last] = value
    return doc


@pytest.mark.parametrize(("edits", "field"), [
    pytest.param({"results__0__duration_s": math.nan}, "results[0].duration_s", id="nan-duration"),
    pytest.param({"provenance__wall_time_s": math.inf}, "provenance.wall_time_s",
                 id="inf-wall-time"),
    pytest.param({"results__0__threshold": math.nan}, "results[0].threshold", id="nan-threshold"),
    pytest.param({"results__1__statistic": -math.inf}, "results[1].statistic",
                 id="minus-inf-statistic"),
    pytest.param({"results__0__duration_s": -5.0}, "results[0].duration_s",
                 id="negative-duration"),
])
def test_a_non_finite_number_in_results_json_is_one_line_naming_the_field(
        edits: dict[str, Any], field: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results.json").write_text(json.dumps(_results(**edits)))
    code, out, err = run(["report", str(tmp_path)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"pgclaims report: error: {tmp_path / 'results.json'}: field "
                          f"'{field}': expected ") and err.count("\n") == 1
    assert not (tmp_path / "index.html").exists()


finite = st.sampled_from([1e308, -1e308, 1e-308, 0.0, 0.5]) | st.floats(
    allow_nan=False, allow_infinity=False)
bad_numbers = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 2.0, "0.5", True])


@settings(max_examples=40)
@given(st.data())
def test_any_results_numbers_are_a_valid_load_that_renders_or_one_report_error(
        data: st.DataObject) -> None:
    """The numbers of a results.json (two rows of one claim, no figures, to keep it fast):
    extreme finite values must render; a non-finite or out-of-range one is refused by field."""
    from pgclaims.report.page import build_page

    doc = _results()
    doc["results"] = doc["results"][:2]
    doc["figures"] = {}
    threshold = data.draw(finite)
    for row in doc["results"]:
        lo, hi = sorted(data.draw(st.lists(finite, min_size=2, max_size=2)))
        row.update(threshold=threshold, statistic=data.draw(finite | st.none()),
                   interval=data.draw(st.just([lo, hi]) | st.none()),
                   p_value=data.draw(st.floats(0, 1) | st.none()),
                   duration_s=data.draw(st.floats(0, 1e308) | st.none()))
    doc["provenance"]["wall_time_s"] = data.draw(st.floats(0, 1e308) | st.none())
    if data.draw(st.booleans()):  # one bad number somewhere
        row = doc["results"][data.draw(st.integers(0, 1))]
        field = data.draw(st.sampled_from(["threshold", "statistic", "p_value", "duration_s"]))
        row[field] = data.draw(bad_numbers)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "results.json").write_text(json.dumps(doc))
        try:
            results = load_results(Path(d))
        except ReportError as exc:
            assert one_clean_line(exc)
            return
        assert build_page(results, [])


@settings(max_examples=150)
@given(st.data())
def test_any_results_json_is_a_valid_load_or_one_report_error(data: st.DataObject) -> None:
    doc = _results()
    path: list[Any] = []
    target: Any = doc
    for _ in range(data.draw(st.integers(1, 4))):  # walk down to a random node and replace it
        if isinstance(target, dict) and target:
            key = data.draw(st.sampled_from(sorted(target)))
        elif isinstance(target, list) and target:
            key = data.draw(st.integers(0, len(target) - 1))
        else:
            break
        path.append(key)
        if data.draw(st.booleans()):
            break
        target = target[key]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if path:
        parent[path[-1]] = data.draw(json_values)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "results.json").write_text(json.dumps(doc))
        try:
            load_results(Path(d))
        except ReportError as exc:
            assert one_clean_line(exc)


# ---------------------------------------------------------------------------------------------
# --agents manifests


def test_an_agents_manifest_with_an_unknown_env_id_fails_when_read(tmp_path: Path) -> None:
    ckpt = tmp_path / "a.zip"
    ckpt.write_bytes(b"x")
    manifest = tmp_path / "agents.json"
    manifest.write_text(json.dumps({"source": "mine", "agents": [
        {"env": "Hoper-v5", "algo": "ppo", "seed": 0, "adapter": "sb3",
         "checkpoints": {"0": "a.zip"}}]}))
    with pytest.raises(external.ManifestError) as err:
        external.read_manifest(manifest)
    assert str(err.value).startswith(f"{manifest}: field 'agents[0].env': unknown environment "
                                     "id 'Hoper-v5'")
    assert one_clean_line(err.value)


def _agents_doc(data: st.DataObject) -> Any:
    path_text = st.sampled_from(["a.zip", "missing.zip", "", "sub/../a.zip", "a\x00.zip",
                                 "/", "x" * 300])
    agent = {"env": data.draw(st.sampled_from(["Hopper-v5", "Nope-v1", ""]) | json_values),
             "algo": data.draw(st.sampled_from(["ppo", "trpo"]) | json_values),
             "seed": data.draw(st.integers(-1, 3) | json_values),
             "adapter": data.draw(st.just("sb3") | json_values),
             "options": data.draw(st.dictionaries(st.sampled_from(["vecnormalize", "stats", "k"]),
                                                  path_text | json_values, max_size=2)),
             "checkpoints": data.draw(st.dictionaries(st.sampled_from(["0", "5", "-1", "x"]),
                                                      path_text | json_values, max_size=3))}
    for key in data.draw(st.lists(st.sampled_from(sorted(agent)), max_size=2)):
        agent.pop(key, None)
    return data.draw(st.sampled_from([
        {"source": "s", "agents": [agent]}, {"source": "s", "agents": [agent, agent]},
        {"agents": [agent]}, [agent], {"source": "s", "agents": [agent], "extra": 1}]))


@settings(max_examples=150)
@given(st.data())
def test_any_agents_manifest_is_a_valid_load_or_one_manifest_error(data: st.DataObject) -> None:
    doc = _agents_doc(data)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "a.zip").write_bytes(b"x")
        (folder / "m.json").write_text(json.dumps(doc))
        try:
            external.read_manifest(folder / "m.json")
        except external.ManifestError as exc:
            assert one_clean_line(exc) and str(folder / "m.json") in str(exc)


# ---------------------------------------------------------------------------------------------
# The measure command's arguments


@pytest.fixture
def no_sampling(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Any measurement reached is a failure: each refusal must come before the work."""
    import pgclaims.measure

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured although the arguments were bad")

    for name in ("gradients", "value", "steps", "landscapes"):
        monkeypatch.setattr(pgclaims.measure, name, never)
    monkeypatch.setenv("PGCLAIMS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def ckpt(trained_runs: Any) -> str:
    _, run_dir = trained_runs("ppo")
    return str(run_dir / "ckpt_0002.safetensors")


def test_measure_with_both_a_checkpoint_and_a_fixture_is_refused(
        ckpt: str, no_sampling: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["measure", ckpt, "--fixture", "Hopper-v5", "trpo", "3", "2"], capsys)
    assert (code, out) == (2, "")
    assert err == ("pgclaims measure: error: give one agent: a checkpoint file and --fixture "
                   "were both given\n")


@pytest.mark.parametrize(("fixture", "expected"), [
    (["Hopper-v5", "ppo", "zero", "2"], "--fixture SEED: expected an integer >= 0, got 'zero'"),
    (["Hopper-v5", "ppo", "0", "-2"], "--fixture ITERATION: expected an integer >= 0, got '-2'"),
    (["Hopper-v5", "a2c", "0", "2"], "--fixture ALGO: expected one of ppo, trpo, got 'a2c'"),
])
def test_a_malformed_fixture_reference_names_the_part(
        fixture: list[str], expected: str, no_sampling: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["measure", "--fixture", *fixture], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"pgclaims measure: error: {expected}") and err.count("\n") == 1


def test_a_folder_as_checkpoint_says_it_is_a_folder(
        trained_runs: Any, no_sampling: None, capsys: pytest.CaptureFixture[str]) -> None:
    _, run_dir = trained_runs("ppo")
    code, out, err = run(["measure", str(run_dir)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"pgclaims measure: error: {run_dir}: is a folder, not a checkpoint "
                          "file (give one ckpt_NNNN.safetensors; it holds ckpt_0000")
    assert err.count("\n") == 1


def test_adapter_flags_without_adapter_are_refused(
        ckpt: str, no_sampling: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["measure", ckpt, "--env", "Walker2d-v5", "--vecnormalize", "v.pkl"],
                         capsys)
    assert (code, out) == (2, "")
    assert err == ("pgclaims measure: error: --env, --vecnormalize only apply with "
                   "--adapter NAME\n")


def test_corrected_protocol_on_a_non_mujoco_env_says_what_is_wrong(
        tmp_path: Path, no_sampling: None, capsys: pytest.CaptureFixture[str]) -> None:
    config = TrainConfig.create("Pendulum-v1", "ppo", 0, 2, protocol="corrected",
                                policy_lr=3e-4, value_lr=3e-4, steps_per_iteration=256)
    path = checkpoint.save(make_agent(config), tmp_path / "pendulum.safetensors")
    code, out, err = run(["measure", str(path), "--what", "value"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("pgclaims measure: error: protocol corrected: Pendulum-v1 is not a "
                          "MuJoCo environment") and err.count("\n") == 1
    assert "checkpoint format" not in err


def test_a_protocol_other_than_the_checkpoints_is_refused(
        ckpt: str, no_sampling: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["measure", ckpt, "--protocol", "corrected"], capsys)
    assert (code, out) == (2, "")
    assert "was trained under table1" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------
# --claim


def test_an_unknown_claim_lists_the_ids_and_points_to_no_missing_file() -> None:
    from pgclaims.suite.claims import CLAIMS, unknown_message

    text = unknown_message("nosuch")
    assert all(claim_id in text for claim_id in CLAIMS)
    repo = Path(__file__).resolve().parents[1]
    assert "CLAIMS.md" not in text or (repo / "CLAIMS.md").exists()
    assert "did you mean grad.pairwise_low_at_2k" in unknown_message("grad.pairwise_low_at_2")


# ---------------------------------------------------------------------------------------------
# SB3 zips and adapter options (stable-baselines3 is an optional extra)


@pytest.fixture(scope="module")
def sb3_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sb3 = pytest.importorskip("stable_baselines3")
    root = tmp_path_factory.mktemp("sb3")
    model = sb3.PPO("MlpPolicy", "Hopper-v5", n_steps=64, batch_size=32, seed=0, device="cpu",
                    policy_kwargs={"net_arch": [8]})
    model.save(root / "model.zip")
    return root / "model.zip"


def _rewrite_data(src: Path, dst: Path, edit: Any) -> Path:
    import zipfile

    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    data = json.loads(files["data"])
    edit(data)
    files["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for name, blob in files.items():
            z.writestr(name, blob)
    return dst


def test_an_sb3_zip_without_n_steps_names_the_field(sb3_zip: Path, tmp_path: Path) -> None:
    from pgclaims.adapters import AdapterError, adapt

    path = _rewrite_data(sb3_zip, tmp_path / "m.zip", lambda d: d.pop("n_steps"))
    with pytest.raises(AdapterError) as err:
        adapt("sb3", str(path), "Hopper-v5")
    assert str(err.value) == f"{path}: data.n_steps: missing"


SB3_FIELDS = ("n_steps", "n_envs", "batch_size", "n_epochs", "gamma", "gae_lambda",
              "learning_rate", "clip_range", "clip_range_vf", "ent_coef", "num_timesteps",
              "seed", "policy_kwargs", "observation_space", "action_space", "use_sde",
              "policy_class", "lr_schedule", "normalize_advantage")


@settings(max_examples=60)
@given(st.data())
def test_any_sb3_data_is_an_agent_or_one_clean_error(sb3_zip: Path, data: st.DataObject) -> None:
    from pgclaims.adapters import AdapterError, adapt

    edits = data.draw(st.dictionaries(st.sampled_from(SB3_FIELDS),
                                      st.just("<delete>") | json_values, min_size=1, max_size=3))

    def edit(d: dict[str, Any]) -> None:
        for key, value in edits.items():
            if value == "<delete>":
                d.pop(key, None)
            else:
                d[key] = value

    with tempfile.TemporaryDirectory() as tmp:
        path = _rewrite_data(sb3_zip, Path(tmp) / "m.zip", edit)
        try:
            adapt("sb3", str(path), "Hopper-v5")
        except (AdapterError, ValueError) as exc:
            assert one_clean_line(exc), str(exc)


def test_an_unknown_adapter_option_lists_the_accepted_ones(
        sb3_zip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["measure", str(sb3_zip), "--adapter", "sb3", "--env", "Hopper-v5",
                          "--adapter-option", "foo=1"], capsys)
    assert (code, out) == (2, "")
    assert err == ("pgclaims measure: error: adapter 'sb3' has no option 'foo'; it accepts "
                   "vecnormalize, learning_rate, clip_range\n")


def test_a_missing_vecnormalize_file_is_named(sb3_zip: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.pkl"
    code, out, err = run(["measure", str(sb3_zip), "--adapter", "sb3", "--env", "Hopper-v5",
                          "--vecnormalize", str(missing)], capsys)
    assert (code, out) == (2, "")
    assert err == (f"pgclaims measure: error: {missing}: cannot read the VecNormalize "
                   "statistics (No such file or directory)\n")


@settings(max_examples=40)
@given(st.dictionaries(st.sampled_from(["learning_rate", "clip_range", "vecnormalize", "lr",
                                        "seed", ""]),
                       st.text(max_size=6) | st.sampled_from(["1e-3", "0", "-1", "nan", "inf"]),
                       max_size=3))
def test_any_adapter_options_are_an_agent_or_one_clean_error(
        sb3_zip: Path, options: dict[str, str]) -> None:
    from pgclaims.adapters import AdapterError, adapt

    try:
        adapt("sb3", str(sb3_zip), "Hopper-v5", **options)
    except (AdapterError, ValueError) as exc:
        assert one_clean_line(exc), str(exc)


def test_the_committed_results_example_still_loads(tmp_path: Path) -> None:
    shutil.copy(RESULTS, tmp_path / "results.json")
    assert load_results(tmp_path)["schema"] == 1

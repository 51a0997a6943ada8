"""The report names external agents' source and versions (``provenance.agents``).

The record is made by the suite's own writer (:meth:`pgclaims.suite.external.Manifest.to_json`,
which is what ``pytest claims --agents`` puts in results.json) from a manifest over small dummy
checkpoint files: the manifest is validated, never loaded by an adapter.
"""

from __future__ import annotations

import copy
import hashlib
import json
from html import escape
from pathlib import Path

import pytest

from pgclaims.report import ReportError, load_results
from pgclaims.report.page import build_page
from pgclaims.suite import external

DATA = Path(__file__).parent / "data"
SOURCE = "my SB3 runs <rl-zoo> & friends"


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("agents")
    agents = []
    for seed in (0, 1):
        for it in (0, 9):
            (root / f"s{seed}_{it}.zip").write_bytes(f"zip {seed} {it}".encode())
        (root / f"vn{seed}.pkl").write_bytes(b"pkl")
        agents.append({"env": "Hopper-v5", "algo": "ppo", "seed": seed, "adapter": "sb3",
                       "options": {"vecnormalize": f"vn{seed}.pkl"},
                       "checkpoints": {str(it): f"s{seed}_{it}.zip" for it in (0, 9)}})
    path = root / "manifest.json"
    path.write_text(json.dumps({"source": SOURCE, "versions": {"stable-baselines3": "2.3.0"},
                                "agents": agents}))
    return json.loads(external.read_manifest(path).to_json())


def with_agents(rec: dict | None) -> dict:
    doc = json.loads((DATA / "results.json").read_text())
    doc["results"] = doc["results"][:2]
    doc["figures"] = {}
    if rec is not None:
        doc["provenance"]["agents"] = copy.deepcopy(rec)
        doc["scale"]["external"] = copy.deepcopy(rec)
    return doc


def provenance_of(html: str) -> str:
    return html.split('<section id="provenance">', 1)[1]


def test_provenance_names_source_versions_and_files(record: dict) -> None:
    html = build_page(with_agents(record))
    prov = provenance_of(html)
    assert '<h3 id="agents">Agents: trained elsewhere</h3>' in prov
    assert "4 external agents" not in prov and "2 external agents" in prov
    assert f"<td>{escape(SOURCE)}</td>" in prov and SOURCE not in prov  # escaped, once
    assert "<td>stable-baselines3 2.3.0</td>" in prov
    installed = record["packages"]
    assert f"torch {installed['torch']}" in prov
    assert record["manifest"] in prov and record["manifest_sha256"] in prov
    files = prov.split('id="agent-files"', 1)[1].split("</table>", 1)[0]
    assert files.count("<tr>") == 1 + 4  # header, 2 seeds x 2 checkpoints
    for seed in (0, 1):
        for it in (0, 9):
            name = f"s{seed}_{it}.zip"
            digest = hashlib.sha256(f"zip {seed} {it}".encode()).hexdigest()
            assert (f"<td>Hopper-v5</td><td>PPO</td><td>{seed}</td><td>sb3</td><td>{it}</td>"
                    f'<td class="mono" title="') in files
            assert (f">{name}</td><td>vecnormalize=vn{seed}.pkl (sha256 "
                    f"{hashlib.sha256(b'pkl').hexdigest()[:16]})</td>") in files
            assert f'<td class="mono">{digest[:16]}</td>' in files


def test_header_links_to_the_agents_instead_of_dumping_the_manifest(record: dict) -> None:
    header = build_page(with_agents(record)).split("<nav>", 1)[0]
    assert "<a href='#agents'>agents trained elsewhere</a>" in header
    assert record["manifest_sha256"] not in header


def test_own_agents_have_no_agents_section() -> None:
    html = build_page(with_agents(None))
    assert 'id="agents"' not in html and "trained elsewhere" not in html


def test_results_with_agents_validate(tmp_path: Path, record: dict) -> None:
    (tmp_path / "results.json").write_text(json.dumps(with_agents(record)))
    assert load_results(tmp_path)["provenance"]["agents"] == record


def test_agents_not_an_object_is_refused(tmp_path: Path) -> None:
    doc = with_agents(None)
    doc["provenance"]["agents"] = "sb3"
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(ReportError, match=r"field 'provenance\.agents': expected an object"):
        load_results(tmp_path)

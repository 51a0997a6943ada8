"""Every REFUTED verdict is explained: each claim has a reading, filled from its row."""

from __future__ import annotations

from pgclaims.suite.claims import all_claims
from pgclaims.suite.readings import READINGS, reading
from pgclaims.suite.results import adjust_p_values


def row(claim_id: str, verdict: str, protocol: str = "authors") -> dict:
    return {"claim_id": claim_id, "verdict": verdict, "statistic": 0.0612,
            "interval": [0.041, 0.0815], "threshold": 0.3, "p_value": 0.9,
            "params": {"protocol": protocol, "env": "Hopper-v5", "algo": "ppo"}}


def test_every_claim_has_a_reading() -> None:
    assert set(READINGS) == set(all_claims())
    assert all("*" in notes for notes in READINGS.values())


def test_a_reading_names_the_numbers_and_the_protocol_field() -> None:
    text = reading(row("value.misses_true_returns", "REFUTED", "corrected"))
    assert "0.0612" in text and "[0.041, 0.0815]" in text and "0.3" in text
    assert "returns_target = continued" in text
    assert "next cut" in reading(row("value.misses_true_returns", "REFUTED", "authors"))
    assert "{" not in reading(row("grad.decays_with_task", "REFUTED"))  # no unfilled field


def test_the_document_explains_refuted_rows_only() -> None:
    from pgclaims.suite.results import document
    from pgclaims.suite.scales import get_scale

    rows = [dict(row("value.misses_true_returns", v), nodeid=v) for v in
            ("REFUTED", "REPRODUCED", "INCONCLUSIVE")]
    doc = document("r", "2026-12-01T00:00:00+00:00", get_scale("smoke"),
                   adjust_p_values(rows), {})
    by_verdict = {r["verdict"]: r for r in doc["results"]}
    assert by_verdict["REFUTED"]["reading"].startswith("The held-out MRE")
    assert "reading" not in by_verdict["REPRODUCED"] and "reading" not in by_verdict["INCONCLUSIVE"]

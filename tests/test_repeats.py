"""Repeats where they pay, from a results.json's agent values (pgclaims.suite.repeats)."""

from __future__ import annotations

import json
import math

import numpy as np

from pgclaims.stats.components import Components, optimal_repeats
from pgclaims.suite import repeats
from pgclaims.suite.plan import measure_config
from pgclaims.suite.scales import get_scale


def _row(claim_id, rng, sb, sw, agents=10, reps=10, verdict="INCONCLUSIVE"):
    centres = rng.normal(0, sb, agents)
    values = []
    for c in centres:
        x = c + rng.normal(0, sw, reps)
        values.append({"value": float(x.mean()), "within_var": float(x.var(ddof=1) / reps),
                       "repeats": reps})
    return {"claim_id": claim_id, "params": {"env": "Hopper-v5"}, "verdict": verdict,
            "agent_values": values}


def test_best_repeats_is_the_two_stage_optimum_for_a_linear_cost():
    c = Components(n_agents=10, repeats=10, mean=0, total_var=1.4, within_var=0.4,
                   between_var=1.0)
    F, cost = 900.0, 100.0
    best, gain = repeats.best_repeats(c, lambda r: F + cost * r)
    assert best == round(optimal_repeats(c, F, cost))  # sqrt(4 x 9) = 6
    assert gain < 1.0


def test_gradient_repeats_are_nearly_free_up_to_the_true_gradient():
    cfg = measure_config(get_scale("default"), "Hopper-v5")
    cost = repeats.cost_of("gradients", cfg)
    assert cost(10) - cost(5) < 0.05 * cost(5)  # the streams are the true gradient's pool
    assert cost(20) > 1.5 * cost(10)
    steps = repeats.cost_of("steps", cfg)
    assert steps(10) > 1.5 * steps(5)


def test_summary_per_kind_from_a_results_file(tmp_path):
    rng = np.random.default_rng(0)
    doc = {"results": [_row("grad.pairwise_low_at_2k", rng, 0.1, 0.1) for _ in range(6)]
           + [_row("grad.steps_disagree", rng, 1.0, 0.5) for _ in range(4)]
           + [_row("landscape.aligned_early", rng, 1.0, 1.0),
              {"claim_id": "value.misses_true_returns", "params": {}, "verdict": "REFUTED"}],
           "scale": {"name": "default"}}
    rows = repeats.row_components(doc)
    assert {r.kind for r in rows} == {"gradients", "steps"} and len(rows) == 10
    by = {s.kind: s for s in repeats.summarize(rows, measure_config(get_scale("default"),
                                                                     "Hopper-v5"))}
    assert by["gradients"].rows == 6 and by["steps"].rows == 4
    # agents differ far more than a step's repeats: fewer step repeats pay
    assert by["steps"].best < 10 and by["steps"].gain < 1
    assert 0 < by["steps"].within_share[1] < 0.1
    assert 1 < by["steps"].width_same_agents < 1.2  # what fewer repeats cost 10 fixed agents
    assert by["gradients"].best >= by["steps"].best
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    assert repeats.main([str(path)]) == 0


def test_a_file_without_agent_values_is_one_clean_error(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": [], "scale": {"name": "default"}}))
    assert repeats.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "agent_values" in err and "Traceback" not in err
    assert repeats.main([str(tmp_path / "missing.json")]) == 2


def test_flat_agents_make_repeats_the_only_thing_worth_buying():
    c = Components(n_agents=5, repeats=10, mean=0, total_var=0.1, within_var=0.1,
                   between_var=0.0)
    best, _ = repeats.best_repeats(c, lambda r: 100 + r)
    assert best == max(repeats.GRID)
    assert math.isinf(optimal_repeats(c, 100, 1))

"""Figure data for the report, read back from the measurement cache (docs/results-schema.md).

Only reads: every number here was computed by a measurement and cached; nothing is sampled.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from pgclaims.measure import cache


def _t_band(rows: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """Mean over repeats (axis 1) with a 95% t band, per grid point."""
    from scipy import stats

    mean = rows.mean(axis=1)
    r = rows.shape[1]
    half = stats.t.ppf(0.975, r - 1) * rows.std(axis=1, ddof=1) / np.sqrt(r) if r > 1 else 0 * mean
    return mean.tolist(), (mean - half).tolist(), (mean + half).tolist()


def _selected(rec: dict[str, Any], scale: Any) -> bool:
    """A record of one of the scale's agents, of its first protocol (figures show one)."""
    ix = rec["index"]
    protocols = getattr(scale, "protocols", ("table1",))
    return (ix.get("protocol", "table1") == protocols[0] and ix["env"] in scale.envs
            and ix["algo"] in scale.algos and ix["seed"] in scale.seeds
            and ix["iteration"] in scale.checkpoints)


def _records(kind: str, scale: Any) -> list[dict[str, Any]]:
    """Records of ``kind`` measured with this scale's sample counts (for each of its envs)."""
    from pgclaims.measure import ARGS, MeasureConfig

    out = []
    for env in scale.envs:
        args = ARGS[kind](MeasureConfig(**scale.measure_fields(env))) if hasattr(
            scale, "measure_fields") else None
        out += [r for r in cache.records(kind, args) if r["index"]["env"] == env]
    return out


def _who(ix: dict[str, Any]) -> dict[str, Any]:
    return {"env": ix["env"], "algo": ix["algo"], "seed": ix["seed"], "iteration": ix["iteration"]}


def figure_data(scale: Any, curves: dict[tuple[str, str, int], list[dict]] | None = None
                ) -> dict[str, list[dict[str, Any]]]:
    """Figures 1-8 data for the agents of ``scale`` that have cached measurements."""
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "training_curve", "grad_pairwise", "grad_true", "value_mre", "baselines", "landscape")}
    for (env, algo, seed), rows in sorted((curves or {}).items()):
        out["training_curve"].append({
            "env": env, "algo": algo, "seed": seed,
            "iteration": [int(r["iteration"]) for r in rows],
            "mean_return": [None if r["mean_return"] != r["mean_return"] else
                            float(r["mean_return"]) for r in rows]})
    for rec in _records("gradients", scale):
        if not _selected(rec, scale):
            continue
        res, who = rec["result"], _who(rec["index"])
        n = [int(x) for x in res["n"]]
        for key, rows in (("grad_pairwise", res["pairwise"]["valuenet"]),
                          ("grad_true", res["true_cos"])):
            mean, lo, hi = _t_band(np.asarray(rows))
            out[key].append({**who, "n": n, "mean": mean, "lo": lo, "hi": hi})
        for name, rows in res["pairwise"].items():
            mean, lo, hi = _t_band(np.asarray(rows))
            out["baselines"].append({**who, "baseline": name, "n": n, "mean": mean,
                                     "lo": lo, "hi": hi})
    for rec in _records("value", scale):
        if not _selected(rec, scale):
            continue
        res, who = rec["result"], _who(rec["index"])
        for target, split, key in (("gae", "heldout", "heldout_gae"),
                                   ("returns", "heldout", "heldout_returns"),
                                   ("gae", "train", "train_gae"),
                                   ("returns", "train", "train_returns")):
            v = float(np.nanmean(res[key])) if np.isfinite(res[key]).any() else None
            out["value_mre"].append({**who, "target": target, "split": split, "mre": v})
    for rec in _records("landscape", scale):
        if not _selected(rec, scale):
            continue
        res, who = rec["result"], _who(rec["index"])
        base = {**who, "a": res["a"].tolist(), "b": res["b"].tolist(),
                "step_norm_ratio": float(res["step_norm_ratio"])}
        out["landscape"].append({**base, "regime": "2k", "kind": "surrogate",
                                 "z": res["surrogate"].tolist()})
        for n, grid in res["reward"].items():
            regime = "2k" if int(n) == 2048 else f"{int(n) // 1000}k"
            out["landscape"].append({**base, "regime": regime, "kind": "reward",
                                     "z": grid.tolist()})
        out["landscape"].append({**base, "regime": "ref", "kind": "reward",
                                 "z": res["reward_ref"].tolist()})
    json.dumps(out)  # fail here, not in the report, if anything is not a JSON built-in
    return {k: v for k, v in out.items() if v}

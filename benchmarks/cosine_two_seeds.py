"""The corrected protocol's cosine claims measured twice on the same committed agents with two
measurement seeds, with the noise-corrected cosine as it is (U shrunk by its own variance) and
as it was (divide by sqrt(U); NaN, and the row INCONCLUSIVE, wherever U <= 0).

    python benchmarks/cosine_two_seeds.py measure --seed 0 --out runs/cos2   # ~80 min per seed
    python benchmarks/cosine_two_seeds.py measure --seed 1 --out runs/cos2   # for Hopper
    python benchmarks/cosine_two_seeds.py compare --out runs/cos2

``measure`` runs the default scale's gradient study (N grid, 10 repeats, 1.5e5-pair true
gradient) of every ``--env`` agent of the ``corrected`` protocol at iterations 0, 300 and 450,
without the true-value baseline (the cosine claims do not use it, and the value-net samples are
the same without it), one JSON file per study; an existing file is kept. ``compare`` decides
grad.true_cos_low_at_2k, grad.needs_many_samples and grad.decays_with_training per env x algo
from each seed's studies, both ways, and prints how many rows agree between the seeds. The old
cosine is recovered exactly from the new one: same numerator, sqrt(U) for sqrt(U_s).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from pgclaims import stats
from pgclaims.agents import fixtures
from pgclaims.measure.cosines import shrunk_sq_norm
from pgclaims.measure.gradients import gradient_study
from pgclaims.suite.claims import get
from pgclaims.suite.scales import get_scale

SCALE = get_scale("default")
LATE, FIRST, LAST = SCALE.late, SCALE.checkpoints[0], SCALE.checkpoints[-1]
TWO_K = 2048


def study_path(out: Path, seed: int, env: str, algo: str, agent: int, it: int) -> Path:
    return out / f"m{seed}_{env}_{algo}_s{agent}_it{it}.json"


def measure(out: Path, seed: int, envs: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for it in (LAST, *LATE[:-1], FIRST):
        for env in envs:
            for algo in SCALE.algos:
                for agent in SCALE.seeds:
                    path = study_path(out, seed, env, algo, agent, it)
                    if path.exists():
                        continue
                    started = time.time()
                    st = gradient_study(fixtures.load(env, algo, agent, it, protocol="corrected"),
                                        SCALE.n_grid, SCALE.repeats, SCALE.true_grad_n_for(env),
                                        0, seed, workers=1)
                    path.write_text(json.dumps({
                        "n": st.n.tolist(), "raw": st.true_cos.tolist(),
                        "new": st.true_cos_debiased.tolist(), "U": st.meta["true_grad_sq"],
                        "V": st.meta["true_grad_sq_var"], "f": st.meta["true_grad_signal_fraction"],
                        "seconds": time.time() - started}))
                    print(path.name, f"{time.time() - started:.0f} s", flush=True)


def cosines(path: Path, how: str) -> tuple[np.ndarray, np.ndarray]:
    """(N grid, (k, repeats) cosines) of one study, "new" or "old"."""
    d = json.loads(path.read_text())
    new = np.asarray(d["new"])
    if how == "new":
        return np.asarray(d["n"]), new
    u = np.asarray(d["U"], dtype=float)
    scale = np.array([np.sqrt(shrunk_sq_norm(a, b) / a) if a > 0 else np.nan
                      for a, b in zip(u, np.asarray(d["V"], dtype=float), strict=True)])
    return np.asarray(d["n"]), new * scale


def verdict(claim_id: str, units: list, statistic: object) -> str:
    claim = get(claim_id)
    if any(not np.all(np.isfinite(np.concatenate([np.ravel(v) for v in (
            u.values() if isinstance(u, dict) else [u])]))) for u in units):
        return "INCONCLUSIVE (undefined)"
    interval, _ = stats.hierarchical_bootstrap(units, statistic, rng=0)
    v = stats.decide(interval, claim.threshold, claim.direction)
    return f"{v.outcome.value} ({v.statistic:.3f})"


def rows(out: Path, seed: int, env: str, algo: str, how: str) -> dict[str, str]:
    def cos(agent: int, it: int) -> tuple[np.ndarray, np.ndarray]:
        return cosines(study_path(out, seed, env, algo, agent, it), how)

    low, first_last, curves = [], [], []
    for agent in SCALE.seeds:
        late = [cos(agent, it) for it in LATE]
        k = int(np.flatnonzero(late[0][0] == TWO_K)[0])
        low.append(np.concatenate([c[k] for _, c in late]))
        curves.append(np.mean([c.mean(axis=1) for _, c in late], axis=0))
        first_last.append({"last": cos(agent, LAST)[1][k], "first": cos(agent, FIRST)[1][k]})
    out_rows = {
        "grad.true_cos_low_at_2k": verdict("grad.true_cos_low_at_2k", low, lambda us: float(
            np.mean([u.mean() for u in us]))),
        "grad.decays_with_training": verdict(
            "grad.decays_with_training", first_last, lambda us: float(np.mean(
                [u["last"].mean() - u["first"].mean() for u in us]))),
    }
    claim = get("grad.needs_many_samples")
    c = np.asarray(curves)
    if not np.all(np.isfinite(c)):
        out_rows[claim.id] = "INCONCLUSIVE (undefined)"
    else:
        est, band = stats.crossing_band(late[0][0], c, claim.constants["level"])
        v = stats.crossing_verdict(est, band, claim.threshold, claim.direction)
        out_rows[claim.id] = f"{v.outcome.value} ({est})"
    return out_rows


def compare(out: Path, envs: list[str]) -> None:
    agree = {"old": 0, "new": 0}
    total = 0
    for env in envs:
        for algo in SCALE.algos:
            got = {(how, s): rows(out, s, env, algo, how) for how in ("old", "new")
                   for s in (0, 1)}
            for claim_id in got["new", 0]:
                total += 1
                line = [f"{env} {algo} {claim_id}:"]
                for how in ("old", "new"):
                    a, b = got[how, 0][claim_id], got[how, 1][claim_id]
                    same = a.split(" ")[0] == b.split(" ")[0]
                    agree[how] += same
                    line.append(f"{how} {a} / {b}{'' if same else '  <- differs'}")
                print("  ".join(line))
    print(f"rows agreeing between the two measurement seeds: old {agree['old']}/{total}, "
          f"new {agree['new']}/{total}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("measure", "compare"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="measurement seed (measure)")
    parser.add_argument("--env", action="append", default=None,
                        help="environment(s) (default: Hopper-v5)")
    args = parser.parse_args()
    envs = args.env or ["Hopper-v5"]
    if args.what == "measure":
        measure(args.out, args.seed, envs)
    else:
        compare(args.out, envs)


if __name__ == "__main__":
    main()

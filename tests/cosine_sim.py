"""Simulated gradient studies with a known gradient, shaped like the default scale's.

A study is what :func:`pgclaims.measure.gradients.gradient_study` measures at one checkpoint:
``STREAMS`` independent streams of ``CHUNKS`` chunks (2048 pairs each); estimate i at 2K is the
first chunk of stream i, and its true gradient is pooled from the other streams (72 chunks,
1.5e5 pairs at the default scale). Each chunk's mean gradient is g + noise, the noise Gaussian
with a power-law spectrum of effective dimension ``d_eff`` (15-45 measured on the committed
Hopper and Walker2d agents). ``fraction`` is the pool's signal fraction |g|^2 / E|g_hat|^2.
The gradient is either a random direction or aligned with the noise (weighted by the noise's
spectrum, as a policy gradient dominated by its log-std parameters would be).

Per study it returns, for every estimate, the exact cosine cos(e_i, g) and the noise-corrected
cosine both ways: the old rule (divide by sqrt(U), NaN when U <= 0) and the shrunk denominator
(:func:`pgclaims.measure.cosines.shrunk_sq_norm`), through the package's own functions. Run as
a script it prints the validation table of the README (bias, undefined share, coverage, the
two-measurement agreement of rows); ``tests/test_true_cosine.py`` asserts the same at fewer
trials.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from pgclaims.measure.cosines import debiased_cosines, group_jackknife_var

STREAMS = 10
"""Repeats of a gradient study (every built-in scale: 10)."""
CHUNKS = 8
"""Chunks per stream at the default scale (largest N 16384 = 8 x 2048)."""
DIM = 120
"""Simulated parameter count: enough above d_eff that the spectrum, not DIM, sets the noise."""


def spectrum(d_eff: float, dim: int = DIM) -> np.ndarray:
    """Eigenvalues k^-alpha (summing to 1) whose (sum)^2 / sum of squares is ``d_eff``."""
    k = np.arange(1, dim + 1, dtype=np.float64)
    lo, hi = 0.0, 8.0
    for _ in range(80):
        alpha = (lo + hi) / 2
        lam = k ** -alpha
        if lam.sum() ** 2 / (lam**2).sum() > d_eff:
            lo = alpha
        else:
            hi = alpha
    return lam / lam.sum()


@dataclass(frozen=True)
class Regime:
    """A checkpoint's gradient noise: pool signal fraction, effective dimension, alignment."""

    fraction: float
    d_eff: float
    aligned: bool = False


def gradients(regime: Regime, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` exact gradients of unit norm (n, DIM): the agents' checkpoints."""
    lam = spectrum(regime.d_eff)
    g = (np.sqrt(lam) if regime.aligned else 1.0) * rng.standard_normal((n, DIM))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def studies(regime: Regime, n: int, rng: np.random.Generator, chunks: int = CHUNKS,
            g: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``n`` independent studies (of the checkpoints ``g``, or of fresh ones): arrays
    (n, STREAMS) "exact", "old", "new" (cosines of the 2K estimates with the exact gradient,
    and noise-corrected by the old rule and the new)."""
    lam = spectrum(regime.d_eff)
    pool = (STREAMS - 1) * chunks
    noise_sd = np.sqrt(lam * pool * (1 - regime.fraction) / regime.fraction)
    g = gradients(regime, n, rng) if g is None else g
    x = g[:, None, None, :] + noise_sd * rng.standard_normal((n, STREAMS, chunks, DIM))
    est = x[:, :, 0]
    sums = x.sum(axis=2)                 # (n, STREAMS, DIM), chunk weight 1
    sq = (x * x).sum(axis=(2, 3))        # (n, STREAMS)
    out = {k: np.empty((n, STREAMS)) for k in ("exact", "old", "new")}
    unit = est / np.linalg.norm(est, axis=-1, keepdims=True)
    out["exact"] = np.einsum("nsd,nd->ns", unit, g)
    w = np.full(STREAMS - 1, float(chunks))
    for t in range(n):
        for i in range(STREAMS):
            keep = np.arange(STREAMS) != i
            s, q = sums[t, keep], sq[t, keep]
            pool_args = (s.sum(axis=0), float(q.sum()), float(pool), float(pool))
            var = group_jackknife_var(s, q, w, w)
            out["old"][t, i] = debiased_cosines(est[t, i], *pool_args)[0]
            out["new"][t, i] = debiased_cosines(est[t, i], *pool_args, var=var)[0]
    return out


def expected_exact(regime: Regime, rng: np.random.Generator, n: int = 200_000) -> float:
    """E[cos(e, g)] of a 2K estimate (the population value a row's interval must cover)."""
    lam = spectrum(regime.d_eff)
    pool = (STREAMS - 1) * CHUNKS
    noise_sd = np.sqrt(lam * pool * (1 - regime.fraction) / regime.fraction)
    total = 0.0
    for start in range(0, n, 20_000):
        m = min(20_000, n - start)
        g = (np.sqrt(lam) if regime.aligned else 1.0) * rng.standard_normal((m, DIM))
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        e = g + noise_sd * rng.standard_normal((m, DIM))
        total += float(np.sum(np.einsum("nd,nd->n", e, g) / np.linalg.norm(e, axis=1)))
    return total / n


def row_values(sim: dict[str, np.ndarray], agents: int, studies_per_agent: int
               ) -> dict[str, np.ndarray]:
    """Per-agent means (rows, agents) of each cosine, a row being ``agents`` agents of
    ``studies_per_agent`` studies (the late checkpoints) each; NaN where any value is."""
    per_row = agents * studies_per_agent
    rows = len(sim["exact"]) // per_row
    out = {}
    for key, v in sim.items():
        v = v[: rows * per_row].reshape(rows, agents, studies_per_agent * STREAMS)
        out[key] = v.mean(axis=2)
    return out


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The suite's default interval for a mean of agent means (jackknife-t: the one-sample t
    interval on agent values), per row of ``values`` (rows, agents)."""
    from scipy import stats as sps

    n = values.shape[1]
    half = sps.t.ppf(0.5 + level / 2, n - 1) * values.std(axis=1, ddof=1) / np.sqrt(n)
    mean = values.mean(axis=1)
    return mean - half, mean + half


def decisive(values: np.ndarray, threshold: float, level: float = 0.95) -> np.ndarray:
    """Per row of agent values: -1 when the interval lies wholly below ``threshold``, +1 wholly
    above, 0 otherwise (INCONCLUSIVE, also for a row with an undefined value)."""
    lo, hi = t_interval(values, level)
    out = np.where(hi < threshold, -1, np.where(lo > threshold, 1, 0))
    return np.where(np.isfinite(lo) & np.isfinite(hi), out, 0)


LOW_AT_2K = 0.5
"""grad.true_cos_low_at_2k's threshold (CLAIMS.md)."""


def two_runs(task: Regime, easier: Regime, rows: int, rng: np.random.Generator,
             agents: int = 5) -> dict[str, dict[str, float]]:
    """Rows measured twice on the same agents with independent measurement noise, one study per
    agent: grad.true_cos_low_at_2k on ``task`` ("low": cosine at 2K < 0.5) and
    grad.decays_with_task ("task": ``task`` minus ``easier``, < 0). Per claim and cosine, the
    share of rows whose two verdicts differ ("differ") and of verdicts decided ("decided")."""
    runs: dict[str, list[np.ndarray]] = {f"{c} {k}": [] for c in ("low", "task")
                                         for k in ("exact", "old", "new")}
    g_hard = gradients(task, rows * agents, rng)
    g_easy = gradients(easier, rows * agents, rng)
    for _ in range(2):
        hard = studies(task, rows * agents, rng, g=g_hard)
        easy = studies(easier, rows * agents, rng, g=g_easy)
        for key in ("exact", "old", "new"):
            hard_means = hard[key].mean(axis=1).reshape(rows, agents)
            diff = hard_means - easy[key].mean(axis=1).reshape(rows, agents)
            runs[f"low {key}"].append(decisive(hard_means, LOW_AT_2K))
            runs[f"task {key}"].append(decisive(diff, 0.0))
    return {k: {"differ": float(np.mean(v[0] != v[1])),
                "decided": float(np.mean(np.concatenate(v) != 0))} for k, v in runs.items()}


REGIMES = tuple(Regime(f, d, a) for d in (15, 30, 45) for a in (False, True)
                for f in (0.1, 0.2, 0.3, 0.5))


def table(trials: int, seed: int) -> list[dict[str, float]]:
    """Per regime: relative bias of the old (defined studies only) and new cosine, the share
    of undefined studies and rows, and the coverage of the 5-agent interval."""
    rng = np.random.default_rng(seed)
    out = []
    for regime in REGIMES:
        sim = studies(regime, trials, rng)
        truth = expected_exact(regime, rng)
        rows = row_values(sim, agents=5, studies_per_agent=2)
        cover = {}
        for key in ("exact", "old", "new"):
            lo, hi = t_interval(rows[key])
            ok = np.isfinite(lo)
            cover[key] = float(np.mean((lo[ok] <= truth) & (truth <= hi[ok])))
        study_mean = {k: v.mean(axis=1) for k, v in sim.items()}
        ex = study_mean["exact"]
        defined = np.isfinite(study_mean["old"])
        out.append({
            "fraction": regime.fraction, "d_eff": regime.d_eff, "aligned": regime.aligned,
            "truth": truth,
            "bias_new": float(np.mean(study_mean["new"] - ex) / truth),
            "bias_new_se": float(np.std(study_mean["new"] - ex) / np.sqrt(len(ex)) / truth),
            "bias_old": float(np.mean(study_mean["old"][defined] - ex[defined]) / truth),
            "undefined_studies": float(np.mean(~defined)),
            "undefined_rows": float(np.mean(~np.isfinite(rows["old"]).all(axis=1))),
            "cover_exact": cover["exact"], "cover_old": cover["old"],
            "cover_new": cover["new"],
        })
    return out


PAIRS = ((Regime(0.2, 45), Regime(0.2, 15)), (Regime(0.2, 15), Regime(0.3, 15)),
         (Regime(0.3, 30, True), Regime(0.5, 30, True)))
"""(harder, easier) task regimes for :func:`two_runs`: equal true cosines with unequal noise
dimensions, then two true differences (about -0.019 and -0.04)."""


if __name__ == "__main__":
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    if len(sys.argv) > 2 and sys.argv[2] == "two-runs":
        rng = np.random.default_rng(20200102)
        keys = ("exact", "old", "new")
        print("| harder | easier | E diff | true_cos_low_at_2k rows differing exact / old / new "
              "| decays_with_task rows differing exact / old / new | decided exact / old / "
              "new |")
        print("|---|---|---|---|---|---|")
        for hard, easy in PAIRS:
            r = two_runs(hard, easy, trials // 5, rng)
            diff = expected_exact(hard, rng) - expected_exact(easy, rng)
            print(f"| f {hard.fraction}, d_eff {hard.d_eff:g} | f {easy.fraction}, d_eff "
                  f"{easy.d_eff:g} | {diff:+.4f} | "
                  + " / ".join(f"{r['low ' + k]['differ']:.3f}" for k in keys) + " | "
                  + " / ".join(f"{r['task ' + k]['differ']:.3f}" for k in keys) + " | "
                  + " / ".join(f"{r['task ' + k]['decided']:.3f}" for k in keys) + " |",
                  flush=True)
        sys.exit(0)
    print("| f | d_eff | aligned | E cos | new bias (rel) | old bias (rel, defined) | "
          "undefined studies | undefined rows | coverage exact / old (defined rows) / new |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in table(trials, seed=20200101):
        print(f"| {r['fraction']} | {r['d_eff']:g} | {'yes' if r['aligned'] else 'no'} | "
              f"{r['truth']:.4f} | {r['bias_new']:+.3f} ± {r['bias_new_se']:.3f} | "
              f"{r['bias_old']:+.3f} | {r['undefined_studies']:.3f} | "
              f"{r['undefined_rows']:.3f} | {r['cover_exact']:.3f} / {r['cover_old']:.3f} / "
              f"{r['cover_new']:.3f} |", flush=True)

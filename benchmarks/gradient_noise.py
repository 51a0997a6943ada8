"""The gradient noise of committed agents, as the noise-corrected cosine meets it: how resolved a
true gradient of a given size is, and how noisy its unbiased |g|^2 estimate U is.

    python benchmarks/gradient_noise.py Hopper-v5 ppo 0 450 --protocol corrected
    python benchmarks/gradient_noise.py Humanoid-v5 trpo 1 300 --chunks 32

Samples ``--chunks`` 2048-pair chunks of the checkpoint (value-net baseline, fresh resets, as a
true-gradient pool is drawn) and prints one JSON line: the effective dimension of the gradient
noise d_eff = tr(C)^2 / tr(C^2) (C the covariance of a chunk's mean gradient, tr(C^2) from an
unbiased estimate over disjoint quadruples of chunks), and for pools of the default scale's
size (72 chunks, 1.5e5 pairs) and the nightly/paper size (488 chunks, 1e6 pairs) the signal
fraction f = |g|^2 / E|g_hat|^2 and the relative standard error r = sd(U) / |g|^2 ~ tau
sqrt(2 / d_eff) (tau = (1 - f) / f). These are the figures :mod:`pgclaims.measure.cosines`
quotes (d_eff 15-45 on Hopper and Walker2d, ~700 on Humanoid) and ``tests/cosine_sim.py``
simulates. About 20-60 s of one core for Hopper at 48 chunks, ~12 min for Humanoid.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import closing

import numpy as np

from pgclaims.agents import fixtures
from pgclaims.measure.gradients import GradReducer
from pgclaims.measure.parallel import chunk_map
from pgclaims.measure.sampler import CHUNK

POOLS = {"default": 72, "nightly": 488}
"""Chunks in a true-gradient pool: 9 streams of 8 chunks at the default scale; 1e6 pairs."""
QUADRUPLES = 4000
"""Disjoint chunk quadruples averaged for tr(C^2) (Monte Carlo over the quadruples only)."""


def noise(env: str, algo: str, seed: int, iteration: int, protocol: str, chunks: int,
          measure_seed: int) -> dict[str, object]:
    agent = fixtures.load(env, algo, seed, iteration, protocol=protocol)
    jobs = [(CHUNK, (7, c), ("valuenet",)) for c in range(chunks)]
    started = time.time()
    s_ga, s_g, s_a, n = [], [], 0.0, 0
    with closing(chunk_map(agent, GradReducer(agent), jobs, measure_seed, 1)) as results:
        for summary in results:
            st = summary.stats["valuenet"]
            s_ga.append(st.s_ga)
            s_g.append(st.s_g)
            s_a += st.s_a
            n += st.n
    mu = s_a / n
    x = (np.array(s_ga) - mu * np.array(s_g)) / CHUNK  # chunk means: g + noise, covariance C
    total, sq = x.sum(axis=0), float((x * x).sum())
    g_sq = (total @ total - sq) / (chunks * (chunks - 1))
    centred = x - x.mean(axis=0)
    tr_c = float((centred * centred).sum()) / (chunks - 1)
    rng = np.random.default_rng(0)
    quads = [rng.choice(chunks, 4, replace=False) for _ in range(QUADRUPLES)]
    tr_c2 = float(np.mean([((x[a] - x[b]) @ (x[c] - x[d])) ** 2 / 4 for a, b, c, d in quads]))
    d_eff = tr_c**2 / tr_c2
    out: dict[str, object] = {
        "agent": f"{protocol} {env} {algo} seed {seed} it {iteration}", "chunks": chunks,
        "params": int(x.shape[1]), "seconds": round(time.time() - started, 1),
        "g_sq": g_sq, "tr_cov": tr_c, "d_eff": d_eff}
    for name, m in POOLS.items():
        tau = tr_c / m / g_sq if g_sq > 0 else float("inf")
        out[f"fraction_{name}"] = 1 / (1 + tau)
        out[f"rel_se_{name}"] = tau * float(np.sqrt(2 / d_eff))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("env")
    parser.add_argument("algo")
    parser.add_argument("seed", type=int)
    parser.add_argument("iteration", type=int)
    parser.add_argument("--protocol", default="corrected")
    parser.add_argument("--chunks", type=int, default=48)
    parser.add_argument("--measure-seed", type=int, default=12345)
    args = parser.parse_args()
    print(json.dumps(noise(args.env, args.algo, args.seed, args.iteration, args.protocol,
                           args.chunks, args.measure_seed)))


if __name__ == "__main__":
    main()

"""Gradient estimates of eq. (1)/(14) and their quality (Figures 1, 2, 4, 9, 10; A.4).

The gradient at the checkpoint of the surrogate E[pi/pi_old * A_hat] with batch-normalized
advantages is g = sum_i grad log pi_i (A_i - mu) / (N sigma). Each chunk of samples is reduced
to sufficient statistics (sum grad log pi * A, sum grad log pi, sum A, sum A^2, N): the
estimate from any union of chunks is then exact, nested N reuse samples, and per-sample
gradients are never stored.

Protocol (one pass serves Figures 1, 2 and 4): ``repeats`` independent streams of 2048-pair
chunks up to the largest N of the grid; the estimate i at N uses the first N pairs of stream i
(N below 2048: a separate, shorter batch per estimate). The true gradient compared with
estimate i is built from the *other* streams' full pools (leave-one-pool-out) plus, when that
falls short of ``true_grad_n``, an extra pool shared by all: disjoint from estimate i, and half
the sampling of drawing a separate true pool.

Noise-corrected cosine (``true_cos_debiased``; the estimator is in :mod:`.cosines`). Estimate
i's true-gradient pool P is a union of m independent 2048-pair chunks j (fresh resets, disjoint
from estimate i). With mu_P, sd_P its pooled advantage mean and deviation and u_j =
sum_{t in j} grad log pi_t (A_t - mu_P), the true gradient is exactly S / (n_P sd_P), S =
sum_j u_j. The corrected cosine is <e_i, S> / n_P over |e_i| sqrt(U_s), U the U-statistic of
|h|^2 over pairs of distinct chunks, h = E[grad log pi (A - mu)] the exact gradient up to the
positive 1/sigma (which cancels), and U_s = U shrunk by its own jackknife variance over the
pool's independent groups (the other streams; the extra pool in stream-sized blocks), so that
it is defined for every study (:func:`.cosines.shrunk_sq_norm`): it estimates cos(e_i, h).
The raw cosine is it times sqrt(U_s / U) sqrt(meta "true_grad_signal_fraction"); meta keeps
U and its variance per repeat ("true_grad_sq", "true_grad_sq_var"). NaN only for a pool of
fewer than 2 groups (counted in meta); not clipped.
Centering: the shared mu_P couples the chunks (u_j = H_j - (mu_P - mu) G_j, H_j and G_j the
chunk's sums of grad log pi (A - mu) and of grad log pi, independent across chunks), which
biases S / n_P and U by O(1/n_P) relative, with no tr(Cov) factor: negligible beside the
tr(Cov) / (n_P |h|^2) that U removes. Centering each chunk on its own mean would make the units
independent but give each an O(1/CHUNK) bias and a scale unlike the true gradient's. Samples
of one chunk share trajectories, so pairs within a chunk never enter U.

Chunks are drawn and reduced to their statistics in worker processes
(:func:`pgclaims.measure.parallel.chunk_map`) and combined here in a fixed order, so a study is
bit-identical whatever the number of workers.
"""

from __future__ import annotations

import copy
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pgclaims.agents.agent import Agent, advantages
from pgclaims.agents.networks import GaussianPolicy, ValueNet, flat_grad
from pgclaims.agents.rollout import Batch
from pgclaims.measure.cosines import (
    SHRINK,
    centered_sq,
    cosine,
    cross_pool_sq_norm,
    debiased_cosines,
    group_jackknife_var,
    loo_pairwise,
    signal_fraction,
    unit_moments,
)
from pgclaims.measure.cosines import mean_pairwise_cosine as mean_pairwise_cosine  # re-export
from pgclaims.measure.parallel import chunk_map
from pgclaims.measure.sampler import CHUNK
from pgclaims.measure.truevalue import true_value_net

BASELINES = ("valuenet", "true", "zero")


@dataclass
class GradStats:
    """Sufficient statistics of the normalized-advantage gradient over a set of pairs."""

    s_ga: np.ndarray
    s_g: np.ndarray
    s_a: float = 0.0
    s_a2: float = 0.0
    n: int = 0

    @classmethod
    def zeros(cls, dim: int) -> GradStats:
        return cls(np.zeros(dim), np.zeros(dim))

    def __add__(self, other: GradStats) -> GradStats:
        return GradStats(self.s_ga + other.s_ga, self.s_g + other.s_g, self.s_a + other.s_a,
                         self.s_a2 + other.s_a2, self.n + other.n)

    def estimate(self, center: bool = True) -> np.ndarray:
        """g from these pairs; ``center=False`` scales without centering (zero baseline)."""
        mu = self.s_a / self.n
        sd = float(np.sqrt(max(self.s_a2 / self.n - mu * mu, 0.0)))
        num = self.s_ga - mu * self.s_g if center else self.s_ga
        return num / (self.n * (sd + 1e-8))


def chunk_stats(policy64: GaussianPolicy, batch: Batch, adv: np.ndarray) -> GradStats:
    """Reduce one chunk: two backward passes, no per-sample gradients."""
    obs = torch.from_numpy(batch.obs).double()
    act = torch.from_numpy(batch.actions).double()
    logp = policy64.log_prob(obs, act)
    a = torch.from_numpy(np.asarray(adv, np.float64))
    s_ga = flat_grad((logp * a).sum(), policy64, retain_graph=True).numpy()
    s_g = flat_grad(logp.sum(), policy64).numpy()
    return GradStats(s_ga, s_g, float(a.sum()), float((a * a).sum()), len(adv))


def direct_gradient(policy64: GaussianPolicy, batch: Batch, adv: np.ndarray,
                    center: bool = True) -> np.ndarray:
    """The same gradient by autograd on the normalized surrogate (reference for tests)."""
    from pgclaims.agents.agent import normalize

    obs = torch.from_numpy(batch.obs).double()
    act = torch.from_numpy(batch.actions).double()
    logp = policy64.log_prob(obs, act)
    a_hat = torch.from_numpy(normalize(np.asarray(adv, np.float64), center))
    return flat_grad((torch.exp(logp - logp.detach()) * a_hat).mean(), policy64).numpy()


@dataclass
class ChunkSummary:
    """A chunk reduced to gradient statistics per baseline, and its batch statistics."""

    stats: dict[str, GradStats]
    trajectories: int
    episode_returns: np.ndarray


class GradReducer:
    """``reducer(batch, baselines)``: the chunk's :class:`GradStats` under each baseline.

    "valuenet" and "true" use GAE advantages from the agent's value net or the true-value net;
    "zero" uses discounted returns (reduce with ``center=False``)."""

    def __init__(self, agent: Agent, true_net: ValueNet | None = None) -> None:
        self.hyper = agent.hyper
        self.max_steps = agent.max_episode_steps
        self.value = agent.value
        self.true_net = true_net
        self.policy64 = copy.deepcopy(agent.policy).double()

    def __call__(self, batch: Batch, baselines: tuple[str, ...]) -> ChunkSummary:
        hp = self.hyper
        out = {}
        for name in baselines:
            value = self.true_net if name == "true" else self.value
            if value is None:
                raise ValueError("the 'true' baseline needs a true-value net")
            adv = advantages(value, batch, hp.gamma, hp.gae_lambda,
                             "zero" if name == "zero" else "valuenet", time_limit=hp.time_limit,
                             batch_end=hp.batch_end, max_episode_steps=self.max_steps).raw
            out[name] = chunk_stats(self.policy64, batch, adv)
        return ChunkSummary(out, batch.n_trajectories, batch.episode_returns)


def pooled_stats(agent: Agent, n: int, rng_path: tuple[int, ...], seed: int,
                 workers: int | None = None) -> GradStats:
    """Value-net-baseline statistics of ``ceil(n / CHUNK)`` chunks seeded (seed, *rng_path, c).

    Chunks are reduced as they arrive, so memory does not grow with ``n``; ``.estimate()`` of
    the result is a true gradient of eq. (1) from ``n`` (rounded up to whole chunks) pairs."""
    reduce = GradReducer(agent)
    jobs = [(CHUNK, (*rng_path, c), ("valuenet",)) for c in range(-(-n // CHUNK))]
    total = GradStats.zeros(_n_params(reduce.policy64))
    with closing(chunk_map(agent, reduce, jobs, seed, workers)) as results:
        for summary in results:
            total = total + summary.stats["valuenet"]
    return total


def _pool_var(groups: list[GradStats], moments: np.ndarray, mu: float) -> float:
    """Jackknife variance of the pool's U over its independent groups (the other streams, and
    the extra pool in stream-sized blocks), centred on the pool's mean advantage ``mu``."""
    sums = np.stack([g.s_ga - mu * g.s_g for g in groups])
    sq = np.array([centered_sq(m, mu) for m in moments])
    weight = np.array([float(g.n) for g in groups])
    return group_jackknife_var(sums, sq, weight, moments[:, 3])


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _moments(stats: GradStats) -> np.ndarray:
    return unit_moments(stats.s_ga, stats.s_g, stats.n)


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass
class GradientStudy:
    """Figures 1, 2 and 4 for one checkpoint, plus batch statistics of the same samples."""

    n: np.ndarray
    """N (state-action pairs) of each estimate, shape (k,)."""
    pairwise: dict[str, np.ndarray]
    """Per baseline, (k, repeats): estimate i's mean cosine with the other estimates at N."""
    true_cos: np.ndarray
    """(k, repeats): cosine of estimate i (value-net baseline) with its true gradient."""
    trajectories: np.ndarray
    """Trajectories (complete or cut) in each 2048-pair chunk sampled."""
    episode_returns: np.ndarray
    """Raw undiscounted returns of the complete episodes in those chunks."""
    true_cos_debiased: np.ndarray | None = None
    """(k, repeats): the same pairs' cosine with the exact gradient, the true gradient's own
    noise removed (module docstring; a ratio estimator, not clipped, may exceed 1). NaN where
    the pool's |g|^2 estimate is not positive (counted in meta). None only in a study cached
    before it existed: a claim that needs it must refuse (claims/conftest.py does)."""
    meta: dict[str, Any] = field(default_factory=dict)

    def at(self, n: int) -> int:
        hits = np.flatnonzero(self.n == n)
        if not len(hits):
            raise KeyError(f"N={n} not measured; have {self.n.tolist()}")
        return int(hits[0])


def gradient_study(agent: Agent, n_grid: tuple[int, ...], repeats: int, true_grad_n: int,
                   true_value_n: int, seed: int, progress: Any = None,
                   workers: int | None = None) -> GradientStudy:
    """Run the protocol in the module docstring. ``progress(msg)`` is called per stream.

    ``workers``: processes sampling chunks (default :func:`parallel.default_workers`); the
    result does not depend on it."""
    torch.set_num_threads(1)
    small = sorted(n for n in n_grid if n < CHUNK)
    big = sorted({-(-n // CHUNK) * CHUNK for n in n_grid if n >= CHUNK})
    n_max = big[-1] if big else CHUNK
    trajectories: list[int] = []
    returns: list[np.ndarray] = []
    pairs = 0

    true_net, true_meta = None, {}
    if true_value_n:  # streamed: memory does not grow with true_value_n (.truevalue)
        true_net, true_meta, trajectories, returns = true_value_net(agent, true_value_n, seed,
                                                                    workers)
        pairs += CHUNK * -(-true_value_n // CHUNK)

    reduce = GradReducer(agent, true_net)
    dim = _n_params(reduce.policy64)
    names = tuple(b for b in BASELINES if b != "true" or true_net is not None)
    extra_n = max(0, true_grad_n - (repeats - 1) * n_max)
    jobs = []
    for i in range(repeats):
        jobs += [(n, (0, i, k), names) for k, n in enumerate(small)]
        jobs += [(CHUNK, (1, i, c), names) for c in range(n_max // CHUNK)]
    jobs += [(CHUNK, (3, c), ("valuenet",)) for c in range(-(-extra_n // CHUNK))]  # extra pool

    est = {b: np.zeros((len(small) + len(big), repeats, dim)) for b in names}
    pools: list[GradStats] = []  # per stream, then the extra pool in stream-sized blocks
    per_block = n_max // CHUNK
    extra_chunks = -(-extra_n // CHUNK)
    n_blocks = -(-extra_chunks // per_block)
    moments = np.zeros((repeats + n_blocks, 4))  # summed unit_moments of each of those groups
    with closing(chunk_map(agent, reduce, jobs, seed, workers)) as results:
        for i in range(repeats):
            for k, n in enumerate(small):
                s = next(results).stats
                pairs += n
                for b in names:
                    est[b][k, i] = s[b].estimate(center=b != "zero")
            acc = {b: GradStats.zeros(dim) for b in names}
            for c in range(n_max // CHUNK):
                chunk = next(results)
                pairs += CHUNK
                trajectories.append(chunk.trajectories)
                returns.append(chunk.episode_returns)
                acc = {b: acc[b] + chunk.stats[b] for b in names}
                moments[i] += _moments(chunk.stats["valuenet"])
                n_now = (c + 1) * CHUNK
                if n_now in big:
                    k = len(small) + big.index(n_now)
                    for b in names:
                        est[b][k, i] = acc[b].estimate(center=b != "zero")
            pools.append(acc["valuenet"])
            if progress:
                progress(f"gradient stream {i + 1}/{repeats} ({pairs} pairs)")
        pools += [GradStats.zeros(dim) for _ in range(n_blocks)]
        for c, chunk in enumerate(results):
            pairs += CHUNK
            block = repeats + c // per_block
            pools[block] = pools[block] + chunk.stats["valuenet"]
            moments[block] += _moments(chunk.stats["valuenet"])
    total = sum(pools[1:], pools[0])
    extra_pairs = total.n - sum(p.n for p in pools[:repeats])
    true_cos = np.zeros((len(small) + len(big), repeats))
    debiased = np.zeros_like(true_cos)
    fraction, sq_norm, sq_var = [], [], []
    for i in range(repeats):
        others = GradStats(total.s_ga - pools[i].s_ga, total.s_g - pools[i].s_g,
                           total.s_a - pools[i].s_a, total.s_a2 - pools[i].s_a2,
                           total.n - pools[i].n)
        g_true = others.estimate()
        for k in range(len(small) + len(big)):
            true_cos[k, i] = cosine(est["valuenet"][k, i], g_true)
        mu = others.s_a / others.n
        keep = [j for j in range(len(pools)) if j != i]
        mom = moments[keep].sum(axis=0)
        pool = (others.s_ga - mu * others.s_g, centered_sq(mom, mu), others.n, mom[3])
        var = _pool_var([pools[j] for j in keep], moments[keep], mu)
        debiased[:, i] = debiased_cosines(est["valuenet"][:, i], *pool, var=var)
        fraction.append(signal_fraction(*pool))
        sq_norm.append(cross_pool_sq_norm(*pool))
        sq_var.append(var)
    units = (repeats - 1) * per_block + extra_pairs // CHUNK
    return GradientStudy(
        n=np.asarray(small + big),
        pairwise={b: np.stack([loo_pairwise(est[b][k]) for k in range(len(small) + len(big))])
                  for b in names},
        true_cos=true_cos,
        trajectories=np.asarray(trajectories),
        episode_returns=np.concatenate(returns) if returns else np.zeros(0),
        true_cos_debiased=debiased,
        meta={
            "true_gradient": "leave-one-pool-out: the other streams' full pools plus a shared "
                             "extra pool, disjoint from the estimate",
            "true_cos_debiased": "<e, S>/n_P / (|e| sqrt(U_s)), U the U-statistic of |g|^2 "
                                 "over pairs of distinct chunks of the true gradient's pool, "
                                 "U_s = (U + sqrt(U^2 + kappa V)) / 2, V its jackknife "
                                 "variance over the pool's streams",
            "true_grad_sq_units": int(units),
            "true_grad_sq_unit_pairs": int(units * (units - 1) // 2),
            "true_grad_signal_fraction": [float(f) if np.isfinite(f) else None  # < 2 units
                                          for f in fraction],
            "true_grad_sq": [_finite(u) for u in sq_norm],
            "true_grad_sq_var": [_finite(v) for v in sq_var],
            "true_cos_debiased_shrink": SHRINK,
            "true_cos_debiased_undefined": int(np.isnan(debiased).sum()),
            "true_cos_debiased_above_one": int((np.abs(debiased) > 1).sum()),
            "true_grad_pairs": int(total.n - n_max),
            "extra_pool_pairs": int(extra_pairs),
            "true_grad_sq_groups": int(len(pools) - 1),
            "pairs_sampled": int(pairs),
            "n_params": int(dim),
            **true_meta,
        },
    )


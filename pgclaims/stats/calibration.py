"""Simulations that calibrate the verdict engine: coverage of its intervals on the shapes our
statistics take, and the false decisive verdicts of a whole run with every effect at its
threshold. ``benchmarks/calibration.py`` prints the tables of docs/statistics.md from these;
``tests/test_stats.py`` and ``tests/test_calibration.py`` run them with fewer trials.

The unit of every interval is the agent: a claim's statistic is (for all but the ratios) a mean
over agents of per-agent values, each the mean of that agent's repeats. So a trial draws
``n_agents`` agent values from a :class:`Shape` (a synthetic shape draws each agent's true mean
and then 10 repeats about it; a shape fitted to our agents draws the agent value directly, as
measured, repeats included) and computes the interval with the engine's own pivot functions
(:mod:`pgclaims.stats.pivot`), vectorized over trials. ``tests/test_calibration.py`` checks
that they give what :func:`pgclaims.stats.hierarchical_bootstrap` gives on the same data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pgclaims.stats.multiplicity import ErrorControl
from pgclaims.stats.pivot import UNBOUNDED, Support, studentize, t_bounds, transform_for

REPEATS = 10
"""Repeats per agent in the synthetic shapes (CLAIMS.md: 10)."""
WITHIN_NORMAL_SD = 1.0
"""Within-agent sd of a repeat about its agent's mean, normal shape (= the between-agent sd)."""
WITHIN_GAMMA_SHAPE = 10.0
"""Positive shapes: a repeat is the agent's mean times Gamma(10, 1/10) (mean 1, CV 0.32)."""
WITHIN_BETA_CONCENTRATION = 20.0
"""Bounded shapes: a repeat is Beta(20 u, 20 (1 - u)) rescaled, u the agent's rescaled mean."""
MIN_VARIANCE_SHARE = 1e-6


@dataclass(frozen=True)
class Shape:
    """A population of agent values: ``draw(rng, (trials, n_agents))`` gives agent values (the
    means of their repeats) whose population mean is ``mean``; ``support`` is declared."""

    name: str
    support: Support
    mean: float
    draw: Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


def _repeats(kind: str, support: Support) -> Callable[[np.random.Generator, np.ndarray],
                                                      np.ndarray]:
    """Agent means of REPEATS repeats about each agent's true mean m (mean-preserving)."""
    lo, hi = support

    def normal(rng: np.random.Generator, m: np.ndarray) -> np.ndarray:
        return m + rng.normal(0.0, WITHIN_NORMAL_SD, (*m.shape, REPEATS)).mean(axis=-1)

    def positive(rng: np.random.Generator, m: np.ndarray) -> np.ndarray:
        k = WITHIN_GAMMA_SHAPE
        return lo + (m - lo) * rng.gamma(k, 1.0 / k, (*m.shape, REPEATS)).mean(axis=-1)

    def bounded(rng: np.random.Generator, m: np.ndarray) -> np.ndarray:
        u = np.clip((m - lo) / (hi - lo), 1e-9, 1 - 1e-9)[..., None]
        c = WITHIN_BETA_CONCENTRATION
        b = rng.beta(c * u, c * (1 - u), (*m.shape, REPEATS)).mean(axis=-1)
        return lo + (hi - lo) * b

    return {"normal": normal, "positive": positive, "bounded": bounded}[kind]


def hierarchical(name: str, support: Support, mean: float,
                 between: Callable[[np.random.Generator, tuple[int, int]], np.ndarray],
                 within: str) -> Shape:
    """A synthetic shape: agents' true means from ``between``, then repeats ("normal",
    "positive" or "bounded" noise, all with mean zero about the agent's mean)."""
    noise = _repeats(within, support)
    return Shape(name, support, mean, lambda rng, size: noise(rng, between(rng, size)))


def synthetic_shapes() -> list[Shape]:
    """The shapes of issue 24: normal, exponential, lognormal(0, 0.5) and (0, 1) (positive
    statistics such as MREs), and the bounded cosine-like 2 Beta(1.5, 0.5) - 1."""
    positive = (0.0, math.inf)
    return [
        hierarchical("normal", UNBOUNDED, 0.0, lambda r, s: r.normal(0.0, 1.0, s), "normal"),
        hierarchical("exponential", positive, 1.0, lambda r, s: r.exponential(1.0, s),
                     "positive"),
        hierarchical("lognormal(0, 0.5)", positive, math.exp(0.125),
                     lambda r, s: r.lognormal(0.0, 0.5, s), "positive"),
        hierarchical("lognormal(0, 1)", positive, math.exp(0.5),
                     lambda r, s: r.lognormal(0.0, 1.0, s), "positive"),
        hierarchical("cosine-like 2 Beta(1.5, 0.5) - 1", (-1.0, 1.0), 0.5,
                     lambda r, s: 2.0 * r.beta(1.5, 0.5, s) - 1.0, "bounded"),
    ]


def as_unbounded(shape: Shape) -> Shape:
    """The same population declared without bounds (how an unbounded statistic of that shape,
    e.g. a skewed difference of returns, is treated)."""
    return Shape(f"{shape.name}, declared unbounded", UNBOUNDED, shape.mean, shape.draw)


def fitted(name: str, values: Sequence[float], support: Support, *, mean: float | None = None,
           skewness: float = 0.0) -> Shape:
    """A shape fitted to measured agent values (moments), placed at ``mean`` (default: theirs).

    Between two bounds: a Beta on the support with the values' mean and variance; beside one
    bound: a Gamma from that bound with their mean and coefficient of variation; unbounded: a
    Pearson III (shifted Gamma) with their sd and the given ``skewness`` (0: normal)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: need at least 2 finite agent values, got {x.tolist()}")
    m = float(x.mean()) if mean is None else float(mean)
    sd = float(x.std(ddof=1))
    lo, hi = support
    if math.isfinite(lo) and math.isfinite(hi):
        u = (m - lo) / (hi - lo)
        var = min((sd / (hi - lo)) ** 2, u * (1 - u) * (1 - MIN_VARIANCE_SHARE))
        var = max(var, u * (1 - u) * MIN_VARIANCE_SHARE)
        k = u * (1 - u) / var - 1.0
        return Shape(name, support, m, lambda r, s: lo + (hi - lo) * r.beta(u * k, (1 - u) * k,
                                                                           s))
    if math.isfinite(lo) or math.isfinite(hi):
        sign, edge = (1.0, lo) if math.isfinite(lo) else (-1.0, hi)
        scale_mean = sign * (m - edge)
        cv = max(sd / scale_mean, 1e-6)
        k = 1.0 / cv**2
        return Shape(name, support, m,
                     lambda r, s: edge + sign * r.gamma(k, scale_mean / k, s))
    if abs(skewness) < 1e-3:
        return Shape(name, support, m, lambda r, s: r.normal(m, sd, s))
    k = 4.0 / skewness**2
    sign = math.copysign(1.0, skewness)
    return Shape(name, support, m,
                 lambda r, s: m + sign * sd * (r.gamma(k, 1.0, s) - k) / math.sqrt(k))


def pooled_skewness(rows: Sequence[Sequence[float]]) -> float:
    """Skewness of the values of several rows, each standardized by its own mean and sd, with
    the small-sample factor of the adjusted Fisher-Pearson estimator over the pooled count."""
    z = []
    for row in rows:
        x = np.asarray(row, dtype=np.float64)
        if x.size > 2 and x.std() > 0:
            z.append((x - x.mean()) / x.std())
    if not z:
        return 0.0
    flat = np.concatenate(z)
    n = flat.size
    g1 = float(np.mean(flat**3) / np.mean(flat**2) ** 1.5)
    return g1 * math.sqrt(n * (n - 1)) / (n - 2) if n > 2 else 0.0


def intervals(x: np.ndarray, support: Support, method: str,
              confidence_level: float) -> tuple[np.ndarray, np.ndarray]:
    """The engine's interval for the mean of agent values ``x`` (trials, n_agents): method
    "auto" (the support's scale) or "jackknife-t" (raw scale)."""
    n = x.shape[-1]
    est = x.mean(axis=-1)
    loo = (x.sum(axis=-1, keepdims=True) - x) / (n - 1)
    transform = transform_for(support) if method == "auto" else "identity"
    centre, se, ok = studentize(est, loo, support, transform)
    return t_bounds(centre, se, n - 1, confidence_level, transform, support, ok)


@dataclass(frozen=True)
class Coverage:
    trials: int
    below: float
    """Share of trials whose interval lies wholly above the truth (truth below it)."""
    above: float
    width: float
    """Median width."""

    @property
    def coverage(self) -> float:
        return 1.0 - self.below - self.above

    @property
    def se(self) -> float:
        """Binomial standard error of :attr:`coverage`."""
        c = self.coverage
        return math.sqrt(c * (1 - c) / self.trials)


def coverage(shape: Shape, n_agents: int, method: str, *, trials: int,
             rng: np.random.Generator, confidence_level: float = 0.95,
             chunk: int = 200_000) -> Coverage:
    below = above = 0
    widths = []
    done = 0
    while done < trials:
        size = min(chunk, trials - done)
        lo, hi = intervals(shape.draw(rng, (size, n_agents)), shape.support, method,
                           confidence_level)
        below += int(np.sum(shape.mean < lo))
        above += int(np.sum(shape.mean > hi))
        widths.append(np.median(hi - lo))
        done += size
    return Coverage(trials, below / trials, above / trials, float(np.median(widths)))


def false_decisive(shapes: Sequence[Shape], thresholds: Sequence[float], n_agents: int,
                   control: ErrorControl, method: str, *, runs: int,
                   rng: np.random.Generator, rows_per_chunk: int = 100_000) -> np.ndarray:
    """Decisive verdicts per simulated run whose every row's effect sits exactly at its
    threshold (``shapes[i].mean == thresholds[i]``), so every decisive verdict is false; one
    count per run. Each row is decided as the suite decides it: REPRODUCED or REFUTED when the
    interval at ``control.confidence_level`` lies wholly on one side (the direction does not
    matter here: at the threshold both are errors)."""
    if len(shapes) != len(thresholds):
        raise ValueError(f"{len(shapes)} shapes but {len(thresholds)} thresholds")
    counts = np.zeros(runs, dtype=np.int64)
    per = max(1, rows_per_chunk // max(1, len(shapes)))
    for start in range(0, runs, per):
        size = min(per, runs - start)
        for shape, thr in zip(shapes, thresholds, strict=True):
            if abs(shape.mean - thr) > 1e-9 * max(1.0, abs(thr)):
                raise ValueError(f"{shape.name}: mean {shape.mean} is not at threshold {thr}")
            lo, hi = intervals(shape.draw(rng, (size, n_agents)), shape.support, method,
                               control.confidence_level)
            counts[start:start + size] += (lo > thr) | (hi < thr)
    return counts


__all__ = ["REPEATS", "Coverage", "Shape", "as_unbounded", "coverage", "false_decisive",
           "fitted", "hierarchical", "intervals", "pooled_skewness", "synthetic_shapes"]

"""The normalizers of many streams at once, one row per stream, for the lockstep collector.

:func:`pgclaims.agents.rollout.collect` calls one :class:`~pgclaims.agents.envs.ObsNormalizer`
and one :class:`~pgclaims.agents.envs.RewardScaler` per step. Here the k streams of a lockstep
group keep theirs as rows of preallocated arrays, and every step applies the same float64
operations to all rows at once (elementwise, so each row is its stream's scalar result bit for
bit): Welford's update (``delta = x - mean; mean += delta / count; m2 += delta * (x - mean)``,
the first push copying x), the standard deviation ``sqrt(m2 / (count - 1))`` (``sqrt(mean^2)``
at one sample), ``(x - mean) / (std + 1e-8)`` and the clip as ``min(max(x, -clip), clip)``
(what ``np.clip`` computes for floats). When the group ends, :meth:`ObsRows.store` and
:meth:`RewardRows.store` write each row back into its stream's normalizer.

A stream whose normalizers are not updated (measurement, or ``update=False``) is frozen: its
observation denominator is computed once (:class:`~pgclaims.agents.envs.FrozenObsNorm`'s
arithmetic; the identity as ``(x - 0) / 1``, which is x exactly), and its rewards are scaled at
the end of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pgclaims.agents.envs import FrozenObsNorm, FrozenRewardScaler, ObsNormalizer, RewardScaler


def _frozen_obs(norm: Any) -> FrozenObsNorm:
    return norm if isinstance(norm, FrozenObsNorm) else FrozenObsNorm(norm)


def _frozen_reward(scaler: Any) -> FrozenRewardScaler:
    return scaler if isinstance(scaler, FrozenRewardScaler) else FrozenRewardScaler(scaler)


def _distinct(objs: Sequence[Any], what: str) -> None:
    if len({id(o) for o in objs}) != len(objs):
        raise ValueError(f"streams that update their {what} need one each (a shared one would "
                         "be updated by several streams at once)")


class ObsRows:
    """The observation normalizers of a group: all updated (training) or all frozen."""

    def __init__(self, norms: Sequence[Any], update: bool, width: int) -> None:
        k = len(norms)
        self.update = update
        self.norms = list(norms)
        self.clip = np.array([[float(n.clip)] for n in norms])
        self.neg_clip = -self.clip
        if update:
            if not all(isinstance(n, ObsNormalizer) for n in norms):
                raise ValueError("updated observation normalizers must be ObsNormalizer")
            _distinct([n.stats for n in norms], "observation normalizer")
            self.mean = np.array([n.stats.mean for n in norms], np.float64).reshape(k, width)
            self.m2 = np.array([n.stats.m2 for n in norms], np.float64).reshape(k, width)
            self.count = np.array([[float(n.stats.count)] for n in norms])
            self._fresh = bool((self.count == 0).any())
            """Whether some row has seen nothing yet (its first push copies x)."""
            self._delta = np.empty((k, width))
            self._tmp = np.empty((k, width))
            self.denom = np.empty((k, width))
        else:
            frozen = [_frozen_obs(n) for n in norms]
            self.mean = np.array([np.zeros(width) if f.identity else f.mean for f in frozen])
            self.denom = np.array([np.ones(width) if f.identity else f.denom for f in frozen])

    def __call__(self, raw: np.ndarray, out: np.ndarray, rows: np.ndarray | None = None) -> None:
        """``out = normalize(raw)`` for every row (``rows``: a boolean mask of the streams that
        stepped, the others' rows are stale and skipped), pushing ``raw`` first when updating."""
        self._apply(slice(None), raw, out, True if rows is None else rows[:, None])

    def row(self, i: int, raw: np.ndarray, out: np.ndarray) -> None:
        """:meth:`__call__` for stream ``i`` alone (a reset); ``raw`` and ``out`` its rows
        (shape (1, width))."""
        self._apply(slice(i, i + 1), raw, out, True)

    def _apply(self, sl: slice, x: np.ndarray, out: np.ndarray, where: Any) -> None:
        if self.update:
            self._push(sl, x, where)
        np.subtract(x, self.mean[sl], out=out, where=where)
        np.divide(out, self.denom[sl], out=out, where=where)
        np.maximum(out, self.neg_clip[sl], out=out, where=where)
        np.minimum(out, self.clip[sl], out=out, where=where)

    def _push(self, sl: slice, x: np.ndarray, where: Any) -> None:
        """Welford's update of rows ``sl`` (``where``: the rows that take ``x``), then their
        denominators ``std + 1e-8``, std as :class:`RunningMeanStd` computes it."""
        count, mean, m2 = self.count[sl], self.mean[sl], self.m2[sl]
        delta, tmp, denom = self._delta[sl], self._tmp[sl], self.denom[sl]
        np.add(count, 1.0, out=count, where=where)
        rest, first = where, None
        if self._fresh:  # an agent's very first observation: the mean is x itself
            first = (count == 1.0) & where
            rows = first[:, 0]
            mean[rows] = x[rows]
            rest = ~first & where
            self._fresh = bool((self.count == 0).any())
        np.subtract(x, mean, out=delta, where=rest)
        np.divide(delta, count, out=tmp, where=rest)
        np.add(mean, tmp, out=mean, where=rest)
        np.subtract(x, mean, out=tmp, where=rest)
        np.multiply(delta, tmp, out=tmp, where=rest)
        np.add(m2, tmp, out=m2, where=rest)
        np.subtract(count, 1.0, out=tmp[:, :1], where=rest)
        np.divide(m2, tmp[:, :1], out=denom, where=rest)
        if first is not None and first.any():
            rows = first[:, 0]
            denom[rows] = np.square(mean[rows])
        np.sqrt(denom, out=denom, where=where)
        np.add(denom, 1e-8, out=denom, where=where)

    def store(self) -> None:
        """Write every updated row back into its stream's normalizer."""
        if not self.update:
            return
        for i, n in enumerate(self.norms):
            n.stats.mean[...] = self.mean[i]
            n.stats.m2[...] = self.m2[i]
            n.stats.count = int(self.count[i, 0])


class RewardRows:
    """The reward scalers of a group. A scaler that normalizes and is updated (PPO training)
    scales each reward at its step, after pushing the running discounted return; every other
    one (TRPO's clip only, a frozen scale) is applied to the whole batch at the end.

    The other rows of a group with live ones carry dummy statistics (count 2, gamma 0), so that
    every step runs on all rows without masks and without a division by zero; their results are
    overwritten by :meth:`finish` and never stored."""

    def __init__(self, scalers: Sequence[Any], update: bool) -> None:
        self.scalers = list(scalers)
        self.live = np.array([update and isinstance(s, RewardScaler) and s.normalize
                              for s in scalers])
        self.any_live = bool(self.live.any())
        k = len(scalers)
        self.clip = np.array([float(s.clip) for s in scalers])
        self.neg_clip = -self.clip
        if self.any_live:
            _distinct([s.stats for s, on in zip(scalers, self.live, strict=True) if on],
                      "reward scaler")
            pick = [(s, on) for s, on in zip(scalers, self.live, strict=True)]
            self.gamma = np.array([s.gamma if on else 0.0 for s, on in pick])
            self.mean = np.array([float(s.stats.mean) if on else 0.0 for s, on in pick])
            self.m2 = np.array([float(s.stats.m2) if on else 0.0 for s, on in pick])
            self.count = np.array([float(s.stats.count) if on else 2.0 for s, on in pick])
            self._fresh = bool((self.count == 0).any())
            self.ret = np.zeros(k)
            self._a = np.empty(k)
            self._b = np.empty(k)
        denoms = []
        for s, on in zip(scalers, self.live, strict=True):
            d = None if on else _frozen_reward(s).denom
            denoms.append(1.0 if d is None else d)  # r / 1.0 is r exactly
        self.denom = np.array(denoms)

    def step(self, r: np.ndarray, out: np.ndarray, rows: np.ndarray | None) -> None:
        """Scale this step's rewards ``r`` of the live rows into ``out`` (the others are
        scaled by :meth:`finish`); ``rows`` masks the streams that stepped (None: all)."""
        if not self.any_live:
            return
        w: Any = True if rows is None else rows
        ret, a, b, count, mean, m2 = self.ret, self._a, self._b, self.count, self.mean, self.m2
        np.multiply(ret, self.gamma, out=ret, where=w)
        np.add(ret, r, out=ret, where=w)
        np.add(count, 1.0, out=count, where=w)
        rest, first = w, None
        if self._fresh:  # the first return an agent sees: the mean is the return itself
            first = (count == 1.0) & w
            mean[first] = ret[first]
            rest = ~first & w
            self._fresh = bool((count == 0).any())
        np.subtract(ret, mean, out=a, where=rest)  # delta
        np.divide(a, count, out=b, where=rest)
        np.add(mean, b, out=mean, where=rest)
        np.subtract(ret, mean, out=b, where=rest)
        np.multiply(a, b, out=b, where=rest)
        np.add(m2, b, out=m2, where=rest)
        np.subtract(count, 1.0, out=a, where=rest)  # std: sqrt(m2 / (n - 1)), or |mean| at 1
        np.divide(m2, a, out=a, where=rest)
        if first is not None:
            np.square(mean, out=a, where=first)
        np.sqrt(a, out=a, where=w)
        np.add(a, 1e-8, out=a, where=w)
        np.divide(r, a, out=out, where=w)
        np.maximum(out, self.neg_clip, out=out, where=w)
        np.minimum(out, self.clip, out=out, where=w)

    def reset(self, i: int) -> None:
        """Stream ``i`` starts an episode: its running return restarts."""
        if self.any_live:
            self.ret[i] = 0.0

    def finish(self, raw: np.ndarray, scaled: np.ndarray) -> None:
        """Scale the rows that :meth:`step` did not (time-major (n, k) arrays)."""
        rest = ~self.live
        if not rest.any():
            return
        s = raw[:, rest] / self.denom[rest]
        scaled[:, rest] = np.minimum(np.maximum(s, self.neg_clip[rest]), self.clip[rest])

    def store(self) -> None:
        """Write every updated row back into its stream's scaler."""
        for i, s in enumerate(self.scalers):
            if self.live[i]:
                s.stats.mean = np.asarray(self.mean[i])
                s.stats.m2 = np.asarray(self.m2[i])
                s.stats.count = int(self.count[i])
                s.ret = float(self.ret[i])


__all__ = ["ObsRows", "RewardRows"]

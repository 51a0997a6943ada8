"""The policy mean of many rows at once, for the lockstep collector (:mod:`.collector`).

Every evaluator is made for (policy, rows), reads its input rows from :attr:`x` and returns the
means of all rows, a view valid until the next call. Two arithmetics:

- ``rowwise`` (:class:`RowwiseMean`): the policy's own ``mean`` of each row, i.e. the
  matrix-vector products of ``NumpyPolicy.mean``, so a trajectory is the one the gymnasium
  collector (:func:`pgclaims.agents.rollout.collect`) gives, bit for bit. Training uses it.
- ``batched`` (:class:`BlockedMean`): one matrix-matrix product per layer over fixed blocks of
  :data:`BLOCK` rows. It does not round like a matrix-vector product (~1e-15), but a row's
  result never depends on the other rows (BLAS results may depend on the matrix shape, so the
  shape is fixed). Measurement uses it.

A policy without :attr:`~pgclaims.agents.networks.NumpyPolicy.ops` (an adapter's torch module)
is always evaluated row by row. :class:`MixedMean` serves a group whose rows follow different
policies: each row's mean is the one its policy gives it alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from pgclaims.agents.networks import NumpyPolicy

BLOCK = 16
"""Rows per policy matmul: every forward pass has this shape, so a row never depends on how
many other rows are evaluated with it."""


class Mean(Protocol):
    x: np.ndarray
    """The input rows (normalized observations): the caller writes them here."""

    def __call__(self) -> np.ndarray: ...


def in_dim(policy: NumpyPolicy) -> int | None:
    """The observation size the policy's first layer takes (None without :attr:`ops`)."""
    for op in policy.ops or ():
        if isinstance(op, tuple):
            return int(op[0].shape[1])
    return None


class BlockedMean:
    """``policy.mean`` of the rows of :attr:`x`, in fixed-shape blocks of :data:`BLOCK` rows,
    in buffers made once: each layer is ``np.matmul(h, w.T, out=)`` (the BLAS call of
    ``h @ w.T``) then ``+= b``, each activation runs on the rows in use only (elementwise, in
    place: ``np.tanh(h, out=h)``; a matmul's row depends on its own input row only, so pad
    rows never reach a used one)."""

    def __init__(self, policy: NumpyPolicy, rows: int, width: int | None = None) -> None:
        if policy.ops is None:
            raise ValueError("a policy without ops is evaluated row by row (RowwiseMean)")
        size = max(1, -(-rows // BLOCK)) * BLOCK
        width = width or in_dim(policy)
        x = np.zeros((size, width))
        self.x = x[:rows]
        """The input rows: write the observations here."""
        stages: list[tuple] = []  # (kind, op, input buffer, output buffer), buffers made once
        h = x
        for op in policy.ops:
            if isinstance(op, tuple):
                out = np.zeros((size, op[0].shape[0]))
                stages.append(("layer", op, h, out))
                h = out
                continue
            if h is x:  # an activation first: never overwrite the caller's input rows
                own = np.zeros_like(x)
                stages.append(("copy", None, x, own))
                h = own
            stages.append(("act", op, h, h))
        self.out = h[:rows]
        self._plan: list[tuple] = []
        """Block by block, every stage: ("layer", input, w.T, b, output), ("act", fn, rows in
        use) or ("copy", source rows, destination rows)."""
        for s in range(0, rows, BLOCK):
            e = min(s + BLOCK, rows)
            for kind, op, hin, hout in stages:
                if kind == "layer":
                    self._plan.append((kind, hin[s:s + BLOCK], op[0].T, op[1],
                                       hout[s:s + BLOCK]))
                elif kind == "act":
                    self._plan.append((kind, op, hout[s:e]))
                else:
                    self._plan.append((kind, hin[s:e], hout[s:e]))

    def __call__(self) -> np.ndarray:
        """The means of :attr:`x`, a view valid until the next call."""
        for step in self._plan:
            if step[0] == "layer":
                _, h, wt, b, o = step
                np.matmul(h, wt, out=o)
                o += b
            elif step[0] == "act":
                fn, used = step[1], step[2]
                if fn is np.tanh:
                    np.tanh(used, out=used)
                else:
                    used[...] = fn(used)
            else:
                np.copyto(step[2], step[1])
        return self.out


class RowwiseMean:
    """:class:`BlockedMean`'s interface on the policy's ``mean`` row by row (``collect``'s
    arithmetic)."""

    def __init__(self, policy: NumpyPolicy, rows: int, width: int | None = None) -> None:
        self.policy = policy
        width = width or in_dim(policy)
        if width is None:
            raise ValueError("a policy without ops needs the observation width")
        self.x = np.zeros((rows, width))
        self.out = np.zeros((rows, len(policy.std)))

    def __call__(self) -> np.ndarray:
        mean, out = self.policy.mean, self.out
        for i, row in enumerate(self.x):
            out[i] = mean(row)
        return out


def batched_mean(policy: NumpyPolicy, x: np.ndarray) -> np.ndarray:
    """``policy.mean`` of every row of ``x``, in fixed-shape blocks of :data:`BLOCK` rows."""
    mean = BlockedMean(policy, len(x), x.shape[1])
    mean.x[:] = x
    return mean().copy()


def rowwise_mean(policy: NumpyPolicy, x: np.ndarray) -> np.ndarray:
    """``policy.mean`` row by row: exactly ``collect``'s arithmetic."""
    return np.stack([policy.mean(row) for row in x]) if len(x) else np.empty((0, len(policy.std)))


FORWARDS: dict[str, type[BlockedMean] | type[RowwiseMean]] = {
    "batched": BlockedMean, "rowwise": RowwiseMean}
"""The forward passes, by name: each is made for (policy, rows, width) and reads ``x``."""


def evaluator(forward: str, policy: NumpyPolicy, rows: int, width: int) -> Mean:
    """The ``forward`` pass of ``policy`` over ``rows`` rows (row by row without ops)."""
    if forward not in FORWARDS:
        raise ValueError(f"forward must be one of {tuple(FORWARDS)}, got {forward!r}")
    cls = FORWARDS[forward] if policy.ops is not None else RowwiseMean
    return cls(policy, rows, width)


class MixedMean:
    """The forward pass of a group whose rows follow different policies: one ``forward``
    evaluator per distinct policy over its own rows (gathered from :attr:`x`, scattered back),
    so a row's mean is the one its policy gives it alone (a row never depends on the others).
    Row by row (training's lockstep runs, one policy each), each row's policy is called on it
    directly."""

    def __init__(self, forward: str, policies: Sequence[NumpyPolicy], width: int) -> None:
        self.x = np.zeros((len(policies), width))
        self.out = np.zeros((len(policies), len(policies[0].std)))
        self._means = [p.mean for p in policies] if forward == "rowwise" else None
        rows: dict[int, list[int]] = {}
        for i, p in enumerate(policies):
            rows.setdefault(id(p), []).append(i)
        self._parts = [] if self._means is not None else [
            (np.asarray(r), evaluator(forward, policies[r[0]], len(r), width))
            for r in rows.values()]

    def __call__(self) -> np.ndarray:
        x, out = self.x, self.out
        if self._means is not None:
            for i, mean in enumerate(self._means):
                out[i] = mean(x[i])
            return out
        for rows, mean in self._parts:
            mean.x[:] = x[rows]
            out[rows] = mean()
        return out


def forward_pass(forward: str, policies: Sequence[NumpyPolicy], width: int) -> Mean:
    """The forward pass of a group, one policy per row: one evaluator when all rows share a
    policy, else :class:`MixedMean`."""
    if all(p is policies[0] for p in policies):
        return evaluator(forward, policies[0], len(policies), width)
    return MixedMean(forward, policies, width)


__all__ = ["BLOCK", "FORWARDS", "BlockedMean", "Mean", "MixedMean", "RowwiseMean",
           "batched_mean", "evaluator", "forward_pass", "in_dim", "rowwise_mean"]

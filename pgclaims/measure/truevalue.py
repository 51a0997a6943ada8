"""The "true value" baseline of Figure 4: a fresh value net fit to Monte Carlo returns of the
checkpoint's policy, streamed so that memory does not grow with the number of pairs.

The paper fits it on ~5e6 pairs; a Humanoid observation is 348 float32s, so holding them all
would take ~7 GB. Chunks are reduced to their usable (observation, target) rows as they arrive
(:class:`TrueValueTargets`) and appended to a :class:`RowStore`: in memory up to
:data:`MEMORY_BUDGET` bytes of observations, beyond it a float32 file in a temporary directory
from which each minibatch reads its rows (the page cache holds the file, outside the
process). Where the rows live changes no number: minibatches are the same rows in the same
order either way, and the fit is bit-identical to holding everything in one array.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pgclaims.agents.agent import Agent
from pgclaims.agents.networks import ValueNet
from pgclaims.agents.rollout import Batch
from pgclaims.measure.parallel import chunk_map
from pgclaims.measure.returns import returns_target
from pgclaims.measure.sampler import CHUNK, rng_for

EPOCHS = 30
"""Passes over the pairs (Adam, :data:`LR`, minibatches of :data:`MINIBATCH` rows)."""
LR = 1e-3
MINIBATCH = 256
MEMORY_BUDGET = 512 * 2**20
"""Bytes of observations a :class:`RowStore` keeps in memory before it spills to disk."""
EVAL_ROWS = 2**16
"""Rows per forward pass when the fitted net is evaluated on all pairs."""


@dataclass
class UsableReturns:
    """A chunk reduced to what the true-value fit needs, and its batch statistics."""

    obs: np.ndarray
    returns: np.ndarray
    trajectories: int
    episode_returns: np.ndarray


class TrueValueTargets:
    """``targets(batch, chunk)``: a chunk's "true value" regression targets, the same returns
    the agent's protocol uses for the value error (:mod:`pgclaims.measure.returns`); the
    continuation of chunk c (corrected protocol) draws from its own stream (seed, 93, c)."""

    def __init__(self, agent: Agent, seed: int) -> None:
        from pgclaims.agents.protocol import get_protocol

        self.agent, self.seed = agent, seed
        self.kind = get_protocol(agent.config.protocol).returns_target
        self.policy = agent.policy.numpy_sampler()

    def __call__(self, batch: Batch, chunk: int) -> UsableReturns:
        ret, ok = returns_target(self.agent, batch, self.kind, self.policy,
                                 rng_for(self.seed, 93, chunk))
        return UsableReturns(batch.obs[ok], ret[ok], batch.n_trajectories, batch.episode_returns)


class RowStore:
    """(observation, target) rows appended chunk by chunk and gathered by index.

    Observations stay in memory while ``capacity`` rows fit in ``budget`` bytes (default
    :data:`MEMORY_BUDGET`), else they go to a float32 file under ``tmp_dir`` (default: the
    system's temporary directory), removed by :meth:`close`, and each gathered row is one
    ``preadv`` into a fresh array. Targets (4 bytes a row) always stay in memory."""

    def __init__(self, obs_dim: int, capacity: int, budget: int | None = None,
                 tmp_dir: str | None = None) -> None:
        self.obs_dim, self.n = obs_dim, 0
        self.row_bytes = 4 * obs_dim
        self.targets = np.zeros(capacity, np.float32)
        self.on_disk = capacity * self.row_bytes > (MEMORY_BUDGET if budget is None else budget)
        self._obs: np.ndarray | None = None
        if self.on_disk:
            self._dir = tempfile.TemporaryDirectory(prefix="pgclaims-truevalue-", dir=tmp_dir)
            self.path = Path(self._dir.name) / "obs.f32"
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        else:
            self._obs = np.zeros((capacity, obs_dim), np.float32)

    def __len__(self) -> int:
        return self.n

    def append(self, obs: np.ndarray, targets: np.ndarray) -> None:
        k = len(targets)
        if self.n + k > len(self.targets):
            raise ValueError(f"RowStore holds {len(self.targets)} rows; {self.n + k} appended")
        rows = np.ascontiguousarray(obs, np.float32)
        if self._obs is not None:
            self._obs[self.n:self.n + k] = rows
        else:
            os.pwrite(self._fd, rows.tobytes(), self.n * self.row_bytes)
        self.targets[self.n:self.n + k] = targets
        self.n += k

    def _read(self, out: np.ndarray, idx: np.ndarray) -> None:
        """Rows ``idx`` of the file into ``out`` (a mapped file would leave every page it
        touched in the process's resident set; a read leaves them in the page cache only)."""
        buf, size = memoryview(out).cast("B"), self.row_bytes
        for k, i in enumerate(idx.tolist()):
            os.preadv(self._fd, [buf[k * size:(k + 1) * size]], i * size)

    def take(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Observations and targets of rows ``idx``, in that order (fresh tensors)."""
        if self._obs is not None:
            obs = self._obs[:self.n][idx]
        else:
            obs = np.empty((len(idx), self.obs_dim), np.float32)
            self._read(obs, idx)
        return torch.from_numpy(obs), torch.from_numpy(self.targets[idx])

    def blocks(self, size: int = EVAL_ROWS) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive blocks of ``size`` rows (each read whole into a fresh array)."""
        for s in range(0, self.n, size):
            rows = slice(s, min(s + size, self.n))
            if self._obs is not None:
                obs = self._obs[rows].copy()
            else:
                obs = np.empty((rows.stop - s, self.obs_dim), np.float32)
                os.preadv(self._fd, [memoryview(obs).cast("B")], s * self.row_bytes)
            yield torch.from_numpy(obs), torch.from_numpy(self.targets[rows])

    def close(self) -> None:
        self._obs = None
        if self.on_disk and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._dir.cleanup()


def fit(store: RowStore, seed: int, epochs: int = EPOCHS, lr: float = LR,
        minibatch: int = MINIBATCH) -> tuple[ValueNet, dict[str, Any]]:
    """A fresh value net (seeded by ``seed``) fit to the store's targets by minibatch Adam."""
    n = len(store)
    torch.manual_seed(seed)
    net = ValueNet(store.obs_dim)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    rng = rng_for(seed, 91)
    for _ in range(epochs):
        perm = rng.permutation(n)
        for s in range(0, n, minibatch):
            x, y = store.take(perm[s : s + minibatch])
            loss = (net(x) - y).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        errors = torch.cat([(net(x) - y).pow(2) for x, y in store.blocks()] or [torch.zeros(0)])
    return net, {"true_value_pairs": int(n), "true_value_fit_mse": float(errors.mean()),
                 "epochs": epochs}


def fit_parts(parts: Iterable[UsableReturns], capacity: int, seed: int,
              tmp_dir: str | None = None, **kwargs: Any
              ) -> tuple[ValueNet, dict[str, Any], list[int], list[np.ndarray]]:
    """Stream ``parts`` (at most ``capacity`` rows in all) into a :class:`RowStore` and
    :func:`fit` it; also the parts' trajectory counts and episode returns, which the caller's
    batch statistics keep. ``tmp_dir`` (default ``$PGCLAIMS_TMP``, else the system's) holds a
    store too large for memory."""
    tmp_dir = tmp_dir or os.environ.get("PGCLAIMS_TMP") or None
    store: RowStore | None = None
    trajectories: list[int] = []
    returns: list[np.ndarray] = []
    try:
        for p in parts:
            if store is None:
                store = RowStore(p.obs.shape[1], capacity, tmp_dir=tmp_dir)
            store.append(p.obs, p.returns)
            trajectories.append(p.trajectories)
            returns.append(p.episode_returns)
        if store is None:
            raise ValueError("the true-value fit needs at least one chunk")
        net, meta = fit(store, seed, **kwargs)
        meta["true_value_store"] = "disk" if store.on_disk else "memory"
    finally:
        if store is not None:
            store.close()
    return net, meta, trajectories, returns


def true_value_net(agent: Agent, n: int, seed: int, workers: int | None = None, **kwargs: Any
                   ) -> tuple[ValueNet, dict[str, Any], list[int], list[np.ndarray]]:
    """Sample ``ceil(n / CHUNK)`` chunks seeded (seed, 2, c), their targets computed in the
    workers, and fit the true-value net on them as they arrive (:func:`fit_parts`;
    ``kwargs`` go to :func:`fit`)."""
    jobs = [(CHUNK, (2, c), c) for c in range(-(-n // CHUNK))]
    parts = chunk_map(agent, TrueValueTargets(agent, seed), jobs, seed, workers)
    return fit_parts(parts, CHUNK * len(jobs), seed, **kwargs)

"""Networks of any MLP shape, as the measurement code reads them, and their numpy samplers.

pgclaims' own :class:`~pgclaims.agents.networks.GaussianPolicy` is a fixed [64, 64] tanh MLP and
its :class:`~pgclaims.agents.networks.NumpyPolicy` assumes tanh. The measurements touch only
``policy.mean`` (a module of the normalized observation), ``policy.log_std`` (a state-independent
parameter), ``policy.log_prob``, ``policy.dist``, ``policy.numpy_sampler()`` (``mean(obs)`` and
``sample(obs, rng)``), ``value(obs)`` of shape (n,), ``.double()``, ``deepcopy`` and the flat
parameter vector. :class:`ExternalPolicy` and :class:`ExternalValue` are subclasses that keep
exactly that surface for any architecture and activation.

Sampling draws ``rng.standard_normal(act_dim)`` once per step, as :class:`NumpyPolicy` does, so
an adapted agent consumes its rng exactly like a native one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.special import erf, expit
from torch import nn

from pgclaims.agents.networks import GaussianPolicy, NumpyPolicy, Op, ValueNet

ActFn = Callable[[np.ndarray], np.ndarray]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "softplus": nn.Softplus,
    "identity": nn.Identity,
}
"""Activation names an adapter may ask for (torch.nn classes, default arguments)."""


class AdapterError(ValueError):
    """An external agent (or a file holding one) that pgclaims cannot measure exactly."""


def activation(name: str) -> type[nn.Module]:
    """The torch.nn class of an activation name (case- and underscore-insensitive)."""
    key = name.lower().replace("_", "")
    for known, cls in ACTIVATIONS.items():
        if known.replace("_", "") == key:
            return cls
    raise AdapterError(f"unsupported activation {name!r}: supported are {', '.join(ACTIVATIONS)}")


def mlp(sizes: list[int], act: type[nn.Module]) -> nn.Sequential:
    """Linear, act, Linear, act, ..., Linear through ``sizes`` (no activation after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def _numpy_activation(m: nn.Module) -> ActFn | None:
    """The numpy twin of an activation module (float64, same formula as torch), or None."""
    if isinstance(m, nn.Tanh):
        return np.tanh
    if isinstance(m, nn.ReLU):
        return lambda x: np.maximum(x, 0.0)
    if isinstance(m, nn.LeakyReLU):
        slope = float(m.negative_slope)
        return lambda x: np.where(x >= 0, x, slope * x)
    if isinstance(m, nn.ELU):
        alpha = float(m.alpha)
        return lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
    if isinstance(m, nn.SiLU):
        return lambda x: x * expit(x)
    if isinstance(m, nn.Sigmoid):
        return expit
    if isinstance(m, nn.GELU) and m.approximate == "none":
        return lambda x: 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    if isinstance(m, nn.Softplus):
        beta, threshold = float(m.beta), float(m.threshold)
        return lambda x: np.where(x * beta > threshold, x, np.logaddexp(0.0, x * beta) / beta)
    if isinstance(m, nn.Identity):
        return lambda x: x
    return None


class MLPSampler(NumpyPolicy):
    """A frozen numpy copy of a Sequential of Linear layers and known activations: the
    :class:`~pgclaims.agents.networks.NumpyPolicy` interface for any activation (its
    :attr:`ops` are evaluated for many rows at once by the collector's forward passes)."""

    def __init__(self, ops: list[tuple[np.ndarray, np.ndarray] | ActFn],
                 log_std: np.ndarray) -> None:
        self.ops: list[Op] | None = ops
        self.log_std = log_std
        self.std = np.exp(log_std)

    @classmethod
    def from_module(cls, mean: nn.Module, log_std: torch.Tensor) -> MLPSampler | None:
        """None when ``mean`` is not a plain Sequential of Linear and known activations."""
        if not isinstance(mean, nn.Sequential):
            return None
        ops: list[tuple[np.ndarray, np.ndarray] | ActFn] = []
        for m in mean:
            if isinstance(m, nn.Linear):
                w = m.weight.detach().double().numpy().copy()
                b = (m.bias.detach().double().numpy().copy() if m.bias is not None
                     else np.zeros(w.shape[0]))
                ops.append((w, b))
                continue
            fn = _numpy_activation(m)
            if fn is None:
                return None
            ops.append(fn)
        return cls(ops, log_std.detach().double().numpy().copy())

    def mean(self, obs: np.ndarray) -> np.ndarray:
        h = np.asarray(obs, np.float64)
        for op in self.ops or ():
            h = op[0] @ h + op[1] if isinstance(op, tuple) else op(h)
        return h


class TorchSampler(MLPSampler):
    """The fallback for any other mean module: a float64 torch forward pass per step (exact,
    several times slower than :class:`MLPSampler`; the collector evaluates it row by row)."""

    def __init__(self, mean: nn.Module, log_std: torch.Tensor) -> None:
        super().__init__([], log_std.detach().double().numpy().copy())
        self.ops = None
        self.module = copy.deepcopy(mean).double().eval()

    def mean(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(np.asarray(obs, np.float64))[None]
            return self.module(x)[0].numpy()


class ExternalPolicy(GaussianPolicy):
    """A diagonal Gaussian whose mean is any module of the normalized observation and whose
    log-std is a state-independent parameter: :class:`GaussianPolicy`'s interface (``dist`` and
    ``log_prob`` are inherited unchanged) without its fixed architecture. Parameter order, as
    GaussianPolicy's: ``log_std`` (a direct parameter), then the mean's parameters."""

    def __init__(self, mean: nn.Module, log_std: torch.Tensor) -> None:
        nn.Module.__init__(self)
        self.mean = mean
        self.log_std = nn.Parameter(log_std.detach().clone().reshape(-1).to(torch.float32))

    def numpy_sampler(self) -> MLPSampler:  # type: ignore[override]
        return MLPSampler.from_module(self.mean, self.log_std) or TorchSampler(self.mean,
                                                                              self.log_std)


class ExternalValue(ValueNet):
    """Any value module of the normalized observation, returning shape (n,) like ValueNet."""

    def __init__(self, net: nn.Module) -> None:
        nn.Module.__init__(self)
        self.net = net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.net(obs)
        return out.squeeze(-1) if out.dim() == obs.dim() else out


def same_function(a: nn.Module, b: nn.Module, in_dim: int, seed: int = 0) -> bool:
    """Whether two modules compute the same outputs on random inputs (float64, 1e-10)."""
    x = torch.from_numpy(np.random.default_rng(seed).normal(0, 3, (64, in_dim)))
    with torch.no_grad():
        ya, yb = copy.deepcopy(a).double()(x), copy.deepcopy(b).double()(x)
    return ya.shape == yb.shape and bool(torch.allclose(ya, yb, rtol=1e-10, atol=1e-10))

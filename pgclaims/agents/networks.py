"""The paper's networks: [64, 64] tanh MLPs for the Gaussian policy and the value function."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

HIDDEN = (64, 64)
"""Table 1, "Policy net hidden layers" and "Value net hidden layers"."""


INITS = ("orthogonal", "xavier")


def mlp(in_dim: int, out_dim: int, out_gain: float, init: str = "orthogonal") -> nn.Sequential:
    """[64, 64] tanh MLP, zero biases. ``init="orthogonal"``: orthogonal weights, gain sqrt 2
    on hidden layers and ``out_gain`` on the output (the authors' PPO); ``"xavier"``: Xavier
    uniform with gain 1 on every layer, ``out_gain`` ignored (the authors' TRPO,
    ``initialize_weights`` in their ``src/policy_gradients/models.py``)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    dims = (in_dim, *HIDDEN)
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(a, b), nn.Tanh()]
    layers.append(nn.Linear(dims[-1], out_dim))
    linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
    for i, layer in enumerate(linears):
        if init == "xavier":
            nn.init.xavier_uniform_(layer.weight)
        else:
            nn.init.orthogonal_(layer.weight,
                                out_gain if i == len(linears) - 1 else math.sqrt(2))
        nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def run(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)``; for a Sequential, its Linear and Tanh layers called as the functions their
    ``forward`` calls (``F.linear``, ``torch.tanh``): the same operations, so the same bits,
    without ``Module.__call__``'s overhead (a training iteration runs ~1300 small forwards)."""
    if type(net) is not nn.Sequential:
        return net(x)
    for m in net:
        kind = type(m)
        if kind is nn.Linear:
            x = F.linear(x, m.weight, m.bias)
        elif kind is nn.Tanh:
            x = torch.tanh(x)
        else:
            x = m(x)
    return x


class GaussianPolicy(nn.Module):
    """Diagonal Gaussian with an MLP mean and a state-independent log-std (initially 0)."""

    def __init__(self, obs_dim: int, act_dim: int, init: str = "orthogonal") -> None:
        super().__init__()
        self.mean = mlp(obs_dim, act_dim, out_gain=0.01, init=init)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def dist(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.mean(obs), self.log_std.exp())

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Log-density of ``act`` (nats), summed over action dimensions."""
        mu = run(self.mean, obs)
        log_std = self.log_std
        z = (act - mu) / log_std.exp()
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def numpy_sampler(self) -> NumpyPolicy:
        return NumpyPolicy.from_torch(self)


class ValueNet(nn.Module):
    def __init__(self, obs_dim: int, init: str = "orthogonal") -> None:
        super().__init__()
        self.net = mlp(obs_dim, 1, out_gain=1.0, init=init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return run(self.net, obs).squeeze(-1)


Op = tuple[np.ndarray, np.ndarray] | Callable[[np.ndarray], np.ndarray]
"""One step of a numpy mean: a layer ``(w, b)`` (``w @ h + b``) or an elementwise activation."""


class NumpyPolicy:
    """A frozen copy of a policy for one-observation-at-a-time rollouts.

    A torch forward pass on a single observation costs tens of microseconds of dispatch; three
    small numpy matmuls cost a few. Sampling uses an explicit Generator. :attr:`ops` is the mean
    as a list of layers and activations, which the collector's forward passes evaluate for many
    rows at once (:mod:`pgclaims.agents.forward`); None for a mean that only :meth:`mean`
    computes.
    """

    ops: list[Op] | None

    def __init__(self, weights: list[tuple[np.ndarray, np.ndarray]], log_std: np.ndarray) -> None:
        self.weights = weights
        self.std = np.exp(log_std)
        self.log_std = log_std
        self.ops = []
        for i, layer in enumerate(weights):
            self.ops += [layer, np.tanh] if i < len(weights) - 1 else [layer]

    @classmethod
    def from_torch(cls, policy: GaussianPolicy) -> NumpyPolicy:
        linears = [m for m in policy.mean if isinstance(m, nn.Linear)]
        weights = [
            (m.weight.detach().double().numpy().copy(), m.bias.detach().double().numpy().copy())
            for m in linears
        ]
        return cls(weights, policy.log_std.detach().double().numpy().copy())

    def mean(self, obs: np.ndarray) -> np.ndarray:
        h = obs
        for i, (w, b) in enumerate(self.weights):
            h = w @ h + b
            if i < len(self.weights) - 1:
                h = np.tanh(h)
        return h

    def sample(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mu = self.mean(obs)
        return mu + self.std * rng.standard_normal(mu.shape)


def flat_params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def set_flat_params(module: nn.Module, flat: torch.Tensor) -> None:
    offset = 0
    with torch.no_grad():
        for p in module.parameters():
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            offset += n


def flat_grad(output: torch.Tensor, module: nn.Module, **kwargs: bool) -> torch.Tensor:
    grads = torch.autograd.grad(output, list(module.parameters()), **kwargs)
    return torch.cat([g.reshape(-1) for g in grads])

"""Minibatch steps of the small nets without torch's per-call Python bookkeeping, in the same
arithmetic: the backward pass and the Adam step.

A training iteration takes 640 small steps (PPO: 320 on the policy, 320 on the value net), each
a few hundred microseconds, so per-call Python overhead counts:

- :func:`backward` hands the loss to the autograd engine as ``loss.backward()`` does
  (``torch.autograd.backward``: a scalar loss's gradient seeded with a new ones tensor of its
  dtype, no retained graph), without the argument normalization and logging checks around it.
- ``Optimizer.step`` and ``zero_grad`` spend most of their ~80 microseconds on bookkeeping
  (profiler records, hooks, regrouping the tensors by device and dtype, the lazy state check)
  around one fused kernel. :class:`AdamStep` calls what ``torch.optim.Adam`` with
  ``fused=True`` calls for one CPU parameter group, ``torch._foreach_add_(steps, 1)`` then
  ``torch._fused_adam_``, with the group's own settings and state tensors (so a checkpoint of
  the optimizer is unchanged), and clears gradients by setting them to None, which is what
  ``zero_grad(set_to_none=True)`` does. Anything else (no state yet, a parameter without a
  gradient, a non-fused or multi-group optimizer, amsgrad) goes through ``optimizer.step()``.

The results are torch's bit for bit (tests/test_collector.py trains with both).
"""

from __future__ import annotations

import torch

_ENGINE = getattr(getattr(torch.autograd, "Variable", None), "_execution_engine", None)
"""torch's autograd engine (``torch.autograd.Variable._execution_engine``, what
``torch.autograd.backward`` calls), or None in a torch without it."""


def backward(loss: torch.Tensor) -> None:
    """``loss.backward()`` for a scalar float loss, through the engine directly."""
    if _ENGINE is None or loss.dim() != 0 or not loss.requires_grad:
        loss.backward()
        return
    _ENGINE.run_backward((loss,), (torch.ones((), dtype=loss.dtype),), False, False, (),
                         allow_unreachable=True, accumulate_grad=True)


PLAIN = {"amsgrad": False, "maximize": False, "capturable": False, "differentiable": False,
         "decoupled_weight_decay": False}
"""The group settings under which the fused step is exactly the two calls made here."""


class AdamStep:
    """``zero_grad`` and ``step`` of one ``torch.optim.Adam``."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        groups = optimizer.param_groups
        self.params: list[torch.Tensor] = [p for g in groups for p in g["params"]]
        group = groups[0]
        self.direct = (type(optimizer) is torch.optim.Adam and len(groups) == 1
                       and bool(group.get("fused")) and not torch.is_tensor(group["lr"])
                       and all(group.get(k, v) == v for k, v in PLAIN.items())
                       and all(p.device.type == "cpu" and not torch.is_complex(p)
                               and p.dtype == self.params[0].dtype for p in self.params))
        self._state: tuple[list[torch.Tensor], ...] | None = None

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if not self.direct or any(g is None for g in grads):
            self.optimizer.step()
            return
        if self._state is None:
            state = self.optimizer.state
            if any(len(state[p]) == 0 for p in self.params):  # lazy initialization
                self.optimizer.step()
                return
            self._state = tuple([state[p][k] for p in self.params]
                                for k in ("step", "exp_avg", "exp_avg_sq"))
        steps, exp_avgs, exp_avg_sqs = self._state
        group = self.optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        with torch.no_grad():
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(self.params, grads, exp_avgs, exp_avg_sqs, [], steps,
                               amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2,
                               weight_decay=group["weight_decay"], eps=group["eps"],
                               maximize=False, grad_scale=None, found_inf=None)


__all__ = ["AdamStep", "backward"]

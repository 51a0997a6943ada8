"""Adam minibatch steps without ``torch.optim``'s per-call bookkeeping, in the same arithmetic.

A training iteration takes 640 small Adam steps (PPO: 320 on the policy, 320 on the value
net), and ``Optimizer.step`` and ``zero_grad`` spend most of their ~80 microseconds on Python
bookkeeping (profiler records, hooks, regrouping the tensors by device and dtype, the lazy
state check) around one fused kernel. :class:`AdamStep` calls what ``torch.optim.Adam`` with
``fused=True`` calls for one CPU parameter group, ``torch._foreach_add_(steps, 1)`` then
``torch._fused_adam_``, with the group's own settings and state tensors (so a checkpoint of the
optimizer is unchanged), and clears gradients by setting them to None, which is what
``zero_grad(set_to_none=True)`` does. The results are the optimizer's bit for bit
(tests/test_collector.py trains with both). Anything else (no state yet, a parameter without a
gradient, a non-fused or multi-group optimizer, amsgrad) goes through ``optimizer.step()``.
"""

from __future__ import annotations

import torch

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


__all__ = ["AdamStep"]

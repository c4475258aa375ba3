"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from .optimizer import Optimizer, required

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent, with PyTorch's update rule exactly.

    For each parameter p with gradient g, at step t (b is the momentum buffer)::

        g = -g                                   if maximize
        g = g + weight_decay * p                 (L2 penalty, added to the gradient)
        b = g                                    at the first step (t = 1)
        b = momentum * b + (1 - dampening) * g   afterwards
        g = g + momentum * b  if nesterov  else  b        (when momentum != 0)
        p = p - lr * g

    Args:
        params: Tensors or parameter groups (dicts), see ``Optimizer``.
        lr: learning rate (required, >= 0).
        momentum: momentum factor (>= 0); 0 is plain SGD and keeps no state.
        dampening: scales the new gradient in the buffer by (1 - dampening).
        weight_decay: L2 penalty (>= 0).
        nesterov: Nesterov momentum; needs momentum > 0 and dampening 0.
        maximize: ascend the objective instead of descending.

    Raises:
        ValueError: an option out of range, or nesterov without momentum / with dampening.

    >>> opt = md.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init__(self, params, lr: float = required, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)  # every group's options are checked there

    def _check_group(self, group: dict) -> None:
        self._check_option(group, "lr")
        self._check_option(group, "momentum")
        self._check_option(group, "weight_decay")
        self._check_option(group, "dampening", low=-float("inf"))
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True requires momentum > 0 and dampening 0, "
                             f"got momentum={group['momentum']!r}, "
                             f"dampening={group['dampening']!r}")

    def _update(self, param, grad, group: dict, state: dict) -> None:
        lr, momentum = float(group["lr"]), float(group["momentum"])
        dampening, weight_decay = float(group["dampening"]), float(group["weight_decay"])
        maximize, nesterov = group["maximize"], group["nesterov"]
        if momentum == 0:
            buffers, first_step = (), False
        else:
            # PyTorch starts the buffer at the first gradient, not at zero.
            first_step = "momentum_buffer" not in state
            if first_step:
                state["momentum_buffer"] = self._new_buffer(param)
            buffers = (state["momentum_buffer"].data,)

        def rule(p, g, *buf):
            if maximize:
                g = -g
            if weight_decay != 0:
                g = g + weight_decay * p        # a new array: p.grad itself is left alone
            if momentum != 0:
                b, = buf
                if first_step:
                    b[...] = g
                else:
                    b *= momentum
                    # in place; without dampening (the usual case) no temporary at all
                    b += g if dampening == 0 else (1 - dampening) * g
                g = g + momentum * b if nesterov else b
            p -= lr * g

        self._in_blocks(rule, param, grad, *buffers)

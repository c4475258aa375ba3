"""RMSprop: gradient steps divided by a running root mean square of the gradient."""
from __future__ import annotations

from .. import backend
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), with PyTorch's update rule exactly.

    For each parameter p with gradient g (s, a, b start at zero)::

        g = -g                                   if maximize
        g = g + weight_decay * p                 (L2 penalty)
        s = alpha * s + (1 - alpha) * g * g      running mean of g^2
        a = alpha * a + (1 - alpha) * g          running mean of g   (centered only)
        d = sqrt(s - a * a) + eps  if centered  else  sqrt(s) + eps
        b = momentum * b + g / d;  p = p - lr * b     if momentum > 0
        p = p - lr * g / d                            otherwise

    Note eps is added outside the square root (unlike Keras/TensorFlow's RMSprop).

    Args:
        params: Tensors or parameter groups (dicts), see ``Optimizer``.
        lr: learning rate (>= 0).
        alpha: smoothing constant of the running means, in [0, 1].
        eps: added to the denominator (>= 0).
        weight_decay: L2 penalty (>= 0).
        momentum: momentum factor (>= 0).
        centered: divide by an estimate of the gradient's variance instead of its
            uncentered second moment.
        maximize: ascend the objective instead of descending.

    Raises:
        ValueError: an option out of range.

    >>> opt = md.optim.RMSprop(model.parameters(), lr=1e-3, momentum=0.9, centered=True)
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 *, maximize: bool = False):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        self._check_option(group, "lr")
        self._check_option(group, "alpha", 0.0, 1.0)
        self._check_option(group, "eps")
        self._check_option(group, "weight_decay")
        self._check_option(group, "momentum")

    def _update(self, param, grad, group: dict, state: dict) -> None:
        xp = backend.get_array_module(param)
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        weight_decay, momentum = float(group["weight_decay"]), float(group["momentum"])
        if not state:
            state["step"] = 0
            state["square_avg"] = self._new_buffer(param)
        if momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = self._new_buffer(param)
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = self._new_buffer(param)
        state["step"] += 1
        maximize, centered = group["maximize"], group["centered"]
        buffers = [state["square_avg"].data]
        if centered:
            buffers.append(state["grad_avg"].data)
        if momentum > 0:
            buffers.append(state["momentum_buffer"].data)

        def rule(p, g, square_avg, *rest):
            if maximize:
                g = -g
            if weight_decay != 0:
                g = g + weight_decay * p
            square_avg *= alpha
            square_avg += (1 - alpha) * g * g
            if centered:
                grad_avg = rest[0]
                grad_avg += (1 - alpha) * (g - grad_avg)   # a = alpha a + (1 - alpha) g
                avg = xp.sqrt(square_avg - grad_avg * grad_avg)
            else:
                avg = xp.sqrt(square_avg)
            avg += eps
            if momentum > 0:
                buf = rest[-1]
                buf *= momentum
                buf += g / avg
                p -= lr * buf
            else:
                p -= lr * (g / avg)

        self._in_blocks(rule, param, grad, *buffers)

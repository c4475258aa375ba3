"""Adam (L2 penalty in the gradient) and AdamW (decoupled weight decay)."""
from __future__ import annotations

import math

from .. import backend
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam: steps scaled by running estimates of the gradient's first and second moments.

    For each parameter p with gradient g, at step t (PyTorch's rule exactly)::

        g = -g                                      if maximize
        p = p * (1 - lr * weight_decay)             if decoupled_weight_decay (AdamW)
        g = g + weight_decay * p                    otherwise (L2 penalty)
        m = beta1 * m + (1 - beta1) * g             first moment (mean)
        v = beta2 * v + (1 - beta2) * g * g         second moment (uncentered variance)
        v_max = max(v_max, v); v = v_max            if amsgrad
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    m and v start at zero; the two bias corrections undo that start in the early steps.

    Args:
        params: Tensors or parameter groups (dicts), see ``Optimizer``.
        lr: learning rate (>= 0).
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator for stability (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).
        amsgrad: use the largest second moment seen so far (AMSGrad).
        maximize: ascend the objective instead of descending.
        decoupled_weight_decay: shrink the weights directly, as AdamW does.

    Raises:
        ValueError: lr, eps or weight_decay < 0, or a beta outside [0, 1).

    >>> opt = md.optim.Adam(model.parameters(), lr=1e-3)
    >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False, decoupled_weight_decay: bool = False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                        eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        name = type(self).__name__
        self._check_option(group, "lr")
        self._check_option(group, "eps")
        self._check_option(group, "weight_decay")
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            self._check_option({f"betas[{i}]": beta}, f"betas[{i}]", 0.0, 1.0,
                               high_open=True)

    def _update(self, param, grad, group: dict, state: dict) -> None:
        xp = backend.get_array_module(param)
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), \
            float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        if not state:
            state["step"] = 0
            state["exp_avg"] = self._new_buffer(param)
            state["exp_avg_sq"] = self._new_buffer(param)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = self._new_buffer(param)
        state["step"] += 1
        step = state["step"]
        maximize, decoupled = group["maximize"], group["decoupled_weight_decay"]
        step_size = lr / (1 - beta1 ** step)
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
        moments = [state["exp_avg"].data, state["exp_avg_sq"].data]
        if group["amsgrad"]:
            moments.append(state["max_exp_avg_sq"].data)

        def rule(p, g, exp_avg, exp_avg_sq, *max_exp_avg_sq):
            if maximize:
                g = -g
            if weight_decay != 0:
                if decoupled:
                    p *= 1 - lr * weight_decay
                else:
                    g = g + weight_decay * p
            exp_avg += (1 - beta1) * (g - exp_avg)      # m = beta1 m + (1 - beta1) g
            exp_avg_sq *= beta2
            exp_avg_sq += (1 - beta2) * g * g
            if max_exp_avg_sq:
                xp.maximum(max_exp_avg_sq[0], exp_avg_sq, out=max_exp_avg_sq[0])
                exp_avg_sq = max_exp_avg_sq[0]
            denom = xp.sqrt(exp_avg_sq) / bias_correction2_sqrt
            denom += eps
            p -= step_size * (exp_avg / denom)

        self._in_blocks(rule, param, grad, *moments)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before the step.

    Identical to ``Adam(..., decoupled_weight_decay=True)``; the decay does not pass
    through the moment estimates, so it acts as a true weight decay (Loshchilov & Hutter).
    The default weight_decay is 1e-2, as in PyTorch.

    >>> opt = md.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)

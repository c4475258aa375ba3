"""Numerical gradient checks: compare backward with central differences in float64.

For a function y = f(x1, ..., xk) and a random upstream gradient gy (seeded, so a
backward that ignores its incoming gradient cannot pass), the analytic gradient of
L = sum(gy * y) with respect to each element x[i] is compared with

    (L(x + eps e_i) - L(x - eps e_i)) / (2 eps),

and |analytic - numeric| <= atol + rtol * |numeric| must hold for every element.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..tensor import Tensor, grad as autograd_grad


class GradcheckError(AssertionError):
    """Backward disagrees with the numerical derivative (the message names where)."""


def _outputs(fn, inputs):
    out = fn(*inputs)
    if isinstance(out, Tensor):
        return (out,)
    if isinstance(out, (tuple, list)) and all(isinstance(o, Tensor) for o in out):
        return tuple(out)
    raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got "
                    f"{type(out).__name__}")


def _check_inputs(inputs, op="gradcheck"):
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    wanted = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not wanted:
        raise ValueError(f"{op}: no input requires grad; nothing to check")
    for i in wanted:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"{op}: input {i} has dtype {inputs[i].dtype}; "
                            f"finite differences need float64 inputs")
    return inputs, wanted


def _upstream(outputs, grad_output, seed):
    if grad_output is not None:
        gos = (grad_output,) if isinstance(grad_output, Tensor) or not isinstance(
            grad_output, (tuple, list)) else tuple(grad_output)
        return tuple(g if isinstance(g, Tensor) else Tensor._wrap(
            get_array_module(o.data).asarray(g, dtype=o.dtype))
            for g, o in zip(gos, outputs))
    # A stream of its own: seeded like md.manual_seed(seed), gy would equal the inputs.
    rng = np.random.default_rng([seed, 0x6A09E667])
    result = []
    for o in outputs:
        xp = get_array_module(o.data)
        g = rng.standard_normal(o.shape)
        result.append(Tensor._wrap(xp.asarray(g, dtype=o.dtype) if o.dtype.kind == "f"
                                   else xp.zeros(o.shape, dtype=np.float64)))
    return tuple(result)


def _loss(fn, inputs, gys):
    # Grad mode stays on: fn may itself take gradients (gradgradcheck).
    outs = _outputs(fn, inputs)
    return sum(float((o.data.astype(np.float64) * g.data).sum())
               for o, g in zip(outs, gys) if o.dtype.kind == "f")


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              grad_output=None, fast: bool = False, seed: int = 0) -> bool:
    """Check ``fn``'s backward against central differences; raise GradcheckError if off.

    Args:
        fn: takes the inputs (Tensors, some with requires_grad) and returns a Tensor or a
            tuple of Tensors.
        inputs: a Tensor or a sequence of them; those that require grad must be float64.
        eps, atol, rtol: step and tolerances: |a - n| <= atol + rtol * |n|.
        grad_output: the upstream gradient(s); random (seeded by ``seed``) by default.
        fast: compare along one random direction per input instead of every element.
    Returns:
        True.
    Raises:
        GradcheckError naming the input, the element index, the analytic and the numeric
        value of the worst element.

    >>> x = md.randn(3, 4, dtype="float64", requires_grad=True)
    >>> md.testing.gradcheck(lambda t: (t * t).sum(1), [x])
    True
    """
    inputs, wanted = _check_inputs(inputs)
    outputs = _outputs(fn, inputs)
    differentiable = [o for o in outputs if o.requires_grad]
    if not differentiable:
        raise GradcheckError("gradcheck: no output of fn requires grad")
    gys = _upstream(outputs, grad_output, seed)
    pairs = [(o, g) for o, g in zip(outputs, gys) if o.requires_grad]
    analytic = autograd_grad([o for o, _ in pairs], [inputs[i] for i in wanted],
                             [g for _, g in pairs], allow_unused=True)
    rng = np.random.default_rng([seed, 0xBB67AE85])
    for i, ga in zip(wanted, analytic):
        x = inputs[i]
        xp = get_array_module(x.data)
        ga = np.zeros(x.shape) if ga is None else np.asarray(
            ga.numpy(), dtype=np.float64)
        original = x.data.copy()
        if fast:
            direction = rng.standard_normal(x.shape)
            d = xp.asarray(direction)
            x.data[...] = original + eps * d
            plus = _loss(fn, inputs, gys)
            x.data[...] = original - eps * d
            minus = _loss(fn, inputs, gys)
            x.data[...] = original
            numeric = np.array([(plus - minus) / (2 * eps)])
            analytic_flat = np.array([(ga * direction).sum()])
            where = ["random direction"]
        else:
            numeric = np.empty(x.data.size)
            flat = x.data.reshape(-1)  # a view: writing it perturbs x in place
            for k in range(x.data.size):
                flat[k] = original.reshape(-1)[k] + eps
                plus = _loss(fn, inputs, gys)
                flat[k] = original.reshape(-1)[k] - eps
                minus = _loss(fn, inputs, gys)
                flat[k] = original.reshape(-1)[k]
                numeric[k] = (plus - minus) / (2 * eps)
            analytic_flat = ga.reshape(-1)
            where = None
        x.data[...] = original
        excess = np.abs(analytic_flat - numeric) - (atol + rtol * np.abs(numeric))
        if excess.size and (excess.max() > 0 or not np.isfinite(analytic_flat).all()):
            k = int(np.nanargmax(np.where(np.isfinite(excess), excess, np.inf)))
            index = where[0] if where else tuple(int(j) for j in np.unravel_index(k, x.shape))
            raise GradcheckError(
                f"gradcheck: gradient of input {i} (shape {x.shape}) is wrong at index "
                f"{index}: analytic {float(analytic_flat[k])!r}, numeric {float(numeric[k])!r} "
                f"(atol {atol}, rtol {rtol})")
    return True


def gradgradcheck(fn, inputs, grad_output=None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, fast: bool = False, seed: int = 0) -> bool:
    """Check second derivatives: gradcheck of (inputs, gy) -> d(sum(gy * fn))/d(inputs).

    The upstream gradient gy is itself an input that requires grad, so the check covers
    both the derivative with respect to the inputs and the linearity in gy.
    """
    inputs, wanted = _check_inputs(inputs, "gradgradcheck")
    outputs = _outputs(fn, inputs)
    gys = _upstream(outputs, grad_output, seed)
    gys = tuple(Tensor._wrap(g.data.copy()).requires_grad_(True) for g in gys)
    n = len(inputs)

    def first_derivative(*args):
        xs, gs = args[:n], args[n:]
        outs = _outputs(fn, xs)
        pairs = [(o, g) for o, g in zip(outs, gs) if o.requires_grad]
        grads = autograd_grad([o for o, _ in pairs], [xs[i] for i in wanted],
                              [g for _, g in pairs], create_graph=True, allow_unused=True)
        result = tuple(g for g in grads if g is not None and g.requires_grad)
        if not result:
            raise GradcheckError("gradgradcheck: the gradient does not depend on the inputs "
                                 "(no graph was recorded with create_graph=True)")
        return result

    return gradcheck(first_derivative, inputs + gys, eps=eps, atol=atol, rtol=rtol,
                     fast=fast, seed=seed + 7)

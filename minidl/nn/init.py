"""Weight initialisation: the classic schemes (Xavier/Glorot, He/Kaiming, orthogonal) and
LSUV, the data-driven "forward initialisation pass".

Why it matters: a layer's output variance is fan_in * Var(w) * Var(input) (for zero-mean
weights). With Var(w) too large activations blow up (tanh saturates, gradients vanish),
too small and they shrink layer after layer. Xavier keeps the variance of activations and
gradients about equal for linear/tanh units (Var(w) = 2 / (fan_in + fan_out)); He keeps
it for ReLU units, which zero half their inputs (Var(w) = 2 / fan_in).

Every function works in place under no_grad, draws from minidl's generator of the
tensor's device (``md.manual_seed`` makes it reproducible) and returns the tensor.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend
from .._checks import real_arg
from ..grad_mode import no_grad
from ..tensor import Tensor

__all__ = ["calculate_gain", "zeros_", "ones_", "constant_", "uniform_", "normal_",
           "trunc_normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "orthogonal_", "lsuv_"]

_LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
               "conv_transpose2d", "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The gain that keeps activations' variance after ``nonlinearity`` (PyTorch's table).

    linear, conv*, sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2/(1+slope^2))
    (slope ``param``, default 0.01); selu: 3/4.

    Raises:
        ValueError: an unknown nonlinearity or a slope that is not a number.

    >>> nn.init.calculate_gain("leaky_relu", 0.2)
    1.3867504905630728
    """
    if nonlinearity in _LINEAR_FNS:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool) and \
                not math.isnan(param):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: param (the negative_slope) {param!r} is not a "
                             f"valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r} (expected "
                     f"one of linear, conv1d, conv2d, conv3d, conv_transpose1d/2d/3d, "
                     f"sigmoid, tanh, relu, leaky_relu, selu)")


def _check_tensor(tensor, op: str) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a Tensor (or Parameter), got "
                        f"{type(tensor).__name__}")
    if tensor.dtype.kind not in "fc":
        raise TypeError(f"{op}: expected a floating-point tensor, got dtype {tensor.dtype}")


def _calculate_fan_in_and_fan_out(tensor: Tensor, op: str = "init") -> tuple:
    """(fan_in, fan_out) of a weight, as in PyTorch.

    Linear (out, in): (in, out). Conv (out, in/groups, kh, kw): fan_in = in/groups*kh*kw,
    fan_out = out*kh*kw.
    """
    if tensor.ndim < 2:
        raise ValueError(f"{op}: fan in and fan out can not be computed for a tensor with "
                         f"fewer than 2 dimensions (got shape {tensor.shape})")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _no_elements(tensor: Tensor) -> bool:
    # A zero-element weight (Linear(0, n)) has a fan of 0: nothing to fill, no bound.
    return tensor.numel() == 0


def _draw_dtype(tensor: Tensor):
    # NumPy's generator draws float32 or float64 only; float16 weights go through float32.
    return np.float64 if tensor.dtype == np.float64 else np.float32


def _write(tensor: Tensor, values) -> Tensor:
    with no_grad():
        tensor.data[...] = values.astype(tensor.dtype, copy=False)
    return tensor


def _fill_uniform(tensor: Tensor, a: float, b: float) -> Tensor:
    gen = backend.generator(tensor.device)
    u = gen.random(tensor.shape, dtype=_draw_dtype(tensor))
    return _write(tensor, u * (b - a) + a)


def _fill_normal(tensor: Tensor, mean: float, std: float) -> Tensor:
    gen = backend.generator(tensor.device)
    z = gen.standard_normal(tensor.shape, dtype=_draw_dtype(tensor))
    return _write(tensor, z * std + mean)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0 in place. >>> nn.init.zeros_(layer.bias)"""
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1 in place. >>> nn.init.ones_(bn.weight)"""
    return constant_(tensor, 1.0)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val`` in place. >>> nn.init.constant_(layer.bias, 0.1)"""
    _check_tensor(tensor, "constant_")
    real_arg("constant_", "val", val)
    with no_grad():
        tensor.data[...] = val
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with samples of U(a, b) in place.

    >>> nn.init.uniform_(w, -0.1, 0.1)
    """
    _check_tensor(tensor, "uniform_")
    a, b = real_arg("uniform_", "a", a), real_arg("uniform_", "b", b)
    if not a <= b:
        raise ValueError(f"uniform_: expected a <= b, got a={a}, b={b}")
    return _fill_uniform(tensor, a, b)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with samples of N(mean, std^2) in place.

    >>> nn.init.normal_(w, 0.0, 0.01)
    """
    _check_tensor(tensor, "normal_")
    mean, std = real_arg("normal_", "mean", mean), real_arg("normal_", "std", std)
    if std < 0:
        raise ValueError(f"normal_: std must be non-negative, got {std}")
    return _fill_normal(tensor, mean, std)


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0) -> Tensor:
    """Fill with N(mean, std^2) restricted to [a, b] (out-of-range samples redrawn).

    >>> nn.init.trunc_normal_(w, std=0.02)
    """
    _check_tensor(tensor, "trunc_normal_")
    mean, std = real_arg("trunc_normal_", "mean", mean), real_arg("trunc_normal_", "std", std)
    a, b = real_arg("trunc_normal_", "a", a), real_arg("trunc_normal_", "b", b)
    if std <= 0 or not a < b:
        raise ValueError(f"trunc_normal_: expected std > 0 and a < b, got std={std}, "
                         f"a={a}, b={b}")
    if (b - mean) / std < -3 or (a - mean) / std > 3:
        raise ValueError(f"trunc_normal_: [a, b] = [{a}, {b}] is more than 3 std from the "
                         f"mean {mean}; rejection sampling would never finish")
    xp = backend.get_array_module(tensor.data)
    gen = backend.generator(tensor.device)
    dtype = _draw_dtype(tensor)
    values = gen.standard_normal(tensor.shape, dtype=dtype) * std + mean
    bad = (values < a) | (values > b)
    # Each round redraws only the rejected cells; at least ~0.1% survive per round.
    while bool(bad.any()):
        n = int(bad.sum())
        values[bad] = gen.standard_normal((n,), dtype=dtype) * std + mean
        bad = (values < a) | (values > b)
    return _write(tensor, xp.asarray(values))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot uniform: U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out)).

    Raises:
        ValueError: a tensor of fewer than 2 dims (no fans).
    >>> nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain("tanh"))
    """
    _check_tensor(tensor, "xavier_uniform_")
    if _no_elements(tensor):
        return tensor
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, "xavier_uniform_")
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _fill_uniform(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)).

    >>> nn.init.xavier_normal_(layer.weight)
    """
    _check_tensor(tensor, "xavier_normal_")
    if _no_elements(tensor):
        return tensor
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, "xavier_normal_")
    return _fill_normal(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    """He uniform: U(-bound, bound), bound = gain * sqrt(3 / fan), gain from
    ``calculate_gain(nonlinearity, a)``; fan is fan_in (forward) or fan_out (backward).

    >>> nn.init.kaiming_uniform_(conv.weight, mode="fan_out", nonlinearity="relu")
    """
    _check_tensor(tensor, "kaiming_uniform_")
    real_arg("kaiming_uniform_", "a", a)
    if _no_elements(tensor):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return _fill_uniform(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    """He normal: N(0, std^2), std = gain / sqrt(fan).

    >>> nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    """
    _check_tensor(tensor, "kaiming_normal_")
    real_arg("kaiming_normal_", "a", a)
    if _no_elements(tensor):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    return _fill_normal(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def orthogonal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """A (semi-)orthogonal matrix times ``gain``; a conv weight is seen as (out, in*kh*kw).

    As in PyTorch: QR of a standard normal (rows, cols) matrix (transposed when rows <
    cols), Q's columns multiplied by the signs of R's diagonal so that Q is uniformly
    distributed over orthogonal matrices.

    >>> nn.init.orthogonal_(layer.weight)
    """
    _check_tensor(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are "
                         f"supported, got shape {tensor.shape}")
    if tensor.numel() == 0:
        return tensor
    xp = backend.get_array_module(tensor.data)
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    gen = backend.generator(tensor.device)
    flat = gen.standard_normal((rows, cols), dtype=_draw_dtype(tensor))
    if rows < cols:
        flat = flat.T
    q, r = xp.linalg.qr(flat)
    q = q * xp.sign(xp.diagonal(r))
    if rows < cols:
        q = q.T
    return _write(tensor, (q * gain).reshape(tensor.shape))


class _StopForward(Exception):
    """Raised by the LSUV hook: the rest of the forward pass is not needed."""


def _layer_stats(out, channel_axis: int):
    """(total variance, per-channel means, pooled within-channel variance) in float64."""
    xp = backend.get_array_module(out)
    y = out.astype(np.float64)
    axes = tuple(i for i in range(y.ndim) if i != channel_axis)
    means = y.mean(axis=axes, keepdims=True)
    pooled = float(((y - means) ** 2).mean())
    return float(y.var()), xp.reshape(means, (-1,)), pooled


def lsuv_(model, batch, target_var: float = 1.0, tol: float = 0.1, max_iters: int = 10,
          verbose: bool = False) -> list:
    """Layer-sequential unit-variance init (Mishkin & Matas, "All you need is a good init").

    1. Every Conv2d, ConvTranspose2d and Linear weight is made orthogonal, biases 0.
    2. Layer by layer, in the order the forward pass calls them, the batch goes through
       the model (eval mode, no_grad) up to that layer, whose output y is measured; its
       weight is scaled by s = sqrt(target_var / v) and its bias set to
       s * (bias - channel mean), so each output channel has mean 0 and Var(y) becomes
       target_var; v is the variance around the channel means (the plain variance for a
       layer without bias). Repeated until |Var(y) - target_var| < tol or ``max_iters``
       rescalings.

    Because a layer is linear in its own weight the first rescaling is exact on the batch;
    later layers are then measured on the already-corrected ones. A layer that forward
    never calls is pre-initialised but not rescaled (and not in the report); one called
    twice is measured at its first call.

    Args:
        model: the Module to initialise (changed in place; its train/eval flags are
            restored afterwards).
        batch: a Tensor of inputs, such as one training batch.
        target_var: the wanted variance of each layer's output.
        tol: the accepted distance |var - target_var|.
        max_iters: most rescalings per layer.
        verbose: print one line per layer.
    Returns:
        One dict per layer, in forward order: name, iterations (rescalings done),
        variance (final, on ``batch``), mean (final), converged.
    Raises:
        TypeError: ``model`` not a Module or ``batch`` not a Tensor.
        ValueError: no Conv2d/ConvTranspose2d/Linear layer in the model, or bad numbers.

    >>> report = nn.init.lsuv_(model, next(iter(loader))[0])
    """
    from .layers.conv import Conv2d, ConvTranspose2d
    from .layers.linear import Linear
    from .module import Module

    if not isinstance(model, Module):
        raise TypeError(f"lsuv_: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(batch, Tensor):
        raise TypeError(f"lsuv_: batch must be a Tensor of inputs, got "
                        f"{type(batch).__name__}")
    if batch.numel() == 0:   # no statistics to measure: every variance would be NaN
        raise ValueError(f"lsuv_: batch is empty (shape {batch.shape}); expected some inputs")
    if not target_var > 0 or not tol > 0:
        raise ValueError(f"lsuv_: target_var and tol must be positive, got target_var="
                         f"{target_var}, tol={tol}")
    if not isinstance(max_iters, int) or max_iters < 1:
        raise ValueError(f"lsuv_: max_iters must be a positive int, got {max_iters!r}")
    kinds = (Conv2d, ConvTranspose2d, Linear)
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]
    if not layers:
        raise ValueError(f"lsuv_: {type(model).__name__} has no Conv2d, ConvTranspose2d or "
                         f"Linear layer to initialise")
    for _, m in layers:
        orthogonal_(m.weight)
        if m.bias is not None:
            zeros_(m.bias)

    modes = {id(m): m.training for m in model.modules()}
    model.eval()
    report = []
    try:
        with no_grad():
            # One pass to learn the order in which forward calls the layers.
            order, handles = [], []
            for name, m in layers:
                handles.append(m.register_forward_hook(
                    lambda mod, inp, out, name=name: order.append(name)
                    if name not in order else None))
            try:
                model(batch)
            finally:
                for h in handles:
                    h.remove()
            by_name = dict(layers)
            for name in order:
                layer = by_name[name]
                report.append(_lsuv_layer(model, batch, name, layer, target_var, tol,
                                          max_iters, isinstance(layer, Linear)))
                if verbose:
                    r = report[-1]
                    print(f"lsuv_: {name}: variance {r['variance']:.4f} after "
                          f"{r['iterations']} rescaling(s)")
    finally:
        for m in model.modules():
            object.__setattr__(m, "training", modes.get(id(m), m.training))
    return report


def _lsuv_layer(model, batch, name, layer, target_var, tol, max_iters, is_linear) -> dict:
    captured = []

    def hook(module, inputs, output):
        captured.append(output.data)
        raise _StopForward

    # Linear's features are the last axis; conv channels are axis 1.
    def measure():
        captured.clear()
        handle = layer.register_forward_hook(hook)
        try:
            model(batch)
        except _StopForward:
            pass
        finally:
            handle.remove()
        out = captured[0]
        return _layer_stats(out, out.ndim - 1 if is_linear else min(1, out.ndim - 1))

    iterations = 0
    var, means, pooled = measure()
    while abs(var - target_var) >= tol and iterations < max_iters:
        has_bias = layer.bias is not None
        # With a bias the channel means can be removed, so scale by the within-channel
        # spread; without one the means stay and the total variance is what scales.
        spread = pooled if has_bias else var
        if not spread > 0:
            break  # a dead layer (constant output): no scale can fix it
        scale = math.sqrt(target_var / spread)
        with no_grad():
            w = layer.weight
            w.data[...] = (w.data * scale).astype(w.dtype, copy=False)
            if has_bias:
                b = layer.bias
                new_b = (b.data.astype(np.float64) - means) * scale
                b.data[...] = new_b.astype(b.dtype, copy=False)
        iterations += 1
        var, means, pooled = measure()
    return {"name": name, "iterations": iterations, "variance": var,
            "mean": float(means.mean()), "converged": abs(var - target_var) < tol}

"""Normalisation layers: batch norm, layer norm, group norm and instance norm.

All four standardise x over some axes, xhat = (x - mean) / sqrt(var + eps) with the biased
variance, then apply a per-channel (or per-feature) affine map y = weight * xhat + bias.
They differ only in the axes the statistics are taken over:

    batch_norm     (N, C, *)  per channel, over the batch and every spatial position
    layer_norm     (*, D...)  per sample, over the trailing ``normalized_shape`` dims
    group_norm     (N, C, *)  per sample and group of C/G channels, over those and space
    instance_norm  (N, C, *)  per sample and channel, over space (group_norm with G = C)

Each backward is the closed form of the chain rule through mean and variance: for one
group of n values normalised together,

    gx = invstd * (g - mean(g) - xhat * mean(g * xhat)),   g = gy * weight,

which costs a few passes over the data instead of a graph of small ops.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._checks import same_device
from ..backend import get_array_module
from ..function import Function
from ..kernels import batchnorm as bn_kernels
from ..kernels import use_kernels
from ..parallel import map_blocks
from ..tensor import Tensor

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm"]


# ---- helpers shared by the four ops ---------------------------------------------------
def _channel_sum(a, b=None):
    """Per-channel sum of ``a`` (or of ``a * b``, without a temporary) over every axis but 1.

    a, b (N, C, *) -> (C,)

    In two stages, each sample's (contiguous) values first, then those N partial sums,
    laid out as a contiguous row per channel. NumPy's one-call reduction over axes (0, 2)
    adds in an order that depends on how many channels the array holds, so BatchNorm's
    results changed in the last bit with the number of threads that split its channels;
    in two stages every channel is added up the same way, whatever the block.
    """
    xp = get_array_module(a)
    N, C = a.shape[:2]
    L = int(np.prod(a.shape[2:]))    # not -1: an empty batch (N = 0) must reshape too
    a3 = a.reshape(N, C, L)
    per_sample = a3.sum(axis=2) if b is None else xp.einsum("ncl,ncl->nc", a3,
                                                             b.reshape(N, C, L))
    return xp.ascontiguousarray(per_sample.T).sum(axis=1)


def _channel_view(v, ndim):
    """(C,) -> (1, C, 1, ..., 1) so that it broadcasts against an (N, C, *) array."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _standardize_rows(x2, eps):
    """Standardise each row of a 2-D array: xhat = (x - mean) / sqrt(var + eps).

    x2 (R, M) -> xhat (R, M), invstd (R, 1); the variance is the biased one (divide by M).
    """
    xp = get_array_module(x2)
    m = x2.shape[1]
    if m == 0:      # empty rows (a zero-size spatial dim): nothing to standardise
        return x2.copy(), xp.ones((x2.shape[0], 1), dtype=x2.dtype)
    xhat = x2 - x2.mean(axis=1, keepdims=True)
    var = xp.einsum("rm,rm->r", xhat, xhat)[:, None] / m
    invstd = 1 / xp.sqrt(var + eps)
    xhat *= invstd
    return xhat, invstd


def _standardize_rows_backward(g2, xhat2, invstd):
    """Gradient of the row standardisation: gx = invstd * (g - mean(g) - xhat * mean(g*xhat)).

    g2, xhat2 (R, M), invstd (R, 1) -> gx (R, M).
    """
    xp = get_array_module(g2)
    m = g2.shape[1]
    if m == 0:
        return g2.copy()
    mean_g = g2.mean(axis=1, keepdims=True)
    mean_gx = xp.einsum("rm,rm->r", g2, xhat2)[:, None] / m
    gx = xhat2 * -mean_gx
    gx += g2
    gx -= mean_g
    gx *= invstd
    return gx


def _check_input(op, x, min_ndim):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a float tensor, got dtype {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(f"{op}: expected input with at least {min_ndim} dimensions "
                         f"(N, C, ...), got shape {x.shape}")
    if min_ndim >= 2 and x.shape[1] == 0:
        raise ValueError(f"{op}: input has 0 channels (shape {x.shape}); expected (N, C, ...) "
                         f"with C >= 1")


def _check_param(op, name, p, shape, x):
    """weight/bias/running stats: a Tensor of ``shape`` on x's device (None passes)."""
    if p is None:
        return
    if not isinstance(p, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(p).__name__}")
    if p.shape != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {p.shape}")
    same_device(op, x, **{name: p})
    if p.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a float tensor, got dtype {p.dtype}")


def _check_affine_dtype(op, x, weight, bias):
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.dtype != x.dtype:
            raise TypeError(f"{op}: {name} has dtype {p.dtype} but input has dtype "
                            f"{x.dtype}; convert one of them")


def _check_eps(op, eps):
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not eps >= 0:
        raise ValueError(f"{op}: eps must be a non-negative number, got {eps!r}")


def _affine_args(weight, bias):
    """The affine Tensors that are given, in order, for Function.apply."""
    return tuple(p for p in (weight, bias) if p is not None)


# ---- batch norm -----------------------------------------------------------------------
class BatchNorm(Function):
    """Batch normalisation over axis 1 (channels) of an (N, C, *) batch.

    forward   x (N, C, *), weight (C,), bias (C,) -> y (N, C, *);  n = N * prod(*)
              training:  mean_c, var_c = mean and biased variance of channel c over n values
                         running_mean = (1 - m) running_mean + m mean_c
                         running_var  = (1 - m) running_var  + m var_c * n / (n - 1)
              eval:      mean_c, var_c = running_mean, running_var
              xhat = (x - mean_c) / sqrt(var_c + eps),   y = weight_c * xhat + bias_c
    backward  gbias_c = sum(gy),  gweight_c = sum(gy * xhat)   (sums over batch and space)
              training:  gx = weight_c * invstd_c / n * (n gy - gbias_c - xhat * gweight_c)
              eval:      gx = gy * weight_c * invstd_c   (the statistics are constants)
    saved     xc = x - mean_c (N, C, *) and invstd_c = 1 / sqrt(var_c + eps) (C,), so that
              xhat = xc * invstd_c; forward is 5 passes over the data, backward 6.
              (var_c and weight too: the fused backward kernel takes them.)
    threads   on the CPU every pass runs on blocks of channels in parallel threads
              (minidl.parallel.map_blocks); the sums are per channel, so the result does
              not depend on the split.
    kernels   on a GPU the batch statistics, y and the training backward are kernels of
              batchnorm.cu (statistics in one pass over the data, backward in two). There
              xc is not stored: the kernels take x and the mean, and save a pass each.
    """

    def __init__(self, training, momentum, eps, running_mean, running_var, has_weight,
                 has_bias):
        self.training, self.momentum, self.eps = training, momentum, eps
        # Tensors updated in place; not inputs of the graph.
        self.running_mean, self.running_var = running_mean, running_var
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x, *params):
        xp = get_array_module(x)
        weight = params[0] if self.has_weight else None
        bias = params[-1] if self.has_bias else None
        C = x.shape[1]
        self.n = x.size // C
        self.weight = weight
        if use_kernels(x):
            return self._forward_kernels(x, weight, bias)
        # NumPy: every pass works on blocks of channels in parallel threads
        # (minidl.parallel): the channels are independent, and one core alone cannot
        # stream the data fast enough. Each block function writes only its own channels.
        xc = xp.empty_like(x)
        if self.training:
            def statistics(c):          # mean, x - mean, biased variance of a block
                mean = _channel_sum(x[:, c]) / self.n
                xp.subtract(x[:, c], _channel_view(mean, x.ndim), out=xc[:, c])
                return mean, _channel_sum(xc[:, c], xc[:, c]) / self.n
            blocks = map_blocks(statistics, C, self._min_block(xp))
            mean = xp.concatenate([m for m, _ in blocks])
            var = xp.concatenate([v for _, v in blocks])
            if self.running_mean is not None:
                self._update_running_stats(mean, var)
        else:
            mean = self.running_mean.data.astype(x.dtype, copy=False)
            var = self.running_var.data.astype(x.dtype, copy=False)
        self.invstd = 1 / xp.sqrt(var + self.eps)                                  # (C,)
        self.scale = self.invstd if weight is None else weight * self.invstd       # (C,)
        # xhat = xc * invstd is never stored: scaling xc by weight * invstd gives y in one
        # pass, and backward needs only xc and invstd.
        y = xp.empty_like(x)

        def normalize(c):               # y = (x - mean) * scale + bias on a block
            if not self.training:
                xp.subtract(x[:, c], _channel_view(mean[c], x.ndim), out=xc[:, c])
            xp.multiply(xc[:, c], _channel_view(self.scale[c], x.ndim), out=y[:, c])
            if bias is not None:
                y[:, c] += _channel_view(bias[c], x.ndim)
        map_blocks(normalize, C, self._min_block(xp))
        self.xc, self.var = xc, var
        return y

    def _min_block(self, xp) -> int:
        # Channels per thread such that each thread gets at least ~64K values: below
        # that, handing work to a thread costs more than it saves. A GPU (CuPy without
        # the kernels) gets one block: it runs each pass on all its cores already.
        if xp is not np:
            return 1 << 62
        return max(1, (1 << 16) // max(self.n, 1))

    def _forward_kernels(self, x, weight, bias):
        """The GPU path: batch statistics and y = (x - mean) * scale + bias as batchnorm.cu
        kernels. Saves x and the mean (backward's kernel takes them) instead of xc."""
        xp = get_array_module(x)
        if self.training:           # mean and biased variance in one pass
            mean, var = bn_kernels.batch_norm_stats(x)
            if self.running_mean is not None:
                self._update_running_stats(mean, var)
        else:
            mean = self.running_mean.data.astype(x.dtype, copy=False)
            var = self.running_var.data.astype(x.dtype, copy=False)
        self.invstd = 1 / xp.sqrt(var + self.eps)
        self.x, self.mean, self.xc, self.var = x, mean, None, var
        self.scale = self.invstd if weight is None else weight * self.invstd
        return bn_kernels.batch_norm_forward(x, mean, var, weight, bias, self.eps)

    def _update_running_stats(self, mean, var):
        m = self.momentum
        unbiased = var * (self.n / (self.n - 1))
        rm, rv = self.running_mean.data, self.running_var.data
        # (1 - m) * running + m * batch, in PyTorch's order, in place: three array
        # operations per statistic instead of four (on a GPU each costs ~10 us of host
        # time, and a small model's step is bound by that host time).
        rm *= 1 - m
        rm += m * mean.astype(rm.dtype, copy=False)
        rv *= 1 - m
        rv += m * unbiased.astype(rv.dtype, copy=False)

    def backward(self, gy):
        xp = get_array_module(gy)
        xc, invstd, n = self.xc, self.invstd, self.n
        if xc is None:                          # the GPU path kept x and the mean
            if self.training and use_kernels(gy):   # all three gradients in two passes
                return self._grads(*bn_kernels.batch_norm_backward(
                    gy, self.x, self.mean, self.var, self.weight, self.eps))
            xc = self.x - _channel_view(self.mean, self.x.ndim)
        wants_x = self.needs_input_grad[0]
        gx = xp.empty_like(gy) if wants_x else None

        def gradients(c):               # all three gradients of a block of channels
            grad_bias = _channel_sum(gy[:, c])
            grad_weight = _channel_sum(gy[:, c], xc[:, c]) * invstd[c]    # sum(gy * xhat)
            if wants_x:
                scale = _channel_view(self.scale[c], gy.ndim)
                if self.training:
                    # gx = scale * (gy - mean(gy) - xhat * mean(gy * xhat)), four passes
                    xp.multiply(xc[:, c], _channel_view(grad_weight * invstd[c] / -n,
                                                        gy.ndim), out=gx[:, c])
                    gx[:, c] += gy[:, c]
                    gx[:, c] -= _channel_view(grad_bias / n, gy.ndim)
                    gx[:, c] *= scale
                else:
                    xp.multiply(gy[:, c], scale, out=gx[:, c])
            return grad_weight, grad_bias
        blocks = map_blocks(gradients, gy.shape[1], self._min_block(xp))
        grad_weight = xp.concatenate([w for w, _ in blocks])
        grad_bias = xp.concatenate([b for _, b in blocks])
        return self._grads(gx, grad_weight, grad_bias)

    def _grads(self, gx, grad_weight, grad_bias):
        """One gradient per input of apply (x, then weight and bias where given)."""
        grads = [gx if self.needs_input_grad[0] else None]
        if self.has_weight:
            grads.append(grad_weight if self.needs_input_grad[1] else None)
        if self.has_bias:
            grads.append(grad_bias if self.needs_input_grad[-1] else None)
        return tuple(grads)


def batch_norm(input: Tensor, running_mean: "Tensor | None", running_var: "Tensor | None",
               weight: "Tensor | None" = None, bias: "Tensor | None" = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation of an (N, C), (N, C, L) or (N, C, H, W) batch, as PyTorch's.

    Args:
        input: (N, C, *) float tensor.
        running_mean, running_var: (C,) tensors updated in place when training (with the
            unbiased batch variance), used instead of the batch statistics in eval; both
            None means the batch statistics are always used (track_running_stats=False).
        weight, bias: optional (C,) affine parameters (gamma, beta).
        training: use (and record) batch statistics.
        momentum: running = (1 - momentum) * running + momentum * batch_stat, in [0, 1].
            (nn.BatchNorm passes 1/num_batches_tracked for a cumulative average.)
        eps: added to the variance.
    Returns:
        A tensor of input's shape.
    Raises:
        ValueError: wrong ndim or parameter shape, momentum outside [0, 1], only one
            running statistic given, or one value per channel while using batch stats.

    >>> rm, rv = md.zeros(3), md.ones(3)
    >>> y = F.batch_norm(md.randn(8, 3, 4, 4), rm, rv, training=True)
    """
    op = "batch_norm"
    _check_input(op, input, 2)
    C = input.shape[1]
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must both be Tensors or both "
                         f"be None, got {type(running_mean).__name__} and "
                         f"{type(running_var).__name__}")
    for name, p in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _check_param(op, name, p, (C,), input)
    _check_affine_dtype(op, input, weight, bias)
    if not isinstance(momentum, numbers.Real) or isinstance(momentum, bool) or \
            not 0 <= momentum <= 1:
        raise ValueError(f"{op}: momentum must be a float in [0, 1], got {momentum!r}")
    _check_eps(op, eps)
    use_batch_stats = bool(training) or running_mean is None
    if use_batch_stats and input.numel() // max(C, 1) <= 1:
        raise ValueError(f"{op}: expected more than 1 value per channel when training, got "
                         f"input size {input.shape}")
    fn = BatchNorm(use_batch_stats, float(momentum), float(eps), running_mean, running_var,
                   weight is not None, bias is not None)
    return fn.apply(input, *_affine_args(weight, bias))


# ---- layer norm -----------------------------------------------------------------------
class LayerNorm(Function):
    """Layer normalisation over the last k dims (``normalized_shape``) of each sample.

    forward   x (*, D1..Dk) -> y (*, D1..Dk);  R = prod(*), M = D1 * ... * Dk
              xhat = (x - mean) / sqrt(var + eps) over the M trailing values of each row
              y = weight * xhat + bias,  weight and bias (D1..Dk)
    backward  gbias = sum over rows of gy;  gweight = sum over rows of gy * xhat
              gx = invstd * (g - mean(g) - xhat * mean(g * xhat)),  g = gy * weight
    """

    def __init__(self, normalized_shape, eps, has_weight, has_bias):
        self.normalized_shape, self.eps = normalized_shape, eps
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x, *params):
        weight = params[0] if self.has_weight else None
        bias = params[-1] if self.has_bias else None
        m = int(np.prod(self.normalized_shape))
        xhat, self.invstd = _standardize_rows(x.reshape(-1, m), self.eps)
        self.xhat = xhat.reshape(x.shape)
        self.weight = weight
        y = self.xhat.copy() if weight is None else self.xhat * weight
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        m = int(np.prod(self.normalized_shape))
        gy2, xhat2 = gy.reshape(-1, m), self.xhat.reshape(-1, m)
        grads = [None]
        if self.needs_input_grad[0]:
            g = gy if self.weight is None else gy * self.weight
            grads[0] = _standardize_rows_backward(g.reshape(-1, m), xhat2,
                                                  self.invstd).reshape(gy.shape)
        if self.has_weight:
            grads.append(xp.einsum("rm,rm->m", gy2, xhat2).reshape(self.normalized_shape)
                         if self.needs_input_grad[1] else None)
        if self.has_bias:
            grads.append(gy2.sum(axis=0).reshape(self.normalized_shape)
                         if self.needs_input_grad[-1] else None)
        return tuple(grads)


def layer_norm(input: Tensor, normalized_shape, weight: "Tensor | None" = None,
               bias: "Tensor | None" = None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` dims, as PyTorch's.

    Args:
        input: (*, D1, ..., Dk) float tensor.
        normalized_shape: int or tuple (D1, ..., Dk), the last dims of input.
        weight, bias: optional tensors of shape normalized_shape.
        eps: added to the variance.
    Returns:
        A tensor of input's shape.
    Raises:
        ValueError: normalized_shape does not match the last dims of input, or a
            parameter has the wrong shape.

    >>> y = F.layer_norm(md.randn(4, 10), (10,), md.ones(10), md.zeros(10))
    """
    op = "layer_norm"
    _check_input(op, input, 1)
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else \
        tuple(normalized_shape)
    if not shape or any(not isinstance(d, numbers.Integral) or d < 1 for d in shape):
        raise ValueError(f"{op}: normalized_shape must be a non-empty tuple of positive "
                         f"ints, got {normalized_shape!r}")
    shape = tuple(int(d) for d in shape)
    if input.shape[input.ndim - len(shape):] != shape or len(shape) > input.ndim:
        raise ValueError(f"{op}: normalized_shape {shape} must match the last dims of "
                         f"input, got input shape {input.shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        _check_param(op, name, p, shape, input)
    _check_affine_dtype(op, input, weight, bias)
    _check_eps(op, eps)
    fn = LayerNorm(shape, float(eps), weight is not None, bias is not None)
    return fn.apply(input, *_affine_args(weight, bias))


# ---- group norm and instance norm -----------------------------------------------------
class GroupNorm(Function):
    """Group normalisation: each sample's C channels in G groups of C/G, normalised apart.

    forward   x (N, C, *) -> y (N, C, *);  M = (C / G) * prod(*) values per (n, group)
              xhat = (x - mean) / sqrt(var + eps) over the M values of each (n, group)
              y = weight_c * xhat + bias_c,  weight and bias (C,)
    backward  gbias_c = sum(gy),  gweight_c = sum(gy * xhat)   (over batch and space)
              gx = invstd * (g - mean(g) - xhat * mean(g * xhat)),  g = gy * weight_c,
              means over the M values of each (n, group)
    """

    def __init__(self, num_groups, eps, has_weight, has_bias):
        self.num_groups, self.eps = num_groups, eps
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x, *params):
        weight = params[0] if self.has_weight else None
        bias = params[-1] if self.has_bias else None
        # The channels of a group are adjacent in memory, so (N * G, M) is a plain view.
        rows = x.shape[0] * self.num_groups
        # values per group, spelled out: reshape(rows, -1) fails for an empty batch
        self.m = int(np.prod(x.shape[1:])) // self.num_groups
        xhat, self.invstd = _standardize_rows(x.reshape(rows, self.m), self.eps)
        self.xhat = xhat.reshape(x.shape)
        self.weight = weight
        y = self.xhat.copy() if weight is None else \
            self.xhat * _channel_view(weight, x.ndim)
        if bias is not None:
            y += _channel_view(bias, x.ndim)
        return y

    def backward(self, gy):
        rows = gy.shape[0] * self.num_groups
        grads = [None]
        if self.needs_input_grad[0]:
            g = gy if self.weight is None else gy * _channel_view(self.weight, gy.ndim)
            grads[0] = _standardize_rows_backward(
                g.reshape(rows, self.m), self.xhat.reshape(rows, self.m),
                self.invstd).reshape(gy.shape)
        if self.has_weight:
            grads.append(_channel_sum(gy, self.xhat) if self.needs_input_grad[1] else None)
        if self.has_bias:
            grads.append(_channel_sum(gy) if self.needs_input_grad[-1] else None)
        return tuple(grads)


def group_norm(input: Tensor, num_groups: int, weight: "Tensor | None" = None,
               bias: "Tensor | None" = None, eps: float = 1e-5) -> Tensor:
    """Group normalisation of an (N, C, *) batch, as PyTorch's.

    Args:
        input: (N, C, *) float tensor.
        num_groups: G, a divisor of C.
        weight, bias: optional (C,) affine parameters.
        eps: added to the variance.
    Returns:
        A tensor of input's shape.
    Raises:
        ValueError: C is not divisible by num_groups, wrong ndim or parameter shape.

    >>> y = F.group_norm(md.randn(2, 6, 4, 4), 3)
    """
    op = "group_norm"
    _check_input(op, input, 2)
    C = input.shape[1]
    if not isinstance(num_groups, numbers.Integral) or isinstance(num_groups, bool) or \
            num_groups < 1 or C % num_groups:
        raise ValueError(f"{op}: num_groups must be a positive divisor of the {C} channels "
                         f"of input, got {num_groups!r}")
    for name, p in (("weight", weight), ("bias", bias)):
        _check_param(op, name, p, (C,), input)
    _check_affine_dtype(op, input, weight, bias)
    _check_eps(op, eps)
    fn = GroupNorm(int(num_groups), float(eps), weight is not None, bias is not None)
    return fn.apply(input, *_affine_args(weight, bias))


def instance_norm(input: Tensor, weight: "Tensor | None" = None,
                  bias: "Tensor | None" = None, eps: float = 1e-5) -> Tensor:
    """Instance normalisation: each (sample, channel) over its spatial positions.

    The same as ``group_norm(input, C, weight, bias, eps)``; as PyTorch's instance_norm
    with input statistics (no running statistics).

    Args:
        input: (N, C, *) float tensor with more than one spatial position.
        weight, bias: optional (C,) affine parameters.
        eps: added to the variance.
    Returns:
        A tensor of input's shape.
    Raises:
        ValueError: fewer than 3 dims, or a single spatial position.

    >>> y = F.instance_norm(md.randn(2, 3, 8, 8))
    """
    op = "instance_norm"
    _check_input(op, input, 3)
    if int(np.prod(input.shape[2:])) <= 1:
        raise ValueError(f"{op}: expected more than 1 spatial element, got input size "
                         f"{input.shape}")
    return group_norm(input, input.shape[1], weight, bias, eps)

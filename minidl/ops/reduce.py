"""Reductions: sum, mean, max/min, var/std, argmax, logsumexp.

forward   y = reduce(x, dim) with dim an int, a tuple or None (all axes); keepdim keeps
          the reduced axes with size 1.
backward  sum:  gx = gy broadcast back to x.shape;
          max:  gx = gy at the position of the maximum (with dim: the first one, as the
                returned index says; over all elements: shared evenly among ties).
var, std, mean and logsumexp are compositions of these, so their gradients (and second
derivatives) come from autograd.
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from .._checks import describe, tensor_arg
from ..backend import get_array_module
from ..function import Function
from ..tensor import Tensor


def normalize_dims(dim, ndim: int, op: str):
    """dim (None, int or sequence) -> a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    if not isinstance(dim, (int, np.integer, tuple, list)):
        raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {describe(dim)}")
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = []
    for d in dims:
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
        if not -builtins.max(ndim, 1) <= d < builtins.max(ndim, 1):
            raise ValueError(f"{op}: dim {d} is out of range for a tensor of {ndim} "
                             f"dimensions")
        out.append(int(d) % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim!r} repeats an axis")
    return tuple(sorted(out)) if ndim else ()


def _keepdim_shape(shape, dims):
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


class Sum(Function):
    backward_on_tensors = True
    saves_inputs = False      # backward needs the shapes only

    def __init__(self, dims, keepdim):
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        return x.sum(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy):
        x, = self.inputs
        from .shape import expand
        return expand(gy.reshape(_keepdim_shape(x.shape, self.dims)), x.shape)


class SumTo(Function):
    """Sum over the axes that broadcasting added or stretched, down to ``shape``."""
    backward_on_tensors = True
    saves_inputs = False      # backward needs the shapes only

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        from ..function import unbroadcast_array
        return unbroadcast_array(x, self.shape)

    def backward(self, gy):
        from .shape import expand
        return expand(gy, self.inputs[0].shape)


class MaxReduce(Function):
    """The largest (or, with ``sign=-1``, smallest) element over ``dims``."""
    backward_on_tensors = True

    def __init__(self, dims, keepdim, sign, first_only):
        self.dims, self.keepdim, self.sign, self.first_only = dims, keepdim, sign, first_only

    def forward(self, x):
        xp = get_array_module(x)
        y = x.max(axis=self.dims, keepdims=True) if self.sign > 0 else \
            x.min(axis=self.dims, keepdims=True)
        if self.first_only:   # one winner: the first extreme along the single dim
            d = self.dims[0]
            idx = (x.argmax(axis=d) if self.sign > 0 else x.argmin(axis=d))
            shape = [1] * x.ndim
            shape[d] = x.shape[d]
            winner = xp.arange(x.shape[d]).reshape(shape) == xp.expand_dims(idx, d)
            self.share = winner.astype(x.dtype)
            self.indices = idx if not self.keepdim else xp.expand_dims(idx, d)
        else:                 # ties share the gradient evenly
            hit = (x == y)
            self.share = hit / hit.sum(axis=self.dims, keepdims=True)
            self.share = self.share.astype(x.dtype)
        return y if self.keepdim else y.reshape(
            [n for i, n in enumerate(x.shape) if i not in self.dims])

    def backward(self, gy):
        x, = self.inputs
        from .shape import expand
        gy = expand(gy.reshape(_keepdim_shape(x.shape, self.dims)), x.shape)
        return gy * Tensor._wrap(self.share)


def _check_nonempty(x: Tensor, dims, op: str):
    if any(x.shape[d] == 0 for d in dims) or (not dims and x.data.size == 0):
        raise ValueError(f"{op}: cannot reduce an empty dimension (shape {x.shape})")


def sum(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    tensor_arg("sum", "input", x)
    dims = normalize_dims(dim, x.ndim, "sum")
    return Sum(dims, keepdim).apply(x)


def sum_to(x: Tensor, shape) -> Tensor:
    if x.shape == tuple(shape):
        return x
    return SumTo(shape).apply(x)


def mean(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    tensor_arg("mean", "input", x)
    dims = normalize_dims(dim, x.ndim, "mean")
    count = math.prod(x.shape[d] for d in dims) if dims else 1
    if count == 0:
        raise ValueError(f"mean: cannot average over an empty dimension (shape {x.shape})")
    if x.dtype.kind not in "fc":
        raise TypeError(f"mean: expected a float tensor, got dtype {x.dtype}")
    return sum(x, dims, keepdim) / count


MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _extreme(x, dim, keepdim, sign, op):
    tensor_arg(op, "input", x)
    dims = normalize_dims(dim, x.ndim, op)
    _check_nonempty(x, dims, op)
    if dim is None:
        return MaxReduce(dims, False, sign, first_only=False).apply(x)
    fn = MaxReduce(dims, keepdim, sign, first_only=True)
    values = fn.apply(x)
    return MaxResult(values, Tensor._wrap(fn.indices))


def max(x: Tensor, dim=None, keepdim: bool = False):
    """The largest element; with ``dim``, a (values, indices) pair as in PyTorch."""
    if dim is not None and not isinstance(dim, (int, np.integer)):
        raise TypeError(f"max: dim must be an int, got {dim!r}; use amax for several dims")
    return _extreme(x, dim, keepdim, +1, "max")


def min(x: Tensor, dim=None, keepdim: bool = False):
    if dim is not None and not isinstance(dim, (int, np.integer)):
        raise TypeError(f"min: dim must be an int, got {dim!r}; use amin for several dims")
    return _extreme(x, dim, keepdim, -1, "min")


def amax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    tensor_arg("amax", "input", x)
    dims = normalize_dims(dim, x.ndim, "amax")
    _check_nonempty(x, dims, "amax")
    return MaxReduce(dims, keepdim, +1, first_only=False).apply(x)


def amin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    tensor_arg("amin", "input", x)
    dims = normalize_dims(dim, x.ndim, "amin")
    _check_nonempty(x, dims, "amin")
    return MaxReduce(dims, keepdim, -1, first_only=False).apply(x)


def var(x: Tensor, dim=None, keepdim: bool = False, unbiased: bool = True,
        correction=None) -> Tensor:
    """Variance: sum((x - mean)^2) / (n - correction); correction 1 (unbiased) by default."""
    tensor_arg("var", "input", x, float_only=True)
    dims = normalize_dims(dim, x.ndim, "var")
    n = math.prod(x.shape[d] for d in dims) if dims else 1
    correction = (1 if unbiased else 0) if correction is None else correction
    if n - correction <= 0:
        raise ValueError(f"var: {n} element(s) over dim {dim!r} with correction "
                         f"{correction} leave no degrees of freedom")
    centered = x - mean(x, dims, keepdim=True)
    return sum(centered * centered, dims, keepdim) / (n - correction)


def std(x: Tensor, dim=None, keepdim: bool = False, unbiased: bool = True,
        correction=None) -> Tensor:
    return var(x, dim, keepdim, unbiased, correction).sqrt()


def argmax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the first maximum (over the flattened tensor when dim is None)."""
    tensor_arg("argmax", "input", x)
    if dim is None:
        _check_nonempty(x, (), "argmax")
        return Tensor._wrap(x.data.argmax().astype(np.int64))
    d, = normalize_dims(dim, x.ndim, "argmax")
    _check_nonempty(x, (d,), "argmax")
    idx = x.data.argmax(axis=d).astype(np.int64)
    return Tensor._wrap(get_array_module(idx).expand_dims(idx, d) if keepdim else idx)


def argmin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    tensor_arg("argmin", "input", x)
    if dim is None:
        _check_nonempty(x, (), "argmin")
        return Tensor._wrap(x.data.argmin().astype(np.int64))
    d, = normalize_dims(dim, x.ndim, "argmin")
    _check_nonempty(x, (d,), "argmin")
    idx = x.data.argmin(axis=d).astype(np.int64)
    return Tensor._wrap(get_array_module(idx).expand_dims(idx, d) if keepdim else idx)


def logsumexp(x: Tensor, dim, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) over dim, shifted by the max so exp never overflows."""
    tensor_arg("logsumexp", "input", x, float_only=True)
    dims = normalize_dims(dim, x.ndim, "logsumexp")
    _check_nonempty(x, dims, "logsumexp")
    m = x.detach().amax(dims, keepdim=True)
    m = Tensor._wrap(get_array_module(m.data).where(
        get_array_module(m.data).isfinite(m.data), m.data, 0).astype(x.dtype))
    out = (x - m).exp().sum(dims, keepdim=True).log() + m
    return out if keepdim else out.reshape(
        [n for i, n in enumerate(x.shape) if i not in dims])

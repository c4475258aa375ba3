"""Dropout: zero random units in training, scale the kept ones so the expectation holds.

All three variants multiply x by one random mask and differ only in what a mask entry
covers: a single value (dropout), a whole channel of an image (dropout2d), or a whole
sample of a residual branch (drop_path, "stochastic depth"). Dropout is inverted: kept
units are scaled by 1/(1-p) during training, so evaluation is the identity and needs no
rescaling. The masks come from minidl's seeded generator of the input's device.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..backend import device_of, generator, get_array_module
from ..function import Function
from ..kernels import dropout as dropout_kernels
from ..kernels import use_kernels
from ..tensor import Tensor

__all__ = ["dropout", "dropout2d", "drop_path"]


class Dropout(Function):
    """y = x * mask, one Bernoulli(1 - p) draw per entry of a mask that broadcasts to x.

    forward   x (N, ...) -> y (N, ...);  mask of ``mask_shape`` (x.shape, (N, C, 1, 1) or
              (N, 1, ..., 1)) with entries 1/(1-p) (kept, probability 1 - p) or 0
    backward  gx = gy * mask   (the same mask, saved in forward)
    kernels   on a GPU, a mask of x's shape is drawn and applied in one pass by
              dropout.cu (a counter-based hash of a seed drawn from minidl's generator);
              it saves ``keep``, a bool mask, in place of ``mask``, and backward is one
              more pass. The small channel/sample masks stay on the array path.
    """

    def __init__(self, p, mask_shape):
        self.p, self.mask_shape = p, mask_shape

    def forward(self, x):
        xp = get_array_module(x)
        if self.mask_shape == x.shape and use_kernels(x):
            y, self.keep = dropout_kernels.dropout_forward(x, self.p, _kernel_seed(x))
            return y
        if self.p == 1:     # 1/(1-p) is undefined; every unit is dropped
            self.mask = xp.zeros(self.mask_shape, dtype=x.dtype)
        else:
            # the generators draw float32 or float64 only
            draw_dtype = x.dtype if x.dtype.itemsize >= 4 else np.float32
            uniform = generator(device_of(x)).random(self.mask_shape, dtype=draw_dtype)
            self.mask = (uniform >= self.p).astype(x.dtype)   # kept with probability 1 - p
            self.mask *= x.dtype.type(1 / (1 - self.p))
        return x * self.mask

    def backward(self, gy):
        if self.mask_shape == gy.shape and use_kernels(gy):
            return dropout_kernels.dropout_backward(gy, self.keep, self.p)
        return gy * self.mask


def _kernel_seed(x) -> int:
    """A fresh 53-bit seed for the dropout kernel, from the generator of x's device (so
    md.manual_seed makes the masks reproducible)."""
    u = generator(device_of(x)).random((1,), dtype=np.float64)
    return int(float(u[0]) * 2**53)


def _check(op, x, p, training):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a float tensor, got dtype {x.dtype}")
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0 <= p <= 1:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p!r}")


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each value with probability p and scale the rest by 1/(1-p) (training only).

    Args:
        input: float tensor of any shape.
        p: probability of dropping a value, in [0, 1].
        training: when False (or p == 0) input is returned unchanged.
    Returns:
        A tensor of input's shape.
    Raises:
        ValueError: p outside [0, 1].

    >>> md.manual_seed(0)
    >>> y = F.dropout(md.ones(4, 5), p=0.5)      # entries 0 or 2
    """
    _check("dropout", input, p, training)
    if not training or p == 0:
        return input
    return Dropout(float(p), input.shape).apply(input)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero whole channels of an (N, C, H, W) batch with probability p (training only).

    Neighbouring pixels of a feature map are strongly correlated, so dropping single
    pixels hardly regularises a conv net; dropping a channel does.

    Args:
        input: (N, C, H, W) float tensor.
        p: probability of dropping a channel, in [0, 1].
        training: when False (or p == 0) input is returned unchanged.
    Returns:
        A tensor of input's shape; each (n, c) map is all zero or scaled by 1/(1-p).
    Raises:
        ValueError: p outside [0, 1], or input not 4-D.

    >>> y = F.dropout2d(md.ones(2, 8, 4, 4), p=0.25)
    """
    _check("dropout2d", input, p, training)
    if input.ndim != 4:
        raise ValueError(f"dropout2d: expected a 4-D input (N, C, H, W), got shape "
                         f"{input.shape}")
    if not training or p == 0:
        return input
    return Dropout(float(p), input.shape[:2] + (1, 1)).apply(input)


def drop_path(input: Tensor, p: float = 0.0, training: bool = True) -> Tensor:
    """Stochastic depth: drop the whole residual branch of a sample with probability p.

    Used as ``x + drop_path(branch(x), p, training)``: a dropped sample skips the branch,
    a kept one has it scaled by 1/(1-p).

    Args:
        input: (N, ...) float tensor, the output of a residual branch.
        p: probability of dropping a sample's branch, in [0, 1].
        training: when False (or p == 0) input is returned unchanged.
    Returns:
        A tensor of input's shape.
    Raises:
        ValueError: p outside [0, 1], or a 0-d input.

    >>> y = F.drop_path(md.ones(8, 16, 4, 4), p=0.2)
    """
    _check("drop_path", input, p, training)
    if input.ndim < 1:
        raise ValueError(f"drop_path: expected an input with a batch dim, got shape "
                         f"{input.shape}")
    if not training or p == 0:
        return input
    return Dropout(float(p), input.shape[:1] + (1,) * (input.ndim - 1)).apply(input)

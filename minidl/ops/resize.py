"""Resizing images: nearest and bilinear interpolation of an NCHW batch.

Both modes are separable: every output row is a weighted sum of input rows, every
output column a weighted sum of input columns. Writing those weights as two small
matrices, A_h (OH, H) and A_w (OW, W), makes the whole op

    forward   y  = A_h @ x @ A_w^T        (over the last two axes of each image)
    backward  gx = A_h^T @ gy @ A_w       (the same weights, scattered back)

Each row of A has one 1 (nearest) or two weights that sum to 1 (bilinear). The
source coordinates follow PyTorch exactly:

    nearest                    src = min(floor(dst * scale), in - 1)  (a copy when
                               out == in, src = dst // 2 when out == 2 in)
    bilinear, align_corners    src = dst * (in - 1) / (out - 1)
    bilinear, not aligned      src = max((dst + 0.5) * scale - 0.5, 0)
                               (both: a copy along an axis whose size stays the same)

with scale = 1 / scale_factor when scale_factor is given, else in / out. Nearest picks
its pixels with a gather in forward (cheaper than a product with a 0/1 matrix).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..backend import get_array_module
from ..function import Function
from ..tensor import Tensor

__all__ = ["interpolate"]


def _source_scale(in_size, out_size, scale_factor, dtype):
    """in/out, or 1/scale_factor when the user gave one (PyTorch's rule), in ``dtype``."""
    if scale_factor is not None and scale_factor > 0:
        return dtype.type(1.0 / scale_factor)
    return dtype.type(in_size) / dtype.type(out_size)


def nearest_indices(in_size, out_size, scale_factor=None):
    """Source index of each output position: min(floor(dst * scale), in - 1).

    As PyTorch's 'nearest': an output of the input's size copies it, and an output of
    twice its size repeats each pixel, whatever scale_factor said; otherwise the product
    is computed in float32, so the same pixels are picked even where dst * scale lands
    within rounding of an integer.
    """
    if out_size == in_size:
        return np.arange(out_size)
    if out_size == 2 * in_size:
        return np.arange(out_size) // 2
    f32 = np.dtype(np.float32)
    scale = _source_scale(in_size, out_size, scale_factor, f32)
    dst = np.arange(out_size, dtype=np.float32)
    return np.minimum(np.floor(dst * scale).astype(np.int64), in_size - 1)


def linear_weights(in_size, out_size, scale_factor, align_corners, dtype):
    """The (out, in) matrix of linear interpolation along one axis, in ``dtype``.

    Row o holds weight 1 - l at i0 and l at i1 = min(i0 + 1, in - 1), where the source
    coordinate src = i0 + l follows PyTorch (see the module docstring). The coordinate
    arithmetic is done in the input's dtype, as PyTorch does on the CPU. As in PyTorch, an
    axis whose size does not change is copied, whatever scale_factor said.
    """
    dtype = np.dtype(dtype)
    if out_size == in_size:
        return np.eye(in_size, dtype=dtype)
    dst = np.arange(out_size, dtype=dtype)
    if align_corners:
        scale = dtype.type(in_size - 1) / dtype.type(out_size - 1) if out_size > 1 else \
            dtype.type(0)
        src = dst * scale
    else:
        scale = _source_scale(in_size, out_size, scale_factor, dtype)
        src = np.maximum((dst + dtype.type(0.5)) * scale - dtype.type(0.5), 0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    lam = np.clip(src - i0, 0, 1).astype(dtype)
    i1 = np.minimum(i0 + 1, in_size - 1)
    matrix = np.zeros((out_size, in_size), dtype=dtype)
    rows = np.arange(out_size)
    # i0 == i1 at the last pixel: both weights land on it, so add rather than assign
    np.add.at(matrix, (rows, i0), 1 - lam)
    np.add.at(matrix, (rows, i1), lam)
    return matrix


class Interpolate(Function):
    """Resize the last two axes of an (N, C, H, W) batch to (OH, OW).

    forward   x (N, C, H, W) -> y (N, C, OH, OW)
              nearest:   y[n, c, i, j] = x[n, c, ih[i], iw[j]]
              bilinear:  y = A_h @ x @ A_w^T,  A_h (OH, H), A_w (OW, W) of linear weights
    backward  gx = A_h^T @ gy @ A_w  (for nearest, A has a single 1 per row, at ih / iw:
              gradients of every output pixel that copied an input pixel add up there)
    """

    def __init__(self, size, scale_factor, mode, align_corners):
        self.size, self.scale_factor = size, scale_factor
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x):
        xp = get_array_module(x)
        (H, W), (OH, OW) = x.shape[2:], self.size
        sh, sw = self.scale_factor
        if self.mode == "nearest":
            ih, iw = nearest_indices(H, OH, sh), nearest_indices(W, OW, sw)
            a_h, a_w = np.zeros((OH, H), x.dtype), np.zeros((OW, W), x.dtype)
            a_h[np.arange(OH), ih] = 1
            a_w[np.arange(OW), iw] = 1
            self.a_h, self.a_w = xp.asarray(a_h), xp.asarray(a_w)
            return x[:, :, xp.asarray(ih)[:, None], xp.asarray(iw)[None, :]]
        self.a_h = xp.asarray(linear_weights(H, OH, sh, self.align_corners, x.dtype))
        self.a_w = xp.asarray(linear_weights(W, OW, sw, self.align_corners, x.dtype))
        return self.a_h @ (x @ self.a_w.T)

    def backward(self, gy):
        return self.a_h.T @ (gy @ self.a_w)


def _pair(value, name, kind):
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"interpolate: {name} must be one {kind} or a pair (h, w), got "
                         f"{value!r}")
    return items


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: "bool | None" = None) -> Tensor:
    """Resize an (N, C, H, W) batch by nearest or bilinear interpolation, as PyTorch's.

    Args:
        input: (N, C, H, W) float tensor.
        size: output (OH, OW), or one int for both. Give size or scale_factor, not both.
        scale_factor: float or (sh, sw); the output is floor(H * sh) x floor(W * sw), and
            source coordinates use 1 / scale_factor (as PyTorch without
            recompute_scale_factor).
        mode: 'nearest' or 'bilinear'.
        align_corners: bilinear only: map corner pixel centres onto each other (True) or
            treat pixels as areas (False, the default when None).
    Returns:
        A tensor (N, C, OH, OW).
    Raises:
        ValueError: not 4-D, both or neither of size and scale_factor, non-positive
            sizes, an unknown mode, align_corners with 'nearest'.

    >>> y = F.interpolate(md.randn(1, 3, 8, 8), scale_factor=2, mode="bilinear")  # 16x16
    """
    op = "interpolate"
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a float tensor, got dtype {input.dtype}")
    if input.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {input.shape}")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"{op}: mode must be 'nearest' or 'bilinear', got {mode!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{op}: align_corners can only be set with mode 'bilinear', got "
                         f"align_corners={align_corners!r} with mode 'nearest'")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor, got size={size!r}"
                         f" and scale_factor={scale_factor!r}")
    H, W = input.shape[2:]
    if size is not None:
        out = _pair(size, "size", "int")
        if any(not isinstance(s, numbers.Integral) or isinstance(s, bool) or s < 1
               for s in out):
            raise ValueError(f"{op}: size must be positive ints, got {size!r}")
        out, scales = tuple(int(s) for s in out), (None, None)
    else:
        scales = _pair(scale_factor, "scale_factor", "number")
        if any(not isinstance(s, numbers.Real) or isinstance(s, bool) or not s > 0
               or math.isinf(s) for s in scales):
            raise ValueError(f"{op}: scale_factor must be positive numbers, got "
                             f"{scale_factor!r}")
        scales = tuple(float(s) for s in scales)
        out = (math.floor(H * scales[0]), math.floor(W * scales[1]))
        if min(out) < 1:
            raise ValueError(f"{op}: scale_factor {scale_factor!r} gives an empty output "
                             f"{out} for input size ({H}, {W})")
    if H < 1 or W < 1:
        raise ValueError(f"{op}: input has an empty spatial size ({H}, {W})")
    return Interpolate(out, scales, mode, bool(align_corners)).apply(input)

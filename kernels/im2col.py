"""Launchers of im2col.cu: im2col and its adjoint col2im on CuPy arrays.

im2col   x (N, C, H, W) -> cols (N, C, kh, kw, OH, OW)
         cols[n, c, i, j, oh, ow] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw] (0 outside)
         OH = (H + 2*ph - dh*(kh - 1) - 1) // sh + 1, OW likewise.
col2im   cols (N, C, kh, kw, OH, OW) -> gx (N, C, H, W): every pixel sums the entries of
         cols it was copied to (the backward of im2col).

The same arrays as the NumPy im2col/col2im of minidl.ops.conv compute.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from . import loader

__all__ = ["im2col", "col2im", "conv_output_size"]


def conv_output_size(size: int, kernel: int, stride: int, padding: int,
                     dilation: int) -> int:
    """floor((size + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _check(op, a, ndim):
    if a.ndim != ndim:
        raise ValueError(f"{op}: expected a {ndim}-D array, got shape {tuple(a.shape)}")
    loader.kernel_suffix(a.dtype)  # raises TypeError for an unsupported dtype


def im2col(x, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, dh: int, dw: int):
    """Unfold the (kh, kw) windows of ``x`` into cols (N, C, kh, kw, OH, OW).

    Args:
        x: (N, C, H, W) float32/float64 CuPy array.
        kh, kw, sh, sw, ph, pw, dh, dw: kernel size, stride, zero padding, dilation.
    Returns:
        cols, a new C-contiguous array of x's dtype.
    Raises:
        ValueError when the padded input is smaller than the dilated kernel.
    """
    _check("im2col", x, 4)
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH = conv_output_size(H, kh, sh, ph, dh)
    OW = conv_output_size(W, kw, sw, pw, dw)
    if OH < 1 or OW < 1:
        raise ValueError(f"im2col: kernel ({kh}, {kw}) with dilation ({dh}, {dw}) is larger "
                         f"than the padded input ({H + 2 * ph}, {W + 2 * pw})")
    cols = xp.empty((N, C, kh, kw, OH, OW), dtype=x.dtype)
    total = cols.size
    if total:
        k = loader.kernel("im2col.cu", "im2col", x.dtype)
        k((loader.grid_size(total),), (loader.THREADS,),
          (x, cols, np.int64(total), np.int32(H), np.int32(W), np.int32(kh), np.int32(kw),
           np.int32(OH), np.int32(OW), np.int32(sh), np.int32(sw), np.int32(ph),
           np.int32(pw), np.int32(dh), np.int32(dw)))
    return cols


def col2im(cols, x_shape, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, dh: int,
           dw: int):
    """Fold cols (N, C, kh, kw, OH, OW) back onto an (N, C, H, W) array, summing overlaps.

    Args:
        cols: float32/float64 CuPy array shaped as im2col's output for ``x_shape``.
        x_shape: (N, C, H, W) of the image.
        kh, kw, sh, sw, ph, pw, dh, dw: as for im2col.
    Returns:
        gx, a new (N, C, H, W) array of cols' dtype.
    Raises:
        ValueError when cols does not have the shape im2col gives for x_shape.
    """
    _check("col2im", cols, 6)
    xp = get_array_module(cols)
    N, C, H, W = (int(s) for s in x_shape)
    OH = conv_output_size(H, kh, sh, ph, dh)
    OW = conv_output_size(W, kw, sw, pw, dw)
    if tuple(cols.shape) != (N, C, kh, kw, OH, OW):
        raise ValueError(f"col2im: cols has shape {tuple(cols.shape)} but x_shape "
                         f"{tuple(x_shape)} needs {(N, C, kh, kw, OH, OW)}")
    cols = xp.ascontiguousarray(cols)
    gx = xp.empty((N, C, H, W), dtype=cols.dtype)
    total = gx.size
    if total:
        k = loader.kernel("im2col.cu", "col2im", cols.dtype)
        k((loader.grid_size(total),), (loader.THREADS,),
          (cols, gx, np.int64(total), np.int32(H), np.int32(W), np.int32(kh), np.int32(kw),
           np.int32(OH), np.int32(OW), np.int32(sh), np.int32(sw), np.int32(ph),
           np.int32(pw), np.int32(dh), np.int32(dw)))
    return gx

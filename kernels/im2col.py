"""Launchers of im2col.cu: im2col and its adjoint col2im on CuPy arrays.

im2col   x (N, C, H, W) -> cols (N, C, kh, kw, OH, OW)
         cols[n, c, i, j, oh, ow] = x[n, c, oh*sh - pt + i*dh, ow*sw - pl + j*dw] (0 outside)
         OH = (H + pt + pb - dh*(kh - 1) - 1) // sh + 1, OW likewise.
col2im   cols (N, C, kh, kw, OH, OW) -> gx (N, C, H, W): every pixel sums the entries of
         cols it was copied to (the backward of im2col).

The same arrays as im2col/col2im of minidl.ops.conv, in the same memory layout: cols is a
transposed view of a contiguous (C, kh, kw, N, OH, OW) buffer, so
``cols.transpose(1, 2, 3, 0, 4, 5).reshape(C*kh*kw, N*OH*OW)`` is conv2d's GEMM operand
without a copy. Padding ph / pw is an int (both sides) or a (before, after) pair.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from . import loader

__all__ = ["im2col", "col2im", "conv_output_size"]


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int,
                     dilation: int) -> int:
    """floor((size + pad_total - dilation*(kernel - 1) - 1) / stride) + 1."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def _pads(p):
    """(before, after) from an int or a pair."""
    if isinstance(p, (tuple, list)):
        return int(p[0]), int(p[1])
    return int(p), int(p)


def _check(op, a, ndim):
    if a.ndim != ndim:
        raise ValueError(f"{op}: expected a {ndim}-D array, got shape {tuple(a.shape)}")
    loader.kernel_suffix(a.dtype)  # raises TypeError for an unsupported dtype


def im2col(x, kh: int, kw: int, sh: int, sw: int, ph, pw, dh: int, dw: int):
    """Unfold the (kh, kw) windows of ``x`` into cols (N, C, kh, kw, OH, OW).

    Args:
        x: (N, C, H, W) float32/float64 CuPy array.
        kh, kw, sh, sw, dh, dw: kernel size, stride, dilation.
        ph, pw: zero padding of the rows / columns: an int or (before, after).
    Returns:
        cols, a (N, C, kh, kw, OH, OW) view of a new contiguous (C, kh, kw, N, OH, OW)
        array of x's dtype.
    Raises:
        ValueError when the padded input is smaller than the dilated kernel.
    """
    _check("im2col", x, 4)
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    (pt, pb), (pl, pr) = _pads(ph), _pads(pw)
    OH = conv_output_size(H, kh, sh, pt + pb, dh)
    OW = conv_output_size(W, kw, sw, pl + pr, dw)
    if OH < 1 or OW < 1:
        raise ValueError(f"im2col: kernel ({kh}, {kw}) with dilation ({dh}, {dw}) is larger "
                         f"than the padded input ({H + pt + pb}, {W + pl + pr})")
    cols = xp.empty((C, kh, kw, N, OH, OW), dtype=x.dtype)
    total = C * N * OH * OW  # one thread per window; each copies its kh*kw cells
    if total:
        k = loader.kernel("im2col.cu", "im2col", x.dtype)
        k((loader.grid_size(total),), (loader.THREADS,),
          (x, cols, np.int64(total), np.int32(N), np.int32(C), np.int32(H), np.int32(W),
           np.int32(kh), np.int32(kw), np.int32(OH), np.int32(OW), np.int32(sh),
           np.int32(sw), np.int32(pt), np.int32(pl), np.int32(dh), np.int32(dw)))
    return cols.transpose(3, 0, 1, 2, 4, 5)


def col2im(cols, x_shape, kh: int, kw: int, sh: int, sw: int, ph, pw, dh: int, dw: int):
    """Fold cols (N, C, kh, kw, OH, OW) back onto an (N, C, H, W) array, summing overlaps.

    Args:
        cols: float32/float64 CuPy array (fastest when its memory is (C, kh, kw, N, OH, OW),
            as im2col returns it); OH and OW are read from its shape.
        x_shape: (N, C, H, W) of the image.
        kh, kw, sh, sw, ph, pw, dh, dw: as for im2col (only the top/left padding matters).
    Returns:
        gx, a new contiguous (N, C, H, W) array of cols' dtype.
    Raises:
        ValueError when cols does not match x_shape and the kernel size.
    """
    _check("col2im", cols, 6)
    xp = get_array_module(cols)
    N, C, H, W = (int(s) for s in x_shape)
    OH, OW = int(cols.shape[4]), int(cols.shape[5])
    if tuple(cols.shape[:4]) != (N, C, kh, kw):
        raise ValueError(f"col2im: cols has shape {tuple(cols.shape)} but x_shape "
                         f"{tuple(x_shape)} and kernel ({kh}, {kw}) need "
                         f"{(N, C, kh, kw)} in front")
    pt, pl = _pads(ph)[0], _pads(pw)[0]
    # A copy only when cols is not already laid out as (C, kh, kw, N, OH, OW).
    cols_c = xp.ascontiguousarray(cols.transpose(1, 2, 3, 0, 4, 5))
    gx = xp.empty((N, C, H, W), dtype=cols.dtype)
    total = gx.size
    if total:
        k = loader.kernel("im2col.cu", "col2im", cols.dtype)
        k((loader.grid_size(total),), (loader.THREADS,),
          (cols_c, gx, np.int64(total), np.int32(N), np.int32(C), np.int32(H), np.int32(W),
           np.int32(kh), np.int32(kw), np.int32(OH), np.int32(OW), np.int32(sh),
           np.int32(sw), np.int32(pt), np.int32(pl), np.int32(dh), np.int32(dw)))
    return gx

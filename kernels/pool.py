"""Launchers of pool.cu: max pooling (with argmax) and average pooling, both directions.

max_pool2d_forward   x (N, C, H, W) -> y (N, C, OH, OW) and argmax (N, C, OH, OW) int64,
                     the winner of each window as a flat index h*W + w into its (H, W)
                     plane (PyTorch's return_indices); first maximum on ties; padding is
                     -inf, so it never wins.
max_pool2d_backward  gx[n, c].flat[argmax[n, c, i, j]] += gy[n, c, i, j]
avg_pool2d_forward   y = window sum / divisor (PyTorch's count_include_pad, ceil_mode and
                     divisor_override rules; cells added by ceil_mode never count)
avg_pool2d_backward  every pixel gathers gy / divisor of each window that covers it.

Output size (PyTorch): OH = (H + 2*ph - dh*(kh - 1) - 1 [+ sh - 1 with ceil_mode]) // sh + 1,
less one with ceil_mode when the last window would start in the right padding.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from . import loader

__all__ = ["pool_output_size", "max_pool2d_forward", "max_pool2d_backward",
           "avg_pool2d_forward", "avg_pool2d_backward"]


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                     ceil_mode: bool) -> int:
    """Pooling output length along one axis, PyTorch's rule (ceil_mode included)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # a window may not start in the right padding
    return out


def _input(op, x):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected an (N, C, H, W) array, got shape "
                         f"{tuple(x.shape)}")
    loader.kernel_suffix(x.dtype)
    return get_array_module(x).ascontiguousarray(x)


def _sizes(op, H, W, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode):
    OH = pool_output_size(H, kh, sh, ph, dh, ceil_mode)
    OW = pool_output_size(W, kw, sw, pw, dw, ceil_mode)
    if OH < 1 or OW < 1:
        raise ValueError(f"{op}: kernel ({kh}, {kw}) with dilation ({dh}, {dw}) does not fit "
                         f"the padded input ({H + 2 * ph}, {W + 2 * pw})")
    return OH, OW


def max_pool2d_forward(x, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, dh: int,
                       dw: int, ceil_mode: bool = False):
    """Max over each window: returns (y, argmax), argmax int64 flat indices into H*W.

    Args:
        x: (N, C, H, W) float32/float64 CuPy array.
        kh, kw, sh, sw, ph, pw, dh, dw: kernel size, stride, padding, dilation.
        ceil_mode: round the output size up (PyTorch's rule).
    Returns:
        y (N, C, OH, OW) of x's dtype, argmax (N, C, OH, OW) int64.
    """
    x = _input("max_pool2d_forward", x)
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = _sizes("max_pool2d_forward", H, W, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode)
    y = xp.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = xp.empty((N, C, OH, OW), dtype=np.int64)
    total = y.size
    if total:
        k = loader.kernel("pool.cu", "max_pool2d_forward", x.dtype)
        k((loader.grid_size(total),), (loader.THREADS,),
          (x, y, argmax, np.int64(total), np.int32(H), np.int32(W), np.int32(OH),
           np.int32(OW), np.int32(kh), np.int32(kw), np.int32(sh), np.int32(sw),
           np.int32(ph), np.int32(pw), np.int32(dh), np.int32(dw)))
    return y, argmax


def max_pool2d_backward(gy, argmax, x_shape):
    """Route each gy to its window's winner: gx (N, C, H, W), sums where winners repeat.

    Args:
        gy: (N, C, OH, OW) float32/float64 CuPy array.
        argmax: (N, C, OH, OW) int64 from max_pool2d_forward.
        x_shape: (N, C, H, W) of the forward input.
    Returns:
        gx of gy's dtype.
    """
    gy = _input("max_pool2d_backward", gy)
    xp = get_array_module(gy)
    if tuple(argmax.shape) != tuple(gy.shape):
        raise ValueError(f"max_pool2d_backward: argmax has shape {tuple(argmax.shape)} but gy "
                         f"has shape {tuple(gy.shape)}")
    N, C, H, W = (int(s) for s in x_shape)
    if (N, C) != tuple(gy.shape[:2]):
        raise ValueError(f"max_pool2d_backward: x_shape {tuple(x_shape)} does not match gy "
                         f"shape {tuple(gy.shape)}")
    argmax = xp.ascontiguousarray(argmax, dtype=np.int64)
    gx = xp.zeros((N, C, H, W), dtype=gy.dtype)
    total = gy.size
    if total:
        k = loader.kernel("pool.cu", "max_pool2d_backward", gy.dtype)
        k((loader.grid_size(total),), (loader.THREADS,),
          (gy, argmax, gx, np.int64(total), np.int64(gy.shape[2] * gy.shape[3]),
           np.int64(H * W)))
    return gx


def _avg_args(H, W, OH, OW, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override):
    if divisor_override is not None and int(divisor_override) <= 0:
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got "
                         f"{divisor_override!r}")
    return (np.int32(H), np.int32(W), np.int32(OH), np.int32(OW), np.int32(kh),
            np.int32(kw), np.int32(sh), np.int32(sw), np.int32(ph), np.int32(pw),
            np.int32(1 if count_include_pad else 0),
            np.int32(0 if divisor_override is None else int(divisor_override)))


def avg_pool2d_forward(x, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                       ceil_mode: bool = False, count_include_pad: bool = True,
                       divisor_override=None):
    """Mean over each window (PyTorch's divisor rules): y (N, C, OH, OW).

    Args:
        x: (N, C, H, W) float32/float64 CuPy array.
        kh, kw, sh, sw, ph, pw: kernel size, stride, zero padding.
        ceil_mode, count_include_pad, divisor_override: as torch's avg_pool2d.
    Returns:
        y of x's dtype.
    """
    x = _input("avg_pool2d_forward", x)
    xp = get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = _sizes("avg_pool2d_forward", H, W, kh, kw, sh, sw, ph, pw, 1, 1, ceil_mode)
    y = xp.empty((N, C, OH, OW), dtype=x.dtype)
    total = y.size
    if total:
        k = loader.kernel("pool.cu", "avg_pool2d_forward", x.dtype)
        k((loader.grid_size(total),), (loader.THREADS,),
          (x, y, np.int64(total)) + _avg_args(H, W, OH, OW, kh, kw, sh, sw, ph, pw,
                                               count_include_pad, divisor_override))
    return y


def avg_pool2d_backward(gy, x_shape, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                        ceil_mode: bool = False, count_include_pad: bool = True,
                        divisor_override=None):
    """Gradient of avg_pool2d_forward: gx (N, C, H, W) from gy (N, C, OH, OW).

    Args:
        gy: float32/float64 CuPy array shaped as the forward output.
        x_shape: (N, C, H, W) of the forward input.
        the rest: as for avg_pool2d_forward.
    Returns:
        gx of gy's dtype.
    """
    gy = _input("avg_pool2d_backward", gy)
    xp = get_array_module(gy)
    N, C, H, W = (int(s) for s in x_shape)
    OH, OW = _sizes("avg_pool2d_backward", H, W, kh, kw, sh, sw, ph, pw, 1, 1, ceil_mode)
    if tuple(gy.shape) != (N, C, OH, OW):
        raise ValueError(f"avg_pool2d_backward: gy has shape {tuple(gy.shape)} but x_shape "
                         f"{tuple(x_shape)} gives {(N, C, OH, OW)}")
    gx = xp.empty((N, C, H, W), dtype=gy.dtype)
    total = gx.size
    if total:
        k = loader.kernel("pool.cu", "avg_pool2d_backward", gy.dtype)
        k((loader.grid_size(total),), (loader.THREADS,),
          (gy, gx, np.int64(total)) + _avg_args(H, W, OH, OW, kh, kw, sh, sw, ph, pw,
                                                 count_include_pad, divisor_override))
    return gx

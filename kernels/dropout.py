"""Launchers of dropout.cu: a reproducible mask from (seed, offset), applied and undone.

dropout_mask      mask[i] = u(seed, offset + i) >= p     (bool, any shape; u uniform [0, 1))
dropout_forward   mask as above,  y = x * mask / (1 - p)        -> (y, mask)
dropout_backward  gx = gy * mask / (1 - p)

The mask is a pure function of (seed, offset, element index): the same seed gives the
same mask on every run and every GPU, and a caller that makes several draws with one
seed advances ``offset`` by the number of elements drawn (as PyTorch's Philox offset).
``dropout_mask_numpy`` is the same hash on the CPU, for tests and for readers.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from . import loader

__all__ = ["dropout_mask", "dropout_forward", "dropout_backward", "dropout_mask_numpy"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _check_p(op, p):
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{op}: p must be in [0, 1], got {p!r}")
    return float(p)


def _seed_offset(op, seed, offset):
    for name, v in (("seed", seed), ("offset", offset)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise TypeError(f"{op}: {name} must be a non-negative int, got {v!r}")
    return np.uint64(int(seed) % 2**64), np.uint64(int(offset) % 2**64)


def dropout_mask(shape, p: float, seed: int, offset: int = 0, xp=None):
    """A bool mask of ``shape``, True (kept) with probability 1 - p, from (seed, offset).

    Args:
        shape: the mask's shape, e.g. (N, C, 1, 1) for dropout2d.
        p: probability of dropping an element.
        seed, offset: non-negative ints; element i uses the counter offset + i.
        xp: the array module that allocates (cupy by default).
    """
    p = _check_p("dropout_mask", p)
    seed, offset = _seed_offset("dropout_mask", seed, offset)
    if xp is None:
        from ..backend import import_cupy
        xp = import_cupy()
    mask = xp.empty(tuple(int(s) for s in shape), dtype=np.bool_)
    total = mask.size
    if total:
        k = loader.kernel("dropout.cu", "dropout_mask")
        k((loader.grid_size(total),), (loader.THREADS,),
          (mask, np.int64(total), seed, offset, np.float64(p)))
    return mask


def dropout_forward(x, p: float, seed: int, offset: int = 0):
    """Draw the mask and apply it in one pass: returns (y, mask) with y = x * mask / (1-p)."""
    p = _check_p("dropout_forward", p)
    seed, offset = _seed_offset("dropout_forward", seed, offset)
    loader.kernel_suffix(x.dtype)
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    y = xp.empty(x.shape, dtype=x.dtype)
    mask = xp.empty(x.shape, dtype=np.bool_)
    total = x.size
    if total:
        k = loader.kernel("dropout.cu", "dropout_forward", x.dtype)
        k((loader.grid_size(total),), (loader.THREADS,),
          (x, y, mask, np.int64(total), seed, offset, np.float64(p), x.dtype.type(1.0 - p)))
    return y, mask


def dropout_backward(gy, mask, p: float):
    """gx = gy * mask / (1 - p), for the mask that dropout_forward returned."""
    p = _check_p("dropout_backward", p)
    loader.kernel_suffix(gy.dtype)
    xp = get_array_module(gy)
    if tuple(mask.shape) != tuple(gy.shape):
        raise ValueError(f"dropout_backward: mask has shape {tuple(mask.shape)} but gy has "
                         f"shape {tuple(gy.shape)}")
    gy = xp.ascontiguousarray(gy)
    mask = xp.ascontiguousarray(mask, dtype=np.bool_)
    gx = xp.empty(gy.shape, dtype=gy.dtype)
    total = gy.size
    if total:
        k = loader.kernel("dropout.cu", "dropout_backward", gy.dtype)
        k((loader.grid_size(total),), (loader.THREADS,),
          (gy, mask, gx, np.int64(total), gy.dtype.type(1.0 - p)))
    return gx


def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_mask_numpy(shape, p: float, seed: int, offset: int = 0) -> np.ndarray:
    """The mask dropout_mask draws, computed with NumPy (uint64 arithmetic wraps as in C)."""
    p = _check_p("dropout_mask_numpy", p)
    seed, offset = _seed_offset("dropout_mask_numpy", seed, offset)
    n = int(np.prod(shape, dtype=np.int64))
    with np.errstate(over="ignore"):
        key = _mix(np.array(seed + _GOLDEN, dtype=np.uint64))
        counter = offset + np.arange(n, dtype=np.uint64) + np.uint64(1)
        bits = _mix(key + counter * _GOLDEN)
    u = (bits >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return (u >= p).reshape(shape)

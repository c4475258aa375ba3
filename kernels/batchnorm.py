"""Launchers of batchnorm.cu: channel statistics, normalise + affine, fused backward.

x is (N, C) or (N, C, *spatial); channel c holds M = N * prod(spatial) values.

batch_norm_stats     mean[c] = sum(x) / M,  var[c] = sum((x - mean)^2) / M  (biased)
batch_norm_forward   y = (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c]
batch_norm_backward  with xhat = (x - mean) / sqrt(var + eps), for batch statistics:
                     gb = sum(gy),  gw = sum(gy * xhat)       per channel
                     gx = weight / sqrt(var + eps) * (gy - gb/M - xhat * gw/M)

The statistics and the backward's two channel sums split each channel over several
blocks (``_splits``): one launch writes per-block partial sums, a second adds each
channel's partials in a fixed order; the backward's gx is then a third, elementwise
launch. weight and bias may be None (affine=False): ones and zeros are used.
In eval mode (running statistics) the gradient is gy * weight / sqrt(var + eps), plain
array math that needs no kernel.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from . import loader

__all__ = ["batch_norm_stats", "batch_norm_forward", "batch_norm_backward", "BN_THREADS"]

BN_THREADS = 512  # must equal BN_THREADS in batchnorm.cu (the shared-memory size)
# Blocks to aim for in the channel sums: a few per multiprocessor of a large GPU (132 on
# an H100), so that every one is busy however few the channels are.
TARGET_BLOCKS = 1024
# ... but at least this many values per thread, or the partial sums cost more than the
# parallelism saves.
MIN_VALUES_PER_THREAD = 8


def _layout(op, x):
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an (N, C, ...) array, got shape {tuple(x.shape)}")
    loader.kernel_suffix(x.dtype)
    N, C = int(x.shape[0]), int(x.shape[1])
    S = int(np.prod(x.shape[2:], dtype=np.int64)) if x.ndim > 2 else 1
    return get_array_module(x).ascontiguousarray(x), N, C, S


def _per_channel(op, name, a, C, x):
    """A contiguous (C,) array of x's dtype (ones/zeros stand in for a missing one)."""
    xp = get_array_module(x)
    if a is None:
        return (xp.ones if name == "weight" else xp.zeros)(C, dtype=x.dtype)
    if tuple(a.shape) != (C,):
        raise ValueError(f"{op}: {name} must have shape ({C},) for {C} channels, got "
                         f"{tuple(a.shape)}")
    return xp.ascontiguousarray(a, dtype=x.dtype)


def _splits(C: int, M: int) -> int:
    """How many blocks share each channel's M values in the channel sums."""
    per_block = BN_THREADS * MIN_VALUES_PER_THREAD
    return max(1, min(-(-M // per_block), -(-TARGET_BLOCKS // C)))


def _channel_sums(kernel, C, M, arrays, N, S):
    """Launch a partial-sum kernel on a (splits, C) grid of blocks:
    kernel(*arrays, partial, N, C, S, splits). Returns the (C, splits, 2) float64
    partial sums, and splits."""
    xp = get_array_module(arrays[0])
    splits = _splits(C, M)
    partial = xp.empty((C, splits, 2), dtype=np.float64)
    kernel((splits, min(C, 65535)), (BN_THREADS,),
           (*arrays, partial, np.int32(N), np.int32(C), np.int64(S), np.int32(splits)))
    return partial, splits


def batch_norm_stats(x):
    """Per-channel mean and biased variance of x: two (C,) arrays of x's dtype."""
    x, N, C, S = _layout("batch_norm_stats", x)
    xp = get_array_module(x)
    mean = xp.empty(C, dtype=x.dtype)
    var = xp.empty(C, dtype=x.dtype)
    if N * S == 0:
        raise ValueError(f"batch_norm_stats: no values per channel in shape {tuple(x.shape)}")
    partial, splits = _channel_sums(
        loader.kernel("batchnorm.cu", "batch_norm_partial_stats", x.dtype), C, N * S, (x,),
        N, S)
    k = loader.kernel("batchnorm.cu", "batch_norm_finish_stats", x.dtype)
    k((loader.grid_size(C),), (loader.THREADS,),
      (x, partial, mean, var, np.int32(N), np.int32(C), np.int64(S), np.int32(splits)))
    return mean, var


def batch_norm_forward(x, mean, var, weight, bias, eps: float):
    """Normalise with the given statistics and apply the affine map: y of x's shape.

    Args:
        x: (N, C, ...) float32/float64 CuPy array.
        mean, var: (C,) batch statistics (training) or running statistics (eval).
        weight, bias: (C,) affine parameters, or None.
        eps: added to var before the square root.
    """
    x, N, C, S = _layout("batch_norm_forward", x)
    xp = get_array_module(x)
    args = [_per_channel("batch_norm_forward", n, a, C, x)
            for n, a in (("mean", mean), ("var", var), ("weight", weight), ("bias", bias))]
    y = xp.empty(x.shape, dtype=x.dtype)
    total = y.size
    if total:
        k = loader.kernel("batchnorm.cu", "batch_norm_forward", x.dtype)
        k((loader.grid_size(total),), (loader.THREADS,),
          (x, *args, y, x.dtype.type(eps), np.int64(total), np.int32(C), np.int64(S)))
    return y


def batch_norm_backward(gy, x, mean, var, weight, eps: float):
    """Fused training-mode backward: returns (gx, gw, gb), gw and gb of shape (C,).

    Args:
        gy: upstream gradient, shape of x.
        x: the forward input.
        mean, var: the batch statistics the forward normalised with (biased var).
        weight: (C,) or None (then gx uses weight 1; gw, gb are still returned).
        eps: as in the forward.
    """
    x, N, C, S = _layout("batch_norm_backward", x)
    xp = get_array_module(x)
    if tuple(gy.shape) != tuple(x.shape) or gy.dtype != x.dtype:
        raise ValueError(f"batch_norm_backward: gy has shape {tuple(gy.shape)} and dtype "
                         f"{gy.dtype}, x has {tuple(x.shape)} and {x.dtype}")
    gy = xp.ascontiguousarray(gy)
    mean, var, weight = (_per_channel("batch_norm_backward", n, a, C, x)
                         for n, a in (("mean", mean), ("var", var), ("weight", weight)))
    gx = xp.empty(x.shape, dtype=x.dtype)
    gw = xp.empty(C, dtype=x.dtype)
    gb = xp.empty(C, dtype=x.dtype)
    if N * S == 0:
        raise ValueError(f"batch_norm_backward: no values per channel in shape "
                         f"{tuple(x.shape)}")
    eps = x.dtype.type(eps)
    partial, splits = _channel_sums(
        loader.kernel("batchnorm.cu", "batch_norm_partial_grads", x.dtype), C, N * S,
        (gy, x, mean, var, eps), N, S)
    k = loader.kernel("batchnorm.cu", "batch_norm_finish_grads", x.dtype)
    k((loader.grid_size(C),), (loader.THREADS,), (partial, gw, gb, np.int32(C),
                                                  np.int32(splits)))
    k = loader.kernel("batchnorm.cu", "batch_norm_input_grad", x.dtype)
    k((loader.grid_size(gx.size),), (loader.THREADS,),
      (gy, x, mean, var, weight, eps, gw, gb, gx, np.int64(gx.size), np.int32(C),
       np.int64(S)))
    return gx, gw, gb

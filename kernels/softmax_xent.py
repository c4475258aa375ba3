"""Launchers of softmax_xent.cu: softmax cross-entropy with integer targets.

softmax_xent_forward   logits (N, C) or (N, C, *d), target (N,) or (N, *d) ints ->
                       loss (N,) or (N, *d) per row, prob (softmax over C, logits' shape)
                       loss = -sum_j q_j log softmax_j,  q = (1 - eps) onehot(t) + eps / C
                       rows whose target is ignore_index have loss 0.
softmax_xent_backward  grad = (prob - q) * scale per row; 0 on ignored rows. ``scale`` is
                       the upstream gradient of each row's loss (for a mean reduction:
                       gy / number of counted rows), a number or an array of loss's shape.

Labels outside [0, C) give NaN losses: the public cross_entropy checks them first.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from . import loader

__all__ = ["softmax_xent_forward", "softmax_xent_backward", "XENT_THREADS"]

XENT_THREADS = 128  # must equal XENT_THREADS in softmax_xent.cu (the shared-memory size)


def _rows(op, logits, target):
    """(N*d, C) rows of logits and the matching flat int64 targets."""
    loader.kernel_suffix(logits.dtype)
    xp = get_array_module(logits)
    if logits.ndim < 2:
        raise ValueError(f"{op}: logits must be (N, C) or (N, C, ...), got shape "
                         f"{tuple(logits.shape)}")
    expected = (logits.shape[0],) + tuple(logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"{op}: target must have shape {expected} for logits of shape "
                         f"{tuple(logits.shape)}, got {tuple(target.shape)}")
    C = int(logits.shape[1])
    rows = logits if logits.ndim == 2 else xp.moveaxis(logits, 1, -1).reshape(-1, C)
    return (xp.ascontiguousarray(rows), xp.ascontiguousarray(target.reshape(-1),
                                                             dtype=np.int64), C)


def _unrows(a, shape):
    """Undo _rows for an (N*d, C) array: back to (N, C, *d)."""
    if len(shape) == 2:
        return a
    xp = get_array_module(a)
    moved = a.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return xp.ascontiguousarray(xp.moveaxis(moved, -1, 1))


def softmax_xent_forward(logits, target, ignore_index: int = -100,
                         label_smoothing: float = 0.0):
    """Per-row loss and the softmax: returns (loss, prob).

    Args:
        logits: (N, C) or (N, C, *d) float32/float64 CuPy array.
        target: int array of shape (N,) or (N, *d) with class indices.
        ignore_index: rows with this target have loss 0 (and zero gradient).
        label_smoothing: eps in [0, 1].
    Returns:
        loss of target's shape and logits' dtype; prob of logits' shape.
    """
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"softmax_xent_forward: label_smoothing must be in [0, 1], got "
                         f"{label_smoothing!r}")
    rows, flat_target, C = _rows("softmax_xent_forward", logits, target)
    xp = get_array_module(rows)
    N = rows.shape[0]
    loss = xp.empty(N, dtype=rows.dtype)
    prob = xp.empty(rows.shape, dtype=rows.dtype)
    if N and C:
        k = loader.kernel("softmax_xent.cu", "softmax_xent_forward", rows.dtype)
        k((min(N, 65535),), (XENT_THREADS,),
          (rows, flat_target, loss, prob, np.int32(N), np.int32(C), np.int64(ignore_index),
           np.float64(label_smoothing)))
    return loss.reshape(target.shape), _unrows(prob, logits.shape)


def softmax_xent_backward(prob, target, scale, ignore_index: int = -100,
                          label_smoothing: float = 0.0):
    """Gradient with respect to the logits: (prob - q) * scale, zero on ignored rows.

    Args:
        prob: the softmax from softmax_xent_forward.
        target: as in the forward.
        scale: a number or an array broadcastable to target's shape: the upstream
            gradient of each row's loss.
        ignore_index, label_smoothing: as in the forward.
    Returns:
        grad of prob's shape and dtype.
    """
    rows, flat_target, C = _rows("softmax_xent_backward", prob, target)
    xp = get_array_module(rows)
    scale = xp.ascontiguousarray(
        xp.broadcast_to(xp.asarray(scale, dtype=rows.dtype), tuple(target.shape)).reshape(-1))
    grad = xp.empty(rows.shape, dtype=rows.dtype)
    total = grad.size
    if total:
        k = loader.kernel("softmax_xent.cu", "softmax_xent_backward", rows.dtype)
        k((loader.grid_size(total),), (loader.THREADS,),
          (rows, flat_target, scale, grad, np.int64(total), np.int32(C),
           np.int64(ignore_index), np.float64(label_smoothing)))
    return _unrows(grad, prob.shape)

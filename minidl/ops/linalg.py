"""Matrix product (batched, with NumPy's broadcasting of the batch dims).

forward   y = a @ b;  a (..., n, k), b (..., k, m) -> y (..., n, m). A 1-D a is a row
          (1, k) and a 1-D b a column (k, 1), removed again from the result.
backward  ga = gy @ b^T,  gb = a^T @ gy, each summed back over broadcast batch dims.
"""
from __future__ import annotations

import numpy as np

from ..function import Function
from ..tensor import Tensor, as_tensor_like
from .reduce import sum_to


def _mT(t: Tensor) -> Tensor:
    return t.transpose(-1, -2)


class MatMul(Function):
    backward_on_tensors = True

    def forward(self, a, b):
        return a @ b

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(gy @ _mT(b), a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(_mT(a) @ gy, b.shape)
        return ga, gb


def matmul(a, b) -> Tensor:
    """Matrix product with PyTorch's rules for 1-D and batched operands."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"matmul: expected a Tensor operand, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b, "matmul")
    if not isinstance(b, Tensor):
        b = as_tensor_like(b, a, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    squeeze_rows = a.ndim == 1
    squeeze_cols = b.ndim == 1
    a2 = a.unsqueeze(0) if squeeze_rows else a
    b2 = b.unsqueeze(-1) if squeeze_cols else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul: inner dimensions differ: a has shape {a.shape} "
                         f"({a2.shape[-1]} columns), b has shape {b.shape} "
                         f"({b2.shape[-2]} rows)")
    if a2.ndim > 2 or b2.ndim > 2:     # batch dims to check (costs microseconds)
        try:
            np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: batch shapes of {a.shape} and {b.shape} do not "
                             f"broadcast") from None
    y = MatMul().apply(a2, b2)
    if squeeze_cols:
        y = y.squeeze(-1)
    if squeeze_rows:
        y = y.squeeze(-2 if y.ndim >= 2 else 0)
    return y

"""Dropout layers: Dropout (single values), Dropout2d (whole channels), DropPath (whole
residual branches per sample, "stochastic depth").

All are inverted dropout: kept values are scaled by 1/(1-p) in training, so nothing
changes in eval mode, where the layers return their input.
"""
from __future__ import annotations

import numbers

from ...ops import dropout as _dropout
from ...tensor import Tensor
from ..module import Module

__all__ = ["Dropout", "Dropout2d", "DropPath"]


class _DropoutBase(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0 <= p <= 1:
            raise ValueError(f"{type(self).__name__}: dropout probability has to be "
                             f"between 0 and 1, but got {p!r}")
        self.p = float(p)
        # Accepted for PyTorch compatibility; the output is always a new tensor, since
        # overwriting the input would break the graph that produced it.
        self.inplace = bool(inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutBase):
    """Zeroes each value with probability p in training, scaling the rest by 1/(1-p).

    >>> drop = nn.Dropout(0.5)
    >>> drop.eval()(x) is x
    True
    """

    def forward(self, input: Tensor) -> Tensor:
        return _dropout.dropout(input, self.p, training=self.training)


class Dropout2d(_DropoutBase):
    """Zeroes whole channels of an (N, C, H, W) batch with probability p in training.

    >>> nn.Dropout2d(0.2)(md.randn(8, 16, 4, 4)).shape
    (8, 16, 4, 4)
    """

    def forward(self, input: Tensor) -> Tensor:
        return _dropout.dropout2d(input, self.p, training=self.training)


class DropPath(Module):
    """Stochastic depth: drops a sample's whole residual branch with probability p.

    Put it at the end of a residual branch: ``x + self.drop_path(self.branch(x))``.

    >>> nn.DropPath(0.1)(md.randn(8, 16, 4, 4)).shape
    (8, 16, 4, 4)
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0 <= p <= 1:
            raise ValueError(f"DropPath: drop probability has to be between 0 and 1, but "
                             f"got {p!r}")
        self.p = float(p)

    def forward(self, input: Tensor) -> Tensor:
        return _dropout.drop_path(input, self.p, training=self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"

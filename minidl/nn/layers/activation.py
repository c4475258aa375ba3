"""Activation layers: thin Modules over minidl/ops/activation.py (no parameters).

``inplace`` is accepted where PyTorch has it, for compatibility; the result is always a
new tensor, because overwriting the input would corrupt the graph that made it.
"""
from __future__ import annotations

from ..._checks import real_arg
from ...ops import activation as _act
from ...tensor import Tensor
from ..module import Module

__all__ = ["ReLU", "ReLU6", "LeakyReLU", "Sigmoid", "Tanh", "Hardtanh", "GELU", "SiLU",
           "Softmax", "LogSoftmax"]


def _inplace_repr(inplace: bool) -> str:
    return "inplace=True" if inplace else ""


class ReLU(Module):
    """max(x, 0), elementwise. >>> nn.ReLU()(md.tensor([-1.0, 2.0]))  # [0, 2]"""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return _act.relu(input)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace)


class LeakyReLU(Module):
    """max(x, 0) + negative_slope * min(x, 0). >>> nn.LeakyReLU(0.2)"""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input: Tensor) -> Tensor:
        return _act.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace
                                                          else "")


class Hardtanh(Module):
    """x clipped to [min_val, max_val]. >>> nn.Hardtanh(-2.0, 2.0)"""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        real_arg("Hardtanh", "min_val", min_val)
        real_arg("Hardtanh", "max_val", max_val)
        if not min_val < max_val:
            raise ValueError(f"Hardtanh: min_val must be less than max_val, got "
                             f"min_val={min_val}, max_val={max_val}")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input: Tensor) -> Tensor:
        return _act.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + (
            ", inplace=True" if self.inplace else "")


class ReLU6(Hardtanh):
    """min(max(x, 0), 6) (MobileNet). >>> nn.ReLU6()"""

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace)


class Sigmoid(Module):
    """1 / (1 + exp(-x)). >>> nn.Sigmoid()(md.zeros(2))  # [0.5, 0.5]"""

    def forward(self, input: Tensor) -> Tensor:
        return _act.sigmoid(input)


class Tanh(Module):
    """tanh(x). >>> nn.Tanh()(md.zeros(2))  # [0, 0]"""

    def forward(self, input: Tensor) -> Tensor:
        return _act.tanh(input)


class GELU(Module):
    """x * Phi(x), exact (approximate='none') or with the tanh formula ('tanh').

    >>> nn.GELU(approximate="tanh")
    """

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got "
                             f"{approximate!r}")
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return _act.gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """x * sigmoid(x) (also called swish). >>> nn.SiLU()"""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return _act.silu(input)

    def extra_repr(self) -> str:
        return _inplace_repr(self.inplace)


def _implicit_dim(ndim: int) -> int:
    # PyTorch's legacy rule for Softmax(dim=None): the class axis of (C), (N, C), (C, H, W)
    # and (N, C, H, W) inputs.
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """exp(x) / sum(exp(x)) along ``dim`` (pass it; None uses PyTorch's legacy choice).

    >>> nn.Softmax(dim=1)(md.randn(4, 10)).sum(1)   # all ones
    """

    def __init__(self, dim: "int | None" = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = self.dim if self.dim is not None else _implicit_dim(getattr(input, "ndim", 0))
        return _act.softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax(x)) along ``dim``, stable for large logits.

    >>> nn.LogSoftmax(dim=1)(md.randn(4, 10)).exp().sum(1)   # all ones
    """

    def __init__(self, dim: "int | None" = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        dim = self.dim if self.dim is not None else _implicit_dim(getattr(input, "ndim", 0))
        return _act.log_softmax(input, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

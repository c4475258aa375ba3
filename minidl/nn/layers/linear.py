"""Linear: y = x W^T + b, the fully connected layer, and its function ``linear``."""
from __future__ import annotations

import math

from ..._checks import same_device
from ...backend import get_default_device
from ...function import Function
from ...tensor import Tensor, empty, get_default_dtype
from .. import init
from ..module import Module
from ..parameter import Parameter

__all__ = ["Linear", "linear", "LinearFunction"]


class LinearFunction(Function):
    """y = x W^T + b as one graph node.

    forward   x (*, in), W (out, in), b (out,) -> y (*, out) = x @ W^T + b
    backward  gx = gy @ W;  gW = gy^T @ x and gb = sum of gy, both over all leading dims.

    The same arithmetic as ``x @ weight.T + bias`` written with the primitive ops, in one
    node instead of three (permute, matmul, add) and four more in backward: in a LeNet-5
    step most of the time not spent in convolutions is this per-node bookkeeping. The
    backward is written with Tensor ops, so it can still be differentiated twice.
    """
    backward_on_tensors = True

    def forward(self, x, weight, bias=None):
        y = x @ weight.T
        if bias is not None:
            y += bias           # in place on the fresh product: no second output array
        return y

    def backward(self, gy):
        x, weight = self.inputs[0], self.inputs[1]
        out_features, in_features = weight.shape
        gx = gy @ weight if self.needs_input_grad[0] else None
        rows = gy.reshape(-1, out_features)           # the leading dims as one batch axis
        gw = rows.T @ x.reshape(-1, in_features) if self.needs_input_grad[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (rows.sum(0) if self.needs_input_grad[2] else None)


def linear(input: Tensor, weight: Tensor, bias: "Tensor | None" = None) -> Tensor:
    """y = input @ weight.T + bias.

    forward   input (*, in), weight (out, in), bias (out,) -> y (*, out)
    backward  g_input = gy @ W, g_W = gy^T x (summed over the leading dims), g_b = gy
              summed over the leading dims (see LinearFunction: one node, and its
              backward is made of tensor ops, so it can be differentiated twice).

    Raises:
        TypeError: input, weight or bias is not a float Tensor.
        ValueError: input's last dim differs from weight's in_features, or bias is not
            (out_features,).

    >>> F.linear(md.randn(5, 4), md.randn(3, 4), md.zeros(3)).shape
    (5, 3)
    """
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"linear: expected Tensors for input and weight, got "
                        f"{type(input).__name__} and {type(weight).__name__}")
    same_device("linear", input, weight=weight, bias=bias)
    for name, t in (("input", input), ("weight", weight)):
        if t.dtype.kind != "f":
            raise TypeError(f"linear: {name} must be a float tensor, got dtype {t.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got "
                         f"shape {weight.shape}")
    if input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {input.shape[-1] if input.ndim else 0} "
                         f"features (shape {input.shape}) but weight expects "
                         f"{weight.shape[1]} (weight shape {weight.shape})")
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError(f"linear: bias must be a Tensor or None, got "
                            f"{type(bias).__name__}")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got "
                             f"{bias.shape}")
        if bias.dtype.kind != "f":
            raise TypeError(f"linear: bias must be a float tensor, got dtype {bias.dtype}")
    fn = LinearFunction()
    return fn.apply(input, weight) if bias is None else fn.apply(input, weight, bias)


def default_init_(weight, bias) -> None:
    """PyTorch's default init of Linear and Conv layers: weight kaiming_uniform_(a=sqrt(5)),
    that is U(+-1/sqrt(fan_in)), and bias U(+-1/sqrt(fan_in))."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


class Linear(Module):
    """Fully connected layer: y = x W^T + b, W of shape (out_features, in_features).

    Default init as in PyTorch: W ~ kaiming_uniform_(a=sqrt(5)), i.e.
    U(-1/sqrt(in_features), 1/sqrt(in_features)), and b ~ U(-1/sqrt(in), 1/sqrt(in)).

    Args:
        in_features: size of each input sample's last dim.
        out_features: size of each output sample's last dim.
        bias: learn an additive bias (default True).
        device, dtype: where and how the parameters are made (default device, float32).

    >>> fc = nn.Linear(20, 30)
    >>> fc(md.randn(128, 20)).shape
    (128, 30)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Linear: {name} must be a non-negative int, got {value!r}")
        self.in_features, self.out_features = in_features, out_features
        device = device if device is not None else get_default_device()
        dtype = dtype if dtype is not None else get_default_dtype()
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default init (see the class docstring)."""
        default_init_(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")

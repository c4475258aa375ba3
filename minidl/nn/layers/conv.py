"""Conv2d and ConvTranspose2d layers over minidl/ops/conv.py.

A layer owns the weight, (out_channels, in_channels/groups, kh, kw) for Conv2d and
(in_channels, out_channels/groups, kh, kw) for ConvTranspose2d, and the bias; the
im2col arithmetic and the gradients are in the op file.
"""
from __future__ import annotations

import numbers

from ...backend import get_default_device
from ...ops import conv as _conv
from ...ops.shape import cat, pad
from ...tensor import Tensor, empty, get_default_dtype
from ..module import Module
from ..parameter import Parameter
from .linear import default_init_

__all__ = ["Conv2d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pair(layer: str, name: str, value, minimum: int) -> tuple:
    pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value) \
        if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or any(
            not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < minimum
            for v in pair):
        kind = "positive" if minimum > 0 else "non-negative"
        raise ValueError(f"{layer}: {name} must be a {kind} int or a pair of them, got "
                         f"{value!r}")
    return tuple(int(v) for v in pair)


def _circular_pad(x: Tensor, pw: tuple, ph: tuple) -> Tensor:
    """Wrap-around padding of the last two dims: the left pad is the right edge, etc."""
    for dim, (lo, hi) in ((3, pw), (2, ph)):
        n = x.shape[dim]
        if lo > n or hi > n:
            raise ValueError(f"Conv2d: circular padding ({lo}, {hi}) is larger than the "
                             f"input size {n} (input shape {x.shape})")
        index = [slice(None)] * 4
        parts = []
        if lo:
            index[dim] = slice(n - lo, n)
            parts.append(x[tuple(index)])
        parts.append(x)
        if hi:
            index[dim] = slice(0, hi)
            parts.append(x[tuple(index)])
        x = cat(parts, dim) if len(parts) > 1 else x
    return x


class _ConvNd(Module):
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 output_padding, groups, bias, padding_mode, device, dtype):
        super().__init__()
        name = type(self).__name__
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels),
                           ("groups", groups)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or \
                    value < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels must be divisible by groups, got "
                             f"in_channels={in_channels}, groups={groups}")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels must be divisible by groups, got "
                             f"out_channels={out_channels}, groups={groups}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got "
                             f"{padding_mode!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(name, "kernel_size", kernel_size, 1)
        self.stride = _pair(name, "stride", stride, 1)
        self.dilation = _pair(name, "dilation", dilation, 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a pair, 'same' or "
                                 f"'valid', got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 f"convolutions (stride={self.stride})")
            self.padding = padding
        else:
            self.padding = _pair(name, "padding", padding, 0)
        self.output_padding = _pair(name, "output_padding", output_padding, 0)
        self.groups = int(groups)
        self.padding_mode = padding_mode
        device = device if device is not None else get_default_device()
        dtype = dtype if dtype is not None else get_default_dtype()
        kh, kw = self.kernel_size
        shape = (in_channels, out_channels // groups, kh, kw) if self._transposed else \
            (out_channels, in_channels // groups, kh, kw)
        self.weight = Parameter(empty(*shape, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: kaiming_uniform_(a=sqrt(5)) weight, U(+-1/sqrt(fan_in)) bias."""
        default_init_(self.weight, self.bias)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation) of (N, C, H, W) batches.

    y[n, o] = bias[o] + sum over c in o's group, i, j of weight[o, c, i, j] *
    x_padded[n, c, s*h + d*i, s*w + d*j];  OH = floor((H + 2p - d(k-1) - 1) / s) + 1.

    Args:
        in_channels, out_channels: C and O.
        kernel_size, stride, dilation: int or (h, w).
        padding: int, (h, w), 'valid' or 'same' (stride 1).
        groups: channel groups (in_channels and out_channels must divide by it).
        bias: learn a per-output-channel bias.
        padding_mode: 'zeros', 'reflect', 'replicate' or 'circular'.
        device, dtype: where and how the parameters are made (default device, float32).

    >>> conv = nn.Conv2d(3, 16, 3, padding=1)
    >>> conv(md.randn(2, 3, 32, 32)).shape
    (2, 16, 32, 32)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, dilation=1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         0, groups, bias, padding_mode, device, dtype)

    def _explicit_padding(self) -> tuple:
        """((top, bottom), (left, right)) for the non-zero padding modes."""
        if self.padding == "valid":
            return (0, 0), (0, 0)
        if self.padding == "same":
            pairs = []
            for k, d in zip(self.kernel_size, self.dilation):
                total = d * (k - 1)
                pairs.append((total // 2, total - total // 2))
            return tuple(pairs)
        return tuple((p, p) for p in self.padding)

    def forward(self, input: Tensor) -> Tensor:
        if self.padding_mode == "zeros":
            return _conv.conv2d(input, self.weight, self.bias, self.stride, self.padding,
                                self.dilation, self.groups)
        if not isinstance(input, Tensor):
            raise TypeError(f"Conv2d: input must be a minidl Tensor, got "
                            f"{type(input).__name__}")
        if input.ndim != 4:
            raise ValueError(f"Conv2d: expected a 4-D (N, C, H, W) input, got shape "
                             f"{input.shape}")
        ph, pw = self._explicit_padding()
        if self.padding_mode == "circular":
            x = _circular_pad(input, pw, ph)
        else:
            x = pad(input, pw + ph, mode=self.padding_mode)
        return _conv.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation,
                            self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (the gradient of Conv2d with respect to its input).

    OH = (H - 1) * s - 2p + d(k - 1) + output_padding + 1. Weight (in_channels,
    out_channels/groups, kh, kw), as in PyTorch.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias:
            as for Conv2d (padding an int or a pair; it crops the output).
        output_padding: extra rows/cols on one side, to pick among the input sizes a
            strided Conv2d maps to the same output size (smaller than stride or dilation).
        padding_mode: only 'zeros'.

    >>> up = nn.ConvTranspose2d(16, 8, 2, stride=2)
    >>> up(md.randn(1, 16, 7, 7)).shape
    (1, 8, 14, 14)
    """

    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, output_padding=0, groups: int = 1, bias: bool = True,
                 dilation=1, padding_mode: str = "zeros", device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f"ConvTranspose2d: only padding_mode='zeros' is supported, "
                             f"got {padding_mode!r}")
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be an int or a pair, got "
                             f"{padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         output_padding, groups, bias, padding_mode, device, dtype)

    def _output_padding(self, input: Tensor, output_size) -> tuple:
        """output_padding that makes the output ``output_size`` (H, W) (or the default)."""
        if output_size is None:
            return self.output_padding
        size = tuple(output_size)[-2:]
        if len(size) != 2 or not isinstance(input, Tensor) or input.ndim != 4:
            raise ValueError(f"ConvTranspose2d: output_size must end with (H, W) and input "
                             f"must be 4-D, got output_size={output_size!r}")
        pads = []
        for axis in range(2):
            smallest = ((input.shape[2 + axis] - 1) * self.stride[axis]
                        - 2 * self.padding[axis]
                        + self.dilation[axis] * (self.kernel_size[axis] - 1) + 1)
            largest = smallest + max(self.stride[axis], self.dilation[axis]) - 1
            if not smallest <= size[axis] <= largest:
                raise ValueError(f"ConvTranspose2d: requested output size {size} is not "
                                 f"reachable from input {input.shape}: each side must be "
                                 f"between the sizes {smallest} and {largest} (axis {axis})")
            pads.append(size[axis] - smallest)
        return tuple(pads)

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        return _conv.conv_transpose2d(input, self.weight, self.bias, self.stride,
                                      self.padding, self._output_padding(input, output_size),
                                      self.groups, self.dilation)

"""Pooling layers over minidl/ops/pool.py: MaxPool2d, AvgPool2d and the adaptive ones.

As in PyTorch the layers keep their arguments as given (an int stays an int), so their
printed form and attributes read the same as torch.nn's.
"""
from __future__ import annotations

from ...ops import pool as _pool
from ...tensor import Tensor
from ..module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"]


class MaxPool2d(Module):
    """Max over (kh, kw) windows of an (N, C, H, W) batch.

    OH = floor((H + 2p - d(k - 1) - 1) / s) + 1 (ceil with ceil_mode); padding counts as
    -inf; the gradient goes to the first maximum of each window.

    Args:
        kernel_size: int or (kh, kw).
        stride: int or pair; default kernel_size.
        padding: implicit -inf padding, at most half the kernel.
        dilation: spacing of the window's cells.
        return_indices: also return the flat (h * W + w) index of each maximum.
        ceil_mode: round the output size up (a window starting in the padding is dropped).

    >>> nn.MaxPool2d(2)(md.randn(1, 3, 8, 8)).shape
    (1, 3, 4, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor):
        return _pool.max_pool2d(input, self.kernel_size, self.stride, self.padding,
                                self.dilation, ceil_mode=self.ceil_mode,
                                return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding="
                f"{self.padding}, dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over (kh, kw) windows of an (N, C, H, W) batch.

    Args:
        kernel_size, stride (default kernel_size), padding, ceil_mode: as MaxPool2d
            (zero padding).
        count_include_pad: divide by the whole window, padding included (default True);
            cells added by ceil_mode never count.
        divisor_override: divide by this instead.

    >>> nn.AvgPool2d(2)(md.randn(1, 3, 8, 8)).shape
    (1, 3, 4, 4)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return _pool.avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                                self.ceil_mode, self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed (OH, OW), whatever the input size.

    Bin i covers rows floor(i*H/OH) .. ceil((i+1)*H/OH) - 1 (likewise columns); None in
    output_size keeps that input dim. ``AdaptiveAvgPool2d(1)`` is global average pooling.

    >>> nn.AdaptiveAvgPool2d((1, 1))(md.randn(2, 512, 7, 7)).shape
    (2, 512, 1, 1)
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return _pool.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed (OH, OW), with the bins of AdaptiveAvgPool2d.

    >>> nn.AdaptiveMaxPool2d(1)(md.randn(2, 8, 5, 5)).shape
    (2, 8, 1, 1)
    """

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input: Tensor):
        return _pool.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"

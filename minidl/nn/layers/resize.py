"""Upsample: resize (N, C, H, W) batches by nearest or bilinear interpolation."""
from __future__ import annotations

from ..._checks import real_arg
from ...ops import resize as _resize
from ...tensor import Tensor
from ..module import Module

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]


class Upsample(Module):
    """Resize to ``size`` or by ``scale_factor`` (give one), with F.interpolate.

    Args:
        size: output (OH, OW) or one int.
        scale_factor: float or (sh, sw); output floor(H * sh) x floor(W * sw).
        mode: 'nearest' or 'bilinear'.
        align_corners: bilinear only (None means False).

    >>> nn.Upsample(scale_factor=2, mode="bilinear")(md.randn(1, 3, 4, 4)).shape
    (1, 3, 8, 8)
    """

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest",
                 align_corners: "bool | None" = None):
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{type(self).__name__}: give exactly one of size and "
                             f"scale_factor, got size={size!r}, scale_factor="
                             f"{scale_factor!r}")
        self.size = size
        name = type(self).__name__
        for s in scale_factor if isinstance(scale_factor, (tuple, list)) else [scale_factor]:
            if s is not None:
                real_arg(name, "scale_factor", s, low=0, low_open=True)
        # Stored as floats, as PyTorch does (so the printed form matches).
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor = tuple(float(s) for s in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor is not None else None
        self.mode, self.align_corners = mode, align_corners

    def forward(self, input: Tensor) -> Tensor:
        return _resize.interpolate(input, self.size, self.scale_factor, self.mode,
                                   self.align_corners)

    def extra_repr(self) -> str:
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else \
            f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Upsample with mode='nearest'. >>> nn.UpsamplingNearest2d(scale_factor=2)"""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Upsample with mode='bilinear' and align_corners=True (PyTorch's legacy layer).

    >>> nn.UpsamplingBilinear2d(scale_factor=2)
    """

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)

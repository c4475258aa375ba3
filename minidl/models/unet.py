"""U-Net (Ronneberger et al. 2015): an encoder-decoder for per-pixel predictions.

The encoder is a plain CNN: at each level two 3x3 convolutions, then a 2x2 max pool that
halves the size and (next level) doubles the channels. The decoder climbs back: a 2x2
transposed convolution doubles the size and halves the channels, the encoder's map of
the same level is concatenated on channels (the "skip connection" that brings back the
fine detail the pooling threw away), and two 3x3 convolutions fuse them:

    x ─ conv×2 ─────────────────────────────────── cat ─ conv×2 ─ 1x1 ─ logits per pixel
          └ pool ─ conv×2 ───────────── cat ─ conv×2 ─ up ┘
                     └ pool ─ conv×2 ─ up ┘               (depth 2 shown)

Unlike the paper's unpadded convolutions (which crop the skip maps), the convolutions
here use padding 1 and carry BatchNorm, so the output has the input's height and width;
an input whose size is not a multiple of 2**depth is handled by zero-padding the
upsampled map to the size of its skip map.
"""
from __future__ import annotations

from .._checks import int_arg, tensor_arg
from .. import nn
from ..ops.shape import cat, pad

__all__ = ["DoubleConv", "UNet", "unet"]


class DoubleConv(nn.Sequential):
    """(conv3x3 -> BN -> ReLU) twice; with batch_norm=False the convolutions have bias."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True) -> None:
        layers = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, kernel_size=3, padding=1,
                                    bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU())
        super().__init__(*layers)


class Up(nn.Module):
    """Transposed conv 2x2/2 (c -> c/2), concatenate the skip map, DoubleConv (c -> c/2)."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels, batch_norm)

    def forward(self, x, skip):
        x = self.up(x)
        dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
        if dh or dw:  # odd sizes: the pooling floored, so the upsampled map is smaller
            x = pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        return self.conv(cat([skip, x], 1))


def _check_nchw(op, x):
    # the size checks below read x.shape[2:] before any layer could check the input
    tensor_arg(op, "input", x)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")


class UNet(nn.Module):
    """U-Net with ``depth`` poolings; level i has base_width * 2**i channels.

    Args:
        in_channels: image channels.
        num_classes: output channels (one logit map per class).
        depth: number of 2x2 poolings (4 in the paper).
        base_width: channels of the first level (64 in the paper).
        batch_norm: BatchNorm after each 3x3 convolution.
    Input (N, in_channels, H, W) -> output (N, num_classes, H, W), for H, W >= 2**depth.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, depth: int = 4,
                 base_width: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        int_arg("UNet", "num_classes", num_classes, low=1)
        int_arg("UNet", "in_channels", in_channels, low=1)
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"UNet: depth must be a positive int, got {depth!r}")
        if not isinstance(base_width, int) or base_width < 1:
            raise ValueError(f"UNet: base_width must be a positive int, got {base_width!r}")
        widths = [base_width * 2 ** i for i in range(depth + 1)]
        self.depth = depth
        self.inc = DoubleConv(in_channels, widths[0], batch_norm)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.downs = nn.ModuleList(DoubleConv(widths[i], widths[i + 1], batch_norm)
                                   for i in range(depth))
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i], batch_norm)
                                 for i in reversed(range(depth)))
        self.outc = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x):
        _check_nchw("UNet", x)
        h, w = x.shape[2], x.shape[3]
        if min(h, w) < 2 ** self.depth:
            raise ValueError(f"UNet: input of {h}x{w} pixels is too small for depth "
                             f"{self.depth} (needs at least {2 ** self.depth} per side)")
        x = self.inc(x)
        skips = [x]
        for down in self.downs:
            x = down(self.pool(x))
            skips.append(x)
        skips.pop()  # the bottom level is the decoder's input, not a skip
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)


def unet(in_channels: int = 1, num_classes: int = 2, depth: int = 4, base_width: int = 64,
         batch_norm: bool = True) -> UNet:
    """A U-Net for segmentation (31.0M parameters at depth 4, width 64, as in the paper).

    Args:
        in_channels: image channels.
        num_classes: output maps (classes per pixel).
        depth: number of down/up levels.
        base_width: channels of the first level; each level below doubles them.
        batch_norm: BatchNorm after each 3x3 convolution.
    Returns:
        a UNet whose output has the input's height and width.

    >>> model = models.unet(in_channels=3, num_classes=2, depth=2, base_width=8)
    >>> model(md.randn(2, 3, 20, 20)).shape
    (2, 2, 20, 20)
    """
    return UNet(in_channels, num_classes, depth, base_width, batch_norm)

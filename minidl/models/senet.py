"""Squeeze-and-Excitation (Hu et al. 2018): let the network reweight its own channels.

An SE block looks at a whole feature map and decides how much each channel matters:

    squeeze   z = global average pool of x           (N, C, H, W) -> (N, C)
    excite    s = sigmoid(fc2(relu(fc1(z))))         C -> C/r -> C, s in (0, 1)
    rescale   y = x * s[:, :, None, None]            each channel scaled by its gate

It adds few weights (2*C*C/r per block) and fits into any architecture; in a ResNet it
rescales the residual branch just before the shortcut is added (``SEBasicBlock``,
``SEBottleneck``).
"""
from __future__ import annotations

from typing import Optional

from .. import nn
from ..nn import functional as F
from .resnet import BasicBlock, Bottleneck, ResNet

__all__ = ["SEBlock", "SEBasicBlock", "SEBottleneck", "se_resnet18", "se_resnet50"]


class SEBlock(nn.Module):
    """Squeeze (global average pool), excite (FC-ReLU-FC-sigmoid), rescale the channels.

    Args:
        channels: C, the channels of the input.
        reduction: r, the squeeze ratio of the hidden layer (16 in the paper); the hidden
            width is max(C // r, 1).
    Input (N, C, H, W) -> output (N, C, H, W).

    >>> se = models.SEBlock(64)
    >>> se(md.randn(2, 64, 8, 8)).shape
    (2, 64, 8, 8)
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"SEBlock: reduction must be a positive int, got {reduction!r}")
        hidden = max(channels // reduction, 1)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def gates(self, x):
        """The per-channel weights s, shape (N, C), each in (0, 1)."""
        z = self.avgpool(x).flatten(1)                     # squeeze
        return F.sigmoid(self.fc2(F.relu(self.fc1(z))))   # excite

    def forward(self, x):
        s = self.gates(x)
        return x * s.reshape(s.shape[0], s.shape[1], 1, 1)


class SEBasicBlock(BasicBlock):
    """A BasicBlock whose residual branch is rescaled by an SEBlock before the addition."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, reduction: int = 16) -> None:
        super().__init__(inplanes, planes, stride, downsample)
        self.se = SEBlock(planes * self.expansion, reduction)

    def residual(self, x):
        return self.se(super().residual(x))


class SEBottleneck(Bottleneck):
    """A Bottleneck whose residual branch is rescaled by an SEBlock before the addition."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, reduction: int = 16) -> None:
        super().__init__(inplanes, planes, stride, downsample)
        self.se = SEBlock(planes * self.expansion, reduction)

    def residual(self, x):
        return self.se(super().residual(x))


def se_resnet18(num_classes: int = 1000, in_channels: int = 3,
                zero_init_residual: bool = False, width: int = 64) -> ResNet:
    """SE-ResNet-18: ResNet-18 with an SEBlock (r = 16) in every block.

    Args:
        num_classes: outputs of ``fc``.
        in_channels: image channels.
        zero_init_residual: start every residual branch at zero.
        width: base channels (64).
    Returns:
        a ResNet made of SEBasicBlocks (11,778,592 parameters with 1000 classes).

    >>> model = models.se_resnet18(num_classes=10, width=16)
    >>> model(md.randn(2, 3, 32, 32)).shape
    (2, 10)
    """
    return ResNet(SEBasicBlock, [2, 2, 2, 2], num_classes, in_channels, zero_init_residual,
                  width)


def se_resnet50(num_classes: int = 1000, in_channels: int = 3,
                zero_init_residual: bool = False, width: int = 64) -> ResNet:
    """SE-ResNet-50: ResNet-50 with an SEBlock (r = 16) in every bottleneck (28,088,024
    parameters with 1000 classes, the paper's 28.1M); see se_resnet18 for the arguments."""
    return ResNet(SEBottleneck, [3, 4, 6, 3], num_classes, in_channels, zero_init_residual,
                  width)

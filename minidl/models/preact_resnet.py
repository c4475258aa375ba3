"""Pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks").

The original block adds the shortcut and then applies ReLU, so the signal that travels
along the shortcuts is changed at every block. Moving BatchNorm and ReLU *before* each
convolution ("BN-ReLU-conv") leaves the shortcut path a pure sum:

    x_{l+1} = x_l + F(x_l),   so   x_L = x_l + sum of F over the blocks in between

and the gradient of the loss reaches every earlier block unchanged through that sum,
which is what lets 1001-layer networks train.

    PreActBlock:      x ─ BN ─ ReLU ─┬─ conv3x3 ─ BN ─ ReLU ─ conv3x3 ─(+)─
                      └──────────────┴─ (shortcut: identity, or 1x1 conv of the
                                         pre-activated input when the shape changes)

The network ends with the BN and ReLU that the last block did not apply (``bn``), then the
global pool and ``fc``. ``PreActResNet`` has the ImageNet stem (7x7/2 conv and max pool) or,
with ``cifar_stem``, a 3x3 one; ``PreActCifarResNet`` is the paper's CIFAR network (three
stages of 16/32/64 channels: depth 9n+2 with bottlenecks, 6n+2 with basic blocks).
"""
from __future__ import annotations

from typing import Optional, Sequence, Type, Union

from .._checks import int_arg
from .. import nn
from ..nn import functional as F
from .resnet import conv1x1, conv3x3

__all__ = ["PreActBlock", "PreActBottleneck", "PreActResNet", "PreActCifarResNet",
           "preact_resnet18", "preact_resnet34", "preact_resnet20", "preact_resnet56",
           "preact_resnet110", "preact_resnet164"]


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, plus the untouched shortcut (expansion 1)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.shortcut: Optional[nn.Module] = None
        if stride != 1 or inplanes != planes:
            self.shortcut = conv1x1(inplanes, planes, stride)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        # A projection sees the pre-activated input, as in the paper's code; the identity
        # shortcut carries x itself.
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActBottleneck(nn.Module):
    """BN-ReLU-1x1, BN-ReLU-3x3 (stride), BN-ReLU-1x1 (4x wider), plus the shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv1x1(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.shortcut: Optional[nn.Module] = None
        if stride != 1 or inplanes != planes * self.expansion:
            self.shortcut = conv1x1(inplanes, planes * self.expansion, stride)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + shortcut


PreActBlockType = Union[Type[PreActBlock], Type[PreActBottleneck]]


def _make_stage(block: PreActBlockType, inplanes: int, planes: int, blocks: int,
                stride: int) -> nn.Sequential:
    layers = [block(inplanes, planes, stride)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _init_preact(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PreActResNet(nn.Module):
    """A four-stage pre-activation ResNet (widths w, 2w, 4w, 8w).

    Args:
        block: PreActBlock or PreActBottleneck.
        layers: blocks per stage, e.g. [2, 2, 2, 2] for PreAct-ResNet-18.
        num_classes: outputs of ``fc``.
        in_channels: image channels.
        width: base channels (64).
        cifar_stem: a 3x3 stride-1 stem without max pool (for 32x32 images) instead of
            the 7x7/2 conv + 3x3/2 max pool of ImageNet.
    """

    def __init__(self, block: PreActBlockType, layers: Sequence[int], num_classes: int = 1000,
                 in_channels: int = 3, width: int = 64, cifar_stem: bool = False) -> None:
        super().__init__()
        int_arg("PreActResNet", "num_classes", num_classes, low=1)
        int_arg("PreActResNet", "in_channels", in_channels, low=1)
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise ValueError(f"PreActResNet: layers must be 4 positive block counts, got "
                             f"{list(layers)}")
        if cifar_stem:
            self.conv1 = conv3x3(in_channels, width)
            self.maxpool = nn.Identity()
        else:
            # No BN-ReLU after the stem convolution: the first block starts with them.
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3,
                                   bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        e = block.expansion
        self.layer1 = _make_stage(block, width, width, layers[0], 1)
        self.layer2 = _make_stage(block, width * e, 2 * width, layers[1], 2)
        self.layer3 = _make_stage(block, 2 * width * e, 4 * width, layers[2], 2)
        self.layer4 = _make_stage(block, 4 * width * e, 8 * width, layers[3], 2)
        self.bn = nn.BatchNorm2d(8 * width * e)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * e, num_classes)
        _init_preact(self)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = F.relu(self.bn(x))
        return self.fc(self.avgpool(x).flatten(1))


class PreActCifarResNet(nn.Module):
    """The paper's CIFAR pre-activation ResNet: 3x3 stem, stages of 16/32/64 base channels.

    Args:
        depth: 6n+2 with PreActBlock (20, 56, 110), 9n+2 with PreActBottleneck (164, 1001).
        num_classes: outputs of ``fc``.
        in_channels: image channels.
        bottleneck: use PreActBottleneck (outputs 64/128/256 channels) instead of PreActBlock.
        width: channels of the stem and the first stage's base (16).
    """

    def __init__(self, depth: int = 110, num_classes: int = 10, in_channels: int = 3,
                 bottleneck: bool = False, width: int = 16) -> None:
        super().__init__()
        int_arg("PreActCifarResNet", "num_classes", num_classes, low=1)
        int_arg("PreActCifarResNet", "in_channels", in_channels, low=1)
        per_block = 9 if bottleneck else 6
        if not isinstance(depth, int) or depth < per_block + 2 or (depth - 2) % per_block:
            raise ValueError(f"PreActCifarResNet: depth must be {per_block}n+2 with n >= 1 "
                             f"{'(bottleneck)' if bottleneck else '(basic blocks)'}, got "
                             f"{depth!r}")
        block = PreActBottleneck if bottleneck else PreActBlock
        n, e = (depth - 2) // per_block, block.expansion
        self.conv1 = conv3x3(in_channels, width)
        self.layer1 = _make_stage(block, width, width, n, 1)
        self.layer2 = _make_stage(block, width * e, 2 * width, n, 2)
        self.layer3 = _make_stage(block, 2 * width * e, 4 * width, n, 2)
        self.bn = nn.BatchNorm2d(4 * width * e)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4 * width * e, num_classes)
        _init_preact(self)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = F.relu(self.bn(x))
        return self.fc(self.avgpool(x).flatten(1))


def preact_resnet18(num_classes: int = 1000, in_channels: int = 3, width: int = 64,
                    cifar_stem: bool = False) -> PreActResNet:
    """Pre-activation ResNet-18 (PreActBlock, stages [2, 2, 2, 2]).

    Args:
        num_classes: outputs of ``fc``.
        in_channels: image channels.
        width: base channels (64).
        cifar_stem: 3x3 stem without max pool, for 32x32 images (the common CIFAR
            "PreActResNet18").
    Returns:
        a PreActResNet (11,687,720 parameters at width 64 with 1000 classes: ResNet-18's
        convolutions, with BatchNorms placed before them and none on the shortcuts).

    >>> model = models.preact_resnet18(num_classes=10, cifar_stem=True, width=16)
    >>> model(md.randn(2, 3, 32, 32)).shape
    (2, 10)
    """
    return PreActResNet(PreActBlock, [2, 2, 2, 2], num_classes, in_channels, width,
                        cifar_stem)


def preact_resnet34(num_classes: int = 1000, in_channels: int = 3, width: int = 64,
                    cifar_stem: bool = False) -> PreActResNet:
    """Pre-activation ResNet-34 (PreActBlock, stages [3, 4, 6, 3]); see preact_resnet18."""
    return PreActResNet(PreActBlock, [3, 4, 6, 3], num_classes, in_channels, width,
                        cifar_stem)


def preact_resnet20(num_classes: int = 10, in_channels: int = 3,
                    width: int = 16) -> PreActCifarResNet:
    """CIFAR pre-activation ResNet-20 (3 PreActBlocks per stage); see preact_resnet110."""
    return PreActCifarResNet(20, num_classes, in_channels, bottleneck=False, width=width)


def preact_resnet56(num_classes: int = 10, in_channels: int = 3,
                    width: int = 16) -> PreActCifarResNet:
    """CIFAR pre-activation ResNet-56 (9 PreActBlocks per stage); see preact_resnet110."""
    return PreActCifarResNet(56, num_classes, in_channels, bottleneck=False, width=width)


def preact_resnet110(num_classes: int = 10, in_channels: int = 3,
                     width: int = 16) -> PreActCifarResNet:
    """CIFAR pre-activation ResNet-110 (18 PreActBlocks per stage, 16/32/64 channels).

    Args:
        num_classes: outputs of ``fc``.
        in_channels: image channels.
        width: first-stage channels (16 in the paper).
    Returns:
        a PreActCifarResNet (about 1.7M parameters) for 32x32 images.

    >>> model = models.preact_resnet110()
    >>> model(md.randn(2, 3, 32, 32)).shape
    (2, 10)
    """
    return PreActCifarResNet(110, num_classes, in_channels, bottleneck=False, width=width)


def preact_resnet164(num_classes: int = 10, in_channels: int = 3,
                     width: int = 16) -> PreActCifarResNet:
    """CIFAR pre-activation ResNet-164 (18 PreActBottlenecks per stage, about 1.7M
    parameters), the paper's Table 2 network; see preact_resnet110 for the arguments."""
    return PreActCifarResNet(164, num_classes, in_channels, bottleneck=True, width=width)

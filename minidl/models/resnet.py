"""Residual networks (He et al. 2015): learn a correction, not a whole mapping.

A residual block computes ``out = relu(F(x) + shortcut(x))``. When F's weights are near
zero the block is close to the identity, so a 152-layer network starts as easy to train
as a shallow one, and gradients reach the first layers through the shortcuts.

    BasicBlock (ResNet-18/34, CIFAR ResNets)     Bottleneck (ResNet-50/101/152)
    x ─ conv3x3 ─ BN ─ ReLU ─ conv3x3 ─ BN ─(+)─ ReLU   x ─ 1x1 ─ BN ─ ReLU ─ 3x3 ─ BN ─ ReLU
    └──────────── shortcut ───────────────┘                 ─ 1x1 (4x wider) ─ BN ─(+)─ ReLU

When a block changes the resolution or the width, the shortcut is a 1x1 convolution with
the block's stride followed by BatchNorm (``downsample``, "option B"); otherwise it is the
identity. Bottleneck puts the stride on its 3x3 convolution (torchvision's "ResNet v1.5").

``ResNet`` is the ImageNet network (7x7/2 stem and a 3x3/2 max pool, four stages of
64/128/256/512 base channels); ``CifarResNet`` is the paper's CIFAR-10 network (3x3 stem,
three stages of 16/32/64 channels, depth 6n+2, identity shortcuts padded with zeros,
"option A", by default). Names match torchvision (``layer1.0.conv1``,
``layer2.0.downsample.0``) so its state dicts load key for key.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Type, Union

from .._checks import int_arg
from .. import nn
from ..ops.shape import pad

__all__ = ["conv3x3", "conv1x1", "BasicBlock", "Bottleneck", "ResNet", "CifarResNet",
           "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "cifar_resnet20", "cifar_resnet32", "cifar_resnet44", "cifar_resnet56",
           "cifar_resnet110"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1,
                     bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias: channel mixing, and the projection shortcut."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: out = relu(bn2(conv2(relu(bn1(conv1 x)))) + sc).

    Output channels: planes (expansion 1); stride 2 halves height and width.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def residual(self, x):
        """F(x): the part of the block that learns the correction."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + identity)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 (stride) -> 1x1 (expand 4x), each with BN, plus a shortcut.

    Output channels: planes * 4. The 1x1 layers keep the 3x3 convolution cheap: it runs
    on ``planes`` channels while the block's input and output have 4x as many.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def residual(self, x):
        """F(x): the part of the block that learns the correction."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + identity)


Block = Union[Type[BasicBlock], Type[Bottleneck]]


def _init_resnet(model: nn.Module, zero_init_residual: bool) -> None:
    """He-normal (fan_out) convolutions, BN weight 1 / bias 0, as torchvision.

    ``zero_init_residual`` sets the last BN weight of each residual branch to 0, so every
    block starts as the identity (Goyal et al. 2017, "Accurate, large minibatch SGD").
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            last_bn = getattr(m, "bn3", None) if isinstance(m, Bottleneck) else \
                getattr(m, "bn2", None) if isinstance(m, BasicBlock) else None
            if last_bn is not None:
                nn.init.zeros_(last_bn.weight)


class ResNet(nn.Module):
    """The ImageNet ResNet: stem, four stages of residual blocks, global pool, fc.

    Args:
        block: BasicBlock or Bottleneck (or a subclass with the same constructor).
        layers: number of blocks in each of the four stages, e.g. [2, 2, 2, 2].
        num_classes: outputs of ``fc``.
        in_channels: image channels.
        zero_init_residual: start every residual branch at zero (see _init_resnet).
        width: base channels of the stem and first stage (64 in the paper); stages use
            width, 2*width, 4*width, 8*width. Smaller values make narrow test networks.
    """

    def __init__(self, block: Block, layers: Sequence[int], num_classes: int = 1000,
                 in_channels: int = 3, zero_init_residual: bool = False,
                 width: int = 64) -> None:
        super().__init__()
        int_arg("ResNet", "num_classes", num_classes, low=1)
        int_arg("ResNet", "in_channels", in_channels, low=1)
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise ValueError(f"ResNet: layers must be 4 positive block counts, got "
                             f"{list(layers)}")
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)
        _init_resnet(self, zero_init_residual)

    def _make_layer(self, block: Block, planes: int, blocks: int,
                    stride: int = 1) -> nn.Sequential:
        """A stage: the first block may change stride and width, the others keep them."""
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers: List[nn.Module] = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


class ZeroPadShortcut(nn.Module):
    """The parameter-free "option A" shortcut of the CIFAR ResNets.

    Subsample by ``stride`` and append zero channels up to ``out_channels``:
    (N, C, H, W) -> (N, out_channels, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, out_channels: int, stride: int) -> None:
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        extra = self.out_channels - x.shape[1]
        # Pad the channel axis: (W left, W right, H top, H bottom, C front, C back).
        return pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, stride={self.stride}"


class CifarResNet(nn.Module):
    """The CIFAR-10 ResNet of He et al. 2015 (section 4.2): depth 6n+2, 3 stages.

    Args:
        depth: 20, 32, 44, 56, 110, ... (6n+2 with BasicBlocks, n blocks per stage).
        num_classes: outputs of ``fc``.
        in_channels: image channels.
        shortcut: 'A' (zero-padded identity, the paper's CIFAR choice: 0.27M parameters
            at depth 20) or 'B' (1x1 projection + BN, as the ImageNet ResNets).
        width: channels of the first stage (16 in the paper); stages use 1x, 2x, 4x.
        zero_init_residual: start every residual branch at zero.
        block: the residual block class (the SE and pre-activation files reuse this).
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3,
                 shortcut: str = "A", width: int = 16, zero_init_residual: bool = False,
                 block: Type[BasicBlock] = BasicBlock) -> None:
        super().__init__()
        int_arg("CifarResNet", "num_classes", num_classes, low=1)
        int_arg("CifarResNet", "in_channels", in_channels, low=1)
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth must be 6n+2 with n >= 1 (20, 32, 44, 56, "
                             f"110), got {depth!r}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"CifarResNet: shortcut must be 'A' or 'B', got {shortcut!r}")
        n = (depth - 2) // 6
        self.shortcut = shortcut
        self.inplanes = width
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(block, width, n)
        self.layer2 = self._make_layer(block, 2 * width, n, stride=2)
        self.layer3 = self._make_layer(block, 4 * width, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4 * width, num_classes)
        _init_resnet(self, zero_init_residual)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            if self.shortcut == "A":
                downsample = ZeroPadShortcut(planes, stride)
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride),
                                           nn.BatchNorm2d(planes))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [block(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


_RESNET_DOC = """ResNet-{depth} ({block}, stages {layers}; {params} parameters with 1000
    classes at width 64: torchvision's count).

    Args:
        num_classes: outputs of ``fc``.
        in_channels: image channels.
        zero_init_residual: start each residual branch at zero.
        width: base channels (64 in the paper; smaller for experiments).
    Returns:
        a ResNet; thanks to the adaptive pool any input size works (224x224 is the
        usual; 32x32 gives a 1x1 map before the pool).

    >>> model = models.resnet{depth}(num_classes=10, width=8)
    >>> model(md.randn(2, 3, 32, 32)).shape
    (2, 10)
    """


def resnet18(num_classes: int = 1000, in_channels: int = 3, zero_init_residual: bool = False,
             width: int = 64) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, zero_init_residual,
                  width)


def resnet34(num_classes: int = 1000, in_channels: int = 3, zero_init_residual: bool = False,
             width: int = 64) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels, zero_init_residual,
                  width)


def resnet50(num_classes: int = 1000, in_channels: int = 3, zero_init_residual: bool = False,
             width: int = 64) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, zero_init_residual,
                  width)


def resnet101(num_classes: int = 1000, in_channels: int = 3,
              zero_init_residual: bool = False, width: int = 64) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_channels, zero_init_residual,
                  width)


def resnet152(num_classes: int = 1000, in_channels: int = 3,
              zero_init_residual: bool = False, width: int = 64) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, in_channels, zero_init_residual,
                  width)


for _fn, _block, _layers, _params in [
        (resnet18, "BasicBlock", "[2, 2, 2, 2]", "11,689,512"),
        (resnet34, "BasicBlock", "[3, 4, 6, 3]", "21,797,672"),
        (resnet50, "Bottleneck", "[3, 4, 6, 3]", "25,557,032"),
        (resnet101, "Bottleneck", "[3, 4, 23, 3]", "44,549,160"),
        (resnet152, "Bottleneck", "[3, 8, 36, 3]", "60,192,808")]:
    _fn.__doc__ = _RESNET_DOC.format(depth=_fn.__name__[6:], block=_block, layers=_layers,
                                     params=_params)


_CIFAR_DOC = """CIFAR ResNet-{depth} of He et al. 2015 ({n} BasicBlocks per stage, 16/32/64
    channels, ~{params} parameters with option-A shortcuts and 10 classes).

    Args:
        num_classes: outputs of ``fc``.
        in_channels: image channels.
        **kwargs: shortcut ('A' or 'B'), width, zero_init_residual of CifarResNet.
    Returns:
        a CifarResNet for 32x32 inputs (any size works thanks to the adaptive pool).

    >>> model = models.cifar_resnet{depth}()
    >>> model(md.randn(2, 3, 32, 32)).shape
    (2, 10)
    """


def cifar_resnet20(num_classes: int = 10, in_channels: int = 3, **kwargs) -> CifarResNet:
    return CifarResNet(20, num_classes, in_channels, **kwargs)


def cifar_resnet32(num_classes: int = 10, in_channels: int = 3, **kwargs) -> CifarResNet:
    return CifarResNet(32, num_classes, in_channels, **kwargs)


def cifar_resnet44(num_classes: int = 10, in_channels: int = 3, **kwargs) -> CifarResNet:
    return CifarResNet(44, num_classes, in_channels, **kwargs)


def cifar_resnet56(num_classes: int = 10, in_channels: int = 3, **kwargs) -> CifarResNet:
    return CifarResNet(56, num_classes, in_channels, **kwargs)


def cifar_resnet110(num_classes: int = 10, in_channels: int = 3, **kwargs) -> CifarResNet:
    return CifarResNet(110, num_classes, in_channels, **kwargs)


for _fn, _params in [(cifar_resnet20, "0.27M"), (cifar_resnet32, "0.46M"),
                     (cifar_resnet44, "0.66M"), (cifar_resnet56, "0.85M"),
                     (cifar_resnet110, "1.7M")]:
    _depth = int(_fn.__name__[12:])
    _fn.__doc__ = _CIFAR_DOC.format(depth=_depth, n=(_depth - 2) // 6, params=_params)
del _fn, _block, _layers, _params, _depth

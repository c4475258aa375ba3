"""DenseNet (Huang et al. 2017): every layer sees the feature maps of all earlier layers.

Inside a dense block, layer l receives the concatenation of the block input and the
outputs of layers 1..l-1, and adds ``growth_rate`` (k) new channels:

    x_l = H_l(cat[x_0, x_1, ..., x_{l-1}])      channels: c_0 + l*k after layer l

Features are reused instead of re-learned, so each layer can be narrow (k = 32 or 12).
``H_l`` is the "bottleneck" layer of DenseNet-B: BN-ReLU-conv1x1 (to bn_size*k channels)
then BN-ReLU-conv3x3 (to k). Between blocks a transition layer (BN-ReLU-conv1x1-avgpool 2)
halves the resolution and, with compression 0.5 ("-C"), the channels: DenseNet-BC.

Names follow torchvision (``features.denseblock1.denselayer1.norm1``,
``features.transition1.conv``, ``features.norm5``, ``classifier``), so its state dicts load
key for key.
"""
from __future__ import annotations

from typing import Sequence

from .._checks import int_arg
from .. import nn
from ..nn import functional as F
from ..ops.shape import cat

__all__ = ["DenseLayer", "DenseBlock", "Transition", "DenseNet", "densenet121",
           "densenet169", "densenet_bc_cifar"]


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (bn_size*growth_rate) then BN-ReLU-conv3x3 (growth_rate).

    Takes the list of all earlier feature maps and returns only the k new channels; the
    block does the bookkeeping of the growing list.
    """

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1,
                               bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1,
                               bias=False)
        self.drop_rate = float(drop_rate)

    def forward(self, features):
        x = cat(list(features), 1) if isinstance(features, (list, tuple)) else features
        x = self.conv1(self.relu1(self.norm1(x)))              # the bottleneck
        x = self.conv2(self.relu2(self.norm2(x)))
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x


class DenseBlock(nn.Module):
    """``num_layers`` DenseLayers; the output concatenates the input and every new map.

    Output channels: num_input_features + num_layers * growth_rate, same height and width.
    """

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int,
                 growth_rate: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size,
                               drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x):
        features = [x]
        for layer in self.children():
            features.append(layer(features))
        return cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (to num_output_features)-avgpool 2x2: between two dense blocks."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(num_input_features))
        self.add_module("relu", nn.ReLU())
        self.add_module("conv", nn.Conv2d(num_input_features, num_output_features,
                                          kernel_size=1, bias=False))
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet(nn.Module):
    """DenseNet-BC: stem, dense blocks with transitions between them, BN, pool, classifier.

    Args:
        growth_rate: k, the channels each layer adds (32 for ImageNet, 12 for CIFAR).
        block_config: layers in each dense block, e.g. (6, 12, 24, 16).
        num_init_features: channels of the stem convolution (2k in the paper).
        bn_size: the bottleneck is bn_size*k channels wide (4).
        drop_rate: dropout after each dense layer (0).
        num_classes: outputs of ``classifier``.
        in_channels: image channels.
        compression: the fraction of channels a transition keeps (0.5).
        cifar_stem: a single 3x3 convolution as stem (CIFAR) instead of the ImageNet
            7x7/2 conv-BN-ReLU + 3x3/2 max pool.
    """

    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, drop_rate: float = 0.0,
                 num_classes: int = 1000, in_channels: int = 3, compression: float = 0.5,
                 cifar_stem: bool = False) -> None:
        super().__init__()
        int_arg("DenseNet", "num_classes", num_classes, low=1)
        int_arg("DenseNet", "in_channels", in_channels, low=1)
        if not 0 < compression <= 1:
            raise ValueError(f"DenseNet: compression must be in (0, 1], got {compression}")
        self.features = nn.Sequential()
        if cifar_stem:
            self.features.add_module("conv0", nn.Conv2d(in_channels, num_init_features,
                                                        kernel_size=3, padding=1, bias=False))
        else:
            self.features.add_module("conv0", nn.Conv2d(in_channels, num_init_features,
                                                        kernel_size=7, stride=2, padding=3,
                                                        bias=False))
            self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
            self.features.add_module("relu0", nn.ReLU())
            self.features.add_module("pool0", nn.MaxPool2d(kernel_size=3, stride=2,
                                                           padding=1))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, channels, bn_size, growth_rate, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                out = int(channels * compression)
                self.features.add_module(f"transition{i + 1}", Transition(channels, out))
                channels = out
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.classifier = nn.Linear(channels, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.features(x))
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(x.flatten(1))


def densenet121(num_classes: int = 1000, in_channels: int = 3, growth_rate: int = 32,
                num_init_features: int = 64, **kwargs) -> DenseNet:
    """DenseNet-121 (k=32, blocks 6/12/24/16; 7,978,856 parameters with 1000 classes).

    Args:
        num_classes: outputs of ``classifier``.
        in_channels: image channels.
        growth_rate: k (32); a smaller k with fewer num_init_features (64) makes a narrow
            network for experiments.
        **kwargs: bn_size, drop_rate, compression, cifar_stem of DenseNet.
    Returns:
        a DenseNet; inputs of at least 29x29 work (224x224 is the usual).

    >>> model = models.densenet121(num_classes=10, growth_rate=4, num_init_features=8)
    >>> model(md.randn(2, 3, 32, 32)).shape
    (2, 10)
    """
    return DenseNet(growth_rate, (6, 12, 24, 16), num_init_features, num_classes=num_classes,
                    in_channels=in_channels, **kwargs)


def densenet169(num_classes: int = 1000, in_channels: int = 3, growth_rate: int = 32,
                num_init_features: int = 64, **kwargs) -> DenseNet:
    """DenseNet-169 (k=32, blocks 6/12/32/32; 14,149,480 parameters with 1000 classes);
    see densenet121 for the arguments."""
    return DenseNet(growth_rate, (6, 12, 32, 32), num_init_features, num_classes=num_classes,
                    in_channels=in_channels, **kwargs)


def densenet_bc_cifar(depth: int = 100, growth_rate: int = 12, num_classes: int = 10,
                      in_channels: int = 3, drop_rate: float = 0.0) -> DenseNet:
    """The CIFAR DenseNet-BC of the paper (depth 100, k=12: 0.8M parameters).

    Three dense blocks of (depth - 4) / 6 bottleneck layers each, a 3x3 stem of 2k
    channels, compression 0.5.

    Args:
        depth: 6n+4 (40, 100, 190, ...).
        growth_rate: k.
        num_classes: outputs of ``classifier``.
        in_channels: image channels.
        drop_rate: dropout after each dense layer (0.2 in the paper without augmentation).
    Returns:
        a DenseNet for 32x32 images (inputs of at least 4x4 work).

    >>> model = models.densenet_bc_cifar(depth=40)
    >>> model(md.randn(2, 3, 32, 32)).shape
    (2, 10)
    """
    if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"densenet_bc_cifar: depth must be 6n+4 with n >= 1 (40, 100, "
                         f"190), got {depth!r}")
    n = (depth - 4) // 6
    return DenseNet(growth_rate=growth_rate, block_config=(n, n, n),
                    num_init_features=2 * growth_rate, bn_size=4, drop_rate=drop_rate,
                    num_classes=num_classes, in_channels=in_channels, compression=0.5,
                    cifar_stem=True)

"""GoogLeNet (Szegedy et al. 2014) and its Inception module.

The Inception idea: let the network choose the filter size by running several in
parallel and concatenating their outputs on the channel axis, and make that affordable
with 1x1 convolutions that first shrink the channels ("bottlenecks"):

    x ─┬─ 1x1 ───────────────────┐
       ├─ 1x1 (reduce) ─ 3x3 ────┤
       ├─ 1x1 (reduce) ─ 5x5 ────┼─ concat on channels
       └─ 3x3 max-pool ─ 1x1 ────┘

A 5x5 convolution from 192 to 32 channels on 28x28 costs 28*28*32*5*5*192 = 120.4M
multiply-accumulates; reducing to 16 channels with a 1x1 first costs 2.4M + 10.0M = 12.4M
(``minidl.utils.summary`` reproduces these numbers).

Every convolution here is ``BasicConv2d``: conv (no bias) + BatchNorm (eps 0.001) + ReLU,
as in torchvision, so torchvision's GoogLeNet weights load key for key. Two auxiliary
classifiers (``aux1`` after inception4a, ``aux2`` after inception4d) add extra logits in
training mode, to push gradient into the middle of the 22-layer network.
"""
from __future__ import annotations

from collections import namedtuple

from .._checks import int_arg
from .. import nn
from ..nn import functional as F
from ..ops.shape import cat

__all__ = ["BasicConv2d", "Inception", "InceptionAux", "GoogLeNet", "GoogLeNetOutputs",
           "googlenet"]

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])
GoogLeNetOutputs.__doc__ = """GoogLeNet's training-mode output when aux_logits is True:
(logits, aux_logits2, aux_logits1), each (N, num_classes), in torchvision's order."""


class BasicConv2d(nn.Module):
    """Conv2d without bias, BatchNorm2d (eps 0.001), ReLU: torchvision's GoogLeNet unit."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """The Inception v1 module: four parallel branches concatenated on channels.

    Args:
        in_channels: input channels.
        ch1x1: output of the 1x1 branch.
        ch3x3red, ch3x3: the 1x1 reduction and the 3x3 output of the second branch.
        ch5x5red, ch5x5: the 1x1 reduction and the output of the third branch.
        pool_proj: output of the 1x1 convolution after the 3x3 max pool.
        branch3_kernel_size: 5 as in the paper; torchvision's GoogLeNet uses 3 here (a
            known quirk of its port, kept so that its weights load).
    Output channels: ch1x1 + ch3x3 + ch5x5 + pool_proj, same height and width.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int,
                 ch5x5red: int, ch5x5: int, pool_proj: int,
                 branch3_kernel_size: int = 5) -> None:
        super().__init__()
        k = branch3_kernel_size
        if k not in (3, 5):
            raise ValueError(f"Inception: branch3_kernel_size must be 3 or 5, got {k!r}")
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=k, padding=k // 2))
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x):
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return cat(branches, 1)


class InceptionAux(nn.Module):
    """An auxiliary classifier: 4x4 average pool, 1x1 conv to 128, FC 1024, dropout 0.7."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))   # (N, 128, 4, 4)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(self.dropout(x))


class GoogLeNet(nn.Module):
    """GoogLeNet (Inception v1) with torchvision's layer names.

    Args:
        num_classes: outputs of ``fc`` (and of the auxiliary classifiers).
        in_channels: image channels.
        aux_logits: build ``aux1`` and ``aux2``; in training mode forward then returns
            GoogLeNetOutputs(logits, aux_logits2, aux_logits1); in eval mode only logits.
        dropout: before ``fc``; dropout_aux: inside the auxiliary classifiers.
        branch3_kernel_size: 3 (torchvision's weights and parameter count) or 5 (paper).
        init_weights: convolutions and linear layers from N(0, 0.01) truncated to
            [-2, 2], BatchNorm weight 1 and bias 0, as torchvision.
        transform_input: map inputs normalised with the ImageNet mean and std to the
            [-1, 1] scaling the original network was trained on; torchvision turns this
            on with its pretrained weights, so do the same when you load them.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = True,
                 dropout: float = 0.2, dropout_aux: float = 0.7, branch3_kernel_size: int = 3,
                 init_weights: bool = True, transform_input: bool = False) -> None:
        super().__init__()
        int_arg("GoogLeNet", "num_classes", num_classes, low=1)
        int_arg("GoogLeNet", "in_channels", in_channels, low=1)
        self.aux_logits = aux_logits
        self.transform_input = transform_input

        def inception(*channels):
            return Inception(*channels, branch3_kernel_size=branch3_kernel_size)

        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception3a = inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = inception(832, 384, 192, 384, 48, 128, 128)

        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

        if init_weights:
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def _transform_input(self, x):
        """x * std / 0.5 + (mean - 0.5) / 0.5 per RGB channel: undo ImageNet normalisation,
        then scale [0, 1] to [-1, 1]."""
        if x.shape[1] != 3:
            raise ValueError(f"GoogLeNet: transform_input needs 3-channel RGB input, got "
                             f"{x.shape[1]} channels")
        channels = [x[:, c:c + 1] * (std / 0.5) + (mean - 0.5) / 0.5 for c, (mean, std) in
                    enumerate([(0.485, 0.229), (0.456, 0.224), (0.406, 0.225)])]
        return cat(channels, 1)

    def forward(self, x):
        if self.transform_input:
            x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        with_aux = self.aux_logits and self.training
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if with_aux else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.dropout(self.avgpool(x).flatten(1))
        x = self.fc(x)
        if with_aux:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


def googlenet(num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = True,
              **kwargs) -> GoogLeNet:
    """GoogLeNet / Inception v1 (6,624,904 parameters without the auxiliary classifiers,
    13,004,888 with them, for 1000 classes: torchvision's numbers).

    Args:
        num_classes: outputs of each classifier.
        in_channels: image channels.
        aux_logits: add the two auxiliary classifiers (used in training mode only).
        **kwargs: dropout, dropout_aux, branch3_kernel_size, init_weights,
            transform_input of GoogLeNet.
    Returns:
        a GoogLeNet; inputs of at least 15x15 pixels work (224x224 is the usual).

    >>> model = models.googlenet(num_classes=10)
    >>> out = model(md.randn(2, 3, 64, 64))        # training mode: three sets of logits
    >>> out.logits.shape, out.aux_logits1.shape
    ((2, 10), (2, 10))
    """
    return GoogLeNet(num_classes=num_classes, in_channels=in_channels, aux_logits=aux_logits,
                     **kwargs)

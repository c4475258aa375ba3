"""SqueezeNet (Iandola et al. 2016): AlexNet accuracy with 50x fewer parameters.

Its building block is the Fire module: a 1x1 "squeeze" convolution cuts the channels,
then an "expand" layer mixes 1x1 and 3x3 filters side by side and concatenates them:

    x ─ squeeze 1x1 (s) ─ ReLU ─┬─ expand 1x1 (e1) ─ ReLU ─┐
                                └─ expand 3x3 (e3) ─ ReLU ─┴─ concat: e1 + e3 channels

Few 3x3 filters, and those only on the squeezed input, keep the weights small. There is
no fully connected layer: a 1x1 convolution gives one map per class and a global average
pool turns the maps into logits. Names follow torchvision (``features.3.squeeze``,
``classifier.1``), so its state dicts load key for key.
"""
from __future__ import annotations

from .._checks import int_arg
from .. import nn
from ..ops.shape import cat

__all__ = ["Fire", "SqueezeNet", "squeezenet1_0", "squeezenet1_1"]


class Fire(nn.Module):
    """squeeze 1x1 -> ReLU -> [expand 1x1 -> ReLU, expand 3x3 -> ReLU] concatenated.

    Output channels: expand1x1_planes + expand3x3_planes, same height and width.
    """

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int,
                 expand3x3_planes: int) -> None:
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3,
                                   padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return cat([self.expand1x1_activation(self.expand1x1(x)),
                    self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet(nn.Module):
    """SqueezeNet 1.0 or 1.1: ``features`` (stem and Fire modules), ``classifier``.

    Args:
        version: '1_0' (the paper: 7x7/2 stem with 96 maps) or '1_1' (3x3/2 stem with 64
            maps, pools earlier: 2.4x less computation, same accuracy).
        num_classes: maps of the final 1x1 convolution.
        in_channels: image channels.
        dropout: before the final convolution.
    """

    def __init__(self, version: str = "1_0", num_classes: int = 1000, in_channels: int = 3,
                 dropout: float = 0.5) -> None:
        super().__init__()
        int_arg("SqueezeNet", "num_classes", num_classes, low=1)
        int_arg("SqueezeNet", "in_channels", in_channels, low=1)
        self.num_classes = num_classes
        if version == "1_0":
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, 96, kernel_size=7, stride=2), nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(512, 64, 256, 256),
            )
        elif version == "1_1":
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, 64, kernel_size=3, stride=2), nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
                Fire(512, 64, 256, 256),
            )
        else:
            raise ValueError(f"SqueezeNet: version must be '1_0' or '1_1', got {version!r}")
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), final_conv, nn.ReLU(),
                                        nn.AdaptiveAvgPool2d((1, 1)))
        # torchvision's init: small final layer, He-uniform elsewhere, zero biases.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.features(x)).flatten(1)


def squeezenet1_0(num_classes: int = 1000, in_channels: int = 3,
                  dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet 1.0 (1,248,424 parameters with 1000 classes).

    Args:
        num_classes: outputs.
        in_channels: image channels.
        dropout: before the final 1x1 convolution.
    Returns:
        a SqueezeNet; inputs of at least 21x21 work (224x224 is the usual).

    >>> model = models.squeezenet1_0(num_classes=10)
    >>> model(md.randn(2, 3, 64, 64)).shape
    (2, 10)
    """
    return SqueezeNet("1_0", num_classes, in_channels, dropout)


def squeezenet1_1(num_classes: int = 1000, in_channels: int = 3,
                  dropout: float = 0.5) -> SqueezeNet:
    """SqueezeNet 1.1 (1,235,496 parameters with 1000 classes; inputs of at least 17x17);
    see squeezenet1_0 for the arguments."""
    return SqueezeNet("1_1", num_classes, in_channels, dropout)

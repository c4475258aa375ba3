"""VGG (Simonyan and Zisserman 2014): deep networks built from one repeated block.

The "VGG block" idea: only 3x3 convolutions (padding 1, so the size stays), a ReLU after
each, and a 2x2 max pool that halves the resolution between blocks. Two stacked 3x3
convolutions see a 5x5 window with fewer weights than one 5x5 convolution. A network is
then just a list: numbers are convolution widths, 'M' is a pool.

    vgg16: [64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M]
    -> adaptive avg-pool 7x7 -> 4096 -> ReLU -> dropout -> 4096 -> ReLU -> dropout -> classes

The ``_bn`` variants put a BatchNorm2d between each convolution and its ReLU. Layer
indices inside ``features`` follow from the list exactly as in torchvision, so state-dict
keys (``features.0.weight``, ``classifier.6.bias``) match.
"""
from __future__ import annotations

from typing import Sequence, Union

from .._checks import int_arg
from .. import nn

__all__ = ["VGG", "make_layers", "CONFIGS", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn",
           "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]

# The configurations of the paper's Table 1 (A, B, D, E).
CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def make_layers(cfg: Sequence[Union[int, str]], batch_norm: bool = False,
                in_channels: int = 3) -> nn.Sequential:
    """The convolutional part of a VGG from its configuration list.

    Args:
        cfg: ints are the output channels of a 3x3 convolution (+ BN) + ReLU, 'M' is a
            2x2 max pool with stride 2.
        batch_norm: put a BatchNorm2d after each convolution.
        in_channels: channels of the input image.
    Returns:
        an nn.Sequential, numbered as torchvision numbers it.

    >>> make_layers([8, "M", 16, "M"], batch_norm=True)   # a tiny two-block VGG body
    """
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"make_layers: cfg entries must be positive ints or 'M', got "
                             f"{v!r}")
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU())
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """A VGG: ``features`` (from make_layers), ``avgpool`` (adaptive), ``classifier``.

    Args:
        features: the convolutional body; its last layer's width is read from it.
        num_classes: outputs of the last layer.
        hidden_features: width of the two hidden fully connected layers (4096 in VGG).
        pool_size: side of the adaptive average pool before the head (7 in VGG).
        dropout: drop probability in the head.
        init_weights: He-normal convolutions, N(0, 0.01) linear layers, zero biases (as
            torchvision); False keeps the layers' default initialisation.
    """

    def __init__(self, features: nn.Sequential, num_classes: int = 1000,
                 hidden_features: int = 4096, pool_size: int = 7, dropout: float = 0.5,
                 init_weights: bool = True) -> None:
        super().__init__()
        int_arg("VGG", "num_classes", num_classes, low=1)
        convs = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError("VGG: features has no Conv2d layer")
        channels = convs[-1].out_channels
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Linear(channels * pool_size * pool_size, hidden_features), nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(hidden_features, hidden_features), nn.ReLU(), nn.Dropout(p=dropout),
            nn.Linear(hidden_features, num_classes),
        )
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def _vgg(name: str, batch_norm: bool, num_classes: int, in_channels: int, width: int,
         **kwargs) -> VGG:
    int_arg(name, "num_classes", num_classes, low=1)   # before the features are built
    int_arg(name, "in_channels", in_channels, low=1)
    if not isinstance(width, int) or width <= 0 or width % 8:
        raise ValueError(f"{name}: width must be a positive multiple of 8, got {width!r}")
    # width scales every block: 64 is the paper's network, smaller widths are for tests.
    cfg = [v if v == "M" else v * width // 64 for v in CONFIGS[name]]
    return VGG(make_layers(cfg, batch_norm, in_channels), num_classes=num_classes, **kwargs)


_DOC = """{title} ({params} parameters with 1000 classes at full width).

    Args:
        num_classes: outputs of the last layer.
        in_channels: image channels.
        width: channels of the first block (64 in the paper; each later block doubles it
            up to 8x); a smaller multiple of 8 makes a narrow network for experiments.
        **kwargs: hidden_features, pool_size, dropout, init_weights of VGG.
    Returns:
        a VGG module; inputs need at least 32x32 pixels (five 2x2 pools).

    >>> model = models.{name}(num_classes=10, width=16, hidden_features=64, pool_size=1)
    >>> model(md.randn(2, 3, 32, 32)).shape
    (2, 10)
    """


def vgg11(num_classes: int = 1000, in_channels: int = 3, width: int = 64, **kwargs) -> VGG:
    return _vgg("vgg11", False, num_classes, in_channels, width, **kwargs)


def vgg11_bn(num_classes: int = 1000, in_channels: int = 3, width: int = 64,
             **kwargs) -> VGG:
    return _vgg("vgg11", True, num_classes, in_channels, width, **kwargs)


def vgg13(num_classes: int = 1000, in_channels: int = 3, width: int = 64, **kwargs) -> VGG:
    return _vgg("vgg13", False, num_classes, in_channels, width, **kwargs)


def vgg13_bn(num_classes: int = 1000, in_channels: int = 3, width: int = 64,
             **kwargs) -> VGG:
    return _vgg("vgg13", True, num_classes, in_channels, width, **kwargs)


def vgg16(num_classes: int = 1000, in_channels: int = 3, width: int = 64, **kwargs) -> VGG:
    return _vgg("vgg16", False, num_classes, in_channels, width, **kwargs)


def vgg16_bn(num_classes: int = 1000, in_channels: int = 3, width: int = 64,
             **kwargs) -> VGG:
    return _vgg("vgg16", True, num_classes, in_channels, width, **kwargs)


def vgg19(num_classes: int = 1000, in_channels: int = 3, width: int = 64, **kwargs) -> VGG:
    return _vgg("vgg19", False, num_classes, in_channels, width, **kwargs)


def vgg19_bn(num_classes: int = 1000, in_channels: int = 3, width: int = 64,
             **kwargs) -> VGG:
    return _vgg("vgg19", True, num_classes, in_channels, width, **kwargs)


# One docstring per builder, from the shared template (parameter counts are torchvision's).
for _fn, _params in [(vgg11, "132,863,336"), (vgg11_bn, "132,868,840"),
                     (vgg13, "133,047,848"), (vgg13_bn, "133,053,736"),
                     (vgg16, "138,357,544"), (vgg16_bn, "138,365,992"),
                     (vgg19, "143,667,240"), (vgg19_bn, "143,678,248")]:
    _name = _fn.__name__
    _title = f"VGG-{_name[3:5]}" + (" with BatchNorm" if _name.endswith("_bn") else "")
    _fn.__doc__ = _DOC.format(title=_title, params=_params, name=_name)
del _fn, _params, _name, _title

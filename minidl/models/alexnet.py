"""AlexNet (Krizhevsky et al. 2012), in torchvision's single-stream layout.

The ideas it brought to ImageNet: a deep stack of convolutions with ReLU (fast to train),
overlapping max pooling, and dropout in the large fully connected head. The original was
split across two GPUs; this is the one-stream version torchvision ships (64-192-384-256-256
channels), so its state dict loads torchvision's weights key for key.

    x (N, 3, 224, 224)
    -> conv 11x11/4 -> ReLU -> max-pool 3/2       (N, 64, 27, 27)
    -> conv 5x5     -> ReLU -> max-pool 3/2       (N, 192, 13, 13)
    -> conv 3x3 x3 (384, 256, 256) -> max-pool 3/2 (N, 256, 6, 6)
    -> adaptive avg-pool 6x6 -> dropout -> 4096 -> dropout -> 4096 -> num_classes
"""
from __future__ import annotations

from .._checks import int_arg
from .. import nn

__all__ = ["AlexNet", "alexnet"]


class AlexNet(nn.Module):
    """AlexNet: ``features`` (5 convolutions), ``avgpool`` (adaptive 6x6), ``classifier``.

    Args are those of ``alexnet``.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5,
                 hidden_features: int = 4096) -> None:
        super().__init__()
        int_arg("AlexNet", "num_classes", num_classes, low=1)
        int_arg("AlexNet", "in_channels", in_channels, low=1)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        # Adaptive pooling makes the head independent of the input size.
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, hidden_features), nn.ReLU(),
            nn.Dropout(p=dropout), nn.Linear(hidden_features, hidden_features), nn.ReLU(),
            nn.Linear(hidden_features, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def alexnet(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5,
            hidden_features: int = 4096) -> AlexNet:
    """AlexNet as torchvision builds it (61,100,840 parameters with 1000 classes).

    Args:
        num_classes: size of the output layer.
        in_channels: image channels.
        dropout: drop probability of the two dropout layers of the head.
        hidden_features: width of the two hidden layers of the head (4096; a smaller
            value makes a light network for experiments: the head holds 89% of the weights).
    Returns:
        an AlexNet module; inputs of at least 63x63 pixels work (224x224 is the usual).

    >>> model = models.alexnet(num_classes=10)
    >>> model(md.randn(2, 3, 64, 64)).shape
    (2, 10)
    """
    return AlexNet(num_classes=num_classes, in_channels=in_channels, dropout=dropout,
                   hidden_features=hidden_features)

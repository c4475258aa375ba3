"""LeNet-5 (LeCun et al. 1998): the first convolutional network that learned from pixels.

The idea in one picture: convolution (local features shared across the image), then
subsampling (average pooling halves the resolution), twice; then a small MLP.

    x (N, 1, 28, 28)
    -> conv 5x5, 6 maps, padding 2 -> act -> avg-pool 2   (N, 6, 14, 14)
    -> conv 5x5, 16 maps           -> act -> avg-pool 2   (N, 16, 5, 5)
    -> flatten -> 120 -> act -> 84 -> act -> num_classes

The original took 32x32 images; MNIST digits are 28x28, so the first convolution pads by
2 (as the course notes and d2l do) and the shapes after it are the original ones.
"""
from __future__ import annotations

from .._checks import int_arg
from .. import nn

__all__ = ["LeNet5", "lenet5"]

_ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU}


class LeNet5(nn.Module):
    """LeNet-5 with average-pool subsampling and a choice of activation.

    ``features`` holds the two convolution/subsampling stages, ``avgpool`` an adaptive
    average pool to 5x5 (the identity at 28x28, so other input sizes of at least 12x12
    also work), ``classifier`` the three fully connected layers.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 activation: str = "tanh") -> None:
        super().__init__()
        int_arg("LeNet5", "num_classes", num_classes, low=1)
        int_arg("LeNet5", "in_channels", in_channels, low=1)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"lenet5: activation must be one of {sorted(_ACTIVATIONS)}, "
                             f"got {activation!r}")
        act = _ACTIVATIONS[activation]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), act(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), act(),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((5, 5))
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), act(),
            nn.Linear(120, 84), act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def lenet5(num_classes: int = 10, in_channels: int = 1, activation: str = "tanh") -> LeNet5:
    """LeNet-5 for 28x28 images (61,706 parameters with 10 classes).

    Args:
        num_classes: size of the output layer.
        in_channels: image channels (1 for MNIST).
        activation: 'tanh' (the original), 'sigmoid' (d2l's) or 'relu' (trains faster).
    Returns:
        a LeNet5 module; its output is (N, num_classes) logits.

    >>> model = models.lenet5(activation="relu")
    >>> model(md.randn(8, 1, 28, 28)).shape
    (8, 10)
    """
    return LeNet5(num_classes=num_classes, in_channels=in_channels, activation=activation)

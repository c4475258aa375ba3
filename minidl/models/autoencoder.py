"""A convolutional autoencoder, for the anomaly-detection example.

The encoder squeezes an image through strided convolutions to a small code; the decoder
rebuilds it with transposed convolutions. Trained only on normal images, it learns to
rebuild those well, so a large reconstruction error flags an input unlike the training
data: an anomaly.

    x (N, C, H, W) ─ conv 3x3/2 ─ ReLU ─ conv 3x3/2 ─ ReLU ─ conv 3x3/1 ─ code
      code (N, latent, H/4, W/4) ─ convT 3x3/1 ─ ReLU ─ convT 3x3/2 ─ ReLU ─ convT 3x3/2
      ─ sigmoid ─ x_hat (N, C, H, W)        (H and W multiples of 4; pixels in [0, 1])
"""
from __future__ import annotations

from .._checks import int_arg, tensor_arg
from .. import nn

__all__ = ["ConvAutoencoder", "conv_autoencoder"]


class ConvAutoencoder(nn.Module):
    """``encoder`` to a (latent, H/4, W/4) code and ``decoder`` back to (C, H, W).

    Args:
        in_channels: image channels.
        base_width: channels after the first convolution (the second has twice as many).
        latent_channels: channels of the code (the bottleneck that forces compression).
        sigmoid_output: squash the reconstruction into (0, 1) for images scaled to [0, 1].
    """

    def __init__(self, in_channels: int = 1, base_width: int = 16, latent_channels: int = 8,
                 sigmoid_output: bool = True) -> None:
        super().__init__()
        int_arg("ConvAutoencoder", "in_channels", in_channels, low=1)
        w = base_width
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, w, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, latent_channels, kernel_size=3, padding=1),
        )
        # output_padding=1 makes each stride-2 transposed conv exactly double the size.
        decoder = [
            nn.ConvTranspose2d(latent_channels, 2 * w, kernel_size=3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, kernel_size=3, stride=2, padding=1,
                               output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(w, in_channels, kernel_size=3, stride=2, padding=1,
                               output_padding=1),
        ]
        if sigmoid_output:
            decoder.append(nn.Sigmoid())
        self.decoder = nn.Sequential(*decoder)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, code):
        return self.decoder(code)

    def forward(self, x):
        # the size check below reads x.shape[2:] before any layer could check the input
        tensor_arg("ConvAutoencoder", "input", x)
        if x.ndim != 4:
            raise ValueError(f"ConvAutoencoder: expected a 4-D input (N, C, H, W), got shape "
                             f"{x.shape}")
        h, w = x.shape[2], x.shape[3]
        if h % 4 or w % 4:
            raise ValueError(f"ConvAutoencoder: height and width must be multiples of 4 "
                             f"(two stride-2 stages), got {h}x{w}")
        return self.decode(self.encode(x))

    def reconstruction_error(self, x):
        """The anomaly score: mean squared error per sample, shape (N,)."""
        diff = self(x) - x
        return (diff * diff).mean(dim=(1, 2, 3))


def conv_autoencoder(in_channels: int = 1, base_width: int = 16, latent_channels: int = 8,
                     sigmoid_output: bool = True) -> ConvAutoencoder:
    """A small convolutional autoencoder (for 28x28 digits: code 8x7x7 = 392 numbers).

    Args:
        in_channels: image channels.
        base_width: channels of the first encoder convolution.
        latent_channels: channels of the code.
        sigmoid_output: end with a sigmoid (inputs scaled to [0, 1]).
    Returns:
        a ConvAutoencoder; ``model(x)`` has x's shape, ``model.reconstruction_error(x)``
        gives one anomaly score per sample.

    >>> model = models.conv_autoencoder()
    >>> model(md.rand(4, 1, 28, 28)).shape
    (4, 1, 28, 28)
    """
    return ConvAutoencoder(in_channels, base_width, latent_channels, sigmoid_output)

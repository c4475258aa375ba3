"""Identity and Flatten: the two layers that only pass or reshape their input."""
from __future__ import annotations

from ...tensor import Tensor
from ..module import Module

__all__ = ["Identity", "Flatten"]


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. a removed classifier head).

    Any constructor arguments are accepted and ignored, as in PyTorch.
    >>> model.fc = nn.Identity()
    """

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Flatten(Module):
    """Flattens dims ``start_dim`` .. ``end_dim`` into one: (N, C, H, W) -> (N, C*H*W).

    >>> nn.Flatten()(md.zeros(2, 3, 4, 5)).shape
    (2, 60)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Flatten: expected a Tensor input, got {type(x).__name__}")
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

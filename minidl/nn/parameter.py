"""Parameter: a Tensor that a Module registers as one of its learnable weights."""
from __future__ import annotations

from ..backend import get_default_device
from ..tensor import Tensor, get_default_dtype, tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A Tensor that a Module registers automatically when assigned as an attribute.

    A Parameter is a leaf that requires grad by default. Made from a Tensor it shares that
    tensor's array (as in PyTorch), so ``Parameter(md.zeros(3))`` costs no copy.

    Args:
        data: a Tensor, a NumPy/CuPy array or a nested list (None: an empty float tensor).
        requires_grad: whether optimizers should update it (default True).

    >>> w = nn.Parameter(md.randn(4, 3))
    >>> layer.weight = w          # now listed by layer.parameters()
    """

    def __new__(cls, data=None, requires_grad: bool = True):
        if data is None:
            data = tensor([], dtype=get_default_dtype(), device=get_default_device())
        if isinstance(data, Tensor):
            array = data.data  # shared, not copied
        else:
            array = tensor(data).data
        if requires_grad and array.dtype.kind not in "fc":
            raise TypeError(f"Parameter: only float tensors can require grad, got dtype "
                            f"{array.dtype}")
        return cls._wrap(array, requires_grad=bool(requires_grad))

    def __init__(self, data=None, requires_grad: bool = True):
        # Everything is done in __new__; Tensor.__init__ would copy the data again.
        pass

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        return (Parameter, (Tensor._wrap(self.data), self.requires_grad))

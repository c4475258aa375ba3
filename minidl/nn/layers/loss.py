"""Loss layers over minidl/ops/loss.py: CrossEntropyLoss, NLLLoss, MSELoss, L1Loss,
BCEWithLogitsLoss.

A class weight (and BCE's pos_weight) is a buffer, as in PyTorch: it follows
``model.to(device)`` and, when given, is saved in the state dict.
"""
from __future__ import annotations

import warnings

from ...ops import loss as _loss
from ...tensor import Tensor
from ..module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCEWithLogitsLoss"]

_REDUCTIONS = ("mean", "sum", "none")


def _reduction(name: str, size_average, reduce, reduction: str) -> str:
    """PyTorch's legacy size_average/reduce flags folded into ``reduction``."""
    if size_average is not None or reduce is not None:
        warnings.warn(f"{name}: size_average and reduce are deprecated, use reduction",
                      DeprecationWarning, stacklevel=3)
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else "mean" if size_average else "sum"
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got "
                         f"{reduction!r}")
    return reduction


def _optional_tensor(name: str, arg: str, value):
    if value is not None and not isinstance(value, Tensor):
        raise TypeError(f"{name}: {arg} must be a Tensor or None, got "
                        f"{type(value).__name__}")
    return value


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = _reduction(type(self).__name__, size_average, reduce, reduction)


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _optional_tensor(type(self).__name__, "weight",
                                                        weight))


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy of (N, C[, ...]) logits against class indices or probabilities.

    loss_n = -sum_c w_c q_nc log softmax(x_n)_c with q the (smoothed) target:
    (1 - eps) * onehot + eps / C for label_smoothing eps. 'mean' divides by the summed
    weights of the non-ignored targets.

    Args:
        weight: (C,) class weights.
        ignore_index: target value that contributes nothing (index targets only).
        reduction: 'mean', 'sum' or 'none'.
        label_smoothing: eps in [0, 1].

    >>> loss = nn.CrossEntropyLoss(label_smoothing=0.1)(logits, labels)
    """

    def __init__(self, weight: "Tensor | None" = None, size_average=None,
                 ignore_index: int = -100, reduce=None, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return _loss.cross_entropy(input, target, self.weight, self.ignore_index,
                                   self.reduction, self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities (N, C[, ...]) at the target classes.

    >>> nn.NLLLoss()(F.log_softmax(logits, 1), labels)
    """

    def __init__(self, weight: "Tensor | None" = None, size_average=None,
                 ignore_index: int = -100, reduce=None, reduction: str = "mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return _loss.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class MSELoss(_Loss):
    """Mean squared error (input - target)^2. >>> nn.MSELoss()(pred, target)"""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return _loss.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """Mean absolute error |input - target|. >>> nn.L1Loss()(pred, target)"""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return _loss.l1_loss(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits, stable for any magnitude:
    loss = -w [p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], p = pos_weight.

    Args:
        weight: rescaling weight broadcast against the input.
        reduction: 'mean', 'sum' or 'none'.
        pos_weight: weight of positive examples, broadcast over the last (class) dim.

    >>> nn.BCEWithLogitsLoss(pos_weight=md.full((3,), 2.0))(logits, targets)
    """

    def __init__(self, weight: "Tensor | None" = None, size_average=None, reduce=None,
                 reduction: str = "mean", pos_weight: "Tensor | None" = None):
        super().__init__(size_average, reduce, reduction)
        name = type(self).__name__
        self.register_buffer("weight", _optional_tensor(name, "weight", weight))
        self.register_buffer("pos_weight", _optional_tensor(name, "pos_weight", pos_weight))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return _loss.binary_cross_entropy_with_logits(input, target, self.weight,
                                                      self.reduction, self.pos_weight)

"""Loss functions: cross-entropy, negative log-likelihood, MSE, L1, BCE with logits.

Every loss computes one value per position, then reduces it:

    'none'  the per-position losses, shape (N, *)
    'sum'   their sum, a 0-d tensor
    'mean'  their sum divided by a denominator: the number of positions, or for class
            targets with weights, the sum of the weights of the non-ignored targets
            (so a weighted mean is a true weighted average, as in PyTorch).

Backward is the per-position gradient times the upstream gradient, divided by the same
denominator for 'mean'.

cross_entropy is fused: log-softmax and the loss are one Function, and its backward is
the classic softmax(x) - target, never autograd through exp and log, so it is exact and
stable for logits of any magnitude.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._checks import same_device
from ..backend import get_array_module
from ..function import Function
from ..kernels import softmax_xent as xent_kernels
from ..kernels import use_kernels
from ..tensor import Tensor

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss",
           "binary_cross_entropy_with_logits", "one_hot"]

_REDUCTIONS = ("mean", "sum", "none")


# ---- reduction helpers ----------------------------------------------------------------
def _reduce(loss, reduction, denominator):
    """Per-position losses -> 'none': themselves; 'sum': 0-d sum; 'mean': sum / denominator."""
    if reduction == "none":
        return loss
    xp = get_array_module(loss)
    total = loss.sum()
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):   # all ignored: nan, as PyTorch
            total = total / denominator
    return xp.asarray(total, dtype=loss.dtype)


def _position_grad(gy, shape, reduction, denominator):
    """The upstream gradient of each position's loss: gy, or gy (/ denominator) broadcast."""
    if reduction == "none":
        return gy
    xp = get_array_module(gy)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            gy = gy / denominator
    return xp.broadcast_to(xp.asarray(gy, dtype=gy.dtype), shape)


def _class_view(v, ndim):
    """(C,) -> (1, C, 1, ..., 1), to broadcast against (N, C, *)."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _one_hot_mask(index, num_classes, xp):
    """index (N, *) -> bool (N, C, *): True where c == index[n, *]."""
    classes = xp.arange(num_classes).reshape((1, -1) + (1,) * (index.ndim - 1))
    return classes == index[:, None]


# ---- cross-entropy and NLL ------------------------------------------------------------
class SoftmaxCrossEntropy(Function):
    """Cross-entropy of softmax(x) against class indices or class probabilities, fused.

    forward   x (N, C, *) logits;  target (N, *) class indices, or (N, C, *) probabilities
              logp = x - logsumexp(x) over C  (shifted by the max: no overflow)
              q[n, c] = w_c * ((1 - eps) * t[n, c] + eps / C),  t the one-hot of the index
                        (or the given probabilities); q = 0 where the target is ignored
              loss[n] = -sum_c q[n, c] * logp[n, c]     -> (N, *), then reduced
              mean divides by sum of w[target] over non-ignored positions (indices), or by
              the number of positions N * prod(*) (probabilities)
    backward  gx[n, c] = g[n] * (softmax(x)[n, c] * sum_c' q[n, c'] - q[n, c])
              (= softmax - target without weights), g = gy, / denominator for 'mean';
              probabilities also get gt[n, c] = -g[n] * (1 - eps) * w_c * logp[n, c]
    kernels   on a GPU, class indices without class weights run softmax_xent.cu: one
              block per row for the loss and the softmax, one pass for the gradient;
              that path saves ``prob`` and ``target`` in place of ``logp`` and the
              index bookkeeping.
    """

    def __init__(self, weight, ignore_index, reduction, label_smoothing, soft_target):
        self.weight = weight                  # (C,) array of x's dtype, or None
        self.ignore_index, self.reduction = ignore_index, reduction
        self.label_smoothing, self.soft_target = label_smoothing, soft_target

    def _fused(self, a) -> bool:
        """Whether the softmax_xent kernels fit: class indices, no class weights."""
        return not self.soft_target and self.weight is None and use_kernels(a)

    def forward(self, x, target):
        xp = get_array_module(x)
        if self._fused(x):
            loss, self.prob = xent_kernels.softmax_xent_forward(
                x, target, self.ignore_index, self.label_smoothing)
            self.target, self.loss_shape = target, loss.shape
            self.denominator = (target != self.ignore_index).sum(dtype=x.dtype)
            return _reduce(loss, self.reduction, self.denominator)
        C, eps = x.shape[1], self.label_smoothing
        logp = x - x.max(axis=1, keepdims=True)
        logp -= xp.log(xp.exp(logp).sum(axis=1, keepdims=True))
        self.logp = logp
        w = None if self.weight is None else _class_view(self.weight, x.ndim)
        if self.soft_target:
            q = target * (1 - eps) + eps / C if eps else target
            self.q = q if w is None else q * w
            loss = -(self.q * logp).sum(axis=1)
            self.denominator = loss.size
        else:
            self.valid = target != self.ignore_index
            self.index = xp.where(self.valid, target, 0)     # a safe index where ignored
            w_t = self.valid.astype(x.dtype)
            if self.weight is not None:
                w_t *= self.weight[self.index]
            self.w_target = w_t
            picked = xp.take_along_axis(logp, self.index[:, None], axis=1)[:, 0]
            loss = -(1 - eps) * w_t * picked
            if eps:
                smooth = (logp if w is None else logp * w).sum(axis=1)
                loss -= (eps / C) * smooth
            # ignored positions contribute 0 even where their logp is -inf
            loss = xp.where(self.valid, loss, x.dtype.type(0))
            self.denominator = w_t.sum()
        self.loss_shape = loss.shape
        return _reduce(loss, self.reduction, self.denominator)

    def backward(self, gy):
        xp = get_array_module(gy)
        if self._fused(gy):
            g = _position_grad(gy, self.loss_shape, self.reduction, self.denominator)
            return xent_kernels.softmax_xent_backward(self.prob, self.target, g,
                                                      self.ignore_index,
                                                      self.label_smoothing), None
        g = _position_grad(gy, self.loss_shape, self.reduction, self.denominator)[:, None]
        logp, eps, C = self.logp, self.label_smoothing, self.logp.shape[1]
        prob = xp.exp(logp)
        if self.soft_target:
            gx = prob * self.q.sum(axis=1, keepdims=True)
            gx -= self.q
        else:
            w_sum = C if self.weight is None else self.weight.sum()
            valid = self.valid[:, None].astype(logp.dtype)
            q_sum = (1 - eps) * self.w_target[:, None] + (eps / C) * w_sum * valid
            gx = prob * q_sum
            if eps:
                w = 1 if self.weight is None else _class_view(self.weight, gx.ndim)
                gx -= (eps / C) * w * valid
            gx -= _one_hot_mask(self.index, C, xp) * ((1 - eps) * self.w_target[:, None])
        gx *= g
        gt = None
        if self.soft_target and self.needs_input_grad[1]:
            w = 1 if self.weight is None else _class_view(self.weight, logp.ndim)
            gt = -(1 - eps) * w * logp * g
        return gx, gt


class NLLLoss(Function):
    """Negative log-likelihood of log-probabilities at the target classes.

    forward   x (N, C, *) log-probabilities, target (N, *) class indices
              loss[n] = -w[t_n] * x[n, t_n]  (0 where t_n == ignore_index) -> reduced;
              mean divides by the sum of w[t_n] over non-ignored positions
    backward  gx[n, c] = -g[n] * w[t_n] where c == t_n, else 0
    """

    def __init__(self, weight, ignore_index, reduction):
        self.weight, self.ignore_index, self.reduction = weight, ignore_index, reduction

    def forward(self, x, target):
        xp = get_array_module(x)
        self.valid = target != self.ignore_index
        self.index = xp.where(self.valid, target, 0)
        w_t = self.valid.astype(x.dtype)
        if self.weight is not None:
            w_t *= self.weight[self.index]
        self.w_target = w_t
        picked = xp.take_along_axis(x, self.index[:, None], axis=1)[:, 0]
        loss = xp.where(self.valid, -w_t * picked, x.dtype.type(0))
        self.denominator = w_t.sum()
        self.x_shape = x.shape
        return _reduce(loss, self.reduction, self.denominator)

    def backward(self, gy):
        xp = get_array_module(gy)
        g = _position_grad(gy, self.w_target.shape, self.reduction, self.denominator)
        hot = _one_hot_mask(self.index, self.x_shape[1], xp)
        return hot * (-self.w_target * g)[:, None], None     # no gradient for indices


def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got "
                         f"{reduction!r}")


def _check_float_input(op, x, min_ndim=0):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a float tensor, got dtype {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(f"{op}: expected input with at least {min_ndim} dimensions, got "
                         f"shape {x.shape}")


def _class_weight(op, weight, x):
    """Validate a (C,) class weight; return its array in x's dtype (a constant)."""
    if weight is None:
        return None
    C = x.shape[1]
    if not isinstance(weight, Tensor):
        raise TypeError(f"{op}: weight must be a Tensor or None, got {type(weight).__name__}")
    if weight.shape != (C,):
        raise ValueError(f"{op}: weight must have shape ({C},), one value per class, got "
                         f"{weight.shape}")
    same_device(op, x, weight=weight)
    if weight.dtype.kind != "f":
        raise TypeError(f"{op}: weight must be a float tensor, got dtype {weight.dtype}")
    return weight.data.astype(x.dtype, copy=False)


def _check_class_target(op, x, target, ignore_index, soft_ok=False):
    """target: integer class indices of shape (N, *), in [0, C) unless ignored."""
    expected = x.shape[:1] + x.shape[2:]
    if target.dtype.kind not in "iu":
        also = f", or float probabilities of input's shape {x.shape}" if soft_ok else ""
        raise TypeError(f"{op}: target must hold integer class indices (int64) of shape "
                        f"{expected}{also}; got dtype {target.dtype} and shape "
                        f"{target.shape}")
    if target.shape != expected:
        raise ValueError(f"{op}: target must have shape {expected} for input of shape "
                         f"{x.shape}, got {target.shape}")
    same_device(op, x, target=target)
    C = x.shape[1]
    t = target.data
    bad = ((t < 0) | (t >= C)) & (t != ignore_index)
    if bool(bad.any()):
        value = int(t[bad].reshape(-1)[0])
        raise ValueError(f"{op}: target values must be class indices in [0, {C - 1}] (or "
                         f"ignore_index={ignore_index}), got {value}")


def _check_ignore_index(op, ignore_index):
    if not isinstance(ignore_index, numbers.Integral) or isinstance(ignore_index, bool):
        raise TypeError(f"{op}: ignore_index must be an int, got {ignore_index!r}")


def _unbatched(op, input, target, soft):
    """(C,) input and () target (or (C,) probabilities) -> a batch of one."""
    if not soft and target.ndim != 0:
        raise ValueError(f"{op}: for an unbatched input of shape {input.shape} (C,), target "
                         f"must be one class index (a 0-d tensor), got shape {target.shape}; "
                         f"a batch of logits is (N, C)")
    return input.reshape(1, -1), target.reshape(1, -1) if soft else target.reshape(1)


def _check_nonempty(op, input, reduction, classes=True):
    """Zero classes is always an error; an empty batch only for reduction='mean'."""
    if classes and input.ndim >= 2 and input.shape[1] == 0:
        raise ValueError(f"{op}: input has 0 classes (shape {input.shape}); expected "
                         f"(N, C, ...) with C >= 1")
    if reduction == "mean" and input.numel() == 0:
        raise ValueError(f"{op}: reduction='mean' over an empty batch (input shape "
                         f"{input.shape}) has no value; use reduction='sum' (0) or skip "
                         f"the batch")


def cross_entropy(input: Tensor, target: Tensor, weight: "Tensor | None" = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between softmax(input) over dim 1 and the target, as PyTorch's.

    Args:
        input: (N, C) or (N, C, d1, ...) logits (or (C,) for one sample).
        target: (N,) or (N, d1, ...) integer class indices, or float class probabilities
            of input's shape (soft labels from MixUp/CutMix).
        weight: optional (C,) class weights (a constant: no gradient flows to it).
        ignore_index: class-index targets equal to it contribute nothing (indices only).
        reduction: 'mean', 'sum' or 'none'.
        label_smoothing: eps in [0, 1]; the target becomes (1 - eps) * target + eps / C.
    Returns:
        A 0-d tensor, or (N, d1, ...) losses for 'none'.
    Raises:
        TypeError: float class indices, or a non-float input.
        ValueError: labels outside [0, C), mismatched shapes, bad reduction or
            label_smoothing.

    >>> logits = md.randn(4, 10, requires_grad=True)
    >>> F.cross_entropy(logits, md.tensor([1, 0, 9, 3]), label_smoothing=0.1).backward()
    """
    op = "cross_entropy"
    _check_float_input(op, input, 1)
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: target must be a Tensor, got {type(target).__name__}")
    _check_reduction(op, reduction)
    _check_ignore_index(op, ignore_index)
    if not isinstance(label_smoothing, numbers.Real) or not 0 <= label_smoothing <= 1:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    soft = target.dtype.kind == "f" and target.shape == input.shape
    unbatched = input.ndim == 1
    if unbatched:
        input, target = _unbatched(op, input, target, soft)
    _check_nonempty(op, input, reduction)
    weight_array = _class_weight(op, weight, input)
    if soft:
        same_device(op, input, target=target)
        if target.dtype != input.dtype:
            raise TypeError(f"{op}: probability target has dtype {target.dtype} but input "
                            f"has dtype {input.dtype}")
    else:
        _check_class_target(op, input, target, ignore_index, soft_ok=True)
    fn = SoftmaxCrossEntropy(weight_array, int(ignore_index), reduction,
                             float(label_smoothing), soft)
    out = fn.apply(input, target)
    return out.reshape(()) if unbatched and reduction == "none" else out


def nll_loss(input: Tensor, target: Tensor, weight: "Tensor | None" = None,
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -input[n, target[n]] (weighted), for log-probabilities.

    ``nll_loss(log_softmax(x, 1), t)`` equals ``cross_entropy(x, t)``.

    Args:
        input: (N, C) or (N, C, d1, ...) log-probabilities (or (C,) for one sample).
        target: (N,) or (N, d1, ...) integer class indices.
        weight: optional (C,) class weights (a constant).
        ignore_index: targets equal to it contribute nothing.
        reduction: 'mean' (weighted mean over non-ignored targets), 'sum' or 'none'.
    Returns:
        A 0-d tensor, or (N, d1, ...) losses for 'none'.
    Raises:
        TypeError: non-integer target; ValueError: labels out of range, wrong shapes.

    >>> F.nll_loss(F.log_softmax(md.randn(4, 10), 1), md.tensor([1, 0, 9, 3]))
    """
    op = "nll_loss"
    _check_float_input(op, input, 1)
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: target must be a Tensor, got {type(target).__name__}")
    _check_reduction(op, reduction)
    _check_ignore_index(op, ignore_index)
    unbatched = input.ndim == 1
    if unbatched:
        input, target = _unbatched(op, input, target, False)
    _check_nonempty(op, input, reduction)
    weight_array = _class_weight(op, weight, input)
    _check_class_target(op, input, target, ignore_index)
    out = NLLLoss(weight_array, int(ignore_index), reduction).apply(input, target)
    return out.reshape(()) if unbatched and reduction == "none" else out


# ---- regression losses ----------------------------------------------------------------
class MSELoss(Function):
    """Mean squared error.

    forward   x, t (any shape, equal) -> loss = (x - t)^2, reduced (mean over all)
    backward  gx = 2 (x - t) g,  gt = -gx,  g = gy (/ numel for 'mean')
    """

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t):
        self.diff = x - t
        return _reduce(self.diff * self.diff, self.reduction, self.diff.size)

    def backward(self, gy):
        g = _position_grad(gy, self.diff.shape, self.reduction, self.diff.size)
        gx = 2 * self.diff * g
        return (gx if self.needs_input_grad[0] else None,
                -gx if self.needs_input_grad[1] else None)


class L1Loss(Function):
    """Mean absolute error.

    forward   x, t (any shape, equal) -> loss = |x - t|, reduced (mean over all)
    backward  gx = sign(x - t) g (0 where x == t, as PyTorch),  gt = -gx
    """

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t):
        xp = get_array_module(x)
        diff = x - t
        self.sign = xp.sign(diff)
        return _reduce(xp.abs(diff), self.reduction, diff.size)

    def backward(self, gy):
        g = _position_grad(gy, self.sign.shape, self.reduction, self.sign.size)
        gx = self.sign * g
        return (gx if self.needs_input_grad[0] else None,
                -gx if self.needs_input_grad[1] else None)


def _check_pair(op, input, target):
    _check_float_input(op, input)
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: target must be a Tensor, got {type(target).__name__}")
    same_device(op, input, target=target)
    if target.dtype.kind != "f":
        raise TypeError(f"{op}: target must be a float tensor, got dtype {target.dtype}")
    if target.dtype != input.dtype:
        raise TypeError(f"{op}: target has dtype {target.dtype} but input has dtype "
                        f"{input.dtype}")
    if target.shape != input.shape:
        raise ValueError(f"{op}: target shape {target.shape} must equal input shape "
                         f"{input.shape}")


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Squared error (input - target)^2, reduced ('mean' over every element).

    Args:
        input, target: float tensors of the same shape and dtype (both may need grad).
        reduction: 'mean', 'sum' or 'none'.
    Raises:
        ValueError: different shapes (PyTorch broadcasts with a warning; minidl refuses,
            since it is almost always a bug).

    >>> F.mse_loss(md.tensor([1.0, 2.0]), md.tensor([0.0, 0.0]))    # 2.5
    """
    _check_pair("mse_loss", input, target)
    _check_reduction("mse_loss", reduction)
    _check_nonempty("mse_loss", input, reduction, classes=False)
    return MSELoss(reduction).apply(input, target)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Absolute error |input - target|, reduced ('mean' over every element).

    Args:
        input, target: float tensors of the same shape and dtype (both may need grad).
        reduction: 'mean', 'sum' or 'none'.
    Raises:
        ValueError: different shapes.

    >>> F.l1_loss(md.tensor([1.0, -2.0]), md.tensor([0.0, 0.0]))    # 1.5
    """
    _check_pair("l1_loss", input, target)
    _check_reduction("l1_loss", reduction)
    _check_nonempty("l1_loss", input, reduction, classes=False)
    return L1Loss(reduction).apply(input, target)


# ---- binary cross-entropy -------------------------------------------------------------
class BCEWithLogits(Function):
    """Binary cross-entropy of sigmoid(x) against targets t in [0, 1], on logits.

    forward   x, t (any shape) -> loss = w * ((1 - t) x + l * softplus(-x)),
              l = 1 + (pos_weight - 1) t  (l = 1 without pos_weight);
              softplus(-x) = log(1 + e^-x) = max(-x, 0) + log(1 + e^-|x|): no overflow.
              Without pos_weight this is max(x, 0) - x t + log(1 + e^-|x|).
    backward  gx = g w ((1 - t) - l (1 - sigmoid(x)))   (= g w (sigmoid(x) - t) for l = 1)
              gt = g w (-x + (pos_weight - 1) softplus(-x))
    """

    def __init__(self, reduction, weight, pos_weight):
        self.reduction, self.weight, self.pos_weight = reduction, weight, pos_weight

    def forward(self, x, t):
        xp = get_array_module(x)
        self.x, self.t = x, t
        log_term = xp.log1p(xp.exp(-xp.abs(x)))
        self.softplus_neg = xp.maximum(-x, 0) + log_term
        if self.pos_weight is None:
            loss = xp.maximum(x, 0) - x * t + log_term
        else:
            loss = (1 - t) * x + (1 + (self.pos_weight - 1) * t) * self.softplus_neg
        if self.weight is not None:
            loss = loss * self.weight
        return _reduce(loss, self.reduction, loss.size)

    def backward(self, gy):
        xp = get_array_module(gy)
        x, t = self.x, self.t
        g = _position_grad(gy, x.shape, self.reduction, x.size)
        if self.weight is not None:
            g = g * self.weight
        gx = gt = None
        if self.needs_input_grad[0]:
            z = xp.exp(-xp.abs(x))                   # sigmoid without overflow
            sig = xp.where(x >= 0, 1 / (1 + z), z / (1 + z))
            if self.pos_weight is None:
                gx = g * (sig - t)
            else:
                gx = g * ((1 - t) - (1 + (self.pos_weight - 1) * t) * (1 - sig))
        if self.needs_input_grad[1]:
            gt = -x if self.pos_weight is None else \
                -x + (self.pos_weight - 1) * self.softplus_neg
            gt = g * gt
        return gx, gt


def _broadcast_constant(op, name, value, x):
    """An optional weight that must broadcast to x's shape; its array in x's dtype."""
    if value is None:
        return None
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(value).__name__}")
    same_device(op, x, **{name: value})
    try:
        ok = np.broadcast_shapes(value.shape, x.shape) == x.shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{op}: {name} of shape {value.shape} does not broadcast to input "
                         f"shape {x.shape}")
    return value.data.astype(x.dtype, copy=False)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,
                                     weight: "Tensor | None" = None,
                                     reduction: str = "mean",
                                     pos_weight: "Tensor | None" = None) -> Tensor:
    """Binary cross-entropy on logits: sigmoid and log-loss in one stable formula.

    Args:
        input: logits, any shape.
        target: float targets in [0, 1] of input's shape (both may need grad).
        weight: optional per-element rescaling, broadcast to input's shape (a constant).
        pos_weight: optional weight of the positive term, broadcast along the last dim,
            e.g. (C,) for multi-label input (N, C) (a constant).
        reduction: 'mean', 'sum' or 'none'.
    Raises:
        ValueError: target shape differs from input's; weights that do not broadcast.

    >>> F.binary_cross_entropy_with_logits(md.tensor([100.0, -100.0]), md.tensor([1.0, 0.0]))
    """
    op = "binary_cross_entropy_with_logits"
    _check_pair(op, input, target)
    _check_reduction(op, reduction)
    _check_nonempty(op, input, reduction, classes=False)
    weight_array = _broadcast_constant(op, "weight", weight, input)
    pos_weight_array = _broadcast_constant(op, "pos_weight", pos_weight, input)
    return BCEWithLogits(reduction, weight_array, pos_weight_array).apply(input, target)


# ---- one-hot --------------------------------------------------------------------------
def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding: shape (*, num_classes), 1 at each value's class.

    Args:
        tensor: integer class indices, any shape.
        num_classes: number of classes; -1 means max(tensor) + 1.
    Returns:
        An int64 tensor of shape tensor.shape + (num_classes,) (not differentiable).
    Raises:
        TypeError: a non-integer tensor. ValueError: negative values, or values >=
            num_classes.

    >>> F.one_hot(md.tensor([0, 2]), 3)     # [[1, 0, 0], [0, 0, 1]]
    """
    op = "one_hot"
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: tensor must be a Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind not in "iu":
        raise TypeError(f"{op}: tensor must hold integer class indices, got dtype "
                        f"{tensor.dtype}")
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or \
            (num_classes < 1 and num_classes != -1):
        raise ValueError(f"{op}: num_classes must be a positive int or -1, got "
                         f"{num_classes!r}")
    t = tensor.data
    xp = get_array_module(t)
    if t.size and int(t.min()) < 0:
        raise ValueError(f"{op}: class values must be non-negative, got {int(t.min())}")
    if num_classes == -1:
        if not t.size:
            raise ValueError(f"{op}: cannot infer num_classes from an empty tensor; pass "
                             f"num_classes")
        num_classes = int(t.max()) + 1
    elif t.size and int(t.max()) >= num_classes:
        raise ValueError(f"{op}: class values must be in [0, {num_classes - 1}] for "
                         f"num_classes={num_classes}, got {int(t.max())}")
    return Tensor._wrap((t[..., None] == xp.arange(num_classes)).astype(np.int64))

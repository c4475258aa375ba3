"""Normalisation layers: BatchNorm1d/2d, LayerNorm, GroupNorm, InstanceNorm2d.

The math is in minidl/ops/norm.py (``F.batch_norm`` ...); a layer keeps the bookkeeping:
its affine Parameters (weight = gamma, bias = beta), the running statistics and the
``num_batches_tracked`` counter, and which statistics to use in train or eval mode.
"""
from __future__ import annotations

import numbers

import numpy as np

from ...backend import get_default_device
from ...grad_mode import no_grad
from ...ops import norm as _norm
from ...tensor import Tensor, get_default_dtype, ones, tensor, zeros
from .. import init
from ..module import Module
from ..parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm2d"]


def _check_count(layer: str, name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return int(value)


def _check_momentum(layer: str, momentum):
    if momentum is not None and (not isinstance(momentum, numbers.Real) or
                                 isinstance(momentum, bool) or not 0 <= momentum <= 1):
        raise ValueError(f"{layer}: momentum must be None or a float in [0, 1], got "
                         f"{momentum!r}")
    return momentum


def _affine_parameters(layer: Module, affine: bool, shape, bias: bool, dtype, device):
    """Register ``weight`` (ones) and ``bias`` (zeros) of ``shape``, or None where absent."""
    layer.register_parameter(
        "weight", Parameter(ones(shape, dtype=dtype, device=device)) if affine else None)
    layer.register_parameter(
        "bias", Parameter(zeros(shape, dtype=dtype, device=device))
        if affine and bias else None)


def _ones_zeros_(layer: Module) -> None:
    """PyTorch's init of normalisation layers: weight 1, bias 0."""
    if layer.weight is not None:
        init.ones_(layer.weight)
    if layer.bias is not None:
        init.zeros_(layer.bias)


class _NormBase(Module):
    """Parameters and running statistics shared by BatchNorm and InstanceNorm."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: "float | None" = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None,
                 dtype=None, *, bias: bool = True):
        super().__init__()
        name = type(self).__name__
        self.num_features = _check_count(name, "num_features", num_features)
        self.eps = eps
        self.momentum = _check_momentum(name, momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        device = device if device is not None else get_default_device()
        dtype = dtype if dtype is not None else get_default_dtype()
        _affine_parameters(self, self.affine, num_features, bias, dtype, device)
        if self.track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype,
                                                       device=device))
            self.register_buffer("running_var", ones(num_features, dtype=dtype,
                                                     device=device))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=np.int64,
                                                               device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """running_mean 0, running_var 1, num_batches_tracked 0."""
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Running statistics reset; weight 1, bias 0 (as PyTorch)."""
        self.reset_running_stats()
        _ones_zeros_(self)

    def _check_input_dim(self, input) -> None:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    """BatchNorm bookkeeping; the subclasses only say which input ranks they accept."""

    _expected = ""

    def _check_input_dim(self, input) -> None:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(input).__name__}")
        if input.ndim not in self._ranks:
            raise ValueError(f"{name}: expected {self._expected} input, got "
                             f"{input.ndim}-D input of shape {input.shape}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"{name}: input has {input.shape[1]} channels (shape "
                             f"{input.shape}) but the layer was built for "
                             f"num_features={self.num_features}")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        counting = self.training and self.track_running_stats
        if counting and self.momentum is None:
            # Cumulative (equal-weight) average of batches. Only this case reads the count:
            # on a GPU, .item() waits for every kernel queued so far.
            momentum = 1.0 / (int(self.num_batches_tracked.item()) + 1)
        # Batch statistics in training, and in eval too when nothing was tracked.
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        out = _norm.batch_norm(input, self.running_mean if track else None,
                               self.running_var if track else None, self.weight, self.bias,
                               training=use_batch_stats, momentum=momentum, eps=self.eps)
        if counting:            # counted only once the batch was accepted, on its device
            self.num_batches_tracked.data += 1
        return out


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, per channel C.

    training: y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta with the batch's mean and
    biased variance; running = (1 - momentum) * running + momentum * batch statistic
    (the unbiased variance); momentum=None gives the cumulative average. eval: the running
    statistics replace the batch's.

    Args:
        num_features: C.
        eps: added to the variance (1e-5).
        momentum: weight of the new batch in the running statistics (0.1), or None.
        affine: learn gamma (weight, init 1) and beta (bias, init 0).
        track_running_stats: keep running_mean/running_var/num_batches_tracked buffers;
            without them batch statistics are used in eval too.
        bias (keyword): learn beta when affine (default True, as PyTorch 2.x).

    >>> bn = nn.BatchNorm1d(16)
    >>> bn(md.randn(32, 16)).shape
    (32, 16)
    """

    _ranks = (2, 3)
    _expected = "2-D (N, C) or 3-D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs, per channel over N, H and W.

    See BatchNorm1d for the arguments and the running statistics.

    >>> bn = nn.BatchNorm2d(16)
    >>> bn(md.randn(8, 16, 5, 5)).shape
    (8, 16, 5, 5)
    """

    _ranks = (4,)
    _expected = "4-D (N, C, H, W)"


class InstanceNorm2d(_NormBase):
    """Instance normalisation: each (sample, channel) map standardised over H and W.

    Computed as group norm with one channel per group. As in PyTorch, affine=False and
    track_running_stats=False by default; with tracking, training updates the running
    statistics with the per-instance statistics averaged over the batch, and eval uses
    them.

    >>> nn.InstanceNorm2d(3)(md.randn(2, 3, 8, 8)).shape
    (2, 3, 8, 8)
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: "float | None" = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device=None,
                 dtype=None, *, bias: bool = True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype, bias=bias)

    def _check_input_dim(self, input) -> None:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(input).__name__}")
        if input.ndim not in (3, 4):
            raise ValueError(f"{name}: expected 3-D (C, H, W) or 4-D (N, C, H, W) input, "
                             f"got {input.ndim}-D input of shape {input.shape}")
        channels = input.shape[-3]
        if channels != self.num_features:
            raise ValueError(f"{name}: input has {channels} channels (shape {input.shape}) "
                             f"but the layer was built for num_features="
                             f"{self.num_features}")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        unbatched = input.ndim == 3
        x = input.unsqueeze(0) if unbatched else input
        if self.track_running_stats and not self.training:
            out = _norm.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                   self.bias, training=False, eps=self.eps)
        else:
            out = _norm.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)
            if self.track_running_stats:
                self._update_running_stats(x)
        return out.squeeze(0) if unbatched else out

    def _update_running_stats(self, x: Tensor) -> None:
        # PyTorch's rule: each instance updates the running statistics as a BatchNorm of
        # one sample would, and the N results are averaged.
        m = self.momentum if self.momentum is not None else 0.0
        a = x.data
        hw = a.shape[2] * a.shape[3]
        mean = a.mean(axis=(2, 3)).mean(axis=0)
        var = (a.var(axis=(2, 3)) * (hw / (hw - 1))).mean(axis=0)
        rm, rv = self.running_mean.data, self.running_var.data
        rm[...] = (1 - m) * rm + m * mean.astype(rm.dtype, copy=False)
        rv[...] = (1 - m) * rv + m * var.astype(rv.dtype, copy=False)


class LayerNorm(Module):
    """Layer normalisation over the trailing ``normalized_shape`` dims of each sample.

    y = gamma * (x - mean) / sqrt(var + eps) + beta, statistics over the last
    len(normalized_shape) dims; the same in train and eval.

    Args:
        normalized_shape: int or tuple, the trailing dims to normalise.
        eps: added to the variance.
        elementwise_affine: learn gamma (init 1) and beta (init 0) of normalized_shape.
        bias: learn beta (when elementwise_affine).

    >>> nn.LayerNorm(10)(md.randn(4, 10)).shape
    (4, 10)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) \
            else tuple(normalized_shape)
        if not shape or any(not isinstance(d, numbers.Integral) or isinstance(d, bool) or
                            d < 1 for d in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a "
                             f"non-empty tuple of them, got {normalized_shape!r}")
        self.normalized_shape = tuple(int(d) for d in shape)
        self.eps = eps
        self.elementwise_affine = bool(elementwise_affine)
        device = device if device is not None else get_default_device()
        dtype = dtype if dtype is not None else get_default_dtype()
        _affine_parameters(self, self.elementwise_affine, self.normalized_shape, bias, dtype,
                           device)

    def reset_parameters(self) -> None:
        _ones_zeros_(self)

    def forward(self, input: Tensor) -> Tensor:
        return _norm.layer_norm(input, self.normalized_shape, self.weight, self.bias,
                                self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class GroupNorm(Module):
    """Group normalisation: the C channels of each sample in G groups, each standardised.

    Independent of the batch size (GroupNorm(1, C) is LayerNorm over C, H, W;
    GroupNorm(C, C) is InstanceNorm); the same in train and eval.

    Args:
        num_groups: G, must divide num_channels.
        num_channels: C.
        eps: added to the variance.
        affine: learn a per-channel gamma (init 1) and beta (init 0).
        bias (keyword): learn beta when affine (default True).

    >>> nn.GroupNorm(4, 16)(md.randn(2, 16, 8, 8)).shape
    (2, 16, 8, 8)
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        num_groups = _check_count("GroupNorm", "num_groups", num_groups)
        num_channels = _check_count("GroupNorm", "num_channels", num_channels)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels must be divisible by num_groups, got "
                             f"num_channels={num_channels}, num_groups={num_groups}")
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps = eps
        self.affine = bool(affine)
        device = device if device is not None else get_default_device()
        dtype = dtype if dtype is not None else get_default_dtype()
        _affine_parameters(self, self.affine, num_channels, bias, dtype, device)

    def reset_parameters(self) -> None:
        _ones_zeros_(self)

    def forward(self, input: Tensor) -> Tensor:
        return _norm.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
                f"affine={self.affine}, bias={self.bias is not None}")

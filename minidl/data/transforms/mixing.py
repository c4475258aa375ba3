"""Batch-level mixing: MixUp and CutMix, which blend two samples and their labels.

Both take a batch (N, C, H, W) and its labels, integer classes (N,) or already soft
labels (N, num_classes), pair each sample with ``x[perm]`` for a random permutation,
and return the mixed batch with soft labels (N, num_classes) whose weights are the
share of each partner in the result. Train on them with ``F.cross_entropy``, which takes
probability targets (label smoothing lives there too).
"""
from __future__ import annotations

import numbers

import numpy as np

from ... import backend
from ...backend import device_of, get_array_module
from .base import integers, is_array, to_like
from .erase_noise import box_mask

__all__ = ["MixUp", "CutMix", "one_hot"]


def one_hot(labels, num_classes: int, dtype=np.float32):
    """(N,) integer labels -> (N, num_classes) rows of zeros with a one at the label."""
    xp = get_array_module(labels)
    return (labels[:, None] == xp.arange(num_classes)[None, :]).astype(dtype)


class _Mix:
    """Shared checks and label handling of MixUp and CutMix."""

    def __init__(self, alpha: float = 1.0, num_classes: int = None):
        name = type(self).__name__
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
            raise ValueError(f"{name}: alpha must be a positive number, got {alpha!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
                or num_classes < 1:
            raise ValueError(f"{name}: num_classes must be a positive int, got "
                             f"{num_classes!r}")
        self.alpha, self.num_classes = float(alpha), int(num_classes)

    @property
    def name(self) -> str:
        return type(self).__name__

    def __call__(self, x, labels, generator=None):
        """Mix a batch: returns (mixed x, soft labels (N, num_classes)), Tensors in,
        Tensors out."""
        from ...tensor import Tensor
        wrap = isinstance(x, Tensor)
        xa = x.data if wrap else x
        la = labels.data if isinstance(labels, Tensor) else labels
        self._check(xa, la)
        if generator is None:
            generator = backend.generator(device_of(xa))
        out, soft = self.apply(xa, la, self.sample_params(xa.shape, generator))
        return (Tensor._wrap(out), Tensor._wrap(soft)) if wrap else (out, soft)

    def _check(self, x, labels):
        if not is_array(x) or x.ndim != 4:
            raise ValueError(f"{self.name}: expected an NCHW batch (ndim 4), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        if x.dtype.kind != "f":
            raise TypeError(f"{self.name}: expected a float batch, got dtype {x.dtype}")
        if not is_array(labels):
            raise TypeError(f"{self.name}: labels must be an array, got "
                            f"{type(labels).__name__}")
        n = x.shape[0]
        if labels.ndim == 1:
            if labels.dtype.kind not in "iu":
                raise TypeError(f"{self.name}: integer labels expected, got dtype "
                                f"{labels.dtype}")
            if labels.shape[0] != n:
                raise ValueError(f"{self.name}: {labels.shape[0]} labels for a batch of {n}")
            if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(f"{self.name}: labels must be in [0, {self.num_classes}), "
                                 f"got range [{int(labels.min())}, {int(labels.max())}]")
        elif labels.shape != (n, self.num_classes):
            raise ValueError(f"{self.name}: labels must be (N,) classes or (N, num_classes) "
                             f"= ({n}, {self.num_classes}) soft labels, got shape "
                             f"{tuple(labels.shape)}")

    def _soft(self, labels, x):
        labels = to_like(labels, x)
        if labels.ndim == 1:
            return one_hot(labels, self.num_classes, x.dtype)
        return labels.astype(x.dtype, copy=False)

    def _mix_labels(self, labels, x, perm, weight):
        soft = self._soft(labels, x)
        w = x.dtype.type(weight)
        return w * soft + (1 - w) * soft[perm]

    def _draw(self, n, generator):
        lam = float(generator.beta(self.alpha, self.alpha))
        perm = generator.random(n).argsort()
        return lam, perm


class MixUp(_Mix):
    """MixUp (Zhang et al. 2018): convex blends of sample pairs and of their labels.

    lam ~ Beta(alpha, alpha), one per batch; perm a random permutation;
    y = lam x + (1 - lam) x[perm];  soft = lam onehot(l) + (1 - lam) onehot(l[perm]).
    >>> x, soft = MixUp(alpha=0.2, num_classes=10)(batch, labels)
    """

    def sample_params(self, shape, generator=None) -> dict:
        generator = backend.generator("cpu") if generator is None else generator
        lam, perm = self._draw(int(shape[0]), generator)
        return {"lam": lam, "perm": perm}

    def apply(self, x, labels, params):
        self._check(x, labels)
        lam, perm = params["lam"], to_like(params["perm"], x)
        w = x.dtype.type(lam)
        return w * x + (1 - w) * x[perm], self._mix_labels(labels, x, perm, lam)


class CutMix(_Mix):
    """CutMix (Yun et al. 2019): paste a box of the partner and weight labels by area.

    lam ~ Beta(alpha, alpha); a box of (W sqrt(1 - lam)) x (H sqrt(1 - lam)) centred on a
    uniform pixel and clipped to the image (one box per batch, as in the paper); the
    labels weigh the EXACT pixel share after clipping:
    lam' = 1 - box area / (H W);  soft = lam' onehot(l) + (1 - lam') onehot(l[perm]).
    >>> x, soft = CutMix(alpha=1.0, num_classes=10)(batch, labels)
    """

    def sample_params(self, shape, generator=None) -> dict:
        generator = backend.generator("cpu") if generator is None else generator
        n, _, h, w = (int(s) for s in shape)
        lam, perm = self._draw(n, generator)
        cy, cx = integers(generator, 0, h - 1, 1), integers(generator, 0, w - 1, 1)
        cy, cx = int(cy[0]), int(cx[0])
        half_h = int(0.5 * np.sqrt(1.0 - lam) * h)
        half_w = int(0.5 * np.sqrt(1.0 - lam) * w)
        top, bottom = max(cy - half_h, 0), min(cy + half_h, h)
        left, right = max(cx - half_w, 0), min(cx + half_w, w)
        return {"lam": lam, "perm": perm,
                "box": (top, left, bottom - top, right - left)}

    def apply(self, x, labels, params):
        self._check(x, labels)
        xp = get_array_module(x)
        n, _, h, w = x.shape
        perm = to_like(params["perm"], x)
        top, left, bh, bw = params["box"]
        mask = box_mask(np.array([[top, left, bh, bw]]), h, w, x)
        out = xp.where(mask, x[perm], x)
        share = 1.0 - bh * bw / float(h * w)        # what is left of each sample's own image
        return out, self._mix_labels(labels, x, perm, share)

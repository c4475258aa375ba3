"""Occlusion and noise: random erasing, cutout, Gaussian pixel noise.

Erasing hides a rectangle so that a network cannot rely on one part of an object
(Zhong et al. 2017, "Random Erasing"; DeVries & Taylor 2017, "Cutout"); noise makes it
robust to sensor grain. The box of each sample is drawn in ``sample_params`` and turned
into a mask by comparing row and column indices with it (no loop over samples).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ...backend import get_array_module
from .base import Transform, check_probability, integers, random_mask, to_like, uniform, \
    value_range, where_mask

__all__ = ["RandomErasing", "Cutout", "GaussianNoise", "box_mask"]


def box_mask(box, h: int, w: int, like):
    """(N, 1, H, W) booleans, True inside box (N, 4) = (top, left, height, width)."""
    xp = get_array_module(like)
    box = to_like(box, like)
    rows = xp.arange(h)[None, :]
    cols = xp.arange(w)[None, :]
    in_rows = (rows >= box[:, 0:1]) & (rows < box[:, 0:1] + box[:, 2:3])   # (N, H)
    in_cols = (cols >= box[:, 1:2]) & (cols < box[:, 1:2] + box[:, 3:4])   # (N, W)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


def _erase_value(value, name):
    if isinstance(value, str):
        if value != "random":
            raise ValueError(f"{name}: value must be a number, one number per channel or "
                             f"'random', got {value!r}")
        return value
    v = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name}: value must be a number, one number per channel or "
                         f"'random', got {value!r}")
    return v


def _fill(value, xb, params, name):
    """The replacement pixels: a constant (per channel) or the drawn noise."""
    if isinstance(value, str):
        return to_like(params["noise"], xb, xb.dtype)
    if value.size not in (1, xb.shape[1]):
        raise ValueError(f"{name}: value has {value.size} entries but the input has "
                         f"{xb.shape[1]} channels")
    return to_like(value.reshape(1, -1, 1, 1), xb, xb.dtype)


class RandomErasing(Transform):
    """With probability ``p``, overwrite a random box of each sample (torchvision's rule).

    Up to 10 tries per sample: area fraction ~ U[scale], log aspect ~ U[log ratio],
    h = round(sqrt(A r)), w = round(sqrt(A / r)), accepted when h < H and w < W; then
    top-left uniform. No accepted try: the sample is left alone. ``value``: a number, one
    per channel, or 'random' (standard normal noise, per pixel).
    >>> RandomErasing(p=0.5, scale=(0.02, 0.33), value=0)(batch)
    """

    def __init__(self, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0):
        self.p = check_probability(p, "RandomErasing")
        self.scale = value_range(scale, "RandomErasing", "scale", low=0.0, high=1.0)
        self.ratio = value_range(ratio, "RandomErasing", "ratio")
        if self.ratio[0] <= 0:
            raise ValueError(f"RandomErasing: ratio must be positive, got {self.ratio}")
        self.value = _erase_value(value, "RandomErasing")

    def _sample(self, n, c, h, w, generator):
        tries = 10
        do = random_mask(generator, self.p, n)
        xp = get_array_module(do)
        area = uniform(generator, self.scale[0], self.scale[1], (n, tries)) * (h * w)
        aspect = xp.exp(uniform(generator, math.log(self.ratio[0]), math.log(self.ratio[1]),
                                (n, tries)))
        bh = xp.round(xp.sqrt(area * aspect))
        bw = xp.round(xp.sqrt(area / aspect))
        ok = (bh < h) & (bw < w)
        first, found = xp.argmax(ok, axis=1), ok.any(axis=1)
        rows = xp.arange(n)
        bh, bw = bh[rows, first].astype(np.int64), bw[rows, first].astype(np.int64)
        bh, bw = xp.where(found, bh, 0), xp.where(found, bw, 0)
        top = integers(generator, 0, h - bh, n)
        left = integers(generator, 0, w - bw, n)
        params = {"apply": do & found, "box": xp.stack([top, left, bh, bw], axis=1)}
        if isinstance(self.value, str):
            params["noise"] = generator.standard_normal((n, c, h, w), dtype=np.float32)
        return params

    def _apply(self, xb, params):
        xp = get_array_module(xb)
        mask = box_mask(params["box"], *xb.shape[2:], xb)
        out = xp.where(mask, _fill(self.value, xb, params, self.name), xb)
        return where_mask(params["apply"], out, xb)


class Cutout(Transform):
    """Blank a ``size`` x ``size`` square centred on a uniformly random pixel, clipped to
    the image (so a square near the border covers less), with probability ``p``."""

    def __init__(self, size: int, p: float = 1.0, value=0.0):
        if not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"Cutout: size must be a positive int, got {size!r}")
        self.size = int(size)
        self.p = check_probability(p, "Cutout")
        self.value = _erase_value(value, "Cutout")

    def _sample(self, n, c, h, w, generator):
        cy, cx = integers(generator, 0, h - 1, n), integers(generator, 0, w - 1, n)
        xp = get_array_module(cy)
        top, left = xp.maximum(cy - self.size // 2, 0), xp.maximum(cx - self.size // 2, 0)
        bottom = xp.minimum(cy - self.size // 2 + self.size, h)
        right = xp.minimum(cx - self.size // 2 + self.size, w)
        params = {"apply": random_mask(generator, self.p, n),
                  "box": xp.stack([top, left, bottom - top, right - left], axis=1)}
        if isinstance(self.value, str):
            params["noise"] = generator.standard_normal((n, c, h, w), dtype=np.float32)
        return params

    _apply = RandomErasing._apply


class GaussianNoise(Transform):
    """Add N(mean, std^2) noise to every pixel: y = x + mean + std z, z ~ N(0, 1),
    clamped to [0, 1] when ``clip``; std may be a (min, max) range drawn per sample.
    Applied with probability ``p``.
    """

    def __init__(self, std=0.1, mean: float = 0.0, clip: bool = True, p: float = 1.0):
        if isinstance(std, numbers.Real):
            std = (float(std), float(std))
        self.std = value_range(std, "GaussianNoise", "std", low=0.0)
        if not isinstance(mean, numbers.Real):
            raise TypeError(f"GaussianNoise: mean must be a number, got {mean!r}")
        self.mean, self.clip = float(mean), bool(clip)
        self.p = check_probability(p, "GaussianNoise")

    def _sample(self, n, c, h, w, generator):
        return {"std": uniform(generator, self.std[0], self.std[1], n),
                "noise": generator.standard_normal((n, c, h, w), dtype=np.float32),
                "apply": random_mask(generator, self.p, n)}

    def _apply(self, xb, params):
        xp = get_array_module(xb)
        std = to_like(params["std"], xb, xb.dtype).reshape(-1, 1, 1, 1)
        out = xb + (self.mean + std * to_like(params["noise"], xb, xb.dtype))
        if self.clip:
            out = xp.clip(out, 0.0, 1.0)
        return where_mask(params["apply"], out.astype(xb.dtype, copy=False), xb)

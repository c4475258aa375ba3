"""Kernel augmentation: blur and sharpen, each a small convolution per sample.

``filter2d`` is a per-sample 2-D correlation written as a loop over the kernel's taps
(kh * kw strided slices of the padded batch, like im2col), never over pixels, so it runs
the same on NumPy and CuPy.
"""
from __future__ import annotations

import numbers

import numpy as np

from ...backend import get_array_module
from .base import Transform, check_probability, random_mask, to_like, uniform, value_range, \
    where_mask

__all__ = ["filter2d", "gaussian_kernel1d", "GaussianBlur", "Sharpen"]

_PADS = ("reflect", "edge", "constant")


def filter2d(xb, kernel, padding: str = "reflect"):
    """Correlate every channel of each sample with that sample's kernel ('same' size).

    xb (N, C, H, W), kernel (kh, kw) shared or (N, kh, kw) per sample, kh and kw odd
    -> y (N, C, H, W):  y[n, c, i, j] = sum_{a, b} k[n, a, b] xpad[n, c, i + a, j + b],
    where xpad pads by (kh // 2, kw // 2) with 'reflect', 'edge' or zeros ('constant').
    """
    xp = get_array_module(xb)
    if padding not in _PADS:
        raise ValueError(f"filter2d: padding must be one of {_PADS}, got {padding!r}")
    kernel = to_like(kernel, xb, xb.dtype)
    if kernel.ndim == 2:
        kernel = kernel[None]
    kh, kw = kernel.shape[1:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"filter2d: kernel sides must be odd, got {(kh, kw)}")
    n, c, h, w = xb.shape
    ph, pw = kh // 2, kw // 2
    if padding == "reflect" and (ph >= h or pw >= w):
        raise ValueError(f"filter2d: a {kh}x{kw} kernel with reflect padding needs an "
                         f"image larger than {ph}x{pw}, got {h}x{w}")
    padded = xp.pad(xb, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode=padding)
    out = xp.zeros_like(xb)
    for a in range(kh):
        for b in range(kw):
            out += kernel[:, a, b, None, None, None] * padded[:, :, a:a + h, b:b + w]
    return out


def gaussian_kernel1d(size: int, sigma):
    """Normalised Gaussian taps (N, size) for sigma (N,): g[t] ~ exp(-t^2 / (2 sigma^2)),
    t = -(size-1)/2 .. (size-1)/2 (torchvision's kernel)."""
    xp = get_array_module(sigma)
    t = xp.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = xp.exp(-0.5 * (t[None, :] / sigma[:, None]) ** 2)
    return g / g.sum(axis=1, keepdims=True)


class GaussianBlur(Transform):
    """Blur each sample with a Gaussian of sigma ~ U[sigma_min, sigma_max] (reflect edges).

    The 2-D kernel is separable, g(a) g(b), so it runs as a row pass then a column pass.
    kernel_size: odd int or (kh, kw) odd; sigma: a number or a (min, max) pair, > 0.
    >>> GaussianBlur(kernel_size=5, sigma=(0.1, 2.0))(img)
    """

    def __init__(self, kernel_size, sigma=(0.1, 2.0)):
        if isinstance(kernel_size, numbers.Integral) and not isinstance(kernel_size, bool):
            kernel_size = (int(kernel_size), int(kernel_size))
        if not (isinstance(kernel_size, (tuple, list)) and len(kernel_size) == 2
                and all(isinstance(k, numbers.Integral) and k > 0 and k % 2 == 1
                        for k in kernel_size)):
            raise ValueError(f"GaussianBlur: kernel_size must be a positive odd int or a pair "
                             f"of them, got {kernel_size!r}")
        self.kernel_size = tuple(int(k) for k in kernel_size)
        if isinstance(sigma, numbers.Real):
            sigma = (float(sigma), float(sigma))
        self.sigma = value_range(sigma, "GaussianBlur", "sigma")
        if self.sigma[0] <= 0:
            raise ValueError(f"GaussianBlur: sigma must be positive, got {self.sigma}")

    def _sample(self, n, c, h, w, generator):
        return {"sigma": uniform(generator, self.sigma[0], self.sigma[1], n)}

    def _apply(self, xb, params):
        kh, kw = self.kernel_size
        sigma = params["sigma"]
        rows = gaussian_kernel1d(kw, sigma)[:, None, :]       # (N, 1, kw): along W
        cols = gaussian_kernel1d(kh, sigma)[:, :, None]       # (N, kh, 1): along H
        return filter2d(filter2d(xb, rows), cols)


# torchvision's smoothing kernel for adjust_sharpness (PIL's ImageFilter.SMOOTH).
_SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=np.float64) / 13.0


class Sharpen(Transform):
    """Sharpen (factor > 1) or soften (factor < 1) by pushing away from a smoothed copy.

    smooth = x correlated with [[1,1,1],[1,5,1],[1,1,1]] / 13 (border pixels kept);
    y = clamp(f x + (1 - f) smooth, 0, 1), f = ``sharpness`` or ~ U[min, max];
    f = 1 is the identity (torchvision's adjust_sharpness). Applied with probability p.
    >>> Sharpen(sharpness=2.0)(img)
    """

    def __init__(self, sharpness=2.0, p: float = 1.0):
        if isinstance(sharpness, numbers.Real):
            sharpness = (float(sharpness), float(sharpness))
        self.sharpness = value_range(sharpness, "Sharpen", "sharpness", low=0.0)
        self.p = check_probability(p, "Sharpen")

    def _sample(self, n, c, h, w, generator):
        return {"factor": uniform(generator, self.sharpness[0], self.sharpness[1], n),
                "apply": random_mask(generator, self.p, n)}

    def _apply(self, xb, params):
        xp = get_array_module(xb)
        if min(xb.shape[2:]) <= 2:          # no interior pixel to smooth
            return xb.copy()
        smooth = filter2d(xb, _SMOOTH, padding="edge")
        smooth[:, :, [0, -1], :] = xb[:, :, [0, -1], :]
        smooth[:, :, :, [0, -1]] = xb[:, :, :, [0, -1]]
        f = to_like(params["factor"], xb, xb.dtype).reshape(-1, 1, 1, 1)
        out = xp.clip(f * xb + (1 - f) * smooth, 0.0, 1.0)
        return where_mask(params["apply"], out, xb)

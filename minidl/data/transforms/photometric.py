"""Photometric augmentation: change pixel values, never their places.

Images are floats in [0, 1] (``ToFloat`` first). As in torchvision, the colour operations
clamp their results back to [0, 1]; PCALighting does not (AlexNet did not either).
Colour operations that mix channels (saturation, hue, grayscale, PCA lighting) need
3 channels in RGB order.
"""
from __future__ import annotations

import numbers

import numpy as np

from ...backend import get_array_module, to_device
from .base import Transform, check_probability, random_mask, to_like, uniform, value_range, \
    where_mask

__all__ = ["ColorJitter", "Grayscale", "RandomGrayscale", "AutoContrast", "Equalize",
           "Solarize", "PCALighting", "rgb_to_grayscale", "rgb_to_hsv", "hsv_to_rgb"]

# ITU-R 601-2 luma, the weights torchvision and PIL use.
_LUMA = (0.2989, 0.587, 0.114)


def _per_sample(v, xb):
    """A (N,) parameter as (N, 1, 1, 1) of xb's dtype on xb's device."""
    return to_like(v, xb, xb.dtype).reshape(-1, 1, 1, 1)


def rgb_to_grayscale(xb):
    """(N, 3, H, W) RGB -> (N, 1, H, W): L = 0.2989 R + 0.587 G + 0.114 B."""
    r, g, b = xb[:, 0:1], xb[:, 1:2], xb[:, 2:3]
    return (r * _LUMA[0] + g * _LUMA[1] + b * _LUMA[2]).astype(xb.dtype, copy=False)


def rgb_to_hsv(xb):
    """(N, 3, H, W) RGB in [0, 1] -> HSV, hue in [0, 1) (torchvision's formulas)."""
    xp = get_array_module(xb)
    r, g, b = xb[:, 0], xb[:, 1], xb[:, 2]
    maxc, minc = xb.max(axis=1), xb.min(axis=1)
    grey = maxc == minc                       # hue and saturation undefined: use 0
    chroma = maxc - minc
    ones = xp.ones_like(maxc)
    s = chroma / xp.where(grey, ones, maxc)
    div = xp.where(grey, ones, chroma)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = xp.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return xp.stack([h, s, maxc], axis=1).astype(xb.dtype, copy=False)


def hsv_to_rgb(xb):
    """(N, 3, H, W) HSV -> RGB, the inverse of ``rgb_to_hsv``."""
    xp = get_array_module(xb)
    h, s, v = xb[:, 0], xb[:, 1], xb[:, 2]
    sector = xp.floor(h * 6.0)
    f = h * 6.0 - sector
    sector = sector.astype(np.int64) % 6
    p = xp.clip(v * (1.0 - s), 0.0, 1.0)
    q = xp.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = xp.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    # Which of (v, q, p, t) each channel takes, for sectors 0..5 of the hue circle.
    table = ((v, q, p, p, t, v), (t, v, v, q, p, p), (p, p, t, v, v, q))
    out = []
    for choices in table:
        channel = xp.zeros_like(v)
        for k, value in enumerate(choices):
            channel = xp.where(sector == k, value, channel)
        out.append(channel)
    return xp.stack(out, axis=1).astype(xb.dtype, copy=False)


def _blend(a, b, ratio):
    """clamp(ratio * a + (1 - ratio) * b, 0, 1): torchvision's _blend for float images."""
    xp = get_array_module(a)
    return xp.clip(ratio * a + (1 - ratio) * b, 0.0, 1.0)


def adjust_brightness(xb, factor):
    return _blend(xb, 0.0, _per_sample(factor, xb))


def adjust_contrast(xb, factor):
    grey = rgb_to_grayscale(xb) if xb.shape[1] == 3 else xb
    mean = grey.mean(axis=(1, 2, 3), keepdims=True)
    return _blend(xb, mean, _per_sample(factor, xb))


def adjust_saturation(xb, factor):
    return _blend(xb, rgb_to_grayscale(xb), _per_sample(factor, xb))


def adjust_hue(xb, shift):
    xp = get_array_module(xb)
    hsv = rgb_to_hsv(xb)
    hue = xp.fmod(hsv[:, 0:1] + _per_sample(shift, xb) + 1.0, 1.0)
    return hsv_to_rgb(xp.concatenate([hue, hsv[:, 1:]], axis=1))


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue, in a random order per sample.

    Factors per sample: brightness b ~ U[max(0, 1 - B), 1 + B] (y = b x); contrast c
    (blend with the mean grey level: y = c x + (1 - c) mean); saturation s (blend with
    the grey image); hue h ~ U[-H, H] (shift of the hue circle, H <= 0.5). A strength may
    also be a (min, max) pair. A zero strength skips that operation, so
    ``ColorJitter()`` is the identity. Saturation and hue need RGB (3 channels).
    >>> ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)(img)
    """

    _ops = ("brightness", "contrast", "saturation", "hue")

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0):
        self.brightness = self._range(brightness, "brightness", 1.0, 0.0, np.inf)
        self.contrast = self._range(contrast, "contrast", 1.0, 0.0, np.inf)
        self.saturation = self._range(saturation, "saturation", 1.0, 0.0, np.inf)
        self.hue = self._range(hue, "hue", 0.0, -0.5, 0.5)

    @staticmethod
    def _range(value, arg, center, low, high):
        if arg == "hue" and isinstance(value, numbers.Real) and not 0 <= value <= 0.5:
            raise ValueError(f"ColorJitter: hue must be in [0, 0.5], got {value}")
        rng = value_range(value, "ColorJitter", arg, center, low, high)
        return None if rng == (center, center) else rng

    def _active(self):
        return [k for k, op in enumerate(self._ops) if getattr(self, op) is not None]

    def _sample(self, n, c, h, w, generator):
        needs_rgb = [op for op in ("saturation", "hue") if getattr(self, op) is not None]
        if needs_rgb and c != 3:
            raise ValueError(f"ColorJitter: {' and '.join(needs_rgb)} need 3 channels (RGB), "
                             f"got {c} (input shape {(n, c, h, w)})")
        params = {}
        for op, identity in zip(self._ops, (1.0, 1.0, 1.0, 0.0)):
            rng = getattr(self, op)
            params[op] = uniform(generator, rng[0], rng[1], n) if rng is not None else \
                uniform(generator, identity, identity, n)
        # A random order of the four operations per sample (torchvision draws one per call).
        params["order"] = generator.random((n, 4)).argsort(axis=1)
        return params

    def _apply(self, xb, params):
        xp = get_array_module(xb)
        if xb.shape[1] != 3 and (self.saturation is not None or self.hue is not None):
            raise ValueError(f"ColorJitter: saturation and hue need 3 channels (RGB), got "
                             f"{xb.shape[1]} (input shape {tuple(xb.shape)})")
        fns = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
        order = to_like(params["order"], xb)
        out = xb.copy()
        # Stage k applies, to each sample, the operation order[n, k]: four stages of at
        # most four batched operations on the samples that chose them.
        for stage in range(4):
            for op in self._active():
                idx = xp.nonzero(order[:, stage] == op)[0]
                if idx.size:
                    factor = to_like(params[self._ops[op]], xb)[idx]
                    out[idx] = fns[op](out[idx], factor)
        return out


class Grayscale(Transform):
    """RGB -> grey, L = 0.2989 R + 0.587 G + 0.114 B, kept as 1 or 3 channels."""

    def __init__(self, num_output_channels: int = 1):
        if num_output_channels not in (1, 3):
            raise ValueError(f"Grayscale: num_output_channels must be 1 or 3, got "
                             f"{num_output_channels!r}")
        self.num_output_channels = num_output_channels

    def _apply(self, xb, params):
        xp = get_array_module(xb)
        self.check_channels(xb.shape[1], 3, "RGB to grey")
        grey = rgb_to_grayscale(xb)
        return xp.repeat(grey, 3, axis=1) if self.num_output_channels == 3 else grey

    def output_shape(self, shape):
        return tuple(shape[:-3]) + (self.num_output_channels,) + tuple(shape[-2:])


class RandomGrayscale(Transform):
    """With probability ``p`` turn an RGB sample grey, keeping 3 channels."""

    def __init__(self, p: float = 0.1):
        self.p = check_probability(p, "RandomGrayscale")

    def _sample(self, n, c, h, w, generator):
        self.check_channels(c, 3, "RGB to grey")
        return {"apply": random_mask(generator, self.p, n)}

    def _apply(self, xb, params):
        self.check_channels(xb.shape[1], 3, "RGB to grey")
        grey = get_array_module(xb).repeat(rgb_to_grayscale(xb), 3, axis=1)
        return where_mask(params["apply"], grey, xb)


class _MaybeApply(Transform):
    """A deterministic pixel map applied to each sample with probability ``p``."""

    def __init__(self, p: float = 1.0):
        self.p = check_probability(p, self.name)

    def _sample(self, n, c, h, w, generator):
        return {"apply": random_mask(generator, self.p, n)}

    def _apply(self, xb, params):
        return where_mask(params["apply"], self.map(xb), xb)

    def map(self, xb):
        raise NotImplementedError


class AutoContrast(_MaybeApply):
    """Stretch each channel of each sample to fill [0, 1]: y = (x - min) / (max - min).

    A flat channel (max == min) is left as it is. Applied with probability ``p``.
    """

    def map(self, xb):
        xp = get_array_module(xb)
        lo = xb.min(axis=(2, 3), keepdims=True)
        hi = xb.max(axis=(2, 3), keepdims=True)
        flat = hi == lo
        scale = 1.0 / xp.where(flat, 1.0, hi - lo).astype(xb.dtype)
        lo = xp.where(flat, 0.0, lo).astype(xb.dtype)
        return xp.clip((xb - lo) * scale, 0.0, 1.0)


class Equalize(_MaybeApply):
    """Histogram equalisation per channel, on 256 grey levels (torchvision's algorithm).

    levels = round(255 x); hist = counts of the levels; step = (count of all pixels
    except those at the top level) // 255; lut[l] = (cumsum(hist)[l - 1] + step // 2)
    // step (lut[0] = 0), clamped to 255; y = lut[level] / 255. A channel with step 0
    (one or two grey levels) is left unchanged. Applied with probability ``p``.
    """

    def map(self, xb):
        xp = get_array_module(xb)
        n, c, h, w = xb.shape
        levels = xp.clip(xp.floor(xb * 255 + 0.5), 0, 255).astype(np.int64)
        levels = levels.reshape(n * c, h * w)
        # All N*C histograms in one bincount: channel k counts into bins [256 k, 256 k + 256).
        offset = (xp.arange(n * c) * 256)[:, None]
        hist = xp.bincount((levels + offset).ravel(), minlength=n * c * 256)
        hist = hist.reshape(n * c, 256)
        top = hist[xp.arange(n * c), levels.max(axis=1)]
        step = (h * w - top) // 255
        safe = xp.maximum(step, 1)[:, None]
        lut = (xp.cumsum(hist, axis=1) + step[:, None] // 2) // safe
        lut = xp.clip(xp.concatenate([xp.zeros((n * c, 1), lut.dtype), lut[:, :-1]], 1), 0, 255)
        mapped = xp.take_along_axis(lut, levels, axis=1).astype(xb.dtype) / xb.dtype.type(255)
        mapped = mapped.reshape(n, c, h, w)
        return xp.where((step == 0).reshape(n, c, 1, 1), xb, mapped)


class Solarize(_MaybeApply):
    """Invert the pixels at or above ``threshold``: y = 1 - x where x >= threshold."""

    def __init__(self, threshold: float = 0.5, p: float = 1.0):
        super().__init__(p)
        if not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"Solarize: threshold must be in [0, 1], got {threshold!r}")
        self.threshold = float(threshold)

    def map(self, xb):
        xp = get_array_module(xb)
        return xp.where(xb >= self.threshold, 1 - xb, xb)


# Eigen-decomposition of the RGB covariance of ImageNet pixels in [0, 1], the values
# fb.resnet.torch published for AlexNet-style lighting noise; columns are eigenvectors.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                   (-0.5808, -0.0045, -0.8140),
                   (-0.5836, -0.6948, 0.4203))


class PCALighting(Transform):
    """AlexNet's "fancy PCA" colour augmentation.

    With p_i, lambda_i the eigenvectors and eigenvalues of the 3x3 RGB covariance, each
    sample draws alpha_i ~ N(0, alphastd) and every pixel gets the same shift
        y[:, :, h, w] = x[:, :, h, w] + sum_i p_i * alpha_i * lambda_i   (a colour cast
    along the data's main colour directions). ``from_data`` computes p and lambda from
    images; by default the ImageNet values are used. Needs 3 channels.
    >>> PCALighting.from_data(train_images, alphastd=0.1)(batch)
    """

    def __init__(self, alphastd: float = 0.1, eigval=None, eigvec=None):
        if not isinstance(alphastd, numbers.Real) or not alphastd >= 0:   # NaN too
            raise ValueError(f"PCALighting: alphastd must be a non-negative number, got "
                             f"{alphastd!r}")
        self.alphastd = float(alphastd)
        self.eigval = np.asarray(IMAGENET_EIGVAL if eigval is None else eigval, np.float64)
        self.eigvec = np.asarray(IMAGENET_EIGVEC if eigvec is None else eigvec, np.float64)
        if self.eigval.shape != (3,) or self.eigvec.shape != (3, 3):
            raise ValueError(f"PCALighting: eigval must have shape (3,) and eigvec (3, 3), "
                             f"got {self.eigval.shape} and {self.eigvec.shape}")

    @classmethod
    def from_data(cls, images, alphastd: float = 0.1) -> "PCALighting":
        """Eigenvectors/values of the RGB covariance of all pixels of ``images``.

        images: (N, 3, H, W) or (3, H, W) floats, NumPy or CuPy; returns a PCALighting.
        """
        from ...tensor import Tensor
        images = images.data if isinstance(images, Tensor) else images
        if images.ndim not in (3, 4) or images.shape[-3] != 3:
            raise ValueError(f"PCALighting.from_data: expected RGB images (3, H, W) or "
                             f"(N, 3, H, W), got shape {tuple(images.shape)}")
        xp = get_array_module(images)
        pixels = xp.moveaxis(images.reshape((-1,) + tuple(images.shape[-3:])), 1, -1)
        pixels = pixels.reshape(-1, 3).astype(np.float64)
        cov = xp.cov(pixels, rowvar=False)
        eigval, eigvec = xp.linalg.eigh(cov)
        order = xp.argsort(eigval)[::-1]            # largest first, like the paper
        eigval, eigvec = eigval[order], eigvec[:, order]
        return cls(alphastd, to_device(eigval, "cpu"), to_device(eigvec, "cpu"))

    def _sample(self, n, c, h, w, generator):
        self.check_channels(c, 3, "PCA lighting")
        return {"alpha": generator.standard_normal((n, 3)) * self.alphastd}

    def _apply(self, xb, params):
        self.check_channels(xb.shape[1], 3, "PCA lighting")
        alpha = to_like(params["alpha"], xb)
        eigval, eigvec = to_like(self.eigval, xb), to_like(self.eigvec, xb)
        shift = (alpha * eigval) @ eigvec.T            # (N, 3): sum_i p_i alpha_i lambda_i
        return xb + shift.astype(xb.dtype)[:, :, None, None]

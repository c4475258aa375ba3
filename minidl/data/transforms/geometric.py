"""Geometric augmentation: flips, crops, and one inverse-mapping sampler for the rest.

Rotation, affine, perspective, resized crop and resize all move pixels by a 3x3 matrix.
Rather than five samplers, each builds the matrix M (one per sample) that maps an
OUTPUT pixel (x, y, 1) to the INPUT point it should show, and calls ``warp``:

    (u, v, w) = M @ (x, y, 1);   the output pixel shows the input at (u / w, v / w)

Mapping backwards (output -> input) leaves no holes: every output pixel asks for one
input point and reads it by bilinear interpolation of the four neighbouring pixels (or
the nearest one). Points outside the image read the ``fill`` value, or the nearest edge
pixel for resizing. Coordinates are pixel indices (x to the right, y down, pixel centres
at integers), so the centre of an H x W image is ((W - 1) / 2, (H - 1) / 2).

Angles follow torchvision: positive degrees turn the picture counter-clockwise as
displayed; ``RandomRotation(degrees=(a, b))`` draws from [a, b].
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ...backend import get_array_module
from .base import (Transform, batch_shape, check_probability, integers, pair, random_mask,
                   to_like, uniform, value_range)

__all__ = ["warp", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomCrop", "CenterCrop",
           "RandomResizedCrop", "Resize", "RandomRotation", "RandomAffine",
           "RandomPerspective", "rotation_matrix", "affine_matrix", "resize_matrix",
           "crop_resize_matrix", "perspective_matrix"]

_MODES = ("bilinear", "nearest")


# ---- the sampler ---------------------------------------------------------------------

def warp(x, matrix, size=None, mode: str = "bilinear", padding: str = "fill", fill=0.0):
    """Resample an NCHW batch through per-sample inverse matrices (output -> input).

    x (N, C, H, W), matrix (N, 3, 3) or (3, 3) -> y (N, C, OH, OW), size = (OH, OW)
    (default (H, W)). For output pixel (i, j): (u, v, w) = M @ (j, i, 1), point
    (px, py) = (u / w, v / w) of the input.
      bilinear: x0 = floor(px), y0 = floor(py), a = px - x0, b = py - y0;
                y = (1-a)(1-b) x[y0, x0] + a(1-b) x[y0, x0+1] + (1-a)b x[y0+1, x0]
                    + ab x[y0+1, x0+1]
      nearest:  y = x[floor(py + 0.5), floor(px + 0.5)]  (torch's 'nearest-exact')
    A tap outside the image reads ``fill`` (a number or one per channel) when
    ``padding='fill'``, or the nearest edge pixel when ``padding='border'`` (what
    resizing wants: with it, warp equals torch's bilinear interpolate, align_corners=False).

    Args:
        x: float NCHW array (integer allowed with mode='nearest', e.g. a label mask).
        matrix: float (N, 3, 3) or (3, 3), NumPy or CuPy.
        size: (OH, OW) of the output.
        mode: 'bilinear' or 'nearest'.
        padding: 'fill' or 'border'.
        fill: value of points outside the image ('fill' padding).
    Returns:
        (N, C, OH, OW) array of x's dtype, on x's device.
    Raises:
        ValueError / TypeError on a bad shape, mode, padding or dtype.
    >>> y = warp(x, rotation_matrix(np.array([90.0]), 32, 32))   # a quarter turn
    """
    if x.ndim != 4:
        raise ValueError(f"warp: x must be an NCHW batch (ndim 4), got shape {tuple(x.shape)}")
    if mode not in _MODES:
        raise ValueError(f"warp: mode must be 'bilinear' or 'nearest', got {mode!r}")
    if padding not in ("fill", "border"):
        raise ValueError(f"warp: padding must be 'fill' or 'border', got {padding!r}")
    if mode == "bilinear" and x.dtype.kind != "f":
        raise TypeError(f"warp: bilinear sampling needs a float image, got dtype {x.dtype} "
                        f"(use mode='nearest' for label masks)")
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = (h, w) if size is None else size
    cdtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
    m = to_like(matrix, x, cdtype)
    if m.shape == (3, 3):
        m = xp.broadcast_to(m, (n, 3, 3))
    if m.shape != (n, 3, 3):
        raise ValueError(f"warp: matrix must be (3, 3) or (N, 3, 3) with N = {n}, got shape "
                         f"{tuple(m.shape)}")

    # Every output pixel's (x, y, 1), mapped to input points in one matrix product.
    ys, xs = xp.meshgrid(xp.arange(oh, dtype=cdtype), xp.arange(ow, dtype=cdtype),
                         indexing="ij")
    grid = xp.stack([xs.ravel(), ys.ravel(), xp.ones(oh * ow, dtype=cdtype)])  # (3, P)
    src = m @ grid                                                              # (N, 3, P)
    px, py = src[:, 0] / src[:, 2], src[:, 1] / src[:, 2]                       # (N, P)

    # Each tap reads x.ravel() at (n * C + c) * H * W + row * W + col: one 1-D take.
    flat = x.reshape(-1)
    base = ((xp.arange(n)[:, None] * c + xp.arange(c)[None, :]) * (h * w))[:, :, None]
    fill_value = _fill_array(fill, c, x)

    def axis_taps(coord, size):
        """Clipped integer positions (safe to read) and whether each lies in the image."""
        return xp.clip(coord, 0, size - 1), (coord >= 0) & (coord < size)

    if mode == "nearest":
        (cx, vx), (cy, vy) = (axis_taps(xp.floor(px + 0.5).astype(np.int64), w),
                              axis_taps(xp.floor(py + 0.5).astype(np.int64), h))
        taps = [(cy * w + cx, vx & vy, None)]
    else:
        x0, y0 = xp.floor(px), xp.floor(py)
        a, b = px - x0, py - y0                       # (N, P) bilinear weights
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        (cx0, vx0), (cx1, vx1) = axis_taps(x0, w), axis_taps(x0 + 1, w)
        (cy0, vy0), (cy1, vy1) = axis_taps(y0, h), axis_taps(y0 + 1, h)
        taps = [(cy0 * w + cx0, vy0 & vx0, (1 - a) * (1 - b)),
                (cy0 * w + cx1, vy0 & vx1, a * (1 - b)),
                (cy1 * w + cx0, vy1 & vx0, (1 - a) * b),
                (cy1 * w + cx1, vy1 & vx1, a * b)]

    out, outside = 0, 0
    for index, inside, weight in taps:
        values = xp.take(flat, base + index[:, None, :])                      # (N, C, P)
        if weight is None:                                                     # nearest
            out = values
            if padding == "fill":
                out = xp.where(inside[:, None, :], values, fill_value)
            continue
        if padding == "fill":
            # A tap outside the image reads ``fill``: its weight moves to the fill term.
            outside = outside + weight * ~inside
            weight = weight * inside
        out = out + weight[:, None, :] * values
    if padding == "fill" and mode == "bilinear":
        out = out + outside[:, None, :] * fill_value
    return out.reshape(n, c, oh, ow).astype(x.dtype, copy=False)


def _fill_array(fill, c, x):
    values = np.atleast_1d(np.asarray(fill, dtype=np.float64))
    if values.ndim != 1 or values.size not in (1, c):
        raise ValueError(f"fill must be a number or one value per channel ({c}), got {fill!r}")
    return to_like(values.reshape(1, -1, 1), x, x.dtype)


# ---- matrices (all map output pixels to input points) --------------------------------

def _eye(xp, n):
    return xp.broadcast_to(xp.eye(3), (n, 3, 3)).copy()


def _center(h, w, center):
    return ((w - 1) / 2.0, (h - 1) / 2.0) if center is None else center


def affine_matrix(angle, translate, scale, shear, h: int, w: int, center=None):
    """Inverse matrices of the affine maps "turn, shear and scale about ``center``, then
    move by ``translate``", one per sample.

    forward   p_out = T(c + t) R(angle) Shx Shy S(scale) T(-c) p_in,  in pixel coords
              R(a) = [[cos a, sin a], [-sin a, cos a]]: counter-clockwise as displayed
              (y points down); Shx = [[1, tan sx], [0, 1]], Shy = [[1, 0], [tan sy, 1]]
    returns   its inverse (N, 3, 3): output pixel -> input point, for ``warp``.
    angle (N,) degrees, translate (N, 2) pixels (tx, ty), scale (N,), shear (N, 2) degrees.
    """
    xp = get_array_module(angle)
    n = angle.shape[0]
    cx, cy = _center(h, w, center)
    a = xp.deg2rad(angle)
    cos, sin = xp.cos(a), xp.sin(a)
    tx, ty = xp.tan(xp.deg2rad(shear[:, 0])), xp.tan(xp.deg2rad(shear[:, 1]))
    # R @ Shx @ Shy @ S, written out per entry so it runs batched on NumPy and CuPy.
    sh = xp.stack([xp.stack([1 + tx * ty, tx], -1), xp.stack([ty, xp.ones_like(ty)], -1)], -2)
    rot = xp.stack([xp.stack([cos, sin], -1), xp.stack([-sin, cos], -1)], -2)
    lin = rot @ sh * scale[:, None, None]
    fwd = _eye(xp, n)
    fwd[:, :2, :2] = lin
    centre = xp.asarray([cx, cy], dtype=fwd.dtype)
    fwd[:, :2, 2] = centre + translate - (lin @ centre)
    return xp.linalg.inv(fwd)


def rotation_matrix(angle, h: int, w: int, center=None):
    """Inverse matrices of counter-clockwise turns by ``angle`` (N,) degrees about the
    centre: (N, 3, 3), output pixel -> input point."""
    xp = get_array_module(angle)
    zeros = xp.zeros((angle.shape[0], 2))
    return affine_matrix(angle, zeros, xp.ones(angle.shape[0]), zeros, h, w, center)


def crop_resize_matrix(box, out_h: int, out_w: int):
    """Matrices that stretch the boxes (N, 4) = (top, left, height, width) to out_h x
    out_w; pixel areas map to areas (align_corners=False):
        u = left + (j + 0.5) * width / out_w - 0.5,  v = top + (i + 0.5) * height / out_h - 0.5
    """
    xp = get_array_module(box)
    box = box.astype(np.float64)
    m = _eye(xp, box.shape[0])
    sx, sy = box[:, 3] / out_w, box[:, 2] / out_h
    m[:, 0, 0], m[:, 0, 2] = sx, box[:, 1] + 0.5 * sx - 0.5
    m[:, 1, 1], m[:, 1, 2] = sy, box[:, 0] + 0.5 * sy - 0.5
    return m


def resize_matrix(h: int, w: int, out_h: int, out_w: int):
    """The (3, 3) matrix of a resize from h x w to out_h x out_w (whole image)."""
    return crop_resize_matrix(np.array([[0.0, 0.0, h, w]]), out_h, out_w)[0]


def perspective_matrix(startpoints, endpoints):
    """Homographies that map ``endpoints`` (N, 4, 2) back to ``startpoints`` (N, 4, 2).

    The output image shows the input's startpoints (its corners) at the endpoints; warp
    needs the way back, output -> input. Each homography solves, for the 4 pairs
    (x, y) -> (u, v):  u = (h0 x + h1 y + h2) / (h6 x + h7 y + 1),
                       v = (h3 x + h4 y + h5) / (h6 x + h7 y + 1)   (8 equations, 8 h's).
    """
    xp = get_array_module(endpoints)
    src, dst = endpoints.astype(np.float64), startpoints.astype(np.float64)
    n = src.shape[0]
    x, y, u, v = src[..., 0], src[..., 1], dst[..., 0], dst[..., 1]
    one, zero = xp.ones_like(x), xp.zeros_like(x)
    rows_u = xp.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)   # (N, 4, 8)
    rows_v = xp.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    a = xp.concatenate([rows_u, rows_v], axis=1)                           # (N, 8, 8)
    b = xp.concatenate([u, v], axis=1)[..., None]                           # (N, 8, 1)
    coef = xp.linalg.solve(a, b)[..., 0]
    return xp.concatenate([coef, xp.ones((n, 1))], axis=1).reshape(n, 3, 3)


# ---- flips ---------------------------------------------------------------------------

class _Flip(Transform):
    integer_ok = True
    axis = -1

    def __init__(self, p: float = 0.5):
        self.p = check_probability(p, self.name)

    def _sample(self, n, c, h, w, generator):
        return {"flip": random_mask(generator, self.p, n)}

    def _apply(self, xb, params):
        xp = get_array_module(xb)
        chosen = xp.nonzero(to_like(params["flip"], xb))[0]
        out = xb.copy()
        out[chosen] = xp.flip(xb[chosen], axis=self.axis)
        return out


class RandomHorizontalFlip(_Flip):
    """Mirror left-right with probability ``p``: y[..., j] = x[..., W - 1 - j].

    >>> RandomHorizontalFlip(p=1.0)(img)          # always flips
    """

    axis = -1


class RandomVerticalFlip(_Flip):
    """Mirror top-bottom with probability ``p``: y[..., i, :] = x[..., H - 1 - i, :]."""

    axis = -2


# ---- crops (pure indexing: the pixels are copied, never interpolated) ----------------

_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect",
              "symmetric": "symmetric"}


def _padding4(padding, name):
    """(left, top, right, bottom) from an int, (lr, tb) or a 4-sequence (torchvision)."""
    if padding is None:
        return (0, 0, 0, 0)
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        padding = (int(padding),) * 4
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        padding = (padding[0], padding[1], padding[0], padding[1])
    if not (isinstance(padding, (tuple, list)) and len(padding) == 4
            and all(isinstance(p, numbers.Integral) and p >= 0 for p in padding)):
        raise ValueError(f"{name}: padding must be a non-negative int, (left/right, "
                         f"top/bottom) or (left, top, right, bottom), got {padding!r}")
    return tuple(int(p) for p in padding)


def _pad(xb, pad, mode, fill):
    left, top, right, bottom = pad
    if not any(pad):
        return xb
    xp = get_array_module(xb)
    widths = ((0, 0), (0, 0), (top, bottom), (left, right))
    if mode == "constant":
        return xp.pad(xb, widths, mode="constant", constant_values=fill)
    return xp.pad(xb, widths, mode=_PAD_MODES[mode])


def crop(xb, top, left, h: int, w: int):
    """Per-sample crops: y[n] = xb[n, :, top[n]:top[n]+h, left[n]:left[n]+w].

    A strided view lists every h x w window of every sample without copying,
    windows[n, c, i, j] = xb[n, c, i:i+h, j:j+w]; one fancy index then picks each
    sample's window (a single gather of N*C*h*w values).
    """
    xp = get_array_module(xb)
    n, c, hh, ww = xb.shape
    sn, sc, sh, sw = xb.strides
    windows = xp.lib.stride_tricks.as_strided(
        xb, shape=(n, c, hh - h + 1, ww - w + 1, h, w), strides=(sn, sc, sh, sw, sh, sw))
    return windows[xp.arange(n), :, top, left]


class RandomCrop(Transform):
    """Pad, then cut a ``size`` window at a random place (the same size for every sample).

    padded = pad(x, padding, padding_mode);  y[n] = padded[n, :, i:i+h, j:j+w] with
    i ~ U{0..Hp-h}, j ~ U{0..Wp-w} per sample. padding: int, (left/right, top/bottom) or
    (left, top, right, bottom); padding_mode 'constant' (with ``fill``), 'edge',
    'reflect' or 'symmetric'; ``pad_if_needed`` pads an image smaller than ``size``.
    >>> RandomCrop(32, padding=4)(cifar_batch)       # the classic CIFAR augmentation
    """

    integer_ok = True

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0.0,
                 padding_mode: str = "constant"):
        self.size = pair(size, "RandomCrop", "size")
        self.padding = _padding4(padding, "RandomCrop")
        self.pad_if_needed = bool(pad_if_needed)
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {list(_PAD_MODES)}, "
                             f"got {padding_mode!r}")
        if not isinstance(fill, numbers.Real):
            raise TypeError(f"RandomCrop: fill must be a number, got {fill!r}")
        self.fill, self.padding_mode = fill, padding_mode

    def _full_padding(self, h, w):
        left, top, right, bottom = self.padding
        th, tw = self.size
        if self.pad_if_needed:
            extra_h = max(0, th - (h + top + bottom))
            extra_w = max(0, tw - (w + left + right))
            left, right, top, bottom = left + extra_w, right + extra_w, top + extra_h, \
                bottom + extra_h
        hp, wp = h + top + bottom, w + left + right
        if hp < th or wp < tw:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the padded "
                             f"input ({hp}, {wp}) (input {h}x{w}, padding {self.padding}); "
                             f"pass pad_if_needed=True or a larger padding")
        return (left, top, right, bottom), hp, wp

    def _sample(self, n, c, h, w, generator):
        _, hp, wp = self._full_padding(h, w)
        return {"top": integers(generator, 0, hp - self.size[0], n),
                "left": integers(generator, 0, wp - self.size[1], n)}

    def padded(self, x):
        """The padded input the crops are cut from (for inspection and tests)."""
        xb = x[None] if x.ndim == 3 else x
        pad, _, _ = self._full_padding(xb.shape[2], xb.shape[3])
        out = _pad(xb, pad, self.padding_mode, self.fill)
        return out[0] if x.ndim == 3 else out

    def _apply(self, xb, params):
        padded = self.padded(xb)
        return crop(padded, to_like(params["top"], xb), to_like(params["left"], xb), *self.size)

    def output_shape(self, shape):
        return tuple(shape[:-2]) + self.size


class CenterCrop(Transform):
    """Cut the central ``size`` window (zero-padded first when the image is smaller).

    top = round((H - h) / 2), left = round((W - w) / 2), as torchvision.
    """

    integer_ok = True

    def __init__(self, size):
        self.size = pair(size, "CenterCrop", "size")

    def _apply(self, xb, params):
        th, tw = self.size
        h, w = xb.shape[2:]
        if th > h or tw > w:
            pad_h, pad_w = max(0, th - h), max(0, tw - w)
            xb = _pad(xb, (pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2),
                      "constant", 0)
            h, w = xb.shape[2:]
        top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
        return xb[:, :, top:top + th, left:left + tw]

    def output_shape(self, shape):
        return tuple(shape[:-2]) + self.size


# ---- everything else goes through warp -----------------------------------------------

def _check_mode(mode, name):
    if mode not in _MODES:
        raise ValueError(f"{name}: interpolation must be 'bilinear' or 'nearest', got {mode!r}")
    return mode


class _Warp(Transform):
    """A transform that builds per-sample matrices and calls ``warp``."""

    interpolation = "bilinear"
    padding = "fill"
    fill = 0.0

    @property
    def integer_ok(self):
        return self.interpolation == "nearest"

    def _out_size(self, h, w):
        return h, w

    def _apply(self, xb, params):
        return warp(xb, params["matrix"], self._out_size(*xb.shape[2:]),
                    mode=self.interpolation, padding=self.padding, fill=self.fill)


class RandomRotation(_Warp):
    """Turn each sample by an angle drawn from [a, b] degrees, counter-clockwise for
    positive angles (torchvision's convention), about the centre (or ``center``).

    Matrix: ``rotation_matrix``; sampling: ``warp`` with ``fill`` outside the image.
    The output keeps the input size (corners are cut, uncovered corners get ``fill``).
    >>> RandomRotation(degrees=15)(img)         # angle ~ U[-15, 15]
    >>> RandomRotation(degrees=(90, 90))(img)   # exactly a quarter turn
    """

    def __init__(self, degrees, interpolation: str = "bilinear", fill=0.0, center=None):
        self.degrees = value_range(degrees, "RandomRotation", "degrees")
        self.interpolation = _check_mode(interpolation, "RandomRotation")
        self.fill, self.center = fill, center

    def _sample(self, n, c, h, w, generator):
        angle = uniform(generator, self.degrees[0], self.degrees[1], n)
        return {"angle": angle, "matrix": rotation_matrix(angle, h, w, self.center)}


class RandomAffine(_Warp):
    """A random affine map per sample: turn, translate, scale and shear about the centre.

    degrees: angle range (a number d means [-d, d]); translate (a, b): shifts drawn from
    [-a W, a W] and [-b H, b H]; scale (lo, hi); shear: a number s (x-shear in [-s, s]),
    a pair (x range) or 4 numbers (x range, y range), in degrees. Matrix: ``affine_matrix``.
    >>> RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=5)(img)
    """

    def __init__(self, degrees, translate=None, scale=None, shear=None,
                 interpolation: str = "bilinear", fill=0.0, center=None):
        self.degrees = value_range(degrees, "RandomAffine", "degrees")
        if translate is not None:
            if not (isinstance(translate, (tuple, list)) and len(translate) == 2
                    and all(isinstance(t, numbers.Real) and 0 <= t <= 1 for t in translate)):
                raise ValueError(f"RandomAffine: translate must be a pair of fractions in "
                                 f"[0, 1], got {translate!r}")
            translate = (float(translate[0]), float(translate[1]))
        if scale is not None:
            if not isinstance(scale, (tuple, list)):
                raise TypeError(f"RandomAffine: scale must be a pair (min, max), got "
                                f"{scale!r}")
            scale = value_range(scale, "RandomAffine", "scale")
            if scale[0] <= 0:
                raise ValueError(f"RandomAffine: scale must be positive, got {scale}")
        if shear is not None:
            if isinstance(shear, numbers.Real):
                shear = value_range(shear, "RandomAffine", "shear") + (0.0, 0.0)
            elif isinstance(shear, (tuple, list)) and len(shear) in (2, 4):
                shear = value_range(tuple(shear[:2]), "RandomAffine", "shear") + (
                    value_range(tuple(shear[2:]), "RandomAffine", "shear")
                    if len(shear) == 4 else (0.0, 0.0))
            else:
                raise ValueError(f"RandomAffine: shear must be a number, 2 or 4 numbers, "
                                 f"got {shear!r}")
        self.translate, self.scale, self.shear = translate, scale, shear
        self.interpolation = _check_mode(interpolation, "RandomAffine")
        self.fill, self.center = fill, center

    def _sample(self, n, c, h, w, generator):
        angle = uniform(generator, self.degrees[0], self.degrees[1], n)
        xp = get_array_module(angle)
        translate = xp.zeros((n, 2))
        if self.translate is not None:
            limit = xp.asarray([self.translate[0] * w, self.translate[1] * h])
            translate = uniform(generator, -limit, limit, (n, 2))
        scale = xp.ones(n) if self.scale is None else \
            uniform(generator, self.scale[0], self.scale[1], n)
        shear = xp.zeros((n, 2))
        if self.shear is not None:
            lo, hi = xp.asarray(self.shear[0::2]), xp.asarray(self.shear[1::2])
            shear = uniform(generator, lo, hi, (n, 2))
        return {"matrix": affine_matrix(angle, translate, scale, shear, h, w, self.center)}


class RandomPerspective(_Warp):
    """With probability ``p``, pull each corner inwards by up to ``distortion_scale`` of
    half the side, and warp the image so its corners land there (a homography).

    Matrix: ``perspective_matrix`` (solved per sample); a sample left alone gets the
    identity matrix, which ``warp`` reproduces exactly.
    """

    def __init__(self, distortion_scale: float = 0.5, p: float = 0.5,
                 interpolation: str = "bilinear", fill=0.0):
        self.distortion_scale = check_probability(distortion_scale, "RandomPerspective",
                                                  "distortion_scale")
        self.p = check_probability(p, "RandomPerspective")
        self.interpolation = _check_mode(interpolation, "RandomPerspective")
        self.fill = fill

    def _sample(self, n, c, h, w, generator):
        do = random_mask(generator, self.p, n)
        xp = get_array_module(do)
        dx, dy = self.distortion_scale * (w // 2), self.distortion_scale * (h // 2)
        start = xp.asarray([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
        # Corners move inwards: sign of the move per corner, x then y.
        inward = xp.asarray([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)
        shift = uniform(generator, 0.0, 1.0, (n, 4, 2)) * xp.asarray([dx, dy])
        end = start + inward * shift
        start = xp.broadcast_to(start, (n, 4, 2))
        matrix = perspective_matrix(start, end)
        matrix = xp.where(do[:, None, None], matrix, _eye(xp, n))
        return {"matrix": matrix}


class RandomResizedCrop(_Warp):
    """Cut a random box of random area and aspect ratio and stretch it to ``size``.

    Per sample, like torchvision (up to 10 tries, then a centre crop): area fraction ~
    U[scale], log aspect ~ U[log ratio]; w = round(sqrt(A r)), h = round(sqrt(A / r));
    accepted when it fits; top-left uniform. Matrix: ``crop_resize_matrix``; the box is
    sampled from the full image, so its edge pixels blend with the neighbours just outside.
    >>> RandomResizedCrop(224, scale=(0.08, 1.0))(photo)
    """

    padding = "border"

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 interpolation: str = "bilinear"):
        self.size = pair(size, "RandomResizedCrop", "size")
        self.scale = value_range(scale, "RandomResizedCrop", "scale")
        self.ratio = value_range(ratio, "RandomResizedCrop", "ratio")
        if self.scale[0] <= 0 or self.ratio[0] <= 0:
            raise ValueError(f"RandomResizedCrop: scale and ratio must be positive, got "
                             f"scale={self.scale}, ratio={self.ratio}")
        self.interpolation = _check_mode(interpolation, "RandomResizedCrop")

    def _sample(self, n, c, h, w, generator):
        tries = 10
        area = uniform(generator, self.scale[0], self.scale[1], (n, tries)) * (h * w)
        log_r = uniform(generator, math.log(self.ratio[0]), math.log(self.ratio[1]),
                        (n, tries))
        xp = get_array_module(area)
        aspect = xp.exp(log_r)
        cw = xp.round(xp.sqrt(area * aspect))
        ch = xp.round(xp.sqrt(area / aspect))
        ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
        first = xp.argmax(ok, axis=1)                 # the first accepted try
        found = ok.any(axis=1)
        rows = xp.arange(n)
        cw, ch = cw[rows, first], ch[rows, first]
        # Fallback: the largest centred box whose aspect ratio lies within ``ratio``.
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            fw, fh = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            fw, fh = int(round(h * self.ratio[1])), h
        else:
            fw, fh = w, h
        cw, ch = xp.where(found, cw, fw), xp.where(found, ch, fh)
        top = xp.where(found, integers(generator, 0, h - ch, n), (h - fh) // 2)
        left = xp.where(found, integers(generator, 0, w - cw, n), (w - fw) // 2)
        box = xp.stack([top, left, ch, cw], axis=1).astype(np.float64)
        return {"box": box, "matrix": crop_resize_matrix(box, *self.size)}

    def _out_size(self, h, w):
        return self.size

    def output_shape(self, shape):
        return tuple(shape[:-2]) + self.size


class Resize(_Warp):
    """Resample to ``size``: (h, w), or an int for the shorter side (aspect kept).

    y = warp(x, resize_matrix) with edge padding: equal to torch's
    F.interpolate(mode='bilinear', align_corners=False, antialias=False). Shrinking by a
    large factor aliases (no low-pass filter); blur first if that matters.
    >>> Resize(28)(digits_8x8)                   # (1, 8, 8) -> (1, 28, 28)
    """

    padding = "border"

    def __init__(self, size, interpolation: str = "bilinear"):
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            if size < 1:
                raise ValueError(f"Resize: size must be positive, got {size}")
            self.size = int(size)
        else:
            self.size = pair(size, "Resize", "size")
        self.interpolation = _check_mode(interpolation, "Resize")

    def _out_size(self, h, w):
        if isinstance(self.size, tuple):
            return self.size
        if h <= w:
            return self.size, int(self.size * w / h)
        return int(self.size * h / w), self.size

    def _apply(self, xb, params):
        h, w = xb.shape[2:]
        oh, ow = self._out_size(h, w)
        if (oh, ow) == (h, w):
            return xb.copy()
        return warp(xb, resize_matrix(h, w, oh, ow), (oh, ow), mode=self.interpolation,
                    padding="border")

    def output_shape(self, shape):
        batch_shape(shape, self.name)
        return tuple(shape[:-2]) + self._out_size(*shape[-2:])

"""The frame every augmentation shares: draw parameters, then apply them to a batch.

A transform is called on a single CHW image or an NCHW batch, a NumPy or CuPy array (a
minidl Tensor is unwrapped and its result wrapped again). A random transform works in two
steps that can also be called one by one:

    params = t.sample_params(x.shape, generator)   # one set of parameters per sample
    y = t.apply(x, params)                         # deterministic given params

``params`` is a dict of arrays whose first axis is the batch (1 for a CHW image), so
``select_params(params, i)`` gives the parameters of sample ``i`` alone, and applying
them to ``x[i]`` gives ``y[i]``: the batched path is the per-image path, vectorised.
``t(x, generator=None)`` does both steps; with no generator it draws from
``minidl.backend.generator(device of x)``, which ``md.manual_seed`` seeds.

This file also holds the deterministic plumbing: Compose, RandomApply, ToFloat,
Normalize, and the small helpers the other transform files share.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from ... import backend
from ...backend import device_of, get_array_module

__all__ = ["Transform", "Compose", "RandomApply", "ToFloat", "Normalize", "select_params"]


# ---- helpers shared by the transform files -------------------------------------------

def is_array(x) -> bool:
    """True for a NumPy array or a CuPy array (CuPy is never imported here)."""
    return isinstance(x, np.ndarray) or hasattr(x, "__cuda_array_interface__")


def check_probability(p, name: str, arg: str = "p") -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name}: {arg} must be a probability in [0, 1], got {p!r}")
    return float(p)


def batch_shape(shape, name: str) -> tuple:
    """(N, C, H, W) from a CHW or NCHW shape, else a ValueError naming ``name``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        return (1,) + shape
    if len(shape) == 4:
        return shape
    raise ValueError(f"{name}: expected a CHW image or an NCHW batch (ndim 3 or 4), got "
                     f"ndim {len(shape)} (shape {shape})")


def pair(value, name: str, arg: str) -> tuple:
    """(h, w) from an int or a pair of positive ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        value = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name}: {arg} must be an int or a pair of ints (h, w), got {value!r}")
    if min(value) < 1:
        raise ValueError(f"{name}: {arg} must be positive, got {value}")
    return value


def value_range(value, name: str, arg: str, center: float = 0.0, low: float = -np.inf,
                high: float = np.inf) -> tuple:
    """A number v becomes (center - v, center + v) (v >= 0); a pair is kept; both checked."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{name}: {arg} must be non-negative when a single number, "
                             f"got {value}")
        value = (center - float(value), center + float(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and \
            all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        value = (float(value[0]), float(value[1]))
    else:
        raise TypeError(f"{name}: {arg} must be a number or a pair (min, max), got {value!r}")
    if np.isnan(value).any():
        raise ValueError(f"{name}: {arg} must not be NaN, got {value}")
    if value[0] > value[1]:
        raise ValueError(f"{name}: {arg} must be (min, max) with min <= max, got {value}")
    value = (max(value[0], low), min(value[1], high))
    if value[0] > value[1]:
        raise ValueError(f"{name}: {arg} must lie within [{low}, {high}], got {value}")
    return value


def uniform(generator, low, high, size):
    """Uniform draws in [low, high) from a NumPy or CuPy generator (float64)."""
    return low + (high - low) * generator.random(size)


def integers(generator, low, high, size):
    """Uniform integers in [low, high] (both inclusive; ``high`` may be an array)."""
    u = generator.random(size)
    xp = get_array_module(u)
    return xp.minimum(low + xp.floor(u * (high - low + 1)), high).astype(np.int64)


def to_like(array, x, dtype=None):
    """``array`` (a parameter) on the device of ``x``, optionally cast to ``dtype``."""
    array = backend.to_device(array, device_of(x))
    return array if dtype is None else array.astype(dtype, copy=False)


def select_params(params, index):
    """The parameters of sample(s) ``index`` of a batch (an int keeps a batch axis of 1).

    Works on the dict of a transform, the list of a Compose, and nested mixes.
    >>> p = t.sample_params((8, 3, 32, 32), gen)
    >>> y3 = t.apply(x[3], select_params(p, 3))   # equals t.apply(x, p)[3]
    """
    if isinstance(params, dict):
        return {k: select_params(v, index) for k, v in params.items()}
    if isinstance(params, list):
        return [select_params(v, index) for v in params]
    if is_array(params) and params.ndim >= 1:
        return params[index:index + 1] if isinstance(index, numbers.Integral) else params[index]
    return params


def _leading_sizes(params):
    if isinstance(params, dict):
        for v in params.values():
            yield from _leading_sizes(v)
    elif is_array(params) and params.ndim >= 1:
        yield params.shape[0]


# ---- the base class ------------------------------------------------------------------

class Transform:
    """Base of every augmentation: ``sample_params`` draws, ``apply`` transforms.

    Subclasses write ``_sample(n, c, h, w, generator) -> dict`` (random ones) and
    ``_apply(xb, params) -> array`` on an NCHW batch ``xb``; the base class checks the
    input, turns a CHW image into a batch of one and back, and moves the parameters.
    """

    #: integer images (label masks) are accepted: the transform only moves pixels.
    integer_ok = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def __call__(self, x, generator=None):
        """Draw parameters for ``x`` and apply them; returns the same kind as ``x``."""
        x, wrap = self._unwrap(x)
        if generator is None:
            generator = backend.generator(device_of(x))
        out = self.apply(x, self.sample_params(x.shape, generator))
        return wrap(out)

    def sample_params(self, shape, generator=None) -> dict:
        """The random parameters for an input of ``shape`` (CHW or NCHW)."""
        n, c, h, w = batch_shape(shape, self.name)
        if generator is None:
            generator = backend.generator("cpu")
        return self._sample(n, c, h, w, generator)

    def apply(self, x, params: dict):
        """Apply given parameters to a CHW image or an NCHW batch."""
        x, wrap = self._unwrap(x)
        single = x.ndim == 3
        xb = x[None] if single else x
        for size in _leading_sizes(params):
            if size != xb.shape[0]:
                raise ValueError(f"{self.name}: params are for a batch of {size} but the "
                                 f"input has {xb.shape[0]} samples (shape {tuple(x.shape)})")
        out = self._apply(xb, params)
        return wrap(out[0] if single else out)

    def output_shape(self, shape) -> tuple:
        """The shape ``apply`` returns for an input of ``shape`` (the same by default)."""
        return tuple(shape)

    def _sample(self, n, c, h, w, generator) -> dict:
        return {}

    def _apply(self, xb, params):
        raise NotImplementedError

    def _unwrap(self, x):
        from ...tensor import Tensor
        wrap = (lambda a: a)
        if isinstance(x, Tensor):
            x, wrap = x.data, Tensor._wrap
        if not is_array(x):
            raise TypeError(f"{self.name}: expected a NumPy or CuPy array (or a minidl "
                            f"Tensor), got {type(x).__name__}")
        batch_shape(x.shape, self.name)
        if x.dtype.kind != "f" and not (self.integer_ok and x.dtype.kind in "biu"):
            raise TypeError(f"{self.name}: expected a float image (use ToFloat first), got "
                            f"dtype {x.dtype}")
        return x, wrap

    def check_channels(self, c: int, expected: int, what: str) -> None:
        if c != expected:
            raise ValueError(f"{self.name}: {what} needs {expected} channels, got {c}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{self.name}({args})"


def random_mask(generator, p: float, n: int):
    """n booleans, each True with probability p (which samples a transform touches)."""
    return generator.random(n) < p


def where_mask(mask, out, x):
    """Per-sample select: out where mask[n] else x (mask of shape (N,))."""
    xp = get_array_module(x)
    mask = to_like(mask, x)
    return xp.where(mask.reshape((-1,) + (1,) * (x.ndim - 1)), out, x)


# ---- composition ---------------------------------------------------------------------

class Compose(Transform):
    """Apply transforms one after the other; params are the list of their params.

    >>> t = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(m, s)])
    >>> batch = t(batch, generator=np.random.default_rng(0))
    """

    integer_ok = True

    def __init__(self, transforms: Sequence[Transform]):
        if not isinstance(transforms, (list, tuple)):
            raise TypeError(f"Compose: transforms must be a list of Transforms, got "
                            f"{type(transforms).__name__}")
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise TypeError(f"Compose: transforms[{i}] must be a minidl Transform, got "
                                f"{type(t).__name__} (MixUp/CutMix take labels: call them "
                                f"on the batch after the loader)")
        self.transforms = transforms

    def sample_params(self, shape, generator=None) -> list:
        if generator is None:
            generator = backend.generator("cpu")
        params = []
        for t in self.transforms:
            params.append(t.sample_params(shape, generator))
            shape = t.output_shape(shape)
        return params

    def apply(self, x, params: list):
        if not isinstance(params, list) or len(params) != len(self.transforms):
            raise ValueError(f"Compose: expected a list of {len(self.transforms)} params "
                             f"(from sample_params), got {type(params).__name__}")
        for t, p in zip(self.transforms, params):
            x = t.apply(x, p)
        return x

    def output_shape(self, shape) -> tuple:
        for t in self.transforms:
            shape = t.output_shape(shape)
        return tuple(shape)

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {t!r}" for t in self.transforms)
        return f"Compose([\n{inner}\n])"


class RandomApply(Transform):
    """Apply ``transform`` to each sample with probability ``p`` (else leave it).

    The inner transform must keep the shape, so that kept and changed samples stack.
    """

    integer_ok = True

    def __init__(self, transform: Transform, p: float = 0.5):
        if not isinstance(transform, Transform):
            raise TypeError(f"RandomApply: transform must be a minidl Transform, got "
                            f"{type(transform).__name__}")
        self.transform = transform
        self.p = check_probability(p, "RandomApply")

    def _sample(self, n, c, h, w, generator):
        if self.transform.output_shape((n, c, h, w)) != (n, c, h, w):
            raise ValueError(f"RandomApply: the inner {self.transform.name} changes the "
                             f"shape {(n, c, h, w)} -> "
                             f"{self.transform.output_shape((n, c, h, w))}; it must keep it")
        return {"apply": random_mask(generator, self.p, n),
                "inner": self.transform.sample_params((n, c, h, w), generator)}

    def _apply(self, xb, params):
        return where_mask(params["apply"], self.transform.apply(xb, params["inner"]), xb)


# ---- conversion and normalisation ----------------------------------------------------

class ToFloat(Transform):
    """Integer pixels to floats in [0, 1] (uint8 / 255); floats are only cast.

    x (N, C, H, W) or (C, H, W), any integer or bool dtype -> ``dtype`` (float32).
    >>> ToFloat()(np.full((3, 2, 2), 255, np.uint8)).max()
    1.0
    """

    integer_ok = True

    def __init__(self, dtype="float32"):
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"ToFloat: dtype must be a float dtype, got {self.dtype}")

    def _apply(self, xb, params):
        if xb.dtype.kind == "f":
            return xb.astype(self.dtype, copy=False)
        if xb.dtype.kind == "b":
            return xb.astype(self.dtype)
        # Divide (not multiply by 1/255): 255 -> exactly 1.0, every value correctly rounded.
        return xb.astype(self.dtype) / self.dtype.type(np.iinfo(xb.dtype).max)


class Normalize(Transform):
    """Per-channel standardisation: y[:, c] = (x[:, c] - mean[c]) / std[c].

    ``inverse(y)`` undoes it (to display a normalised image).
    >>> norm = Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    >>> x2 = norm.inverse(norm(x))        # x again, to rounding
    """

    def __init__(self, mean, std):
        self.mean = self._vector(mean, "mean")
        self.std = self._vector(std, "std")
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise ValueError(f"Normalize: mean and std must have one value per channel, got "
                             f"{len(self.mean)} and {len(self.std)} values")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {tuple(self.std)}")

    @staticmethod
    def _vector(v, arg):
        a = np.atleast_1d(np.asarray(v, dtype=np.float64))
        if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
            raise ValueError(f"Normalize: {arg} must be a number or a sequence of finite "
                             f"numbers, got {v!r}")
        return a

    def _stats(self, xb):
        c = xb.shape[1]
        for arg, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, c):
                raise ValueError(f"Normalize: {arg} has {v.size} values but the input has "
                                 f"{c} channels (shape {tuple(xb.shape)})")
        mean = to_like(self.mean.reshape(1, -1, 1, 1), xb, xb.dtype)
        std = to_like(self.std.reshape(1, -1, 1, 1), xb, xb.dtype)
        return mean, std

    def _apply(self, xb, params):
        mean, std = self._stats(xb)
        out = xb * (1 / std)            # one multiply and one add over the batch
        out -= mean / std
        return out

    def inverse(self, y):
        """x = y * std + mean, on a CHW image or an NCHW batch."""
        y, wrap = self._unwrap(y)
        yb = y[None] if y.ndim == 3 else y
        mean, std = self._stats(yb)
        out = yb * std + mean
        return wrap(out[0] if y.ndim == 3 else out)

"""Activation functions: ReLU and its relatives, GELU, SiLU, softmax and log-softmax.

relu, sigmoid and tanh are the core's primitives (minidl.ops.elementwise), re-exported
here: their backward is written with Tensor ops, so they can be differentiated twice.
The others are layer ops with an array backward beside the forward.

NumPy has no erf and SciPy is not a dependency, so the exact GELU uses ``erf_array``, W.
J. Cody's rational Chebyshev approximations (Math. Comp. 23, 1969), accurate to about
1e-16 in float64; on a GPU it uses cupyx.scipy.special.erf.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..backend import get_array_module
from ..function import Function
from ..kernels import activation as act_kernels
from ..kernels import use_kernels
from .elementwise import relu, sigmoid, tanh
from ..tensor import Tensor

__all__ = ["relu", "sigmoid", "tanh", "leaky_relu", "gelu", "silu", "hardtanh", "softmax",
           "log_softmax", "erf_array"]


# ---- erf ------------------------------------------------------------------------------
# Cody's coefficients (netlib specfun CALERF), for erf on |x| <= 0.46875 (A, B), erfc on
# 0.46875 < |x| <= 4 (C, D) and erfc on |x| > 4 in powers of 1/x^2 (P, Q).
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_SQRT_PI_INV = 5.6418958354775628695e-1       # 1 / sqrt(pi)


def _rational(t, n, d, k):
    """Cody's Horner scheme for a ratio of two degree-k polynomials in t:

    (n[k+1] t^k + n[0] t^(k-1) + ... + n[k-1] t + n[k]) / (t^k + d[0] t^(k-1) + ... + d[k]),
    with an extra factor t on the leading terms, exactly as CALERF evaluates it.
    """
    num, den = n[k + 1] * t, t
    for a, b in zip(n[:k], d[:k]):
        num = (num + a) * t
        den = (den + b) * t
    return (num + n[k]) / (den + d[k])


def erf_array(x):
    """The error function of a NumPy (Cody's algorithm) or CuPy (cupyx) float array.

    erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt; odd, erf(+-inf) = +-1. The result has
    x's dtype; in float64 it agrees with math.erf to a few units in the last place.
    """
    xp = get_array_module(x)
    if xp is not np:
        import cupyx.scipy.special
        return cupyx.scipy.special.erf(x)
    y = np.abs(x)
    # Each region is evaluated on all of y, clipped into its own interval so no branch
    # overflows, then np.where picks the right one.
    y1 = np.minimum(y, 0.46875)
    small = y1 * _rational(y1 * y1, _A, _B, 3)                 # erf(|x|), |x| <= 0.46875
    y2 = np.clip(y, 0.46875, 4.0)
    middle = _rational(y2, _C, _D, 7)                          # erfc(y) e^(y^2), y <= 4
    y3 = np.clip(y, 4.0, 27.0)                                 # erfc(27) is below 1e-300
    z = 1 / (y3 * y3)
    large = (_SQRT_PI_INV - z * _rational(z, _P, _Q, 4)) / y3  # erfc(y) e^(y^2), y > 4
    # exp(-y^2) with y^2 split into an exact part and a small rest, as Cody does, so the
    # rounding of y*y does not cost digits of erfc.
    yc = np.minimum(y, 27.0)
    head = np.trunc(yc * 16) / 16
    rest = (yc - head) * (yc + head)
    erfc = np.exp(-head * head) * np.exp(-rest) * np.where(y <= 4.0, middle, large)
    result = np.where(y <= 0.46875, small, (0.5 - erfc) + 0.5)
    return np.copysign(result, x).astype(x.dtype, copy=False)


# ---- elementwise activations ----------------------------------------------------------
def _sigmoid_array(x):
    """1 / (1 + e^-x) without overflow: e^-|x| never overflows."""
    xp = get_array_module(x)
    z = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)


class LeakyReLU(Function):
    """y = x for x > 0, else slope * x.

    forward   x (any shape) -> y (same shape)
    backward  gx = gy where x > 0, else slope * gy   (slope at 0, as PyTorch)
    kernels   on a GPU, one pass each way (activation.cu); that path saves x itself in
              place of the ``positive`` mask.
    """

    def __init__(self, negative_slope):
        self.negative_slope = negative_slope

    def forward(self, x):
        xp = get_array_module(x)
        if use_kernels(x):
            self.x = x
            return act_kernels.leaky_relu_forward(x, self.negative_slope)
        self.positive = x > 0
        return xp.where(self.positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, gy):
        xp = get_array_module(gy)
        if use_kernels(gy):
            return act_kernels.leaky_relu_backward(self.x, gy, self.negative_slope)
        return xp.where(self.positive, gy, gy * gy.dtype.type(self.negative_slope))


class GELU(Function):
    """Gaussian error linear unit: y = x * Phi(x), Phi the standard normal CDF.

    forward   exact:  y = x/2 * (1 + erf(x / sqrt 2))
              tanh:   y = x/2 * (1 + tanh(u)),  u = sqrt(2/pi) * (x + 0.044715 x^3)
    backward  exact:  gx = gy * (Phi(x) + x * phi(x)),  phi(x) = exp(-x^2/2) / sqrt(2 pi)
              tanh:   gx = gy * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3*0.044715 x^2)),
                      t = tanh(u)
    kernels   on a GPU, one pass each way (activation.cu), from x alone: that path saves
              no ``cdf`` or ``t``.
    """

    _KAPPA = 0.044715
    _BETA = math.sqrt(2 / math.pi)

    def __init__(self, approximate):
        self.approximate = approximate

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        if use_kernels(x):
            return act_kernels.gelu_forward(x, self.approximate)
        if self.approximate == "tanh":
            self.t = xp.tanh(self._BETA * (x + self._KAPPA * x * x * x))
            return 0.5 * x * (1 + self.t)
        self.cdf = 0.5 * (1 + erf_array(x * (1 / math.sqrt(2))))
        return x * self.cdf

    def backward(self, gy):
        xp = get_array_module(gy)
        x = self.x
        if use_kernels(gy):
            return act_kernels.gelu_backward(x, gy, self.approximate)
        if self.approximate == "tanh":
            t = self.t
            inner = self._BETA * (1 + 3 * self._KAPPA * x * x)
            return gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * inner)
        pdf = xp.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
        return gy * (self.cdf + x * pdf)


class SiLU(Function):
    """Sigmoid linear unit (swish): y = x * sigmoid(x).

    forward   x -> y = x * s,  s = sigmoid(x)
    backward  gx = gy * s * (1 + x * (1 - s))
    """

    def forward(self, x):
        self.x = x
        self.s = _sigmoid_array(x)
        return x * self.s

    def backward(self, gy):
        s = self.s
        return gy * s * (1 + self.x * (1 - s))


class Hardtanh(Function):
    """y = clamp(x, min_val, max_val).

    forward   x -> y = min(max(x, min_val), max_val)
    backward  gx = gy where min_val < x < max_val, else 0 (as PyTorch, 0 at the corners)
    """

    def __init__(self, min_val, max_val):
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x):
        xp = get_array_module(x)
        self.inside = (x > self.min_val) & (x < self.max_val)
        return xp.clip(x, x.dtype.type(self.min_val), x.dtype.type(self.max_val))

    def backward(self, gy):
        return gy * self.inside


# ---- softmax --------------------------------------------------------------------------
class Softmax(Function):
    """y = exp(x) / sum(exp(x)) along ``dim``, shifted by the max so exp never overflows.

    forward   x (..., K, ...) -> y of the same shape; each slice along dim sums to 1;
              y = exp(x - m) / sum(exp(x - m)),  m = max along dim
    backward  gx = y * (gy - sum(gy * y, dim))
    """

    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        xp = get_array_module(x)
        if x.size == 0:      # nothing to normalise (and max of nothing is undefined)
            self.y = x.copy()
            return self.y
        e = x - x.max(axis=self.dim, keepdims=True)
        xp.exp(e, out=e)
        e /= e.sum(axis=self.dim, keepdims=True)
        self.y = e
        return e

    def backward(self, gy):
        y = self.y
        gx = gy * y
        gx -= y * gx.sum(axis=self.dim, keepdims=True)
        return gx


class LogSoftmax(Function):
    """y = x - logsumexp(x) along ``dim``, computed as (x - m) - log(sum(exp(x - m))).

    forward   x (..., K, ...) -> y of the same shape, m = max along dim; finite for
              logits of any magnitude (a -inf logit gives a -inf output, nothing else)
    backward  gx = gy - exp(y) * sum(gy, dim)
    """

    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        xp = get_array_module(x)
        if x.size == 0:
            self.y = x.copy()
            return self.y
        y = x - x.max(axis=self.dim, keepdims=True)
        y -= xp.log(xp.exp(y).sum(axis=self.dim, keepdims=True))
        self.y = y
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.dim, keepdims=True)


# ---- public functions -----------------------------------------------------------------
def _check_input(op, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a float tensor, got dtype {x.dtype}")


def _check_number(op, name, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or math.isnan(value):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")


def _check_dim(op, x, dim):
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if x.ndim == 0:
        raise ValueError(f"{op}: expected an input with at least 1 dimension, got a 0-d "
                         f"tensor")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"{op}: dim {dim} is out of range for an input of shape {x.shape}")
    return int(dim) % x.ndim


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """max(x, 0) + negative_slope * min(x, 0).

    Args:
        input: float tensor.
        negative_slope: slope for x <= 0.
    Returns:
        A tensor of input's shape.

    >>> F.leaky_relu(md.tensor([-2.0, 3.0]), 0.1)    # [-0.2, 3.0]
    """
    _check_input("leaky_relu", input)
    _check_number("leaky_relu", "negative_slope", negative_slope)
    return LeakyReLU(float(negative_slope)).apply(input)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """GELU, x * Phi(x): exact with erf ('none') or the tanh approximation ('tanh').

    Args:
        input: float tensor.
        approximate: 'none' or 'tanh'.
    Returns:
        A tensor of input's shape.
    Raises:
        ValueError: approximate is neither 'none' nor 'tanh'.

    >>> F.gelu(md.tensor([1.0]))                     # [0.8413]
    """
    _check_input("gelu", input)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU(approximate).apply(input)


def silu(input: Tensor) -> Tensor:
    """SiLU (swish), x * sigmoid(x).

    >>> F.silu(md.tensor([0.0, 1.0]))                # [0, 0.7311]
    """
    _check_input("silu", input)
    return SiLU().apply(input)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """Clamp to [min_val, max_val]; the gradient is 1 strictly inside, else 0.

    Raises:
        ValueError: max_val < min_val.

    >>> F.hardtanh(md.tensor([-3.0, 0.5, 3.0]))      # [-1, 0.5, 1]
    """
    _check_input("hardtanh", input)
    _check_number("hardtanh", "min_val", min_val)
    _check_number("hardtanh", "max_val", max_val)
    if max_val < min_val:
        raise ValueError(f"hardtanh: max_val must be >= min_val, got min_val={min_val}, "
                         f"max_val={max_val}")
    return Hardtanh(float(min_val), float(max_val)).apply(input)


def softmax(input: Tensor, dim: int) -> Tensor:
    """Softmax along ``dim``: positive values that sum to 1, stable for any magnitude.

    Args:
        input: float tensor of at least 1 dim.
        dim: the axis that is normalised.
    Returns:
        A tensor of input's shape.
    Raises:
        ValueError: dim out of range.

    >>> F.softmax(md.tensor([[1.0, 2.0, 3.0]]), dim=1)   # [[0.09, 0.2447, 0.6652]]
    """
    _check_input("softmax", input)
    return Softmax(_check_dim("softmax", input, dim)).apply(input)


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """log(softmax(x)) along ``dim``, computed without overflow or log(0).

    Args:
        input: float tensor of at least 1 dim.
        dim: the axis that is normalised.
    Returns:
        A tensor of input's shape.
    Raises:
        ValueError: dim out of range.

    >>> F.log_softmax(md.tensor([[1e4, 0.0]]), dim=1)    # [[0, -1e4]]
    """
    _check_input("log_softmax", input)
    return LogSoftmax(_check_dim("log_softmax", input, dim)).apply(input)

"""Elementwise math with NumPy broadcasting.

forward   y = f(a, b) elementwise; a and b broadcast to a common shape.
backward  ga = sum_to(gy * df/da, a.shape): a gradient of a broadcast operand is summed
          over the axes broadcasting stretched, back to the operand's shape.

Every backward here is written with Tensor ops, so gradients of gradients work.
"""
from __future__ import annotations

import numpy as np

from .._checks import real_arg, same_device, tensor_arg
from ..backend import get_array_module
from ..function import Function
from ..kernels import activation as act_kernels
from ..kernels import use_kernels
from ..parallel import get_num_threads, map_blocks
from ..tensor import Tensor, as_tensor_like

# A NumPy array of at least this many values is worked on in blocks, one per minidl
# thread (see _on_threads).
THREADED_MIN_SIZE = 1 << 18


def _on_threads(a, *others) -> bool:
    """Whether an elementwise pass over ``a`` (and same-shape ``others``) is split into
    blocks of the flattened arrays on minidl's threads.

    NumPy runs an elementwise ufunc on one core, and on large arrays one core's memory
    stream is the limit. Measured on 2 cores: ReLU and an add on (32, 64, 32, 32) 3.1
    against 5.7 ms; the CIFAR ResNet-18 step (ReLU, its backward gy * mask, the residual
    adds) 0.987x and 0.994x the time (interleaved rounds, median of paired ratios).
    """
    return type(a) is np.ndarray and a.size >= THREADED_MIN_SIZE and \
        get_num_threads() > 1 and a.flags.c_contiguous and \
        all(type(o) is np.ndarray and o.shape == a.shape and o.flags.c_contiguous
            for o in others)


def _binary(ufunc, a, b):
    """ufunc(a, b), on blocks of the flattened arrays in minidl's threads when they are
    large and of one shape (_on_threads)."""
    if not _on_threads(a, b):
        return ufunc(a, b)
    out = np.empty(a.shape, dtype=np.result_type(a, b))
    flat_a, flat_b, flat_out = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    map_blocks(lambda s: ufunc(flat_a[s], flat_b[s], out=flat_out[s]), a.size,
               THREADED_MIN_SIZE // 2)
    return out


def _pair(a, b, op=""):
    """Make Tensors of a and b; a Python number takes the dtype of the other operand."""
    if isinstance(a, Tensor) and not isinstance(b, Tensor):
        b = as_tensor_like(b, a, op)
    elif isinstance(b, Tensor) and not isinstance(a, Tensor):
        a = as_tensor_like(a, b, op)
    elif not isinstance(a, Tensor):
        raise TypeError(f"{op + ': ' if op else ''}expected a Tensor operand, got "
                        f"{type(a).__name__} and {type(b).__name__}")
    return a, b


def _no_bool(op, x):
    if x.dtype == np.bool_:
        raise TypeError(f"{op}: input must be a numeric Tensor, got dtype bool; convert it "
                        f"with .float() or .long()")


def _check_broadcast(op, a, b):
    if a.shape == b.shape:      # the common case; broadcast_shapes costs microseconds
        return
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not broadcast") from None


def sum_to(g: Tensor, shape) -> Tensor:
    """Sum a broadcast gradient back to ``shape`` (identity when shapes agree)."""
    if g.shape == tuple(shape):
        return g
    from .reduce import sum_to as _sum_to
    return _sum_to(g, shape)


class Add(Function):
    backward_on_tensors = True
    saves_inputs = False      # backward needs the shapes only

    def forward(self, a, b):
        return _binary(np.add, a, b)

    def backward(self, gy):
        a, b = self.inputs
        return (sum_to(gy, a.shape) if self.needs_input_grad[0] else None,
                sum_to(gy, b.shape) if self.needs_input_grad[1] else None)


class Sub(Function):
    backward_on_tensors = True
    saves_inputs = False      # backward needs the shapes only

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        a, b = self.inputs
        return (sum_to(gy, a.shape) if self.needs_input_grad[0] else None,
                sum_to(-gy, b.shape) if self.needs_input_grad[1] else None)


class Mul(Function):
    backward_on_tensors = True

    def forward(self, a, b):
        return _binary(np.multiply, a, b)

    def backward(self, gy):
        a, b = self.inputs
        return (sum_to(gy * b, a.shape) if self.needs_input_grad[0] else None,
                sum_to(gy * a, b.shape) if self.needs_input_grad[1] else None)


class Div(Function):
    """y = a / b;  ga = gy / b,  gb = -gy * a / b^2."""
    backward_on_tensors = True

    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        return (sum_to(gy / b, a.shape) if self.needs_input_grad[0] else None,
                sum_to(-gy * a / (b * b), b.shape) if self.needs_input_grad[1] else None)


class Neg(Function):
    backward_on_tensors = True
    saves_inputs = False      # backward needs the shapes only

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class PowScalar(Function):
    """y = x^c for a constant c;  gx = gy * c * x^(c-1)."""
    backward_on_tensors = True

    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, x):
        return x ** self.exponent

    def backward(self, gy):
        x, = self.inputs
        c = self.exponent
        if c == 0:
            return gy * 0
        return gy * c * (x ** (c - 1) if c != 2 else x)


class Pow(Function):
    """y = a^b;  ga = gy * b * a^(b-1),  gb = gy * y * log(a)."""
    backward_on_tensors = True

    def forward(self, a, b):
        return a ** b

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(gy * b * a ** (b - 1), a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(gy * a ** b * log(a), b.shape)
        return ga, gb


class Exp(Function):
    """y = e^x;  gx = gy * y."""
    backward_on_tensors = True
    saves_outputs = True      # backward reads y through self.outputs

    def forward(self, x):
        return get_array_module(x).exp(x)

    def backward(self, gy):
        return gy * self.outputs[0]()


class Log(Function):
    """y = ln x;  gx = gy / x."""
    backward_on_tensors = True

    def forward(self, x):
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sqrt(Function):
    """y = sqrt(x);  gx = gy / (2 y)."""
    backward_on_tensors = True
    saves_outputs = True      # backward reads y through self.outputs

    def forward(self, x):
        return get_array_module(x).sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.outputs[0]())


class Abs(Function):
    """y = |x|;  gx = gy * sign(x) (0 at x = 0, as in PyTorch)."""
    backward_on_tensors = True

    def forward(self, x):
        return get_array_module(x).abs(x)

    def backward(self, gy):
        return gy * sign(self.inputs[0])


class Clamp(Function):
    """y = min(max(x, lo), hi);  gx = gy where lo <= x <= hi, else 0."""
    backward_on_tensors = True

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        xp = get_array_module(x)
        y = x
        if self.lo is not None:
            y = xp.maximum(y, xp.asarray(self.lo, dtype=x.dtype))
        if self.hi is not None:
            y = xp.minimum(y, xp.asarray(self.hi, dtype=x.dtype))
        return y

    def backward(self, gy):
        x = self.inputs[0].data
        inside = get_array_module(x).ones(x.shape, dtype=bool)
        if self.lo is not None:
            inside = inside & (x >= self.lo)
        if self.hi is not None:
            inside = inside & (x <= self.hi)
        return gy * Tensor._wrap(inside.astype(x.dtype))


class Maximum(Function):
    """y = max(a, b) elementwise; on ties the gradient is split in half (as PyTorch)."""
    backward_on_tensors = True

    def forward(self, a, b):
        return get_array_module(a).maximum(a, b)

    def backward(self, gy):
        a, b = self.inputs
        share_a = (a.data > b.data) + 0.5 * (a.data == b.data)
        share_a = Tensor._wrap(share_a.astype(gy.dtype))
        return (sum_to(gy * share_a, a.shape) if self.needs_input_grad[0] else None,
                sum_to(gy * (1 - share_a), b.shape) if self.needs_input_grad[1] else None)


class ReLU(Function):
    """y = max(x, 0);  gx = gy * [x > 0].

    Saves the mask x > 0, one byte per element, instead of x: a quarter of the memory
    of a float32 x, which can then be freed as soon as the next layer has read it.
    """
    backward_on_tensors = True
    saves_inputs = False

    def forward(self, x):
        xp = get_array_module(x)
        zero = xp.zeros((), dtype=x.dtype)
        if not _on_threads(x):
            self.mask = x > 0
            return xp.maximum(x, zero)
        # both passes on each block in turn, in minidl's threads (see _on_threads)
        self.mask, y = np.empty(x.shape, dtype=bool), np.empty_like(x)
        flat_x, flat_mask, flat_y = x.reshape(-1), self.mask.reshape(-1), y.reshape(-1)

        def block(s):
            np.greater(flat_x[s], zero, out=flat_mask[s])
            np.maximum(flat_x[s], zero, out=flat_y[s])
        map_blocks(block, x.size, THREADED_MIN_SIZE // 2)
        return y

    def backward(self, gy):
        return gy * Tensor._wrap(self.mask)     # float * bool keeps gy's float dtype


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed without overflow;  gx = gy * y * (1 - y).

    On a GPU the forward is one pass of activation.cu (the array form takes several);
    the backward stays in Tensor ops, so it can be differentiated again.
    """
    backward_on_tensors = True
    saves_outputs = True      # backward reads y through self.outputs

    def forward(self, x):
        xp = get_array_module(x)
        if use_kernels(x):
            return act_kernels.sigmoid_forward(x)
        # e^-|x| never overflows; pick the form that divides by 1 + something small.
        z = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)

    def backward(self, gy):
        y = self.outputs[0]()
        return gy * y * (1 - y)


class Tanh(Function):
    """y = tanh x;  gx = gy * (1 - y^2)."""
    backward_on_tensors = True
    saves_outputs = True      # backward reads y through self.outputs

    def forward(self, x):
        return get_array_module(x).tanh(x)

    def backward(self, gy):
        y = self.outputs[0]()
        return gy * (1 - y * y)


class Where(Function):
    """y = a where cond else b;  ga = gy where cond, gb = gy elsewhere."""
    backward_on_tensors = True

    def __init__(self, cond):
        self.cond = cond

    def forward(self, a, b):
        return get_array_module(a).where(self.cond, a, b)

    def backward(self, gy):
        a, b = self.inputs
        zero = gy * 0
        return (sum_to(where(self.cond, gy, zero), a.shape) if self.needs_input_grad[0]
                else None,
                sum_to(where(self.cond, zero, gy), b.shape) if self.needs_input_grad[1]
                else None)


# ---- public functions ----------------------------------------------------------------
def add(a, b) -> Tensor:
    a, b = _pair(a, b, "add")
    _check_broadcast("add", a, b)
    return Add().apply(a, b)


def sub(a, b) -> Tensor:
    a, b = _pair(a, b, "sub")
    _check_broadcast("sub", a, b)
    return Sub().apply(a, b)


def mul(a, b) -> Tensor:
    a, b = _pair(a, b, "mul")
    _check_broadcast("mul", a, b)
    return Mul().apply(a, b)


def div(a, b) -> Tensor:
    a, b = _pair(a, b, "div")
    _check_broadcast("div", a, b)
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":   # true division, as in PyTorch
        from .shape import cast
        a = cast(a, np.dtype(np.float32))
    return Div().apply(a, b)


def neg(x: Tensor) -> Tensor:
    _no_bool("neg", tensor_arg("neg", "input", x))
    return Neg().apply(x)


def pow(a, b) -> Tensor:
    if isinstance(a, Tensor) and not isinstance(b, Tensor):
        if not isinstance(b, (int, float, np.number)):
            raise TypeError(f"pow: exponent must be a number or Tensor, got {type(b).__name__}")
        return PowScalar(b).apply(a)
    a, b = _pair(a, b, "pow")
    _check_broadcast("pow", a, b)
    return Pow().apply(a, b)


def exp(x: Tensor) -> Tensor:
    return Exp().apply(x)


def log(x: Tensor) -> Tensor:
    return Log().apply(x)


def sqrt(x: Tensor) -> Tensor:
    return Sqrt().apply(x)


def abs(x: Tensor) -> Tensor:
    return Abs().apply(x)


def sign(x: Tensor) -> Tensor:
    """-1, 0 or 1 (a constant: no gradient flows through sign)."""
    _no_bool("sign", tensor_arg("sign", "input", x))
    return Tensor._wrap(get_array_module(x.data).sign(x.data))


def clamp(x: Tensor, min=None, max=None) -> Tensor:
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    min = real_arg("clamp", "min", min) if min is not None else None
    max = real_arg("clamp", "max", max) if max is not None else None
    if min is not None and max is not None and min > max:
        raise ValueError(f"clamp: min must be <= max, got min={min}, max={max}")
    return Clamp(min, max).apply(x)


def maximum(a, b) -> Tensor:
    a, b = _pair(a, b, "maximum")
    _check_broadcast("maximum", a, b)
    return Maximum().apply(a, b)


def minimum(a, b) -> Tensor:
    a, b = _pair(a, b, "minimum")
    _no_bool("minimum", a)
    _no_bool("minimum", b)
    return -maximum(-a, -b)


def relu(x: Tensor) -> Tensor:
    return ReLU().apply(x)


def sigmoid(x: Tensor) -> Tensor:
    if isinstance(x, Tensor) and x.dtype.kind in "biu":   # as PyTorch: ints give floats
        from .shape import cast
        from ..tensor import get_default_dtype
        x = cast(x, get_default_dtype())
    return Sigmoid().apply(x)


def tanh(x: Tensor) -> Tensor:
    return Tanh().apply(x)


def where(condition, a, b) -> Tensor:
    """Elementwise choice: ``a`` where ``condition`` is true, else ``b``."""
    cond = condition.data if isinstance(condition, Tensor) else condition
    ref = a if isinstance(a, Tensor) else b
    if not isinstance(ref, Tensor):
        raise TypeError("where: a or b must be a Tensor")
    same_device("where", ref, "a" if ref is a else "b", condition=condition, a=a, b=b)
    xp = get_array_module(ref.data)
    cond = xp.asarray(cond)
    if cond.dtype != bool:
        raise TypeError(f"where: condition must be bool, got dtype {cond.dtype}")
    a, b = _pair(a, b, "where")
    try:
        np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: the shapes of condition {cond.shape}, a {a.shape} and b "
                         f"{b.shape} do not broadcast") from None
    return Where(cond).apply(a, b)


_COMPARE = {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal",
            "gt": "greater", "ge": "greater_equal", "and": "logical_and",
            "or": "logical_or"}


def compare(op: str, a, b) -> Tensor:
    """Elementwise comparison; the result is a bool tensor outside the graph.

    ``t == None`` is False and ``t != None`` True (Python's identity fallback), as in
    PyTorch, so ``t in [None, ...]`` works.
    """
    if a is None or b is None:
        return NotImplemented
    a, b = _pair(a, b, op)
    if a.device != b.device:
        raise ValueError(f"{op}: expected both tensors on one device, got {a.device} and "
                         f"{b.device}")
    _check_broadcast(op, a, b)
    xp = get_array_module(a.data)
    return Tensor._wrap(getattr(xp, _COMPARE[op])(a.data, b.data))


def logical_not(x: Tensor) -> Tensor:
    return Tensor._wrap(get_array_module(x.data).logical_not(x.data))


def isnan(x: Tensor) -> Tensor:
    return Tensor._wrap(get_array_module(x.data).isnan(x.data))


def isfinite(x: Tensor) -> Tensor:
    return Tensor._wrap(get_array_module(x.data).isfinite(x.data))

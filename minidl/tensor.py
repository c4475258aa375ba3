"""Tensor: an array, its gradient, and the record of the op that made it.

The graph is made of Functions: each output Tensor points to the Function that made it
(``_ctx``), each Function to its inputs (``fn.inputs``: the input Tensors, or, for an input
whose values the Function's backward does not read, an ``InputRecord`` of its shape and
producer, so that its array can be freed right after forward). ``backward()`` walks it in
two steps:

1. an iterative depth-first search lists the Functions so that every Function comes
   after all the Functions that consume its outputs (no recursion: a 1000-op chain or a
   ResNet-152 cannot hit Python's recursion limit);
2. in that order each Function turns the gradients of its outputs into gradients of its
   inputs (the chain rule); gradients that meet at a tensor used twice are summed.

Leaves that require grad receive ``.grad``; everything a Function saved is released
afterwards unless ``retain_graph=True``.
"""
from __future__ import annotations

import numbers
import sys

import numpy as np

from . import backend
from .backend import Device
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

float16, float32, float64 = np.float16, np.float32, np.float64
int8, int16, int32, int64, uint8 = np.int8, np.int16, np.int32, np.int64, np.uint8
bool_ = np.bool_
_default_dtype = [np.dtype(np.float32)]

_DTYPE_NAMES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64",
                "int": "int32", "bool": "bool"}


def _parse_dtype(dtype):
    if dtype is None:
        return None
    if isinstance(dtype, str):
        dtype = _DTYPE_NAMES.get(dtype, dtype)
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected a NumPy dtype or its name, got {dtype!r}") from None


def set_default_dtype(dtype) -> None:
    """The float dtype of tensors made from Python floats (float32 unless changed)."""
    dtype = _parse_dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: expected a float dtype, got {dtype}")
    _default_dtype[0] = dtype


def get_default_dtype():
    return _default_dtype[0]


class Tensor:
    """An n-dimensional array on a device, with autograd.

    >>> x = md.tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward(); x.grad
    tensor([2., 4.])
    """

    __array_priority__ = 1000  # so that ndarray * Tensor calls Tensor.__rmul__

    def __init__(self, data, dtype=None, device=None, requires_grad: bool = False):
        t = tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
        self.__dict__.update(t.__dict__)

    @classmethod
    def _wrap(cls, array, requires_grad: bool = False) -> "Tensor":
        """Wrap an existing array without copying or checking (used by every op)."""
        t = object.__new__(cls)
        t.data = array
        t.grad = None
        t.requires_grad = requires_grad
        t._ctx = None           # the Function that made this tensor (None: a leaf)
        t._output_nr = 0        # which of _ctx's outputs it is
        t._retain_grad = False
        return t

    # ---- properties -------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape      # already a tuple, on NumPy and CuPy

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> Device:
        if type(self.data) is np.ndarray:   # the common case, without a module lookup
            return backend.CPU
        return backend.device_of(self.data)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim)))

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", precision=4,
                               prefix="tensor(")
        extra = ""
        if self.device.type != "cpu":
            extra += f", device='{self.device}'"
        if self.dtype not in (_default_dtype[0], np.dtype(np.int64), np.dtype(bool)):
            extra += f", dtype={self.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn=<{self._ctx.name}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ---- conversion -------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied to the host from a GPU)."""
        return backend.to_device(self.data, "cpu")

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a.astype(dtype) if dtype is not None else a

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only a tensor of one element converts to a Python "
                             f"number, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.dtype.kind not in "fc":
            raise TypeError(f"requires_grad_: only float tensors can require grad, "
                            f"got dtype {self.dtype}")
        if not requires_grad and self._ctx is not None:
            raise ValueError("requires_grad_: cannot turn off grad of a non-leaf tensor; "
                             "use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self._retain_grad = True

    def to(self, *args, **kwargs) -> "Tensor":
        """``t.to("cuda")``, ``t.to(md.float64)``, ``t.to(device, dtype)``: differentiable."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"to: unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, (Device,)) or (isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda")):
                device = a
            else:
                dtype = a
        out = self
        if dtype is not None:
            out = _shape.cast(out, _parse_dtype(dtype))
        if device is not None:
            out = _shape.move(out, Device.parse(device))
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        return self.to(f"cuda:{index}")

    def float(self) -> "Tensor":
        return self.to(np.float32)

    def double(self) -> "Tensor":
        return self.to(np.float64)

    def long(self) -> "Tensor":
        return self.to(np.int64)

    def int(self) -> "Tensor":
        return self.to(np.int32)

    def bool(self) -> "Tensor":
        return self.to(np.bool_)

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.to(other.dtype)

    # ---- in-place data updates (no graph; for initialisation and optimizers) -----
    def _check_inplace(self, op):
        if is_grad_enabled() and (self._ctx is not None or self.requires_grad):
            raise RuntimeError(f"{op}: in-place change of a tensor that requires grad; "
                               f"wrap it in md.no_grad()")

    def zero_(self):
        self._check_inplace("zero_")
        self.data[...] = 0
        return self

    def fill_(self, value):
        self._check_inplace("fill_")
        self.data[...] = value
        return self

    def copy_(self, src):
        self._check_inplace("copy_")
        src = src.data if isinstance(src, Tensor) else src
        xp = backend.get_array_module(self.data)
        self.data[...] = xp.asarray(backend.to_device(src, self.device)).astype(
            self.dtype, copy=False)
        return self

    def __setitem__(self, index, value):
        self._check_inplace("__setitem__")
        index = _shape._raw_index(index)
        value = value.data if isinstance(value, Tensor) else value
        if not isinstance(value, numbers.Number):
            # An array from the other device (a NumPy array into a GPU tensor, a CuPy one
            # into a CPU tensor) is copied over first, as PyTorch does; CuPy refuses both.
            value = backend.to_device(value, self.device)
        self.data[index] = value

    # ---- autograd ---------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False, create_graph: bool = False):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        Args:
            grad: the upstream gradient, same shape as self (default 1 for a scalar).
            retain_graph: keep saved arrays so backward can run again.
            create_graph: record the backward pass itself (for second derivatives).
        """
        if not self.requires_grad:
            raise RuntimeError("backward: tensor does not require grad and has no grad_fn")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be implicitly created only for "
                                   f"scalar outputs, got shape {self.shape}")
            grad = ones_like(self)
        grad = _as_grad(grad, self, "grad")
        run_backward([self], [grad], retain_graph=retain_graph or create_graph,
                     create_graph=create_graph)

    # ---- operators (implemented in minidl/ops) ----------------------------------
    def __add__(self, other): return _ew.add(self, other)
    def __radd__(self, other): return _ew.add(other, self)
    def __sub__(self, other): return _ew.sub(self, other)
    def __rsub__(self, other): return _ew.sub(other, self)
    def __mul__(self, other): return _ew.mul(self, other)
    def __rmul__(self, other): return _ew.mul(other, self)
    def __truediv__(self, other): return _ew.div(self, other)
    def __rtruediv__(self, other): return _ew.div(other, self)
    def __neg__(self): return _ew.neg(self)
    def __pos__(self): return self
    def __pow__(self, other): return _ew.pow(self, other)
    def __rpow__(self, other): return _ew.pow(other, self)
    def __matmul__(self, other): return _la.matmul(self, other)
    def __rmatmul__(self, other): return _la.matmul(other, self)
    def __abs__(self): return _ew.abs(self)
    def __eq__(self, other): return _ew.compare("eq", self, other)
    def __ne__(self, other): return _ew.compare("ne", self, other)
    def __lt__(self, other): return _ew.compare("lt", self, other)
    def __le__(self, other): return _ew.compare("le", self, other)
    def __gt__(self, other): return _ew.compare("gt", self, other)
    def __ge__(self, other): return _ew.compare("ge", self, other)
    def __invert__(self): return _ew.logical_not(self)
    def __and__(self, other): return _ew.compare("and", self, other)
    def __or__(self, other): return _ew.compare("or", self, other)
    def __getitem__(self, index): return _shape.getitem(self, index)

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"bool: a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def __float__(self): return float(self.item())
    def __int__(self): return int(self.item())
    def __index__(self):
        if self.dtype.kind not in "iu":
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.item())

    def add(self, other): return _ew.add(self, other)
    def sub(self, other): return _ew.sub(self, other)
    def mul(self, other): return _ew.mul(self, other)
    def div(self, other): return _ew.div(self, other)
    def neg(self): return _ew.neg(self)
    def pow(self, exponent): return _ew.pow(self, exponent)
    def exp(self): return _ew.exp(self)
    def log(self): return _ew.log(self)
    def sqrt(self): return _ew.sqrt(self)
    def abs(self): return _ew.abs(self)
    def sign(self): return _ew.sign(self)
    def square(self): return _ew.mul(self, self)
    def clamp(self, min=None, max=None): return _ew.clamp(self, min, max)
    clip = clamp
    def maximum(self, other): return _ew.maximum(self, other)
    def minimum(self, other): return _ew.minimum(self, other)
    def relu(self): return _ew.relu(self)
    def sigmoid(self): return _ew.sigmoid(self)
    def tanh(self): return _ew.tanh(self)
    def matmul(self, other): return _la.matmul(self, other)
    def isnan(self): return _ew.isnan(self)
    def isfinite(self): return _ew.isfinite(self)

    def sum(self, dim=None, keepdim=False): return _red.sum(self, dim, keepdim)
    def mean(self, dim=None, keepdim=False): return _red.mean(self, dim, keepdim)
    def max(self, dim=None, keepdim=False): return _red.max(self, dim, keepdim)
    def min(self, dim=None, keepdim=False): return _red.min(self, dim, keepdim)
    def amax(self, dim=None, keepdim=False): return _red.amax(self, dim, keepdim)
    def amin(self, dim=None, keepdim=False): return _red.amin(self, dim, keepdim)
    def var(self, dim=None, keepdim=False, unbiased=True, correction=None):
        return _red.var(self, dim, keepdim, unbiased, correction)
    def std(self, dim=None, keepdim=False, unbiased=True, correction=None):
        return _red.std(self, dim, keepdim, unbiased, correction)
    def argmax(self, dim=None, keepdim=False): return _red.argmax(self, dim, keepdim)
    def argmin(self, dim=None, keepdim=False): return _red.argmin(self, dim, keepdim)
    def logsumexp(self, dim, keepdim=False): return _red.logsumexp(self, dim, keepdim)
    def all(self): return Tensor._wrap(self.data.all())
    def any(self): return Tensor._wrap(self.data.any())

    def reshape(self, *shape): return _shape.reshape(self, *shape)
    def view(self, *shape): return _shape.reshape(self, *shape)
    def view_as(self, other): return _shape.reshape(self, other.shape)
    def reshape_as(self, other): return _shape.reshape(self, other.shape)
    def permute(self, *dims): return _shape.permute(self, *dims)
    def transpose(self, dim0, dim1): return _shape.transpose(self, dim0, dim1)
    def t(self): return _shape.transpose(self, 0, 1) if self.ndim == 2 else self
    def flatten(self, start_dim=0, end_dim=-1): return _shape.flatten(self, start_dim, end_dim)
    def squeeze(self, dim=None): return _shape.squeeze(self, dim)
    def unsqueeze(self, dim): return _shape.unsqueeze(self, dim)
    def expand(self, *shape): return _shape.expand(self, *shape)
    def expand_as(self, other): return _shape.expand(self, other.shape)
    def split(self, split_size, dim=0): return _shape.split(self, split_size, dim)
    def chunk(self, chunks, dim=0): return _shape.chunk(self, chunks, dim)
    def contiguous(self): return self


def _as_grad(grad, like: Tensor, name: str) -> Tensor:
    if not isinstance(grad, Tensor):
        xp = backend.get_array_module(like.data)
        grad = Tensor._wrap(xp.asarray(grad, dtype=like.dtype))
    if grad.shape != like.shape:
        raise ValueError(f"{name}: expected shape {like.shape}, got {grad.shape}")
    if grad.device != like.device:
        raise ValueError(f"{name}: expected device {like.device}, got {grad.device}")
    return grad


class InputRecord:
    """What the graph keeps of a non-leaf input whose array its op's backward does not read.

    ``Function.apply`` stores one in ``fn.inputs`` instead of the Tensor when
    ``fn.saves_inputs`` is false: backward needs the input's shape, dtype and device (to
    check the gradient) and its producer (to pass the gradient on), not its values. The
    array itself is then freed as soon as nothing else holds it.
    """

    __slots__ = ("shape", "dtype", "device", "requires_grad", "_ctx", "_output_nr")

    def __init__(self, t: "Tensor"):
        self.shape, self.dtype, self.device = t.shape, t.dtype, t.device
        self.requires_grad, self._ctx, self._output_nr = t.requires_grad, t._ctx, t._output_nr

    @property
    def data(self):
        raise RuntimeError(
            f"{self._ctx.name}'s output was not kept for backward: the op that consumed it "
            f"has saves_inputs False (save the arrays backward needs in forward, or set "
            f"saves_inputs = True on that Function)")

    def __repr__(self) -> str:
        return (f"InputRecord(shape={self.shape}, dtype={self.dtype}, "
                f"grad_fn=<{self._ctx.name}>)")


def _grad_key(t):
    """The slot that collects the gradient of ``t``: (its producer, which output), so that
    a Tensor and its InputRecord share one; a leaf's own id."""
    return (id(t._ctx), t._output_nr) if t._ctx is not None else id(t)


def _topological_order(roots):
    """Functions reachable from ``roots``, each after every Function that consumes it."""
    order, visited = [], set()
    stack = [(t._ctx, False) for t in roots if t._ctx is not None]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        if getattr(fn, "released", False):
            raise RuntimeError(
                "backward: trying to backward through the graph a second time (or directly "
                "access saved tensors after they have already been freed); specify "
                "retain_graph=True the first time")
        visited.add(id(fn))
        stack.append((fn, True))
        for x in fn.inputs:
            if x._ctx is not None and id(x._ctx) not in visited:
                stack.append((x._ctx, False))
    order.reverse()  # reversed post-order: consumers before producers
    return order


def run_backward(roots, root_grads, retain_graph=False, create_graph=False, capture=None):
    """The chain rule over the graph below ``roots``.

    ``capture`` (dict _grad_key -> Tensor) asks for the gradients of those tensors to be
    returned instead of accumulated into ``.grad`` (that is ``md.grad``).
    """
    from .function import _anomaly_mode, _check_finite

    # grads[(id(fn), i)] = (output i of fn, its gradient summed over the consumers so far).
    # Every fn stays alive in ``order`` during the walk, so its id is not reused.
    grads = {}
    captured = {}
    prev_mode = is_grad_enabled()
    set_grad_enabled(create_graph)
    try:
        for t, g in zip(roots, root_grads):
            key = _grad_key(t)
            if capture is not None and key in capture:
                captured[key] = g
            elif t._ctx is None and capture is None:    # backward() on a leaf itself
                _accumulate_leaf(t, g, create_graph)
            if t._ctx is not None:
                _accumulate(grads, key, t, g)
        for fn in _topological_order(roots):
            key = id(fn)
            slots = [grads.pop((key, i), None) for i in range(len(fn.output_shapes))]
            if all(s is None for s in slots):
                continue
            gys = [None if s is None else s[1] for s in slots]
            if capture is None:
                for ref, g in zip(fn.outputs, gys):
                    y = ref()
                    if y is not None and g is not None and y._retain_grad:
                        y.grad = g if y.grad is None else y.grad + g
            if any(g is None for g in gys):     # several outputs, not all of them used
                gys = [g if g is not None else zeros(shape, dtype=fn_dtype(fn),
                                                     device=fn.inputs[0].device)
                       for g, shape in zip(gys, fn.output_shapes)]
            if _anomaly_mode[0]:
                # name the op whose backward failed, not the ops its backward is made of
                _anomaly_mode[0] = False
                try:
                    gxs = _call_backward(fn, gys, create_graph)
                finally:
                    _anomaly_mode[0] = True
                _check_finite(fn.name, "backward", [g.data for g in gxs if g is not None])
            else:
                gxs = _call_backward(fn, gys, create_graph)
            for x, gx in zip(fn.inputs, gxs):
                if gx is None or not x.requires_grad:
                    continue
                if gx.shape != x.shape:
                    raise RuntimeError(f"{fn.name}.backward returned a gradient of shape "
                                       f"{gx.shape} for an input of shape {x.shape}")
                key = _grad_key(x)
                if capture is not None and key in capture:
                    captured[key] = gx if key not in captured else captured[key] + gx
                    if x._ctx is None:
                        continue
                if x._ctx is None:
                    if capture is None:     # md.grad returns gradients, it writes no .grad
                        _accumulate_leaf(x, gx, create_graph, may_steal=True)
                else:
                    _accumulate(grads, key, x, gx)
            if not retain_graph:
                fn.release()
    finally:
        set_grad_enabled(prev_mode)
    return captured


def fn_dtype(fn):
    return fn.inputs[0].dtype if fn.inputs else _default_dtype[0]


def _call_backward(fn, gys, create_graph):
    if fn.backward_on_tensors:
        gxs = fn.backward(*gys)
    else:
        if create_graph:
            raise NotImplementedError(
                f"double backward through {fn.name} is not implemented")
        gxs = fn.backward(*(g.data for g in gys))
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        gxs = tuple(None if g is None else Tensor._wrap(g) for g in gxs)
    if not isinstance(gxs, tuple):
        gxs = (gxs,)
    if len(gxs) != len(fn.inputs):
        raise RuntimeError(f"{fn.name}.backward returned {len(gxs)} gradients for "
                           f"{len(fn.inputs)} inputs")
    return gxs


def _accumulate(grads, key, t, g):
    # ``t`` (the Tensor or its InputRecord) rides along until its producer's backward: an
    # op that reads its own output there (saves_outputs) finds it alive through its weakref.
    old = grads.get(key)
    grads[key] = (t, g if old is None else old[1] + g)


def _accumulate_leaf(x, gx, create_graph, may_steal=False):
    if x.grad is None:
        if create_graph:
            x.grad = gx
        elif may_steal and _unshared(gx):
            x.grad = gx       # nobody else sees this array: no copy (ResNet-18: 43 MB a step)
        else:
            # A fresh array, never memory that another leaf or the caller may also hold
            # (Add hands the same gradient to both inputs; later steps add in place).
            x.grad = Tensor._wrap(gx.data.copy())
    elif create_graph:
        x.grad = x.grad + gx
    else:
        x.grad.data += gx.data  # in place: no new array per step


# Reference counts are exact up to CPython 3.13; later versions may count fewer.
_COUNTS_EXACT = sys.version_info < (3, 14)


def _unshared(g) -> bool:
    """True when the gradient ``g`` and the memory of its array are seen only by
    run_backward, so the array can become a leaf's ``.grad`` as it is (what PyTorch's
    AccumulateGrad does too). A gradient handed to two inputs, the caller's upstream
    gradient, or a view of an array that something else holds all fail the test.
    """
    # g is held by: in run_backward the gxs tuple, the loop name and zip's result tuple
    # (zip keeps its last tuple for reuse); _accumulate_leaf's argument; this argument;
    # getrefcount's argument. tests/test_graph_memory.py checks both directions.
    if not _COUNTS_EXACT or sys.getrefcount(g) != 6:
        return False
    a = g.data
    # a: g's attribute, the name a, getrefcount's argument. Each base up a chain of views
    # (conv's weight gradient is a reshaped GEMM result): the view's base pointer, the
    # name a, getrefcount's argument.
    while True:
        if sys.getrefcount(a) != 3:
            return False
        base = getattr(a, "base", None)
        if base is None:
            return True
        a = base
        del base


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated).

    >>> gx, = md.grad((x ** 3).sum(), [x], create_graph=True)   # 3x^2, itself differentiable
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single_input = isinstance(inputs, Tensor)
    inputs = [inputs] if single_input else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    root_grads = []
    for i, (y, g) in enumerate(zip(outputs, grad_outputs)):
        if not y.requires_grad:
            raise RuntimeError(f"grad: output {i} does not require grad")
        if g is None:
            if y.data.size != 1:
                raise RuntimeError(f"grad: grad_outputs[{i}] is needed for non-scalar "
                                   f"output of shape {y.shape}")
            g = ones_like(y)
        root_grads.append(_as_grad(g, y, f"grad_outputs[{i}]"))
    if retain_graph is None:
        retain_graph = create_graph
    capture = {_grad_key(x): x for x in inputs}
    captured = run_backward(outputs, root_grads, retain_graph, create_graph, capture)
    result = []
    for i, x in enumerate(inputs):
        g = captured.get(_grad_key(x))
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: input {i} was not used in the graph of the outputs; "
                               f"pass allow_unused=True")
        result.append(g)
    return tuple(result)


# ---- creation ------------------------------------------------------------------------
def _array_module_for(device):
    device = Device.parse(device)
    if device.type == "cpu":
        return np, device
    return backend.import_cupy(), device


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (list, scalar, NumPy/CuPy array, Tensor).

    Python floats become float32 (the default dtype), ints int64, bools bool.
    >>> md.tensor([[1, 2], [3, 4]], dtype="float64", requires_grad=True)
    """
    dtype = _parse_dtype(dtype)
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.generic):
        data = np.asarray(data)       # a NumPy scalar keeps its dtype, like an array
    if hasattr(data, "__cuda_array_interface__") or isinstance(data, np.ndarray):
        array = data
        if device is None:
            device = backend.device_of(data)
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) for d in data):
            data = [d.numpy() if isinstance(d, Tensor) else d for d in data]
        try:
            array = np.asarray(data)
        except ValueError as exc:   # a ragged nest of lists
            raise ValueError(f"tensor: data must be a rectangular nest of numbers, got "
                             f"{type(data).__name__} that is not ({exc})") from None
        if array.dtype == object:
            raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} "
                            f"holding objects")
        if dtype is None and array.dtype.kind == "f":
            array = array.astype(_default_dtype[0])
        elif dtype is None and array.dtype.kind in "iu":
            array = array.astype(np.int64)
    if array.dtype == object or array.dtype.kind not in "biufc":
        raise TypeError(f"tensor: expected numeric data, got dtype {array.dtype}")
    if dtype is not None and dtype.kind not in "biufc":
        raise TypeError(f"tensor: dtype must be a bool or numeric dtype, got {dtype}")
    xp, device = _array_module_for(device)
    if xp is np:
        array = backend.to_device(array, device)
    else:
        with xp.cuda.Device(device.index):
            array = xp.asarray(array)
    array = array.astype(dtype if dtype is not None else array.dtype, copy=True)
    t = Tensor._wrap(array)
    if requires_grad:
        t.requires_grad_(True)
    return t


def as_tensor_like(value, like: Tensor, op: str = "") -> Tensor:
    """A constant Tensor for a Python number or array, on ``like``'s device.

    Python numbers take ``like``'s dtype, so ``x * 2`` never upcasts a float32 graph.
    Anything that is not numeric (None, strings, object arrays) is a TypeError.
    """
    xp = backend.get_array_module(like.data)
    if isinstance(value, (numbers.Number, np.number, np.bool_)):
        if isinstance(value, (bool, np.bool_)) or like.dtype.kind == "f" or \
                isinstance(value, numbers.Integral):
            dtype = like.dtype if like.dtype.kind in "fc" or not isinstance(value, float) \
                else _default_dtype[0]
            return Tensor._wrap(xp.asarray(value, dtype=dtype))
        return Tensor._wrap(xp.asarray(value, dtype=_default_dtype[0]))
    array = None
    if value is not None:
        # Check the dtype on the host first: CuPy refuses an object array with a message
        # that names neither the op nor what was given.
        array = value if hasattr(value, "__cuda_array_interface__") else np.asarray(value)
        if array.dtype.kind in "biufc" and xp is not np:
            array = xp.asarray(backend.to_device(array, like.device))
    if array is None or array.dtype.kind not in "biufc":
        raise TypeError(f"{op + ': ' if op else ''}expected a Tensor, a number or a numeric "
                        f"array as the other operand, got "
                        f"{type(value).__name__ if array is None else array.dtype}")
    if array.dtype.kind == "f" and like.dtype.kind == "f":
        array = array.astype(like.dtype, copy=False)
    return Tensor._wrap(array)


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0:
            raise ValueError(f"size: expected non-negative ints, got {shape}")
    return tuple(int(s) for s in shape)


def _new(fill, shape, dtype, device, requires_grad):
    xp, device = _array_module_for(device)
    dtype = _parse_dtype(dtype) or _default_dtype[0]
    shape = _shape_args(shape)
    if xp is np:
        array = fill(np, shape, dtype)
    else:
        with xp.cuda.Device(device.index):
            array = fill(xp, shape, dtype)
    t = Tensor._wrap(array)
    return t.requires_grad_(True) if requires_grad else t


def zeros(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(lambda xp, s, d: xp.zeros(s, d), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(lambda xp, s, d: xp.ones(s, d), shape, dtype, device, requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _new(lambda xp, s, d: xp.empty(s, d), shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    if not isinstance(fill_value, (numbers.Number, np.number, np.bool_)):
        raise TypeError(f"full: fill_value must be a number, got {_describe(fill_value)}")
    if dtype is None and isinstance(fill_value, (bool, np.bool_)):
        dtype = np.bool_
    elif dtype is None and isinstance(fill_value, (int, np.integer)):
        dtype = np.int64
    return _new(lambda xp, s, d: xp.full(s, fill_value, d), (shape,) if isinstance(
        shape, (tuple, list)) else (shape,), dtype, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    m = n if m is None else m
    return _new(lambda xp, s, d: xp.eye(s[0], s[1], dtype=d), (n, m), dtype, device,
                requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    for name, v in (("start", start), ("end", end), ("step", step)):
        _real_arg("arange", name, v)
    if step == 0:
        raise ValueError("arange: step must be nonzero, got 0")
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else _default_dtype[0]
    xp, device = _array_module_for(device)
    t = Tensor._wrap(xp.arange(start, end, step, dtype=_parse_dtype(dtype)))
    return t.requires_grad_(True) if requires_grad else t


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    _real_arg("linspace", "start", start)
    _real_arg("linspace", "end", end)
    _int_arg("linspace", "steps", steps, low=0)
    xp, device = _array_module_for(device)
    t = Tensor._wrap(xp.linspace(start, end, steps, dtype=_parse_dtype(dtype) or
                                 _default_dtype[0]))
    return t.requires_grad_(True) if requires_grad else t


def zeros_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    _tensor_arg("zeros_like", "input", t)
    return zeros(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                 requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    _tensor_arg("ones_like", "input", t)
    return ones(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    _tensor_arg("full_like", "input", t)
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples from minidl's generator of ``device``."""
    def fill(xp, s, d):
        return backend.generator(Device.parse(device)).standard_normal(s).astype(d)
    return _new(fill, shape, dtype, device, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1) from minidl's generator of ``device``."""
    def fill(xp, s, d):
        return backend.generator(Device.parse(device)).random(s).astype(d)
    return _new(fill, shape, dtype, device, requires_grad)


def randint(low, high, size, dtype=None, device=None) -> Tensor:
    _int_arg("randint", "low", low)
    if _int_arg("randint", "high", high) <= low:
        raise ValueError(f"randint: high must be > low, got low={low}, high={high}")
    def fill(xp, s, d):
        return backend.generator(Device.parse(device)).integers(low, high, s).astype(d)
    return _new(fill, (size,) if isinstance(size, (tuple, list)) else (size,),
                dtype or np.int64, device, False)


def randn_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    _tensor_arg("randn_like", "input", t)
    return randn(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                 requires_grad=requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    _tensor_arg("rand_like", "input", t)
    return rand(t.shape, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


# The ops import Tensor from this module, so they are imported last.
from ._checks import describe as _describe  # noqa: E402
from ._checks import int_arg as _int_arg  # noqa: E402
from ._checks import real_arg as _real_arg  # noqa: E402
from ._checks import tensor_arg as _tensor_arg  # noqa: E402
from .ops import elementwise as _ew  # noqa: E402
from .ops import linalg as _la  # noqa: E402
from .ops import reduce as _red  # noqa: E402
from .ops import shape as _shape  # noqa: E402

__all__ = ["Tensor", "tensor", "grad", "no_grad", "enable_grad", "zeros", "ones", "empty",
           "full", "eye", "arange", "linspace", "zeros_like", "ones_like", "full_like",
           "randn", "rand", "randint", "randn_like", "rand_like", "set_default_dtype",
           "get_default_dtype"]

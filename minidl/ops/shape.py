"""Shape ops: reshape, permute, expand, indexing, cat/stack/split, pad, dtype and device.

None of these changes a value, they only move values around, so every backward moves
the gradient back: reshape it back, permute it back, sum what expand copied, scatter
what indexing gathered (adding where an index repeats), slice what cat joined.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from .._checks import describe, dim_arg, int_arg, tensor_arg
from ..backend import get_array_module
from ..function import Function
from ..tensor import Tensor


def _shape_from_args(shape, op, name="shape"):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"{op}: {name} must be ints, got {shape!r}")
    return tuple(int(s) for s in shape)


class Reshape(Function):
    backward_on_tensors = True
    saves_inputs = False      # backward needs the shapes only

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.inputs[0].shape)


def reshape(x: Tensor, *shape) -> Tensor:
    tensor_arg("reshape", "input", x)
    shape = _shape_from_args(shape, "reshape")
    known = math.prod(s for s in shape if s != -1)
    if shape.count(-1) > 1 or any(s < -1 for s in shape) or (
            -1 in shape and (known == 0 or x.numel() % known)) or (
            -1 not in shape and known != x.numel()):
        raise ValueError(f"reshape: shape {shape} is invalid for a tensor of "
                         f"{x.numel()} elements (shape {x.shape})")
    if shape == x.shape:
        return x
    return Reshape(shape).apply(x)


class Permute(Function):
    backward_on_tensors = True
    saves_inputs = False      # backward needs the shapes only

    def __init__(self, dims):
        self.dims = dims

    def forward(self, x):
        return x.transpose(self.dims)

    def backward(self, gy):
        inverse = sorted(range(len(self.dims)), key=self.dims.__getitem__)
        return Permute(tuple(inverse)).apply(gy)


def permute(x: Tensor, *dims) -> Tensor:
    tensor_arg("permute", "input", x)
    dims = _shape_from_args(dims, "permute", "dims")
    n = x.ndim
    axes = tuple(d + n if d < 0 else d for d in dims)
    # A permutation of 0..n-1 sorts to exactly that; out-of-range or repeated dims do not.
    if len(axes) != n or sorted(axes) != list(range(n)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the {x.ndim} "
                         f"dimensions of a tensor of shape {x.shape}")
    return Permute(axes).apply(x)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    tensor_arg("transpose", "input", x)
    dims = list(range(x.ndim))
    dim0, dim1 = dim_arg("transpose", "dim0", dim0, x.ndim), \
        dim_arg("transpose", "dim1", dim1, x.ndim)
    if x.ndim == 0:
        return x
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute(tuple(dims)).apply(x)    # a valid permutation by construction


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    tensor_arg("flatten", "input", x)
    start = dim_arg("flatten", "start_dim", start_dim, x.ndim)
    end = dim_arg("flatten", "end_dim", end_dim, x.ndim)
    if x.ndim == 0:
        return reshape(x, 1)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:]
    return reshape(x, shape)


def squeeze(x: Tensor, dim=None) -> Tensor:
    tensor_arg("squeeze", "input", x)
    if dim is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    dim = dim_arg("squeeze", "dim", dim, x.ndim)
    if x.ndim == 0 or x.shape[dim] != 1:
        return x
    shape = list(x.shape)
    del shape[dim]
    return reshape(x, tuple(shape))


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    tensor_arg("unsqueeze", "input", x)
    dim = dim_arg("unsqueeze", "dim", dim, x.ndim, extra=1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


class Expand(Function):
    """Broadcast to a larger shape (a view); backward sums over the copied axes."""
    backward_on_tensors = True
    saves_inputs = False      # backward needs the shapes only

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        from .reduce import sum_to
        return sum_to(gy, self.inputs[0].shape)


def expand(x: Tensor, *shape) -> Tensor:
    shape = _shape_from_args(shape, "expand")
    # -1 keeps the size of that axis, as in PyTorch
    offset = len(shape) - x.ndim
    shape = tuple(x.shape[i - offset] if s == -1 else s for i, s in enumerate(shape))
    try:
        if np.broadcast_shapes(x.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"expand: cannot expand shape {x.shape} to {shape}") from None
    if shape == x.shape:
        return x
    return Expand(shape).apply(x)


# ---- indexing -------------------------------------------------------------------------
def _raw_index(index):
    """Turn Tensors (and lists) inside an index into arrays."""
    if isinstance(index, tuple):
        return tuple(_raw_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _has_array(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "shape") and getattr(p, "ndim", 0) > 0 for p in parts)


class GetItem(Function):
    """y = x[index]; backward scatters gy into zeros of x's shape (adding repeats)."""
    backward_on_tensors = True

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        return x[self.index]

    def backward(self, gy):
        return IndexAdd(self.index, self.inputs[0].shape).apply(gy)


class IndexAdd(Function):
    """out = zeros(shape); out[index] += g (an index that repeats adds up)."""
    backward_on_tensors = True

    def __init__(self, index, shape):
        self.index, self.shape = index, shape

    def forward(self, g):
        xp = get_array_module(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        if not _has_array(self.index):
            out[self.index] = g          # basic slicing never repeats a position
        elif xp is np:
            np.add.at(out, self.index, g)
        else:
            import cupyx
            cupyx.scatter_add(out, self.index, g)
        return out

    def backward(self, ggx):
        return GetItem(self.index).apply(ggx)


def getitem(x: Tensor, index) -> Tensor:
    index = _raw_index(index)
    xp = get_array_module(x.data)
    if xp is not np:  # indices travel to the GPU with the data
        index = tuple(xp.asarray(i) if isinstance(i, np.ndarray) else i for i in index) \
            if isinstance(index, tuple) else (xp.asarray(index) if isinstance(
                index, np.ndarray) else index)
    for part in (index if isinstance(index, tuple) else (index,)):
        if hasattr(part, "dtype") and part.dtype.kind not in "iub":
            raise TypeError(f"getitem: index arrays must be integer or bool, got dtype "
                            f"{part.dtype}")
    return GetItem(index).apply(x)


# ---- joining and splitting ------------------------------------------------------------
class Cat(Function):
    backward_on_tensors = True

    def __init__(self, dim):
        self.dim = dim

    def forward(self, *xs):
        return get_array_module(*xs).concatenate(xs, axis=self.dim)

    def backward(self, gy):
        grads, start = [], 0
        for x, need in zip(self.inputs, self.needs_input_grad):
            stop = start + x.shape[self.dim]
            index = (slice(None),) * self.dim + (slice(start, stop),)
            grads.append(gy[index] if need else None)
            start = stop
        return tuple(grads)


def _check_join(tensors, dim, op, same_shape):
    if isinstance(tensors, Tensor) or not len(tensors):
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    tensors = list(tensors)
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: element {i} is a {type(t).__name__}, not a Tensor")
    dim = dim_arg(op, "dim", dim, tensors[0].ndim, extra=1 if same_shape else 0)
    ref = tensors[0].shape
    for i, t in enumerate(tensors):
        other = t.shape if same_shape else t.shape[:dim] + t.shape[dim + 1:]
        want = ref if same_shape else ref[:dim] + ref[dim + 1:]
        if t.ndim != tensors[0].ndim or other != want:
            raise ValueError(f"{op}: tensor {i} has shape {t.shape}, which does not match "
                             f"tensor 0's {ref} outside dim {dim}")
    return tensors, dim


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dim (the DenseNet and Inception concatenation)."""
    tensors, dim = _check_join(tensors, dim, "cat", same_shape=False)
    return Cat(dim).apply(*tensors)


def stack(tensors, dim: int = 0) -> Tensor:
    """Join tensors along a new dim."""
    tensors, dim = _check_join(tensors, dim, "stack", same_shape=True)
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def split(x: Tensor, split_size, dim: int = 0):
    """Pieces of ``split_size`` along dim (the last may be smaller), or sizes from a list."""
    tensor_arg("split", "input", x)
    dim = dim_arg("split", "dim", dim, x.ndim)
    n = x.shape[dim]
    if isinstance(split_size, (int, np.integer)):
        split_size = int_arg("split", "split_size", split_size, low=1)
        sizes = [min(split_size, n - s) for s in range(0, n, split_size)]
    else:
        if not isinstance(split_size, (tuple, list)) or not all(
                isinstance(s, (int, np.integer)) for s in split_size):
            raise TypeError(f"split: split_size must be an int or a list of ints, got "
                            f"{describe(split_size)}")
        sizes = list(split_size)
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise ValueError(f"split: sizes {sizes} do not add up to {n} (dim {dim})")
    out, start = [], 0
    for s in sizes:
        out.append(x[(slice(None),) * dim + (slice(start, start + s),)])
        start += s
    return tuple(out)


def chunk(x: Tensor, chunks: int, dim: int = 0):
    tensor_arg("chunk", "input", x)
    int_arg("chunk", "chunks", chunks, low=1)
    dim = dim_arg("chunk", "dim", dim, x.ndim)
    n = x.shape[dim]
    return split(x, max(-(-n // chunks), 1), dim)


# ---- padding --------------------------------------------------------------------------
class ConstantPad(Function):
    """y = x surrounded by ``value``; backward slices the gradient of the inside."""
    backward_on_tensors = True

    def __init__(self, widths, value):
        self.widths, self.value = widths, value

    def forward(self, x):
        return get_array_module(x).pad(x, self.widths, constant_values=self.value)

    def backward(self, gy):
        inside = tuple(slice(lo, gy.shape[i] - hi) for i, (lo, hi) in enumerate(self.widths))
        return gy[inside]


def _edge_index(n, lo, hi, mode, xp):
    """Source positions of a padded axis: reflect (no edge repeat) or replicate."""
    pos = np.arange(-lo, n + hi)
    if mode == "replicate":
        pos = np.clip(pos, 0, n - 1)
    else:
        pos = np.abs(pos)
        pos = np.where(pos > n - 1, 2 * (n - 1) - pos, pos)
    return xp.asarray(pos)


def pad(x: Tensor, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last len(pad)//2 dims; ``pad`` = (left, right, top, bottom, ...) as PyTorch.

    Modes: 'constant' (``value``), 'reflect' (mirror without repeating the edge: needs
    pad < size) and 'replicate' (repeat the edge). Reflect and replicate are gathers with
    an index array, so their gradient adds up at the source pixels.
    """
    tensor_arg("pad", "input", x)
    if not isinstance(pad, (tuple, list)):
        raise TypeError(f"pad: pad must be a tuple of ints (left, right, top, bottom, ...), "
                        f"got {describe(pad)}")
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of widths for at most {x.ndim} "
                         f"dims, got {pad}")
    if any(not isinstance(p, (int, np.integer)) or p < 0 for p in pad):
        raise ValueError(f"pad: widths must be non-negative ints, got {pad}")
    if mode not in ("constant", "reflect", "replicate"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect' or 'replicate', got "
                         f"{mode!r}")
    if not isinstance(value, (int, float, np.number)) or isinstance(value, bool) or \
            value != value:
        raise TypeError(f"pad: value must be a number (not NaN), got {describe(value)}")
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (int(pad[2 * k]), int(pad[2 * k + 1]))
    if mode == "constant":
        return ConstantPad(tuple(widths), value).apply(x)
    xp = get_array_module(x.data)
    out = x
    for axis, (lo, hi) in enumerate(widths):
        if lo == hi == 0:
            continue
        n = x.shape[axis]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ValueError(f"pad: reflect padding ({lo}, {hi}) must be smaller than the "
                             f"size {n} of dim {axis} of input (shape {x.shape})")
        if n == 0:
            raise ValueError(f"pad: cannot {mode}-pad an empty dim {axis}")
        out = out[(slice(None),) * axis + (_edge_index(n, lo, hi, mode, xp),)]
    return out


# ---- dtype and device -----------------------------------------------------------------
class Cast(Function):
    backward_on_tensors = True

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        return x.astype(self.dtype)

    def backward(self, gy):
        return cast(gy, self.inputs[0].dtype)


def cast(x: Tensor, dtype) -> Tensor:
    if x.dtype == dtype:
        return x
    if dtype.kind not in "fc":  # integer and bool results are outside the graph
        return Tensor._wrap(x.data.astype(dtype))
    return Cast(dtype).apply(x)


class Move(Function):
    backward_on_tensors = True

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return move(gy, self.inputs[0].device)


def move(x: Tensor, device) -> Tensor:
    if x.device == device:
        return x
    if not x.requires_grad:
        return Tensor._wrap(backend.to_device(x.data, device))
    return Move(device).apply(x)

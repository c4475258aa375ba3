"""Convolution as im2col + GEMM: conv2d and conv_transpose2d, forward and backward.

A convolution is a matrix product in disguise. ``im2col`` copies every receptive field of
the input into one column of a matrix, so that conv2d becomes one GEMM per group,

    cols (C*kh*kw, n*OH*OW),  W (O, C*kh*kw)   ->   y = W @ cols   (O, n*OH*OW),

with n samples of the batch folded into the columns: BLAS sees one wide product instead
of n narrow ones. The backward pass is two more GEMMs,

    gW = gy @ cols^T        gcols = W^T @ gy,

and ``col2im``, the adjoint of im2col, which adds every column of gcols back onto the
pixels it was copied from. conv_transpose2d is the same three pieces in the other order:
its forward is conv2d's input gradient, its backward is conv2d's forward and weight
gradient.

Speed, on top of the GEMMs themselves (each trick is explained where it is used):

* the batch goes through im2col + GEMM in chunks of a few MB of columns, small enough
  that the columns are still in the CPU cache when the GEMM reads them
  (_sample_chunks); backward rebuilds each chunk's columns from the saved input instead
  of keeping the whole-batch matrix alive (kh*kw times the size of x), unless that
  matrix is small (KEEP_COLUMNS_BYTES: LeNet-5's convs, ResNet's stride-2 ones);
* im2col writes a contiguous (C, kh, kw, n, OH, OW) buffer, channel axis first, so the
  (C*kh*kw, n*OH*OW) GEMM operand is a free reshape, each group's rows are one block,
  and each of the kh*kw copies writes whole rows; the GEMM result (O, n*OH*OW) is
  transposed to NCHW once, with the bias added in the same pass;
* for stride 1 the input gradient is itself a convolution (of gy with the flipped
  kernel), so backward needs no col2im; and the columns of gy it builds give the weight
  gradient as well, so backward needs no columns of x either;
* on large maps (ResNet's 32x32 and 16x16) a stride-1 conv moves the kernel's rows
  from the GEMM's columns to its rows: kw shifted copies of the input instead of kh*kw,
  one wider GEMM, and kh adds of shifted slices (_RowShiftConv);
* each chunk's columns are copied straight from x, window by window, into a buffer
  whose padding entries stay zero from chunk to chunk (no padded copy of x);
* the scratch buffers are recycled through a small workspace, so every chunk writes
  into memory that is already mapped and in cache;
* a 1x1 kernel skips im2col altogether;
* on the CPU the chunks go to minidl's threads (set_num_threads), whichever is free
  taking the next, each with single-threaded BLAS (minidl.parallel.map_gemm_chunks):
  both cores copy and multiply at once, where BLAS alone would split each 64-row
  product between them and leave the copies to one; the chunks' weight gradients are
  added in chunk order, so the result does not depend on which thread did which.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

from .._checks import same_device
from ..backend import get_array_module
from ..function import Function
from ..grad_mode import is_grad_enabled
from ..kernels import im2col as im2col_kernels
from ..kernels import use_kernels
from ..parallel import get_num_threads, map_gemm_blocks, map_gemm_chunks
from ..tensor import Tensor

__all__ = ["im2col", "col2im", "conv2d", "conv_transpose2d", "Conv2d", "ConvTranspose2d",
           "release_workspace"]


# ---- argument normalisation (shared with pool.py) ------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _pair(value, name: str = "value", op: str = "conv2d") -> tuple:
    """(a, b) from an int or a sequence of two ints."""
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_int, value)):
        return int(value[0]), int(value[1])
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")


def _positive_pair(value, name: str, op: str) -> tuple:
    pair = _pair(value, name, op)
    if min(pair) < 1:
        raise ValueError(f"{op}: {name} must be positive, got {value!r}")
    return pair


def _nonnegative_pair(value, name: str, op: str) -> tuple:
    pair = _pair(value, name, op)
    if min(pair) < 0:
        raise ValueError(f"{op}: {name} must be non-negative, got {value!r}")
    return pair


def _padding_pairs(padding) -> tuple:
    """((top, bottom), (left, right)) from an int, a pair (ph, pw) or such a pair of pairs.

    Internal: bottom/right may be negative (conv_transpose2d's backward uses that to drop
    the rows its output_padding added).
    """
    if _is_int(padding):
        return (int(padding),) * 2, (int(padding),) * 2
    ph, pw = padding
    ph = (int(ph), int(ph)) if _is_int(ph) else (int(ph[0]), int(ph[1]))
    pw = (int(pw), int(pw)) if _is_int(pw) else (int(pw[0]), int(pw[1]))
    return ph, pw


def _check_tensor(x, name: str, op: str, layout: str = "(N, C, H, W)") -> None:
    """A float Tensor of 4 dimensions; otherwise a TypeError/ValueError saying what came."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {name} must be a minidl Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D {name} {layout}, got a {x.ndim}-D {name} "
                         f"of shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a float tensor, got dtype {x.dtype}")


def _output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """floor((H + pad_top + pad_bottom - d*(k-1) - 1) / s) + 1, as PyTorch."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def _window_range(offset: int, stride: int, out_size: int, in_size: int) -> tuple:
    """The outputs i whose input coordinate i*stride + offset lies inside [0, in_size).

    Returns (i0, i1, start): outputs i0 <= i < i1 read real pixels, starting at input
    coordinate ``start``; the others read padding. This lets col2im add straight into
    the unpadded result (and pooling fill its phase buffers) without index arithmetic
    per pixel.
    """
    i0 = min(max(0, -(offset // stride)), out_size)          # ceil(-offset / stride)
    i1 = max(min(out_size, -((offset - in_size) // stride)), i0)
    return i0, i1, i0 * stride + offset


def _strided(start: int, count: int, stride: int) -> slice:
    return slice(start, start + stride * (count - 1) + 1, stride)


def _pad_channels_first(x, pads, fill):
    """x (N, C, H, W) as (C, N, H + pt + pb, W + pl + pr), padded with ``fill``.

    Channel-first like the im2col buffer, so each of the kh*kw copies reads and writes
    in the same order. A negative bottom/right padding crops. Without padding this is a
    transposed view, not a copy.
    """
    xp = get_array_module(x)
    (pt, pb), (pl, pr) = pads
    N, C, H, W = x.shape
    x_cn = x.transpose(1, 0, 2, 3)[:, :, :H + min(pb, 0), :W + min(pr, 0)]
    if pt == pl == 0 and pb <= 0 and pr <= 0:
        return x_cn
    pb, pr = max(pb, 0), max(pr, 0)
    # Filling the whole buffer first costs one extra sweep but is far cheaper than
    # filling the left/right border columns (one element per row) separately.
    xpad = _WORKSPACE.empty((C, N, pt + x_cn.shape[2] + pb, pl + x_cn.shape[3] + pr),
                            x.dtype, xp)
    xpad.fill(fill)
    xpad[:, :, pt:pt + x_cn.shape[2], pl:pl + x_cn.shape[3]] = x_cn
    return xpad


# ---- a workspace for the large buffers ---------------------------------------------------
class _Workspace:
    """Hands the im2col-sized scratch buffers out again instead of allocating new ones.

    A fresh NumPy buffer of more than a few hundred KB comes from the kernel as new pages,
    faulted in and zeroed on first touch, and is cold in the cache. conv2d gives each
    scratch buffer (a chunk's columns, a padded copy of the input) back here once nothing
    refers to it any more, and the next chunk takes it again: the same memory, still in
    cache. Only NumPy buffers of at least ``min_bytes`` are kept, at most ``max_bytes``
    in all; CuPy has its own memory pool.
    """

    def __init__(self, min_bytes: int = 256 << 10, max_bytes: int = 256 << 20):
        self.min_bytes, self.max_bytes = min_bytes, max_bytes
        self.free = []              # 1-D uint8 arrays, each owning its memory
        self._lock = threading.Lock()   # convolutions may run in several threads

    def empty(self, shape, dtype, xp):
        """An uninitialised array, from a kept buffer when one of a fitting size exists."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if xp is not np or nbytes < self.min_bytes:
            return xp.empty(shape, dtype=dtype)
        # Best fit among buffers at most twice the size: a small request must not pin a
        # large buffer.
        with self._lock:
            fits = [i for i, b in enumerate(self.free) if nbytes <= b.nbytes <= 2 * nbytes]
            root = self.free.pop(min(fits, key=lambda i: self.free[i].nbytes)) if fits \
                else None
        if root is None:
            root = np.empty(nbytes, dtype=np.uint8)
        return root[:nbytes].view(dtype).reshape(shape)

    def give(self, array) -> None:
        """Keep the buffer under ``array`` if the caller's name for ``array`` is the only
        reference left to it and ``array`` the only view of the buffer.

        The reference counts prove that no one else (a user who kept ``fn.cols``, say)
        still sees the memory that the next call will overwrite; when in doubt the
        buffer is simply not kept.
        """
        root = getattr(array, "base", None)
        if not isinstance(root, np.ndarray) or root.base is not None or \
                root.dtype != np.uint8 or root.ndim != 1 or root.nbytes < self.min_bytes:
            return
        # array: the caller's name, this parameter, getrefcount's argument.
        # root: array's base pointer, the name ``root``, getrefcount's argument.
        if sys.getrefcount(array) != 3 or sys.getrefcount(root) != 3:
            return
        with self._lock:
            if sum(b.nbytes for b in self.free) + root.nbytes <= self.max_bytes:
                self.free.append(root)

    def clear(self) -> None:
        with self._lock:
            self.free = []


_WORKSPACE = _Workspace()


def release_workspace() -> None:
    """Free the buffers conv2d keeps for reuse between calls (e.g. after training)."""
    _WORKSPACE.clear()


# ---- im2col / col2im -------------------------------------------------------------------
def im2col(x, kernel_size, stride=1, padding=0, dilation=1, fill=0.0):
    """Every receptive field of x as a column: x (N, C, H, W) -> cols (N, C, kh, kw, OH, OW).

    cols[n, c, p, q, i, j] = xpad[n, c, i*sh + p*dh, j*sw + q*dw], where xpad is x padded
    with ``fill`` (0 for convolution, -inf for max pooling), and
    OH = floor((H + pad_top + pad_bottom - dh*(kh-1) - 1) / sh) + 1 (OW likewise).

    The result is a transposed view of a contiguous (C, kh, kw, N, OH, OW) buffer, so
    ``cols.transpose(1, 2, 3, 0, 4, 5).reshape(C*kh*kw, N*OH*OW)`` is conv2d's GEMM
    operand without a copy. On a GPU (zero fill) kernels/im2col.cu writes the same buffer.

    Args:
        x: a NumPy or CuPy array (N, C, H, W).
        kernel_size, stride, dilation: int or (h, w).
        padding: int, (ph, pw), or ((top, bottom), (left, right)).
        fill: the value of the padding cells.
    Returns:
        cols as described, same dtype and array module as x.

    >>> im2col(np.arange(16.).reshape(1, 1, 4, 4), 3).shape
    (1, 1, 3, 3, 2, 2)
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    kh, kw = _pair(kernel_size, "kernel_size", "im2col")
    sh, sw = _pair(stride, "stride", "im2col")
    dh, dw = _pair(dilation, "dilation", "im2col")
    pads = _padding_pairs(padding)
    if fill == 0 and use_kernels(x):      # one thread per window (im2col.cu), same layout
        return im2col_kernels.im2col(x, kh, kw, sh, sw, pads[0], pads[1], dh, dw)
    OH = _output_size(H, kh, sh, sum(pads[0]), dh)
    OW = _output_size(W, kw, sw, sum(pads[1]), dw)
    xpad = _pad_channels_first(x, pads, fill)        # (C, N, H + pt + pb, W + pl + pr)
    cols = _WORKSPACE.empty((C, kh, kw, N, OH, OW), x.dtype, xp)
    # One strided copy per kernel offset (kh*kw of them): no loop over pixels or samples.
    for p in range(kh):
        for q in range(kw):
            cols[:, p, q] = xpad[:, :, _strided(p * dh, OH, sh), _strided(q * dw, OW, sw)]
    _WORKSPACE.give(xpad)       # kept only if it is a padded copy, not a view of x
    return cols.transpose(3, 0, 1, 2, 4, 5)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1):
    """The adjoint of im2col: add every column back onto the pixels it came from.

    cols (N, C, kh, kw, OH, OW) -> x (N, C, H, W) with
    x[n, c, h, w] = sum of cols[n, c, p, q, i, j] over h = i*sh + p*dh - pad_top,
    w = j*sw + q*dw - pad_left; entries that land in the padding are dropped.
    OH and OW are read from cols, so only the top/left padding matters. On a GPU,
    kernels/im2col.cu computes it (one thread per pixel).

    Args:
        cols: array as returned by im2col (fastest when its memory is (C, kh, kw, N, ...)).
        x_shape: (N, C, H, W) of the result.
        kernel_size, stride, padding, dilation: as for im2col.
    Returns:
        a new contiguous array of shape x_shape.

    >>> x = np.ones((1, 1, 3, 3)); col2im(im2col(x, 2), x.shape, 2)[0, 0]
    array([[1., 2., 1.], [2., 4., 2.], [1., 2., 1.]])
    """
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    kh, kw = _pair(kernel_size, "kernel_size", "col2im")
    sh, sw = _pair(stride, "stride", "col2im")
    dh, dw = _pair(dilation, "dilation", "col2im")
    (pt, _), (pl, _) = _padding_pairs(padding)
    if use_kernels(cols):                 # each pixel gathers its entries: no atomics
        return im2col_kernels.col2im(cols, x_shape, kh, kw, sh, sw, pt, pl, dh, dw)
    OH, OW = cols.shape[4:]
    x = xp.zeros((N, C, H, W), dtype=cols.dtype)
    x_cn = x.transpose(1, 0, 2, 3)
    cols_c = cols.transpose(1, 2, 3, 0, 4, 5)  # (C, kh, kw, N, OH, OW): contiguous from GEMM
    # kh*kw strided slice-adds. Within one offset the target pixels are distinct, so a
    # plain += is exact (np.add.at is only needed when an index can repeat).
    for p in range(kh):
        i0, i1, h0 = _window_range(p * dh - pt, sh, OH, H)
        if i1 == i0:
            continue
        for q in range(kw):
            j0, j1, w0 = _window_range(q * dw - pl, sw, OW, W)
            if j1 == j0:
                continue
            x_cn[:, :, _strided(h0, i1 - i0, sh), _strided(w0, j1 - j0, sw)] += \
                cols_c[:, p, q, :, i0:i1, j0:j1]
    return x


class _ChunkColumns:
    """im2col of one chunk of a batch after another, as the GEMM operand
    (G, C/G*kh*kw, n*OH*OW), into one scratch buffer that every chunk reuses.

    conv2d's inner loop: the geometry is worked out once per call instead of once per
    chunk, and the buffer is taken from the workspace once. Unlike im2col it makes no
    padded copy of the input: each kernel offset (p, q) copies only the window of
    outputs that read real pixels (_window_range), straight from x, and the entries that
    read padding are zero. Those sit at the same places in every chunk, so the buffer is
    zeroed once (one memset, for the first chunk and again for a shorter last one) and
    each chunk overwrites only the rest. That saves the padded copy's write and read of
    every chunk: conv2d forward+backward on (32, 64, 32, 32), 3x3, measured 8-10% faster.
    ``release`` gives the buffer back. On a GPU each chunk goes to im2col, that is to
    kernels/im2col.cu.
    """

    def __init__(self, x_shape, chunk_n, kernel, stride, pads, dilation, groups, dtype, xp):
        _, C, H, W = x_shape
        (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
        (pt, pb), (pl, pr) = pads
        self.args = (kernel, stride, pads, dilation)
        self.xp, self.groups, self.C, self.kernel = xp, groups, C, kernel
        OH = self.OH = _output_size(H, kh, sh, pt + pb, dh)
        OW = self.OW = _output_size(W, kw, sw, pl + pr, dw)
        # A negative bottom/right padding (conv_transpose2d's output_padding) crops x.
        H, W = H + min(pb, 0), W + min(pr, 0)
        self.crop = (slice(0, H), slice(0, W))
        self.cols_buf = None
        self.zeroed_for = None      # the chunk size whose padding entries are zero
        self.last = None            # the last chunk's columns (see take)
        self.windows, self.padded = [], False
        if xp is not np:            # a GPU: im2col.cu does each chunk, nothing to plan
            return
        # Per kernel offset: the outputs [i0, i1) x [j0, j1) that read real pixels, and
        # the strided rows and columns of x they read. An offset whose window is empty
        # reads nothing but padding.
        for p in range(kh):
            i0, i1, h0 = _window_range(p * dh - pt, sh, OH, H)
            for q in range(kw):
                j0, j1, w0 = _window_range(q * dw - pl, sw, OW, W)
                if i1 > i0 and j1 > j0:
                    self.windows.append((p, q, slice(i0, i1), slice(j0, j1),
                                         _strided(h0, i1 - i0, sh), _strided(w0, j1 - j0, sw)))
        # Does any entry read padding?
        area = sum((w[2].stop - w[2].start) * (w[3].stop - w[3].start) for w in self.windows)
        self.padded = area < kh * kw * OH * OW
        self.cols_buf = _WORKSPACE.empty((C * kh * kw * chunk_n * OH * OW,), dtype, xp)

    def __call__(self, x_chunk):
        xp, G, C, (kh, kw) = self.xp, self.groups, self.C, self.kernel
        n, OH, OW = x_chunk.shape[0], self.OH, self.OW
        if xp is not np or use_kernels(x_chunk):
            cols = im2col(x_chunk, *self.args)
        else:
            x_cn = x_chunk.transpose(1, 0, 2, 3)[:, :, self.crop[0], self.crop[1]]
            cols = self.cols_buf[:C * kh * kw * n * OH * OW].reshape(C, kh, kw, n, OH, OW)
            if self.padded and self.zeroed_for != n:    # first chunk, or a shorter last one
                cols.fill(0)        # one memset: faster than zeroing the borders piece by piece
                self.zeroed_for = n
            # kh*kw strided copies, each of the window that lies inside x
            for p, q, out_rows, out_columns, rows, columns in self.windows:
                cols[:, p, q, :, out_rows, out_columns] = x_cn[:, :, rows, columns]
            cols = cols.transpose(3, 0, 1, 2, 4, 5)
        # The channel-first buffer makes this reshape free.
        self.last = cols.transpose(1, 2, 3, 0, 4, 5).reshape(G, C // G * kh * kw, n * OH * OW)
        return self.last

    def take(self):
        """The last chunk's columns, to keep: the next chunk gets a buffer of its own."""
        cols, self.last = self.last, None
        if self.cols_buf is not None:
            self.cols_buf = _WORKSPACE.empty(self.cols_buf.shape, self.cols_buf.dtype, self.xp)
            self.zeroed_for = None
        return cols

    def release(self) -> None:
        self.last = None            # a view of cols_buf: dropped first (see give)
        buf, self.cols_buf = self.cols_buf, None
        if buf is not None:
            _WORKSPACE.give(buf)


# ---- stride 1: kernel rows as GEMM rows ----------------------------------------------------
# The row-shift form (_RowShiftConv) is used when the rows it computes in vain, d*(kh-1)
# per sample, are at most this fraction of the output's rows: ResNet's 32x32 and 16x16
# maps (2 of 32, 2 of 16; with the 16x16 ones too, the CIFAR ResNet-18 step took 0.98x
# the time of the 32x32 ones alone), not its 8x8 and 4x4 ones (2 of 8 and of 4). And
# when its GEMM's shared dimension kw*C is at least ROW_SHIFT_MIN_DEPTH (ResNet's first
# conv, 3 input channels, took 12.4 against 5.4 ms forward this way).
ROW_SHIFT_MAX_EXTRA_ROWS = 0.125
ROW_SHIFT_MIN_DEPTH = 128


def _row_shift_applies(xp, groups: int, channels: int, kernel: tuple, dilation: tuple,
                       pads: tuple, out_h: int) -> bool:
    """Whether a stride-1 conv of ``channels`` input channels takes _RowShiftConv (the
    caller checks the stride)."""
    (kh, kw), (dh, _), ((pt, _), (pl, _)) = kernel, dilation, pads
    return xp is np and groups == 1 and kh > 1 and pt >= 0 and pl >= 0 and \
        kw * channels >= ROW_SHIFT_MIN_DEPTH and \
        dh * (kh - 1) <= ROW_SHIFT_MAX_EXTRA_ROWS * out_h


def _kernel_rows_first(weight, bias=None):
    """W (O, C, kh, kw) as the (kh*O, kw*C) GEMM operand W3[(p, o), (q, c)] = W[o, c, p, q].

    With ``bias`` (O,), W3 gets one more column, b in the rows of p = 0 and 0 in the
    others: the bias as the weight of an input that is always 1 (_RowShiftConv's columns
    then end with a row of ones), so the GEMM adds it and y needs no pass of its own.
    """
    O, C, kh, kw = weight.shape
    w3 = weight.transpose(2, 0, 3, 1).reshape(kh * O, kw * C)
    if bias is None:
        return np.ascontiguousarray(w3)
    with_bias = np.zeros((kh * O, kw * C + 1), dtype=weight.dtype)
    with_bias[:, :-1] = w3
    with_bias[:O, -1] = bias
    return with_bias


class _RowShiftConv:
    """A stride-1 convolution with the kernel's rows moved from the columns to the GEMM's
    rows: im2col copies kw shifted copies of the input instead of kh*kw.

    With rows r of the padded input (Hp = OH + d_h*(kh-1) of them per sample) and
    out = y's (n, O, OH, OW) chunk,

        cols[(q, c), (r, s, j)]   = xpad[s, c, r, j + q*d_w]        (kw*C, Hp*n*OW)
        Z[(p, o), (r, s, j)]      = sum_{q,c} W[o, c, p, q] cols[(q, c), (r, s, j)]
        out[s, o, i, j]           = sum_p Z[(p, o), (i + p*d_h, s, j)]

    Z = W3 @ cols is one GEMM with kh*O rows and a shared dimension of kw*C (ResNet's
    64-channel 3x3 conv: 192 x 192 instead of 64 x 576), which OpenBLAS runs 15% faster
    (55 against 48 GFLOP/s on one core); and because the columns run over (r, s, j), the
    kernel-row offset p is a shift of p*d_h*n*OW columns: the sum over p is kh plain
    adds of contiguous slices. The price: Z has Hp rows per sample where y has OH (6%
    more GEMM work at 32x32, 12.5% at 16x16, 50% at 4x4; see ROW_SHIFT_MAX_EXTRA_ROWS).
    Measured against im2col + GEMM, forward, one thread, 16 samples: 64ch 32x32
    0.77-0.86x the time, 128ch 16x16 0.88-0.91x, 256ch 8x8 0.98-1.02x, 512ch 4x4 1.26x.
    In two threads (interleaved runs, median of paired ratios): the 64-channel 32x32
    conv's forward+backward at batch 32 0.92-0.99x (0.85x in a slow phase of the
    machine), the CIFAR ResNet-18 step 0.96-0.99x with it on the 32x32 maps, and 0.98x
    of that again with it on the 16x16 maps as well.

    Backward uses the same form for the input gradient (a stride-1 convolution of gy
    with the flipped kernel), and its columns of gy for the weight gradient: kh products
    of the columns shifted down by p*d_h rows (see kernel_row_views).

    The entries of cols that read padding sit at the same places for every chunk: the
    buffer is zeroed once (per chunk size) and each chunk overwrites only the rest, as in
    _ChunkColumns; so is its row of ones when W3 carries the bias (_kernel_rows_first).
    ``columns`` stays valid after the call until the next chunk: conv2d's backward reads
    the weight gradient from it (see Conv2d.backward).
    """

    def __init__(self, x_shape, chunk_n, kernel, pads, dilation, out_hw, dtype):
        _, C, H, W = x_shape
        (kh, kw), (dh, dw), ((pt, pb), (pl, pr)) = kernel, dilation, pads
        self.OH, self.OW = out_hw
        self.kh, self.kw, self.dh, self.C = kh, kw, dh, C
        self.Hp = self.OH + dh * (kh - 1)       # padded-input rows that the outputs read
        # A negative bottom/right padding (conv_transpose2d's output_padding) crops x.
        H, W = H + min(pb, 0), W + min(pr, 0)
        # the rows r0 <= r < r1 of xpad hold real pixels: x's rows 0 .. r1 - r0 - 1
        self.rows = (pt, max(pt, min(self.Hp, pt + H)))
        # per column offset q: outputs [j0, j1) read x columns from w0 on
        self.windows = []
        for q in range(kw):
            j0, j1, w0 = _window_range(q * dw - pl, 1, self.OW, W)
            self.windows.append((q, slice(j0, j1), slice(w0, w0 + j1 - j0)))
        rows_real = self.rows[1] - self.rows[0]
        self.padded = rows_real < self.Hp or \
            any(cols.stop - cols.start < self.OW for _, cols, _ in self.windows)
        # (kw*C + 1 rows: room for the row of ones of a bias)
        self.cols_buf = _WORKSPACE.empty(((kw * C + 1) * self.Hp * chunk_n * self.OW,),
                                         dtype, np)
        self.z_buf = None
        self.prepared_for = None    # (n, bias row or not) of the zeros and ones in cols
        self.columns = None         # the last chunk's (kw*C, Hp*n*OW) operand

    def __call__(self, x_chunk, w3, out) -> None:
        """out (n, O, OH, OW) = the convolution of x_chunk (n, C, H, W) with W3 (kh*O,
        kw*C), or + bias with W3 (kh*O, kw*C + 1) (see _kernel_rows_first)."""
        kh, kw, C, Hp, OH, OW = self.kh, self.kw, self.C, self.Hp, self.OH, self.OW
        n, O = x_chunk.shape[0], w3.shape[0] // kh
        width = Hp * n * OW
        rows = w3.shape[1]          # kw*C, + 1 for the bias's row of ones
        cols = self.cols_buf[:kw * C * width].reshape(kw, C, Hp, n, OW)
        if self.prepared_for != (n, rows):      # first chunk, or a shorter last one
            if self.padded:
                cols.fill(0)
            if rows > kw * C:
                self.cols_buf[kw * C * width:rows * width] = 1
            self.prepared_for = (n, rows)
        r0, r1 = self.rows
        x_rows = x_chunk.transpose(1, 2, 0, 3)      # (C, H, n, W): rows, then samples
        for q, out_cols, x_cols in self.windows:    # kw strided copies
            cols[q, :, r0:r1, :, out_cols] = x_rows[:, :r1 - r0, :, x_cols]
        self.columns = self.cols_buf[:rows * width].reshape(rows, width)
        if self.z_buf is None:      # sized for the largest chunk, the first
            self.z_buf = _WORKSPACE.empty((kh * O * Hp * n * OW,), x_chunk.dtype, np)
        z = self.z_buf[:kh * O * Hp * n * OW].reshape(kh * O, Hp * n * OW)
        np.matmul(w3, self.columns, out=z)
        # out[s, o, i, j] = sum_p Z[(p, o), (i + p*dh, s, j)]: kh slices of Z, each
        # shifted by p*dh rows of the (r, s, j) column order
        z = z.reshape(kh, O, Hp * n * OW)
        step = self.dh * n * OW
        term = [z[p, :, p * step:p * step + OH * n * OW].reshape(O, OH, n, OW)
                for p in range(kh)]
        target = out.transpose(1, 2, 0, 3)          # (O, OH, n, OW)
        np.add(term[0], term[1], out=target)
        for p in range(2, kh):
            target += term[p]

    def kernel_row_views(self, out_rows: int):
        """The columns as kh overlapping (kw*C, out_rows*n*OW) matrices, the p-th starting
        p*d_h rows down: columns[(q, c), (h + p*d_h, s, j)] for h < out_rows."""
        kw_c, width = self.kw * self.C, self.columns.shape[1]
        n_ow = width // self.Hp
        item = self.columns.itemsize
        return np.lib.stride_tricks.as_strided(
            self.columns, shape=(self.kh, kw_c, out_rows * n_ow),
            strides=(self.dh * n_ow * item, width * item, item), writeable=False)

    def release(self) -> None:
        self.columns = None         # a view of cols_buf: dropped first (see give)
        for name in ("cols_buf", "z_buf"):
            buf = getattr(self, name)
            setattr(self, name, None)
            if buf is not None:
                _WORKSPACE.give(buf)


# ---- GEMM layout helpers ---------------------------------------------------------------
def _nchw_to_rows(a, groups: int):
    """(N, C, H, W) -> contiguous (groups, C/groups, N*H*W): channels as GEMM rows."""
    xp = get_array_module(a)
    N, C, H, W = a.shape
    if N == 1 and a.flags.c_contiguous:     # one sample is already in this layout
        return a.reshape(groups, C // groups, H * W)
    rows = xp.empty((C, N, H, W), dtype=a.dtype)
    rows[...] = a.transpose(1, 0, 2, 3)
    return rows.reshape(groups, C // groups, N * H * W)


def _rows_to_nchw(rows, N: int, H: int, W: int, bias=None, out=None):
    """(groups, C/groups, N*H*W) -> (N, C, H, W), adding ``bias`` (C,) in the same pass:
    the bias costs no extra sweep over the output. Writes into ``out`` when given (a
    slice of a larger result), else into a new contiguous array."""
    xp = get_array_module(rows)
    C = rows.shape[0] * rows.shape[1]
    src = rows.reshape(C, N, H, W).transpose(1, 0, 2, 3)
    if out is None:
        out = xp.empty((N, C, H, W), dtype=rows.dtype)
    if bias is None:
        out[...] = src
    else:
        xp.add(src, bias.reshape(1, C, 1, 1), out=out)
    return out


def _matmul_to_nchw(a, b, out, bias=None) -> None:
    """out (n, C, H, W) = the GEMM a @ b (groups, C/groups, n*H*W) in NCHW order, + bias.

    For one sample the GEMM's row layout is NCHW already, and it writes straight into
    ``out``; otherwise the product is transposed into place by _rows_to_nchw.
    """
    xp = get_array_module(out)
    n, C, H, W = out.shape
    if n == 1 and out.flags.c_contiguous:
        xp.matmul(a, b, out=out.reshape(a.shape[0], C // a.shape[0], H * W))
        if bias is not None:
            out += bias.reshape(1, C, 1, 1)
    else:
        _rows_to_nchw(xp.matmul(a, b), n, H, W, bias, out=out)


# ---- the batch in chunks -----------------------------------------------------------------
# A chunk has at least this many output pixels (GEMM columns), and each of its kh*kw
# im2col copies moves at least this many values; see _sample_chunks.
CHUNK_COLUMNS = 1024
CHUNK_COPY_VALUES = 1 << 16
# The weight gradient is written straight in W's layout when the whole product has at
# most this many GEMM columns (N*OH*OW); see Conv2d.backward.
GW_DIRECT_COLUMNS = 4096
# Forward keeps x's columns for backward when they take at most this many bytes in all
# (and backward would rebuild them); see Conv2d.forward.
KEEP_COLUMNS_BYTES = 24 << 20


def _sample_chunks(xp, N: int, pixels_per_sample: int, copy_values_per_sample: int) -> list:
    """Slices of the batch that conv2d pushes through im2col + GEMM one at a time.

    Folding the whole batch into one im2col matrix makes it large: 75 MB for a 3x3,
    64-channel conv on (32, 64, 32, 32). The copy that writes it and the GEMM that reads
    it then both stream it through main memory. A chunk of a few MB of columns (one
    sample, 2.4 MB, there) is still in the cache when the GEMM reads it. Measured on 2
    cores for that conv: forward 30 ms in chunks against 55 ms whole, backward 62
    against 98 ms. A chunk must not be too small either: BLAS needs about CHUNK_COLUMNS
    columns to run at full speed (ResNet's 4x4 maps: 16 per sample, so 64 samples), and
    each of the kh*kw strided copies (or col2im's adds) costs some microseconds of Python
    and NumPy overhead, so each should move at least CHUNK_COPY_VALUES values
    (LeNet-5's 6-channel 10x10 maps: 110 samples; in chunks of 11 its step took 40%
    longer). On a GPU there is no such cache to fit and every launch costs
    time, so the whole batch is one chunk.

    The batch is then spread evenly over as many chunks as those sizes give, which may
    make each up to half smaller (LeNet-5's first conv, 128 samples in chunks of at
    least 84: 64 + 64, not 84 + 44). A shorter last chunk reads the scratch buffer in
    another layout, which must then be zeroed again where it reads padding (there, a
    second memset of 6.6 MB a call), and even chunks keep the threads' work even to the
    end. The LeNet-5 step at batch 128 took 0.963x the time (2 threads, 30 interleaved
    rounds, median of paired ratios).
    """
    if xp is np:
        step = max(-(-CHUNK_COLUMNS // max(1, pixels_per_sample)),
                   -(-CHUNK_COPY_VALUES // max(1, copy_values_per_sample)))
        step = max(1, min(N, step))
        if N:
            step = -(-N // -(-N // step))       # ceil(N / number of chunks)
    else:
        step = max(N, 1)
    return [slice(n0, min(N, n0 + step)) for n0 in range(0, N, step)] or [slice(0, 0)]


# A conv whose GEMM has fewer rows (output channels per group) than SHARED_MIN_ROWS and a
# shorter shared dimension (C/groups*kh*kw) than SHARED_MIN_DEPTH is left to BLAS's own
# threads instead of being shared out over minidl's; see _is_shared.
SHARED_MIN_ROWS = 32
SHARED_MIN_DEPTH = 256


def _weight_gradient_operands(gy_rows, cols, direct: bool) -> tuple:
    """(a, b) with a @ b one chunk's weight gradient from x's columns: gW = gy @ cols^T
    in W's layout (``direct``), else gW^T = cols @ gy^T (see Conv2d.backward)."""
    if direct:
        return gy_rows, cols.transpose(0, 2, 1)
    return cols, gy_rows.transpose(0, 2, 1)


def _add_into_first(total, part):
    total += part
    return total


def _add_parts(totals: tuple, parts: tuple) -> tuple:
    """_add_into_first for each pair of a tuple of sums (None: a sum not wanted)."""
    return tuple(None if t is None else _add_into_first(t, p) for t, p in zip(totals, parts))


def _sum_in_order(shares: list):
    """The shares' weight-gradient sums added in sample order, into the first: the same
    bits on every run at a given thread count."""
    total = shares[0]
    for share in shares[1:]:
        total = _add_into_first(total, share)
    return total


def _is_shared(xp, weight_shape) -> bool:
    """Whether a conv's batch is worked through by all of minidl's threads, each running
    its BLAS calls single-threaded (minidl.parallel), or in the calling thread alone.

    Measured on 2 cores in interleaved A/B runs, shares against BLAS's own threads: the
    CIFAR ResNet-18 step at batch 32 took 0.81-0.90x the time. Its 3x3 convolutions'
    backward took 0.86-0.94x, and its BatchNorm layers 0.6x: OpenBLAS's idle workers spin
    for ~0.1 s after each multi-threaded call, on the core that BatchNorm's second thread
    (or the other share) then needs. Left to BLAS's threads, the convolutions of a
    DenseNet-BC-40 (12 output channels) cost its step 1.25-1.4x the time for that reason.
    The exception is a conv with both few rows and a short shared dimension, such as
    LeNet-5's (6 x 25 and 16 x 150): it moves more memory than it computes, and its step
    took 1.18-1.5x the time in shares. (``weight_shape``: (O, C/groups, kh, kw), with
    ``groups`` folded in by the caller as O/groups.) On a GPU the batch stays whole.
    """
    rows, depth = weight_shape[0], int(np.prod(weight_shape[1:]))
    return xp is np and (rows >= SHARED_MIN_ROWS or depth >= SHARED_MIN_DEPTH)


def _batch_chunks(xp, N: int, pixels_per_sample: int, copy_values_per_sample: int,
                  weight_shape) -> list:
    """_sample_chunks, cut finer where needed so that a shared conv has at least one
    chunk per thread (ResNet's 8x8 and 4x4 maps at batch 32: two chunks of 16)."""
    chunks = _sample_chunks(xp, N, pixels_per_sample, copy_values_per_sample)
    threads = get_num_threads()
    if len(chunks) < threads and _is_shared(xp, weight_shape):
        step = -(-N // threads)
        chunks = [slice(n0, min(N, n0 + step)) for n0 in range(0, N, step)] or chunks
    return chunks


def _over_chunks(xp, make_worker, chunks: list, weight_shape, combine=None):
    """map_gemm_chunks over minidl's threads for a shared conv (_is_shared); else every
    chunk in the calling thread, on BLAS's own threads.

    Chunks, not one fixed share per thread, go to the threads: whichever thread is free
    takes the next one. Measured against fixed shares (2 threads, interleaved rounds,
    median of paired ratios): the issue's conv (32, 64, 32, 32) 3x3 forward 0.86x the
    time, forward+backward 0.92-0.96x, the CIFAR ResNet-18 step 0.977-0.982x. On this
    2-vCPU virtual machine the two threads rarely run at the same speed for long, and
    with fixed shares the faster one then waited 2-6 ms a call for the other.
    """
    return map_gemm_chunks(make_worker, chunks, combine,
                           share=_is_shared(xp, weight_shape))


def _over_samples(xp, fn, N: int, weight_shape) -> list:
    """[fn(samples) for each thread's share of range(N)] for a shared conv (_is_shared),
    each share in its own thread (map_gemm_blocks); else [fn(slice(0, N))]. The 1x1
    convs' path, which has no chunks: ``fn`` writes only its own samples of any result.
    """
    if _is_shared(xp, weight_shape):
        return map_gemm_blocks(fn, N)
    return [fn(slice(0, N))]


# ---- conv2d ----------------------------------------------------------------------------
class Conv2d(Function):
    """2-D cross-correlation of an NCHW batch with groups, as im2col + one GEMM per group.

    forward   x (N, C, H, W), W (O, C/G, kh, kw), b (O,) -> y (N, O, OH, OW),
              OH = floor((H + pt + pb - dh*(kh-1) - 1) / sh) + 1 (OW likewise);
              y[n, o, i, j] = b[o] + sum_{c in group(o), p, q}
                              W[o, c, p, q] * xpad[n, c, i*sh + p*dh, j*sw + q*dw].
              As matrices, per group g: y_g (O/G, n*OH*OW) = W_g (O/G, C/G*kh*kw) @ cols_g,
              for each chunk of n samples (see _sample_chunks). Stride 1 on large maps:
              the same sum with the kernel rows as GEMM rows (_RowShiftConv).
    backward  gW_g = sum over chunks of gy_g @ cols_g^T;  gb[o] = sum_{n, i, j} gy[n, o, i, j];
              gx = col2im(gcols), gcols_g = W_g^T @ gy_g; for stride 1 the same gx is
              computed as a convolution of gy with the flipped kernel, which is faster,
              and gW from that convolution's columns of gy (see make_worker).

    Saved for backward: ``x`` when the weight gradient will be wanted (``save_input``):
    backward rebuilds each chunk's columns from it (for stride 1 it needs only x itself,
    against gy's columns), which costs less than keeping the whole-batch columns (kh*kw
    times the size of x) alive until backward; ``weight``; ``x_shape``. Columns of at most
    KEEP_COLUMNS_BYTES in all that backward would rebuild are kept instead of x
    (``saved_columns``, see forward).
    """

    def __init__(self, stride, padding, dilation, groups, save_input=True, input_grad=True):
        self.stride = stride          # (sh, sw)
        self.padding = padding        # ((top, bottom), (left, right))
        self.dilation = dilation      # (dh, dw)
        self.groups = groups
        self.save_input = save_input  # False without grad mode or a weight needing grad
        self.input_grad = input_grad  # False when x's gradient will not be wanted
        self.saved_columns = None     # {chunk start: x's columns}, when kept (forward)

    def _gx_as_convolution(self, C: int, H: int, W: int, O: int, OH: int, OW: int) -> bool:
        """Whether backward computes gx as a convolution of gy with the flipped kernel.

        That convolution writes im2col(gy), O*kh*kw x N*H*W; the other way writes gcols,
        C*kh*kw x N*OH*OW, and adds it back with col2im, which costs more per element.
        Measured (1 thread, 3x3): the flipped way wins up to a size ratio of about 1.5
        (ResNet's 3x3 convolutions: 1), the gcols way from 2 on (LeNet-5's second conv,
        6 -> 16 channels without padding: 5.2, 3.7x faster).
        """
        _, _, kh, kw = self.weight.shape
        (pt, _), (pl, _) = self.padding
        dh, dw = self.dilation
        return self.stride == (1, 1) and pt <= dh * (kh - 1) and pl <= dw * (kw - 1) and \
            O * H * W < 2 * C * OH * OW

    def _is_pointwise(self, weight) -> bool:
        # A 1x1 kernel without padding reads each (strided) pixel once: x itself is the
        # GEMM operand and im2col would only copy it.
        return weight.shape[2:] == (1, 1) and self.padding == ((0, 0), (0, 0))

    def _output_hw(self, H: int, W: int) -> tuple:
        _, _, kh, kw = self.weight.shape
        (pt, pb), (pl, pr) = self.padding
        return (_output_size(H, kh, self.stride[0], pt + pb, self.dilation[0]),
                _output_size(W, kw, self.stride[1], pl + pr, self.dilation[1]))

    def forward(self, x, weight, bias=None):
        xp = get_array_module(x)
        G = self.groups
        O, Cg, kh, kw = weight.shape
        self.weight, self.x_shape = weight, x.shape
        if self._is_pointwise(weight):
            sh, sw = self.stride
            if (sh, sw) != (1, 1):
                x = xp.ascontiguousarray(x[:, :, ::sh, ::sw])
            N, C, OH, OW = x.shape
            self.x = x
            y = xp.empty((N, O, OH, OW), dtype=x.dtype)
            w3 = weight.reshape(G, O // G, Cg)

            def pointwise_samples(samples):
                # Per-sample GEMMs straight on NCHW: (G, O/G, C/G) @ (n, G, C/G, OH*OW)
                # needs no transposed copy of x or of y.
                n = samples.stop - samples.start
                xp.matmul(w3, x[samples].reshape(n, G, Cg, OH * OW),
                          out=y[samples].reshape(n, G, O // G, OH * OW))
                if bias is not None:
                    y[samples] += bias.reshape(1, O, 1, 1)
            _over_samples(xp, pointwise_samples, N, (O // G, Cg, 1, 1))
            return y
        N, _, H, W = x.shape
        OH, OW = self._output_hw(H, W)
        y = xp.empty((N, O, OH, OW), dtype=x.dtype)
        w_rows = weight.reshape(G, O // G, Cg * kh * kw)
        row_shift = self.stride == (1, 1) and _row_shift_applies(
            xp, G, Cg, (kh, kw), self.dilation, self.padding, OH)
        if row_shift:
            w3 = _kernel_rows_first(weight, bias)

        chunks = _batch_chunks(xp, N, OH * OW, Cg * G * OH * OW, (O // G, Cg, kh, kw))
        # Backward rebuilds x's columns for the weight gradient, unless it takes that
        # from gy's columns (a stride-1 gx as a convolution). Where they are small, the
        # columns are kept from here instead: one im2col less. LeNet-5's two convs keep
        # 10 and 8 MB at batch 128, and its training step took 0.88x the time (2
        # threads, 24 interleaved rounds, median of paired ratios); CIFAR ResNet-18's
        # stride-2 convs and first conv keep 37 MB at batch 32 (peak RSS 411 -> 452 MB).
        keep = xp is np and self.save_input and not row_shift and \
            not (self.input_grad and self._gx_as_convolution(Cg * G, H, W, O, OH, OW)) and \
            Cg * G * kh * kw * N * OH * OW * x.dtype.itemsize <= KEEP_COLUMNS_BYTES
        if keep:
            self.saved_columns, self.chunks = {}, chunks

        def make_worker():
            """(run, release) for one thread: run(chunk) writes y[chunk] by im2col + GEMM
            into this thread's buffers; release() gives them back (map_gemm_chunks)."""
            if row_shift:       # kernel rows as GEMM rows: kw copies, not kh*kw
                conv = _RowShiftConv(x.shape, chunks[0].stop, (kh, kw), self.padding,
                                     self.dilation, (OH, OW), x.dtype)
                return (lambda chunk: conv(x[chunk], w3, y[chunk])), conv.release
            columns = self._chunk_columns(x.shape, chunks[0].stop, x.dtype, xp)

            def run(chunk):
                _matmul_to_nchw(w_rows, columns(x[chunk]), y[chunk], bias)
                if keep:
                    self.saved_columns[chunk.start] = columns.take()
            return run, columns.release
        _over_chunks(xp, make_worker, chunks, (O // G, Cg, kh, kw))
        if self.save_input and not keep:    # with its columns kept, x is not needed
            self.x = x
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        G = self.groups
        O, Cg, kh, kw = self.weight.shape
        N, _, OH, OW = gy.shape
        _, C, H, W = self.x_shape
        wants_x, wants_w = self.needs_input_grad[:2]
        wants_b = len(self.needs_input_grad) == 3 and self.needs_input_grad[2]
        gx = gw = gb = None
        if self._is_pointwise(self.weight):
            gx, gw = self._backward_pointwise(xp, gy, wants_x, wants_w)
            gb = gy.sum(axis=(0, 2, 3)) if wants_b else None
            return (gx, gw, gb) if len(self.needs_input_grad) == 3 else (gx, gw)
        as_convolution = self._gx_as_convolution(C, H, W, O, OH, OW)
        w_rows = self.weight.reshape(G, O // G, Cg * kh * kw)
        # gW^T = cols @ gy^T, sharing the long n*OH*OW axis, is the orientation OpenBLAS
        # runs fastest (10-35% over gW = gy @ cols^T on ResNet's 64- and 128-channel
        # layers). But gW^T seen in W's shape is a transposed view, and everything after
        # reads it with large strides: the optimizer (whole-array updates, not
        # cache-sized blocks) and any copy (18 ms for the 4608 x 512 gW^T of a
        # 512-channel 3x3 conv, against 11 ms for its GEMM over N*OH*OW = 512 columns).
        # So with few columns gW is written in W's layout: the CIFAR ResNet-18 step at
        # batch 32 went from 1685 to 1404 ms (2 threads; all layers so: 1470 ms).
        gw_direct = N * OH * OW <= GW_DIRECT_COLUMNS
        # When gy's columns are built for gx, they give gW too (see make_worker).
        gw_from_gy_columns = wants_w and wants_x and as_convolution
        if wants_x:
            gx = xp.empty(self.x_shape, dtype=gy.dtype)
        if wants_x and as_convolution:      # once, not per chunk: it is a copy
            # The GEMM operand W_flip[g, c, (o, p, q)] = W[o, c, kh-1-p, kw-1-q]: one copy
            # into (G, O/G, kh*kw, C/G) (reversing the kh*kw taps as one axis flips the
            # kernel in both directions), used through a transposed view, which BLAS
            # reads as such. That copy runs along the channels, one output channel's
            # weights at a time; W_flip itself in C order would be copied in 9-value
            # pieces from rows O*kh*kw values apart. 512x512x3x3: 1.8 against 7.9 ms;
            # ResNet-18 has 31 ms of these copies a step on one thread, 8 ms this way.
            # gy padded by d*(k-1) - p on each side, read with the flipped kernel.
            flipped_pads = tuple((d * (k - 1) - p0, d * (k - 1) - p1) for d, k, (p0, p1)
                                 in zip(self.dilation, (kh, kw), self.padding))
            gx_row_shift = _row_shift_applies(xp, G, O // G, (kh, kw), self.dilation,
                                              flipped_pads, H)
            if gx_row_shift:    # the flipped kernel (C, O, kh, kw) as (kh*C, kw*O)
                w3_flip = _kernel_rows_first(
                    self.weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
            else:
                w_taps = self.weight.reshape(G, O // G, Cg, kh * kw)[..., ::-1]
                w_flip = xp.ascontiguousarray(w_taps.transpose(0, 1, 3, 2)).reshape(
                    G, O // G * kh * kw, Cg).transpose(0, 2, 1)     # (G, C/G, O/G*kh*kw)
        else:
            gx_row_shift = False

        # The copies of x (and col2im's adds) move C*OH*OW values per sample, those of gy
        # O*H*W: the chunks are sized for the smaller. With x's columns kept from
        # forward, forward's chunks.
        kept = self.saved_columns if wants_w and not gw_from_gy_columns else None
        chunks = self.chunks if kept is not None else _batch_chunks(
            xp, N, max(OH * OW, H * W), min(C * OH * OW, O * H * W), (O // G, Cg, kh, kw))

        def make_worker():
            """(run, release) for one thread: run(chunk) writes gx[chunk] and returns the
            chunk's part of the weight gradient, using this thread's buffers; release()
            gives them back (map_gemm_chunks)."""
            n_max = chunks[0].stop
            x_columns = gx_conv = gy_columns = None
            if wants_w and not gw_from_gy_columns and kept is None:
                x_columns = self._chunk_columns(self.x_shape, n_max, gy.dtype, xp)
            if gx_row_shift:
                gx_conv = _RowShiftConv(gy.shape, n_max, (kh, kw), flipped_pads,
                                        self.dilation, (H, W), gy.dtype)
            elif wants_x and as_convolution:
                gy_columns = _ChunkColumns(gy.shape, n_max, (kh, kw), (1, 1), flipped_pads,
                                           self.dilation, G, gy.dtype, xp)

            def run(chunk):
                gys = gy[chunk]
                # x is kept only for gW, and not at all when its columns are
                xs = self.x[chunk] if wants_w and kept is None else None
                gxs = gx[chunk] if wants_x else None
                gw_part = None
                # the chunk's part of gb, summed while its gy is in the cache
                gb_part = gys.sum(axis=(0, 2, 3)) if wants_b else None
                if gx_row_shift:
                    # gx as the flipped-kernel convolution of the next branch, with the
                    # kernel rows as GEMM rows (_RowShiftConv). Its columns hold
                    # gypad[s, o, r, w + q*dw] at [(q, o), (r, s, w)], so the weight
                    # gradient, kernel flipped, is
                    #   G[p, (q, o), c] = sum_{h,s,w} columns[(q, o), (h + p*dh, s, w)]
                    #                                 * x[s, c, h, w]:
                    # kh products with the columns shifted down by p*dh rows.
                    gx_conv(gys, w3_flip, gxs)
                    if gw_from_gy_columns:
                        n = xs.shape[0]
                        x_rows = (xs.reshape(C, H * W) if n == 1 else
                                  xp.ascontiguousarray(xs.transpose(1, 2, 0, 3))
                                  .reshape(C, H * n * W))   # (C, (h, s, w)), as columns
                        gw_part = xp.matmul(gx_conv.kernel_row_views(H), x_rows.T)
                elif wants_x and as_convolution:
                    # gx[n, c, h, w] = sum_{o,p,q} gy[n, o, h + pt - p*dh, w + pl - q*dw]
                    # W[o,c,p,q] is a cross-correlation of gy, padded by d*(k-1) - p, with
                    # the kernel flipped in space and transposed in channels: im2col + a
                    # GEMM whose shared dimension is O*kh*kw, instead of a GEMM that writes
                    # gcols (C*kh*kw, n*H*W) and a col2im that adds it back up.
                    gy_cols = gy_columns(gys)                   # (G, O/G*kh*kw, n*H*W)
                    _matmul_to_nchw(w_flip, gy_cols, gxs)
                    if gw_from_gy_columns:
                        # The same columns give the weight gradient, kernel flipped:
                        # gW[o, c, p, q] = sum_{h,w} x[c, h, w] gy[o, h + pt - p*dh, ...]
                        #                = (gy_cols @ x_rows^T)[(o, kh-1-p, kw-1-q), c],
                        # so x needs no columns at all.
                        gw_part = xp.matmul(gy_cols, _nchw_to_rows(xs, G).transpose(0, 2, 1))
                    gy_cols = None      # a view of gy_columns' buffer: see release()
                if (wants_w and not gw_from_gy_columns) or (wants_x and not as_convolution):
                    gy_rows = _nchw_to_rows(gys, G)                 # (G, O/G, n*OH*OW)
                if wants_w and not gw_from_gy_columns:
                    cols = kept[chunk.start] if kept is not None else x_columns(xs)
                    gw_part = xp.matmul(*_weight_gradient_operands(gy_rows, cols, gw_direct))
                    cols = None
                if wants_x and not as_convolution:
                    n = gy_rows.shape[2] // (OH * OW)
                    gcols = _WORKSPACE.empty((G, Cg * kh * kw, n * OH * OW), gy.dtype, xp)
                    xp.matmul(w_rows.transpose(0, 2, 1), gy_rows, out=gcols)
                    gxs[...] = col2im(gcols.reshape(G * Cg, kh, kw, n, OH, OW).transpose(
                        3, 0, 1, 2, 4, 5), (n, C, H, W), (kh, kw), self.stride,
                        self.padding, self.dilation)
                    _WORKSPACE.give(gcols)
                return gw_part, gb_part

            def release():
                for buffers in (x_columns, gx_conv, gy_columns):
                    if buffers is not None:
                        buffers.release()
            return run, release

        # The chunks' weight and bias gradients are added up in chunk order (see
        # map_gemm_chunks): the same bits at every thread count.
        gw_rows, gb = _over_chunks(xp, make_worker, chunks, (O // G, Cg, kh, kw),
                                   combine=_add_parts)
        if wants_w:
            if gw_from_gy_columns and gx_row_shift:     # G (kh, kw*O, C), kernel flipped
                gw = xp.ascontiguousarray(gw_rows.reshape(kh, kw, O, C)[::-1, ::-1]
                                          .transpose(2, 3, 0, 1))
            elif gw_from_gy_columns:    # (G, O/G*kh*kw, C/G), kernel flipped: one copy,
                # the inverse of W_flip's (the kh*kw taps reversed as one axis)
                gw = gw_rows.reshape(G, O // G, kh * kw, Cg)[:, :, ::-1]
                gw = xp.ascontiguousarray(gw.transpose(0, 1, 3, 2)).reshape(O, Cg, kh, kw)
            else:
                gw = (gw_rows if gw_direct else gw_rows.transpose(0, 2, 1)).reshape(
                    O, Cg, kh, kw)
        return (gx, gw, gb) if len(self.needs_input_grad) == 3 else (gx, gw)

    def _chunk_columns(self, x_shape, chunk_n, dtype, xp):
        return _ChunkColumns(x_shape, chunk_n, self.weight.shape[2:], self.stride,
                             self.padding, self.dilation, self.groups, dtype, xp)

    def _backward_pointwise(self, xp, gy, wants_x, wants_w):
        G = self.groups
        O, Cg = self.weight.shape[:2]
        x = self.x
        N, C, OH, OW = x.shape
        gy4 = gy.reshape(N, G, O // G, OH * OW)
        w3 = self.weight.reshape(G, O // G, Cg)
        gxs = xp.empty((N, C, OH, OW), dtype=gy.dtype) if wants_x else None

        def pointwise_samples(samples):
            """gxs[samples], and this share's part of the weight gradient."""
            n = samples.stop - samples.start
            gw_share = None
            if wants_w:
                # sum_n gy[n] @ x[n]^T: a batched GEMM, then a sum over the share's samples.
                xs = x[samples].reshape(n, G, Cg, OH * OW)
                gw_share = xp.matmul(gy4[samples], xs.transpose(0, 1, 3, 2)).sum(axis=0)
            if wants_x:
                xp.matmul(w3.transpose(0, 2, 1), gy4[samples],
                          out=gxs[samples].reshape(n, G, Cg, OH * OW))
            return gw_share

        gw_shares = _over_samples(xp, pointwise_samples, N, (O // G, Cg, 1, 1))
        gx = gw = None
        if wants_w:
            gw = _sum_in_order(gw_shares).reshape(O, Cg, 1, 1)
        if wants_x:
            if gxs.shape == self.x_shape:
                gx = gxs
            else:   # strided 1x1: the skipped pixels get no gradient
                gx = xp.zeros(self.x_shape, dtype=gy.dtype)
                sh, sw = self.stride
                gx[:, :, ::sh, ::sw] = gxs
        return gx, gw


# ---- conv_transpose2d ------------------------------------------------------------------
class ConvTranspose2d(Function):
    """Transposed convolution: the input gradient of conv2d, used as a layer.

    forward   x (N, Cin, H, W), W (Cin, Cout/G, kh, kw), b (Cout,) -> y (N, Cout, OH, OW),
              OH = (H - 1)*sh - 2*ph + dh*(kh-1) + oph + 1 (OW likewise);
              every input pixel scatters W[c] scaled by x[n, c, i, j] onto the output
              window at (i*sh - ph, j*sw - pw):  per group g,
              cols_g = W_g^T @ x_g (Cout/G*kh*kw, N*H*W),  y = col2im(cols) + b.
    backward  cols = im2col(gy) (the conv2d view of the same windows);
              gx_g = W_g @ cols_g,  gW_g = x_g @ cols_g^T,  gb = sum of gy over (N, OH, OW).

    Saved for backward: ``x_rows`` (G, Cin/G, N*H*W), ``weight``, ``x_shape``.
    """

    def __init__(self, stride, padding, output_padding, dilation, groups):
        self.stride = stride                  # (sh, sw)
        self.padding = padding                # (ph, pw)
        self.output_padding = output_padding  # (oph, opw)
        self.dilation = dilation              # (dh, dw)
        self.groups = groups

    def output_shape(self, x_shape, w_shape) -> tuple:
        N, _, H, W = x_shape
        _, coutg, kh, kw = w_shape
        (sh, sw), (ph, pw), (oph, opw), (dh, dw) = (self.stride, self.padding,
                                                    self.output_padding, self.dilation)
        return (N, coutg * self.groups, (H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1,
                (W - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1)

    def forward(self, x, weight, bias=None):
        xp = get_array_module(x)
        G = self.groups
        cin, coutg, kh, kw = weight.shape
        N, _, H, W = x.shape
        x_rows = _nchw_to_rows(x, G)                                  # (G, Cin/G, N*H*W)
        w_rows = weight.reshape(G, cin // G, coutg * kh * kw)
        cols = _WORKSPACE.empty((G, coutg * kh * kw, N * H * W), x.dtype, xp)
        xp.matmul(w_rows.transpose(0, 2, 1), x_rows, out=cols)   # (G, Cout/G*kh*kw, N*H*W)
        y_shape = self.output_shape(x.shape, weight.shape)
        y = col2im(cols.reshape(G * coutg, kh, kw, N, H, W).transpose(3, 0, 1, 2, 4, 5),
                   y_shape, (kh, kw), self.stride, self.padding, self.dilation)
        _WORKSPACE.give(cols)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        self.x_rows, self.weight, self.x_shape = x_rows, weight, x.shape
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        N, _, H, W = self.x_shape
        if N * H * W == 0:
            # An empty input has an empty gradient and a zero weight gradient. (im2col of
            # gy would see zero windows, which it reports as a kernel larger than gy.)
            gx = xp.zeros(self.x_shape, gy.dtype) if self.needs_input_grad[0] else None
            gw = xp.zeros(self.weight.shape, gy.dtype) if self.needs_input_grad[1] else None
        else:
            gx, gw = self._backward_by_columns(xp, gy, N, H, W)
        if len(self.needs_input_grad) == 3:
            gb = gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None
            return gx, gw, gb
        return gx, gw

    def _backward_by_columns(self, xp, gy, N, H, W):
        """gx and gw from cols = im2col(gy): the conv2d view of the same windows."""
        G = self.groups
        cin, coutg, kh, kw = self.weight.shape
        (ph, pw), (oph, opw) = self.padding, self.output_padding
        # The bottom/right padding ph - oph drops the rows output_padding added, so that
        # im2col yields exactly H x W windows.
        cols = im2col(gy, (kh, kw), self.stride, ((ph, ph - oph), (pw, pw - opw)),
                      self.dilation)
        cols = cols.transpose(1, 2, 3, 0, 4, 5).reshape(G, coutg * kh * kw, N * H * W)
        gx = gw = None
        if self.needs_input_grad[1]:
            gw = xp.matmul(self.x_rows, cols.transpose(0, 2, 1)).reshape(self.weight.shape)
        if self.needs_input_grad[0]:
            w_rows = self.weight.reshape(G, cin // G, coutg * kh * kw)
            gx = _rows_to_nchw(xp.matmul(w_rows, cols), N, H, W)
        _WORKSPACE.give(cols)
        return gx, gw


# ---- public functions ------------------------------------------------------------------
def _check_conv_args(op, input, weight, bias, groups, w_layout):
    _check_tensor(input, "input", op)
    _check_tensor(weight, "weight", op, w_layout)
    same_device(op, input, weight=weight, bias=bias)
    if weight.dtype != input.dtype:
        raise TypeError(f"{op}: input dtype {input.dtype} and weight dtype {weight.dtype} "
                        f"differ")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError(f"{op}: bias must be a minidl Tensor or None, got "
                            f"{type(bias).__name__}")
        if bias.dtype != input.dtype:
            raise TypeError(f"{op}: bias dtype {bias.dtype} differs from input dtype "
                            f"{input.dtype}")


def _same_padding(kernel, dilation) -> tuple:
    # PyTorch: total d*(k-1), the odd extra cell on the bottom/right.
    pads = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) of an NCHW batch, as torch.nn.functional.conv2d.

    Args:
        input: (N, C, H, W) float tensor.
        weight: (O, C/groups, kh, kw), same dtype and device.
        bias: (O,) or None.
        stride, dilation: positive int or (h, w).
        padding: non-negative int, (ph, pw), 'valid' (no padding) or 'same' (output size =
            input size; stride 1 only; an odd total puts the extra cell bottom/right).
        groups: splits channels into groups convolved separately (groups = C: depthwise).
    Returns:
        (N, O, OH, OW) with OH = floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1 (OW likewise).
    Raises:
        TypeError for non-float or mismatched dtypes, ValueError for wrong shapes,
        channels, groups, padding, stride or dilation, or a kernel larger than the padded
        input.

    >>> x, w = md.randn(2, 3, 8, 8), md.randn(4, 3, 3, 3)
    >>> conv2d(x, w, padding=1).shape
    (2, 4, 8, 8)
    """
    op = "conv2d"
    _check_conv_args(op, input, weight, bias, groups, "(out_channels, in_channels/groups, kh, "
                                                      "kw)")
    stride = _positive_pair(stride, "stride", op)
    dilation = _positive_pair(dilation, "dilation", op)
    N, C, H, W = input.shape
    O, Cg, kh, kw = weight.shape
    if C % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels, got {C} "
                         f"channels")
    if C != Cg * groups:
        extra = f", groups={groups}" if groups != 1 else ""
        raise ValueError(f"{op}: input has {C} channels but weight expects {Cg * groups} "
                         f"(weight shape {weight.shape}{extra})")
    if O % groups:
        raise ValueError(f"{op}: groups={groups} must divide the output channels, got "
                         f"{O} (weight shape {weight.shape})")
    if bias is not None and bias.shape != (O,):
        raise ValueError(f"{op}: bias must have shape ({O},) for weight shape "
                         f"{weight.shape}, got {bias.shape}")
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
            pads = _same_padding((kh, kw), dilation)
        else:
            raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid', got "
                             f"{padding!r}")
    else:
        ph, pw = _nonnegative_pair(padding, "padding", op)
        pads = ((ph, ph), (pw, pw))
    eff = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    padded = (H + sum(pads[0]), W + sum(pads[1]))
    if eff[0] > padded[0] or eff[1] > padded[1]:
        raise ValueError(f"{op}: kernel size {(kh, kw)} (dilated to {eff}) is larger than "
                         f"the padded input {padded} (input {(H, W)}, padding {padding!r})")
    # x is kept for backward only for the weight gradient.
    fn = Conv2d(stride, pads, dilation, groups,
                save_input=is_grad_enabled() and weight.requires_grad,
                input_grad=input.requires_grad)
    return fn.apply(input, weight) if bias is None else fn.apply(input, weight, bias)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed 2-D convolution, as torch.nn.functional.conv_transpose2d.

    The input gradient of conv2d(., weight) used as a layer: it maps an (H, W) map to the
    larger map a conv2d with the same arguments would have shrunk to (H, W).

    Args:
        input: (N, Cin, H, W) float tensor.
        weight: (Cin, Cout/groups, kh, kw), same dtype and device.
        bias: (Cout,) or None.
        stride, dilation: positive int or (h, w).
        padding: non-negative int or (ph, pw): removed from each side of the output.
        output_padding: int or (h, w), smaller than stride or dilation: extra rows/columns
            on the bottom/right, to pick among the sizes a strided conv2d maps to (H, W).
        groups: as in conv2d.
    Returns:
        (N, Cout, OH, OW), OH = (H - 1)*sh - 2*ph + dh*(kh-1) + oph + 1 (OW likewise).
    Raises:
        TypeError / ValueError as conv2d, and for a bad output_padding or an empty output.

    >>> x, w = md.randn(1, 4, 5, 5), md.randn(4, 2, 3, 3)
    >>> conv_transpose2d(x, w, stride=2, padding=1, output_padding=1).shape
    (1, 2, 10, 10)
    """
    op = "conv_transpose2d"
    _check_conv_args(op, input, weight, bias, groups, "(in_channels, out_channels/groups, "
                                                      "kh, kw)")
    stride = _positive_pair(stride, "stride", op)
    dilation = _positive_pair(dilation, "dilation", op)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a pair of ints, got {padding!r}")
    padding = _nonnegative_pair(padding, "padding", op)
    output_padding = _nonnegative_pair(output_padding, "output_padding", op)
    N, C, H, W = input.shape
    cin, coutg, kh, kw = weight.shape
    if C % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels, got {C} "
                         f"channels")
    if C != cin:
        raise ValueError(f"{op}: input has {C} channels but weight expects {cin} "
                         f"(weight shape {weight.shape})")
    for o, s, d, axis in zip(output_padding, stride, dilation, ("height", "width")):
        if o >= max(s, d):
            raise ValueError(f"{op}: output_padding must be smaller than stride or dilation, "
                             f"got output_padding {output_padding}, stride {stride}, "
                             f"dilation {dilation} ({axis})")
    if bias is not None and bias.shape != (coutg * groups,):
        raise ValueError(f"{op}: bias must have shape ({coutg * groups},) for weight shape "
                         f"{weight.shape} and groups={groups}, got {bias.shape}")
    fn = ConvTranspose2d(stride, padding, output_padding, dilation, groups)
    out_shape = fn.output_shape(input.shape, weight.shape)
    if min(out_shape[2:]) < 1:
        raise ValueError(f"{op}: the output would be empty: input {(H, W)}, kernel "
                         f"{(kh, kw)}, stride {stride}, padding {padding}, dilation "
                         f"{dilation} give {out_shape[2:]}")
    return fn.apply(input, weight) if bias is None else fn.apply(input, weight, bias)

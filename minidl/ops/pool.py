"""Pooling: max_pool2d, avg_pool2d and their adaptive forms, forward and backward.

A pooling window has only kh*kw cells, so every op here is a short loop over the kernel
offsets (p, q): offset (p, q) of all windows at once is one strided slice of the input,

    window cell (p, q) of output (i, j)  =  xpad[:, :, i*sh + p*dh, j*sw + q*dw],

and a running max (or a running sum) over the kh*kw slices gives the output. Backward
walks the same slices and adds the gradient back. The padded input is stored split by
stride phase, so that each of these slices has unit stride (see _Windows). When the
windows tile the input exactly (kernel == stride, no padding, sizes divisible) the input
is simply reshaped to (N, C, OH, kh, OW, kw) and nothing is copied or padded.

Max pooling saves ``winner``, the kernel offset p*kw + q of each window's first maximum
(a small integer array); PyTorch's flat indices h*W + w are derived from it on demand.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from ..function import Function
from ..kernels import pool as pool_kernels
from ..kernels import use_kernels
from ..tensor import Tensor
from .conv import _check_tensor, _is_int, _nonnegative_pair, _positive_pair, _strided, \
    _window_range

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
           "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"]


def _pool_output_size(size, kernel, stride, pad, dilation, ceil_mode) -> int:
    """PyTorch's rule: floor (or ceil) of (H + 2p - d(k-1) - 1) / s, plus 1; with ceil_mode
    a last window that would start in the right padding is dropped."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _winner_dtype(cells: int):
    # The winner only names a kernel offset: one byte is enough for windows up to 16x16.
    return np.uint8 if cells <= 255 else np.int32


def _first_max(windows, xp):
    """Running max over a list of equally shaped arrays, and the index of the FIRST
    maximum (a strict > never moves the winner on a tie, as in PyTorch). NaN propagates
    and wins, as in PyTorch."""
    y = windows[0].copy()
    winner = xp.zeros(y.shape, dtype=_winner_dtype(len(windows)))
    better, nan = xp.empty(y.shape, dtype=bool), xp.empty(y.shape, dtype=bool)
    offset = winner.dtype.type
    for k, v in enumerate(windows[1:], start=1):
        xp.greater(v, y, out=better)
        # A NaN wins, as in PyTorch (and once y is NaN only a later NaN moves the winner).
        xp.logical_or(better, xp.isnan(v, out=nan), out=better)
        # k only grows along the scan, so where v is better, k is also larger than the
        # winner so far: a maximum records it without a masked write (which NumPy does
        # element by element, ten times slower on a random mask).
        xp.maximum(winner, better * offset(k), out=winner)
        xp.maximum(y, v, out=y)          # NaN propagates to the output
    return y, winner


def _sum_tiles(x, kernel_size):
    """Sum of each (kh, kw) tile of x (N, C, OH*kh, OW*kw) -> (N, C, OH, OW).

    Two passes of offset adds, along the columns and then along the rows: NumPy's own
    x.reshape(N, C, OH, kh, OW, kw).sum(axis=(3, 5)) reduces over two strided axes and
    is an order of magnitude slower.
    """
    N, C, H, W = x.shape
    kh, kw = kernel_size
    cols = x.reshape(N, C, H, W // kw, kw)
    rows = cols[..., 0] + cols[..., 1] if kw > 1 else cols[..., 0].copy()
    for q in range(2, kw):
        rows += cols[..., q]
    rows = rows.reshape(N, C, H // kh, kh, W // kw)
    total = rows[:, :, :, 0] + rows[:, :, :, 1] if kh > 1 else rows[:, :, :, 0].copy()
    for p in range(2, kh):
        total += rows[:, :, :, p]
    return total


class _Windows:
    """Where the kh*kw kernel offsets of a pooling sit in the input: the geometry shared
    by max and average pooling, forward and backward."""

    def __init__(self, x_shape, kernel_size, stride, padding, dilation, ceil_mode):
        N, C, H, W = x_shape
        self.x_shape = x_shape
        self.kernel_size, self.stride = kernel_size, stride
        self.padding, self.dilation = padding, dilation
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
        self.out_size = (_pool_output_size(H, kh, sh, ph, dh, ceil_mode),
                         _pool_output_size(W, kw, sw, pw, dw, ceil_mode))
        OH, OW = self.out_size
        self.tiles = (kernel_size == stride and padding == (0, 0) and dilation == (1, 1)
                      and H % kh == 0 and W % kw == 0)
        # Phase layout. Offset (p, q) of all windows reads every sh-th row and every sw-th
        # column of the padded input, and NumPy runs about half as fast over such strided
        # views as over unit-stride rows. So the padded input is stored split by phase,
        #     xph[a, b, n, c, r, s] = xpad[n, c, r*sh + a, s*sw + b],
        # and each offset becomes a unit-stride block of one phase (see ``slice``). The
        # phase buffer reaches as far as any window does (past the right padding with
        # ceil_mode) and holds every input pixel.
        rows = max((dh * (kh - 1)) // sh + OH, -(-(H + ph) // sh))
        cols = max((dw * (kw - 1)) // sw + OW, -(-(W + pw) // sw))
        self.phase_shape = (sh, sw, N, C, rows, cols)

    def _phase_blocks(self):
        """For each phase (a, b): its block holding real pixels, and those pixels in x."""
        (sh, sw), (ph, pw) = self.stride, self.padding
        (_, _, _, _, rows, cols), (H, W) = self.phase_shape, self.x_shape[2:]
        for a in range(sh):
            r0, r1, h0 = _window_range(a - ph, sh, rows, H)
            for b in range(sw):
                c0, c1, w0 = _window_range(b - pw, sw, cols, W)
                if r1 > r0 and c1 > c0:
                    yield ((a, b, slice(None), slice(None), slice(r0, r1), slice(c0, c1)),
                           (slice(None), slice(None), _strided(h0, r1 - r0, sh),
                            _strided(w0, c1 - c0, sw)))

    def pad(self, x, fill):
        """x padded with ``fill`` and split by stride phase: (sh, sw, N, C, rows, cols).

        For stride 1 without padding this is a view of x, not a copy."""
        xp = get_array_module(x)
        if self.stride == (1, 1) and self.phase_shape[4:] == x.shape[2:]:
            return x[None, None]
        xph = xp.full(self.phase_shape, fill, dtype=x.dtype)
        for block, pixels in self._phase_blocks():      # sh*sw strided copies
            xph[block] = x[pixels]
        return xph

    def zeros(self, xp, dtype):
        """A zero gradient buffer in the phase layout of ``pad``."""
        return xp.zeros(self.phase_shape, dtype=dtype)

    def crop(self, gph):
        """The inverse of pad: the input's pixels back from a phase-split gradient."""
        xp = get_array_module(gph)
        gx = xp.empty(self.x_shape, dtype=gph.dtype)
        for block, pixels in self._phase_blocks():      # every pixel is in one block
            gx[pixels] = gph[block]
        return gx

    def offsets(self):
        """(k, p, q) for every kernel offset, k = p*kw + q (row-major, as PyTorch scans)."""
        kh, kw = self.kernel_size
        return [(p * kw + q, p, q) for p in range(kh) for q in range(kw)]

    def slice(self, xph, p, q):
        """Offset (p, q) of every window: an (N, C, OH, OW) unit-stride view of ``pad``'s
        phase buffer. Padded row i*sh + p*dh is row i + (p*dh)//sh of phase (p*dh) % sh."""
        (OH, OW), (sh, sw), (dh, dw) = self.out_size, self.stride, self.dilation
        (a, r), (b, s) = divmod(p * dh, sh)[::-1], divmod(q * dw, sw)[::-1]
        return xph[a, b, :, :, r:r + OH, s:s + OW]

    def tiled(self, x):
        """(N, C, OH, kh, OW, kw) view of x when the windows tile it exactly."""
        N, C = x.shape[:2]
        (OH, OW), (kh, kw) = self.out_size, self.kernel_size
        return x.reshape(N, C, OH, kh, OW, kw)


# ---- max pooling -----------------------------------------------------------------------
class MaxPool2d(Function):
    """Max pooling over (kh, kw) windows of an NCHW batch.

    forward   x (N, C, H, W) -> y (N, C, OH, OW),
              OH = floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1 (ceil with ceil_mode);
              y[n, c, i, j] = max over p, q of xpad[n, c, i*sh + p*dh, j*sw + q*dw];
              padding counts as -inf, so it never wins.
    backward  gx[n, c, h, w] = sum of gy[n, c, i, j] over the windows whose winner is
              (h, w); the winner is the first maximum on ties, as in PyTorch.

    Saved for backward: ``winner`` (N, C, OH, OW), the offset p*kw + q of each winner,
    and ``windows`` (the geometry: shapes, strides, padding). On a GPU, pool.cu scans
    each window in one thread and saves ``argmax``, the flat index h*W + w of each
    winner (what indices() returns), in place of ``winner``; its backward scatters gy
    there.
    """

    argmax = None   # set by the kernel path only

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode):
        self.kernel_size, self.stride = kernel_size, stride
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode

    def forward(self, x):
        xp = get_array_module(x)
        win = _Windows(x.shape, self.kernel_size, self.stride, self.padding, self.dilation,
                       self.ceil_mode)
        self.windows = win
        if use_kernels(x):
            y, self.argmax = pool_kernels.max_pool2d_forward(
                x, *self.kernel_size, *self.stride, *self.padding, *self.dilation,
                self.ceil_mode)
            return y
        if win.tiles:
            x6 = win.tiled(x)
            cells = [x6[:, :, :, p, :, q] for _, p, q in win.offsets()]
        else:
            xpad = win.pad(x, -np.inf)
            cells = [win.slice(xpad, p, q) for _, p, q in win.offsets()]
        y, self.winner = _first_max(cells, xp)
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        win = self.windows
        if use_kernels(gy):
            return pool_kernels.max_pool2d_backward(gy, self.indices(), win.x_shape)
        if win.tiles:
            # Every input cell is in exactly one window: write, no zero-fill, no adds.
            gx = xp.empty(win.x_shape, dtype=gy.dtype)
            gx6 = win.tiled(gx)
            for k, p, q in win.offsets():
                xp.multiply(self.winner == k, gy, out=gx6[:, :, :, p, :, q])
            return gx
        gph = win.zeros(xp, gy.dtype)
        for k, p, q in win.offsets():
            # Overlapping windows reach a pixel from several offsets: add, not assign.
            win.slice(gph, p, q)[...] += gy * (self.winner == k)
        return win.crop(gph)

    def indices(self):
        """PyTorch's return_indices: the flat index h*W + w of each window's winner."""
        if self.argmax is not None:
            return self.argmax
        xp = get_array_module(self.winner)
        win = self.windows
        (OH, OW), kw = win.out_size, win.kernel_size[1]
        (sh, sw), (ph, pw), (dh, dw) = win.stride, win.padding, win.dilation
        W = win.x_shape[3]
        p, q = xp.divmod(self.winner.astype(np.int64), kw)
        h = xp.arange(OH).reshape(OH, 1) * sh - ph + p * dh
        w = xp.arange(OW) * sw - pw + q * dw
        return h * W + w


# ---- average pooling -------------------------------------------------------------------
class AvgPool2d(Function):
    """Average pooling over (kh, kw) windows of an NCHW batch.

    forward   x (N, C, H, W) -> y (N, C, OH, OW) (OH as max pooling, dilation 1);
              y[n, c, i, j] = (sum over the window of xpad) / divisor[i, j], where padding
              is 0 and divisor is the window size counting the padding
              (count_include_pad) or only the real pixels, and never the cells added by
              ceil_mode; divisor_override replaces it.
    backward  gx[n, c, h, w] = sum over the windows (i, j) containing (h, w) of
              gy[n, c, i, j] / divisor[i, j].

    Saved for backward: ``divisor`` (OH, OW) and ``windows`` (the geometry). On a GPU,
    pool.cu computes each window (forward) and each pixel's gather (backward) in one
    thread, with the same divisor rule.
    """

    def __init__(self, kernel_size, stride, padding, ceil_mode, count_include_pad,
                 divisor_override):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def _kernel_args(self):
        """The geometry as the pool.cu launchers take it."""
        return (*self.kernel_size, *self.stride, *self.padding, self.ceil_mode,
                self.count_include_pad, self.divisor_override)

    def _divisor(self, win, xp, dtype):
        """(OH, OW) divisors: a product of a row count and a column count, as PyTorch."""
        if self.divisor_override is not None:
            return xp.full(win.out_size, self.divisor_override, dtype=dtype)
        counts = []
        for out, k, s, pad, size in zip(win.out_size, win.kernel_size, win.stride,
                                        win.padding, win.x_shape[2:]):
            start = np.arange(out) * s - pad
            end = np.minimum(start + k, size + pad)     # ceil_mode cells never count
            if not self.count_include_pad:
                start, end = np.maximum(start, 0), np.minimum(end, size)
            counts.append(end - start)
        return xp.asarray(np.outer(counts[0], counts[1]).astype(dtype))

    def forward(self, x):
        xp = get_array_module(x)
        win = _Windows(x.shape, self.kernel_size, self.stride, self.padding, (1, 1),
                       self.ceil_mode)
        self.windows = win
        self.divisor = self._divisor(win, xp, x.dtype)
        if use_kernels(x):
            return pool_kernels.avg_pool2d_forward(x, *self._kernel_args())
        if win.tiles:
            return _sum_tiles(x, win.kernel_size) / self.divisor
        xpad = win.pad(x, 0)
        offsets = win.offsets()
        total = win.slice(xpad, *offsets[0][1:]).copy()
        for _, p, q in offsets[1:]:
            total += win.slice(xpad, p, q)
        total /= self.divisor
        return total

    def backward(self, gy):
        xp = get_array_module(gy)
        win = self.windows
        if use_kernels(gy):
            return pool_kernels.avg_pool2d_backward(gy, win.x_shape, *self._kernel_args())
        g = gy / self.divisor
        if win.tiles:
            # Each cell of a window receives its window's g: repeat g along the columns,
            # then write each repeated row kh times (whole contiguous rows, no 6-D
            # broadcast, which NumPy copies element by element).
            N, C, H, W = win.x_shape
            kh, kw = win.kernel_size
            gx = xp.empty(win.x_shape, dtype=gy.dtype)
            gx.reshape(N, C, H // kh, kh, W)[...] = xp.repeat(g, kw, axis=3)[:, :, :, None]
            return gx
        gph = win.zeros(xp, gy.dtype)
        for _, p, q in win.offsets():
            win.slice(gph, p, q)[...] += g
        return win.crop(gph)


# ---- adaptive pooling ------------------------------------------------------------------
def _adaptive_bins(in_size: int, out_size: int):
    """Bin i covers [floor(i*in/out), ceil((i+1)*in/out)), as PyTorch."""
    i = np.arange(out_size)
    return (i * in_size) // out_size, -((-(i + 1) * in_size) // out_size)


def _scatter_add(xp, target, index, values):
    """target[index] += values, adding every repeat of an index (np.add.at)."""
    if xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx
        cupyx.scatter_add(target, index, values)


class AdaptiveAvgPool2d(Function):
    """Average pooling into a fixed (OH, OW) grid of bins (sizes may differ by one).

    Averaging is linear and separable, so it is two small matrix products:
    forward   y = A_h @ x @ A_w^T, with A_h (OH, H), A_h[i, h] = 1/|bin_i| for h in bin_i
              (A_w (OW, W) likewise); x (N, C, H, W) -> y (N, C, OH, OW).
    backward  gx = A_h^T @ gy @ A_w.

    Saved for backward: ``rows`` = A_h and ``cols`` = A_w.
    """

    def __init__(self, output_size):
        self.output_size = output_size

    @staticmethod
    def _averaging_matrix(in_size, out_size, xp, dtype):
        start, end = _adaptive_bins(in_size, out_size)
        h = np.arange(in_size)
        inside = (h >= start[:, None]) & (h < end[:, None])
        return xp.asarray((inside / (end - start)[:, None]).astype(dtype))

    def forward(self, x):
        xp = get_array_module(x)
        N, C, H, W = x.shape
        OH, OW = self.output_size
        self.rows = self._averaging_matrix(H, OH, xp, x.dtype)
        self.cols = self._averaging_matrix(W, OW, xp, x.dtype)
        t = (x.reshape(N * C * H, W) @ self.cols.T).reshape(N, C, H, OW)  # one GEMM
        return xp.matmul(self.rows, t)

    def backward(self, gy):
        N, C, OH, OW = gy.shape
        W = self.cols.shape[1]
        t = (gy.reshape(N * C * OH, OW) @ self.cols).reshape(N, C, OH, W)
        return get_array_module(gy).matmul(self.rows.T, t)


class AdaptiveMaxPool2d(Function):
    """Max pooling into a fixed (OH, OW) grid of bins (sizes may differ by one).

    forward   y[n, c, i, j] = max of x[n, c, bin_h(i), bin_w(j)]; bins as PyTorch. Bins
              shorter than the longest (KH, KW) repeat their last row/column, which can
              never be a FIRST maximum, so every bin is scanned as KH x KW offsets.
    backward  gx[n, c, h, w] = sum of gy[n, c, i, j] over the bins whose first maximum is
              (h, w) (bins may overlap, hence a scatter-add).

    Saved for backward: ``index`` (N, C, OH, OW), the flat h*W + w of each winner (also
    what return_indices gives), and ``x_shape``.
    """

    def __init__(self, output_size):
        self.output_size = output_size

    def forward(self, x):
        xp = get_array_module(x)
        N, C, H, W = x.shape
        (OH, OW) = self.output_size
        positions = []
        for in_size, out_size in ((H, OH), (W, OW)):
            start, end = _adaptive_bins(in_size, out_size)
            k = np.arange((end - start).max())
            positions.append(np.minimum(start[:, None] + k, end[:, None] - 1))  # (out, K)
        rows, cols = positions
        offsets = [(a, b) for a in range(rows.shape[1]) for b in range(cols.shape[1])]
        cells = [x[:, :, xp.asarray(rows[:, a, None]), xp.asarray(cols[None, :, b])]
                 for a, b in offsets]
        y, winner = _first_max(cells, xp)
        # flat[i, j, k]: the input index h*W + w of offset k of bin (i, j).
        flat = rows[:, None, :, None] * W + cols[None, :, None, :]     # (OH, OW, KH, KW)
        flat = xp.asarray(flat.reshape(OH, OW, -1))
        self.index = flat[xp.arange(OH).reshape(OH, 1), xp.arange(OW), winner]
        self.x_shape = x.shape
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        N, C, H, W = self.x_shape
        gx = xp.zeros((N * C, H * W), dtype=gy.dtype)
        plane = xp.arange(N * C).reshape(N * C, 1)
        # Overlapping bins can share a winner, so the scatter must add repeated indices.
        bins = gy.shape[2] * gy.shape[3]     # not -1: N * C may be 0 (an empty batch)
        _scatter_add(xp, gx, (plane, self.index.reshape(N * C, bins)),
                     gy.reshape(N * C, bins))
        return gx.reshape(N, C, H, W)

    def indices(self):
        return self.index


# ---- public functions ------------------------------------------------------------------
def _pool_args(op, input, kernel_size, stride, padding, dilation):
    _check_tensor(input, "input", op)
    kernel_size = _positive_pair(kernel_size, "kernel_size", op)
    stride = kernel_size if stride is None or (isinstance(stride, (tuple, list)) and
                                               len(stride) == 0) else \
        _positive_pair(stride, "stride", op)
    padding = _nonnegative_pair(padding, "padding", op)
    dilation = _positive_pair(dilation, "dilation", op)
    if padding[0] > kernel_size[0] // 2 or padding[1] > kernel_size[1] // 2:
        raise ValueError(f"{op}: padding must be at most half the kernel size, got padding "
                         f"{padding} for kernel_size {kernel_size}")
    return kernel_size, stride, padding, dilation


def _check_output(op, input, kernel_size, stride, padding, dilation, ceil_mode):
    H, W = input.shape[2:]
    out = (_pool_output_size(H, kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode),
           _pool_output_size(W, kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode))
    if min(out) < 1:
        eff = (dilation[0] * (kernel_size[0] - 1) + 1, dilation[1] * (kernel_size[1] - 1) + 1)
        raise ValueError(f"{op}: kernel_size {kernel_size} (dilated to {eff}) is larger than "
                         f"the padded input {(H + 2 * padding[0], W + 2 * padding[1])}: the "
                         f"output would be {out}")


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """2-D max pooling of an NCHW batch, as torch.nn.functional.max_pool2d.

    Args:
        input: (N, C, H, W) float tensor.
        kernel_size: int or (kh, kw).
        stride: int or pair; None means kernel_size.
        padding: int or pair, at most half the kernel; padding counts as -inf.
        dilation: spacing between window cells.
        ceil_mode: round the output size up (a last window that would start in the right
            padding is dropped).
        return_indices: also return the flat index h*W + w of each maximum (int64).
    Returns:
        y (N, C, OH, OW), OH = floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1 (ceil with
        ceil_mode); and the indices when return_indices.
    Raises:
        TypeError / ValueError for a non-4-D or non-float input, non-positive kernel,
        stride or dilation, padding above half the kernel, or an empty output.

    >>> y, idx = max_pool2d(md.randn(1, 1, 4, 4), 2, return_indices=True)
    >>> y.shape, idx.shape
    ((1, 1, 2, 2), (1, 1, 2, 2))
    """
    op = "max_pool2d"
    kernel_size, stride, padding, dilation = _pool_args(op, input, kernel_size, stride,
                                                        padding, dilation)
    _check_output(op, input, kernel_size, stride, padding, dilation, ceil_mode)
    fn = MaxPool2d(kernel_size, stride, padding, dilation, bool(ceil_mode))
    y = fn.apply(input)
    if return_indices:
        return y, Tensor._wrap(fn.indices())
    return y


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    """2-D average pooling of an NCHW batch, as torch.nn.functional.avg_pool2d.

    Args:
        input: (N, C, H, W) float tensor.
        kernel_size: int or (kh, kw).
        stride: int or pair; None means kernel_size.
        padding: int or pair, at most half the kernel; padding cells are 0.
        ceil_mode: round the output size up; the cells it adds never count in the divisor.
        count_include_pad: divide by the window size including padding (default) or by
            the number of real pixels.
        divisor_override: a positive int to divide by instead.
    Returns:
        y (N, C, OH, OW), OH = floor((H + 2*ph - kh) / sh) + 1 (ceil with ceil_mode).
    Raises:
        TypeError / ValueError as max_pool2d, and for a divisor_override that is not a
        positive int.

    >>> avg_pool2d(md.ones(1, 1, 4, 4), 2).shape
    (1, 1, 2, 2)
    """
    op = "avg_pool2d"
    kernel_size, stride, padding, _ = _pool_args(op, input, kernel_size, stride, padding, 1)
    if divisor_override is not None and (not _is_int(divisor_override) or
                                         divisor_override < 1):
        raise ValueError(f"{op}: divisor_override must be a positive int or None, got "
                         f"{divisor_override!r}")
    _check_output(op, input, kernel_size, stride, padding, (1, 1), ceil_mode)
    fn = AvgPool2d(kernel_size, stride, padding, bool(ceil_mode), bool(count_include_pad),
                   divisor_override)
    return fn.apply(input)


def _adaptive_output_size(op, input, output_size):
    _check_tensor(input, "input", op)
    H, W = input.shape[2:]
    if output_size is None or _is_int(output_size):
        sizes = (output_size, output_size)
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        sizes = tuple(output_size)
    else:
        raise TypeError(f"{op}: output_size must be an int, a pair, or None entries, got "
                        f"{output_size!r}")
    out = []
    for s, size in zip(sizes, (H, W)):
        if s is None:
            out.append(size)
        elif not _is_int(s) or s < 1:
            raise ValueError(f"{op}: output_size entries must be positive ints or None, "
                             f"got {output_size!r}")
        else:
            out.append(int(s))
    if min(H, W) < 1:
        raise ValueError(f"{op}: input spatial size must be positive, got {(H, W)}")
    return tuple(out)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed output size, as torch.nn.functional.adaptive_avg_pool2d.

    Args:
        input: (N, C, H, W) float tensor.
        output_size: int or (OH, OW); a None entry keeps that input size.
    Returns:
        (N, C, OH, OW); bin i spans [floor(i*H/OH), ceil((i+1)*H/OH)).
    Raises:
        TypeError / ValueError for a bad input or output_size.

    >>> adaptive_avg_pool2d(md.randn(2, 8, 7, 7), 1).shape
    (2, 8, 1, 1)
    """
    op = "adaptive_avg_pool2d"
    OH, OW = _adaptive_output_size(op, input, output_size)
    H, W = input.shape[2:]
    if H % OH == 0 and W % OW == 0:   # equal bins: plain pooling, reshape fast path
        k = (H // OH, W // OW)
        return AvgPool2d(k, k, (0, 0), False, True, None).apply(input)
    return AdaptiveAvgPool2d((OH, OW)).apply(input)


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Max pooling to a fixed output size, as torch.nn.functional.adaptive_max_pool2d.

    Args:
        input: (N, C, H, W) float tensor.
        output_size: int or (OH, OW); a None entry keeps that input size.
        return_indices: also return the flat index h*W + w of each maximum (int64).
    Returns:
        (N, C, OH, OW), and the indices when return_indices.
    Raises:
        TypeError / ValueError for a bad input or output_size.

    >>> adaptive_max_pool2d(md.randn(2, 8, 7, 7), (2, 3)).shape
    (2, 8, 2, 3)
    """
    op = "adaptive_max_pool2d"
    OH, OW = _adaptive_output_size(op, input, output_size)
    H, W = input.shape[2:]
    if H % OH == 0 and W % OW == 0:   # equal bins: plain pooling, reshape fast path
        k = (H // OH, W // OW)
        fn = MaxPool2d(k, k, (0, 0), (1, 1), False)
    else:
        fn = AdaptiveMaxPool2d((OH, OW))
    y = fn.apply(input)
    if return_indices:
        return y, Tensor._wrap(fn.indices())
    return y

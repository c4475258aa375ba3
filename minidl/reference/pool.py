"""Pooling by plain loops over output pixels (NumPy only; slow, obvious).

Read these next to minidl/ops/pool.py. Arguments are NumPy arrays; kernel_size, stride,
padding and dilation are pairs.
"""
import numpy as np


def pool_output_size(size, k, s, p, d, ceil_mode):
    """PyTorch's rule (a ceil_mode window that would start in the right padding is dropped)."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def max_pool2d_forward(x, kernel_size, stride, padding=(0, 0), dilation=(1, 1),
                       ceil_mode=False):
    """(y, indices): the first maximum of each window and its flat index h*W + w."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    N, C, H, W = x.shape
    OH = pool_output_size(H, kh, sh, ph, dh, ceil_mode)
    OW = pool_output_size(W, kw, sw, pw, dw, ceil_mode)
    y = np.zeros((N, C, OH, OW), dtype=x.dtype)
    indices = np.zeros((N, C, OH, OW), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    best, where = -np.inf, -1
                    for p in range(kh):
                        for q in range(kw):
                            h, w = i * sh - ph + p * dh, j * sw - pw + q * dw
                            v = x[n, c, h, w] if 0 <= h < H and 0 <= w < W else None
                            # the first maximum wins; a NaN wins (as in PyTorch)
                            if v is not None and (where < 0 or v > best or np.isnan(v)):
                                best, where = v, h * W + w
                    y[n, c, i, j], indices[n, c, i, j] = best, where
    return y, indices


def max_pool2d_backward(x, gy, kernel_size, stride, padding=(0, 0), dilation=(1, 1),
                        ceil_mode=False):
    """gx: each window's gradient goes to its first maximum."""
    _, indices = max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode)
    N, C, H, W = x.shape
    gx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(gy.shape[2]):
                for j in range(gy.shape[3]):
                    if indices[n, c, i, j] < 0:
                        continue        # a window of padding alone: no input to credit
                    h, w = divmod(indices[n, c, i, j], W)
                    gx[n, c, h, w] += gy[n, c, i, j]
    return gx


def _avg_window(i, j, H, W, kernel_size, stride, padding, count_include_pad,
                divisor_override):
    """Rows, columns and divisor of the window of output (i, j), as PyTorch."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    h0, w0 = i * sh - ph, j * sw - pw
    h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)   # cells past the padding never count
    pool_size = (h1 - h0) * (w1 - w0)
    h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
    if divisor_override is not None:
        divisor = divisor_override
    elif count_include_pad:
        divisor = pool_size
    else:
        divisor = (h1 - h0) * (w1 - w0)
    return slice(h0, h1), slice(w0, w1), divisor


def avg_pool2d_forward(x, kernel_size, stride, padding=(0, 0), ceil_mode=False,
                       count_include_pad=True, divisor_override=None):
    """y[n, c, i, j] = sum of the window's real pixels / its divisor."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    N, C, H, W = x.shape
    OH = pool_output_size(H, kh, sh, ph, 1, ceil_mode)
    OW = pool_output_size(W, kw, sw, pw, 1, ceil_mode)
    y = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    rows, cols, divisor = _avg_window(i, j, H, W, kernel_size, stride,
                                                      padding, count_include_pad,
                                                      divisor_override)
                    y[n, c, i, j] = x[n, c, rows, cols].sum() / divisor
    return y


def avg_pool2d_backward(x, gy, kernel_size, stride, padding=(0, 0), ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """gx: each window spreads gy / divisor over its real pixels."""
    N, C, H, W = x.shape
    gx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(gy.shape[2]):
                for j in range(gy.shape[3]):
                    rows, cols, divisor = _avg_window(i, j, H, W, kernel_size, stride,
                                                      padding, count_include_pad,
                                                      divisor_override)
                    gx[n, c, rows, cols] += gy[n, c, i, j] / divisor
    return gx


def adaptive_bins(in_size, out_size):
    """Bin i covers [floor(i*in/out), ceil((i+1)*in/out))."""
    return [((i * in_size) // out_size, -(-(i + 1) * in_size // out_size))
            for i in range(out_size)]


def adaptive_max_pool2d_forward(x, output_size):
    """(y, indices): first maximum of each bin and its flat index h*W + w."""
    N, C, H, W = x.shape
    rows, cols = adaptive_bins(H, output_size[0]), adaptive_bins(W, output_size[1])
    y = np.zeros((N, C, len(rows), len(cols)), dtype=x.dtype)
    indices = np.zeros(y.shape, dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i, (h0, h1) in enumerate(rows):
                for j, (w0, w1) in enumerate(cols):
                    # argmax: the first maximum, or the first NaN (PyTorch takes the last)
                    bin_ = x[n, c, h0:h1, w0:w1]
                    nans = np.flatnonzero(np.isnan(bin_))
                    k = int(nans[-1]) if nans.size else int(np.argmax(bin_))
                    h, w = h0 + k // (w1 - w0), w0 + k % (w1 - w0)
                    y[n, c, i, j], indices[n, c, i, j] = x[n, c, h, w], h * W + w
    return y, indices


def adaptive_avg_pool2d_forward(x, output_size):
    N, C, H, W = x.shape
    rows, cols = adaptive_bins(H, output_size[0]), adaptive_bins(W, output_size[1])
    y = np.zeros((N, C, len(rows), len(cols)), dtype=x.dtype)
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


def adaptive_avg_pool2d_backward(x, gy, output_size):
    N, C, H, W = x.shape
    rows, cols = adaptive_bins(H, output_size[0]), adaptive_bins(W, output_size[1])
    gx = np.zeros_like(x)
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            gx[:, :, h0:h1, w0:w1] += gy[:, :, i, j, None, None] / ((h1 - h0) * (w1 - w0))
    return gx

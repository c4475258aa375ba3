"""conv2d and conv_transpose2d by plain loops over pixels (NumPy only; slow, obvious).

Read these next to minidl/ops/conv.py: the same sums, one output pixel at a time.
Arguments are NumPy arrays; stride and dilation are pairs; padding is a pair (ph, pw)
or ((top, bottom), (left, right)).
"""
import numpy as np


def _pads(padding):
    (ph, pw) = padding
    ph = (ph, ph) if np.isscalar(ph) else tuple(ph)
    pw = (pw, pw) if np.isscalar(pw) else tuple(pw)
    return ph, pw


def _zero_pad(x, pads):
    (pt, pb), (pl, pr) = pads
    N, C, H, W = x.shape
    xpad = np.zeros((N, C, pt + H + pb, pl + W + pr), dtype=x.dtype)
    xpad[:, :, pt:pt + H, pl:pl + W] = x
    return xpad


def conv2d_forward(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """y[n, o, i, j] = b[o] + sum over the window at (i*sh, j*sw) of xpad * w[o]."""
    (sh, sw), (dh, dw) = stride, dilation
    pads = _pads(padding)
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    Og = O // groups
    xpad = _zero_pad(x, pads)
    OH = (xpad.shape[2] - dh * (kh - 1) - 1) // sh + 1
    OW = (xpad.shape[3] - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((N, O, OH, OW), dtype=x.dtype)
    for n in range(N):
        for o in range(O):
            g = o // Og
            for i in range(OH):
                for j in range(OW):
                    window = xpad[n, g * Cg:(g + 1) * Cg,
                                  i * sh:i * sh + dh * (kh - 1) + 1:dh,
                                  j * sw:j * sw + dw * (kw - 1) + 1:dw]
                    y[n, o, i, j] = np.sum(window * w[o]) + (0 if b is None else b[o])
    return y


def conv2d_backward(x, w, gy, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """(gx, gw, gb): each output pixel sends gy back to its window (gx) and to w (gw)."""
    (sh, sw), (dh, dw) = stride, dilation
    (pt, pb), (pl, pr) = pads = _pads(padding)
    N, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    Og = O // groups
    xpad = _zero_pad(x, pads)
    gxpad = np.zeros_like(xpad)
    gw = np.zeros_like(w)
    OH, OW = gy.shape[2:]
    for n in range(N):
        for o in range(O):
            g = o // Og
            for i in range(OH):
                for j in range(OW):
                    window = (n, slice(g * Cg, (g + 1) * Cg),
                              slice(i * sh, i * sh + dh * (kh - 1) + 1, dh),
                              slice(j * sw, j * sw + dw * (kw - 1) + 1, dw))
                    gxpad[window] += gy[n, o, i, j] * w[o]
                    gw[o] += gy[n, o, i, j] * xpad[window]
    gx = gxpad[:, :, pt:pt + H, pl:pl + W]
    return gx, gw, gy.sum(axis=(0, 2, 3))


def conv_transpose2d_forward(x, w, b=None, stride=(1, 1), padding=(0, 0),
                             output_padding=(0, 0), groups=1, dilation=(1, 1)):
    """Each input pixel adds x[n, c, i, j] * w[c] onto the output window at (i*sh, j*sw);
    then ``padding`` rows/columns are cut from each side (output_padding adds some back
    at the bottom/right)."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    N, Cin, H, W = x.shape
    _, Coutg, kh, kw = w.shape
    Cing = Cin // groups
    OH = (H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    OW = (W - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    full = np.zeros((N, Coutg * groups, (H - 1) * sh + dh * (kh - 1) + 1 + oph,
                     (W - 1) * sw + dw * (kw - 1) + 1 + opw), dtype=x.dtype)
    for n in range(N):
        for c in range(Cin):
            g = c // Cing
            for i in range(H):
                for j in range(W):
                    full[n, g * Coutg:(g + 1) * Coutg,
                         i * sh:i * sh + dh * (kh - 1) + 1:dh,
                         j * sw:j * sw + dw * (kw - 1) + 1:dw] += x[n, c, i, j] * w[c]
    y = full[:, :, ph:ph + OH, pw:pw + OW].copy()
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def conv_transpose2d_backward(x, w, gy, stride=(1, 1), padding=(0, 0),
                              output_padding=(0, 0), groups=1, dilation=(1, 1)):
    """(gx, gw, gb): each input pixel reads gy over the window it was added to."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    N, Cin, H, W = x.shape
    _, Coutg, kh, kw = w.shape
    Cing = Cin // groups
    OH, OW = gy.shape[2:]
    # gy placed back into the uncut output; the cut rows carry no gradient.
    full = np.zeros((N, Coutg * groups, (H - 1) * sh + dh * (kh - 1) + 1 + output_padding[0],
                     (W - 1) * sw + dw * (kw - 1) + 1 + output_padding[1]), dtype=gy.dtype)
    full[:, :, ph:ph + OH, pw:pw + OW] = gy
    gx = np.zeros_like(x)
    gw = np.zeros_like(w)
    for n in range(N):
        for c in range(Cin):
            g = c // Cing
            for i in range(H):
                for j in range(W):
                    window = full[n, g * Coutg:(g + 1) * Coutg,
                                  i * sh:i * sh + dh * (kh - 1) + 1:dh,
                                  j * sw:j * sw + dw * (kw - 1) + 1:dw]
                    gx[n, c, i, j] = np.sum(window * w[c])
                    gw[c] += x[n, c, i, j] * window
    return gx, gw, gy.sum(axis=(0, 2, 3))

"""Slow, obvious batch normalisation with plain loops (NumPy only), to check the fast op.

Nothing here is vectorised: each channel is visited in turn, and inside it each value,
so the formulas can be read off line by line. The backward follows the textbook chain
rule through xhat, the variance and the mean, not the compact closed form that
minidl.ops.norm uses, so the two are independent derivations of the same gradient.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["batch_norm_forward", "batch_norm_backward"]


def _channel_values(x, c):
    """The values of channel c of an (N, C, *) array, as a flat list of (index, value)."""
    out = []
    for index in np.ndindex(*x.shape):
        if index[1] == c:
            out.append((index, float(x[index])))
    return out


def batch_norm_forward(x, weight=None, bias=None, eps=1e-5, running_mean=None,
                       running_var=None, training=True):
    """y = weight * (x - mean) / sqrt(var + eps) + bias, channel by channel.

    Args:
        x: (N, C, *) array.
        weight, bias: (C,) arrays or None (1 and 0).
        running_mean, running_var: (C,) arrays used when training is False.
        training: use the batch mean and biased batch variance of each channel.
    Returns:
        (y, mean, var, unbiased_var): y of x's shape (float64); the batch mean, biased
        and unbiased variance of each channel as (C,) arrays (the running statistics in
        eval).
    """
    C = x.shape[1]
    y = np.zeros(x.shape)
    means, variances, unbiased = np.zeros(C), np.zeros(C), np.zeros(C)
    for c in range(C):
        values = _channel_values(x, c)
        n = len(values)
        if training:
            total = 0.0
            for _, v in values:
                total += v
            mean = total / n
            squares = 0.0
            for _, v in values:
                squares += (v - mean) ** 2
            var = squares / n
            unbiased[c] = squares / (n - 1) if n > 1 else math.nan
        else:
            mean, var = float(running_mean[c]), float(running_var[c])
            unbiased[c] = var
        means[c], variances[c] = mean, var
        w = 1.0 if weight is None else float(weight[c])
        b = 0.0 if bias is None else float(bias[c])
        for index, v in values:
            y[index] = w * (v - mean) / math.sqrt(var + eps) + b
    return y, means, variances, unbiased


def batch_norm_backward(x, gy, weight=None, eps=1e-5, running_mean=None, running_var=None,
                        training=True):
    """Gradients (gx, gweight, gbias) of batch_norm_forward for the upstream gradient gy.

    With xhat_i = (x_i - mu) / sqrt(var + eps) over the n values of one channel:
        gxhat_i = gy_i * w
        gvar    = sum_i gxhat_i * (x_i - mu) * (-1/2) * (var + eps)^(-3/2)
        gmu     = sum_i gxhat_i * (-1 / sqrt(var + eps)) + gvar * sum_i (-2 (x_i - mu)) / n
        gx_i    = gxhat_i / sqrt(var + eps) + gvar * 2 (x_i - mu) / n + gmu / n
    In eval mode mu and var are constants, so only the first term of gx remains.
    """
    C = x.shape[1]
    gx = np.zeros(x.shape)
    gweight, gbias = np.zeros(C), np.zeros(C)
    for c in range(C):
        values = _channel_values(x, c)
        n = len(values)
        if training:
            mean = sum(v for _, v in values) / n
            var = sum((v - mean) ** 2 for _, v in values) / n
        else:
            mean, var = float(running_mean[c]), float(running_var[c])
        std = math.sqrt(var + eps)
        w = 1.0 if weight is None else float(weight[c])
        for index, v in values:
            gbias[c] += float(gy[index])
            gweight[c] += float(gy[index]) * (v - mean) / std
        if not training:
            for index, _ in values:
                gx[index] = float(gy[index]) * w / std
            continue
        gvar = 0.0
        for index, v in values:
            gvar += float(gy[index]) * w * (v - mean) * -0.5 * (var + eps) ** -1.5
        gmean = 0.0
        for index, v in values:
            gmean += float(gy[index]) * w * (-1.0 / std)
        for _, v in values:
            gmean += gvar * -2.0 * (v - mean) / n
        for index, v in values:
            gx[index] = (float(gy[index]) * w / std + gvar * 2.0 * (v - mean) / n
                         + gmean / n)
    return gx, gweight, gbias

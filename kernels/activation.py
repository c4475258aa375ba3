"""Launchers of activation.cu: elementwise activations and their backward on CuPy arrays.

Each is a cupy.ElementwiseKernel whose preamble is activation.cu (the per-value math, see
the table there) and whose body calls one of its functions; CuPy writes the loop and
compiles a float32 and a float64 version on first use.

forward                         backward
relu_forward(x)                 relu_backward(x, gy)
leaky_relu_forward(x, slope)    leaky_relu_backward(x, gy, slope)
sigmoid_forward(x)              sigmoid_backward(y, gy)     (y = the forward output)
tanh_forward(x)                 tanh_backward(y, gy)        (y = the forward output)
gelu_forward(x, approximate)    gelu_backward(x, gy, approximate)   ('none' or 'tanh')
"""
from __future__ import annotations

from . import loader

__all__ = ["ELEMENTWISE", "relu_forward", "relu_backward", "leaky_relu_forward",
           "leaky_relu_backward", "sigmoid_forward", "sigmoid_backward", "tanh_forward",
           "tanh_backward", "gelu_forward", "gelu_backward"]

# name -> (in_params, out_params, operation); the name is also the activation.cu function.
ELEMENTWISE = {
    "relu_forward": ("T x", "T y", "y = relu_forward(x)"),
    "relu_backward": ("T x, T gy", "T gx", "gx = relu_backward(x, gy)"),
    "leaky_relu_forward": ("T x, T slope", "T y", "y = leaky_relu_forward(x, slope)"),
    "leaky_relu_backward": ("T x, T gy, T slope", "T gx",
                            "gx = leaky_relu_backward(x, gy, slope)"),
    "sigmoid_forward": ("T x", "T y", "y = sigmoid_forward(x)"),
    "sigmoid_backward": ("T y, T gy", "T gx", "gx = sigmoid_backward(y, gy)"),
    "tanh_forward": ("T x", "T y", "y = tanh_forward(x)"),
    "tanh_backward": ("T y, T gy", "T gx", "gx = tanh_backward(y, gy)"),
    "gelu_forward": ("T x", "T y", "y = gelu_forward(x)"),
    "gelu_backward": ("T x, T gy", "T gx", "gx = gelu_backward(x, gy)"),
    "gelu_tanh_forward": ("T x", "T y", "y = gelu_tanh_forward(x)"),
    "gelu_tanh_backward": ("T x, T gy", "T gx", "gx = gelu_tanh_backward(x, gy)"),
}


def _run(name, *args):
    """Call the ElementwiseKernel ``name`` on arrays (and typed scalars) of one dtype."""
    loader.kernel_suffix(args[0].dtype)  # float32 / float64 only
    return loader.elementwise("activation.cu", name, *ELEMENTWISE[name])(*args)


def _same(op, a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"{op}: expected two arrays of one shape and dtype, got "
                         f"{tuple(a.shape)} {a.dtype} and {tuple(b.shape)} {b.dtype}")


def relu_forward(x):
    """max(x, 0)."""
    return _run("relu_forward", x)


def relu_backward(x, gy):
    """gy where x > 0, else 0."""
    _same("relu_backward", x, gy)
    return _run("relu_backward", x, gy)


def leaky_relu_forward(x, negative_slope: float = 0.01):
    """x where x > 0, else negative_slope * x."""
    return _run("leaky_relu_forward", x, x.dtype.type(negative_slope))


def leaky_relu_backward(x, gy, negative_slope: float = 0.01):
    """gy where x > 0, else negative_slope * gy."""
    _same("leaky_relu_backward", x, gy)
    return _run("leaky_relu_backward", x, gy, x.dtype.type(negative_slope))


def sigmoid_forward(x):
    """1 / (1 + exp(-x)), without overflow for large |x|."""
    return _run("sigmoid_forward", x)


def sigmoid_backward(y, gy):
    """gy * y * (1 - y), from the forward output y."""
    _same("sigmoid_backward", y, gy)
    return _run("sigmoid_backward", y, gy)


def tanh_forward(x):
    """tanh(x)."""
    return _run("tanh_forward", x)


def tanh_backward(y, gy):
    """gy * (1 - y^2), from the forward output y."""
    _same("tanh_backward", y, gy)
    return _run("tanh_backward", y, gy)


def _gelu_name(approximate, direction):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return ("gelu_" if approximate == "none" else "gelu_tanh_") + direction


def gelu_forward(x, approximate: str = "none"):
    """x * Phi(x) (exact, with erf) or PyTorch's tanh approximation."""
    return _run(_gelu_name(approximate, "forward"), x)


def gelu_backward(x, gy, approximate: str = "none"):
    """gy * d gelu / dx for the same ``approximate`` as the forward."""
    _same("gelu_backward", x, gy)
    return _run(_gelu_name(approximate, "backward"), x, gy)

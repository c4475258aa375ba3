"""minidl: a small deep-learning engine with every layer written by hand.

>>> import minidl as md
>>> x = md.randn(4, 3, requires_grad=True)
>>> (x * x).sum().backward()
"""
from .backend import (Device, cuda_available, device_of, get_array_module, get_default_device,
                      manual_seed, set_default_device)
from .function import Function, detect_anomaly
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .parallel import get_num_threads, set_num_threads
from .ops.elementwise import (abs, clamp, exp, log, maximum, minimum, relu, sigmoid, sign,
                              sqrt, tanh, where)
from .ops.linalg import matmul
from .ops.reduce import amax, amin, argmax, argmin, logsumexp, max, mean, min, std, sum, var
from .ops.shape import cat, chunk, flatten, permute, reshape, split, squeeze, stack, \
    transpose, unsqueeze
from .tensor import (Tensor, arange, bool_, empty, eye, float16, float32, float64, full,
                     full_like, get_default_dtype, grad, int8, int16, int32, int64, linspace,
                     ones, ones_like, rand, rand_like, randint, randn, randn_like,
                     set_default_dtype, tensor, uint8, zeros, zeros_like)

__version__ = "0.1.0"

# The subpackages, so that ``md.nn.Linear`` works after ``import minidl as md``.
from . import data, models, nn, optim, testing, utils  # noqa: E402

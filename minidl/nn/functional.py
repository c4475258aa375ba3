"""minidl.nn.functional (``F``): every layer as a function.

The math lives in minidl/ops (one file per op family, forward and backward side by
side); this module only gathers the public names, PyTorch-style.

>>> import minidl.nn.functional as F
>>> F.relu(F.linear(x, w, b))
"""
from ..ops.elementwise import relu, sigmoid, tanh
from ..ops.shape import pad
from .layers.linear import linear

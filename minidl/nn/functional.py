"""minidl.nn.functional (``F``): every layer as a function.

The math lives in minidl/ops (one file per op family, forward and backward side by
side); this module only gathers the public names, PyTorch-style.

>>> import minidl.nn.functional as F
>>> F.relu(F.linear(x, w, b))
"""
from ..ops.activation import (gelu, hardtanh, leaky_relu, log_softmax, relu, sigmoid, silu,
                              softmax, tanh)
from ..ops.conv import conv2d, conv_transpose2d
from ..ops.dropout import drop_path, dropout, dropout2d
from ..ops.norm import batch_norm, group_norm, instance_norm, layer_norm
from ..ops.shape import pad
from .layers.linear import linear

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
from ..ops.loss import (binary_cross_entropy_with_logits, cross_entropy, l1_loss, mse_loss,
                        nll_loss, one_hot)
from ..ops.norm import batch_norm, group_norm, instance_norm, layer_norm
from ..ops.pool import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d
from ..ops.resize import interpolate
from ..ops.shape import pad
from .layers.linear import linear

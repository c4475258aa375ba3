"""minidl.nn: Module, Parameter, containers and layers (PyTorch's names and arguments).

>>> from minidl import nn
>>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
>>> net(md.randn(5, 4)).shape
(5, 2)
"""
from . import functional, init
from .containers import ModuleDict, ModuleList, Sequential
from .layers.activation import (GELU, Hardtanh, LeakyReLU, LogSoftmax, ReLU, ReLU6, SiLU,
                                Sigmoid, Softmax, Tanh)
from .layers.conv import Conv2d, ConvTranspose2d
from .layers.dropout import DropPath, Dropout, Dropout2d
from .layers.linear import Linear
from .layers.loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .layers.misc import Flatten, Identity
from .layers.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm
from .layers.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from .layers.resize import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from .module import IncompatibleKeys, Module, RemovableHandle, StateDictError
from .parameter import Parameter

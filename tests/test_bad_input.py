"""Bad input across the public API: clear ValueError/TypeError, never a crash from inside.

Every public function and layer has a row in a table of valid base arguments (checked to
work as given). Each argument then has mutations: wrong ndim, int/bool dtype where floats
belong, object arrays and plain lists, zero-size dimensions, negative or zero sizes, wrong
types, probabilities outside [0, 1], unknown choices, a tensor on another device (when a
GPU is present). A call with one (or, drawn by hypothesis, two) mutated arguments must

* raise ValueError or TypeError (never IndexError, ZeroDivisionError, a NumPy error, ...)
  whose message names the op and the offending argument, or
* where the mutation may be legitimate (an extra dim, an empty batch, an int tensor for an
  elementwise op), return a result without a NaN that nothing asked for; a float result
  that requires grad must then also backpropagate.

Every outcome is counted; the summary (inputs tried, exceptions by type) is written to
bad_input_summary.json in pytest's temporary folder and printed when the session ends.
"""
from __future__ import annotations

import collections
import inspect
import io
import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl as md
import minidl.nn.functional as F
from minidl import data, models, nn, optim, utils
from minidl.data import transforms as T
from minidl.nn import init
from minidl.optim import lr_scheduler as sched
from minidl.utils.summary import summary
from minidl.tensor import Tensor

RAISE, EITHER = "raise", "either"
# Indexing a dataset out of range is an IndexError by Python's protocol (for-loops over a
# dataset stop on it), so Subset's out-of-range indices keep it, as tested in test_data.
RAISE_INDEX = "raise, IndexError allowed"
# A tensor on the other device: an op computes where its input lives (as in PyTorch), so
# a lone tensor elsewhere is fine and the result must be on that device; beside a tensor
# on the test's device it must be refused (a layer's parameters refuse it themselves).
ELSEWHERE = "either, on the mutated tensor's device"
ACCEPTED = (ValueError, TypeError)

STATS = {"calls": 0, "outcomes": collections.Counter(), "cases": {}}


# ---- argument kinds and their mutations -------------------------------------------------
class Arg:
    """One argument of a case: its valid value and the mutations to try on it."""

    def __init__(self, name, make, mutations, aliases=()):
        self.name, self.make, self.aliases = name, make, tuple(aliases)
        self.mutations = mutations      # list of (label, make(device), expect, given)

    @property
    def names(self):
        return (self.name,) + self.aliases


def _rng(seed=0):
    return np.random.default_rng(seed)


def _float_array(shape, dtype="float32", positive=False, seed=0):
    a = _rng(seed).standard_normal(shape).astype(dtype)
    return np.abs(a) + 0.5 if positive else a


def _other_device(device):
    return "cpu" if device != "cpu" else "cuda"


def ten(name, shape, *, ndims=None, float_only=True, optional=False, grad=True,
        positive=False, aliases=(), dtype="float32", arraylike=False):
    """A float tensor argument of ``shape``.

    ndims: the set of dimension counts the function accepts (None: any).
    float_only: int/bool tensors must be refused (else either way).
    arraylike: a plain list or array is also accepted.
    """
    shape = tuple(shape)

    def build(sh=shape, dt=dtype, requires_grad=grad):
        def make(device):
            a = _float_array(sh, dt, positive) if np.dtype(dt).kind == "f" else \
                (_rng(1).integers(1 if positive else 0, 3, sh).astype(dt))
            return md.tensor(a, device=device,
                             requires_grad=requires_grad and np.dtype(dt).kind == "f")
        return make

    def ndim_expect(n):
        return EITHER if ndims is None or n in ndims else RAISE

    muts = [
        ("object array", lambda device: np.empty(shape, dtype=object), RAISE,
         ["object", "ndarray"]),
        ("int64 tensor", build(dt="int64"), RAISE if float_only else EITHER, "int64"),
        ("bool tensor", build(dt="bool"), RAISE if float_only else EITHER, "bool"),
        ("ndim + 1", build(sh=shape + (2,)), ndim_expect(len(shape) + 1), shape + (2,)),
    ]
    if not arraylike:
        muts.append(("python list", lambda device: _float_array(shape).tolist(), RAISE,
                     "list"))
    if shape:
        muts.append(("ndim - 1", build(sh=shape[1:]), ndim_expect(len(shape) - 1),
                     shape[1:]))
    for i in range(len(shape)):
        sh = shape[:i] + (0,) + shape[i + 1:]
        muts.append((f"size 0 at dim {i}", build(sh=sh), EITHER, sh))
    if not optional:
        muts.append(("None", lambda device: None, RAISE, "None"))
    muts.append(("other device", "other-device", ELSEWHERE, "device"))
    return Arg(name, build(), muts, aliases)


def idx(name, shape, classes, aliases=(), any_ndim=False):
    """An int64 tensor of class indices in [0, classes)."""
    shape = tuple(shape)

    def build(values=None, dt="int64", sh=shape):
        def make(device):
            a = _rng(2).integers(0, classes, sh) if values is None else np.full(sh, values)
            return md.tensor(a.astype(dt), device=device)
        return make

    muts = [
        ("float labels", build(dt="float32"), RAISE, "float32"),
        ("bool labels", build(dt="bool", values=1), RAISE, "bool"),
        ("label == classes", build(values=classes), RAISE, str(classes)),
        ("negative label", build(values=-3), RAISE, "-3"),
        ("ndim + 1", build(sh=shape + (2,)), EITHER if any_ndim else RAISE, shape + (2,)),
        ("object array", lambda device: np.empty(shape, dtype=object), RAISE,
         ["object", "ndarray"]),
        ("None", lambda device: None, RAISE, "None"),
        ("other device", "other-device", ELSEWHERE, "device"),
    ]
    return Arg(name, build(), muts, aliases)


def integer(name, value, low=1, high=None, optional=False, aliases=(), bool_ok=True):
    """An int argument in [low, high]."""
    muts = [(f"{low - 1}", low - 1, RAISE, str(low - 1)),
            ("-7", -7, RAISE, "-7"),
            ("2.5", 2.5, RAISE, "2.5"),
            ("'3'", "3", RAISE, "'3'"),
            ("True", True, EITHER if bool_ok else RAISE, "True")]
    if high is not None:
        muts.append((f"{high + 1}", high + 1, RAISE, str(high + 1)))
    if not optional:
        muts.append(("None", None, RAISE, "None"))
    return Arg(name, lambda device: value, [(l, _const(v), e, g) for l, v, e, g in muts],
               aliases)


def pair(name, value, low=1, aliases=(), strings=(), none_ok=False):
    """An int or (h, w) pair argument, each entry >= low."""
    muts = [(f"{low - 1}", low - 1, RAISE, str(low - 1)),
            ("-7", -7, RAISE, "-7"),
            ("2.5", 2.5, RAISE, "2.5"),
            ("one-entry tuple", (value,) if not isinstance(value, tuple) else value[:1],
             RAISE, "("),
            ("three-entry tuple", (1, 1, 1), RAISE, "(1, 1, 1)"),
            ("bad entry", (low - 1, 2), RAISE, f"({low - 1}, 2)"),
            ("string", "x", RAISE, "'x'"),
            ("None", None, RAISE, "None")]
    muts = [m for m in muts if m[1] not in strings and not (none_ok and m[1] is None)]
    return Arg(name, lambda device: value, [(l, _const(v), e, g) for l, v, e, g in muts],
               aliases)


def real(name, value, low=None, high=None, optional=False, nan_ok=False, aliases=(),
         low_open=False, high_open=False):
    """A number argument in [low, high] (the bounds that are given; open ones excluded)."""
    muts = [("'x'", "x", RAISE, "'x'")]
    if not nan_ok:
        muts.append(("nan", float("nan"), RAISE, "nan"))
    if low is not None:
        bad = low if low_open else low - 0.5
        muts.append((f"{bad} (below {low})", bad, RAISE, str(bad)))
    if high is not None:
        bad = high if high_open else high + 0.5
        muts.append((f"{bad} (above {high})", bad, RAISE, str(bad)))
    if not optional:
        muts.append(("None", None, RAISE, "None"))
    return Arg(name, lambda device: value, [(l, _const(v), e, g) for l, v, e, g in muts],
               aliases)


def prob(name, value, aliases=()):
    return real(name, value, 0.0, 1.0, aliases=aliases)


def choice(name, value, aliases=()):
    muts = [("unknown string", "bogus", RAISE, "bogus"), ("int", 3, RAISE, "3")]
    return Arg(name, lambda device: value, [(l, _const(v), e, g) for l, v, e, g in muts],
               aliases)


def dim(name, value, ndim, aliases=()):
    muts = [(f"dim {ndim}", ndim, RAISE, str(ndim)),
            (f"dim {-ndim - 1}", -ndim - 1, RAISE, str(-ndim - 1)),
            ("1.5", 1.5, RAISE, "1.5"),
            ("'0'", "0", RAISE, "'0'")]
    return Arg(name, lambda device: value, [(l, _const(v), e, g) for l, v, e, g in muts],
               aliases)


def sizes(name, value, aliases=()):
    """A shape argument such as (2, 3)."""
    muts = [("negative size", (2, -1), RAISE, "-1"),
            ("float size", (2, 1.5), RAISE, "1.5"),
            ("string size", (2, "a"), RAISE, "'a'")]
    return Arg(name, lambda device: value, [(l, _const(v), e, g) for l, v, e, g in muts],
               aliases)


def fixed(name, make):
    """An argument that is not mutated (a model, an optimizer, a callable)."""
    return Arg(name, make if callable(make) and not isinstance(make, type) else
               _const(make), [])


def custom(name, make, mutations, aliases=()):
    return Arg(name, make, mutations, aliases)


def _const(value):
    return lambda device: value


# ---- the cases ----------------------------------------------------------------------------
class Case:
    def __init__(self, key, call, args, ops=None, nan_ok=False):
        self.key, self.call, self.args = key, call, args
        self.ops = tuple(ops) if ops else (key.split(".")[-1],)
        self.nan_ok = nan_ok

    def __repr__(self):
        return self.key


def kw_call(fn):
    return lambda **kw: fn(**kw)


CASES: list = []


def case(key, call, args, ops=None, **kw):
    CASES.append(Case(key, call, args, ops, **kw))


def x_arg(shape=(2, 3), **kw):
    return ten("x", shape, aliases=("input", "operand", "tensor"), float_only=False, **kw)


# minidl top level: creation ------------------------------------------------------------
case("md.tensor", lambda data, dtype, device: md.tensor(data, dtype=dtype, device=device),
     [custom("data", _const([[1.0, 2.0]]),
             [("object array", _const(np.array([object(), 1], dtype=object)), RAISE,
               "object"),
              ("string data", _const(["a", "b"]), RAISE, "<U1"),
              ("ragged list", _const([[1.0], [2.0, 3.0]]), RAISE, "")]),
      custom("dtype", _const("float32"),
             [("unknown dtype", _const("float99"), RAISE, "float99"),
              ("object dtype", _const(object), RAISE, "object")]),
      custom("device", _const("cpu"),
             [("unknown device", _const("gpu"), RAISE, "'gpu'"),
              ("bad index", _const("cuda:x"), RAISE, "'cuda:x'"),
              ("int device", _const(3), RAISE, "3")])], ops=("tensor", "device", "dtype"))
for _name in ("zeros", "ones", "empty", "randn", "rand"):
    case(f"md.{_name}", lambda size, _f=getattr(md, _name): _f(*size),
         [sizes("size", (2, 3), aliases=("shape",))], ops=(_name, "size", "shape"))
case("md.full", lambda size, fill_value: md.full(size, fill_value),
     [sizes("size", (2, 3), aliases=("shape",)),
      custom("fill_value", _const(1.5), [("string", _const("x"), RAISE, "'x'")])],
     ops=("full", "size"))
case("md.eye", lambda n, m: md.eye(n, m),
     [integer("n", 3, 0, aliases=("size",)), integer("m", 2, 0, optional=True, aliases=("size",))],
     ops=("eye", "size"))
case("md.arange", lambda start, end, step: md.arange(start, end, step),
     [real("start", 0), real("end", 5, optional=True, aliases=("start",)),
      custom("step", _const(1), [("0", _const(0), RAISE, "0"),
                                 ("string", _const("x"), RAISE, "'x'")])])
case("md.linspace", lambda start, end, steps: md.linspace(start, end, steps),
     [real("start", 0.0), real("end", 1.0), integer("steps", 5, 0)])
for _name in ("zeros_like", "ones_like", "randn_like", "rand_like"):
    case(f"md.{_name}", lambda t, _f=getattr(md, _name): _f(t),
         [ten("t", (2, 3), float_only=False, aliases=("input", "tensor"))])
case("md.full_like", lambda t, fill_value: md.full_like(t, fill_value),
     [ten("t", (2, 3), float_only=False, aliases=("input", "tensor")),
      custom("fill_value", _const(2.0), [("string", _const("x"), RAISE, "'x'")])],
     ops=("full_like", "full"))
case("md.randint", lambda low, high, size: md.randint(low, high, size),
     [custom("low", _const(0), [("float", _const(0.5), RAISE, "0.5"),
                                ("above high", _const(7), RAISE, "7")], aliases=("high",)),
      integer("high", 5, 1, aliases=("low",)),
      sizes("size", (2, 3))], ops=("randint", "size"))
case("md.manual_seed", lambda seed: md.manual_seed(seed),
     [custom("seed", _const(0), [("float", _const(1.5), RAISE, "float"),
                                 ("string", _const("0"), RAISE, "str"),
                                 ("negative", _const(-1), RAISE, "-1")])])
case("md.set_default_dtype", lambda dtype: md.set_default_dtype(dtype),
     [custom("dtype", _const("float32"), [("int dtype", _const("int64"), RAISE, "int64"),
                                          ("unknown", _const("float99"), RAISE, "float99")])],
     ops=("set_default_dtype", "dtype"))
case("md.set_default_device", lambda device: md.set_default_device(device),
     [custom("device", _const("cpu"), [("unknown", _const("tpu"), RAISE, "'tpu'"),
                                       ("int", _const(0), RAISE, "0")])],
     ops=("set_default_device", "device"))

# minidl top level: math -------------------------------------------------------------------
for _name in ("exp", "log", "sqrt", "abs", "relu", "sigmoid", "tanh", "sign"):
    case(f"md.{_name}", lambda x, _f=getattr(md, _name): _f(x),
         [x_arg(positive=_name in ("log", "sqrt"))])
case("md.clamp", lambda x, min, max: md.clamp(x, min, max),
     [x_arg(), real("min", -0.5, optional=True), real("max", 0.5, -0.5, optional=True,
                                                         aliases=("min",))])
case("md.maximum", lambda a, b: md.maximum(a, b),
     [ten("a", (2, 3), float_only=False, arraylike=True),
      ten("b", (3,), float_only=False, aliases=("a",), arraylike=True)],
     ops=("maximum", "Maximum"))
case("md.minimum", lambda a, b: md.minimum(a, b),
     [ten("a", (2, 3), float_only=False, arraylike=True),
      ten("b", (3,), float_only=False, aliases=("a",), arraylike=True)],
     ops=("minimum", "maximum"))
case("md.matmul", lambda a, b: md.matmul(a, b),
     [ten("a", (2, 3), float_only=False, arraylike=True),
      ten("b", (3, 4), float_only=False, aliases=("a",), arraylike=True)])
case("md.where", lambda condition, a, b: md.where(condition, a, b),
     [custom("condition", lambda device: md.tensor(np.array([[True, False, True]] * 2),
                                                   device=device),
             [("float condition", lambda device: md.ones(2, 3, device=device), RAISE,
               "float32"),
              ("shape (4,)", lambda device: md.tensor(np.ones(4, bool), device=device),
               RAISE, "(4,)")], aliases=("cond",)),
      ten("a", (2, 3), float_only=False, arraylike=True),
      ten("b", (2, 3), float_only=False, arraylike=True, aliases=("a",))])
for _name in ("sum", "mean", "amax", "amin", "logsumexp", "var", "std"):
    case(f"md.{_name}", lambda x, dim, _f=getattr(md, _name): _f(x, dim),
         [x_arg((3, 4)), dim("dim", 1, 2)], ops=(_name, "var") if _name == "std" else None)
for _name in ("max", "min", "argmax", "argmin"):
    case(f"md.{_name}", lambda x, dim, _f=getattr(md, _name): _f(x, dim),
         [x_arg((3, 4)), dim("dim", 1, 2)])
case("md.reshape", lambda x, shape: md.reshape(x, shape),
     [x_arg((2, 3)), custom("shape", _const((3, 2)),
                            [("wrong count", _const((4, 2)), RAISE, "(4, 2)"),
                             ("two -1", _const((-1, -1)), RAISE, "(-1, -1)"),
                             ("float", _const((3, 2.0)), RAISE, "2.0"),
                             ("negative", _const((-3, -2)), RAISE, "(-3, -2)")])])
case("md.permute", lambda x, dims: md.permute(x, *dims),
     [x_arg((2, 3)), custom("dims", _const((1, 0)),
                            [("repeat", _const((0, 0)), RAISE, "(0, 0)"),
                             ("too many", _const((0, 1, 2)), RAISE, "(0, 1, 2)"),
                             ("out of range", _const((0, 5)), RAISE, "5"),
                             ("float", _const((0, 1.0)), RAISE, "1.0")])])
case("md.transpose", lambda x, dim0, dim1: md.transpose(x, dim0, dim1),
     [x_arg((2, 3)), dim("dim0", 0, 2, aliases=("dim",)), dim("dim1", 1, 2, aliases=("dim",))])
case("md.flatten", lambda x, start_dim, end_dim: md.flatten(x, start_dim, end_dim),
     [x_arg((2, 3, 4)), dim("start_dim", 1, 3, aliases=("dim",)),
      dim("end_dim", 2, 3, aliases=("dim",))])
case("md.squeeze", lambda x, dim: md.squeeze(x, dim), [x_arg((2, 1)), dim("dim", 1, 2)])
case("md.unsqueeze", lambda x, dim: md.unsqueeze(x, dim), [x_arg((2, 3)), dim("dim", 1, 3)])
case("md.cat", lambda tensors, dim: md.cat(tensors, dim),
     [custom("tensors", lambda device: [md.ones(2, 3, device=device),
                                        md.zeros(1, 3, device=device)],
             [("mismatched shapes", lambda device: [md.ones(2, 3, device=device),
                                                    md.ones(2, 4, device=device)],
               RAISE, "(2, 4)"),
              ("different ndim", lambda device: [md.ones(2, 3, device=device),
                                                 md.ones(3, device=device)], RAISE, "(3,)"),
              ("empty list", _const([]), RAISE, "empty"),
              ("a tensor, not a list", lambda device: md.ones(2, 3, device=device), RAISE,
               "sequence"),
              ("a list holding an array", lambda device: [md.ones(2, 3, device=device),
                                                          np.ones((2, 3))], RAISE,
               "ndarray")], aliases=("tensor",)),
      dim("dim", 0, 2)])
case("md.stack", lambda tensors, dim: md.stack(tensors, dim),
     [custom("tensors", lambda device: [md.ones(2, 3, device=device),
                                        md.zeros(2, 3, device=device)],
             [("mismatched shapes", lambda device: [md.ones(2, 3, device=device),
                                                    md.ones(1, 3, device=device)],
               RAISE, "(1, 3)"),
              ("empty list", _const([]), RAISE, "empty")], aliases=("tensor",)),
      dim("dim", 0, 3)])
case("md.split", lambda x, split_size, dim: md.split(x, split_size, dim),
     [x_arg((4, 3)), integer("split_size", 2, 1), dim("dim", 0, 2)])
case("md.chunk", lambda x, chunks, dim: md.chunk(x, chunks, dim),
     [x_arg((4, 3)), integer("chunks", 2, 1), dim("dim", 0, 2)])

# nn.functional --------------------------------------------------------------------------
NCHW = (2, 3, 6, 6)
for _name in ("relu", "sigmoid", "tanh", "silu"):
    case(f"F.{_name}", lambda input, _f=getattr(F, _name): _f(input),
         [ten("input", (2, 3), float_only=_name == "silu", aliases=("x",))])
case("F.leaky_relu", lambda input, negative_slope: F.leaky_relu(input, negative_slope),
     [ten("input", (2, 3)), real("negative_slope", 0.01)])
case("F.gelu", lambda input, approximate: F.gelu(input, approximate),
     [ten("input", (2, 3)), choice("approximate", "tanh")])
case("F.hardtanh", lambda input, min_val, max_val: F.hardtanh(input, min_val, max_val),
     [ten("input", (2, 3)), real("min_val", -1.0),
      real("max_val", 1.0, -1.0, aliases=("min_val",))])
for _name in ("softmax", "log_softmax"):
    case(f"F.{_name}", lambda input, dim, _f=getattr(F, _name): _f(input, dim),
         [ten("input", (2, 3)), dim("dim", 1, 2)])
case("F.linear", lambda input, weight, bias: F.linear(input, weight, bias),
     [ten("input", (2, 4), ndims={1, 2, 3}), ten("weight", (3, 4), ndims={2}),
      ten("bias", (3,), ndims={1}, optional=True)])
case("F.conv2d", lambda input, weight, bias, stride, padding, dilation, groups:
     F.conv2d(input, weight, bias, stride, padding, dilation, groups),
     [ten("input", NCHW, ndims={4}), ten("weight", (4, 3, 3, 3), ndims={4}),
      ten("bias", (4,), ndims={1}, optional=True), pair("stride", 1),
      pair("padding", 1, 0, strings=("x",)), pair("dilation", 1), integer("groups", 1)])
case("F.conv_transpose2d", lambda input, weight, bias, stride, padding, output_padding,
     groups, dilation: F.conv_transpose2d(input, weight, bias, stride, padding,
                                          output_padding, groups, dilation),
     [ten("input", NCHW, ndims={4}), ten("weight", (3, 2, 3, 3), ndims={4}),
      ten("bias", (2,), ndims={1}, optional=True), pair("stride", 2),
      pair("padding", 1, 0), pair("output_padding", 1, 0), integer("groups", 1),
      pair("dilation", 1)])
case("F.max_pool2d", lambda input, kernel_size, stride, padding, dilation:
     F.max_pool2d(input, kernel_size, stride, padding, dilation),
     [ten("input", NCHW, ndims={4}), pair("kernel_size", 2), pair("stride", 2, none_ok=True),
      pair("padding", 1, 0), pair("dilation", 1)])
case("F.avg_pool2d", lambda input, kernel_size, stride, padding, divisor_override:
     F.avg_pool2d(input, kernel_size, stride, padding, divisor_override=divisor_override),
     [ten("input", NCHW, ndims={4}), pair("kernel_size", 3), pair("stride", 2, none_ok=True),
      pair("padding", 1, 0), integer("divisor_override", 4, optional=True)])
for _name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
    case(f"F.{_name}", lambda input, output_size, _f=getattr(F, _name): _f(input, output_size),
         [ten("input", NCHW, ndims={4}), pair("output_size", (2, 3), strings=(None,))])
case("F.batch_norm", lambda input, running_mean, running_var, weight, bias, training,
     momentum, eps: F.batch_norm(input, running_mean, running_var, weight, bias, training,
                                 momentum, eps),
     [ten("input", NCHW, ndims={2, 3, 4, 5}),
      ten("running_mean", (3,), ndims={1}, optional=True, grad=False),
      ten("running_var", (3,), ndims={1}, optional=True, grad=False, positive=True),
      ten("weight", (3,), ndims={1}, optional=True), ten("bias", (3,), ndims={1},
                                                         optional=True),
      fixed("training", True), prob("momentum", 0.1), real("eps", 1e-5, 0)])
case("F.layer_norm", lambda input, normalized_shape, weight, bias, eps:
     F.layer_norm(input, normalized_shape, weight, bias, eps),
     [ten("input", (2, 3, 4)),
      custom("normalized_shape", _const((3, 4)),
             [("mismatch", _const((4, 3)), RAISE, "(4, 3)"), ("zero", _const(0), RAISE, "0"),
              ("empty", _const(()), RAISE, "()"), ("float", _const((3, 4.0)), RAISE, "4.0")]),
      ten("weight", (3, 4), optional=True, ndims={2}),
      ten("bias", (3, 4), optional=True, ndims={2}), real("eps", 1e-5, 0)])
case("F.group_norm", lambda input, num_groups, weight, bias, eps:
     F.group_norm(input, num_groups, weight, bias, eps),
     [ten("input", (2, 4, 3), ndims={2, 3, 4, 5}), integer("num_groups", 2, 1, 4),
      ten("weight", (4,), optional=True, ndims={1}),
      ten("bias", (4,), optional=True, ndims={1}), real("eps", 1e-5, 0)])
case("F.instance_norm", lambda input, weight, bias, eps: F.instance_norm(input, weight, bias,
                                                                         eps),
     [ten("input", (2, 3, 4), ndims={3, 4, 5}), ten("weight", (3,), optional=True, ndims={1}),
      ten("bias", (3,), optional=True, ndims={1}), real("eps", 1e-5, 0)],
     ops=("instance_norm", "group_norm"))
for _name in ("dropout", "dropout2d", "drop_path"):
    case(f"F.{_name}", lambda input, p, _f=getattr(F, _name): _f(input, p, True),
         [ten("input", NCHW, ndims={4} if _name == "dropout2d" else None), prob("p", 0.3)])
case("F.cross_entropy", lambda input, target, weight, ignore_index, reduction,
     label_smoothing: F.cross_entropy(input, target, weight, ignore_index, reduction,
                                      label_smoothing),
     [ten("input", (4, 5), ndims={1, 2, 3, 4}), idx("target", (4,), 5),
      ten("weight", (5,), optional=True, ndims={1}, grad=False, positive=True),
      custom("ignore_index", _const(-100), [("float", _const(1.5), RAISE, "1.5"),
                                            ("string", _const("x"), RAISE, "'x'")]),
      choice("reduction", "mean"), prob("label_smoothing", 0.1)])
case("F.nll_loss", lambda input, target, weight, reduction:
     F.nll_loss(input, target, weight, reduction=reduction),
     [ten("input", (4, 5), ndims={1, 2, 3, 4}), idx("target", (4,), 5),
      ten("weight", (5,), optional=True, ndims={1}, grad=False, positive=True),
      choice("reduction", "sum")])
for _name in ("mse_loss", "l1_loss"):
    case(f"F.{_name}", lambda input, target, reduction, _f=getattr(F, _name):
         _f(input, target, reduction),
         [ten("input", (4, 3)), ten("target", (4, 3), ndims={2}), choice("reduction", "mean")])
case("F.binary_cross_entropy_with_logits", lambda input, target, weight, pos_weight,
     reduction: F.binary_cross_entropy_with_logits(input, target, weight, reduction,
                                                   pos_weight),
     [ten("input", (4, 3)), ten("target", (4, 3), ndims={2}),
      ten("weight", (3,), optional=True, ndims={0, 1, 2}, grad=False, float_only=False),
      ten("pos_weight", (3,), optional=True, ndims={0, 1, 2}, grad=False, positive=True,
          float_only=False),
      choice("reduction", "mean")])
case("F.one_hot", lambda tensor, num_classes: F.one_hot(tensor, num_classes),
     [idx("tensor", (4,), 5, any_ndim=True, aliases=("class",)), integer("num_classes", 5, 1)])
case("F.pad", lambda x, pad, mode, value: F.pad(x, pad, mode, value),
     [x_arg((2, 3, 4)),
      custom("pad", _const((1, 2)), [("odd length", _const((1, 2, 3)), RAISE, "(1, 2, 3)"),
                                     ("negative", _const((1, -1)), RAISE, "-1"),
                                     ("too long", _const((1,) * 8), RAISE, "(1, 1"),
                                     ("float", _const((1, 2.0)), RAISE, "2.0"),
                                     ("not a sequence", _const(3), RAISE, "3")]),
      choice("mode", "reflect"), real("value", 0.0)])
case("F.interpolate", lambda input, size, mode: F.interpolate(input, size, mode=mode),
     [ten("input", NCHW, ndims={4}), pair("size", (4, 5)), choice("mode", "bilinear")])
case("F.interpolate(scale_factor)", lambda input, scale_factor:
     F.interpolate(input, scale_factor=scale_factor),
     [ten("input", NCHW, ndims={4}), real("scale_factor", 2.0, 0, low_open=True)],
     ops=("interpolate",))

# nn layers -----------------------------------------------------------------------------
case("nn.Linear", lambda in_features, out_features, input:
     nn.Linear(in_features, out_features)(input),
     [integer("in_features", 4, 0, aliases=("features",)), integer("out_features", 3, 0),
      ten("input", (2, 4))],
     ops=("Linear", "linear"))
case("nn.Conv2d", lambda in_channels, out_channels, kernel_size, stride, padding, groups,
     padding_mode, input: nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                    groups=groups, padding_mode=padding_mode)(input),
     [integer("in_channels", 3), integer("out_channels", 6), pair("kernel_size", 3),
      pair("stride", 1), pair("padding", 1, 0, strings=("x",)), integer("groups", 3),
      choice("padding_mode", "reflect"), ten("input", NCHW, ndims={4})],
     ops=("Conv2d", "conv2d", "pad"))
case("nn.ConvTranspose2d", lambda in_channels, out_channels, kernel_size, stride, input:
     nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride)(input),
     [integer("in_channels", 3), integer("out_channels", 2), pair("kernel_size", 3),
      pair("stride", 2), ten("input", NCHW, ndims={4})],
     ops=("ConvTranspose2d", "conv_transpose2d"))
case("nn.MaxPool2d", lambda kernel_size, stride, input: nn.MaxPool2d(kernel_size, stride)(input),
     [pair("kernel_size", 2), pair("stride", 2, none_ok=True), ten("input", NCHW, ndims={4})],
     ops=("MaxPool2d", "max_pool2d"))
case("nn.AvgPool2d", lambda kernel_size, padding, input:
     nn.AvgPool2d(kernel_size, padding=padding)(input),
     [pair("kernel_size", 2), pair("padding", 1, 0), ten("input", NCHW, ndims={4})],
     ops=("AvgPool2d", "avg_pool2d"))
for _name in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
    case(f"nn.{_name}", lambda output_size, input, _c=getattr(nn, _name):
         _c(output_size)(input),
         [pair("output_size", 2, strings=(None,)), ten("input", NCHW, ndims={4})],
         ops=(_name, re.sub(r"(?<!^)(?=[A-Z])", "_", _name).lower()
              .replace("2_d", "2d")))
for _name in ("BatchNorm1d", "BatchNorm2d"):
    case(f"nn.{_name}", lambda num_features, eps, momentum, input, _c=getattr(nn, _name):
         _c(num_features, eps, momentum)(input),
         [integer("num_features", 3), real("eps", 1e-5, 0),
          real("momentum", 0.1, 0, 1, optional=True),
          ten("input", (4, 3) if _name == "BatchNorm1d" else NCHW,
              ndims={2, 3} if _name == "BatchNorm1d" else {4})],
         ops=(_name, "batch_norm"))
case("nn.LayerNorm", lambda normalized_shape, input: nn.LayerNorm(normalized_shape)(input),
     [custom("normalized_shape", _const(4), [("zero", _const(0), RAISE, "0"),
                                             ("negative", _const(-2), RAISE, "-2"),
                                             ("string", _const("x"), RAISE, "'x'")]),
      ten("input", (2, 3, 4))], ops=("LayerNorm", "layer_norm"))
case("nn.GroupNorm", lambda num_groups, num_channels, input:
     nn.GroupNorm(num_groups, num_channels)(input),
     [integer("num_groups", 2), integer("num_channels", 4), ten("input", (2, 4, 3, 3))],
     ops=("GroupNorm", "group_norm"))
case("nn.InstanceNorm2d", lambda num_features, input: nn.InstanceNorm2d(num_features)(input),
     [integer("num_features", 3), ten("input", NCHW, ndims={3, 4})],
     ops=("InstanceNorm2d", "instance_norm", "group_norm"))
for _name, _fn in (("Dropout", "dropout"), ("Dropout2d", "dropout2d"),
                   ("DropPath", "drop_path")):
    case(f"nn.{_name}", lambda p, input, _c=getattr(nn, _name): _c(p)(input),
         [prob("p", 0.2), ten("input", NCHW, ndims={4} if _name == "Dropout2d" else None)],
         ops=(_name, _fn))
for _name in ("ReLU", "Sigmoid", "Tanh", "SiLU", "ReLU6", "GELU", "Hardtanh", "LeakyReLU"):
    case(f"nn.{_name}", lambda input, _c=getattr(nn, _name): _c()(input),
         [ten("input", (2, 3), float_only=_name not in ("ReLU", "Sigmoid", "Tanh"))],
         ops=(_name, _name.lower(), {"LeakyReLU": "leaky_relu", "ReLU6": "hardtanh"}.get(
             _name, _name.lower())))
case("nn.LeakyReLU(negative_slope)", lambda negative_slope, input:
     nn.LeakyReLU(negative_slope)(input), [real("negative_slope", 0.1), ten("input", (2, 3))],
     ops=("LeakyReLU", "leaky_relu"))
case("nn.GELU(approximate)", lambda approximate, input: nn.GELU(approximate)(input),
     [choice("approximate", "tanh"), ten("input", (2, 3))], ops=("GELU", "gelu"))
case("nn.Hardtanh(min_val, max_val)", lambda min_val, max_val, input:
     nn.Hardtanh(min_val, max_val)(input),
     [real("min_val", -2.0), real("max_val", 2.0, aliases=("min_val",)), ten("input", (2, 3))],
     ops=("Hardtanh", "hardtanh"))
for _name in ("Softmax", "LogSoftmax"):
    case(f"nn.{_name}", lambda dim, input, _c=getattr(nn, _name): _c(dim)(input),
         [dim("dim", 1, 2), ten("input", (2, 3))],
         ops=(_name, "softmax" if _name == "Softmax" else "log_softmax"))
case("nn.Flatten", lambda start_dim, end_dim, input: nn.Flatten(start_dim, end_dim)(input),
     [dim("start_dim", 1, 4, aliases=("dim",)), dim("end_dim", -1, 4, aliases=("dim",)),
      ten("input", NCHW, float_only=False)], ops=("Flatten", "flatten"))
case("nn.Identity", lambda input: nn.Identity()(input),
     [custom("input", lambda device: md.ones(2, device=device), [])])
for _name in ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"):
    case(f"nn.{_name}", lambda scale_factor, input, _c=getattr(nn, _name):
         _c(scale_factor=scale_factor)(input),
         [real("scale_factor", 2.0, 0, low_open=True), ten("input", NCHW, ndims={4})],
         ops=(_name, "interpolate"))
case("nn.CrossEntropyLoss", lambda reduction, label_smoothing, input, target:
     nn.CrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing)(input, target),
     [choice("reduction", "sum"), prob("label_smoothing", 0.0), ten("input", (4, 5)),
      idx("target", (4,), 5)], ops=("CrossEntropyLoss", "cross_entropy"))
case("nn.NLLLoss", lambda input, target: nn.NLLLoss()(input, target),
     [ten("input", (4, 5)), idx("target", (4,), 5)], ops=("NLLLoss", "nll_loss"))
for _name, _fn in (("MSELoss", "mse_loss"), ("L1Loss", "l1_loss"),
                   ("BCEWithLogitsLoss", "binary_cross_entropy_with_logits")):
    case(f"nn.{_name}", lambda reduction, input, target, _c=getattr(nn, _name):
         _c(reduction=reduction)(input, target),
         [choice("reduction", "mean"), ten("input", (4, 3)), ten("target", (4, 3), ndims={2})],
         ops=(_name, _fn))
case("nn.Sequential", lambda modules: nn.Sequential(*modules),
     [custom("modules", _const([nn.ReLU()]),
             [("a function", _const([F.relu]), RAISE, "function"),
              ("a string", _const(["relu"]), RAISE, "str")], aliases=("module", "args"))])
case("nn.ModuleList", lambda modules: nn.ModuleList(modules),
     [custom("modules", _const([nn.ReLU()]),
             [("a function", _const([F.relu]), RAISE, "function"),
              ("a tensor", _const(md.ones(2)), RAISE, "Tensor")], aliases=("module",))])
case("nn.ModuleDict", lambda modules: nn.ModuleDict(modules),
     [custom("modules", _const({"a": nn.ReLU()}),
             [("a function", _const({"a": F.relu}), RAISE, "function"),
              ("an int key", _const({1: nn.ReLU()}), RAISE, "1")],
             aliases=("module", "key"))])
case("nn.Parameter", lambda data: nn.Parameter(data),
     [custom("data", lambda device: md.ones(2, device=device),
             [("a string", _const("x"), RAISE, ["str", "<U1"]),
              ("an int tensor", _const(md.tensor([1, 2])), RAISE, "int64")],
             aliases=("tensor",))], ops=("Parameter", "tensor"))


def _small_net():
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


case("Module.load_state_dict", lambda state_dict: _small_net().load_state_dict(state_dict),
     [custom("state_dict", lambda device: _small_net().state_dict(),
             [("missing key", lambda device: {k: v for k, v in _small_net().state_dict()
                                              .items() if k != "0.bias"}, RAISE, "0.bias"),
              ("unexpected key", lambda device: dict(_small_net().state_dict(), extra=md.ones(1)),
               RAISE, "extra"),
              ("wrong shape", lambda device: dict(_small_net().state_dict(),
                                                  **{"0.weight": md.ones(4, 3)}), RAISE,
               "(4, 3)"),
              ("not a dict", _const([1, 2]), RAISE, "list")])],
     ops=("load_state_dict", "state_dict"))

# nn.init -------------------------------------------------------------------------------
for _name in ("zeros_", "ones_", "xavier_uniform_", "xavier_normal_", "orthogonal_"):
    case(f"init.{_name}", lambda tensor, _f=getattr(init, _name): _f(tensor),
         [ten("tensor", (4, 3), grad=False,
              ndims=None if _name in ("zeros_", "ones_") else {2, 3, 4, 5})],
         ops=(_name, "constant_"))
case("init.constant_", lambda tensor, val: init.constant_(tensor, val),
     [ten("tensor", (4, 3), grad=False), real("val", 0.5)])
case("init.uniform_", lambda tensor, a, b: init.uniform_(tensor, a, b),
     [ten("tensor", (4, 3), grad=False), real("a", -1.0), real("b", 1.0, -1.0, aliases=("a",))])
case("init.normal_", lambda tensor, mean, std: init.normal_(tensor, mean, std),
     [ten("tensor", (4, 3), grad=False), real("mean", 0.0), real("std", 1.0, 0)])
case("init.trunc_normal_", lambda tensor, std, a, b: init.trunc_normal_(tensor, 0.0, std, a, b),
     [ten("tensor", (4, 3), grad=False), real("std", 1.0, 0), real("a", -2.0),
      real("b", 2.0, -2.0, aliases=("a",))])
for _name in ("kaiming_uniform_", "kaiming_normal_"):
    case(f"init.{_name}", lambda tensor, a, mode, nonlinearity, _f=getattr(init, _name):
         _f(tensor, a, mode, nonlinearity),
         [ten("tensor", (4, 3, 3, 3), grad=False, ndims={2, 3, 4, 5}), real("a", 0.0),
          choice("mode", "fan_out"), choice("nonlinearity", "relu")],
         ops=(_name, "kaiming", "calculate_gain"))
case("init.calculate_gain", lambda nonlinearity, param: init.calculate_gain(nonlinearity, param),
     [choice("nonlinearity", "leaky_relu"), real("param", 0.2, optional=True)])
case("init.lsuv_", lambda model, batch: init.lsuv_(model, batch),
     [fixed("model", lambda device: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(),
                                                   nn.Conv2d(4, 4, 3)).to(device)),
      ten("batch", (8, 3, 7, 7), ndims={4}, grad=False, aliases=("input",))],
     ops=("lsuv_", "conv2d"))


# optim -----------------------------------------------------------------------------------
def _params(device):
    return [md.randn(3, 2, device=device, requires_grad=True),
            md.randn(2, device=device, requires_grad=True)]


_PARAMS = custom("params", _params,
                 [("empty list", _const([]), RAISE, "empty"),
                  ("int tensor", lambda device: [md.tensor([1, 2], device=device)], RAISE,
                   "int64"),
                  ("single tensor", lambda device: md.ones(2, device=device,
                                                           requires_grad=True), RAISE,
                   "single Tensor"),
                  ("a number", _const(3), RAISE, "int")], aliases=("parameter", "param"))
case("optim.SGD", lambda params, lr, momentum, weight_decay, nesterov:
     optim.SGD(params, lr, momentum, weight_decay=weight_decay, nesterov=nesterov),
     [_PARAMS, real("lr", 0.1, 0), real("momentum", 0.9, 0), real("weight_decay", 1e-4, 0),
      fixed("nesterov", True)])
for _name in ("Adam", "AdamW"):
    case(f"optim.{_name}", lambda params, lr, betas, eps, weight_decay, _c=getattr(optim, _name):
         _c(params, lr, betas, eps, weight_decay),
         [_PARAMS, real("lr", 1e-3, 0),
          custom("betas", _const((0.9, 0.999)),
                 [("beta1 = 1", _const((1.0, 0.999)), RAISE, "1.0"),
                  ("negative", _const((-0.1, 0.9)), RAISE, "-0.1"),
                  ("one entry", _const((0.9,)), RAISE, "(0.9,)"),
                  ("a number", _const(0.9), RAISE, "0.9")]),
          real("eps", 1e-8, 0), real("weight_decay", 0.01, 0)])
case("optim.RMSprop", lambda params, lr, alpha, eps, momentum:
     optim.RMSprop(params, lr, alpha, eps, momentum=momentum),
     [_PARAMS, real("lr", 1e-2, 0), real("alpha", 0.99, 0), real("eps", 1e-8, 0),
      real("momentum", 0.0, 0)])


def _opt(device):
    return optim.SGD(_params(device), lr=0.1, momentum=0.9)


_OPTIMIZER = custom("optimizer", _opt, [("not an optimizer", _const("sgd"), RAISE, "str")])
case("sched.StepLR", lambda optimizer, step_size, gamma: sched.StepLR(optimizer, step_size, gamma),
     [_OPTIMIZER, integer("step_size", 3), real("gamma", 0.1, 0)])
case("sched.MultiStepLR", lambda optimizer, milestones: sched.MultiStepLR(optimizer, milestones),
     [_OPTIMIZER, custom("milestones", _const([2, 5]),
                         [("decreasing", _const([5, 2]), EITHER, "[5, 2]"),
                          ("negative", _const([-1, 2]), RAISE, "-1"),
                          ("floats", _const([1.5]), RAISE, "1.5")])])
case("sched.CosineAnnealingLR", lambda optimizer, T_max, eta_min:
     sched.CosineAnnealingLR(optimizer, T_max, eta_min),
     [_OPTIMIZER, integer("T_max", 10), real("eta_min", 0.0, 0)])
case("sched.OneCycleLR", lambda optimizer, max_lr, total_steps, pct_start:
     sched.OneCycleLR(optimizer, max_lr, total_steps, pct_start=pct_start),
     [_OPTIMIZER, real("max_lr", 0.5, 0), integer("total_steps", 20), prob("pct_start", 0.3)])
for _name in ("LinearWarmup", "LinearLR"):
    case(f"sched.{_name}", lambda optimizer, start_factor, total_iters, _c=getattr(sched, _name):
         _c(optimizer, start_factor, 1.0, total_iters),
         [_OPTIMIZER, real("start_factor", 0.1, 0, 1, low_open=True),
          integer("total_iters", 5)], ops=(_name, "LinearLR"))


# data ------------------------------------------------------------------------------------
def _dataset(device):
    return data.TensorDataset(np.zeros((10, 1, 4, 4), np.float32), np.arange(10) % 3)


case("data.TensorDataset", lambda arrays: data.TensorDataset(*arrays),
     [custom("arrays", _const([np.zeros((4, 2)), np.zeros(4)]),
             [("different lengths", _const([np.zeros((4, 2)), np.zeros(3)]), RAISE, "3"),
              ("0-d array", _const([np.zeros(())]), RAISE, ["()", "0-d"]),
              ("no arrays", _const([]), RAISE, ["no ", "at least one"])],
             aliases=("array", "tensors", "argument"))])
case("data.DataLoader", lambda dataset, batch_size, sampler:
     next(iter(data.DataLoader(dataset, batch_size, sampler=sampler))),
     [custom("dataset", _dataset, [("a number", _const(3), RAISE, "int")]),
      integer("batch_size", 4), fixed("sampler", None)])
case("data.DataLoader(shuffle+sampler)", lambda dataset, shuffle, sampler:
     data.DataLoader(dataset, 2, shuffle=shuffle, sampler=sampler),
     [fixed("dataset", _dataset), fixed("shuffle", False),
      custom("sampler", _const(None),
             [("with shuffle", _const([0, 1, 2]), EITHER, ""),
              ("a number", _const(3), RAISE, "int")])], ops=("DataLoader",))
case("data.WeightedRandomSampler", lambda weights, num_samples:
     list(data.WeightedRandomSampler(weights, num_samples)),
     [custom("weights", _const([0.1, 0.9, 0.5]),
             [("negative", _const([0.1, -1.0]), RAISE, "-1"),
              ("all zero", _const([0.0, 0.0]), RAISE, "0"),
              ("nan", _const([0.1, float("nan")]), RAISE, "nan"),
              ("empty", _const([]), RAISE, "empty"),
              ("2-D", _const([[0.1, 0.2]]), RAISE, "(1, 2)")]),
      integer("num_samples", 5)])
case("data.random_split", lambda dataset, lengths: data.random_split(dataset, lengths, seed=0),
     [fixed("dataset", _dataset),
      custom("lengths", _const([6, 4]), [("wrong sum", _const([6, 5]), RAISE, "11"),
                                         ("negative", _const([12, -2]), RAISE, "-2"),
                                         ("fractions > 1", _const([0.9, 0.9]), RAISE,
                                          "0.9")])])
case("data.Subset", lambda dataset, indices: data.Subset(dataset, indices)[0],
     [fixed("dataset", _dataset),
      custom("indices", _const([0, 2]), [("out of range", _const([0, 10]), RAISE_INDEX, "10"),
                                         ("float", _const([0.5]), RAISE, "float")])])


def _images(shape=(2, 3, 8, 8)):
    return custom("x", lambda device: _float_array(shape).clip(-1, 1) * 0.5 + 0.5,
                  [("2-D array", _const(np.zeros((8, 8), np.float32)), RAISE, "(8, 8)"),
                   ("5-D array", _const(np.zeros((1, 2, 3, 8, 8), np.float32)), RAISE,
                    "(1, 2, 3, 8, 8)"),
                   ("object array", _const(np.empty((3, 8, 8), object)), RAISE, "object"),
                   ("a string", _const("img.png"), RAISE, "str")],
                  aliases=("input", "image", "batch"))


_TRANSFORMS = {
    "Normalize": (lambda std: T.Normalize((0.5, 0.5, 0.5), std),
                  [custom("std", _const((0.2, 0.2, 0.2)),
                          [("zero std", _const((0.2, 0.0, 0.2)), RAISE, "0"),
                           ("wrong length", _const((0.2, 0.2)), RAISE, "2")])]),
    "RandomCrop": (lambda size, padding: T.RandomCrop(size, padding),
                   [pair("size", 6), custom("padding", _const(1),
                                            [("negative", _const(-1), RAISE, "-1"),
                                             ("bad entry", _const((-1, 2)), RAISE, "-1"),
                                             ("string", _const("x"), RAISE, "'x'")])]),
    "CenterCrop": (lambda size: T.CenterCrop(size), [pair("size", 6)]),
    "Resize": (lambda size: T.Resize(size), [pair("size", 5)]),
    "RandomResizedCrop": (lambda size, scale: T.RandomResizedCrop(size, scale),
                          [pair("size", 5),
                           custom("scale", _const((0.5, 1.0)),
                                  [("reversed", _const((1.0, 0.5)), RAISE, "(1.0, 0.5)"),
                                   ("negative", _const((-0.5, 1.0)), RAISE, "-0.5")])]),
    "RandomHorizontalFlip": (lambda p: T.RandomHorizontalFlip(p), [prob("p", 0.5)]),
    "RandomVerticalFlip": (lambda p: T.RandomVerticalFlip(p), [prob("p", 0.5)]),
    "RandomRotation": (lambda degrees: T.RandomRotation(degrees),
                       [custom("degrees", _const(15.0),
                               [("negative", _const(-5.0), RAISE, "-5"),
                                ("reversed", _const((10, -10)), RAISE, "-10")])]),
    "RandomAffine": (lambda degrees, translate: T.RandomAffine(degrees, translate),
                     [real("degrees", 10.0, 0),
                      custom("translate", _const((0.1, 0.1)),
                             [("above 1", _const((1.5, 0.1)), RAISE, "1.5"),
                              ("one entry", _const((0.1,)), RAISE, "(0.1,)")])]),
    "RandomPerspective": (lambda distortion_scale, p: T.RandomPerspective(distortion_scale, p),
                          [prob("distortion_scale", 0.3), prob("p", 0.5)]),
    "ColorJitter": (lambda brightness, hue: T.ColorJitter(brightness, 0.1, 0.1, hue),
                    [real("brightness", 0.2, 0),
                     real("hue", 0.1, 0, 0.5)]),
    "GaussianNoise": (lambda std, p: T.GaussianNoise(std, p=p),
                      [real("std", 0.1, 0), prob("p", 0.5)]),
    "GaussianBlur": (lambda kernel_size: T.GaussianBlur(kernel_size),
                     [custom("kernel_size", _const(3),
                             [("even", _const(4), RAISE, "4"), ("zero", _const(0), RAISE, "0"),
                              ("negative", _const(-3), RAISE, "-3")])]),
    "Sharpen": (lambda sharpness, p: T.Sharpen(sharpness, p), [real("sharpness", 2.0, 0),
                                                               prob("p", 1.0)]),
    "RandomErasing": (lambda p, scale: T.RandomErasing(p, scale),
                      [prob("p", 0.5),
                       custom("scale", _const((0.02, 0.33)),
                              [("reversed", _const((0.5, 0.1)), RAISE, "(0.5, 0.1)"),
                               # value_range clips a range to its bounds, by design
                               ("above 1", _const((0.5, 1.5)), EITHER, "1.5")])]),
    "Cutout": (lambda size, p: T.Cutout(size, p), [integer("size", 3), prob("p", 1.0)]),
    "AutoContrast": (lambda p: T.AutoContrast(p), [prob("p", 1.0)]),
    "Equalize": (lambda p: T.Equalize(p), [prob("p", 1.0)]),
    "Solarize": (lambda threshold, p: T.Solarize(threshold, p), [real("threshold", 0.5),
                                                                 prob("p", 1.0)]),
    "Grayscale": (lambda num_output_channels: T.Grayscale(num_output_channels),
                  [custom("num_output_channels", _const(3),
                          [("2", _const(2), RAISE, "2"), ("0", _const(0), RAISE, "0")])]),
    "RandomGrayscale": (lambda p: T.RandomGrayscale(p), [prob("p", 0.2)]),
    "PCALighting": (lambda alphastd: T.PCALighting(alphastd), [real("alphastd", 0.1, 0)]),
    "ToFloat": (lambda dtype: T.ToFloat(dtype),
                [custom("dtype", _const("float32"), [("int dtype", _const("int32"), RAISE,
                                                      "int32")])]),
}
for _name, (_make, _args) in _TRANSFORMS.items():
    case(f"T.{_name}", lambda x, _m=_make, **kw: _m(**kw)(x, generator=np.random.default_rng(0)),
         _args + [_images()], ops=(_name,))
case("T.Compose", lambda transforms, x: T.Compose(transforms)(x),
     [custom("transforms", _const([T.RandomHorizontalFlip()]),
             [("a string", _const(["flip"]), RAISE, "str"), ("not a list", _const(3),
                                                             RAISE, "int")]),
      _images()], ops=("Compose",))
for _name in ("MixUp", "CutMix"):
    case(f"T.{_name}", lambda alpha, num_classes, labels, _c=getattr(T, _name):
         _c(alpha, num_classes)(np.ones((4, 3, 8, 8), np.float32), labels,
                                generator=np.random.default_rng(0)),
         [real("alpha", 1.0, 0, low_open=True), integer("num_classes", 5),
          custom("labels", _const(np.array([0, 1, 4, 2])),
                 [("out of range", _const(np.array([0, 1, 5, 2])), RAISE, "5"),
                  ("wrong length", _const(np.array([0, 1])), RAISE, "2"),
                  ("float labels", _const(np.array([0.5, 1, 2, 3])), RAISE, "float")],
                 aliases=("targets", "y"))], ops=(_name,))


# utils -------------------------------------------------------------------------------------
case("utils.save", lambda obj, path: utils.save(obj, path),
     [custom("obj", _const({"w": np.ones(3)}),
             [("a function", _const({"f": print}), RAISE, "builtin_function_or_method"),
              ("an object array", _const({"a": np.empty(2, object)}), RAISE, "object"),
              ("a set", _const({"s": {1, 2}}), RAISE, "set"),
              ("a tuple key", _const({(1, 2): 3}), RAISE, "(1, 2)")], aliases=("key",)),
      custom("path", lambda device: _tmpdir() + "/ok.npz",
             [("a folder", lambda device: _tmpdir(), RAISE, "folder"),
              ("a number", _const(3), RAISE, "int")])], ops=("save",))
case("utils.load", lambda path, map_location: utils.load(path, map_location),
     [custom("path", lambda device: _saved_checkpoint(),
             [("a folder", lambda device: _tmpdir(), RAISE, "folder"),
              ("a text file", lambda device: _write("notes.txt", b"hello"), RAISE,
               "not a minidl checkpoint"),
              ("an empty file", lambda device: _write("empty.npz", b""), RAISE, "empty"),
              ("a number", _const(3.5), RAISE, "float")], aliases=("file", "checkpoint")),
      custom("map_location", _const(None), [("unknown device", _const("tpu"), RAISE,
                                             "'tpu'")])], ops=("load", "device"))


_DEFAULT = "build it"


def _fit(model, loss_fn, optimizer, train_loader, epochs):
    # A fresh model and optimizer per call (on the default device), unless mutated.
    if model == _DEFAULT:
        model = nn.Sequential(nn.Linear(4, 2))
    if optimizer == _DEFAULT:
        optimizer = optim.SGD((model if isinstance(model, nn.Module) else
                               nn.Linear(4, 2)).parameters(), lr=0.01)
    return utils.fit(model, loss_fn, optimizer, train_loader, epochs=epochs, progress=False,
                     verbose=False)


def _fit_data(device):
    x = md.randn(8, 4, device=device)
    y = md.tensor(np.arange(8) % 2, device=device)
    return [(x, y)]


case("utils.fit", _fit,
     [custom("model", _const(_DEFAULT), [("a function", _const(F.relu), RAISE,
                                          "function")]),
      custom("loss_fn", _const(nn.CrossEntropyLoss()), [("a string", _const("ce"), RAISE,
                                                         "str")]),
      custom("optimizer", _const(_DEFAULT), [("a string", _const("sgd"), RAISE, "str")]),
      custom("train_loader", _fit_data,
             [("labels out of range", lambda device: [(md.randn(8, 4, device=device),
                                                       md.tensor(np.arange(8), device=device))],
               RAISE, "2"),
              ("wrong feature count", lambda device: [(md.randn(8, 5, device=device),
                                                       md.tensor(np.arange(8) % 2,
                                                                 device=device))],
               RAISE, "5")], aliases=("target", "input")),
      integer("epochs", 1, 0)], ops=("fit", "cross_entropy", "linear"))
case("utils.summary", lambda model, input_shape: summary(model, input_shape, file=io.StringIO()),
     [fixed("model", lambda device: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())),
      custom("input_shape", _const((3, 8, 8)),
             [("wrong channels", _const((2, 8, 8)), RAISE, "2"),
              ("negative", _const((3, -8, 8)), RAISE, "-8"),
              ("a string", _const("3x8x8"), RAISE, ["str", "3x8x8"])],
             aliases=("input",))],
     ops=("summary", "conv2d"))


# models ------------------------------------------------------------------------------------
_MODEL_INPUT = {"lenet5": (2, 1, 32, 32), "cifar_resnet20": (2, 3, 16, 16),
                "squeezenet1_1": (1, 3, 48, 48), "unet": (1, 1, 16, 16),
                "conv_autoencoder": (1, 1, 16, 16)}
_MODEL_CLASS = {"lenet5": "LeNet5", "cifar_resnet20": "CifarResNet",
                "squeezenet1_1": "SqueezeNet", "unet": "UNet",
                "conv_autoencoder": "ConvAutoencoder"}
_MODEL_KW = {"unet": dict(depth=2, base_width=4), "conv_autoencoder": dict(base_width=4)}


def _model_case(name):
    build = getattr(models, name)
    params = inspect.signature(build).parameters
    args = []
    if "num_classes" in params:
        args.append(integer("num_classes", 3))
    args.append(integer("in_channels", _MODEL_INPUT.get(name, (1, 3))[1]))
    kw = _MODEL_KW.get(name, {})
    if name in _MODEL_INPUT:
        def call(_b=build, _kw=kw, **a):
            x = a.pop("x")
            model = _b(**a, **_kw)
            model.eval()
            return model(x)
        args.append(ten("x", _MODEL_INPUT[name], ndims={4}, grad=False,
                        aliases=("input",)))
    else:
        def call(_b=build, _kw=kw, **a):
            return _b(**a, **_kw)
    return Case(f"models.{name}", call, args, ops=(name, _MODEL_CLASS[name], "conv2d"))


# Constructors of the big models are only run with arguments that must fail before anything
# is allocated (building a ResNet-152 takes seconds); see test_every_model_builder_is_listed.
MODEL_CASES = [_model_case(n) for n in _MODEL_INPUT]
CASES.extend(MODEL_CASES)


# ---- running a case -------------------------------------------------------------------------
_TMP = []


def _tmpdir():
    return _TMP[0]


def _write(name, content):
    path = f"{_TMP[0]}/{name}"
    with open(path, "wb") as f:
        f.write(content)
    return path


def _saved_checkpoint():
    path = f"{_TMP[0]}/good.npz"
    utils.save({"w": np.ones(3)}, path)
    return path


@pytest.fixture
def on_device(device):
    """Layers, models and optimizers of a case are built on ``device`` (the default)."""
    before = md.get_default_device()
    md.set_default_device(device)
    yield
    md.set_default_device(before)


@pytest.fixture(scope="session", autouse=True)
def _scratch(tmp_path_factory, request):
    """A scratch folder for the file cases; at the session's end, the summary (session
    scope: the device parametrisation would tear a module fixture down twice)."""
    _TMP[:] = [str(tmp_path_factory.mktemp("bad_input"))]
    yield
    summary = {"inputs_tried": STATS["calls"], "cases": len(CASES),
               "outcomes": dict(STATS["outcomes"].most_common()),
               "per_case": {k: dict(v) for k, v in sorted(STATS["cases"].items())}}
    path = tmp_path_factory.getbasetemp() / "bad_input_summary.json"
    path.write_text(json.dumps(summary, indent=1))
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin(
        "capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nbad input: {summary['inputs_tried']} inputs over "
                                f"{len(CASES)} cases; outcomes {summary['outcomes']}; "
                                f"details in {path}")


def _build(make, device):
    return make(device)


def _values(c: Case, device, mutated: dict):
    """The call's keyword arguments: base values, with ``mutated`` {name: mutation}."""
    kw = {}
    for a in c.args:
        if a.name in mutated:
            make = mutated[a.name][1]
            if make == "other-device":
                value = a.make(device)
                kw[a.name] = value.to(_other_device(device)) if isinstance(value, Tensor) \
                    else value
            else:
                kw[a.name] = make(device)
        else:
            kw[a.name] = a.make(device)
    return kw


def _nan_in(result) -> bool:
    """A NaN anywhere in a result: Tensors, arrays, floats, inside tuples, lists, dicts."""
    if isinstance(result, dict):
        return any(_nan_in(v) for v in result.values())
    if isinstance(result, (tuple, list)):
        return any(_nan_in(v) for v in result)
    if isinstance(result, Tensor):
        result = result.numpy()
    if isinstance(result, (np.ndarray, float, np.floating)):
        a = np.asarray(result)
        return a.dtype.kind == "f" and bool(np.isnan(a).any())
    return False


def _backward(result):
    items = result if isinstance(result, (tuple, list)) else (result,)
    for r in items:
        if isinstance(r, Tensor) and r.requires_grad and r.dtype.kind == "f":
            r.sum().backward()
            return


def _mentions(msg: str, words) -> bool:
    low = msg.lower()
    return any(str(w).lower() in low for w in words if w is not None)


def _is_shape_mutation(m) -> bool:
    return m[0].startswith(("ndim", "size 0"))


def _given_words(given):
    if isinstance(given, tuple):       # a shape: its tuple or its ndim
        return (str(given), f"{len(given)}-d", f"{len(given)} dim")
    if isinstance(given, list):        # alternatives
        return tuple(given)
    return (str(given),)


def _devices(result) -> set:
    """The devices of the Tensors in a result (inside tuples, lists and dicts)."""
    if isinstance(result, dict):
        result = list(result.values())
    if isinstance(result, (tuple, list)):
        return set().union(*[_devices(r) for r in result]) if result else set()
    return {result.device} if isinstance(result, Tensor) else set()


def _expectation(m, name, kw, device) -> str:
    """RAISE, EITHER or RAISE_INDEX for mutation ``m`` of argument ``name``."""
    if m[2] != ELSEWHERE:
        return m[2]
    beside = any(isinstance(v, Tensor) and v.device == md.Device(device)
                 for k, v in kw.items() if k != name)
    return RAISE if beside else EITHER


def run_case(c: Case, device, mutated: dict, record=True):
    """Call case ``c`` with ``mutated`` arguments; return a violation string or None."""
    expect = RAISE if any(m[2] not in (EITHER, ELSEWHERE) for m in mutated.values()) \
        else EITHER
    accepted = ACCEPTED + ((IndexError,) if any(m[2] == RAISE_INDEX for m in mutated.values())
                           else ())
    label = ", ".join(f"{k}: {m[0]}" for k, m in mutated.items()) or "valid arguments"
    outcome = "returned"
    violation = None
    try:
        kw = _values(c, device, mutated)
        if any(_expectation(m, name, kw, device) == RAISE for name, m in mutated.items()):
            expect = RAISE
        result = c.call(**kw)
        try:
            _backward(result)
        except Exception as exc:          # a forward that worked must backpropagate
            outcome = f"backward {type(exc).__name__}"
            violation = f"{c.key} [{label}]: forward worked, backward raised " \
                        f"{type(exc).__name__}: {exc}"
        else:
            if expect == RAISE:
                violation = f"{c.key} [{label}]: accepted silently (returned " \
                            f"{_describe(result)})"
            elif _nan_in(result) and not c.nan_ok:
                violation = f"{c.key} [{label}]: returned a silent NaN"
            elif any(m[2] == ELSEWHERE for m in mutated.values()) and \
                    _devices(result) - {md.Device(_other_device(device))}:
                violation = f"{c.key} [{label}]: returned a tensor on " \
                            f"{_devices(result)}, not on its input's device"
    except accepted as exc:
        outcome = type(exc).__name__
        msg = str(exc)
        names = [w for name in mutated for a in c.args if a.name == name for w in a.names]
        shape_only = all(_is_shape_mutation(m) for m in mutated.values())
        if shape_only:
            # a wrong shape often shows as a mismatch, reported under the other argument
            names = [w for a in c.args for w in a.names]
        if not mutated:
            violation = f"{c.key}: the valid base arguments raised {outcome}: {msg}"
        elif not _mentions(msg, c.ops):
            violation = f"{c.key} [{label}]: {outcome} does not name the op {c.ops}: {msg!r}"
        elif not _mentions(msg, names):
            violation = f"{c.key} [{label}]: {outcome} does not name the argument " \
                        f"{names}: {msg!r}"
        elif len(mutated) == 1 and not shape_only and not _mentions(
                msg, _given_words(next(iter(mutated.values()))[3])):
            m = next(iter(mutated.values()))
            violation = f"{c.key} [{label}]: {outcome} does not say what was given " \
                        f"({m[3]!r}): {msg!r}"
    except Exception as exc:  # noqa: BLE001 - every other exception is the finding
        outcome = type(exc).__name__
        violation = f"{c.key} [{label}]: raised {outcome}: {exc}"
    if record:
        STATS["calls"] += 1
        STATS["outcomes"][outcome] += 1
        per = STATS["cases"].setdefault(c.key, collections.Counter())
        per[outcome] += 1
    return violation


def _describe(result):
    if isinstance(result, Tensor):
        return f"a {result.dtype} tensor of shape {result.shape}"
    return type(result).__name__


def _mutations(c: Case, device):
    for a in c.args:
        for m in a.mutations:
            if m[1] == "other-device" and device == "cpu":
                continue        # needs a second device: a GPU
            yield a.name, m


# ---- the tests ----------------------------------------------------------------------------
@pytest.mark.parametrize("c", CASES, ids=repr)
def test_every_mutation_of_every_argument(c, device, on_device):
    violations = [run_case(c, device, {})]
    if violations[0] is None:   # mutations of a base that does not work prove nothing
        violations += [run_case(c, device, {name: m}) for name, m in _mutations(c, device)]
    violations = [v for v in violations if v]
    assert not violations, "\n".join(violations)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_two_mutations_at_once(data, device, on_device):
    c = data.draw(st.sampled_from(CASES), label="case")
    options = list(_mutations(c, device))
    if len(options) < 2:
        return
    picks = data.draw(st.lists(st.sampled_from(range(len(options))), min_size=2, max_size=2,
                               unique=True), label="mutations")
    mutated = {}
    for i in picks:
        name, m = options[i]
        mutated.setdefault(name, m)
    violation = run_case(c, device, mutated)
    # With two bad arguments the message may name either one, not necessarily both.
    # A shape mutation can make the other one valid (ndim + 1 makes dim=2 a valid dim).
    fine = ("does not say what was given",) + (
        ("accepted silently",) if any(_is_shape_mutation(m) for m in mutated.values())
        else ())
    assert violation is None or any(f in violation for f in fine), violation


def test_empty_batches_sum_to_zero_and_mean_is_an_error(device):
    empty = md.zeros(0, 3, device=device, requires_grad=True)
    total = empty.sum()
    assert total.item() == 0.0
    total.backward()
    assert empty.grad.shape == (0, 3)
    with pytest.raises(ValueError, match="mean: cannot average over an empty dimension"):
        empty.mean()
    assert md.sum(empty, 0).shape == (3,)
    logits = md.zeros(0, 4, device=device, requires_grad=True)
    labels = md.tensor(np.zeros(0, np.int64), device=device)
    assert F.cross_entropy(logits, labels, reduction="sum").item() == 0.0
    assert F.cross_entropy(logits, labels, reduction="none").shape == (0,)
    with pytest.raises(ValueError, match="cross_entropy: .*empty"):
        F.cross_entropy(logits, labels)
    with pytest.raises(ValueError, match="mse_loss: .*empty"):
        F.mse_loss(md.zeros(0, device=device), md.zeros(0, device=device))
    with pytest.raises(ValueError, match="batch_norm: .*1 value per channel"):
        F.batch_norm(md.zeros(0, 3, device=device), None, None, training=True)
    conv = nn.Conv2d(3, 4, 3).to(device)
    out = conv(md.zeros(0, 3, 5, 5, device=device, requires_grad=True))
    assert out.shape == (0, 4, 3, 3)
    out.sum().backward()
    assert float(np.abs(conv.weight.grad.numpy()).sum()) == 0.0


def test_every_public_function_and_layer_has_a_case():
    keys = {c.key.split("(")[0] for c in CASES}
    missing = []
    for name in F.__dict__:
        fn = getattr(F, name)
        if not name.startswith("_") and callable(fn) and not inspect.isclass(fn) and \
                not inspect.ismodule(fn) and f"F.{name}" not in keys:
            missing.append(f"F.{name}")
    for name in dir(nn):
        cls = getattr(nn, name)
        if inspect.isclass(cls) and issubclass(cls, nn.Module) and name not in (
                "Module",) and f"nn.{name}" not in keys:
            missing.append(f"nn.{name}")
    for name in dir(init):
        fn = getattr(init, name)
        if name.endswith("_") and not name.startswith("_") and callable(fn) and \
                f"init.{name}" not in keys:
            missing.append(f"init.{name}")
    for name in optim.__all__ if hasattr(optim, "__all__") else dir(optim):
        cls = getattr(optim, name)
        if inspect.isclass(cls) and issubclass(cls, optim.Optimizer) and \
                cls is not optim.Optimizer and f"optim.{name}" not in keys:
            missing.append(f"optim.{name}")
    for name in dir(sched):
        cls = getattr(sched, name)
        if inspect.isclass(cls) and issubclass(cls, sched.LRScheduler) and \
                cls is not sched.LRScheduler and f"sched.{name}" not in keys:
            missing.append(f"sched.{name}")
    for name in ("tensor", "zeros", "ones", "full", "arange", "randn", "rand", "empty",
                 "zeros_like", "ones_like", "eye", "cat", "stack", "where", "manual_seed",
                 "exp", "log", "sqrt", "abs", "relu", "sigmoid", "tanh", "clamp", "sum",
                 "mean", "max", "min", "var", "std", "argmax", "reshape", "permute",
                 "transpose", "flatten", "squeeze", "unsqueeze", "matmul", "logsumexp"):
        if f"md.{name}" not in keys:
            missing.append(f"md.{name}")
    assert not missing, f"add rows for {missing} to the table of test_bad_input.py"


_BIG_BUILDERS = [n for n in models.__all__ if n[0].islower() and n != "make_layers"]


@pytest.mark.parametrize("name", _BIG_BUILDERS)
def test_every_model_builder_refuses_bad_sizes(name):
    # Sizes that must fail before a single weight is allocated: the check comes first.
    build = getattr(models, name)
    params = inspect.signature(build).parameters
    for arg in ("num_classes", "in_channels"):
        if arg not in params:
            continue
        for bad in (0, -3, 2.5, "10"):
            with pytest.raises(ACCEPTED) as info:
                build(**{arg: bad})
            msg = str(info.value)
            assert arg in msg, msg
            STATS["calls"] += 1
            STATS["outcomes"][type(info.value).__name__] += 1

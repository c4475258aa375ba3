"""minidl on a CUDA GPU: our kernels, the ops, gradients, devices, models.

* every launcher of minidl.kernels on CuPy arrays against the NumPy implementation of the
  same op (minidl's CPU path) on the same inputs: float64 to 1e-10, float32 to 1e-5;
* every public op on 'cuda' against 'cpu', with the kernels on and off (MINIDL_KERNELS);
* every op with a kernel branch: the kernel path (the default) against MINIDL_KERNELS=0
  on the GPU, with spies that check which launchers each path called;
* gradcheck on the GPU in float64;
* a CPU tensor and a CUDA tensor in one op raise ValueError naming both devices;
* a model's .to("cuda") and back.

Skipped, with the reason, where CuPy or a GPU is missing.
"""
import re

import numpy as np
import pytest

import minidl as md
from minidl.backend import cuda_unavailable_reason

_reason = cuda_unavailable_reason()
if _reason:
    pytest.skip(_reason, allow_module_level=True)

import cupy  # noqa: E402  (only once a GPU is known to be there)

import minidl.nn.functional as F  # noqa: E402
from minidl import nn  # noqa: E402
from minidl.kernels import (activation, batchnorm, dropout, im2col, loader, pool,  # noqa: E402
                            softmax_xent, use_kernels)
from minidl.testing import assert_close, gradcheck  # noqa: E402

pytestmark = pytest.mark.gpu

DTYPES = [np.float64, np.float32]
TOL = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
       np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6)}


def close(actual, expected, dtype, scale=1.0):
    tol = TOL[np.dtype(dtype)]
    assert_close(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


def rand(shape, dtype=np.float64, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def cpu_grad(fn, arrays, gy):
    """Output and input gradients of fn on CPU tensors (the NumPy path)."""
    ts = [md.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    y.backward(md.tensor(gy))
    return y.numpy(), [t.grad.numpy() for t in ts]


@pytest.fixture(params=["kernels", "arrays"])
def kernel_mode(request, monkeypatch):
    """Run a test with our kernels (MINIDL_KERNELS=1) and with plain CuPy math (=0)."""
    monkeypatch.setenv("MINIDL_KERNELS", "1" if request.param == "kernels" else "0")
    return request.param


# ---- the kernels themselves ------------------------------------------------------------
def test_every_kernel_compiles_and_loads_on_the_device():
    for filename in loader.CU_FILES:
        names = re.findall(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(',
                           loader.source(filename))
        if filename == "activation.cu":    # __device__ functions only: the loop below
            assert names == []
            continue
        assert names, filename
        for name in names:
            base, _, suffix = name.rpartition("_")
            if suffix in ("float", "double"):
                k = loader.kernel(filename, base, np.float32 if suffix == "float" else
                                  np.float64)
            else:
                k = loader.kernel(filename, name)
            assert k.attributes["max_threads_per_block"] >= 512, name
    for dtype in DTYPES:
        x = cupy.asarray(rand(10, dtype))
        for name, (ins, _, _) in activation.ELEMENTWISE.items():
            args = [x] * ins.count("T ")
            if "slope" in ins:
                args[-1] = x.dtype.type(0.1)
            out = loader.elementwise("activation.cu", name,
                                     *activation.ELEMENTWISE[name])(*args)
            assert out.dtype == dtype and out.shape == x.shape


def test_use_kernels_sees_cupy_arrays(monkeypatch):
    a = cupy.zeros(3)
    assert use_kernels(a) and use_kernels(a, None) and use_kernels(a.astype(np.float32))
    assert not use_kernels(a, np.zeros(3))
    # The kernels are compiled for float32 and float64 only.
    assert not use_kernels(a.astype(np.float16)) and not use_kernels(a.astype(np.int64))
    monkeypatch.setenv("MINIDL_KERNELS", "0")
    assert not use_kernels(a)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geom", [(3, 3, 1, 1, 1, 1, 1, 1), (2, 3, 2, 1, 0, 1, 1, 2),
                                  (1, 1, 2, 2, 0, 0, 1, 1), (3, 2, 2, 3, 2, 1, 2, 1)])
def test_im2col_col2im_launchers_match_numpy(dtype, geom):
    from minidl.ops.conv import col2im as np_col2im
    from minidl.ops.conv import im2col as np_im2col
    kh, kw, sh, sw, ph, pw, dh, dw = geom
    x = rand((2, 3, 9, 8), dtype)
    cols = im2col.im2col(cupy.asarray(x), *geom)
    expected = np_im2col(x, (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    np.testing.assert_array_equal(cupy.asnumpy(cols), expected)
    g = rand(expected.shape, dtype, seed=1)
    gx = im2col.col2im(cupy.asarray(g), x.shape, *geom)
    close(gx, np_col2im(g, x.shape, (kh, kw), (sh, sw), (ph, pw), (dh, dw)), dtype, 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", [((2, 2), (2, 2), (0, 0), (1, 1), False),
                                 ((3, 3), (2, 2), (1, 1), (1, 1), True),
                                 ((3, 2), (1, 2), (1, 1), (2, 1), False),
                                 ((2, 3), (3, 2), (1, 0), (1, 1), True)])
def test_max_pool2d_launchers_match_numpy(dtype, cfg):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil = cfg
    x = rand((2, 3, 9, 10), dtype)
    gy_shape = pool.max_pool2d_forward(cupy.asarray(x), kh, kw, sh, sw, ph, pw, dh, dw,
                                       ceil)[0].shape
    gy = rand(gy_shape, dtype, seed=1)
    xt = md.tensor(x, requires_grad=True)
    yt, it = F.max_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode=ceil,
                          return_indices=True)
    yt.backward(md.tensor(gy))
    y, idx = pool.max_pool2d_forward(cupy.asarray(x), kh, kw, sh, sw, ph, pw, dh, dw, ceil)
    np.testing.assert_array_equal(cupy.asnumpy(y), yt.numpy())
    np.testing.assert_array_equal(cupy.asnumpy(idx), it.numpy())
    gx = pool.max_pool2d_backward(cupy.asarray(gy), idx, x.shape)
    close(gx, xt.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", [((2, 2), (2, 2), (0, 0), False, True, None),
                                 ((3, 3), (2, 2), (1, 1), True, True, None),
                                 ((3, 3), (2, 2), (1, 1), True, False, None),
                                 ((3, 2), (2, 1), (1, 0), False, False, 5)])
def test_avg_pool2d_launchers_match_numpy(dtype, cfg):
    (kh, kw), (sh, sw), (ph, pw), ceil, include_pad, divisor = cfg
    x = rand((2, 3, 9, 10), dtype)
    xt = md.tensor(x, requires_grad=True)
    yt = F.avg_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil,
                      count_include_pad=include_pad, divisor_override=divisor)
    gy = rand(yt.shape, dtype, seed=1)
    yt.backward(md.tensor(gy))
    y = pool.avg_pool2d_forward(cupy.asarray(x), kh, kw, sh, sw, ph, pw, ceil, include_pad,
                                divisor)
    close(y, yt.numpy(), dtype)
    gx = pool.avg_pool2d_backward(cupy.asarray(gy), x.shape, kh, kw, sh, sw, ph, pw, ceil,
                                  include_pad, divisor)
    close(gx, xt.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 3), (4, 5, 6, 7), (3, 4, 9)])
def test_batch_norm_launchers_match_numpy(dtype, shape):
    x = rand(shape, dtype, scale=2.0) + 1
    C = shape[1]
    w, b = rand(C, dtype, seed=1), rand(C, dtype, seed=2)
    gy = rand(shape, dtype, seed=3)
    y_ref, (gx_ref, gw_ref, gb_ref) = cpu_grad(
        lambda t, wt, bt: F.batch_norm(t, None, None, wt, bt, training=True, eps=1e-5),
        [x, w, b], gy)
    axes = (0,) + tuple(range(2, len(shape)))
    mean, var = batchnorm.batch_norm_stats(cupy.asarray(x))
    close(mean, x.astype(np.float64).mean(axis=axes), dtype, 10)
    close(var, x.astype(np.float64).var(axis=axes), dtype, 10)
    y = batchnorm.batch_norm_forward(cupy.asarray(x), mean, var, cupy.asarray(w),
                                     cupy.asarray(b), 1e-5)
    close(y, y_ref, dtype, 10)
    gx, gw, gb = batchnorm.batch_norm_backward(cupy.asarray(gy), cupy.asarray(x), mean, var,
                                               cupy.asarray(w), 1e-5)
    close(gx, gx_ref, dtype, 10)
    close(gw, gw_ref, dtype, 10)
    close(gb, gb_ref, dtype, 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_launchers_match_the_numpy_hash(dtype):
    x = rand((5, 7, 11), dtype)
    y, mask = dropout.dropout_forward(cupy.asarray(x), 0.4, seed=99, offset=3)
    expected = dropout.dropout_mask_numpy(x.shape, 0.4, 99, 3)
    np.testing.assert_array_equal(cupy.asnumpy(mask), expected)
    np.testing.assert_array_equal(cupy.asnumpy(y), x * expected / (1 - 0.4))
    gy = rand(x.shape, dtype, seed=1)
    gx = dropout.dropout_backward(cupy.asarray(gy), mask, 0.4)
    np.testing.assert_array_equal(cupy.asnumpy(gx), gy * expected / (1 - 0.4))
    m = dropout.dropout_mask((2, 3, 1, 1), 0.5, 7)
    np.testing.assert_array_equal(cupy.asnumpy(m),
                                  dropout.dropout_mask_numpy((2, 3, 1, 1), 0.5, 7))
    big = dropout.dropout_mask((1 << 22,), 0.25, 1)
    assert abs(float(big.mean()) - 0.75) < 2e-3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(16, 10), (4, 1000), (2, 5, 3, 3)])
def test_softmax_xent_launchers_match_numpy(dtype, smoothing, shape):
    x = rand(shape, dtype, scale=3.0)
    C = shape[1]
    target = np.random.default_rng(1).integers(0, C, size=(shape[0],) + shape[2:])
    target.reshape(-1)[0] = -100
    gy = rand(target.shape, dtype, seed=2)
    loss_ref, (gx_ref,) = cpu_grad(
        lambda t: F.cross_entropy(t, md.tensor(target), reduction="none", ignore_index=-100,
                                  label_smoothing=smoothing), [x], gy)
    loss, prob = softmax_xent.softmax_xent_forward(cupy.asarray(x), cupy.asarray(target),
                                                   -100, smoothing)
    close(loss, loss_ref, dtype, 10)
    close(prob, F.softmax(md.tensor(x), 1).numpy(), dtype)
    grad = softmax_xent.softmax_xent_backward(prob, cupy.asarray(target), cupy.asarray(gy),
                                              -100, smoothing)
    close(grad, gx_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "gelu",
                                  "gelu_tanh"])
def test_activation_launchers_match_numpy(dtype, name):
    x = rand((7, 33), dtype, scale=3.0)
    gy = rand(x.shape, dtype, seed=1)
    ops = {"relu": F.relu, "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
           "sigmoid": F.sigmoid, "tanh": F.tanh, "gelu": F.gelu,
           "gelu_tanh": lambda t: F.gelu(t, approximate="tanh")}
    y_ref, (gx_ref,) = cpu_grad(ops[name], [x], gy)
    xc, gc = cupy.asarray(x), cupy.asarray(gy)
    if name == "relu":
        y, gx = activation.relu_forward(xc), activation.relu_backward(xc, gc)
    elif name == "leaky_relu":
        y = activation.leaky_relu_forward(xc, 0.2)
        gx = activation.leaky_relu_backward(xc, gc, 0.2)
    elif name in ("sigmoid", "tanh"):
        forward = getattr(activation, name + "_forward")
        y = forward(xc)
        gx = getattr(activation, name + "_backward")(y, gc)
    else:
        approximate = "tanh" if name == "gelu_tanh" else "none"
        y = activation.gelu_forward(xc, approximate)
        gx = activation.gelu_backward(xc, gc, approximate)
    close(y, y_ref, dtype)
    close(gx, gx_ref, dtype)


# ---- the ops on 'cuda' against 'cpu' ---------------------------------------------------
_CASES = {
    "conv2d": ([(2, 3, 8, 8), (4, 3, 3, 3), (4,)],
               lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1)),
    "conv2d_strided_grouped": ([(2, 4, 9, 9), (6, 2, 3, 3)],
                               lambda x, w: F.conv2d(x, w, stride=2, dilation=2, groups=2)),
    "conv_transpose2d": ([(2, 3, 5, 5), (3, 4, 3, 3)],
                         lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1)),
    "max_pool2d": ([(2, 3, 9, 9)], lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
    "avg_pool2d": ([(2, 3, 9, 9)], lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True,
                                                          count_include_pad=False)),
    "adaptive_avg_pool2d": ([(2, 3, 7, 9)], lambda x: F.adaptive_avg_pool2d(x, (3, 4))),
    "batch_norm": ([(4, 3, 5, 5), (3,), (3,)],
                   lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)),
    "batch_norm1d": ([(6, 5), (5,), (5,)],
                     lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)),
    "cross_entropy": ([(8, 5)], lambda x: F.cross_entropy(
        x, md.tensor(np.array([0, 1, 2, 3, 4, -100, 1, 2]), device=x.device),
        label_smoothing=0.1)),
    "softmax": ([(4, 7)], lambda x: F.softmax(x, 1)),
    "log_softmax": ([(4, 7)], lambda x: F.log_softmax(x, 1)),
    "relu": ([(5, 6)], F.relu),
    "leaky_relu": ([(5, 6)], lambda x: F.leaky_relu(x, 0.1)),
    "sigmoid": ([(5, 6)], F.sigmoid),
    "tanh": ([(5, 6)], F.tanh),
    "gelu": ([(5, 6)], F.gelu),
    "linear": ([(4, 6), (3, 6), (3,)], F.linear),
    "conv2d_same_even_kernel": ([(1, 2, 6, 5), (3, 2, 4, 2)],
                                lambda x, w: F.conv2d(x, w, padding="same")),
    # padding - output_padding < 0 along the width: im2col with a negative right padding
    "conv_transpose2d_output_padding": ([(2, 3, 4, 5), (3, 2, 3, 3), (2,)],
                                        lambda x, w, b: F.conv_transpose2d(
                                            x, w, b, stride=2, padding=(1, 0),
                                            output_padding=1)),
    "max_pool2d_tiles": ([(2, 3, 8, 6)], lambda x: F.max_pool2d(x, 2)),
    "max_pool2d_dilated": ([(2, 2, 9, 10)],
                           lambda x: F.max_pool2d(x, (3, 2), (1, 2), 1, dilation=(2, 1))),
    "avg_pool2d_divisor_override": ([(2, 2, 7, 6)],
                                    lambda x: F.avg_pool2d(x, (3, 2), (2, 1), (1, 0),
                                                           divisor_override=5)),
    "adaptive_avg_pool2d_equal_bins": ([(2, 3, 6, 8)],
                                       lambda x: F.adaptive_avg_pool2d(x, (3, 2))),
    "batch_norm_no_affine": ([(6, 5, 7)],
                             lambda x: F.batch_norm(x, None, None, training=True)),
    "batch_norm_eval": ([(4, 3, 5, 5), (3,), (3,)], lambda x, w, b: F.batch_norm(
        x, md.tensor(np.linspace(-1, 1, 3).astype(x.dtype), device=x.device),
        md.tensor(np.linspace(0.5, 2, 3).astype(x.dtype), device=x.device), w, b)),
    "cross_entropy_sum_spatial": ([(2, 4, 3, 3)], lambda x: F.cross_entropy(
        x, md.tensor(np.arange(18).reshape(2, 3, 3) % 4, device=x.device),
        reduction="sum")),
    "cross_entropy_none_many_classes": ([(3, 700)], lambda x: F.cross_entropy(
        x, md.tensor(np.array([5, -100, 699]), device=x.device), reduction="none",
        label_smoothing=0.05)),
    "cross_entropy_weighted": ([(6, 4)], lambda x: F.cross_entropy(
        x, md.tensor(np.array([0, 1, 2, 3, 2, 1]), device=x.device),
        weight=md.tensor(np.array([1.0, 2, 0.5, 3]).astype(x.dtype), device=x.device))),
    "gelu_tanh": ([(5, 6)], lambda x: F.gelu(x, approximate="tanh")),
}

# The launchers each case must call on 'cuda' with the kernels on; with MINIDL_KERNELS=0,
# none. A stride-1 conv2d computes its input gradient as a convolution: im2col only.
_IM2COL, _COL2IM = "im2col.im2col", "im2col.col2im"
_MAXPOOL = {"pool.max_pool2d_forward", "pool.max_pool2d_backward"}
_AVGPOOL = {"pool.avg_pool2d_forward", "pool.avg_pool2d_backward"}
_BN = {"batchnorm.batch_norm_stats", "batchnorm.batch_norm_forward",
       "batchnorm.batch_norm_backward"}
_XENT = {"softmax_xent.softmax_xent_forward", "softmax_xent.softmax_xent_backward"}
_KERNELS = {
    "conv2d": {_IM2COL}, "conv2d_same_even_kernel": {_IM2COL},
    "conv2d_strided_grouped": {_IM2COL, _COL2IM}, "conv_transpose2d": {_IM2COL, _COL2IM},
    "conv_transpose2d_output_padding": {_IM2COL, _COL2IM},
    "max_pool2d": _MAXPOOL, "max_pool2d_tiles": _MAXPOOL, "max_pool2d_dilated": _MAXPOOL,
    "avg_pool2d": _AVGPOOL, "avg_pool2d_divisor_override": _AVGPOOL,
    "adaptive_avg_pool2d_equal_bins": _AVGPOOL,
    "adaptive_avg_pool2d": set(),           # unequal bins: two small GEMMs, no kernel
    "batch_norm": _BN, "batch_norm1d": _BN, "batch_norm_no_affine": _BN,
    "batch_norm_eval": {"batchnorm.batch_norm_forward"},   # its backward is array math
    "cross_entropy": _XENT, "cross_entropy_sum_spatial": _XENT,
    "cross_entropy_none_many_classes": _XENT,
    "cross_entropy_weighted": set(),        # the kernels take no class weights
    "softmax": set(), "log_softmax": set(), "linear": set(),
    "relu": set(), "tanh": set(),           # CuPy's maximum/tanh are one kernel already
    "sigmoid": {"activation.sigmoid_forward"},   # backward: Tensor ops (double backward)
    "leaky_relu": {"activation.leaky_relu_forward", "activation.leaky_relu_backward"},
    "gelu": {"activation.gelu_forward", "activation.gelu_backward"},
    "gelu_tanh": {"activation.gelu_forward", "activation.gelu_backward"},
}
_LAUNCHERS = {"im2col": im2col, "pool": pool, "batchnorm": batchnorm, "dropout": dropout,
              "softmax_xent": softmax_xent, "activation": activation}
_HELPERS = ("pool_output_size", "conv_output_size", "dropout_mask_numpy")


def spy_on_launchers(monkeypatch):
    """Record (name, args) of every launcher call of minidl.kernels from now on."""
    log = []

    def recording(label, fn):
        def spy(*args, **kwargs):
            log.append((label, args))
            return fn(*args, **kwargs)
        return spy
    for short, module in _LAUNCHERS.items():
        for name in module.__all__:
            fn = getattr(module, name)
            if callable(fn) and name not in _HELPERS:
                monkeypatch.setattr(module, name, recording(f"{short}.{name}", fn))
    return log


def test_every_case_names_its_kernels():
    assert sorted(_KERNELS) == sorted(_CASES)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(_CASES))
def test_op_on_cuda_matches_cpu(case, dtype, kernel_mode):
    shapes, fn = _CASES[case]
    arrays = [rand(s, dtype, seed=i, scale=2.0) for i, s in enumerate(shapes)]
    y_cpu = fn(*[md.tensor(a) for a in arrays])
    gy = rand(y_cpu.shape, dtype, seed=10)
    y_ref, grads_ref = cpu_grad(fn, arrays, gy)
    ts = [md.tensor(a, device="cuda", requires_grad=True) for a in arrays]
    y = fn(*ts)
    assert y.device == "cuda" and y.dtype == dtype
    y.backward(md.tensor(gy, device="cuda"))
    close(y, y_ref, dtype, 100)
    for t, g_ref in zip(ts, grads_ref):
        assert t.grad.device == "cuda"
        close(t.grad, g_ref, dtype, 100)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(_CASES))
def test_kernel_path_matches_minidl_kernels_0(case, dtype, monkeypatch):
    shapes, fn = _CASES[case]
    arrays = [rand(s, dtype, seed=i, scale=2.0) for i, s in enumerate(shapes)]
    log = spy_on_launchers(monkeypatch)
    results, gy = {}, None
    for mode in ("1", "0"):
        monkeypatch.setenv("MINIDL_KERNELS", mode)
        del log[:]
        ts = [md.tensor(a, device="cuda", requires_grad=True) for a in arrays]
        y = fn(*ts)
        if gy is None:
            gy = rand(y.shape, dtype, seed=10)
        y.backward(md.tensor(gy, device="cuda"))
        results[mode] = (y, [t.grad for t in ts], {name for name, _ in log})
    assert results["1"][2] == _KERNELS[case]
    assert results["0"][2] == set()
    (y1, grads1, _), (y0, grads0, _) = results["1"], results["0"]
    assert y1.dtype == y0.dtype == dtype and y1.device == "cuda"
    close(y1, y0, dtype, 100)
    for i, (g1, g0) in enumerate(zip(grads1, grads0)):
        assert g1.dtype == dtype
        close(g1, g0, dtype, 100)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_indices_and_running_stats_kernels_on_and_off(dtype, monkeypatch):
    x = rand((2, 3, 9, 8), dtype)
    x[0, 1, 2, 2] = x[0, 1, 2, 3] = np.nan       # two NaNs in a window: the last one wins
    out = {}
    for mode in ("1", "0"):
        monkeypatch.setenv("MINIDL_KERNELS", mode)
        y, idx = F.max_pool2d(md.tensor(x, device="cuda"), 3, 2, 1, return_indices=True)
        rm = md.zeros(3, dtype=dtype, device="cuda")
        rv = md.ones(3, dtype=dtype, device="cuda")
        F.batch_norm(md.tensor(x[1:], device="cuda"), rm, rv, training=True, momentum=0.3)
        out[mode] = (y.numpy(), idx.numpy(), rm.numpy(), rv.numpy())
    np.testing.assert_array_equal(out["1"][0], out["0"][0])
    np.testing.assert_array_equal(out["1"][1], out["0"][1])
    close(out["1"][2], out["0"][2], dtype, 10)
    close(out["1"][3], out["0"][3], dtype, 10)


def test_dropout_kernel_path_is_the_hash_of_a_drawn_seed(monkeypatch):
    monkeypatch.setenv("MINIDL_KERNELS", "1")
    log = spy_on_launchers(monkeypatch)
    x = rand((33, 65), np.float64) + 5
    gy = rand(x.shape, np.float64, seed=1)
    md.manual_seed(4)
    t = md.tensor(x, device="cuda", requires_grad=True)
    y = F.dropout(t, 0.25)
    y.backward(md.tensor(gy, device="cuda"))
    assert [name for name, _ in log] == ["dropout.dropout_forward", "dropout.dropout_backward"]
    mask = dropout.dropout_mask_numpy(x.shape, 0.25, log[0][1][2])
    np.testing.assert_array_equal(y.numpy(), np.where(mask, x / 0.75, 0))
    np.testing.assert_array_equal(t.grad.numpy(), np.where(mask, gy / 0.75, 0))
    md.manual_seed(4)
    np.testing.assert_array_equal(F.dropout(md.tensor(x, device="cuda"), 0.25).numpy(),
                                  y.numpy())
    again = F.dropout(md.tensor(x, device="cuda"), 0.25).numpy()   # a fresh seed
    assert log[-1][1][2] != log[0][1][2] and (again != y.numpy()).any()
    # Channel and sample masks are tiny: they stay on the array path.
    del log[:]
    F.dropout2d(md.tensor(rand((4, 6, 3, 3)), device="cuda"), 0.5)
    F.drop_path(md.tensor(rand((4, 6, 3, 3)), device="cuda"), 0.5)
    assert log == []


def test_dropout_on_cuda(kernel_mode):
    md.manual_seed(3)
    x = md.tensor(rand((64, 64), np.float32) + 5, device="cuda", requires_grad=True)
    y = F.dropout(x, 0.3, training=True)
    y.backward(md.ones_like(y))
    kept = y.numpy() != 0
    assert 0.6 < kept.mean() < 0.8
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] / 0.7, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.7, rtol=1e-6)
    md.manual_seed(3)
    again = F.dropout(x, 0.3, training=True)
    np.testing.assert_array_equal(again.numpy(), y.numpy())  # reproducible from the seed


# ---- gradcheck on the GPU, float64 ----------------------------------------------------
_GRADCHECK = {
    "conv2d": ([(1, 2, 5, 5), (3, 2, 3, 3), (3,)],
               lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1)),
    "conv_transpose2d": ([(1, 2, 3, 3), (2, 2, 3, 3)],
                         lambda x, w: F.conv_transpose2d(x, w, stride=2)),
    "max_pool2d": ([(1, 2, 5, 5)], lambda x: F.max_pool2d(x, 2, 2, 1, ceil_mode=True)),
    "avg_pool2d": ([(1, 2, 5, 5)], lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True)),
    "adaptive_avg_pool2d": ([(1, 2, 5, 7)], lambda x: F.adaptive_avg_pool2d(x, 3)),
    "batch_norm": ([(3, 2, 3, 3), (2,), (2,)],
                   lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)),
    "cross_entropy": ([(4, 5)], lambda x: F.cross_entropy(
        x, md.tensor(np.array([1, 0, 4, -100]), device=x.device), label_smoothing=0.1)),
    "log_softmax": ([(3, 5)], lambda x: F.log_softmax(x, 1)),
    "gelu": ([(3, 5)], F.gelu),
    "sigmoid": ([(3, 5)], F.sigmoid),
    "leaky_relu": ([(3, 5)], lambda x: F.leaky_relu(x, 0.1)),
    "gelu_tanh": ([(3, 5)], lambda x: F.gelu(x, approximate="tanh")),
    "batch_norm_eval": ([(3, 2, 3, 3), (2,), (2,)], lambda x, w, b: F.batch_norm(
        x, md.tensor(np.array([0.1, -0.2]), device=x.device),
        md.tensor(np.array([0.5, 2.0]), device=x.device), w, b)),
    "cross_entropy_spatial": ([(2, 3, 2, 2)], lambda x: F.cross_entropy(
        x, md.tensor(np.array([[[0, 1], [2, -100]], [[1, 1], [0, 2]]]), device=x.device),
        reduction="sum")),
    "conv_transpose2d_output_padding": ([(1, 2, 3, 3), (2, 2, 3, 3)],
                                        lambda x, w: F.conv_transpose2d(
                                            x, w, stride=2, padding=(1, 0),
                                            output_padding=1)),
}


@pytest.mark.parametrize("case", sorted(_GRADCHECK))
def test_gradcheck_on_cuda(case, kernel_mode):
    shapes, fn = _GRADCHECK[case]
    rng = np.random.default_rng(0)
    # Values well apart, so finite differences never cross a max or a kink.
    arrays = [rng.permutation(np.linspace(-2, 2, int(np.prod(s)))).reshape(s) + 0.013
              for s in shapes]
    ts = [md.tensor(a, device="cuda", requires_grad=True) for a in arrays]
    assert gradcheck(fn, ts)


# ---- devices ---------------------------------------------------------------------------
def test_mixing_devices_is_an_error_naming_both():
    a = md.tensor(rand((2, 3)))
    b = md.tensor(rand((2, 3)), device="cuda")
    with pytest.raises(ValueError, match=r"cpu.*cuda:0|cuda:0.*cpu"):
        a + b
    x = md.tensor(rand((1, 2, 5, 5)), device="cuda")
    w = md.tensor(rand((3, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"cpu.*cuda:0|cuda:0.*cpu"):
        F.conv2d(x, w)
    logits = md.tensor(rand((3, 4)), device="cuda")
    with pytest.raises(ValueError, match=r"cpu.*cuda:0|cuda:0.*cpu"):
        F.cross_entropy(logits, md.tensor(np.array([0, 1, 2])))


def _small_net():
    md.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))


def test_model_to_cuda_and_back(kernel_mode):
    cpu_net, gpu_net = _small_net(), _small_net().to("cuda")
    for p in gpu_net.parameters():
        assert p.device == "cuda"
    for name, buf in gpu_net.named_buffers():
        assert buf.device == "cuda", name
    x = rand((6, 3, 8, 8), np.float32)
    target = np.array([0, 1, 2, 3, 4, 0])
    losses = []
    for net, device in ((cpu_net, "cpu"), (gpu_net, "cuda")):
        loss = F.cross_entropy(net(md.tensor(x, device=device)),
                               md.tensor(target, device=device))
        loss.backward()
        losses.append(loss.item())
    assert abs(losses[0] - losses[1]) <= 1e-5 * abs(losses[0])
    for (name, p_cpu), p_gpu in zip(cpu_net.named_parameters(), gpu_net.parameters()):
        assert p_gpu.grad.device == "cuda"
        assert_close(p_gpu.grad, p_cpu.grad, rtol=1e-4, atol=1e-5, msg=f"{name}: ")
    back = gpu_net.to("cpu")
    for (name, a), (_, b) in zip(back.state_dict().items(), cpu_net.state_dict().items()):
        assert back.state_dict()[name].device == "cpu"
        assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"{name}: ")

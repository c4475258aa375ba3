"""The ops' kernel branches on the CPU: every ``use_kernels`` branch of minidl.ops runs the
CUDA kernels, emulated with g++ (minidl.kernels.emulate), and must agree with the same
op's NumPy path: outputs and every input gradient, float64 to 1e-10, float32 to 1e-5.

How: ``minidl.kernels._device_array_type`` (the array type use_kernels accepts, cupy.ndarray
on a GPU) is swapped for numpy.ndarray, so use_kernels is True for float32/float64 NumPy
arrays, MINIDL_KERNELS=0 still turning it off; and the launchers' loader.kernel /
loader.elementwise are the emulator's. Spies on the launcher functions record which
kernels ran, so a branch that silently falls back to the array path fails its test.

tests/test_gpu.py runs the same ops on a real GPU with the kernels on and off.
"""
import contextlib

import numpy as np
import pytest

import minidl as md
import minidl.kernels
import minidl.nn.functional as F
import minidl.ops.conv as conv
from minidl.kernels import activation, batchnorm, dropout, emulate, im2col, loader, pool
from minidl.kernels import softmax_xent, use_kernels
from minidl.testing import assert_close, gradcheck, gradgradcheck

TOL = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
       np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6)}
LAUNCHERS = {"im2col": im2col, "pool": pool, "batchnorm": batchnorm, "dropout": dropout,
             "softmax_xent": softmax_xent, "activation": activation}


def close(actual, expected, dtype, scale=1.0, msg=""):
    tol = TOL[np.dtype(dtype)]
    assert_close(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale, msg=msg)


@pytest.fixture(scope="module")
def calls():
    """The emulator in place of the GPU, and a list of (launcher, args) of every call."""
    if not emulate.gxx_available():
        pytest.skip("g++ not on PATH: the CPU emulation of the CUDA kernels needs it")
    emu = emulate.Emulator({"activation.cu": activation.ELEMENTWISE}, max_threads=32)
    emu.compile()
    log = []
    mp = pytest.MonkeyPatch()
    mp.setattr(loader, "kernel", emu.kernel)
    mp.setattr(loader, "elementwise", emu.elementwise)
    for short, module in LAUNCHERS.items():
        for name in module.__all__:
            fn = getattr(module, name)
            if callable(fn) and not name.startswith(("pool_output_size", "conv_output",
                                                     "dropout_mask_numpy")):
                mp.setattr(module, name, _spy(log, f"{short}.{name}", fn))
    yield log
    mp.undo()


def _spy(log, label, fn):
    def spy(*args, **kwargs):
        log.append((label, args))
        return fn(*args, **kwargs)
    return spy


@contextlib.contextmanager
def kernel_branches(on: bool):
    """use_kernels sees NumPy arrays as device arrays (on) or as host arrays (off)."""
    saved = minidl.kernels._device_array_type
    minidl.kernels._device_array_type = (lambda: np.ndarray) if on else (lambda: None)
    try:
        yield
    finally:
        minidl.kernels._device_array_type = saved


def run(log, fn, arrays, gy, on):
    """Output, input gradients and the kernels called, for fn on CPU tensors."""
    with kernel_branches(on):
        del log[:]
        ts = [md.tensor(a, requires_grad=True) for a in arrays]
        y = fn(*ts)
        y.backward(md.tensor(gy))
        return y.numpy(), [t.grad.numpy() for t in ts], sorted({c for c, _ in log})


def rand(shape, dtype, seed, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def distinct(shape, dtype, seed):
    """Values well apart (no ties in a max, no value at a kink)."""
    n = int(np.prod(shape))
    values = np.random.default_rng(seed).permutation(np.linspace(-3, 3, n)) + 0.0137
    return values.reshape(shape).astype(dtype)


def _target(*shape, classes, ignore=True):
    t = np.random.default_rng(7).integers(0, classes, size=shape)
    if ignore:
        t.reshape(-1)[1] = -100
    return md.tensor(t)


# case: (input shapes, fn, the launchers that must run, inputs built by distinct())
CASES = {
    "conv2d_stride2": ([(2, 3, 7, 6), (4, 3, 3, 3), (4,)],
                       lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
                       {"im2col.im2col", "im2col.col2im"}, False),
    "conv2d_stride1_dilated_grouped": ([(2, 4, 7, 7), (6, 2, 3, 2)],
                                       lambda x, w: F.conv2d(x, w, padding=(2, 1),
                                                             dilation=(2, 1), groups=2),
                                       {"im2col.im2col"}, False),
    "conv2d_same_even_kernel": ([(1, 2, 6, 5), (3, 2, 4, 2)],
                                lambda x, w: F.conv2d(x, w, padding="same"),
                                {"im2col.im2col"}, False),
    # padding - output_padding < 0 along the width: im2col with a negative right padding
    "conv_transpose2d": ([(2, 3, 4, 5), (3, 2, 3, 3), (2,)],
                         lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2,
                                                            padding=(1, 0),
                                                            output_padding=1),
                         {"im2col.im2col", "im2col.col2im"}, False),
    "max_pool2d_ceil": ([(2, 3, 9, 8)],
                        lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True),
                        {"pool.max_pool2d_forward", "pool.max_pool2d_backward"}, True),
    "max_pool2d_tiles": ([(2, 2, 6, 4)], lambda x: F.max_pool2d(x, 2),
                         {"pool.max_pool2d_forward", "pool.max_pool2d_backward"}, True),
    "max_pool2d_dilated_overlapping": ([(1, 2, 9, 10)],
                                       lambda x: F.max_pool2d(x, (3, 2), (1, 2), (1, 1),
                                                              dilation=(2, 1)),
                                       {"pool.max_pool2d_forward",
                                        "pool.max_pool2d_backward"}, True),
    "avg_pool2d_ceil_exclude_pad": ([(2, 3, 9, 8)],
                                    lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True,
                                                           count_include_pad=False),
                                    {"pool.avg_pool2d_forward",
                                     "pool.avg_pool2d_backward"}, False),
    "avg_pool2d_divisor_override": ([(2, 2, 7, 6)],
                                    lambda x: F.avg_pool2d(x, (3, 2), (2, 1), (1, 0),
                                                           divisor_override=5),
                                    {"pool.avg_pool2d_forward",
                                     "pool.avg_pool2d_backward"}, False),
    "adaptive_avg_pool2d_equal_bins": ([(2, 3, 6, 4)],
                                       lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
                                       {"pool.avg_pool2d_forward",
                                        "pool.avg_pool2d_backward"}, False),
    "batch_norm_train_4d": ([(4, 3, 5, 2), (3,), (3,)],
                            lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                            {"batchnorm.batch_norm_stats", "batchnorm.batch_norm_forward",
                             "batchnorm.batch_norm_backward"}, False),
    "batch_norm_train_2d_no_affine": ([(6, 5)],
                                      lambda x: F.batch_norm(x, None, None, training=True),
                                      {"batchnorm.batch_norm_stats",
                                       "batchnorm.batch_norm_forward",
                                       "batchnorm.batch_norm_backward"}, False),
    "batch_norm_train_3d_weight_only": ([(3, 4, 7), (4,)],
                                        lambda x, w: F.batch_norm(x, None, None, w,
                                                                  training=True),
                                        {"batchnorm.batch_norm_stats",
                                         "batchnorm.batch_norm_forward",
                                         "batchnorm.batch_norm_backward"}, False),
    # eval: y from the kernel; the gradient is plain array math (no kernel for it).
    "batch_norm_eval": ([(3, 4, 2, 3), (4,), (4,)],
                        lambda x, w, b: F.batch_norm(
                            x, md.tensor(np.linspace(-1, 1, 4, dtype=x.dtype)),
                            md.tensor(np.linspace(0.5, 2, 4, dtype=x.dtype)), w, b),
                        {"batchnorm.batch_norm_forward"}, False),
    "cross_entropy_mean_smoothing": ([(8, 5)],
                                     lambda x: F.cross_entropy(x, _target(8, classes=5),
                                                               label_smoothing=0.1),
                                     {"softmax_xent.softmax_xent_forward",
                                      "softmax_xent.softmax_xent_backward"}, False),
    "cross_entropy_sum": ([(6, 300)],
                          lambda x: F.cross_entropy(x, _target(6, classes=300),
                                                    reduction="sum"),
                          {"softmax_xent.softmax_xent_forward",
                           "softmax_xent.softmax_xent_backward"}, False),
    "cross_entropy_none_spatial": ([(2, 4, 3, 2)],
                                   lambda x: F.cross_entropy(x, _target(2, 3, 2, classes=4),
                                                             reduction="none",
                                                             label_smoothing=0.2),
                                   {"softmax_xent.softmax_xent_forward",
                                    "softmax_xent.softmax_xent_backward"}, False),
    "cross_entropy_unbatched": ([(5,)],
                                lambda x: F.cross_entropy(x, md.tensor(np.array(3))),
                                {"softmax_xent.softmax_xent_forward",
                                 "softmax_xent.softmax_xent_backward"}, False),
    # The kernels take neither class weights nor probability targets: the array path.
    "cross_entropy_weighted": ([(6, 4)],
                               lambda x: F.cross_entropy(
                                   x, _target(6, classes=4),
                                   weight=md.tensor(np.array([1.0, 2, 0.5, 3], x.dtype))),
                               set(), False),
    "cross_entropy_probabilities": ([(4, 3)],
                                    lambda x: F.cross_entropy(
                                        x, md.tensor(np.full((4, 3), 1 / 3, x.dtype))),
                                    set(), False),
    "leaky_relu": ([(5, 7)], lambda x: F.leaky_relu(x, 0.1),
                   {"activation.leaky_relu_forward", "activation.leaky_relu_backward"},
                   True),
    "gelu": ([(5, 7)], F.gelu, {"activation.gelu_forward", "activation.gelu_backward"},
             False),
    "gelu_tanh": ([(5, 7)], lambda x: F.gelu(x, approximate="tanh"),
                  {"activation.gelu_forward", "activation.gelu_backward"}, False),
    # sigmoid: the kernel forward only; its backward is Tensor math (double backward).
    "sigmoid": ([(5, 7)], F.sigmoid, {"activation.sigmoid_forward"}, False),
    "relu_tanh_stay_array_math": ([(5, 7)], lambda x: F.tanh(F.relu(x)), set(), True),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_path_matches_the_numpy_path(calls, case, dtype):
    shapes, fn, kernels, need_distinct = CASES[case]
    make = distinct if need_distinct else lambda s, d, i: rand(s, d, i, scale=2.0)
    arrays = [make(s, dtype, i) for i, s in enumerate(shapes)]
    with kernel_branches(False):
        gy = rand(fn(*[md.tensor(a) for a in arrays]).shape, dtype, 10)
    y_ref, grads_ref, ref_calls = run(calls, fn, arrays, gy, False)
    assert ref_calls == []
    y, grads, used = run(calls, fn, arrays, gy, True)
    assert set(used) == kernels, f"kernels run: {used}"
    assert y.dtype == dtype and y.shape == y_ref.shape
    close(y, y_ref, dtype, 10, msg=f"{case} output: ")
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref)):
        assert g.dtype == dtype
        close(g, g_ref, dtype, 10, msg=f"{case} gradient of input {i}: ")


def test_minidl_kernels_0_turns_every_branch_off(calls, monkeypatch):
    monkeypatch.setenv("MINIDL_KERNELS", "0")
    x = distinct((2, 3, 6, 6), np.float64, 0)
    w = rand((3, 3, 3, 3), np.float64, 1)

    def net(x, w):
        h = F.batch_norm(F.conv2d(x, w, stride=2, padding=1), None, None, training=True)
        return F.cross_entropy(F.max_pool2d(F.gelu(h), 2), _target(2, 1, 1, classes=3))
    _, _, used = run(calls, net, [x, w], np.float64(1), True)
    assert used == []
    monkeypatch.setenv("MINIDL_KERNELS", "1")
    _, _, used = run(calls, net, [x, w], np.float64(1), True)
    assert len(used) == 11, used       # both directions of five kernel families


def test_other_dtypes_take_the_array_path(calls):
    with kernel_branches(True):
        assert use_kernels(np.zeros(3)) and use_kernels(np.zeros(3, np.float32), None)
        assert not use_kernels(np.zeros(3, np.float16))
        assert not use_kernels(np.zeros(3), np.zeros(3, np.int64))
        assert not use_kernels() and not use_kernels(None)
        del calls[:]
        x = md.tensor(rand((2, 3, 6, 6), np.float16, 0), requires_grad=True)
        F.max_pool2d(F.batch_norm(x, None, None, training=True), 2).sum().backward()
        assert calls == [] and x.grad.dtype == np.float16


def test_max_pool2d_return_indices_and_nan_through_the_kernel(calls):
    x = distinct((2, 3, 7, 8), np.float64, 3)
    x[0, 1, 2, 2] = x[0, 1, 2, 3] = np.nan       # two NaNs in a window: the last one wins
    expected = F.max_pool2d(md.tensor(x), 3, 2, 1, return_indices=True)
    with kernel_branches(True):
        del calls[:]
        y, idx = F.max_pool2d(md.tensor(x), 3, 2, 1, return_indices=True)
        assert [c for c, _ in calls] == ["pool.max_pool2d_forward"]
    np.testing.assert_array_equal(y.numpy(), expected[0].numpy())
    np.testing.assert_array_equal(idx.numpy(), expected[1].numpy())
    assert idx.dtype == np.int64


def test_max_pool2d_kernel_backward_after_an_array_forward(calls):
    # The kernel backward reads indices(), which the array path derives from its winner.
    x = distinct((1, 2, 5, 6), np.float64, 4)
    t = md.tensor(x, requires_grad=True)
    y = F.max_pool2d(t, 3, 2, 1, ceil_mode=True)
    gy = rand(y.shape, np.float64, 5)
    with kernel_branches(True):
        del calls[:]
        y.backward(md.tensor(gy))
        assert [c for c, _ in calls] == ["pool.max_pool2d_backward"]
    ref = md.tensor(x, requires_grad=True)
    F.max_pool2d(ref, 3, 2, 1, ceil_mode=True).backward(md.tensor(gy))
    close(t.grad, ref.grad, np.float64)


def test_batch_norm_running_statistics_through_the_kernel(calls):
    x = rand((5, 3, 4, 4), np.float64, 1, scale=3.0) + 2
    stats = {}
    for on in (False, True):
        rm, rv = md.zeros(3, dtype="float64"), md.ones(3, dtype="float64")
        with kernel_branches(on):
            F.batch_norm(md.tensor(x), rm, rv, training=True, momentum=0.3)
        stats[on] = (rm.numpy(), rv.numpy())
    close(stats[True][0], stats[False][0], np.float64)
    close(stats[True][1], stats[False][1], np.float64)
    close(stats[True][1], 0.7 + 0.3 * x.var(axis=(0, 2, 3), ddof=1), np.float64)


def test_dropout_kernel_mask_seed_and_backward(calls):
    x = rand((6, 7, 5), np.float64, 2) + 5.0     # no zeros: y == 0 exactly where dropped
    p = 0.3
    with kernel_branches(True):
        md.manual_seed(11)
        del calls[:]
        t = md.tensor(x, requires_grad=True)
        y = F.dropout(t, p)
        gy = rand(x.shape, np.float64, 3)
        y.backward(md.tensor(gy))
        (fwd, args), (bwd, _) = calls
        assert (fwd, bwd) == ("dropout.dropout_forward", "dropout.dropout_backward")
        seed = args[2]
        mask = dropout.dropout_mask_numpy(x.shape, p, seed)
        np.testing.assert_array_equal(y.numpy(), np.where(mask, x / (1 - p), 0))
        np.testing.assert_array_equal(t.grad.numpy(), np.where(mask, gy / (1 - p), 0))
        assert 0.5 < mask.mean() < 0.9
        md.manual_seed(11)                       # the seed comes from minidl's generator
        np.testing.assert_array_equal(F.dropout(md.tensor(x), p).numpy(), y.numpy())
        other = F.dropout(md.tensor(x), p).numpy()
        assert calls[-1][1][2] != seed and (other != y.numpy()).any()
        # p = 1 drops everything, with finite values and a zero gradient.
        t1 = md.tensor(x, requires_grad=True)
        y1 = F.dropout(t1, 1.0)
        y1.backward(md.tensor(gy))
        assert (y1.numpy() == 0).all() and (t1.grad.numpy() == 0).all()


def test_dropout2d_and_drop_path_masks_stay_on_the_array_path(calls):
    x = rand((4, 6, 3, 3), np.float64, 2)
    results = {}
    for on in (False, True):
        with kernel_branches(on):
            del calls[:]
            md.manual_seed(5)
            results[on] = (F.dropout2d(md.tensor(x), 0.5).numpy(),
                           F.drop_path(md.tensor(x), 0.5).numpy())
            assert calls == []
    for a, b in zip(results[False], results[True]):
        np.testing.assert_array_equal(a, b)


def test_gradcheck_through_the_kernels(calls):
    # The whole chain conv -> batch norm -> leaky relu -> max pool -> cross-entropy, every
    # step on its kernel branch, against central differences.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 5, 5))
    w = rng.standard_normal((3, 2, 3, 3)) * 0.5
    g = rng.standard_normal(3) + 1.5
    target = md.tensor(np.array([[[1, 0], [2, 1]], [[0, 0], [2, -100]]]))

    def net(x, w, g):
        h = F.leaky_relu(F.batch_norm(F.conv2d(x, w, stride=2, padding=1), None, None, g,
                                      training=True), 0.1)
        return F.cross_entropy(F.max_pool2d(h, 2, 1), target)    # (2, 3, 2, 2) logits
    with kernel_branches(True):
        del calls[:]
        ts = [md.tensor(a, requires_grad=True) for a in (x, w, g)]
        assert gradcheck(net, ts, fast=True)
        assert {"im2col.im2col", "im2col.col2im", "batchnorm.batch_norm_backward",
                "activation.leaky_relu_backward", "pool.max_pool2d_backward",
                "softmax_xent.softmax_xent_backward"} <= {c for c, _ in calls}


def test_sigmoid_kernel_forward_keeps_double_backward(calls):
    x = md.tensor(rand((3, 4), np.float64, 6), requires_grad=True)
    with kernel_branches(True):
        del calls[:]
        assert gradgradcheck(F.sigmoid, [x])
        assert {c for c, _ in calls} == {"activation.sigmoid_forward"}


# ---- conv2d's GPU-shaped branches --------------------------------------------------------
class _NumpyUnderAnotherName:
    """NumPy's functions behind an object that is not the numpy module.

    conv.py chooses its CPU-only forms by ``xp is np``: chunks of a few samples shared
    over minidl's threads, the row-shift form, columns kept for backward. On a GPU xp
    is cupy and none of them is taken: the whole batch is one chunk, run in the calling
    thread, its bias gradient summed inside that chunk. With this object as conv.py's
    array module, those GPU branches run on NumPy arrays (and, with kernel_branches
    on, through the emulated im2col.cu), so their logic is checked without a GPU.
    """

    def __getattr__(self, name):
        return getattr(np, name)


@contextlib.contextmanager
def gpu_shaped_conv(monkeypatch):
    xp = _NumpyUnderAnotherName()
    with monkeypatch.context() as mp:
        mp.setattr(conv, "get_array_module", lambda *arrays: xp)
        with kernel_branches(True):
            yield


# (x, W, b or None, conv2d keyword arguments): ResNet's 3x3 stride-1 conv (on the CPU:
# the row-shift form and threads), a strided one (x's columns and col2im; on the CPU the
# columns are kept from forward), a channel-widening one without padding (gcols and
# col2im, as LeNet-5's second), a grouped dilated one, and a 1x1 one.
GPU_SHAPED_CONVS = {
    "3x3_stride1_bias": ((3, 48, 16, 16), (32, 48, 3, 3), (32,), dict(padding=1)),
    "3x3_stride2_bias": ((3, 8, 9, 9), (12, 8, 3, 3), (12,), dict(stride=2, padding=1)),
    "5x5_widening": ((4, 3, 10, 10), (16, 3, 5, 5), (16,), dict()),
    "grouped_dilated": ((2, 4, 9, 8), (6, 2, 3, 3), None,
                        dict(padding=(2, 1), dilation=(2, 1), groups=2)),
    "1x1_stride2": ((3, 8, 7, 7), (5, 8, 1, 1), (5,), dict(stride=2)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(GPU_SHAPED_CONVS))
def test_conv2d_gpu_branches_match_the_cpu_branches(calls, monkeypatch, case, dtype):
    x_shape, w_shape, b_shape, kwargs = GPU_SHAPED_CONVS[case]
    shapes = [x_shape, w_shape] + ([b_shape] if b_shape else [])
    arrays = [rand(s, dtype, i) for i, s in enumerate(shapes)]

    def fn(*ts):
        return F.conv2d(*ts, **kwargs)
    with kernel_branches(False):
        gy = rand(fn(*[md.tensor(a) for a in arrays]).shape, dtype, 10)
    chunk_runs = []         # (number of chunks, shared over threads) of each conv call
    real_map_gemm_chunks = conv.map_gemm_chunks

    def spy(make_worker, chunks, combine=None, share=True):
        chunk_runs.append((len(chunks), share))
        return real_map_gemm_chunks(make_worker, chunks, combine, share)
    monkeypatch.setattr(conv, "map_gemm_chunks", spy)
    # the CPU side: one sample per chunk, shared over the threads whatever the size
    for name in ("SHARED_MIN_ROWS", "CHUNK_COLUMNS", "CHUNK_COPY_VALUES"):
        monkeypatch.setattr(conv, name, 1)
    before = md.get_num_threads()
    md.set_num_threads(2)
    try:
        y_ref, grads_ref, _ = run(calls, fn, arrays, gy, False)
        cpu_runs, chunk_runs[:] = chunk_runs[:], []
        with gpu_shaped_conv(monkeypatch):
            y, grads, used = run(calls, fn, arrays, gy, True)
    finally:
        md.set_num_threads(before)
    if w_shape[2:] != (1, 1):
        # forward and backward: the whole batch as one chunk, in the calling thread,
        # where the CPU side cut it into chunks shared over two threads
        assert chunk_runs == [(1, False)] * 2, chunk_runs
        assert cpu_runs == [(x_shape[0], True)] * 2, cpu_runs
        assert "im2col.im2col" in used, f"kernels run: {used}"
    # The two sides sum in different orders (the row-shift form, chunks): in float32
    # each result is compared at its own scale.
    def scale(a):
        return 10 * max(1.0, float(np.abs(a).max()))
    close(y, y_ref, dtype, scale(y_ref), msg=f"{case} output: ")
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref)):
        assert g.dtype == dtype
        close(g, g_ref, dtype, scale(g_ref), msg=f"{case} gradient of input {i}: ")


def test_conv2d_gpu_branches_gradcheck(calls, monkeypatch):
    # central differences through the GPU-shaped branches, bias included
    rng = np.random.default_rng(1)
    arrays = (rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)) * 0.5,
              rng.standard_normal(4))
    with gpu_shaped_conv(monkeypatch):
        ts = [md.tensor(a, requires_grad=True) for a in arrays]
        assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1), ts)

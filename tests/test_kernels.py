"""The CUDA kernels without a GPU: registry, package data, nvcc, and a CPU emulation.

* The registry: every kernel the launchers (kernels/*.py) ask for exists in the .cu file
  they name, and every kernel of every .cu file is asked for, by parsing both sides.
* The .cu files are package data of minidl.kernels (read through importlib.resources).
* nvcc compiles every .cu to PTX for sm_90 and for a portable architecture.
* Every launcher runs its kernels on the CPU through minidl.kernels.emulate (g++, one OS
  thread per CUDA thread) and is compared with NumPy or PyTorch on the same inputs:
  float64 to 1e-10, float32 to 1e-5 relative. The emulator also checks that each launch
  passes arrays of the right dtype and scalars of the exact C type.

tests/test_gpu.py runs the same launchers on a real GPU.
"""
import importlib.resources
import math
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl.kernels import activation, batchnorm, dropout, emulate, im2col, loader, pool
from minidl.kernels import softmax_xent, use_kernels
from minidl.testing import assert_close
from minidl.testing import strategies as mst

KERNELS_DIR = pathlib.Path(__file__).resolve().parent.parent / "kernels"
DTYPES = [np.float64, np.float32]
TOL = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12),
       np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6)}


def close(actual, expected, dtype=None, scale=1.0):
    """assert_close with the tolerance of ``dtype`` (atol scaled to the data)."""
    tol = TOL[np.dtype(dtype if dtype is not None else np.asarray(actual).dtype)]
    assert_close(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


# ---- registry --------------------------------------------------------------------------
_GLOBAL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(')
_DEVICE_TEMPLATE = re.compile(r"template\s*<typename T>\s*__device__\s+T\s+(\w+)\s*\(")
_LOAD = re.compile(r'loader\.kernel\(\s*"(\w+\.cu)"\s*,\s*"(\w+)"\s*(,)?')
_ELEMENTWISE_FILE = re.compile(r'loader\.elementwise\(\s*"(\w+\.cu)"')
_ELEMENTWISE_OP = re.compile(r'"(\w+)":\s*\("[^"]*",\s*"[^"]*",\s*"\w+ = (\w+)\(')


def _cu_sources():
    return {p.name: p.read_text() for p in sorted(KERNELS_DIR.glob("*.cu"))}


def _py_sources():
    return {p.name: p.read_text() for p in sorted(KERNELS_DIR.glob("*.py"))}


def test_cu_files_are_the_loaders_list():
    assert sorted(_cu_sources()) == sorted(loader.CU_FILES)


def registry_problems(cu: dict, py: dict) -> list:
    """What is wrong between the .cu sources and the launchers: a kernel asked for but not
    defined, a kernel defined but never asked for, and the same for the per-value
    functions of a file used as an ElementwiseKernel preamble."""
    defined = {(f, name) for f, code in cu.items() for name in _GLOBAL.findall(code)}
    loaded, ew_used, problems = set(), set(), []
    for pyname, code in py.items():
        for f, name, typed in _LOAD.findall(code):
            # With a dtype argument the launcher gets name_float / name_double.
            loaded |= {(f, name + "_float"), (f, name + "_double")} if typed else {(f, name)}
        ew_files = set(_ELEMENTWISE_FILE.findall(code))
        for key, fn in _ELEMENTWISE_OP.findall(code):
            if key != fn:
                problems.append(f"{pyname}: elementwise kernel {key!r} calls {fn!r}")
            if len(ew_files) != 1:
                problems.append(f"{pyname}: elementwise kernels of {len(ew_files)} files")
            else:
                ew_used.add((next(iter(ew_files)), fn))
    device_fns = {(f, name) for f in {f for f, _ in ew_used}
                  for name in _DEVICE_TEMPLATE.findall(cu.get(f, ""))}
    problems += [f"asked for but not defined: {f} {n}" for f, n in sorted(loaded - defined)]
    problems += [f"defined but never used: {f} {n}" for f, n in sorted(defined - loaded)]
    problems += [f"elementwise body without a function: {f} {n}"
                 for f, n in sorted(ew_used - device_fns)]
    problems += [f"function no elementwise kernel uses: {f} {n}"
                 for f, n in sorted(device_fns - ew_used)]
    return problems


def test_registry_every_loaded_kernel_exists_and_every_kernel_is_loaded():
    cu, py = _cu_sources(), _py_sources()
    assert _LOAD.findall(py["pool.py"]), "no loader.kernel call found: regex out of date"
    assert _ELEMENTWISE_OP.findall(py["activation.py"]), "elementwise regex out of date"
    assert registry_problems(cu, py) == []


def test_registry_catches_a_missing_and_an_unused_kernel():
    cu, py = _cu_sources(), _py_sources()
    broken = dict(cu, **{"pool.cu": cu["pool.cu"].replace("avg_pool2d_backward_double(",
                                                          "avg_pool2d_backward_dbl(")})
    assert registry_problems(broken, py) == [
        "asked for but not defined: pool.cu avg_pool2d_backward_double",
        "defined but never used: pool.cu avg_pool2d_backward_dbl"]
    unused = dict(cu, **{"activation.cu": cu["activation.cu"] + (
        "template <typename T>\n__device__ T swish_forward(T x) { return x; }\n")})
    assert registry_problems(unused, py) == [
        "function no elementwise kernel uses: activation.cu swish_forward"]
    no_call = dict(py, **{"dropout.py": py["dropout.py"].replace(
        'loader.kernel("dropout.cu", "dropout_mask")', "None")})
    assert registry_problems(cu, no_call) == ["defined but never used: dropout.cu dropout_mask"]


def test_registry_matches_the_elementwise_table():
    names = set(activation.ELEMENTWISE)
    assert names == set(_DEVICE_TEMPLATE.findall(_cu_sources()["activation.cu"]))
    # Every one is instantiated for float and double, so nvcc checks both in CI.
    code = _cu_sources()["activation.cu"]
    for name in names:
        assert re.search(rf"template __device__ T {name}<T>\(", code), name


def test_typed_kernels_exist_for_float_and_double():
    for f, code in _cu_sources().items():
        names = set(_GLOBAL.findall(code))
        for name in names:
            for a, b in (("_float", "_double"), ("_double", "_float")):
                if name.endswith(a):
                    assert name[: -len(a)] + b in names, f"{f}: {name} without its twin"


def test_cu_files_are_installed_package_data():
    package = importlib.resources.files("minidl.kernels")
    for name in loader.CU_FILES:
        text = package.joinpath(name).read_text()
        assert text == (KERNELS_DIR / name).read_text()
        assert '__global__' in text or "__device__" in text
    assert "max_pool2d_forward_float" in loader.source("pool.cu")
    with pytest.raises(ValueError, match="unknown source file"):
        loader.source("nope.cu")


def test_no_host_headers_in_cu_files():
    # NVRTC compiles them at run time without the host's C library headers.
    for f, code in _cu_sources().items():
        assert not re.search(r"^\s*#\s*include", code, re.M), f"{f} includes a header"


def test_use_kernels_is_false_without_cupy_arrays(monkeypatch):
    x = np.zeros(3)
    assert use_kernels(x) is False
    assert use_kernels() is False
    monkeypatch.setenv("MINIDL_KERNELS", "0")
    assert use_kernels(x) is False


def test_importing_the_kernels_does_not_import_cupy():
    code = ("import sys, minidl, minidl.kernels, minidl.kernels.pool, minidl.kernels.loader, "
            "minidl.kernels.activation, minidl.kernels.batchnorm, minidl.kernels.dropout, "
            "minidl.kernels.im2col, minidl.kernels.softmax_xent, minidl.kernels.emulate; "
            "assert 'cupy' not in sys.modules, 'cupy imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- nvcc ------------------------------------------------------------------------------
def _portable_arch(nvcc):
    """The oldest virtual architecture this nvcc supports (compute_70 or newer)."""
    out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True)
    archs = sorted(int(a) for a in re.findall(r"compute_(\d+)", out.stdout))
    archs = [a for a in archs if a >= 70]
    return f"compute_{archs[0]}" if archs else "compute_75"


def test_every_cu_file_compiles_with_nvcc(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH: the CUDA sources cannot be compiled here")
    files = [str(KERNELS_DIR / f) for f in loader.CU_FILES]
    procs = []
    for arch in ("sm_90", _portable_arch(nvcc)):
        out = tmp_path / arch
        out.mkdir()
        # -rdc=true keeps the device functions of activation.cu in the PTX, so every
        # template instantiation is compiled, not just parsed.
        procs.append((arch, subprocess.Popen(
            [nvcc, "-ptx", "-rdc=true", f"-arch={arch}", "--std=c++14", "-Werror",
             "all-warnings", "-odir", str(out), *files],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    for arch, proc in procs:
        log, _ = proc.communicate()
        assert proc.returncode == 0, f"nvcc -arch={arch} failed:\n{log}"
        for f in loader.CU_FILES:
            ptx = (tmp_path / arch / f.replace(".cu", ".ptx")).read_text()
            for name in _GLOBAL.findall((KERNELS_DIR / f).read_text()):
                assert f".entry {name}(" in ptx, f"{name} missing from {f}'s PTX ({arch})"


# ---- the emulator ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def emulator():
    if not emulate.gxx_available():
        pytest.skip("g++ not on PATH: the CPU emulation of the CUDA kernels needs it")
    # 32-thread blocks: the kernels take any power-of-two block size, and an OS thread per
    # CUDA thread is costly (test_emulator_barrier_and_shared_memory runs full blocks).
    emu = emulate.Emulator({"activation.cu": activation.ELEMENTWISE}, max_threads=32)
    emu.compile()
    return emu


@pytest.fixture(scope="module")
def emulated(emulator):
    """The launchers' loader.kernel / loader.elementwise replaced by the emulator."""
    mp = pytest.MonkeyPatch()
    mp.setattr(loader, "kernel", emulator.kernel)
    mp.setattr(loader, "elementwise", emulator.elementwise)
    yield emulator
    mp.undo()


def test_emulator_rejects_a_wrongly_typed_argument(emulated):
    k = emulated.kernel("dropout.cu", "dropout_backward", np.float32)
    gy, mask, gx = np.ones(4, np.float32), np.ones(4, bool), np.empty(4, np.float32)
    with pytest.raises(TypeError, match="numpy.int64"):
        k((1,), (32,), (gy, mask, gx, 4, np.float32(1)))           # a Python int
    with pytest.raises(TypeError, match="float32"):
        k((1,), (32,), (gy.astype(np.float64), mask, gx, np.int64(4), np.float32(1)))
    with pytest.raises(TypeError, match="5 arguments"):
        k((1,), (32,), (gy, mask, gx, np.int64(4)))
    k((1,), (32,), (gy, mask, gx, np.int64(4), np.float32(0.5)))
    assert (gx == 2).all()


def test_emulator_barrier_and_shared_memory_with_full_blocks(emulator):
    # Block reductions need __syncthreads and __shared__ to be real: 512 and 128 threads.
    full = emulate.Emulator()
    mp = pytest.MonkeyPatch()
    mp.setattr(loader, "kernel", full.kernel)
    try:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((3, 2, 700))
        mean, var = batchnorm.batch_norm_stats(x)
        close(mean, x.mean(axis=(0, 2)))
        close(var, x.var(axis=(0, 2)))
        logits = rng.standard_normal((2, 300))
        loss, _ = softmax_xent.softmax_xent_forward(logits, np.array([3, 299]))
        lse = np.log(np.exp(logits).sum(1))
        close(loss, lse - logits[[0, 1], [3, 299]])
    finally:
        mp.undo()


def test_block_sizes_agree_with_the_cu_files():
    cu = _cu_sources()
    assert f"#define BN_THREADS {batchnorm.BN_THREADS}\n" in cu["batchnorm.cu"]
    assert f"#define XENT_THREADS {softmax_xent.XENT_THREADS}\n" in cu["softmax_xent.cu"]


# ---- im2col / col2im -------------------------------------------------------------------
@settings(max_examples=15)
@given(params=mst.conv_params(allow_groups=False), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**31))
def test_im2col_col2im_match_numpy(emulated, params, dtype, seed):
    from minidl.ops.conv import col2im as np_col2im
    from minidl.ops.conv import im2col as np_im2col
    x = np.random.default_rng(seed).standard_normal(params["x_shape"]).astype(dtype)
    kh, kw = params["w_shape"][2:]
    (sh, sw), (ph, pw), (dh, dw) = params["stride"], params["padding"], params["dilation"]
    cols = im2col.im2col(x, kh, kw, sh, sw, ph, pw, dh, dw)
    expected = np_im2col(x, (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    assert cols.shape == expected.shape and cols.dtype == x.dtype
    assert cols.strides == expected.strides          # the same memory layout
    np.testing.assert_array_equal(cols, expected)
    # The GEMM view of cols needs no copy, as with the NumPy im2col.
    C = x.shape[1]
    assert np.shares_memory(cols.transpose(1, 2, 3, 0, 4, 5).reshape(C * kh * kw, -1), cols)
    g = np.random.default_rng(seed + 1).standard_normal(cols.shape).astype(dtype)
    gx = im2col.col2im(g, x.shape, kh, kw, sh, sw, ph, pw, dh, dw)
    close(gx, np_col2im(g, x.shape, (kh, kw), (sh, sw), (ph, pw), (dh, dw)), dtype, 10)


def test_im2col_asymmetric_padding(emulated):
    from minidl.ops.conv import im2col as np_im2col
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 5))
    cols = im2col.im2col(x, 2, 3, 1, 2, (0, 1), (1, 2), 1, 1)
    np.testing.assert_array_equal(cols, np_im2col(x, (2, 3), (1, 2), ((0, 1), (1, 2)), 1))


def test_im2col_bad_input(emulated):
    with pytest.raises(ValueError, match="larger than the padded input"):
        im2col.im2col(np.zeros((1, 1, 2, 2)), 3, 3, 1, 1, 0, 0, 1, 1)
    with pytest.raises(TypeError, match="int64"):
        im2col.im2col(np.zeros((1, 1, 4, 4), np.int64), 3, 3, 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="col2im: cols has shape"):
        im2col.col2im(np.zeros((1, 2, 3, 3, 2, 2)), (1, 1, 4, 4), 3, 3, 1, 1, 0, 0, 1, 1)


# ---- pooling ---------------------------------------------------------------------------
@settings(max_examples=12)
@given(params=mst.pool_params(), dtype=st.sampled_from(DTYPES), data=st.data())
def test_max_pool2d_matches_torch(emulated, params, dtype, data):
    torch = pytest.importorskip("torch")
    x = data.draw(mst.distinct_arrays(params["x_shape"], dtype=dtype))
    (kh, kw), (sh, sw) = params["kernel_size"], params["stride"]
    (ph, pw), (dh, dw), ceil = params["padding"], params["dilation"], params["ceil_mode"]
    y, idx = pool.max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, ceil)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt, it = torch.nn.functional.max_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), (dh, dw),
                                            ceil_mode=ceil, return_indices=True)
    assert y.shape == tuple(yt.shape) and y.dtype == x.dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    gy = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(gy))
    close(pool.max_pool2d_backward(gy, idx, x.shape), xt.grad.numpy(), dtype)


def test_max_pool2d_ties_nan_and_padding(emulated):
    x = np.ones((1, 1, 4, 4))
    y, idx = pool.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1)
    np.testing.assert_array_equal(idx[0, 0], [[0, 2], [8, 10]])  # first maximum on ties
    x = -np.arange(16.0).reshape(1, 1, 4, 4) - 1                # all negative: pad loses
    y, idx = pool.max_pool2d_forward(x, 3, 3, 2, 2, 1, 1, 1, 1)
    np.testing.assert_array_equal(y[0, 0], [[-1, -2], [-5, -6]])
    np.testing.assert_array_equal(idx[0, 0], [[0, 1], [4, 5]])
    x[0, 0, 1, 1] = np.nan
    y, idx = pool.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 5
    x[0, 0, 0, 1] = np.nan       # two NaNs in one window: the last one wins, as in PyTorch
    y, idx = pool.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 5
    # A window that reads padding alone: -inf (PyTorch's value), no winner, no gradient.
    x = np.full((1, 1, 1, 1), 3.0)
    y, idx = pool.max_pool2d_forward(x, 2, 1, 1, 1, 1, 0, 2, 1)
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == -np.inf and idx[0, 0, 0, 0] == -1
    assert not pool.max_pool2d_backward(np.ones_like(y), idx, x.shape).any()
    # Overlapping windows that share a winner add their gradients.
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1
    y, idx = pool.max_pool2d_forward(x, 2, 2, 1, 1, 0, 0, 1, 1)
    gx = pool.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    assert gx[0, 0, 1, 1] == 4 and gx.sum() == 4


@settings(max_examples=25)
@given(params=mst.pool_params(max_dilation=1), dtype=st.sampled_from(DTYPES),
       include_pad=st.booleans(), divisor=st.sampled_from([None, None, 1, 3]),
       seed=st.integers(0, 2**31))
def test_avg_pool2d_matches_torch(emulated, params, dtype, include_pad, divisor, seed):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(seed).standard_normal(params["x_shape"]).astype(dtype)
    (kh, kw), (sh, sw) = params["kernel_size"], params["stride"]
    (ph, pw), ceil = params["padding"], params["ceil_mode"]
    y = pool.avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, ceil, include_pad, divisor)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = torch.nn.functional.avg_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil,
                                        count_include_pad=include_pad,
                                        divisor_override=divisor)
    close(y, yt.detach().numpy(), dtype)
    gy = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(gy))
    gx = pool.avg_pool2d_backward(gy, x.shape, kh, kw, sh, sw, ph, pw, ceil, include_pad,
                                  divisor)
    close(gx, xt.grad.numpy(), dtype)


def test_pool_output_size_ceil_mode_rule():
    # PyTorch drops a last window that would start in the right padding.
    assert pool.pool_output_size(5, 2, 2, 0, 1, True) == 3
    assert pool.pool_output_size(4, 2, 2, 1, 1, True) == 3
    assert pool.pool_output_size(4, 2, 2, 1, 1, False) == 3
    assert pool.pool_output_size(6, 3, 3, 1, 1, True) == 3
    assert pool.pool_output_size(5, 3, 3, 1, 1, True) == 2


# ---- batch norm ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4, 5), (3, 2, 7)])
def test_batch_norm_matches_torch(emulated, dtype, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    C = shape[1]
    w = rng.standard_normal(C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    eps = 1e-5
    mean, var = batchnorm.batch_norm_stats(x)
    axes = (0,) + tuple(range(2, x.ndim))
    x64 = x.astype(np.float64)
    close(mean, x64.mean(axis=axes), dtype)
    close(var, x64.var(axis=axes), dtype)
    y = batchnorm.batch_norm_forward(x, mean, var, w, b, eps)
    xt = torch.from_numpy(x).requires_grad_(True)
    wt = torch.from_numpy(w).requires_grad_(True)
    bt = torch.from_numpy(b).requires_grad_(True)
    yt = torch.nn.functional.batch_norm(xt, None, None, wt, bt, training=True, eps=eps)
    close(y, yt.detach().numpy(), dtype, 10)
    gy = rng.standard_normal(shape).astype(dtype)
    yt.backward(torch.from_numpy(gy))
    gx, gw, gb = batchnorm.batch_norm_backward(gy, x, mean, var, w, eps)
    close(gx, xt.grad.numpy(), dtype, 10)
    close(gw, wt.grad.numpy(), dtype, 10)
    close(gb, bt.grad.numpy(), dtype, 10)


def test_batch_norm_without_affine_and_many_channels(emulator):
    # Fewer blocks than channels: the per-channel loop must cover them all; and the
    # elementwise forward strides over several channels and planes per step.
    emu = emulate.Emulator(max_blocks=2, max_threads=64)
    mp = pytest.MonkeyPatch()
    mp.setattr(loader, "kernel", emu.kernel)
    try:
        rng = np.random.default_rng(3)
        x = rng.standard_normal((3, 7, 5, 3))
        mean, var = batchnorm.batch_norm_stats(x)
        close(var, x.var(axis=(0, 2, 3)))
        y = batchnorm.batch_norm_forward(x, mean, var, None, None, 1e-5)
        xhat = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
        close(y, xhat, scale=10)
        gy = rng.standard_normal(x.shape)
        gx, gw, gb = batchnorm.batch_norm_backward(gy, x, mean, var, None, 1e-5)
        axes = (0, 2, 3)
        expected = (gy - gy.mean(axes, keepdims=True)
                    - xhat * (gy * xhat).mean(axes, keepdims=True)) / np.sqrt(
            var[:, None, None] + 1e-5)
        close(gx, expected, scale=10)
        close(gw, (gy * xhat).sum(axes), scale=10)
        close(gb, gy.sum(axes), scale=10)
    finally:
        mp.undo()


@pytest.mark.parametrize("max_blocks", [None, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_channel_sums_split_over_blocks(emulator, dtype, max_blocks, monkeypatch):
    # Few values per block, so each channel is split over several blocks with runs of
    # unequal length that cross sample boundaries; with max_blocks=2 the grid holds fewer
    # blocks than splits. A mean of 1e4 and std 1 tests the shifted sums' precision; a
    # constant channel must have a variance of exactly 0.
    emu = emulate.Emulator(max_blocks=max_blocks, max_threads=16)
    monkeypatch.setattr(loader, "kernel", emu.kernel)
    monkeypatch.setattr(batchnorm, "MIN_VALUES_PER_THREAD", 1)
    monkeypatch.setattr(batchnorm, "BN_THREADS", 16)
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((5, 3, 4, 5)) + 1e4).astype(dtype)
    x[:, 2] = 7.25
    M = 5 * 4 * 5
    assert batchnorm._splits(3, M) == 7 and M % 7     # 15 values per run, the last 10
    mean, var = batchnorm.batch_norm_stats(x)
    x64 = x.astype(np.float64)
    close(mean, x64.mean(axis=(0, 2, 3)), dtype)
    assert_close(var, x64.var(axis=(0, 2, 3)), rtol=1e-5 if dtype == np.float32 else 1e-10)
    assert var[2] == 0 and mean[2] == 7.25
    w = rng.standard_normal(3).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    gx, gw, gb = batchnorm.batch_norm_backward(gy, x, mean, var, w, 1e-5)
    invstd = 1 / np.sqrt(var.astype(np.float64) + 1e-5)[:, None, None]
    xhat = (x64 - mean.astype(np.float64)[:, None, None]) * invstd
    axes = (0, 2, 3)
    close(gb, gy.sum(axes), dtype, 10)
    close(gw, (gy * xhat).sum(axes), dtype, 10)
    expected = w[:, None, None] * invstd * (gy - gy.mean(axes, keepdims=True)
                                            - xhat * (gy * xhat).mean(axes, keepdims=True))
    close(gx, expected, dtype, 10)


def test_batch_norm_bad_input(emulated):
    with pytest.raises(ValueError, match="weight must have shape"):
        batchnorm.batch_norm_forward(np.zeros((2, 3)), np.zeros(3), np.ones(3), np.ones(4),
                                     None, 1e-5)
    with pytest.raises(ValueError, match=r"\(N, C, \.\.\.\)"):
        batchnorm.batch_norm_stats(np.zeros(3))


# ---- dropout ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_mask_is_the_numpy_hash_and_reproducible(emulated, dtype):
    x = np.random.default_rng(0).standard_normal((4, 5, 6)).astype(dtype)
    p = 0.3
    y, mask = dropout.dropout_forward(x, p, seed=1234, offset=7)
    expected_mask = dropout.dropout_mask_numpy(x.shape, p, 1234, 7)
    np.testing.assert_array_equal(mask, expected_mask)
    np.testing.assert_array_equal(y, x * mask / (1 - p))   # bit for bit
    y2, mask2 = dropout.dropout_forward(x, p, seed=1234, offset=7)
    np.testing.assert_array_equal(y2, y)
    _, other = dropout.dropout_forward(x, p, seed=1235, offset=7)
    assert (other != mask).any()
    gy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(dropout.dropout_backward(gy, mask, p), gy * mask / (1 - p))
    standalone = dropout.dropout_mask((4, 5, 6), p, 1234, 7, xp=np)
    np.testing.assert_array_equal(standalone, mask)


def test_dropout_statistics_and_edge_probabilities(emulated):
    x = np.ones(200_000, np.float32)
    y, mask = dropout.dropout_forward(x, 0.25, seed=5)
    assert abs(mask.mean() - 0.75) < 0.005                  # about 0.75 kept
    assert abs(y.mean() - 1.0) < 0.01                       # inverted dropout: mean kept
    # Consecutive offsets continue one stream: two half draws equal one full draw.
    half = dropout.dropout_mask((1000,), 0.5, 9, 0, xp=np)
    rest = dropout.dropout_mask((1000,), 0.5, 9, 1000, xp=np)
    np.testing.assert_array_equal(np.concatenate([half, rest]),
                                  dropout.dropout_mask((2000,), 0.5, 9, 0, xp=np))
    y0, m0 = dropout.dropout_forward(x[:100], 0.0, seed=1)
    assert m0.all() and (y0 == 1).all()
    y1, m1 = dropout.dropout_forward(x[:100], 1.0, seed=1)
    assert not m1.any() and (y1 == 0).all() and np.isfinite(y1).all()
    with pytest.raises(ValueError, match="p must be in"):
        dropout.dropout_forward(x, 1.5, seed=1)
    with pytest.raises(TypeError, match="seed"):
        dropout.dropout_forward(x, 0.5, seed=-1)


# ---- softmax cross-entropy -------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(6, 5), (3, 200), (2, 4, 3)])
def test_softmax_xent_matches_torch(emulated, dtype, smoothing, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(shape[1])
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    C = shape[1]
    target = rng.integers(0, C, size=(shape[0],) + shape[2:])
    target.reshape(-1)[1] = -100                           # an ignored row
    loss, prob = softmax_xent.softmax_xent_forward(logits, target, -100, smoothing)
    xt = torch.from_numpy(logits).requires_grad_(True)
    lt = torch.nn.functional.cross_entropy(xt, torch.from_numpy(target), reduction="none",
                                           ignore_index=-100, label_smoothing=smoothing)
    assert loss.shape == target.shape and loss.dtype == logits.dtype
    close(loss, lt.detach().numpy(), dtype, 10)
    close(prob, torch.softmax(xt, 1).detach().numpy(), dtype)
    scale = rng.standard_normal(target.shape).astype(dtype)
    lt.backward(torch.from_numpy(scale))
    grad = softmax_xent.softmax_xent_backward(prob, target, scale, -100, smoothing)
    close(grad, xt.grad.numpy(), dtype)
    # A scalar scale (a mean reduction) broadcasts over the rows.
    grad_mean = softmax_xent.softmax_xent_backward(prob, target, 0.5, -100, smoothing)
    expected = softmax_xent.softmax_xent_backward(prob, target, np.full(target.shape, 0.5),
                                                  -100, smoothing)
    np.testing.assert_array_equal(grad_mean, expected)


def test_softmax_xent_is_stable_for_huge_logits(emulated):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4 + 1]])
    loss, prob = softmax_xent.softmax_xent_forward(logits, np.array([1, 2]))
    assert np.isfinite(loss).all() and np.isfinite(prob).all()
    close(loss, [2e4, math.log(1 + 2 * math.exp(-1))])
    # The loss is taken as (max - x[t]) + log(sum exp(x - max)), not lse - x[t]: at 1e4 a
    # float32 step is 1e-3, and lse - x[t] rounded log 2 to 0.69336.
    logits = np.array([[-1e4, 1e4, 1e4]], dtype=np.float32)
    loss, _ = softmax_xent.softmax_xent_forward(logits, np.array([2]))
    close(loss, [math.log(2)], np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_xent_with_masked_logits(emulated, dtype):
    # -inf logits (masked classes) have probability 0; the loss stays finite without
    # smoothing (0 * -inf in the smoothing term gave NaN) and is inf with it, as in PyTorch.
    inf = np.inf
    logits = np.array([[2.0, -inf, 0.5, -inf], [-inf, 1e4, -1.0, 3.0]], dtype=dtype)
    target = np.array([0, 1])
    loss, prob = softmax_xent.softmax_xent_forward(logits, target)
    finite = np.where(np.isinf(logits), -inf, logits).astype(np.float64)
    lse = np.log(np.exp(finite - finite.max(1, keepdims=True)).sum(1)) + finite.max(1)
    close(loss, lse - finite[[0, 1], target], dtype)
    assert (prob[np.isinf(logits)] == 0).all()
    loss, _ = softmax_xent.softmax_xent_forward(logits, target, label_smoothing=0.1)
    assert (loss == inf).all()


def test_softmax_xent_many_rows_few_blocks_and_bad_label():
    if not emulate.gxx_available():
        pytest.skip("g++ not on PATH: the CPU emulation of the CUDA kernels needs it")
    emu = emulate.Emulator(max_blocks=2, max_threads=32)
    mp = pytest.MonkeyPatch()
    mp.setattr(loader, "kernel", emu.kernel)
    try:
        rng = np.random.default_rng(4)
        logits = rng.standard_normal((9, 4))
        target = rng.integers(0, 4, size=9)
        loss, prob = softmax_xent.softmax_xent_forward(logits, target)
        lse = np.log(np.exp(logits).sum(1))
        close(loss, lse - logits[np.arange(9), target])
        target[3] = 4                                       # out of range: NaN, not garbage
        loss, _ = softmax_xent.softmax_xent_forward(logits, target)
        assert np.isnan(loss[3]) and np.isfinite(np.delete(loss, 3)).all()
    finally:
        mp.undo()


# ---- activations -----------------------------------------------------------------------
def _erf(a):
    return np.vectorize(math.erf)(a)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_match_numpy(emulated, dtype):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 41)) * 4).astype(dtype)
    x[0, :3] = [0.0, 50.0, -50.0]
    gy = rng.standard_normal(x.shape).astype(dtype)
    x64, g64 = x.astype(np.float64), gy.astype(np.float64)
    close(activation.relu_forward(x), np.maximum(x64, 0), dtype)
    close(activation.relu_backward(x, gy), np.where(x64 > 0, g64, 0), dtype)
    close(activation.leaky_relu_forward(x, 0.2), np.where(x64 > 0, x64, 0.2 * x64), dtype)
    close(activation.leaky_relu_backward(x, gy, 0.2), np.where(x64 > 0, g64, 0.2 * g64),
          dtype)
    s = 1 / (1 + np.exp(-x64))
    close(activation.sigmoid_forward(x), s, dtype)
    close(activation.sigmoid_backward(s.astype(dtype), gy), g64 * s * (1 - s), dtype)
    t = np.tanh(x64)
    close(activation.tanh_forward(x), t, dtype)
    close(activation.tanh_backward(t.astype(dtype), gy), g64 * (1 - t * t), dtype)
    cdf = 0.5 * (1 + _erf(x64 / math.sqrt(2)))
    pdf = np.exp(-0.5 * x64 * x64) / math.sqrt(2 * math.pi)
    close(activation.gelu_forward(x), x64 * cdf, dtype)
    close(activation.gelu_backward(x, gy), g64 * (cdf + x64 * pdf), dtype)
    assert activation.relu_forward(x).dtype == x.dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_tanh_matches_torch(emulated, dtype):
    torch = pytest.importorskip("torch")
    x = (np.random.default_rng(6).standard_normal(50) * 3).astype(dtype)
    gy = np.random.default_rng(7).standard_normal(50).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = torch.nn.functional.gelu(xt, approximate="tanh")
    yt.backward(torch.from_numpy(gy))
    close(activation.gelu_forward(x, "tanh"), yt.detach().numpy(), dtype)
    close(activation.gelu_backward(x, gy, "tanh"), xt.grad.numpy(), dtype)
    with pytest.raises(ValueError, match="approximate"):
        activation.gelu_forward(x, "erf")
    with pytest.raises(ValueError, match="one shape and dtype"):
        activation.relu_backward(x, gy[:3])


# ---- loader ----------------------------------------------------------------------------
def test_cache_dir_falls_back_to_a_writable_temp_folder(monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cupy").write_text("a file where CuPy's cache folder would go")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CUPY_CACHE_DIR", raising=False)
    monkeypatch.setattr(loader.tempfile, "gettempdir", lambda: str(tmp_path))
    loader._ensure_cache_dir()
    assert loader.os.environ["CUPY_CACHE_DIR"] == str(tmp_path / "minidl-cupy-kernel-cache")
    assert (tmp_path / "minidl-cupy-kernel-cache").is_dir()
    monkeypatch.setenv("CUPY_CACHE_DIR", "/somewhere/chosen")
    loader._ensure_cache_dir()                      # a user's choice is kept
    assert loader.os.environ["CUPY_CACHE_DIR"] == "/somewhere/chosen"


def test_kernel_names_and_dtypes():
    assert loader.kernel_suffix(np.float32) == "_float"
    assert loader.kernel_suffix("float64") == "_double"
    with pytest.raises(TypeError, match="float32 or float64"):
        loader.kernel_suffix(np.float16)
    assert loader.grid_size(0) == 1 and loader.grid_size(257) == 2
    assert loader.grid_size(10**12) == 65535

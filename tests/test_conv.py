"""conv2d, conv_transpose2d, im2col/col2im: gradients, loop references, PyTorch, errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.ops.conv import col2im, conv2d, conv_transpose2d, im2col
from minidl.reference import conv as ref
from minidl.testing import assert_close, gradcheck
from minidl.testing import strategies as mst


def rand(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def leaf(array, device):
    return md.tensor(array, device=device, requires_grad=True)


def run_conv(device, x, w, b, gy, **kwargs):
    """Forward and backward of minidl's conv2d on NumPy data; returns NumPy arrays."""
    X, Wt = leaf(x, device), leaf(w, device)
    B = None if b is None else leaf(b, device)
    y = conv2d(X, Wt, B, **kwargs)
    y.backward(md.tensor(gy, device=device))
    return y.numpy(), X.grad.numpy(), Wt.grad.numpy(), None if b is None else B.grad.numpy()


@st.composite
def conv_case(draw, **kwargs):
    p = draw(mst.conv_params(**kwargs))
    seed = draw(st.integers(0, 2**16))
    p["bias"] = draw(st.booleans())
    p["seed"] = seed
    return p


def conv_kwargs(p):
    return dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"],
                groups=p["groups"])


def _force_row_shift(mp, force: bool = True):
    """Count the calls of the row-shift form (_RowShiftConv); with ``force``, make every
    eligible conv (stride 1, groups 1, kh > 1) take it, whatever its size."""
    from minidl.ops import conv as conv_ops
    if force:
        mp.setattr(conv_ops, "ROW_SHIFT_MAX_EXTRA_ROWS", 1e9)
        mp.setattr(conv_ops, "ROW_SHIFT_MIN_DEPTH", 1)
    calls = []
    real = conv_ops._RowShiftConv.__call__

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)
    mp.setattr(conv_ops._RowShiftConv, "__call__", counted)
    return calls


# ---- gradients -------------------------------------------------------------------------
@settings(max_examples=12)
@given(p=conv_case(max_channels=3, max_size=6))
def test_conv2d_gradcheck_drawn(device, p):
    x = leaf(rand(p["x_shape"], p["seed"]), device)
    w = leaf(rand(p["w_shape"], p["seed"] + 1), device)
    inputs = [x, w]
    if p["bias"]:
        inputs.append(leaf(rand(p["w_shape"][0], p["seed"] + 2), device))
    gradcheck(lambda *t: conv2d(*t, **conv_kwargs(p)), inputs)


@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((2, 3, 5, 6), (4, 3, 1, 1), {}),                                   # 1x1 fast path
    ((1, 4, 7, 5), (6, 2, 1, 1), dict(stride=2, groups=2)),             # strided 1x1, groups
    ((2, 3, 6, 5), (3, 1, 3, 3), dict(padding=1, groups=3)),            # depthwise
    ((1, 2, 5, 5), (4, 1, 3, 2), dict(padding="same", groups=2, dilation=(1, 2))),
    ((1, 2, 6, 7), (2, 2, 4, 2), dict(padding="same")),                 # even kernel
    ((1, 2, 7, 7), (3, 2, 2, 2), dict(stride=3)),                       # stride > kernel
    ((1, 2, 8, 7), (2, 2, 3, 3), dict(dilation=2, padding=(2, 1))),
    ((2, 2, 5, 5), (2, 2, 3, 3), dict(padding="valid", stride=(1, 2))),
])
def test_conv2d_gradcheck_cases(device, x_shape, w_shape, kwargs):
    x, w = leaf(rand(x_shape, 0), device), leaf(rand(w_shape, 1), device)
    b = leaf(rand(w_shape[0], 2), device)
    gradcheck(lambda *t: conv2d(*t, **kwargs), [x, w, b])


@st.composite
def conv_transpose_case(draw):
    groups = draw(st.integers(1, 2))
    cin = groups * draw(st.integers(1, 2))
    coutg = draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    oph = draw(st.integers(0, max(sh, dh) - 1))
    opw = draw(st.integers(0, max(sw, dw) - 1))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    out_h = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    out_w = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    if out_h < 1 or out_w < 1:
        ph = pw = 0
    return dict(x_shape=(draw(st.integers(1, 2)), cin, h, w),
                w_shape=(cin, coutg, kh, kw), stride=(sh, sw), padding=(ph, pw),
                output_padding=(oph, opw), dilation=(dh, dw), groups=groups,
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def transpose_kwargs(p):
    return dict(stride=p["stride"], padding=p["padding"], output_padding=p["output_padding"],
                groups=p["groups"], dilation=p["dilation"])


@settings(max_examples=12)
@given(p=conv_transpose_case())
def test_conv_transpose2d_gradcheck_drawn(device, p):
    x = leaf(rand(p["x_shape"], p["seed"]), device)
    w = leaf(rand(p["w_shape"], p["seed"] + 1), device)
    inputs = [x, w]
    if p["bias"]:
        inputs.append(leaf(rand(p["w_shape"][1] * p["groups"], p["seed"] + 2), device))
    gradcheck(lambda *t: conv_transpose2d(*t, **transpose_kwargs(p)), inputs)


def test_conv2d_only_weight_or_only_input_requires_grad(device):
    x, w = rand((2, 3, 5, 5), 0), rand((4, 3, 3, 3), 1)
    X = md.tensor(x, device=device)
    Wt = leaf(w, device)
    conv2d(X, Wt, padding=1).sum().backward()
    assert X.grad is None and Wt.grad.shape == w.shape
    X, Wt = leaf(x, device), md.tensor(w, device=device)
    conv2d(X, Wt, padding=1).sum().backward()
    assert Wt.grad is None and X.grad.shape == x.shape


@pytest.mark.parametrize("op, w_shape, kwargs", [
    (conv2d, (4, 3, 3, 3), dict(padding=1)), (conv2d, (4, 3, 3, 3), dict(stride=2)),
    (conv2d, (4, 3, 1, 1), {}), (conv_transpose2d, (3, 2, 3, 3), dict(stride=2))])
def test_backward_twice_with_retain_graph(device, op, w_shape, kwargs):
    x, w = leaf(rand((2, 3, 5, 5), 0), device), leaf(rand(w_shape, 1), device)
    y = (op(x, w, **kwargs) ** 2).sum()
    y.backward(retain_graph=True)
    gx, gw = x.grad.numpy().copy(), w.grad.numpy().copy()
    y.backward()
    assert_close(x.grad, 2 * gx, rtol=1e-12)
    assert_close(w.grad, 2 * gw, rtol=1e-12)


def test_conv2d_double_backward_is_refused(device):
    x, w = leaf(rand((1, 1, 4, 4), 0), device), leaf(rand((1, 1, 3, 3), 1), device)
    y = conv2d(x, w).sum()
    with pytest.raises(NotImplementedError, match="Conv2d"):
        md.grad(y, [x], create_graph=True)


# ---- fast path == loop reference (float64, 1e-10) --------------------------------------
@pytest.mark.parametrize("row_shift", [False, True], ids=["default", "row-shift forced"])
@settings(max_examples=20)
@given(p=conv_case(max_channels=4, max_size=7))
def test_conv2d_matches_reference(device, row_shift, p):
    x, w = rand(p["x_shape"], p["seed"]), rand(p["w_shape"], p["seed"] + 1)
    b = rand(p["w_shape"][0], p["seed"] + 2) if p["bias"] else None
    y_ref = ref.conv2d_forward(x, w, b, **conv_kwargs(p))
    gy = rand(y_ref.shape, p["seed"] + 3)
    gx_ref, gw_ref, gb_ref = ref.conv2d_backward(x, w, gy, **conv_kwargs(p))
    with pytest.MonkeyPatch.context() as mp:
        calls = _force_row_shift(mp) if row_shift else []
        y, gx, gw, gb = run_conv(device, x, w, b, gy, **conv_kwargs(p))
    eligible = p["stride"] == (1, 1) and p["groups"] == 1 and p["w_shape"][2] > 1
    if row_shift and device == "cpu" and eligible and x.shape[0] > 0:
        assert calls, "the row-shift form was not taken"
    assert_close(y, y_ref, rtol=0, atol=1e-10)
    assert_close(gx, gx_ref, rtol=0, atol=1e-10)
    assert_close(gw, gw_ref, rtol=0, atol=1e-10)
    if b is not None:
        assert_close(gb, gb_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kernel, dilation", [((3, 3), (1, 1)), ((4, 2), (1, 3)),
                                               ((2, 5), (2, 1))])
def test_conv2d_same_padding_matches_reference(device, kernel, dilation):
    x, w = rand((2, 2, 6, 7), 0), rand((3, 2) + kernel, 1)
    pads = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]
    y_ref = ref.conv2d_forward(x, w, None, (1, 1), pads, dilation)
    gy = rand(y_ref.shape, 2)
    gx_ref, gw_ref, _ = ref.conv2d_backward(x, w, gy, (1, 1), pads, dilation)
    y, gx, gw, _ = run_conv(device, x, w, None, gy, padding="same", dilation=dilation)
    assert y.shape == (2, 3, 6, 7)
    assert_close(y, y_ref, rtol=0, atol=1e-10)
    assert_close(gx, gx_ref, rtol=0, atol=1e-10)
    assert_close(gw, gw_ref, rtol=0, atol=1e-10)


@settings(max_examples=20)
@given(p=conv_transpose_case())
def test_conv_transpose2d_matches_reference(device, p):
    x, w = rand(p["x_shape"], p["seed"]), rand(p["w_shape"], p["seed"] + 1)
    b = rand(p["w_shape"][1] * p["groups"], p["seed"] + 2) if p["bias"] else None
    kw = transpose_kwargs(p)
    y_ref = ref.conv_transpose2d_forward(x, w, b, **kw)
    gy = rand(y_ref.shape, p["seed"] + 3)
    gx_ref, gw_ref, gb_ref = ref.conv_transpose2d_backward(x, w, gy, **kw)
    X, Wt = leaf(x, device), leaf(w, device)
    B = None if b is None else leaf(b, device)
    y = conv_transpose2d(X, Wt, B, **kw)
    y.backward(md.tensor(gy, device=device))
    assert_close(y, y_ref, rtol=0, atol=1e-10)
    assert_close(X.grad, gx_ref, rtol=0, atol=1e-10)
    assert_close(Wt.grad, gw_ref, rtol=0, atol=1e-10)
    if b is not None:
        assert_close(B.grad, gb_ref, rtol=0, atol=1e-10)


def test_conv_transpose2d_is_the_input_gradient_of_conv2d(device):
    # <conv2d(z, w), x> = <z, conv_transpose2d(x, w)> for all z, x: the two are adjoint.
    z, w = rand((2, 4, 9, 8), 0), rand((6, 2, 3, 3), 1)
    kw = dict(stride=2, padding=1, dilation=1, groups=2)
    y = conv2d(md.tensor(z, device=device), md.tensor(w, device=device), **kw)
    x = rand(y.shape, 2)
    back = conv_transpose2d(md.tensor(x, device=device), md.tensor(w, device=device),
                            output_padding=(0, 1), **kw)
    assert back.shape == z.shape
    assert np.isclose((y.numpy() * x).sum(), (z * back.numpy()).sum(), rtol=1e-12)


# ---- the buffer workspace ----------------------------------------------------------------
@pytest.fixture
def small_workspace(monkeypatch):
    """Recycle even tiny buffers, so the small shapes of a test go through the workspace."""
    from minidl.ops import conv as conv_ops
    conv_ops.release_workspace()
    monkeypatch.setattr(conv_ops._WORKSPACE, "min_bytes", 1)
    yield conv_ops._WORKSPACE
    conv_ops.release_workspace()


@pytest.mark.parametrize("stride", [1, 2])
def test_recycled_buffers_give_the_same_results(device, small_workspace, stride):
    x, w = rand((2, 3, 6, 6), 0), rand((4, 3, 3, 3), 1)
    kw = dict(stride=stride, padding=1)
    y_ref = ref.conv2d_forward(x, w, None, (stride, stride), (1, 1))
    gy = rand(y_ref.shape, 2)
    gx_ref, gw_ref, _ = ref.conv2d_backward(x, w, gy, (stride, stride), (1, 1))
    for _ in range(3):          # later rounds run on buffers the earlier ones gave back
        y, gx, gw, _ = run_conv(device, x, w, None, gy, **kw)
        with md.no_grad():
            y2 = conv2d(md.tensor(x, device=device), md.tensor(w, device=device), **kw)
        assert_close(y, y_ref, rtol=0, atol=1e-10)
        assert_close(y2, y_ref, rtol=0, atol=1e-10)
        assert_close(gx, gx_ref, rtol=0, atol=1e-10)
        assert_close(gw, gw_ref, rtol=0, atol=1e-10)
    if device == "cpu":
        assert small_workspace.free, "the workspace was never used"


def test_workspace_never_recycles_a_buffer_still_in_use(device, small_workspace):
    x, w = leaf(rand((2, 3, 6, 6), 0), device), leaf(rand((4, 3, 3, 3), 1), device)
    held = im2col(x.data, 3, padding=1)   # a student keeps an im2col matrix
    snapshot = held.copy()
    for seed in range(3):       # each conv2d gives its chunk buffers back to the workspace
        conv2d(leaf(rand((2, 3, 6, 6), seed + 5), device), w, padding=1).sum().backward()
    assert (held == snapshot).all()
    if device == "cpu":
        assert small_workspace.free, "the workspace was never used"


def test_conv2d_saves_its_input_not_its_columns(device):
    """Backward rebuilds the im2col columns chunk by chunk from x: the graph keeps x
    (which it holds anyway), not a copy kh*kw times its size."""
    x, w = leaf(rand((2, 3, 6, 6), 0), device), leaf(rand((4, 3, 3, 3), 1), device)
    fn = conv2d(x, w, padding=1).grad_fn
    assert fn.x is x.data
    assert not hasattr(fn, "cols")
    # Without a weight gradient to compute, nothing of x needs keeping.
    frozen = md.tensor(rand((4, 3, 3, 3), 1), device=device)
    assert not hasattr(conv2d(x, frozen, padding=1).grad_fn, "x")


@pytest.mark.parametrize("gw_direct_columns", [0, 10**6])
@pytest.mark.parametrize("chunk_columns", [1, 7, 36, 10**6])
def test_conv2d_chunks_of_the_batch_give_the_same_numbers(device, monkeypatch,
                                                          chunk_columns, gw_direct_columns):
    """One sample per chunk, a chunk boundary inside the batch, and the whole batch at
    once all agree with the loop reference (forward and backward, stride 1 and 2), with
    the weight gradient accumulated in either orientation."""
    from minidl.ops import conv as conv_ops
    monkeypatch.setattr(conv_ops, "CHUNK_COLUMNS", chunk_columns)
    monkeypatch.setattr(conv_ops, "GW_DIRECT_COLUMNS", gw_direct_columns)
    monkeypatch.setattr(conv_ops, "CHUNK_COPY_VALUES", 1)   # the column count decides
    x, w, b = rand((5, 4, 6, 6), 0), rand((6, 2, 3, 3), 1), rand((6,), 2)
    for stride in (1, 2):
        y_ref = ref.conv2d_forward(x, w, b, (stride, stride), (1, 1), groups=2)
        gy = rand(y_ref.shape, 3)
        gx_ref, gw_ref, gb_ref = ref.conv2d_backward(x, w, gy, (stride, stride), (1, 1),
                                                     groups=2)
        y, gx, gw, gb = run_conv(device, x, w, b, gy, stride=stride, padding=1, groups=2)
        assert_close(y, y_ref, rtol=0, atol=1e-10)
        assert_close(gx, gx_ref, rtol=0, atol=1e-10)
        assert_close(gw, gw_ref, rtol=0, atol=1e-10)
        assert_close(gb, gb_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("w_shape, kwargs", [
    ((6, 2, 3, 3), dict(padding=1, groups=2)),            # flipped-kernel input gradient
    ((6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),  # col2im input gradient
    ((6, 4, 1, 1), {}),                                   # 1x1: no im2col
    ((6, 4, 1, 1), dict(stride=2)),
])
def test_conv2d_shares_of_the_batch_on_threads_give_the_same_numbers(device, monkeypatch,
                                                                     n_threads, w_shape,
                                                                     kwargs):
    """The batch worked through by minidl's threads (on the CPU; a GPU takes it whole):
    chunks handed out to the threads (kh x kw kernels) or one share per thread (1x1),
    with one sample per chunk or the fewest chunks, in both weight-gradient
    orientations: the loop reference's numbers."""
    from minidl import parallel
    from minidl.ops import conv as conv_ops
    before = parallel.get_num_threads()
    parallel.set_num_threads(n_threads)
    monkeypatch.setattr(conv_ops, "SHARED_MIN_ROWS", 1)     # these small convs too
    monkeypatch.setattr(conv_ops, "CHUNK_COPY_VALUES", 1)
    shares, share_out, chunk_out = [], conv_ops.map_gemm_blocks, conv_ops.map_gemm_chunks

    def counted(fn, size, min_block=1):
        results = share_out(fn, size, min_block)
        shares.append(("shares", len(results)))
        return results

    def counted_workers(make_worker, chunks, combine=None, share=True):
        workers = []
        result = chunk_out(lambda: workers.append(1) or make_worker(), chunks, combine,
                           share)
        shares.append(("threads with chunks", len(workers)))
        return result
    monkeypatch.setattr(conv_ops, "map_gemm_blocks", counted)
    monkeypatch.setattr(conv_ops, "map_gemm_chunks", counted_workers)
    x, w, b = rand((5, 4, 6, 6), 0), rand(w_shape, 1), rand((6,), 2)
    stride = (kwargs.get("stride", 1),) * 2
    padding = (kwargs.get("padding", 0),) * 2
    groups = kwargs.get("groups", 1)
    y_ref = ref.conv2d_forward(x, w, b, stride, padding, groups=groups)
    gy = rand(y_ref.shape, 3)
    gx_ref, gw_ref, gb_ref = ref.conv2d_backward(x, w, gy, stride, padding, groups=groups)
    try:
        for chunk_columns, gw_direct_columns in ((1, 0), (10**6, 10**6)):
            monkeypatch.setattr(conv_ops, "CHUNK_COLUMNS", chunk_columns)
            monkeypatch.setattr(conv_ops, "GW_DIRECT_COLUMNS", gw_direct_columns)
            y, gx, gw, gb = run_conv(device, x, w, b, gy, **kwargs)
            assert_close(y, y_ref, rtol=0, atol=1e-10)
            assert_close(gx, gx_ref, rtol=0, atol=1e-10)
            assert_close(gw, gw_ref, rtol=0, atol=1e-10)
            assert_close(gb, gb_ref, rtol=0, atol=1e-10)
    finally:
        parallel.set_num_threads(before)
    if device == "cpu" and parallel._blas_controller() is not None:
        assert len(shares) == 4                 # forward and backward, both times
        for kind, count in shares:              # (a thread may find every chunk taken)
            assert count == n_threads if kind == "shares" else 1 <= count <= n_threads


def test_conv2d_weight_gradient_has_the_same_bits_at_every_thread_count(monkeypatch):
    """The chunks' weight gradients are added up in chunk order whichever thread made
    which (map_gemm_chunks), so with one sample per chunk the float32 result does not
    depend on the thread count, nor on which thread was faster."""
    from minidl import parallel
    from minidl.ops import conv as conv_ops
    monkeypatch.setattr(conv_ops, "CHUNK_COLUMNS", 1)
    monkeypatch.setattr(conv_ops, "CHUNK_COPY_VALUES", 1)
    x, w = rand((7, 32, 6, 6), 0, np.float32), rand((32, 32, 3, 3), 1, np.float32)
    gy = rand((7, 32, 6, 6), 2, np.float32)
    before = parallel.get_num_threads()
    grads = []
    try:
        for n_threads in (1, 2, 3, 1):
            parallel.set_num_threads(n_threads)
            grads.append(run_conv("cpu", x, w, None, gy, padding=1)[1:3])
    finally:
        parallel.set_num_threads(before)
    for gx, gw in grads[1:]:
        assert np.array_equal(gx, grads[0][0]) and np.array_equal(gw, grads[0][1])


@pytest.mark.parametrize("channels, kernel, shared", [
    ((1, 6), 5, False),      # LeNet-5's first conv: 6 rows, depth 25
    ((6, 16), 5, False),     # its second: 16 rows, depth 150
    ((48, 12), 3, True),     # DenseNet-BC's growth conv: 12 rows, depth 432
    ((3, 32), 3, True),      # 32 rows
])
def test_conv2d_shares_only_convs_that_gain(monkeypatch, channels, kernel, shared):
    """A conv with both few rows and a short shared dimension stays on BLAS's threads
    (the calling thread takes every chunk); any other conv's chunks go to minidl's
    threads, at least one chunk each."""
    from minidl import parallel
    from minidl.ops import conv as conv_ops
    if parallel._blas_controller() is None:
        pytest.skip("no BLAS that threadpoolctl can set: conv2d never shares")
    before = parallel.get_num_threads()
    parallel.set_num_threads(2)
    calls = []
    chunk_out = conv_ops.map_gemm_chunks

    def counted(make_worker, chunks, combine=None, share=True):
        if share:
            calls.append(len(chunks))
        return chunk_out(make_worker, chunks, combine, share)
    monkeypatch.setattr(conv_ops, "map_gemm_chunks", counted)
    try:
        (c, o), k = channels, kernel
        run_conv("cpu", rand((4, c, 8, 8), 0), rand((o, c, k, k), 1), None,
                 rand((4, o, 8, 8), 2), padding=k // 2)
    finally:
        parallel.set_num_threads(before)
    assert calls == ([2, 2] if shared else [])       # forward and backward: 2 chunks


@pytest.mark.parametrize("x_shape, kwargs", [
    ((3, 2, 1, 1), dict(padding=4, dilation=4)),       # two of three offsets: padding only
    ((3, 2, 2, 3), dict(padding=(3, 1), dilation=(3, 1), stride=(2, 1))),
    ((4, 2, 5, 4), dict(padding=(2, 0), stride=2)),   # rows padded, columns not
])
def test_conv2d_windows_that_read_only_padding(device, monkeypatch, x_shape, kwargs):
    """The chunk columns copy each kernel offset's window of real pixels straight from x
    and leave the rest zero, also when an offset reads nothing but padding, and from
    chunk to chunk (here one sample per chunk, and the whole batch)."""
    from minidl.ops import conv as conv_ops
    monkeypatch.setattr(conv_ops, "CHUNK_COPY_VALUES", 1)
    x, w = rand(x_shape, 4), rand((3, 2, 3, 3), 5)
    stride = kwargs.get("stride", 1)
    stride = stride if isinstance(stride, tuple) else (stride, stride)
    pads = kwargs["padding"]
    pads = ((pads, pads), (pads, pads)) if isinstance(pads, int) else tuple(
        p if isinstance(p, tuple) else (p, p) for p in pads)
    dilation = kwargs.get("dilation", 1)
    dilation = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    y_ref = ref.conv2d_forward(x, w, None, stride, pads, dilation)
    gy = rand(y_ref.shape, 6)
    gx_ref, gw_ref, _ = ref.conv2d_backward(x, w, gy, stride, pads, dilation)
    for chunk_columns in (1, 10**6):
        monkeypatch.setattr(conv_ops, "CHUNK_COLUMNS", chunk_columns)
        y, gx, gw, _ = run_conv(device, x, w, None, gy, **kwargs)
        assert_close(y, y_ref, rtol=0, atol=1e-10)
        assert_close(gx, gx_ref, rtol=0, atol=1e-10)
        assert_close(gw, gw_ref, rtol=0, atol=1e-10)


# ---- im2col / col2im -------------------------------------------------------------------
@settings(max_examples=15)
@given(p=mst.conv_params(max_channels=3, allow_groups=False), seed=st.integers(0, 2**16))
def test_im2col_definition_and_col2im_adjoint(device, p, seed):
    x = rand(p["x_shape"], seed)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (p["w_shape"][2:], p["stride"], p["padding"],
                                              p["dilation"])
    xd = md.tensor(x, device=device).data
    cols = md.tensor(im2col(xd, (kh, kw), (sh, sw), (ph, pw), (dh, dw), fill=-7.0)).numpy()
    N, C, H, W = x.shape
    OH, OW = cols.shape[4:]
    xpad = np.full((N, C, H + 2 * ph, W + 2 * pw), -7.0)
    xpad[:, :, ph:ph + H, pw:pw + W] = x
    for p_ in range(kh):
        for q in range(kw):
            expected = xpad[:, :, p_ * dh:p_ * dh + sh * (OH - 1) + 1:sh,
                            q * dw:q * dw + sw * (OW - 1) + 1:sw]
            np.testing.assert_array_equal(cols[:, :, p_, q], expected)
    # col2im is the adjoint of im2col (with zero padding): <im2col(x), c> = <x, col2im(c)>.
    c = rand(cols.shape, seed + 1)
    cols0 = md.tensor(im2col(xd, (kh, kw), (sh, sw), (ph, pw), (dh, dw))).numpy()
    back = col2im(md.tensor(c, device=device).data, x.shape, (kh, kw), (sh, sw), (ph, pw),
                  (dh, dw))
    assert np.isclose((cols0 * c).sum(), (x * md.tensor(back).numpy()).sum(), rtol=1e-12)


def test_float32_stays_float32(device):
    x = md.tensor(rand((2, 3, 6, 6), 0, np.float32), device=device, requires_grad=True)
    w = md.tensor(rand((4, 3, 3, 3), 1, np.float32), device=device, requires_grad=True)
    b = md.tensor(rand(4, 2, np.float32), device=device, requires_grad=True)
    for y in (conv2d(x, w, b, padding=1), conv2d(x, w[:, :, :1, :1], stride=2),
              conv_transpose2d(x, w.transpose(0, 1), b, stride=2)):
        assert y.dtype == np.float32
        y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


# ---- PyTorch parity --------------------------------------------------------------------
CONV_CASES = [
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(padding=1)),
    ((2, 4, 9, 7), (6, 2, 3, 2), dict(stride=2, padding=(1, 0), dilation=(2, 1), groups=2)),
    ((1, 6, 7, 7), (6, 1, 5, 5), dict(padding=2, groups=6)),
    ((2, 4, 6, 6), (8, 4, 1, 1), dict(stride=2)),
    ((1, 3, 7, 8), (2, 3, 4, 3), dict(padding="same", dilation=(1, 2))),
    ((1, 3, 7, 8), (2, 3, 3, 3), dict(padding="valid", stride=3)),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on its own copy
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONV_CASES)
def test_conv2d_matches_torch(device, x_shape, w_shape, kwargs):
    torch = pytest.importorskip("torch")
    x, w, b = rand(x_shape, 0), rand(w_shape, 1), rand(w_shape[0], 2)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, **kwargs)
    gy = rand(tuple(ty.shape), 3)
    ty.backward(torch.tensor(gy))
    y, gx, gw, gb = run_conv(device, x, w, b, gy, **kwargs)
    for mine, theirs in ((y, ty), (gx, tx.grad), (gw, tw.grad), (gb, tb.grad)):
        assert_close(mine, theirs, rtol=1e-10, atol=1e-12)


def test_conv2d_matches_torch_float32(device):
    torch = pytest.importorskip("torch")
    x, w = rand((4, 8, 12, 12), 0, np.float32), rand((16, 8, 3, 3), 1, np.float32)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, padding=1, stride=2)
    gy = rand(tuple(ty.shape), 2, np.float32)
    ty.backward(torch.tensor(gy))
    y, gx, gw, _ = run_conv(device, x, w, None, gy, padding=1, stride=2)
    for mine, theirs in ((y, ty), (gx, tx.grad), (gw, tw.grad)):
        assert_close(mine, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((2, 4, 5, 5), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 4, 3), (4, 2, 3, 2), dict(stride=(1, 3), padding=(0, 1), groups=2,
                                      dilation=(2, 1), output_padding=(1, 2))),
    ((2, 3, 3, 3), (3, 2, 1, 1), dict(stride=2)),
    ((1, 2, 4, 4), (2, 3, 4, 4), dict(stride=2, padding=1)),
])
def test_conv_transpose2d_matches_torch(device, x_shape, w_shape, kwargs):
    torch = pytest.importorskip("torch")
    groups = kwargs.get("groups", 1)
    x, w, b = rand(x_shape, 0), rand(w_shape, 1), rand(w_shape[1] * groups, 2)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, **kwargs)
    gy = rand(tuple(ty.shape), 3)
    ty.backward(torch.tensor(gy))
    X, Wt, B = leaf(x, device), leaf(w, device), leaf(b, device)
    y = conv_transpose2d(X, Wt, B, **kwargs)
    y.backward(md.tensor(gy, device=device))
    for mine, theirs in ((y, ty), (X.grad, tx.grad), (Wt.grad, tw.grad), (B.grad, tb.grad)):
        assert_close(mine, theirs, rtol=1e-10, atol=1e-12)


# ---- bad input -------------------------------------------------------------------------
def test_conv2d_bad_input(device):
    def t(shape, dtype=np.float32):
        return md.tensor(np.zeros(shape, dtype=dtype), device=device)

    x, w = t((2, 3, 8, 8)), t((8, 4, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels but weight expects "
                                         r"4 \(weight shape \(8, 4, 3, 3\)\)"):
        conv2d(x, w)
    with pytest.raises(ValueError, match="conv2d: expected a 4-D input.*got a 3-D input"):
        conv2d(t((3, 8, 8)), t((8, 3, 3, 3)))
    with pytest.raises(ValueError, match="conv2d: expected a 4-D weight.*got a 2-D weight"):
        conv2d(x, t((8, 3)))
    with pytest.raises(TypeError, match="conv2d: input must be a float tensor, got dtype int64"):
        conv2d(t((2, 3, 8, 8), np.int64), t((8, 3, 3, 3)))
    with pytest.raises(TypeError, match="input dtype float64 and weight dtype float32"):
        conv2d(t((2, 3, 8, 8), np.float64), t((8, 3, 3, 3)))
    with pytest.raises(TypeError, match="conv2d: input must be a minidl Tensor"):
        conv2d(np.zeros((2, 3, 8, 8)), t((8, 3, 3, 3)))
    with pytest.raises(ValueError, match="groups=2 must divide the input channels, got 3"):
        conv2d(x, t((8, 1, 3, 3)), groups=2)
    with pytest.raises(ValueError, match="groups=3 must divide the output channels, got 8"):
        conv2d(x, t((8, 1, 3, 3)), groups=3)
    with pytest.raises(ValueError, match="groups must be a positive int, got 0"):
        conv2d(x, t((8, 3, 3, 3)), groups=0)
    with pytest.raises(ValueError, match=r"kernel size \(5, 5\) \(dilated to \(13, 13\)\) "
                                         r"is larger than the padded input \(10, 10\)"):
        conv2d(x, t((8, 3, 5, 5)), padding=1, dilation=3)
    with pytest.raises(ValueError, match=r"kernel size \(11, 3\).*padded input \(8, 8\)"):
        conv2d(x, t((8, 3, 11, 3)))
    with pytest.raises(ValueError, match="padding must be non-negative, got -1"):
        conv2d(x, t((8, 3, 3, 3)), padding=-1)
    with pytest.raises(ValueError, match="stride must be positive, got 0"):
        conv2d(x, t((8, 3, 3, 3)), stride=0)
    with pytest.raises(ValueError, match=r"dilation must be positive, got \(1, 0\)"):
        conv2d(x, t((8, 3, 3, 3)), dilation=(1, 0))
    with pytest.raises(ValueError, match="padding must be an int, a pair, 'same' or 'valid', "
                                         "got 'full'"):
        conv2d(x, t((8, 3, 3, 3)), padding="full")
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        conv2d(x, t((8, 3, 3, 3)), padding="same", stride=2)
    with pytest.raises(TypeError, match="stride must be an int or a pair of ints, got 1.5"):
        conv2d(x, t((8, 3, 3, 3)), stride=1.5)
    with pytest.raises(ValueError, match=r"bias must have shape \(8,\).*got \(4,\)"):
        conv2d(x, t((8, 3, 3, 3)), t((4,)))


def test_conv_transpose2d_bad_input(device):
    def t(shape):
        return md.tensor(np.zeros(shape, dtype=np.float32), device=device)

    x = t((1, 4, 5, 5))
    with pytest.raises(ValueError, match=r"conv_transpose2d: input has 4 channels but weight "
                                         r"expects 3 \(weight shape \(3, 2, 3, 3\)\)"):
        conv_transpose2d(x, t((3, 2, 3, 3)))
    with pytest.raises(ValueError, match="output_padding must be smaller than stride or "
                                         "dilation"):
        conv_transpose2d(x, t((4, 2, 3, 3)), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="conv_transpose2d: padding must be an int or a pair"):
        conv_transpose2d(x, t((4, 2, 3, 3)), padding="same")
    with pytest.raises(ValueError, match="the output would be empty"):
        conv_transpose2d(t((1, 4, 1, 1)), t((4, 2, 1, 1)), padding=1)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        conv_transpose2d(x, t((4, 2, 3, 3)), t((2,)), groups=2)


def test_conv2d_of_an_empty_batch(device):
    """N = 0 gives an empty output and, in backward, an empty gx and a zero gW."""
    x, w = leaf(np.zeros((0, 3, 6, 6)), device), leaf(rand((4, 3, 3, 3), 1), device)
    y = conv2d(x, w, padding=1)
    assert y.shape == (0, 4, 6, 6)
    y.sum().backward()
    assert x.grad.shape == (0, 3, 6, 6)
    assert_close(w.grad, np.zeros((4, 3, 3, 3)), rtol=0, atol=0)


# ---- stride 1 with the kernel rows as GEMM rows (_RowShiftConv) ------------------------
@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((2, 3, 6, 5), (4, 3, 3, 3), dict(padding=1)),
    ((1, 2, 7, 6), (3, 2, 4, 2), dict(padding="same", dilation=(2, 1))),   # uneven pads
    ((2, 2, 8, 5), (2, 2, 3, 2), dict(padding=(0, 2))),                    # no row padding
])
def test_conv2d_row_shift_gradcheck(device, monkeypatch, x_shape, w_shape, kwargs):
    calls = _force_row_shift(monkeypatch)
    x, w = leaf(rand(x_shape, 0), device), leaf(rand(w_shape, 1), device)
    b = leaf(rand(w_shape[0], 2), device)
    gradcheck(lambda *t: conv2d(*t, **kwargs), [x, w, b])
    assert calls or device != "cpu"


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("chunk_columns", [1, 40, 10**6])
def test_conv2d_row_shift_in_chunks_and_shares(device, monkeypatch, n_threads,
                                               chunk_columns):
    """One sample per chunk (where the weight gradient is read through strided views of
    the columns), several samples per chunk (where x is reordered to match them), a
    shorter last chunk, and the batch shared over threads: the loop reference's numbers."""
    from minidl import parallel
    from minidl.ops import conv as conv_ops
    _force_row_shift(monkeypatch)
    monkeypatch.setattr(conv_ops, "CHUNK_COLUMNS", chunk_columns)
    monkeypatch.setattr(conv_ops, "CHUNK_COPY_VALUES", 1)
    monkeypatch.setattr(conv_ops, "SHARED_MIN_ROWS", 1)
    before = parallel.get_num_threads()
    parallel.set_num_threads(n_threads)
    try:
        x, w, b = rand((7, 4, 6, 5), 0), rand((5, 4, 3, 3), 1), rand((5,), 2)
        y_ref = ref.conv2d_forward(x, w, b, (1, 1), (1, 1))
        gy = rand(y_ref.shape, 3)
        gx_ref, gw_ref, gb_ref = ref.conv2d_backward(x, w, gy, (1, 1), (1, 1))
        y, gx, gw, gb = run_conv(device, x, w, b, gy, padding=1)
    finally:
        parallel.set_num_threads(before)
    assert_close(y, y_ref, rtol=0, atol=1e-10)
    assert_close(gx, gx_ref, rtol=0, atol=1e-10)
    assert_close(gw, gw_ref, rtol=0, atol=1e-10)
    assert_close(gb, gb_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("C, size, kernel, taken", [
    (64, 32, 3, True),      # ResNet's first stage
    (128, 16, 3, True),     # its second: 2 extra rows of 16
    (256, 8, 3, False),     # its third: 2 extra rows of 8, more than ROW_SHIFT_MAX_EXTRA_ROWS
    (3, 32, 3, False),      # a shared dimension of 9: below ROW_SHIFT_MIN_DEPTH
    (64, 32, 1, False),     # 1x1: no kernel rows to move
])
def test_conv2d_row_shift_taken_where_it_gains(monkeypatch, C, size, kernel, taken):
    calls = _force_row_shift(monkeypatch, force=False)
    x = md.tensor(rand((2, C, size, size), 0, np.float32))
    conv2d(x, md.tensor(rand((8, C, kernel, kernel), 1, np.float32)),
           padding=kernel // 2)
    assert bool(calls) == taken


def test_conv2d_row_shift_matches_torch_float32(device):
    """ResNet's first-stage shape, where the row-shift form is taken by default; with a
    bias (carried by the GEMM: _kernel_rows_first) and without."""
    torch = pytest.importorskip("torch")
    x, w = rand((3, 64, 32, 32), 0, np.float32), rand((64, 64, 3, 3), 1, np.float32) / 24
    for b in (None, rand((64,), 3, np.float32)):
        tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        tb = None if b is None else torch.tensor(b, requires_grad=True)
        ty = torch.nn.functional.conv2d(tx, tw, tb, padding=1)
        gy = rand(tuple(ty.shape), 2, np.float32)
        ty.backward(torch.tensor(gy))
        y, gx, gw, gb = run_conv(device, x, w, b, gy, padding=1)
        pairs = [(y, ty), (gx, tx.grad), (gw, tw.grad)] + ([] if b is None else [(gb, tb.grad)])
        for mine, theirs in pairs:
            assert_close(mine, theirs, rtol=1e-4, atol=1e-4)


# ---- x's columns kept from forward for the weight gradient ---------------------------------
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("stride, x_grad", [(2, True), (1, False), (2, False)])
def test_conv2d_keeps_small_columns_for_the_weight_gradient(monkeypatch, n_threads, stride,
                                                             x_grad):
    """Columns that backward would rebuild are kept from forward when small: in chunks,
    over threads, the loop reference's numbers; a second backward (retain_graph) reads
    them again; and with KEEP_COLUMNS_BYTES = 0 nothing is kept and the numbers agree."""
    from minidl import parallel
    from minidl.ops import conv as conv_ops
    monkeypatch.setattr(conv_ops, "CHUNK_COLUMNS", 20)
    monkeypatch.setattr(conv_ops, "CHUNK_COPY_VALUES", 1)
    monkeypatch.setattr(conv_ops, "SHARED_MIN_ROWS", 1)
    monkeypatch.setattr(conv_ops, "ROW_SHIFT_MIN_DEPTH", 10**9)
    x, w, b = rand((7, 3, 6, 5), 0), rand((4, 3, 3, 3), 1), rand((4,), 2)
    y_ref = ref.conv2d_forward(x, w, b, (stride, stride), (1, 1))
    gy = rand(y_ref.shape, 3)
    gx_ref, gw_ref, gb_ref = ref.conv2d_backward(x, w, gy, (stride, stride), (1, 1))
    before = parallel.get_num_threads()
    parallel.set_num_threads(n_threads)
    try:
        for limit, kept in ((1 << 30, True), (0, False)):
            monkeypatch.setattr(conv_ops, "KEEP_COLUMNS_BYTES", limit)
            X = md.tensor(x, requires_grad=x_grad)
            Wt, B = md.tensor(w, requires_grad=True), md.tensor(b, requires_grad=True)
            y = conv2d(X, Wt, B, stride=stride, padding=1)
            saved = y._ctx.saved_columns
            assert (saved is not None and len(saved) > 1) == kept
            assert_close(y.numpy(), y_ref, rtol=0, atol=1e-10)
            for _ in range(2):          # the second backward reads the kept columns again
                X.grad = Wt.grad = B.grad = None
                y.backward(md.tensor(gy), retain_graph=True)
                assert_close(Wt.grad.numpy(), gw_ref, rtol=0, atol=1e-10)
                assert_close(B.grad.numpy(), gb_ref, rtol=0, atol=1e-10)
                if x_grad:
                    assert_close(X.grad.numpy(), gx_ref, rtol=0, atol=1e-10)
    finally:
        parallel.set_num_threads(before)


def test_conv2d_keeps_no_columns_that_backward_does_not_rebuild():
    """A stride-1 conv whose input needs a gradient takes the weight gradient from gy's
    columns; one without a weight gradient needs none; neither keeps x's columns."""
    x = rand((2, 3, 6, 5), 0)
    w = rand((4, 3, 3, 3), 1)
    y = conv2d(md.tensor(x, requires_grad=True), md.tensor(w, requires_grad=True), padding=1)
    assert y._ctx.saved_columns is None
    y = conv2d(md.tensor(x, requires_grad=True), md.tensor(w), stride=2, padding=1)
    assert y._ctx.saved_columns is None

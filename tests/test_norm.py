"""batch_norm, layer_norm, group_norm, instance_norm: gradients, loop reference, PyTorch."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.ops.norm import batch_norm, group_norm, instance_norm, layer_norm
from minidl.reference.norm import batch_norm_backward, batch_norm_forward
from minidl.testing import assert_close, gradcheck
from minidl.testing import strategies as mst


def _t(a, device, requires_grad=False):
    return md.tensor(a, device=device, requires_grad=requires_grad)


# (N, C) and (N, C, L) and (N, C, H, W) with at least 2 values per channel
bn_shapes = st.one_of(
    st.tuples(st.integers(2, 4), st.integers(1, 3)),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 4)),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(2, 3)))


# ---- batch_norm: gradients ------------------------------------------------------------
@settings(max_examples=15)
@given(x=mst.arrays(bn_shapes), affine=st.sampled_from(["both", "weight", "bias", "none"]),
       training=st.booleans(), track=st.booleans())
def test_batch_norm_gradcheck(device, x, affine, training, track):
    rng = np.random.default_rng(1)
    C = x.shape[1]
    X = _t(x, device, True)
    W = _t(rng.standard_normal(C), device, True) if affine in ("both", "weight") else None
    B = _t(rng.standard_normal(C), device, True) if affine in ("both", "bias") else None
    rm = _t(rng.standard_normal(C), device) if track else None
    rv = _t(rng.random(C) + 0.5, device) if track else None
    inputs = [X] + [p for p in (W, B) if p is not None]

    def fn(x_, *params):
        it = iter(params)
        w = next(it) if W is not None else None
        b = next(it) if B is not None else None
        return batch_norm(x_, rm, rv, w, b, training=training, momentum=0.3)

    assert gradcheck(fn, inputs)


def test_batch_norm_gradcheck_only_weight_requires_grad(device):
    x = np.random.default_rng(2).standard_normal((3, 2, 2, 2))
    X, W = _t(x, device), _t(np.array([1.5, -0.5]), device, True)
    assert gradcheck(lambda w: batch_norm(X, None, None, w, None, training=True), [W])


# ---- batch_norm: against the loop reference --------------------------------------------
@settings(max_examples=10)
@given(x=mst.arrays(bn_shapes, magnitude=3.0), training=st.booleans())
def test_batch_norm_matches_loop_reference(device, x, training):
    _check_batch_norm_against_loops(device, x, training)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 5, 3, 3), (6, 7), (2, 3, 5)])
def test_batch_norm_in_channel_blocks_on_threads_matches_the_loops(monkeypatch, training,
                                                                    shape):
    """One channel per block on up to 3 threads (minidl.parallel): the same numbers."""
    from minidl import parallel
    from minidl.ops import norm as norm_ops
    before = parallel.get_num_threads()
    parallel.set_num_threads(3)
    monkeypatch.setattr(norm_ops.BatchNorm, "_min_block", lambda self, xp: 1)
    try:
        x = np.random.default_rng(7).standard_normal(shape) * 3
        _check_batch_norm_against_loops("cpu", x, training)
    finally:
        parallel.set_num_threads(before)


def _check_batch_norm_against_loops(device, x, training):
    """batch_norm's y, gradients and running statistics against the plain loops."""
    rng = np.random.default_rng(3)
    C = x.shape[1]
    w, b, gy = rng.standard_normal(C), rng.standard_normal(C), rng.standard_normal(x.shape)
    rm0, rv0 = rng.standard_normal(C), rng.random(C) + 0.5
    X, W, B = _t(x, device, True), _t(w, device, True), _t(b, device, True)
    rm, rv = _t(rm0, device), _t(rv0, device)
    y = batch_norm(X, rm, rv, W, B, training=training, momentum=0.25, eps=1e-3)
    y.backward(_t(gy, device))
    ref_y, mean, _, unbiased = batch_norm_forward(x, w, b, 1e-3, rm0, rv0, training)
    gx, gw, gb = batch_norm_backward(x, gy, w, 1e-3, rm0, rv0, training)
    assert_close(y, ref_y, rtol=1e-10, atol=1e-10)
    assert_close(X.grad, gx, rtol=1e-10, atol=1e-10)
    assert_close(W.grad, gw, rtol=1e-10, atol=1e-10)
    assert_close(B.grad, gb, rtol=1e-10, atol=1e-10)
    if training:
        assert_close(rm, 0.75 * rm0 + 0.25 * mean, rtol=1e-10, atol=1e-12)
        assert_close(rv, 0.75 * rv0 + 0.25 * unbiased, rtol=1e-10, atol=1e-12)
    else:
        assert_close(rm, rm0, rtol=0)
        assert_close(rv, rv0, rtol=0)


def test_reference_forward_is_textbook():
    # hand-computed: channel values [1, 3] -> mean 2, var 1, xhat = [-1, 1]
    x = np.array([[1.0], [3.0]])
    y, mean, var, unbiased = batch_norm_forward(x, np.array([2.0]), np.array([0.5]), eps=0.0)
    np.testing.assert_allclose(y[:, 0], [-1.5, 2.5])
    assert (mean[0], var[0], unbiased[0]) == (2.0, 1.0, 2.0)


# ---- batch_norm: PyTorch parity --------------------------------------------------------
BN_CASES = [
    dict(shape=(8, 5), training=True, affine=True, dtype="float64"),
    dict(shape=(4, 3, 7), training=True, affine=True, dtype="float32"),
    dict(shape=(4, 3, 5, 6), training=True, affine=True, dtype="float32"),
    dict(shape=(4, 3, 5, 6), training=False, affine=True, dtype="float64"),
    dict(shape=(2, 4, 3, 3), training=True, affine=False, dtype="float64"),
    dict(shape=(6, 2, 4), training=False, affine=False, dtype="float32"),
    dict(shape=(1, 3, 2, 2), training=True, affine=True, dtype="float64"),
]


@pytest.mark.parametrize("case", BN_CASES, ids=lambda c: f"{c['shape']}-{c['training']}-"
                         f"{c['affine']}-{c['dtype']}")
def test_batch_norm_matches_torch(device, case):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    shape, dtype = case["shape"], case["dtype"]
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    rm0, rv0 = rng.standard_normal(C).astype(dtype), (rng.random(C) + 0.5).astype(dtype)
    X = _t(x, device, True)
    W, B = (_t(w, device, True), _t(b, device, True)) if case["affine"] else (None, None)
    rm, rv = _t(rm0, device), _t(rv0, device)
    y = batch_norm(X, rm, rv, W, B, training=case["training"])
    y.backward(_t(gy, device))

    tx = torch.tensor(x, requires_grad=True)
    tw, tb = (torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)) \
        if case["affine"] else (None, None)
    trm, trv = torch.tensor(rm0), torch.tensor(rv0)
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training=case["training"])
    ty.backward(torch.tensor(gy))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    assert y.dtype == np.dtype(dtype) and X.grad.dtype == np.dtype(dtype)
    assert_close(y, ty, **tol)
    assert_close(X.grad, tx.grad, **tol)
    assert_close(rm, trm, **tol)
    assert_close(rv, trv, **tol)
    if case["affine"]:
        assert_close(W.grad, tw.grad, **tol)
        assert_close(B.grad, tb.grad, **tol)


@pytest.mark.parametrize("momentum", [0.1, 0.5, "cumulative"])
def test_batch_norm_running_stats_after_steps_and_eval_match_torch(device, momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    C = 3
    rm, rv = md.zeros(C, dtype="float64", device=device), md.ones(C, dtype="float64",
                                                                  device=device)
    trm, trv = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
    w, b = rng.standard_normal(C), rng.standard_normal(C)
    for step in range(1, 6):
        x = rng.standard_normal((4, C, 3, 3)) * step + step
        # nn.BatchNorm passes 1/num_batches_tracked for momentum=None (cumulative average)
        m = 1.0 / step if momentum == "cumulative" else momentum
        batch_norm(_t(x, device), rm, rv, _t(w, device), _t(b, device), training=True,
                   momentum=m)
        torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, torch.tensor(w),
                                       torch.tensor(b), training=True, momentum=m)
    assert_close(rm, trm, rtol=1e-12, atol=1e-12)
    assert_close(rv, trv, rtol=1e-12, atol=1e-12)
    x = rng.standard_normal((2, C, 4, 4))
    y = batch_norm(_t(x, device), rm, rv, _t(w, device), _t(b, device), training=False)
    ty = torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, torch.tensor(w),
                                        torch.tensor(b), training=False)
    assert_close(y, ty, rtol=1e-12, atol=1e-12)


def test_batch_norm_without_running_stats_uses_batch_stats(device):
    x = np.random.default_rng(6).standard_normal((5, 2, 3)) * 4 + 7
    for training in (True, False):
        y = batch_norm(_t(x, device), None, None, training=training).numpy()
        np.testing.assert_allclose(y.mean(axis=(0, 2)), 0, atol=1e-12)
        np.testing.assert_allclose(y.var(axis=(0, 2)), 1, rtol=1e-5)  # eps shrinks it


def test_batch_norm_eval_leaves_running_stats(device):
    rm, rv = md.tensor([0.5, -1.0], device=device), md.tensor([2.0, 0.5], device=device)
    batch_norm(md.randn(3, 2, device=device), rm, rv, training=False)
    assert rm.tolist() == [0.5, -1.0] and rv.tolist() == [2.0, 0.5]


def test_batch_norm_float32_stays_float32_and_accurate(device):
    # large offset: a one-pass E[x^2] - E[x]^2 variance would lose every digit here
    x = (np.random.default_rng(7).standard_normal((16, 4, 8, 8)) + 1000).astype(np.float32)
    rm, rv = md.zeros(4, device=device), md.ones(4, device=device)
    X = _t(x, device, True)
    y = batch_norm(X, rm, rv, training=True)
    y.sum().backward()
    assert y.dtype == np.float32 and X.grad.dtype == np.float32 and rv.dtype == np.float32
    x64 = x.astype(np.float64)
    ref = (x64 - x64.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
        x64.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    assert_close(y, ref, rtol=1e-3, atol=2e-3)


def test_batch_norm_double_backward_is_refused(device):
    X = md.randn(4, 3, dtype="float64", device=device, requires_grad=True)
    y = batch_norm(X, None, None, training=True)
    with pytest.raises(NotImplementedError, match="BatchNorm"):
        md.grad((y * y).sum(), [X], create_graph=True)


# ---- batch_norm: bad input ------------------------------------------------------------
def test_batch_norm_bad_input(device):
    rm, rv = md.zeros(3, device=device), md.ones(3, device=device)
    with pytest.raises(ValueError, match="more than 1 value per channel when training"):
        batch_norm(md.randn(1, 3, device=device), rm, rv, training=True)
    with pytest.raises(ValueError, match=r"input size \(1, 3, 1, 1\)"):
        batch_norm(md.randn(1, 3, 1, 1, device=device), None, None, training=False)
    # eval with running stats accepts a single sample
    batch_norm(md.randn(1, 3, device=device), rm, rv, training=False)
    with pytest.raises(ValueError, match="input"):
        batch_norm(md.randn(3, device=device), None, None, training=True)
    with pytest.raises(ValueError, match="momentum"):
        batch_norm(md.randn(4, 3, device=device), rm, rv, training=True, momentum=1.5)
    with pytest.raises(ValueError, match="momentum"):
        batch_norm(md.randn(4, 3, device=device), rm, rv, training=True, momentum=None)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        batch_norm(md.randn(4, 3, device=device), rm, rv, md.ones(4, device=device))
    with pytest.raises(ValueError, match="running_mean"):
        batch_norm(md.randn(4, 3, device=device), md.zeros(2, device=device), rv)
    with pytest.raises(ValueError, match="running_var"):
        batch_norm(md.randn(4, 3, device=device), rm, None, training=True)
    with pytest.raises(TypeError, match="float"):
        batch_norm(md.tensor([[1, 2], [3, 4]], device=device), None, None, training=True)
    with pytest.raises(TypeError, match="weight has dtype float64"):
        batch_norm(md.randn(4, 3, device=device), rm, rv, md.ones(3, dtype="float64",
                                                                   device=device))
    with pytest.raises(ValueError, match="eps"):
        batch_norm(md.randn(4, 3, device=device), rm, rv, eps=-1.0)


# ---- layer_norm, group_norm, instance_norm --------------------------------------------
@settings(max_examples=12)
@given(x=mst.arrays(mst.shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)),
       k=st.integers(1, 4), affine=st.booleans())
def test_layer_norm_gradcheck(device, x, k, affine):
    k = min(k, x.ndim)
    shape = x.shape[x.ndim - k:]
    rng = np.random.default_rng(8)
    X = _t(x, device, True)
    if affine:
        W, B = _t(rng.standard_normal(shape), device, True), _t(rng.standard_normal(shape),
                                                                device, True)
        assert gradcheck(lambda a, w, b: layer_norm(a, shape, w, b), [X, W, B])
    else:
        assert gradcheck(lambda a: layer_norm(a, shape), [X])


@settings(max_examples=12)
@given(x=mst.arrays(st.tuples(st.integers(1, 3), st.sampled_from([2, 4, 6]),
                              st.integers(1, 3))),
       groups=st.sampled_from([1, 2]), affine=st.booleans(), spatial_2d=st.booleans())
def test_group_norm_gradcheck(device, x, groups, affine, spatial_2d):
    if spatial_2d:
        x = x.reshape(x.shape + (1,)).repeat(2, axis=3) * np.array([1.0, -0.5])
    C = x.shape[1]
    rng = np.random.default_rng(9)
    X = _t(x, device, True)
    if affine:
        W, B = _t(rng.standard_normal(C), device, True), _t(rng.standard_normal(C), device,
                                                            True)
        assert gradcheck(lambda a, w, b: group_norm(a, groups, w, b), [X, W, B])
    else:
        assert gradcheck(lambda a: group_norm(a, groups), [X])


def test_instance_norm_gradcheck(device):
    rng = np.random.default_rng(10)
    X = _t(rng.standard_normal((2, 3, 2, 3)), device, True)
    W, B = _t(rng.standard_normal(3), device, True), _t(rng.standard_normal(3), device, True)
    assert gradcheck(lambda a, w, b: instance_norm(a, w, b), [X, W, B])
    assert gradcheck(lambda a: instance_norm(a), [X])


NORM_CASES = [
    ("layer_norm", (4, 10), dict(normalized_shape=(10,)), "float64"),
    ("layer_norm", (2, 3, 4, 5), dict(normalized_shape=(4, 5)), "float32"),
    ("layer_norm", (2, 3, 4), dict(normalized_shape=(3, 4), affine=False), "float64"),
    ("group_norm", (2, 6, 4, 4), dict(num_groups=3), "float32"),
    ("group_norm", (3, 4, 5), dict(num_groups=4), "float64"),
    ("group_norm", (2, 4), dict(num_groups=2, affine=False), "float64"),
    ("instance_norm", (2, 3, 5, 5), dict(), "float32"),
    ("instance_norm", (2, 3, 7), dict(affine=False), "float64"),
]


@pytest.mark.parametrize("name,shape,kwargs,dtype", NORM_CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in NORM_CASES])
def test_norms_match_torch(device, name, shape, kwargs, dtype):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(11)
    kwargs = dict(kwargs)
    affine = kwargs.pop("affine", True)
    pshape = kwargs["normalized_shape"] if name == "layer_norm" else (shape[1],)
    x = (rng.standard_normal(shape) * 3 - 2).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    w, b = rng.standard_normal(pshape).astype(dtype), rng.standard_normal(pshape).astype(dtype)
    X = _t(x, device, True)
    W, B = (_t(w, device, True), _t(b, device, True)) if affine else (None, None)
    tx = torch.tensor(x, requires_grad=True)
    tw, tb = (torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)) \
        if affine else (None, None)
    if name == "layer_norm":
        y = layer_norm(X, kwargs["normalized_shape"], W, B)
        ty = tf.layer_norm(tx, kwargs["normalized_shape"], tw, tb)
    elif name == "group_norm":
        y = group_norm(X, kwargs["num_groups"], W, B)
        ty = tf.group_norm(tx, kwargs["num_groups"], tw, tb)
    else:
        y = instance_norm(X, W, B)
        ty = tf.instance_norm(tx, weight=tw, bias=tb)
    y.backward(_t(gy, device))
    ty.backward(torch.tensor(gy))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    assert y.dtype == np.dtype(dtype) and X.grad.dtype == np.dtype(dtype)
    assert_close(y, ty, **tol)
    assert_close(X.grad, tx.grad, **tol)
    if affine:
        assert_close(W.grad, tw.grad, **tol)
        assert_close(B.grad, tb.grad, **tol)


def test_norms_bad_input(device):
    x = md.randn(2, 6, 3, device=device)
    with pytest.raises(ValueError, match="normalized_shape"):
        layer_norm(x, (4,))
    with pytest.raises(ValueError, match="normalized_shape"):
        layer_norm(x, (2, 6, 3, 1))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        layer_norm(x, (3,), md.ones(4, device=device))
    with pytest.raises(ValueError, match="num_groups"):
        group_norm(x, 4)
    with pytest.raises(ValueError, match="num_groups"):
        group_norm(x, 0)
    with pytest.raises(ValueError, match=r"bias must have shape \(6,\)"):
        group_norm(x, 3, None, md.zeros(3, device=device))
    with pytest.raises(ValueError, match="input"):
        group_norm(md.randn(6, device=device), 3)
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        instance_norm(md.randn(2, 3, 1, 1, device=device))
    with pytest.raises(ValueError, match="input"):
        instance_norm(md.randn(2, 3, device=device))

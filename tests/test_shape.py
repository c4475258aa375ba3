"""Shape ops, indexing, joining and padding: values and gradients."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.testing import assert_close, gradcheck, gradgradcheck
from minidl.testing import strategies as mst


def t(a, device, grad=True):
    return md.tensor(np.asarray(a), device=device, requires_grad=grad)


@given(x=mst.arrays(mst.shapes(1, 4, 1, 4)), data=st.data())
@settings(max_examples=15)
def test_reshape_permute_transpose_flatten(device, x, data):
    perm = data.draw(st.permutations(range(x.ndim)))
    assert_close(t(x, device).permute(*perm), x.transpose(perm))
    gradcheck(lambda a: a.permute(*perm).reshape(-1), [t(x, device)])
    gradcheck(lambda a: a.transpose(0, -1).flatten(), [t(x, device)])
    gradgradcheck(lambda a: (a.reshape(x.size, 1) * 2).T, [t(x, device)])


def test_squeeze_unsqueeze_expand(device):
    x = np.random.default_rng(0).standard_normal((3, 1, 2))
    assert t(x, device).squeeze().shape == (3, 2)
    assert t(x, device).squeeze(1).shape == (3, 2)
    assert t(x, device).squeeze(0).shape == (3, 1, 2)
    assert t(x, device).unsqueeze(-1).shape == (3, 1, 2, 1)
    assert_close(t(x, device).expand(4, 3, 5, 2), np.broadcast_to(x, (4, 3, 5, 2)))
    gradcheck(lambda a: a.expand(2, 3, 4, -1), [t(x, device)])
    gradgradcheck(lambda a: a.expand(2, 3, 4, 2), [t(x, device)])
    with pytest.raises(ValueError, match="cannot expand"):
        t(x, device).expand(3, 2, 3)


def test_basic_and_advanced_indexing(device):
    x = np.random.default_rng(0).standard_normal((4, 5))
    cases = [
        (1, x[1]), ((slice(1, 3), 2), x[1:3, 2]), ((Ellipsis, -1), x[..., -1]),
        ((slice(None, None, 2),), x[::2]),
        (np.array([0, 0, 3]), x[[0, 0, 3]]),                 # repeated rows add up
        ((np.array([1, 1]), np.array([2, 2])), x[[1, 1], [2, 2]]),
        (x > 0, x[x > 0]),                                   # boolean mask
        ((None, 1), x[None, 1]),
    ]
    for index, expected in cases:
        assert_close(t(x, device)[index], expected)
        gradcheck(lambda a: a[index], [t(x, device)])
        gradgradcheck(lambda a: a[index] * 1.0, [t(x, device)])


def test_repeated_index_gradient_adds(device):
    x = t(np.zeros(3), device)
    x[np.array([0, 0, 2, 0])].sum().backward()
    assert x.grad.numpy().tolist() == [3, 0, 1]


def test_index_with_tensor(device):
    x = t(np.arange(6.0), device)
    idx = md.tensor([5, 1], device=device)
    assert x[idx].numpy().tolist() == [5.0, 1.0]
    with pytest.raises(TypeError, match="integer or bool"):
        x[np.array([0.5])]


@given(n=st.integers(1, 4), dim=st.integers(0, 2), seed=st.integers(0, 1000))
@settings(max_examples=10)
def test_cat_stack_split_chunk(device, n, dim, seed):
    rng = np.random.default_rng(seed)
    parts = [rng.standard_normal((2, 3, 2)) for _ in range(n)]
    parts = [p[:, :k + 1] if dim == 1 else p for k, p in enumerate(parts)]
    assert_close(md.cat([t(p, device) for p in parts], dim), np.concatenate(parts, dim))
    gradcheck(lambda *ts: md.cat(ts, dim), [t(p, device) for p in parts])
    same = [rng.standard_normal((2, 3)) for _ in range(n)]
    assert_close(md.stack([t(p, device) for p in same], dim), np.stack(same, dim))
    gradcheck(lambda *ts: md.stack(ts, dim), [t(p, device) for p in same])
    x = rng.standard_normal((5, 4, 3))
    pieces = t(x, device).split(2, dim)
    assert [p.shape[dim] for p in pieces] == [len(r) for r in np.array_split(
        np.arange(x.shape[dim]), range(2, x.shape[dim], 2))]
    gradcheck(lambda a: a.split(2, dim)[-1], [t(x, device)])
    assert len(t(x, device).chunk(2, 0)) == 2


def test_cat_errors(device):
    with pytest.raises(ValueError, match="tensor 1 has shape"):
        md.cat([md.ones(2, 3, device=device), md.ones(2, 4, device=device)], 0)
    with pytest.raises(ValueError, match="non-empty"):
        md.cat([], 0)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
def test_pad_modes(device, mode):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    widths = (2, 1, 3, 0)
    out = md.ops.shape.pad(t(x, device), widths, mode=mode, value=0.5)
    np_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}[mode]
    kw = {"constant_values": 0.5} if mode == "constant" else {}
    assert_close(out, np.pad(x, [(0, 0), (0, 0), (3, 0), (2, 1)], mode=np_mode, **kw))
    gradcheck(lambda a: md.ops.shape.pad(a, widths, mode=mode), [t(x, device)])
    with pytest.raises(ValueError, match="non-negative"):
        md.ops.shape.pad(t(x, device), (-1, 0))
    with pytest.raises(ValueError, match="mode"):
        md.ops.shape.pad(t(x, device), (1, 1), mode="circular-ish")


def test_dtype_and_device_moves(device):
    x = t(np.arange(3.0), device)
    y = x.float()
    assert y.dtype == np.float32
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64 and x.grad.numpy().tolist() == [2, 2, 2]
    assert x.long().dtype == np.int64 and not x.long().requires_grad
    z = x.to("cpu")
    assert z.device == md.Device("cpu")


def test_reshape_errors(device):
    with pytest.raises(ValueError, match="invalid for a tensor of 6 elements"):
        md.ones(2, 3, device=device).reshape(4, 2)
    with pytest.raises(ValueError, match="permutation"):
        md.ones(2, 3, device=device).permute(0, 0)

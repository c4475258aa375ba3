"""Every nn layer against torch.nn with the same weights (forward, input and parameter
gradients, running statistics), PyTorch's default init, modes and bad input."""
import math

import numpy as np
import pytest

import minidl as md
from minidl import nn
from minidl.testing import assert_close, gradcheck


def _torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch


def _parity(ours, theirs, x_np, device, train=True, rtol=1e-9, atol=1e-10, extra=()):
    """Load theirs' weights into ours; compare outputs, gradients and the state after."""
    import torch
    ours.double()
    theirs.double()
    result = ours.load_state_dict(theirs.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    ours.to(device)
    ours.train(train)
    theirs.train(train)
    x = md.tensor(x_np, device=device, requires_grad=True)
    tx = torch.tensor(x_np, requires_grad=True)
    y = ours(x, *extra)
    ty = theirs(tx, *extra)
    assert y.shape == tuple(ty.shape)
    assert_close(y, ty, rtol=rtol, atol=atol, msg="forward: ")
    gy = np.random.default_rng(1).standard_normal(y.shape)
    # "* 1": Identity and eval-mode Dropout return x itself, and backward() called on a
    # leaf does not fill that leaf's .grad in the core (PyTorch's does).
    (y * 1).backward(md.tensor(gy, device=device))
    ty.backward(torch.tensor(gy))
    assert_close(x.grad, tx.grad, rtol=rtol, atol=atol, msg="input grad: ")
    ours_params = dict(ours.named_parameters())
    for name, tp in theirs.named_parameters():
        assert name in ours_params, name
        assert_close(ours_params[name].grad, tp.grad, rtol=rtol, atol=atol,
                     msg=f"grad of {name}: ")
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, tv in theirs.state_dict().items():
        assert_close(ours.state_dict()[key], tv, rtol=rtol, atol=atol, msg=f"{key}: ")
    return y


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


LAYERS = [
    # (name, constructor args applied to both nn and torch.nn, input shape)
    ("Linear", (5, 3), {}, (4, 5)),
    ("Linear", (5, 3), {"bias": False}, (2, 4, 5)),
    ("Conv2d", (3, 4, 3), {}, (2, 3, 7, 7)),
    ("Conv2d", (4, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2,
                                    bias=False), (2, 4, 8, 7)),
    ("Conv2d", (3, 4, 3), {"padding": "same"}, (2, 3, 6, 5)),
    ("Conv2d", (3, 4, 4), {"padding": "same", "dilation": 2}, (1, 3, 9, 8)),
    ("Conv2d", (3, 2, 3), {"padding": "valid", "stride": 2}, (1, 3, 7, 8)),
    ("Conv2d", (2, 3, 3), {"padding": 1, "padding_mode": "reflect"}, (2, 2, 5, 6)),
    ("Conv2d", (2, 3, 3), {"padding": (2, 1), "padding_mode": "replicate"}, (2, 2, 5, 6)),
    ("Conv2d", (2, 3, (3, 2)), {"padding": (2, 1), "padding_mode": "circular"}, (2, 2, 5, 6)),
    ("Conv2d", (2, 3, 4), {"padding": "same", "padding_mode": "reflect"}, (1, 2, 6, 6)),
    ("ConvTranspose2d", (4, 2, 3), dict(stride=2, padding=1, output_padding=1), (2, 4, 5, 4)),
    ("ConvTranspose2d", (4, 6, 3), dict(groups=2, dilation=2, bias=False), (1, 4, 3, 5)),
    ("BatchNorm1d", (3,), {}, (6, 3)),
    ("BatchNorm1d", (3,), {"affine": False}, (4, 3, 5)),
    ("BatchNorm2d", (3,), {}, (4, 3, 5, 5)),
    ("BatchNorm2d", (3,), {"momentum": None}, (4, 3, 2, 3)),
    ("BatchNorm2d", (3,), {"track_running_stats": False}, (4, 3, 2, 3)),
    ("BatchNorm2d", (3,), {"bias": False}, (4, 3, 2, 3)),
    ("LayerNorm", ((4, 5),), {}, (3, 4, 5)),
    ("LayerNorm", (5,), {"elementwise_affine": False}, (3, 5)),
    ("LayerNorm", (5,), {"bias": False}, (2, 3, 5)),
    ("GroupNorm", (2, 4), {}, (3, 4, 3, 3)),
    ("GroupNorm", (2, 4), {"bias": False}, (3, 4, 3, 3)),
    ("GroupNorm", (4, 4), {"affine": False, "eps": 1e-3}, (2, 4, 5)),
    ("InstanceNorm2d", (3,), {}, (2, 3, 4, 5)),
    ("InstanceNorm2d", (3,), {"affine": True}, (2, 3, 4, 5)),
    ("InstanceNorm2d", (3,), {"affine": True, "track_running_stats": True}, (2, 3, 4, 5)),
    ("InstanceNorm2d", (3,), {}, (3, 4, 5)),
    ("ReLU", (), {}, (3, 4)),
    ("LeakyReLU", (0.2,), {}, (3, 4)),
    ("Sigmoid", (), {}, (3, 4)),
    ("Tanh", (), {}, (3, 4)),
    ("GELU", (), {}, (3, 4)),
    ("GELU", (), {"approximate": "tanh"}, (3, 4)),
    ("SiLU", (), {}, (3, 4)),
    ("Hardtanh", (-2.0, 1.5), {}, (3, 4)),
    ("ReLU6", (), {}, (3, 4)),
    ("Softmax", (1,), {}, (3, 4, 2)),
    ("LogSoftmax", (-1,), {}, (3, 4)),
    ("Identity", (), {}, (3, 4)),
    ("Flatten", (), {}, (2, 3, 4)),
    ("Flatten", (0, 1), {}, (2, 3, 4)),
    ("MaxPool2d", (2,), {}, (2, 3, 6, 6)),
    ("MaxPool2d", ((3, 2),), dict(stride=1, padding=1, ceil_mode=True), (2, 2, 5, 6)),
    ("MaxPool2d", (3,), dict(stride=2, padding=1, dilation=2, ceil_mode=True), (1, 2, 9, 8)),
    ("AvgPool2d", (2,), {}, (2, 3, 6, 5)),
    ("AvgPool2d", (3, 2, 1, True, False), {}, (2, 2, 6, 7)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True), (1, 2, 6, 6)),
    ("AvgPool2d", (2,), dict(divisor_override=3), (1, 2, 4, 4)),
    ("AdaptiveAvgPool2d", ((2, 3),), {}, (2, 3, 7, 5)),
    ("AdaptiveAvgPool2d", (1,), {}, (2, 3, 4, 4)),
    ("AdaptiveAvgPool2d", ((2, None),), {}, (1, 2, 5, 3)),
    ("AdaptiveMaxPool2d", (3,), {}, (2, 3, 7, 8)),
    ("Upsample", (), dict(scale_factor=2), (1, 2, 3, 4)),
    ("Upsample", (), dict(size=(5, 7), mode="bilinear", align_corners=True), (1, 2, 3, 4)),
    ("Upsample", (), dict(scale_factor=(1.5, 2), mode="bilinear"), (2, 1, 4, 3)),
    ("Upsample", (), dict(size=5), (1, 2, 3, 4)),
    ("UpsamplingBilinear2d", (), dict(scale_factor=2), (1, 2, 3, 3)),
    ("UpsamplingNearest2d", (), dict(size=(4, 6)), (1, 2, 3, 3)),
    ("Dropout", (0.3,), {}, (3, 4)),            # compared in eval mode below
    ("Dropout2d", (0.3,), {}, (2, 3, 4, 4)),
]


def _ids(case):
    name, args, kwargs, _ = case
    return name + "-" + "-".join(map(str, args)) + "".join(f"-{k}={v}" for k, v in
                                                             kwargs.items())


# minidl follows the layer signatures and reprs of torch 2.13 (the version of this project's
# parity tests); an older torch (2.11 on the GPU machines) lacks some arguments, such as
# BatchNorm's bias, and prints no bias= in LayerNorm's and the norms' reprs.
def _torch_has_2_13_layers(torch) -> bool:
    return tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 13)


def _torch_layer(torch, name, args, kwargs):
    """torch.nn's layer, or None where this torch's signature lacks one of kwargs."""
    try:
        return getattr(torch.nn, name)(*args, **kwargs)
    except TypeError:
        if _torch_has_2_13_layers(torch):
            raise
        return None


@pytest.mark.parametrize("case", LAYERS, ids=[_ids(c) for c in LAYERS])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_layer_matches_torch(case, train, device):
    torch = _torch()
    name, args, kwargs, shape = case
    if name.startswith("Dropout") and train:
        pytest.skip("random masks differ from torch's; dropout is tested below")
    theirs = _torch_layer(torch, name, args, kwargs)
    if theirs is None:
        pytest.skip(f"torch {torch.__version__} has no {name}({kwargs}); minidl follows 2.13")
    ours = getattr(nn, name)(*args, **kwargs)
    if train is False and name.startswith(("BatchNorm", "InstanceNorm")) and \
            kwargs.get("track_running_stats", name.startswith("Batch")):
        # Give eval mode running statistics that are not the defaults.
        with torch.no_grad():
            theirs.running_mean.uniform_(-1, 1)
            theirs.running_var.uniform_(0.5, 2)
    _parity(ours, theirs, _x(*shape), device, train=train)
    if _torch_has_2_13_layers(torch):
        assert repr(ours) == repr(theirs)


def test_conv_transpose_output_size_matches_torch(device):
    torch = _torch()
    theirs = torch.nn.ConvTranspose2d(3, 2, 3, stride=3, padding=1)
    ours = nn.ConvTranspose2d(3, 2, 3, stride=3, padding=1)
    y = _parity(ours, theirs, _x(1, 3, 4, 4), device, extra=((12, 11),))
    assert y.shape == (1, 2, 12, 11)
    with pytest.raises(ValueError, match="not reachable"):
        ours(md.randn(1, 3, 4, 4, dtype="float64", device=device), (14, 11))


def test_max_pool_return_indices_match_torch(device):
    torch = _torch()
    x = _x(2, 3, 7, 6)
    for ours, theirs in [(nn.MaxPool2d(3, 2, 1, return_indices=True),
                          torch.nn.MaxPool2d(3, 2, 1, return_indices=True)),
                         (nn.AdaptiveMaxPool2d((2, 4), return_indices=True),
                          torch.nn.AdaptiveMaxPool2d((2, 4), return_indices=True))]:
        y, idx = ours(md.tensor(x, device=device))
        ty, tidx = theirs(torch.tensor(x))
        assert_close(y, ty)
        assert np.array_equal(idx.numpy(), tidx.numpy())


def test_parameter_names_and_shapes_match_torch():
    torch = _torch()
    for name, args, kwargs, _ in LAYERS:
        theirs = _torch_layer(torch, name, args, kwargs)
        if theirs is None:
            continue
        ours = getattr(nn, name)(*args, **kwargs)
        assert [(n, tuple(p.shape)) for n, p in theirs.named_parameters()] == \
            [(n, p.shape) for n, p in ours.named_parameters()], name
        assert list(theirs.state_dict()) == list(ours.state_dict()), name
        for key, value in ours.state_dict().items():
            assert value.dtype == np.dtype(str(theirs.state_dict()[key].dtype)
                                           .replace("torch.", "")), (name, key)


# ---- default init ----------------------------------------------------------------------
@pytest.mark.parametrize("make,fan_in", [
    (lambda: nn.Linear(400, 300), 400),
    (lambda: nn.Conv2d(32, 64, 3), 32 * 9),
    (lambda: nn.Conv2d(32, 64, (3, 5), groups=4), 8 * 15),
    (lambda: nn.ConvTranspose2d(32, 64, 3), 64 * 9),    # weight (in, out, kh, kw)
])
def test_default_init_like_pytorch(make, fan_in):
    layer = make()
    w, b = layer.weight.numpy(), layer.bias.numpy()
    bound = 1 / math.sqrt(fan_in)       # kaiming_uniform_(a=sqrt(5)): gain*sqrt(3/fan)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.03)
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.8 * bound
    assert w.dtype == np.float32 and b.dtype == np.float32
    assert layer.weight.requires_grad and str(layer.weight.device) == "cpu"


def test_default_init_bounds_equal_torch():
    torch = _torch()
    for ours, theirs in [(nn.Linear(300, 200), torch.nn.Linear(300, 200)),
                         (nn.Conv2d(16, 32, 5), torch.nn.Conv2d(16, 32, 5)),
                         (nn.ConvTranspose2d(16, 32, 3, groups=2),
                          torch.nn.ConvTranspose2d(16, 32, 3, groups=2))]:
        for name in ("weight", "bias"):
            a = getattr(ours, name).numpy()
            t = getattr(theirs, name).detach().numpy()
            assert a.shape == t.shape
            assert np.abs(a).max() == pytest.approx(np.abs(t).max(), rel=0.05)
            assert a.std() == pytest.approx(t.std(), rel=0.1)


def test_norm_layers_init_to_identity():
    for layer in (nn.BatchNorm1d(4), nn.BatchNorm2d(4), nn.LayerNorm(4), nn.GroupNorm(2, 4)):
        assert np.all(layer.weight.numpy() == 1) and np.all(layer.bias.numpy() == 0)
    bn = nn.BatchNorm2d(4)
    assert np.all(bn.running_mean.numpy() == 0) and np.all(bn.running_var.numpy() == 1)
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.ndim == 0
    assert nn.InstanceNorm2d(3).weight is None


def test_layers_honour_device_and_dtype_arguments():
    layer = nn.Linear(3, 2, dtype="float64")
    assert layer.weight.dtype == np.float64 and layer.bias.dtype == np.float64
    assert nn.Conv2d(1, 1, 1, dtype="float64").weight.dtype == np.float64
    assert nn.BatchNorm2d(2, dtype="float64").running_var.dtype == np.float64


# ---- BatchNorm running statistics over several steps ----------------------------------
@pytest.mark.parametrize("momentum", [0.1, None, 0.5])
@pytest.mark.parametrize("cls,shape", [("BatchNorm2d", (4, 3, 3, 2)), ("BatchNorm1d", (5, 3)),
                                       ("BatchNorm1d", (4, 3, 6))])
def test_batchnorm_running_stats_over_steps_equal_torch(device, momentum, cls, shape):
    torch = _torch()
    ours = getattr(nn, cls)(3, momentum=momentum).double().to(device)
    theirs = getattr(torch.nn, cls)(3, momentum=momentum).double()
    rng = np.random.default_rng(2)
    for step in range(5):
        x = rng.standard_normal(shape) * (step + 1) + step
        y = ours(md.tensor(x, device=device))
        ty = theirs(torch.tensor(x))
        assert_close(y, ty, rtol=1e-9, atol=1e-10)
        assert int(ours.num_batches_tracked.item()) == step + 1
        assert_close(ours.running_mean, theirs.running_mean, rtol=1e-10, atol=1e-12)
        assert_close(ours.running_var, theirs.running_var, rtol=1e-10, atol=1e-12)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape)
    assert_close(ours(md.tensor(x, device=device)), theirs(torch.tensor(x)), rtol=1e-9,
                 atol=1e-10)
    assert int(ours.num_batches_tracked.item()) == 5     # eval does not count


def test_batchnorm_momentum_none_is_the_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None).double()
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((8, 2)) * s + s for s in (1.0, 2.0, 3.0, 4.0)]
    for b in batches:
        bn(md.tensor(b))
    assert_close(bn.running_mean, np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-12)
    assert_close(bn.running_var, np.mean([b.var(0, ddof=1) for b in batches], axis=0),
                 rtol=1e-12)


def test_batchnorm_momentum_formula_and_unbiased_running_var():
    bn = nn.BatchNorm2d(2, momentum=0.3).double()
    x = _x(3, 2, 2, 2)
    bn(md.tensor(x))
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3), ddof=1)
    assert_close(bn.running_mean, 0.3 * mean, rtol=1e-12)
    assert_close(bn.running_var, 0.7 + 0.3 * var, rtol=1e-12)


def test_batchnorm_eval_uses_running_stats_and_does_not_update():
    bn = nn.BatchNorm2d(2).double()
    bn.running_mean.data[...] = [1.0, -1.0]
    bn.running_var.data[...] = [4.0, 0.25]
    bn.eval()
    x = _x(2, 2, 3, 3)
    y = bn(md.tensor(x)).numpy()
    expected = (x - np.array([1.0, -1.0])[:, None, None]) / np.sqrt(
        np.array([4.0, 0.25])[:, None, None] + 1e-5)
    assert_close(y, expected, rtol=1e-12)
    assert_close(bn.running_mean, [1.0, -1.0])
    assert int(bn.num_batches_tracked.item()) == 0


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval():
    bn = nn.BatchNorm1d(3, track_running_stats=False).double().eval()
    assert bn.running_mean is None and bn.num_batches_tracked is None
    y = bn(md.tensor(_x(10, 3))).numpy()
    assert_close(y.mean(0), np.zeros(3), atol=1e-12)


def test_batchnorm_state_dict_keys_like_torch():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert list(net.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias",
                                      "1.running_mean", "1.running_var",
                                      "1.num_batches_tracked"]


def test_batchnorm_bad_input():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4-D \(N, C, H, W\) input, "
                                         r"got 2-D"):
        nn.BatchNorm2d(3)(md.randn(4, 3))
    with pytest.raises(ValueError, match="BatchNorm1d: expected 2-D .* got 4-D"):
        nn.BatchNorm1d(3)(md.randn(4, 3, 2, 2))
    with pytest.raises(ValueError, match="input has 5 channels .* num_features=3"):
        nn.BatchNorm2d(3)(md.randn(4, 5, 2, 2))
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(md.randn(1, 3))
    assert int(bn.num_batches_tracked.item()) == 0      # a refused batch is not counted
    bn.eval()
    assert bn(md.randn(1, 3)).shape == (1, 3)           # fine in eval mode
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm2d(3, momentum=2.0)
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2d(0)


# ---- other modes and bad input --------------------------------------------------------
def test_dropout_train_and_eval(device):
    x = md.ones(200, 50, device=device)
    drop = nn.Dropout(0.3)
    y = drop(x).numpy()
    kept = y != 0
    assert np.allclose(y[kept], 1 / 0.7)
    assert kept.mean() == pytest.approx(0.7, abs=0.02)
    drop.eval()
    assert drop(x) is x
    assert nn.Dropout(0.0)(x) is x
    y2 = nn.Dropout2d(0.5)(md.ones(8, 16, 3, 3, device=device)).numpy()
    per_channel = y2.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2).all(-1))
    paths = nn.DropPath(0.5)(md.ones(64, 4, 2, device=device)).numpy()
    per_sample = paths.reshape(64, -1)
    assert np.all((per_sample == 0).all(-1) | (per_sample == 2).all(-1))
    assert nn.DropPath(0.5).eval()(x) is x
    assert repr(nn.DropPath(0.1)) == "DropPath(p=0.1)"
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.DropPath(-0.1)


def test_dropout_is_seeded_by_manual_seed():
    md.manual_seed(5)
    a = nn.Dropout(0.5)(md.ones(10, 10)).numpy()
    md.manual_seed(5)
    b = nn.Dropout(0.5)(md.ones(10, 10)).numpy()
    assert np.array_equal(a, b)


def test_layers_pass_training_flag_explicitly(monkeypatch):
    import minidl.ops.dropout as dropout_ops
    seen = []
    real = dropout_ops.dropout
    monkeypatch.setattr(dropout_ops, "dropout",
                        lambda x, p, training: seen.append(training) or real(x, p, training))
    net = nn.Sequential(nn.Dropout(0.5))
    net(md.ones(2))
    net.eval()(md.ones(2))
    assert seen == [True, False]


def test_conv_and_linear_bad_input():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="'same' is not supported for strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(3, 4, 0)
    with pytest.raises(ValueError, match="3 channels but weight expects 4"):
        nn.Conv2d(4, 2, 3)(md.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match="circular padding"):
        nn.Conv2d(1, 1, 3, padding=4, padding_mode="circular")(md.randn(1, 1, 3, 3))
    with pytest.raises(ValueError, match="linear: input has 4 features"):
        nn.Linear(5, 2)(md.randn(3, 4))
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(-1, 2)
    with pytest.raises(ValueError, match="num_channels must be divisible by num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(0)
    with pytest.raises(ValueError, match="InstanceNorm2d: expected 3-D"):
        nn.InstanceNorm2d(3)(md.randn(2, 3))
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("erf")


def test_functional_linear():
    import minidl.nn.functional as F
    x, w, b = md.randn(4, 3), md.randn(2, 3), md.randn(2)
    assert_close(F.linear(x, w, b), x.numpy() @ w.numpy().T + b.numpy(), rtol=1e-6)
    assert F.linear(x, w).shape == (4, 2)
    with pytest.raises(ValueError, match="bias must have shape"):
        F.linear(x, w, md.zeros(3))
    with pytest.raises(ValueError, match="weight must be 2-D"):
        F.linear(x, md.zeros(3))
    with pytest.raises(TypeError, match="expected Tensors"):
        F.linear(x.numpy(), w)


def test_functional_reexports_every_public_op():
    import minidl.nn.functional as F
    for name in ["linear", "conv2d", "conv_transpose2d", "batch_norm", "layer_norm",
                 "group_norm", "instance_norm", "dropout", "dropout2d", "drop_path", "relu",
                 "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "softmax", "log_softmax",
                 "pad"]:
        assert callable(getattr(F, name)), name


# ---- gradients through layers (float64 gradcheck) -------------------------------------
@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Linear(3, 2), (2, 3)),
    (lambda: nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"), (1, 2, 3, 4)),
    (lambda: nn.Sequential(nn.Conv2d(2, 3, 2), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(),
                           nn.Linear(3 * 2 * 2, 2)), (2, 2, 3, 3)),
])
def test_gradcheck_through_layers(device, make, shape):
    layer = make().double().to(device)
    x = md.tensor(_x(*shape), device=device, requires_grad=True)
    params = list(layer.parameters())

    def fn(x, *ps):
        return layer(x)

    assert gradcheck(fn, [x] + params)


# ---- losses ---------------------------------------------------------------------------
def _loss_parity(ours, theirs, x_np, target_np, device, rtol=1e-9, atol=1e-12):
    import torch
    ours.to(device)
    x = md.tensor(x_np, device=device, requires_grad=True)
    tx = torch.tensor(x_np, requires_grad=True)
    target = md.tensor(target_np, device=device)
    loss = ours(x, target)
    tloss = theirs(tx, torch.tensor(target_np))
    assert_close(loss, tloss, rtol=rtol, atol=atol, msg="loss: ")
    gy = np.random.default_rng(3).standard_normal(loss.shape)
    loss.backward(md.tensor(gy, device=device))
    tloss.backward(torch.tensor(gy))
    assert_close(x.grad, tx.grad, rtol=rtol, atol=atol, msg="input grad: ")
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)


def _labels(shape, classes, seed=4, ignore=None):
    labels = np.random.default_rng(seed).integers(0, classes, shape)
    if ignore is not None:
        labels.flat[::3] = ignore
    return labels.astype(np.int64)


@pytest.mark.parametrize("kwargs", [{}, {"reduction": "sum"}, {"reduction": "none"},
                                    {"label_smoothing": 0.2}, {"ignore_index": 1},
                                    {"weight": [0.5, 2.0, 1.0, 0.1]},
                                    {"weight": [0.5, 2.0, 1.0, 0.1], "ignore_index": 0,
                                     "label_smoothing": 0.1}])
def test_cross_entropy_loss_matches_torch(device, kwargs):
    torch = _torch()
    weight = kwargs.pop("weight", None)
    ours = nn.CrossEntropyLoss(weight=None if weight is None else
                               md.tensor(weight, dtype="float64"), **kwargs)
    theirs = torch.nn.CrossEntropyLoss(weight=None if weight is None else
                                       torch.tensor(weight, dtype=torch.float64), **kwargs)
    _loss_parity(ours, theirs, _x(6, 4), _labels(6, 4), device)
    _loss_parity(ours, theirs, _x(2, 4, 3, 2), _labels((2, 3, 2), 4), device)


def test_cross_entropy_loss_probability_targets_match_torch(device):
    torch = _torch()
    p = np.random.default_rng(5).random((5, 3))
    p /= p.sum(1, keepdims=True)
    _loss_parity(nn.CrossEntropyLoss(label_smoothing=0.1),
                 torch.nn.CrossEntropyLoss(label_smoothing=0.1), _x(5, 3), p, device)


@pytest.mark.parametrize("kwargs", [{}, {"reduction": "sum"}, {"ignore_index": 2},
                                    {"reduction": "none"}])
def test_nll_loss_matches_torch(device, kwargs):
    torch = _torch()
    logp = torch.log_softmax(torch.tensor(_x(6, 3)), 1).numpy()
    _loss_parity(nn.NLLLoss(**kwargs), torch.nn.NLLLoss(**kwargs), logp, _labels(6, 3),
                 device)
    w = [1.0, 0.3, 2.0]
    _loss_parity(nn.NLLLoss(md.tensor(w, dtype="float64"), **kwargs),
                 torch.nn.NLLLoss(torch.tensor(w, dtype=torch.float64), **kwargs), logp,
                 _labels(6, 3), device)


@pytest.mark.parametrize("name", ["MSELoss", "L1Loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses_match_torch(device, name, reduction):
    torch = _torch()
    _loss_parity(getattr(nn, name)(reduction=reduction),
                 getattr(torch.nn, name)(reduction=reduction), _x(3, 4), _x(3, 4, seed=9),
                 device)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_loss_matches_torch(device, reduction):
    torch = _torch()
    x, t = _x(4, 3) * 5, (np.random.default_rng(6).random((4, 3)) > 0.5).astype(np.float64)
    _loss_parity(nn.BCEWithLogitsLoss(reduction=reduction),
                 torch.nn.BCEWithLogitsLoss(reduction=reduction), x, t, device)
    w, pw = _x(4, 3, seed=7) ** 2, np.array([0.5, 2.0, 3.0])
    _loss_parity(nn.BCEWithLogitsLoss(md.tensor(w), reduction=reduction,
                                      pos_weight=md.tensor(pw)),
                 torch.nn.BCEWithLogitsLoss(torch.tensor(w), reduction=reduction,
                                            pos_weight=torch.tensor(pw)), x, t, device)


def test_loss_bad_input_and_legacy_flags():
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(TypeError, match="weight must be a Tensor"):
        nn.CrossEntropyLoss(weight=[1.0, 2.0])
    with pytest.warns(DeprecationWarning):
        assert nn.L1Loss(size_average=False).reduction == "sum"
    with pytest.warns(DeprecationWarning):
        assert nn.NLLLoss(reduce=False).reduction == "none"
    ce = nn.CrossEntropyLoss(weight=md.ones(3))
    assert list(ce.state_dict()) == ["weight"]   # a buffer: follows .to(device)


def test_training_step_with_layers_and_loss():
    # A tiny classifier learns a separable problem: the layers, the loss and the
    # parameters fit together end to end (plain SGD by hand).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(16, 2))
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = md.tensor(x), md.tensor(y)
    first = None
    for _ in range(60):
        loss = loss_fn(model(xt), yt)
        first = first if first is not None else float(loss.item())
        model.zero_grad()
        loss.backward()
        with md.no_grad():
            for p in model.parameters():
                p.data -= 0.2 * p.grad.data
    model.eval()
    accuracy = (model(xt).numpy().argmax(1) == y).mean()
    assert float(loss.item()) < first / 3 and accuracy > 0.95

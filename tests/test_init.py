"""nn.init: gains, fans, the statistics of every scheme, orthogonality, LSUV, and the two
claims of the course notes (symmetric zero init; saturation of deep tanh nets)."""
import math

import numpy as np
import pytest

import minidl as md
from minidl import nn
from minidl.nn import init


# ---- gains and fans ------------------------------------------------------------------
@pytest.mark.parametrize("name,param,expected", [
    ("linear", None, 1.0), ("conv2d", None, 1.0), ("conv_transpose2d", None, 1.0),
    ("sigmoid", None, 1.0), ("tanh", None, 5 / 3), ("relu", None, math.sqrt(2)),
    ("leaky_relu", None, math.sqrt(2 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2 / (1 + 0.04))), ("leaky_relu", 0, math.sqrt(2)),
    ("leaky_relu", math.sqrt(5), math.sqrt(1 / 3)), ("selu", None, 0.75),
])
def test_calculate_gain(name, param, expected):
    assert init.calculate_gain(name, param) == pytest.approx(expected, rel=1e-12)


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for name, param in [("tanh", None), ("relu", None), ("leaky_relu", 0.3), ("selu", None),
                        ("linear", None), ("sigmoid", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param))


def test_calculate_gain_bad_input():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "0.1")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape,fans", [
    ((30, 20), (20, 30)),                      # Linear (out, in)
    ((8, 4, 3, 3), (4 * 9, 8 * 9)),            # Conv2d (out, in, kh, kw)
    ((8, 2, 5, 3), (2 * 15, 8 * 15)),          # Conv2d with groups=2 on 4 channels
    ((6, 3, 7), (21, 42)),                     # Conv1d-shaped
])
def test_fan_in_and_fan_out(shape, fans):
    assert init._calculate_fan_in_and_fan_out(md.empty(*shape)) == fans


def test_fans_of_conv_weight_match_torch():
    torch = pytest.importorskip("torch")
    w = torch.empty(8, 2, 5, 3)
    assert init._calculate_fan_in_and_fan_out(md.empty(8, 2, 5, 3)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(w)


@pytest.mark.parametrize("fn", [init.xavier_uniform_, init.xavier_normal_,
                                init.kaiming_uniform_, init.kaiming_normal_,
                                init.orthogonal_])
def test_fan_of_1d_tensor_is_an_error(fn):
    with pytest.raises(ValueError, match=r"fewer than 2 dimensions|2 or more dimensions"):
        fn(md.zeros(5))


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(md.zeros(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.kaiming_uniform_(md.zeros(3, 3), nonlinearity="mish")
    with pytest.raises(TypeError, match="expected a Tensor"):
        init.xavier_uniform_(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="floating-point"):
        init.normal_(md.zeros(3, 3, dtype="int64"))
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform_(md.zeros(3), 1.0, 0.0)


# ---- statistics of each scheme (large tensors: sample std error ~0.2%) ---------------
SHAPE_LINEAR = (400, 500)          # fan_in 500, fan_out 400
SHAPE_CONV = (64, 32, 3, 3)        # fan_in 288, fan_out 576


def _std_and_max(t):
    a = t.numpy().astype(np.float64)
    return a.std(), np.abs(a).max(), a.mean()


@pytest.mark.parametrize("shape", [SHAPE_LINEAR, SHAPE_CONV])
@pytest.mark.parametrize("gain", [1.0, 5 / 3])
def test_xavier_statistics(device, shape, gain):
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(md.empty(*shape))
    t = md.empty(*shape, device=device)
    assert init.xavier_uniform_(t, gain=gain) is t
    bound = gain * math.sqrt(6 / (fan_in + fan_out))
    std, amax, mean = _std_and_max(t)
    assert amax <= bound and amax > 0.99 * bound
    assert std == pytest.approx(bound / math.sqrt(3), rel=0.02) and abs(mean) < 0.01 * bound
    init.xavier_normal_(t, gain=gain)
    std, amax, mean = _std_and_max(t)
    assert std == pytest.approx(gain * math.sqrt(2 / (fan_in + fan_out)), rel=0.02)
    assert abs(mean) < 0.02 * std


@pytest.mark.parametrize("shape", [SHAPE_LINEAR, SHAPE_CONV])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0), ("leaky_relu", 0.2),
                                            ("leaky_relu", math.sqrt(5)), ("tanh", 0),
                                            ("linear", 0)])
def test_kaiming_statistics(device, shape, mode, nonlinearity, a):
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(md.empty(*shape))
    fan = fan_in if mode == "fan_in" else fan_out
    gain = init.calculate_gain(nonlinearity, a)
    t = md.empty(*shape, device=device)
    assert init.kaiming_uniform_(t, a=a, mode=mode, nonlinearity=nonlinearity) is t
    bound = gain * math.sqrt(3 / fan)
    std, amax, _ = _std_and_max(t)
    assert amax <= bound and amax > 0.99 * bound
    assert std == pytest.approx(bound / math.sqrt(3), rel=0.02)
    init.kaiming_normal_(t, a=a, mode=mode, nonlinearity=nonlinearity)
    std, _, mean = _std_and_max(t)
    assert std == pytest.approx(gain / math.sqrt(fan), rel=0.02)
    assert abs(mean) < 0.02 * std


def test_kaiming_default_is_leaky_relu_fan_in():
    t = md.empty(*SHAPE_LINEAR)
    init.kaiming_normal_(t)
    assert t.numpy().std() == pytest.approx(
        math.sqrt(2 / (1 + 0.01 ** 2)) / math.sqrt(500), rel=0.02)


def test_uniform_normal_constant(device):
    t = md.empty(300, 300, device=device)
    init.uniform_(t, -0.5, 1.5)
    a = t.numpy()
    assert a.min() >= -0.5 and a.max() < 1.5 and a.mean() == pytest.approx(0.5, abs=0.01)
    assert a.std() == pytest.approx(2 / math.sqrt(12), rel=0.02)
    init.normal_(t, 3.0, 0.5)
    a = t.numpy()
    assert a.mean() == pytest.approx(3.0, abs=0.01) and a.std() == pytest.approx(0.5, rel=0.02)
    assert init.constant_(t, 0.25) is t and np.all(t.numpy() == 0.25)
    assert np.all(init.zeros_(t).numpy() == 0) and np.all(init.ones_(t).numpy() == 1)


def test_trunc_normal_stays_in_range():
    t = md.empty(200, 200)
    init.trunc_normal_(t, mean=0.0, std=1.0, a=-1.0, b=1.5)
    a = t.numpy()
    assert a.min() >= -1.0 and a.max() <= 1.5
    # Mean of N(0, 1) truncated to [-1, 1.5]: (phi(-1) - phi(1.5)) / (Phi(1.5) - Phi(-1)).
    phi = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    Phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))         # noqa: E731
    expected = (phi(-1.0) - phi(1.5)) / (Phi(1.5) - Phi(-1.0))
    assert a.mean() == pytest.approx(expected, abs=0.01)


def test_in_place_on_parameters_keeps_array_dtype_and_reproduces():
    layer = nn.Linear(50, 40)
    w = layer.weight
    array = w.data
    md.manual_seed(3)
    init.xavier_uniform_(w)            # requires_grad: the function works under no_grad
    first = w.numpy().copy()
    assert w.data is array and w.dtype == np.float32 and w.requires_grad
    md.manual_seed(3)
    init.xavier_uniform_(w)
    assert np.array_equal(first, w.numpy())
    t64 = md.empty(20, 30, dtype="float64")
    init.kaiming_normal_(t64)
    assert t64.dtype == np.float64


def test_zero_element_tensor_is_a_no_op():
    t = md.empty(0, 5)
    for fn in (init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_,
               init.kaiming_normal_, init.orthogonal_):
        assert fn(t) is t


# ---- orthogonal --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(30, 30), (20, 50), (50, 20), (16, 8, 3, 3), (4, 8, 3, 3)])
def test_orthogonal(device, shape):
    t = md.empty(*shape, dtype="float64", device=device)
    init.orthogonal_(t, gain=2.0)
    w = t.numpy().reshape(shape[0], -1)
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(gram, 4.0 * np.eye(min(rows, cols)), atol=1e-10)


def test_orthogonal_is_not_always_the_same_matrix():
    a, b = md.empty(10, 10), md.empty(10, 10)
    init.orthogonal_(a)
    init.orthogonal_(b)
    assert not np.allclose(a.numpy(), b.numpy())
    # The sign correction makes Q uniform (Haar): det is +1 or -1 with equal odds, and
    # the diagonal is not biased to be positive as a raw QR would make R's.
    diag = []
    for _ in range(200):
        init.orthogonal_(a)
        diag.append(np.diag(a.numpy()).copy())   # numpy() shares memory on CPU
    assert abs(np.mean(np.sign(diag))) < 0.15


# ---- the course notes' claims ----------------------------------------------------------
def test_zero_init_keeps_hidden_units_identical_after_sgd():
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((32, 5)))
    target = md.tensor(rng.standard_normal((32, 2)))
    fc1, fc2 = nn.Linear(5, 8), nn.Linear(8, 2)
    for p in list(fc1.parameters()) + list(fc2.parameters()):
        init.zeros_(p)
    params = list(fc1.parameters()) + list(fc2.parameters())
    for _ in range(5):
        hidden = fc1(x).sigmoid()
        loss = ((fc2(hidden) - target) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with md.no_grad():
            for p in params:
                p.data -= 0.5 * p.grad.data
    w1, b1, w2 = fc1.weight.numpy(), fc1.bias.numpy(), fc2.weight.numpy()
    assert np.abs(w1).max() > 1e-4 and np.abs(w2).max() > 1e-3   # they did learn...
    assert np.allclose(w1, w1[:1]) and np.allclose(b1, b1[0])     # ...all rows the same
    assert np.allclose(w2, w2[:, :1])
    h = fc1(x).sigmoid().numpy()
    assert np.allclose(h, h[:, :1])                               # 8 units act as one


def _tanh_stack_activations(weight_init, depth=20, width=256, batch=128):
    x = md.randn(batch, width)
    stats = []
    with md.no_grad():
        for _ in range(depth):
            layer = nn.Linear(width, width)
            weight_init(layer.weight)
            init.zeros_(layer.bias)
            x = layer(x).tanh()
            a = x.numpy()
            stats.append((a.std(), (np.abs(a) > 0.99).mean()))
    return stats


def test_deep_tanh_saturates_with_unit_normal_weights_not_with_xavier():
    normal = _tanh_stack_activations(lambda w: init.normal_(w, 0.0, 1.0))
    assert all(sat > 0.8 for _, sat in normal)            # most |activations| > 0.99
    gain = init.calculate_gain("tanh")
    xavier = _tanh_stack_activations(lambda w: init.xavier_normal_(w, gain=gain))
    first, last = xavier[0][0], xavier[-1][0]
    assert first / 2 < last < first * 2
    assert xavier[-1][1] < 0.1
    # Gain 1 does not saturate either, but the std shrinks layer after layer (0.63 to
    # about 0.15 over 20 layers): the reason calculate_gain("tanh") is 5/3.
    plain = _tanh_stack_activations(lambda w: init.xavier_uniform_(w))
    assert plain[-1][1] < 0.01 and plain[-1][0] < plain[0][0] / 2


# ---- LSUV --------------------------------------------------------------------------
def test_lsuv_mlp_reaches_target_variance_on_fresh_batch():
    model = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 64, bias=False), nn.ReLU(), nn.Linear(64, 10))
    batch = md.randn(256, 20) * 3 + 1
    report = init.lsuv_(model, batch, tol=0.05)
    assert [r["name"] for r in report] == ["0", "2", "4", "6"]
    assert all(r["converged"] and abs(r["variance"] - 1) < 0.05 for r in report)
    assert all(r["iterations"] >= 1 for r in report)
    fresh = md.randn(256, 20) * 3 + 1
    outputs = {}
    for name in ("0", "2", "4", "6"):
        model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: outputs.__setitem__(name, o.numpy()))
    model(fresh)
    for name, out in outputs.items():
        assert abs(out.var() - 1) < 0.1, name
    assert abs(outputs["0"].mean()) < 0.1   # bias set: the mean was removed


def test_lsuv_follows_forward_order_and_restores_modes():
    class Reversed(nn.Module):
        def __init__(self):
            super().__init__()
            self.late = nn.Linear(8, 4)
            self.early = nn.Linear(6, 8)
            self.drop = nn.Identity()

        def forward(self, x):
            return self.late(self.early(x).relu())

    model = Reversed()
    model.early.eval()
    report = init.lsuv_(model, md.randn(64, 6), target_var=2.0)
    assert [r["name"] for r in report] == ["early", "late"]
    assert all(abs(r["variance"] - 2.0) < 0.1 for r in report)
    assert model.training and not model.early.training and model.late.training


def test_lsuv_prints_when_verbose(capsys):
    init.lsuv_(nn.Sequential(nn.Linear(3, 3)), md.randn(16, 3), verbose=True)
    assert "lsuv_: 0: variance" in capsys.readouterr().out


def test_lsuv_bad_input():
    with pytest.raises(ValueError, match="no Conv2d, ConvTranspose2d or Linear"):
        init.lsuv_(nn.Sequential(nn.ReLU()), md.randn(2, 3))
    with pytest.raises(TypeError, match="batch must be a Tensor"):
        init.lsuv_(nn.Sequential(nn.Linear(3, 3)), np.zeros((2, 3)))
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        init.lsuv_(lambda x: x, md.randn(2, 3))
    with pytest.raises(ValueError, match="max_iters"):
        init.lsuv_(nn.Sequential(nn.Linear(3, 3)), md.randn(2, 3), max_iters=0)


def _conv_net(depth=10, width=16):
    layers, c = [], 3
    for i in range(depth - 1):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
        c = width
    layers += [nn.Conv2d(width, 10, 1)]
    return nn.Sequential(*layers)


def test_lsuv_ten_layer_conv_net_fresh_batch():
    # 16 channels of 16x16 maps: enough values per layer that the variance measured on
    # one batch of 32 holds on another (a Linear head after global pooling sees only
    # 32 x 10 values and varies by ~25% between batches, so the head is a 1x1 conv).
    model = _conv_net()
    rng = np.random.default_rng(0)
    batch = md.tensor(rng.standard_normal((32, 3, 16, 16)) * 2 + 0.5, dtype="float32")
    report = init.lsuv_(model, batch, tol=0.1)
    assert len(report) == 10 and all(r["converged"] for r in report)
    assert all(abs(r["variance"] - 1.0) < 0.1 for r in report)
    fresh = md.tensor(rng.standard_normal((32, 3, 16, 16)) * 2 + 0.5, dtype="float32")
    variances, means = [], []

    def record(module, inputs, output):
        variances.append(float(output.numpy().var()))
        means.append(float(output.numpy().mean()))

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(record)
    model(fresh)
    assert len(variances) == 10
    assert all(abs(v - 1.0) < 0.1 for v in variances), variances
    assert all(abs(m) < 0.1 for m in means), means
    # The defaults (PyTorch's kaiming_uniform_(a=sqrt(5))) shrink the signal instead.
    default = _conv_net()
    last = []
    default[-1].register_forward_hook(lambda m, i, o: last.append(float(o.numpy().var())))
    default(fresh)
    assert last[0] < 0.1

"""nn.Module, Parameter and the containers: registration, traversal, modes, state dicts,
hooks, printing."""
from collections import OrderedDict

import numpy as np
import pytest

import minidl as md
from minidl import nn
from minidl.testing import assert_close


class Block(nn.Module):
    def __init__(self, n=3):
        super().__init__()
        self.fc = nn.Linear(n, n)
        self.scale = nn.Parameter(md.ones(n))
        self.register_buffer("count", md.zeros(1))
        self.register_buffer("cache", md.zeros(n), persistent=False)

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(4, 3)
        self.layer1 = nn.Sequential(Block(), Block())
        self.heads = nn.ModuleDict({"a": nn.Linear(3, 2), "b": nn.Linear(3, 1)})

    def forward(self, x):
        h = self.layer1(self.stem(x))
        return self.heads["a"](h)


EXPECTED_KEYS = [
    "stem.weight", "stem.bias",
    "layer1.0.scale", "layer1.0.count", "layer1.0.fc.weight", "layer1.0.fc.bias",
    "layer1.1.scale", "layer1.1.count", "layer1.1.fc.weight", "layer1.1.fc.bias",
    "heads.a.weight", "heads.a.bias", "heads.b.weight", "heads.b.bias",
]


def _snapshot(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


# ---- Parameter -------------------------------------------------------------------------
def test_parameter_is_a_leaf_tensor_that_requires_grad():
    p = nn.Parameter(md.randn(2, 3))
    assert isinstance(p, md.Tensor) and p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(md.zeros(2), requires_grad=False).requires_grad
    with pytest.raises(TypeError, match="float"):
        nn.Parameter(md.zeros(2, dtype="int64"))


def test_parameter_shares_the_tensor_array():
    t = md.zeros(3)
    p = nn.Parameter(t)
    assert p.data is t.data


def test_parameter_ops_give_plain_tensors_and_gradients():
    p = nn.Parameter(md.tensor([1.0, 2.0]))
    y = (p * p).sum()
    assert type(y) is md.Tensor
    y.backward()
    assert_close(p.grad, [2.0, 4.0])


# ---- registration and traversal -------------------------------------------------------
def test_nested_registration_and_state_dict_key_names():
    net = Net()
    assert list(net.state_dict()) == EXPECTED_KEYS
    names = [n for n, _ in net.named_parameters()]
    assert names == [k for k in EXPECTED_KEYS if not k.endswith("count")]
    assert [n for n, _ in net.named_buffers()] == [
        "layer1.0.count", "layer1.0.cache", "layer1.1.count", "layer1.1.cache"]
    assert [n for n, _ in net.named_modules()] == [
        "", "stem", "layer1", "layer1.0", "layer1.0.fc", "layer1.1", "layer1.1.fc",
        "heads", "heads.a", "heads.b"]
    assert [n for n, _ in net.named_children()] == ["stem", "layer1", "heads"]
    assert len(list(net.parameters())) == 12
    assert len(list(net.parameters(recurse=False))) == 0
    assert [n for n, _ in net.layer1[0].named_parameters(prefix="x")] == [
        "x.scale", "x.fc.weight", "x.fc.bias"]
    assert net.get_submodule("layer1.1.fc") is net.layer1[1].fc


def test_pytorch_batchnorm_style_buffers_in_state_dict():
    m = nn.Module()
    m.register_buffer("running_mean", md.zeros(3))
    m.register_buffer("num_batches_tracked", md.tensor(0, dtype="int64"))
    m.register_buffer("tmp", md.zeros(3), persistent=False)
    sd = m.state_dict()
    assert list(sd) == ["running_mean", "num_batches_tracked"]
    assert sd["num_batches_tracked"].dtype == np.int64 and sd["num_batches_tracked"].ndim == 0


def test_shared_parameter_listed_once():
    a = nn.Linear(3, 3)
    b = nn.Linear(3, 3)
    b.weight = a.weight
    seq = nn.Sequential(a, b)
    assert len(list(seq.parameters())) == 3
    names = [n for n, _ in seq.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.bias"]
    # The state dict keeps both names, like PyTorch (so either layer can be reloaded).
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    shared = nn.Sequential(a, a)
    assert len(list(shared.modules())) == 2 and len(list(shared.parameters())) == 2


def test_setattr_rules_and_getattr_delattr():
    m = nn.Module()
    m.w = nn.Parameter(md.zeros(2))
    m.sub = nn.Identity()
    m.plain = 3
    assert "w" in m._parameters and "sub" in m._modules and "plain" not in m._parameters
    assert m.w is m._parameters["w"] and m.sub is m._modules["sub"]
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = md.zeros(2)                    # a plain Tensor cannot replace a Parameter
    m.w = None                               # but None can (like bias=False)
    assert m.w is None and list(m.parameters()) == []
    m.w = nn.Parameter(md.ones(2))
    del m.w
    assert "w" not in m._parameters
    with pytest.raises(AttributeError, match="no attribute 'w'"):
        m.w
    del m.sub
    assert "sub" not in m._modules
    m.register_buffer("buf", md.zeros(2))
    m.buf = md.ones(2)
    assert_close(m._buffers["buf"], [1.0, 1.0])
    with pytest.raises(TypeError, match="buffer 'buf'"):
        m.buf = 3
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("plain", md.zeros(1))
    with pytest.raises(KeyError, match=r"'\.'"):
        m.register_parameter("a.b", None)
    with pytest.raises(TypeError, match="nn.Parameter or None"):
        m.register_parameter("q", md.zeros(1))
    with pytest.raises(TypeError, match="not a Module"):
        m.add_module("x", 3)


def test_assignment_before_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)
            super().__init__()

    with pytest.raises(AttributeError, match=r"call super\(\)\.__init__\(\) first"):
        Bad()


def test_reassigning_a_name_moves_it_between_kinds():
    m = nn.Module()
    m.x = nn.Identity()
    m.x = nn.Parameter(md.zeros(1))
    assert "x" not in m._modules and "x" in m._parameters
    with pytest.raises(TypeError, match="parameter 'x'"):   # as in PyTorch
        m.x = nn.Identity()
    del m.x
    m.x = nn.Identity()
    assert "x" in m._modules and "x" not in m._parameters


# ---- modes -------------------------------------------------------------------------
def test_train_eval_reach_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.layer1.train()
    assert net.layer1[1].fc.training and not net.stem.training
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(TypeError, match="bool"):
        net.train("no")


def test_freezing_with_requires_grad_(device):
    net = Net().to(device)
    net.requires_grad_(False)
    net.heads.requires_grad_(True)
    x = md.randn(5, 4, device=device)
    net(x).sum().backward()
    assert net.stem.weight.grad is None and net.layer1[0].fc.weight.grad is None
    assert net.heads["a"].weight.grad is not None
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert len(trainable) == 4


def test_zero_grad_to_none_and_in_place(device):
    net = Net().to(device)
    net(md.randn(2, 4, device=device)).sum().backward()
    g = net.stem.weight.grad
    net.zero_grad(set_to_none=False)
    assert net.stem.weight.grad is g and float(abs(g.numpy()).max()) == 0.0
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_apply_visits_children_first():
    net = Net()
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen[-1] == "Net" and seen[0] == "Linear" and seen.count("Block") == 2
    net.apply(lambda m: nn.init.zeros_(m.bias) if isinstance(m, nn.Linear) else None)
    assert all(float(abs(m.bias.numpy()).max()) == 0 for m in net.modules()
               if isinstance(m, nn.Linear))


# ---- dtype / device ----------------------------------------------------------------
def test_to_dtype_keeps_parameter_objects_and_int_buffers():
    m = nn.Linear(3, 2)
    m.register_buffer("n", md.tensor(0, dtype="int64"))
    w = m.weight
    m(md.randn(4, 3)).sum().backward()
    assert m.double() is m
    assert m.weight is w and w.dtype == np.float64 and w.grad.dtype == np.float64
    assert m.n.dtype == np.int64
    m.float()
    assert w.dtype == np.float32
    m.to(dtype="float64")
    assert w.dtype == np.float64
    m.to(md.zeros(1, dtype="float32"))
    assert w.dtype == np.float32
    m.to("cpu")
    assert str(w.device) == "cpu"
    with pytest.raises(TypeError, match="floating-point"):
        m.to("int64")


def test_to_device_moves_in_place(device):
    m = nn.Linear(3, 2)
    w = m.weight
    m.to(device)
    assert m.weight is w and m.weight.device == device and m.bias.device == device
    y = m(md.randn(2, 3, device=device))
    assert y.device == device


# ---- state dict ----------------------------------------------------------------------
def test_state_dict_is_detached_and_round_trip_is_bit_exact(device):
    a, b = Net().to(device), Net().to(device)
    sd = a.state_dict()
    assert isinstance(sd, OrderedDict)
    assert all(type(v) is md.Tensor and not v.requires_grad for v in sd.values())
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert va.dtype == vb.dtype
        assert np.array_equal(va.numpy(), vb.numpy()), k
    x = md.randn(3, 4, device=device)
    assert np.array_equal(a(x).numpy(), b(x).numpy())


def test_load_copies_into_existing_arrays_keeping_dtype():
    m = nn.Linear(3, 2)
    w_array = m.weight.data
    new = {"weight": np.arange(6, dtype=np.float64).reshape(2, 3), "bias": np.ones(2)}
    m.load_state_dict(new)
    assert m.weight.data is w_array and m.weight.dtype == np.float32
    assert_close(m.weight, np.arange(6).reshape(2, 3))
    new["weight"][0, 0] = 99.0      # the module holds its own copy
    assert m.weight.numpy()[0, 0] == 0.0


def test_load_accepts_mixed_tensors_and_arrays():
    m = Net()
    sd = {k: (v.numpy() if i % 2 else v) for i, (k, v) in enumerate(Net().state_dict().items())}
    m.load_state_dict(sd)
    for k, v in m.state_dict().items():
        assert np.array_equal(v.numpy(), np.asarray(sd[k]))


def test_strict_load_lists_every_bad_key_and_changes_nothing():
    m = Net()
    before = _snapshot(m)
    sd = {k: v.numpy() + 1 for k, v in Net().state_dict().items()}
    del sd["stem.bias"], sd["layer1.1.count"]
    sd["extra.weight"] = np.zeros(2)
    sd["layer1.0.fc.weight"] = np.zeros((4, 3))
    sd["heads.b.bias"] = np.zeros((2,))
    with pytest.raises(nn.StateDictError) as info:
        m.load_state_dict(sd)
    msg = str(info.value)
    for key in ("stem.bias", "layer1.1.count", "extra.weight", "layer1.0.fc.weight",
                "heads.b.bias"):
        assert key in msg
    assert "Missing key(s)" in msg and "Unexpected key(s)" in msg and "size mismatch" in msg
    assert "(4, 3)" in msg and "(3, 3)" in msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    after = _snapshot(m)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_non_strict_load_returns_keys_and_loads_the_rest():
    m = Net()
    src = Net()
    sd = OrderedDict(src.state_dict())
    del sd["stem.weight"]
    sd["bogus"] = md.zeros(1)
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["stem.weight"]
    assert result.unexpected_keys == ["bogus"]
    assert np.array_equal(m.stem.bias.numpy(), src.stem.bias.numpy())
    assert not np.array_equal(m.stem.weight.numpy(), src.stem.weight.numpy())


def test_non_strict_load_still_refuses_wrong_shapes():
    m = Net()
    before = _snapshot(m)
    sd = {k: v.numpy() * 0 for k, v in Net().state_dict().items()}
    sd["heads.a.weight"] = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"size mismatch for heads\.a\.weight"):
        m.load_state_dict(sd, strict=False)
    after = _snapshot(m)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_load_accepts_plain_numbers_for_0d_buffers():
    m = nn.Module()
    m.register_buffer("num_batches_tracked", md.tensor(0, dtype="int64"))
    m.load_state_dict({"num_batches_tracked": 7})
    assert m.num_batches_tracked.item() == 7 and m.num_batches_tracked.dtype == np.int64


def test_load_rejects_non_mappings_and_non_arrays():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="dict"):
        m.load_state_dict([1, 2])
    with pytest.raises(ValueError, match='"weight"'):
        m.load_state_dict({"weight": "abc", "bias": np.zeros(2)})


def test_load_accepts_torch_state_dict():
    torch = pytest.importorskip("torch")
    tm = torch.nn.Linear(3, 2)
    m = nn.Linear(3, 2)
    m.load_state_dict(tm.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    assert_close(m(md.tensor(x)), tm(torch.from_numpy(x)), rtol=1e-6, atol=1e-6)


# ---- containers --------------------------------------------------------------------
def test_sequential_indexing_slicing_and_forward():
    layers = [nn.Linear(4, 4) for _ in range(4)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 4 and list(seq) == layers
    assert seq[0] is layers[0] and seq[-1] is layers[3] and seq[-4] is layers[0]
    sub = seq[1:3]
    assert isinstance(sub, nn.Sequential) and list(sub) == layers[1:3]
    assert list(sub.state_dict())[0] == "1.weight"   # slicing keeps PyTorch's keys
    assert list(seq[::-1]) == layers[::-1]
    with pytest.raises(IndexError, match="out of range"):
        seq[4]
    with pytest.raises(TypeError, match="integers or slices"):
        seq["0"]
    x = md.randn(2, 4)
    expected = layers[3](layers[2](layers[1](layers[0](x))))
    assert np.array_equal(seq(x).numpy(), expected.numpy())
    extra = nn.Identity()
    seq.append(extra)
    assert seq[4] is extra and list(seq._modules)[-1] == "4"
    seq[0] = nn.Identity()
    assert isinstance(seq[0], nn.Identity)
    del seq[0]
    assert len(seq) == 4 and list(seq._modules) == ["0", "1", "2", "3"]
    seq.insert(0, nn.Flatten())
    assert isinstance(seq[0], nn.Flatten) and len(seq) == 5
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.Identity(), lambda x: x)


def test_sequential_from_ordered_dict():
    seq = nn.Sequential(OrderedDict([("conv", nn.Linear(2, 2)), ("act", nn.Identity())]))
    assert list(seq.state_dict()) == ["conv.weight", "conv.bias"]
    assert seq.conv is seq[0]


def test_module_list():
    ml = nn.ModuleList([nn.Linear(2, 2), nn.Identity()])
    ml.append(nn.Flatten())
    ml.extend([nn.Identity()])
    ml.insert(1, nn.Linear(2, 3))
    assert len(ml) == 5 and [type(m).__name__ for m in ml] == [
        "Linear", "Linear", "Identity", "Flatten", "Identity"]
    assert list(ml._modules) == ["0", "1", "2", "3", "4"]
    assert ml[1].out_features == 3 and isinstance(ml[-2], nn.Flatten)
    assert isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    del ml[0]
    assert ml[0].out_features == 3 and list(ml._modules) == ["0", "1", "2", "3"]
    ml[0] = nn.Identity()
    assert isinstance(ml[0], nn.Identity)
    assert len(list(ml.parameters())) == 0
    holder = nn.Module()
    holder.blocks = nn.ModuleList([nn.Linear(1, 1), nn.Linear(1, 1)])
    assert list(holder.state_dict()) == ["blocks.0.weight", "blocks.0.bias",
                                         "blocks.1.weight", "blocks.1.bias"]
    with pytest.raises(NotImplementedError, match="iterate"):
        ml(md.zeros(1))


def test_module_dict():
    md_ = nn.ModuleDict({"a": nn.Linear(2, 2)})
    md_["b"] = nn.Identity()
    md_.update([("c", nn.Flatten())])
    assert list(md_) == ["a", "b", "c"] and len(md_) == 3 and "b" in md_
    assert list(md_.keys()) == ["a", "b", "c"]
    assert isinstance(dict(md_.items())["c"], nn.Flatten)
    assert isinstance(md_.pop("b"), nn.Identity) and "b" not in md_
    del md_["c"]
    assert list(md_.values())[0] is md_["a"]
    with pytest.raises(KeyError, match="'zz'"):
        md_["zz"]
    md_.clear()
    assert len(md_) == 0


def test_identity_and_flatten():
    x = md.randn(2, 3, 4, 5)
    assert nn.Identity(54, unused="x")(x) is x
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(2)(x).shape == (2, 3, 20)


# ---- hooks ---------------------------------------------------------------------------
def test_forward_hooks_and_removal():
    net = Net()
    calls = []
    h = net.stem.register_forward_hook(
        lambda m, inputs, out: calls.append((m, inputs[0].shape, out.shape)))
    x = md.randn(5, 4)
    net(x)
    assert calls == [(net.stem, (5, 4), (5, 3))]
    h.remove()
    net(x)
    assert len(calls) == 1
    # A hook that returns a value replaces the output.
    h = net.heads["a"].register_forward_hook(lambda m, i, o: o * 0)
    assert float(abs(net(x).numpy()).max()) == 0.0
    h.remove()
    assert float(abs(net(x).numpy()).max()) > 0.0


def test_forward_pre_hook_can_replace_inputs():
    lin = nn.Linear(2, 2)
    seen = []
    h = lin.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0].shape))
    lin(md.zeros(3, 2))
    assert seen == [(3, 2)]
    h.remove()
    h = lin.register_forward_pre_hook(lambda m, inputs: md.zeros(1, 2))
    assert lin(md.zeros(7, 2)).shape == (1, 2)
    with h:
        pass
    assert lin(md.zeros(7, 2)).shape == (7, 2)


def test_forward_not_implemented_names_the_class():
    class Empty(nn.Module):
        pass
    with pytest.raises(NotImplementedError, match="Empty"):
        Empty()(md.zeros(1))


# ---- printing ------------------------------------------------------------------------
def test_repr_tree_like_pytorch():
    seq = nn.Sequential(nn.Linear(4, 8), nn.Sequential(nn.Identity(), nn.Flatten()),
                        nn.Linear(8, 2, bias=False))
    assert repr(seq) == (
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=8, bias=True)\n"
        "  (1): Sequential(\n"
        "    (0): Identity()\n"
        "    (1): Flatten(start_dim=1, end_dim=-1)\n"
        "  )\n"
        "  (2): Linear(in_features=8, out_features=2, bias=False)\n"
        ")")


def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(4, 8), nn.Flatten(), nn.Identity(),
                         nn.ModuleList([nn.Linear(1, 2)]))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Flatten(),
                                 torch.nn.Identity(),
                                 torch.nn.ModuleList([torch.nn.Linear(1, 2)]))
    assert repr(ours) == repr(theirs)


def test_deepcopy_and_pickle_keep_structure_and_sharing():
    import copy
    import pickle
    net = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    net[1].weight = net[0].weight
    clone = copy.deepcopy(net)
    assert clone[0].weight is not net[0].weight and clone[1].weight is clone[0].weight
    assert isinstance(clone[0].weight, nn.Parameter) and clone[0].weight.requires_grad
    assert clone[0].weight.data is not net[0].weight.data
    x = md.randn(2, 3)
    assert np.array_equal(clone(x).numpy(), net(x).numpy())
    restored = pickle.loads(pickle.dumps(net))
    assert list(restored.state_dict()) == list(net.state_dict())
    assert np.array_equal(restored(x).numpy(), net(x).numpy())

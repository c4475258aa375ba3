"""The model zoo: shapes, gradients, train/eval behaviour, torchvision parameter counts,
and two networks that learn a small batch by heart."""
import gc

import numpy as np
import pytest

import minidl as md
from minidl import models, nn, optim
from minidl.nn import functional as F
from minidl.testing import assert_close


@pytest.fixture
def skip_init(monkeypatch):
    """Layers keep their uninitialised (np.empty) weights: counting parameters needs
    only the shapes, and drawing 138M random numbers for a VGG takes seconds."""
    for name in ["uniform_", "normal_", "trunc_normal_", "kaiming_uniform_",
                 "kaiming_normal_", "xavier_uniform_", "xavier_normal_"]:
        monkeypatch.setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)


def count(model):
    return sum(p.numel() for p in model.parameters())


def make_input(shape, device, seed=0, dtype=np.float32):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return md.tensor(x, device=device, requires_grad=True)


def forward_backward(model, x):
    """Run forward and backward of a random linear function of the output; check grads."""
    out = model(x)
    outs = list(out) if isinstance(out, tuple) else [out]
    rng = np.random.default_rng(1)
    loss = None
    for o in outs:
        w = md.tensor(rng.standard_normal(o.shape).astype(o.dtype), device=x.device)
        term = (o * w).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert np.isfinite(x.grad.numpy()).all()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.shape == p.shape and p.grad.dtype == p.dtype, name
        assert np.isfinite(p.grad.numpy()).all(), name
    return out


# ---- forward and backward of every model on a small float32 input -------------------
SMALL_MODELS = {
    "lenet5": (lambda: models.lenet5(), (2, 1, 28, 28), (2, 10)),
    "lenet5_relu": (lambda: models.lenet5(activation="relu"), (2, 1, 32, 32), (2, 10)),
    "alexnet": (lambda: models.alexnet(num_classes=5, hidden_features=32), (2, 3, 63, 63),
                (2, 5)),
    "vgg11_bn": (lambda: models.vgg11_bn(num_classes=7, width=8, hidden_features=32,
                                         pool_size=2), (2, 3, 32, 32), (2, 7)),
    "vgg16": (lambda: models.vgg16(num_classes=7, width=8, hidden_features=16,
                                   pool_size=1, in_channels=1), (2, 1, 32, 32), (2, 7)),
    "resnet18": (lambda: models.resnet18(num_classes=5, width=8), (2, 3, 32, 32), (2, 5)),
    "resnet50": (lambda: models.resnet50(num_classes=5, width=4, in_channels=2),
                 (2, 2, 32, 32), (2, 5)),
    "cifar_resnet20": (lambda: models.cifar_resnet20(), (2, 3, 16, 16), (2, 10)),
    "cifar_resnet20_B": (lambda: models.cifar_resnet20(shortcut="B", width=8),
                         (2, 3, 16, 16), (2, 10)),
    "preact_resnet18": (lambda: models.preact_resnet18(num_classes=4, width=8),
                        (2, 3, 32, 32), (2, 4)),
    "preact_resnet18_cifar": (lambda: models.preact_resnet18(num_classes=4, width=4,
                                                             cifar_stem=True),
                              (2, 3, 16, 16), (2, 4)),
    "preact_resnet20": (lambda: models.preact_resnet20(width=4), (2, 3, 16, 16), (2, 10)),
    "preact_resnet110": (lambda: models.preact_resnet110(width=2), (2, 3, 8, 8), (2, 10)),
    "preact_cifar_bottleneck": (lambda: models.PreActCifarResNet(11, bottleneck=True,
                                                                 width=4),
                                (2, 3, 16, 16), (2, 10)),
    "densenet121": (lambda: models.densenet121(num_classes=5, growth_rate=4,
                                               num_init_features=8), (2, 3, 32, 32), (2, 5)),
    "densenet_bc_cifar": (lambda: models.densenet_bc_cifar(depth=16, growth_rate=4),
                          (2, 3, 16, 16), (2, 10)),
    "se_resnet18": (lambda: models.se_resnet18(num_classes=5, width=16), (2, 3, 32, 32),
                    (2, 5)),
    "se_resnet50": (lambda: models.se_resnet50(num_classes=5, width=8), (2, 3, 32, 32),
                    (2, 5)),
    "squeezenet1_0": (lambda: models.squeezenet1_0(num_classes=5), (2, 3, 35, 35), (2, 5)),
    "squeezenet1_1": (lambda: models.squeezenet1_1(num_classes=5), (2, 3, 32, 32), (2, 5)),
    "unet": (lambda: models.unet(in_channels=3, num_classes=2, depth=2, base_width=4),
             (2, 3, 18, 22), (2, 2, 18, 22)),
    "unet_odd": (lambda: models.unet(in_channels=1, num_classes=3, depth=3, base_width=2,
                                     batch_norm=False), (1, 1, 13, 9), (1, 3, 13, 9)),
    "conv_autoencoder": (lambda: models.conv_autoencoder(base_width=4, latent_channels=2),
                         (2, 1, 28, 28), (2, 1, 28, 28)),
}


@pytest.mark.parametrize("name", list(SMALL_MODELS))
def test_forward_backward_small(name, device):
    build, in_shape, out_shape = SMALL_MODELS[name]
    model = build().to(device)
    model.train()
    x = make_input(in_shape, device)
    out = forward_backward(model, x)
    assert out.shape == out_shape and out.dtype == np.float32
    model.eval()
    with md.no_grad():
        y = model(x.detach())
    assert y.shape == out_shape and np.isfinite(y.numpy()).all()


def test_googlenet_aux_outputs_in_training_only(device):
    model = models.googlenet(num_classes=6, init_weights=False).to(device)
    x = make_input((2, 3, 32, 32), device)
    out = forward_backward(model, x)        # aux1 and aux2 receive gradients too
    assert isinstance(out, models.GoogLeNetOutputs)
    assert [o.shape for o in out] == [(2, 6)] * 3
    model.eval()
    with md.no_grad():
        y = model(x.detach())
    assert isinstance(y, md.Tensor) and y.shape == (2, 6)
    # transform_input (on with torchvision's pretrained weights): a per-channel affine map
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x_np = x.detach().numpy()
    mapped = (x_np * (std / 0.5)[:, None, None] + ((mean - 0.5) / 0.5)[:, None, None])
    model.transform_input = True
    with md.no_grad():
        y_t = model(x.detach())
        model.transform_input = False
        y_ref = model(md.tensor(mapped.astype(np.float32), device=device))
    assert_close(y_t, y_ref, rtol=1e-5, atol=1e-6)
    no_aux = models.googlenet(num_classes=6, aux_logits=False).to(device)
    assert no_aux.aux1 is None and not any(k.startswith("aux") for k in no_aux.state_dict())
    with md.no_grad():
        assert isinstance(no_aux(x.detach()), md.Tensor)    # training mode, still one output


def test_googlenet_paper_branch_is_5x5(skip_init):
    paper = models.googlenet(branch3_kernel_size=5, aux_logits=False)
    assert paper.inception3a.branch3[1].conv.weight.shape == (32, 16, 5, 5)
    assert count(paper) == 7_005_832       # 6,624,904 with torchvision's 3x3 in this branch
    inception = models.Inception(192, 64, 96, 128, 16, 32, 32)
    assert inception.branch3[1].conv.kernel_size in (5, (5, 5))
    with pytest.raises(ValueError, match="branch3_kernel_size"):
        models.Inception(8, 1, 1, 1, 1, 1, 1, branch3_kernel_size=7)


def test_inception_module_concatenates_branches(device):
    block = models.Inception(16, 4, 3, 5, 2, 6, 7).to(device)
    x = make_input((2, 16, 9, 9), device)
    y = block(x)
    assert y.shape == (2, 4 + 5 + 6 + 7, 9, 9)
    assert_close(y[:, :4], block.branch1(x), rtol=1e-6)
    assert_close(y[:, 4 + 5 + 6:], block.branch4(x), rtol=1e-6)


# ---- train vs eval -------------------------------------------------------------------
def test_dropout_differs_in_training_and_is_off_in_eval(device):
    model = models.vgg11(num_classes=4, width=8, hidden_features=64, pool_size=1).to(device)
    x = make_input((2, 3, 32, 32), device).detach()
    with md.no_grad():
        a, b = model(x), model(x)
        assert not np.allclose(a.numpy(), b.numpy())       # a new dropout mask each call
        model.eval()
        c, d = model(x), model(x)
    assert_close(c, d, rtol=0)


def test_batchnorm_uses_batch_stats_in_training_and_running_stats_in_eval(device):
    model = models.resnet18(num_classes=3, width=4).to(device)
    x = make_input((4, 3, 32, 32), device).detach()
    before = model.bn1.running_mean.numpy().copy()
    with md.no_grad():
        y_train = model(x)
        after = model.bn1.running_mean.numpy().copy()
        assert not np.allclose(before, after)              # training updates the stats
        assert int(model.bn1.num_batches_tracked.item()) == 1
        model.eval()
        y_eval, y_eval2 = model(x), model(x)
    assert_close(model.bn1.running_mean, after, rtol=0)    # eval leaves them alone
    assert_close(y_eval, y_eval2, rtol=0)
    assert not np.allclose(y_train.numpy(), y_eval.numpy(), rtol=1e-3, atol=1e-4)


def test_zero_init_residual_makes_each_block_start_as_identity(device):
    for model, last in [(models.resnet18(width=4, zero_init_residual=True), "bn2"),
                        (models.resnet50(width=4, zero_init_residual=True), "bn3"),
                        (models.cifar_resnet20(zero_init_residual=True), "bn2")]:
        blocks = [m for m in model.modules() if isinstance(m, (models.BasicBlock,
                                                               models.Bottleneck))]
        assert blocks and all(not getattr(b, last).weight.numpy().any() for b in blocks)
    block = models.resnet18(width=4, zero_init_residual=True).layer1[0].to(device)
    block.eval()
    x = make_input((2, 4, 8, 8), device).detach()
    with md.no_grad():
        assert_close(block(x), x.relu(), rtol=0)
    plain = models.resnet18(width=4)
    assert plain.layer1[0].bn2.weight.numpy().all()


def test_se_block_rescales_channels_by_gates_in_0_1(device):
    se = models.SEBlock(32, reduction=8).to(device)
    assert se.fc1.weight.shape == (4, 32) and se.fc2.weight.shape == (32, 4)
    x = make_input((3, 32, 5, 6), device)
    y = se(x)
    s = se.gates(x).numpy()
    assert s.shape == (3, 32) and (s > 0).all() and (s < 1).all()
    assert_close(y, x.numpy() * s[:, :, None, None], rtol=1e-6)
    gx = md.tensor(np.random.default_rng(2).standard_normal(y.shape).astype(np.float32),
                   device=device)
    (y * gx).sum().backward()
    assert se.fc1.weight.grad is not None and x.grad.shape == x.shape


def test_dense_block_output_concatenates_all_features(device):
    block = models.DenseBlock(num_layers=3, num_input_features=5, bn_size=2,
                              growth_rate=4).to(device)
    x = make_input((2, 5, 6, 6), device)
    y = block(x)
    assert y.shape == (2, 5 + 3 * 4, 6, 6)
    assert_close(y[:, :5], x, rtol=0)                      # the input passes through
    assert block.denselayer3.conv1.weight.shape == (8, 5 + 2 * 4, 1, 1)


def test_autoencoder_reconstruction_error_per_sample(device):
    model = models.conv_autoencoder(base_width=4, latent_channels=2).to(device)
    x = md.tensor(np.random.default_rng(3).random((3, 1, 12, 8)).astype(np.float32),
                  device=device)
    with md.no_grad():
        err = model.reconstruction_error(x)
        expected = ((model(x).numpy() - x.numpy()) ** 2).mean(axis=(1, 2, 3))
    assert err.shape == (3,)
    assert_close(err, expected, rtol=1e-6)
    assert model.encode(x).shape == (3, 2, 3, 2)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(md.zeros(1, 1, 10, 8, device=device))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="activation"):
        models.lenet5(activation="gelu")
    with pytest.raises(ValueError, match="depth must be 6n\\+2"):
        models.CifarResNet(depth=21)
    with pytest.raises(ValueError, match="shortcut"):
        models.cifar_resnet20(shortcut="C")
    with pytest.raises(ValueError, match="width"):
        models.vgg11(width=12)
    with pytest.raises(ValueError, match="depth must be 6n\\+4"):
        models.densenet_bc_cifar(depth=101)
    with pytest.raises(ValueError, match="version"):
        models.SqueezeNet(version="2_0")
    with pytest.raises(ValueError, match="9n\\+2"):
        models.PreActCifarResNet(depth=30, bottleneck=True)
    with pytest.raises(ValueError, match="too small for depth 3"):
        models.unet(depth=3, base_width=2)(md.zeros(1, 1, 6, 16))
    with pytest.raises(ValueError, match="layers must be 4"):
        models.ResNet(models.BasicBlock, [2, 2, 2])


# ---- parameter counts and state-dict names: torchvision's ----------------------------
TORCHVISION_COUNTS = {
    "resnet18": (models.resnet18, 11_689_512),
    "resnet34": (models.resnet34, 21_797_672),
    "resnet50": (models.resnet50, 25_557_032),
    "alexnet": (models.alexnet, 61_100_840),
    "googlenet": (lambda: models.googlenet(aux_logits=False), 6_624_904),
    "googlenet_aux": (models.googlenet, 13_004_888),
    "densenet121": (models.densenet121, 7_978_856),
    "squeezenet1_0": (models.squeezenet1_0, 1_248_424),
    "squeezenet1_1": (models.squeezenet1_1, 1_235_496),
}


@pytest.mark.parametrize("name", list(TORCHVISION_COUNTS))
def test_parameter_count_equals_torchvision(name, skip_init):
    build, expected = TORCHVISION_COUNTS[name]
    assert count(build()) == expected


@pytest.mark.parametrize("name, expected", [("vgg11", 132_863_336), ("vgg16", 138_357_544),
                                            ("vgg16_bn", 138_365_992)])
def test_vgg_parameter_count_equals_torchvision(name, expected, skip_init):
    model = getattr(models, name)()      # 0.5 GB of float32 each: dropped straight away
    assert count(model) == expected
    del model
    gc.collect()


def test_cifar_parameter_counts(skip_init):
    # He et al. 2015 option-A CIFAR ResNets: 0.27M and 1.7M (the exact counts of the
    # common reference implementation); DenseNet-BC (k=12, depth 100): 0.8M.
    assert count(models.cifar_resnet20()) == 269_722
    assert count(models.cifar_resnet56()) == 853_018
    assert count(models.cifar_resnet110()) == 1_727_962
    assert count(models.densenet_bc_cifar()) == 769_162
    assert count(models.lenet5()) == 61_706


def test_state_dict_keys_follow_torchvision(skip_init):
    keys = set(models.resnet18().state_dict())
    assert {"conv1.weight", "bn1.running_var", "bn1.num_batches_tracked",
            "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.running_mean", "layer4.1.bn2.bias", "fc.weight",
            "fc.bias"} <= keys
    assert len(keys) == 122                                 # torchvision's resnet18: 122
    keys = set(models.googlenet().state_dict())
    assert {"conv1.conv.weight", "conv1.bn.running_mean", "inception3a.branch1.conv.weight",
            "inception3a.branch2.1.bn.weight", "inception3a.branch4.1.conv.weight",
            "inception5b.branch3.0.bn.num_batches_tracked", "aux1.conv.conv.weight",
            "aux1.fc1.weight", "aux2.fc2.bias", "fc.weight"} <= keys
    keys = set(models.densenet121().state_dict())
    assert {"features.conv0.weight", "features.norm0.running_var",
            "features.denseblock1.denselayer1.norm1.weight",
            "features.denseblock4.denselayer16.conv2.weight",
            "features.transition3.conv.weight", "features.norm5.bias",
            "classifier.weight"} <= keys
    keys = set(models.squeezenet1_1().state_dict())
    assert {"features.0.weight", "features.3.squeeze.weight", "features.3.expand1x1.bias",
            "features.12.expand3x3.weight", "classifier.1.weight"} <= keys
    keys = set(models.alexnet(num_classes=3).state_dict())
    assert keys == {f"{part}.{i}.{w}" for part, idx in [("features", (0, 3, 6, 8, 10)),
                                                         ("classifier", (1, 4, 6))]
                    for i in idx for w in ("weight", "bias")}


def test_width_arguments_scale_the_networks(skip_init):
    assert count(models.resnet18(width=64)) == 11_689_512
    small = models.resnet18(width=16)
    assert small.layer4[0].conv1.weight.shape == (128, 64, 3, 3)
    assert small.fc.weight.shape == (1000, 128)
    vgg = models.vgg11_bn(width=16, hidden_features=32, pool_size=1)
    assert vgg.features[0].weight.shape == (16, 3, 3, 3)
    assert vgg.classifier[0].weight.shape == (32, 128)


# ---- proof that the whole stack learns ----------------------------------------------
def _overfit(model, x, y, lr, steps, momentum=0.9):
    """SGD with momentum on one fixed batch; returns the first step whose forward pass
    classifies every sample right (None if none does within ``steps``)."""
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    target = md.tensor(y, device=x.device)
    model.train()
    for step in range(1, steps + 1):
        opt.zero_grad()
        logits = model(x)
        if (logits.numpy().argmax(1) == y).all():   # training accuracy of this batch
            return step
        F.cross_entropy(logits, target).backward()
        opt.step()
    return None


def test_lenet5_overfits_a_small_batch(device):
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((16, 1, 28, 28)).astype(np.float32), device=device)
    y = np.arange(16) % 10
    step = _overfit(models.lenet5().to(device), x, y, lr=0.1, steps=100)
    assert step is not None, "LeNet-5 did not reach 100% training accuracy in 100 steps"


def test_cifar_resnet20_overfits_a_small_batch(device):
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((8, 3, 16, 16)).astype(np.float32), device=device)
    y = np.arange(8) % 10
    step = _overfit(models.cifar_resnet20().to(device), x, y, lr=0.05, steps=60)
    assert step is not None, "CIFAR ResNet-20 did not reach 100% training accuracy in 60 steps"

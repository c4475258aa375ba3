"""load_torch_state_dict: PyTorch weights into minidl models, checked output for output.

The torch networks are written here with torch.nn (torchvision is not needed), with
torchvision's layer names; minidl's models must then load their state dicts key for key
and compute the same outputs and gradients in float64.
"""
from collections import OrderedDict

import numpy as np
import pytest

import minidl as md
from minidl import models, nn
from minidl.testing import assert_close
from minidl.utils.torch_import import load_torch_state_dict, torch_state_dict_to_numpy


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch


def close(actual, expected, msg=""):
    """Equal to 1e-6 relative to the size of the expected values.

    The floor of 1e-12 is for values that are exactly 0 mathematically, such as the
    gradient of a conv bias followed by a training-mode BatchNorm: both libraries
    then return float64 rounding noise of about 1e-16.
    """
    e = expected.detach().cpu().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    assert_close(actual, e, rtol=1e-6, atol=1e-6 * float(np.abs(e).max()) + 1e-12, msg=msg)


def randomize_batchnorm(torch, model):
    """Non-trivial BN affine and running statistics, so that a wrong mapping shows."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.num_batches_tracked.fill_(7)


def check_parity(torch, tnet, mnet, shape, train_modes=(True, False)):
    """Load tnet's state dict into mnet; compare outputs, input and weight gradients."""
    tnet = tnet.double()
    randomize_batchnorm(torch, tnet)
    mnet = mnet.double()
    result = load_torch_state_dict(mnet, tnet.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert list(mnet.state_dict()) == list(tnet.state_dict())
    x_np = np.random.default_rng(0).standard_normal(shape)
    for training in train_modes:
        tnet.train(training)
        mnet.train(training)
        tx = torch.tensor(x_np, requires_grad=True)
        mx = md.tensor(x_np, requires_grad=True)
        ty, my = tnet(tx), mnet(mx)
        mode = "train" if training else "eval"
        close(my, ty, f"{mode} output: ")
        gy = np.random.default_rng(1).standard_normal(ty.shape)
        ty.backward(torch.tensor(gy))
        my.backward(md.tensor(gy))
        close(mx.grad, tx.grad, f"{mode} input gradient: ")
        tparams = dict(tnet.named_parameters())
        for name, p in mnet.named_parameters():
            close(p.grad, tparams[name].grad, f"{mode} gradient of {name}: ")
        tnet.zero_grad()
        mnet.zero_grad()
    # Training mode updated the running statistics the same way in both.
    tstate = tnet.state_dict()
    for key, value in mnet.state_dict().items():
        close(value, tstate[key], f"{key} after the passes: ")


# ---- torch networks with torchvision's layout and names ------------------------------
def torch_resnet18(torch, width, num_classes):
    tnn = torch.nn

    class BasicBlock(tnn.Module):
        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU(inplace=True)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class ResNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = width
            self.conv1 = tnn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(width)
            self.relu = tnn.ReLU(inplace=True)
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            self.layer1 = self._make_layer(width, 1)
            self.layer2 = self._make_layer(2 * width, 2)
            self.layer3 = self._make_layer(4 * width, 2)
            self.layer4 = self._make_layer(8 * width, 2)
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(8 * width, num_classes)

        def _make_layer(self, planes, stride):
            downsample = None
            if stride != 1 or self.inplanes != planes:
                downsample = tnn.Sequential(
                    tnn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                    tnn.BatchNorm2d(planes))
            layers = [BasicBlock(self.inplanes, planes, stride, downsample),
                      BasicBlock(planes, planes)]
            self.inplanes = planes
            return tnn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet()


def torch_vgg_bn(torch, cfg, hidden, pool_size, num_classes, dropout):
    tnn = torch.nn
    layers, c = [], 3
    for v in cfg:
        if v == "M":
            layers.append(tnn.MaxPool2d(2, 2))
        else:
            layers += [tnn.Conv2d(c, v, 3, padding=1), tnn.BatchNorm2d(v), tnn.ReLU(True)]
            c = v

    class VGG(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(*layers)
            self.avgpool = tnn.AdaptiveAvgPool2d((pool_size, pool_size))
            self.classifier = tnn.Sequential(
                tnn.Linear(c * pool_size * pool_size, hidden), tnn.ReLU(True),
                tnn.Dropout(dropout), tnn.Linear(hidden, hidden), tnn.ReLU(True),
                tnn.Dropout(dropout), tnn.Linear(hidden, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return VGG()


def torch_dense_block(torch, num_layers, num_input_features, bn_size, growth_rate):
    tnn = torch.nn

    class DenseLayer(tnn.Module):
        def __init__(self, c_in):
            super().__init__()
            self.norm1 = tnn.BatchNorm2d(c_in)
            self.relu1 = tnn.ReLU(inplace=True)
            self.conv1 = tnn.Conv2d(c_in, bn_size * growth_rate, 1, bias=False)
            self.norm2 = tnn.BatchNorm2d(bn_size * growth_rate)
            self.relu2 = tnn.ReLU(inplace=True)
            self.conv2 = tnn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1,
                                    bias=False)

        def forward(self, features):
            x = torch.cat(features, 1)
            x = self.conv1(self.relu1(self.norm1(x)))
            return self.conv2(self.relu2(self.norm2(x)))

    class DenseBlock(tnn.ModuleDict):
        def __init__(self):
            super().__init__()
            for i in range(num_layers):
                self.add_module(f"denselayer{i + 1}",
                                DenseLayer(num_input_features + i * growth_rate))

        def forward(self, x):
            features = [x]
            for layer in self.values():
                features.append(layer(features))
            return torch.cat(features, 1)

    return DenseBlock()


def torch_inception(torch, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj,
                    k):
    tnn = torch.nn

    class BasicConv2d(tnn.Module):
        def __init__(self, c_in, c_out, **kwargs):
            super().__init__()
            self.conv = tnn.Conv2d(c_in, c_out, bias=False, **kwargs)
            self.bn = tnn.BatchNorm2d(c_out, eps=0.001)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    class Inception(tnn.Module):
        def __init__(self):
            super().__init__()
            self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
            self.branch2 = tnn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                          BasicConv2d(ch3x3red, ch3x3, kernel_size=3,
                                                      padding=1))
            self.branch3 = tnn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                          BasicConv2d(ch5x5red, ch5x5, kernel_size=k,
                                                      padding=k // 2))
            self.branch4 = tnn.Sequential(tnn.MaxPool2d(3, stride=1, padding=1,
                                                        ceil_mode=True),
                                          BasicConv2d(in_channels, pool_proj, kernel_size=1))

        def forward(self, x):
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x),
                              self.branch4(x)], 1)

    return Inception()


# ---- parity --------------------------------------------------------------------------
def test_resnet18_matches_torch(torch):
    tnet = torch_resnet18(torch, width=4, num_classes=5)
    mnet = models.resnet18(num_classes=5, width=4)
    check_parity(torch, tnet, mnet, (2, 3, 32, 32))


def test_vgg11_bn_matches_torch(torch):
    cfg = [v if v == "M" else v // 8 for v in models.vgg.CONFIGS["vgg11"]]
    tnet = torch_vgg_bn(torch, cfg, hidden=16, pool_size=2, num_classes=3, dropout=0.0)
    mnet = models.vgg11_bn(num_classes=3, width=8, hidden_features=16, pool_size=2,
                           dropout=0.0)
    check_parity(torch, tnet, mnet, (2, 3, 32, 32))


def test_dense_block_matches_torch(torch):
    tnet = torch_dense_block(torch, num_layers=3, num_input_features=6, bn_size=2,
                             growth_rate=4)
    mnet = models.DenseBlock(num_layers=3, num_input_features=6, bn_size=2, growth_rate=4)
    check_parity(torch, tnet, mnet, (2, 6, 8, 8))


@pytest.mark.parametrize("k", [3, 5])
def test_inception_module_matches_torch(torch, k):
    channels = (12, 4, 3, 5, 2, 6, 3)
    tnet = torch_inception(torch, *channels, k=k)
    mnet = models.Inception(*channels, branch3_kernel_size=k)
    check_parity(torch, tnet, mnet, (2, 12, 7, 7))


# ---- the loading itself ------------------------------------------------------------------
def small_pair(torch):
    tnet = torch_resnet18(torch, width=2, num_classes=3)
    randomize_batchnorm(torch, tnet)
    return tnet, models.resnet18(num_classes=3, width=2)


def test_pth_file_checkpoint_wrapper_and_dataparallel_prefix(torch, tmp_path):
    tnet, mnet = small_pair(torch)
    sd = tnet.state_dict()
    plain = tmp_path / "plain.pth"
    torch.save(sd, plain)
    load_torch_state_dict(mnet, str(plain))
    close(mnet.layer3[1].bn2.running_var, sd["layer3.1.bn2.running_var"])
    assert int(mnet.bn1.num_batches_tracked.item()) == 7

    wrapped = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "state_dict": OrderedDict(("module." + k, v * 2 if
                                                       v.is_floating_point() else v)
                                                      for k, v in sd.items())}, wrapped)
    load_torch_state_dict(mnet, wrapped)            # a pathlib.Path works too
    close(mnet.fc.weight, sd["fc.weight"] * 2)


def test_missing_num_batches_tracked_keeps_the_models_own(torch):
    tnet, mnet = small_pair(torch)
    sd = {k: v for k, v in tnet.state_dict().items() if not k.endswith("num_batches_tracked")}
    load_torch_state_dict(mnet, sd)
    close(mnet.conv1.weight, sd["conv1.weight"])
    assert int(mnet.bn1.num_batches_tracked.item()) == 0


def test_bad_state_dict_changes_nothing(torch):
    tnet, mnet = small_pair(torch)
    before = {k: v.numpy().copy() for k, v in mnet.state_dict().items()}
    sd = dict(tnet.state_dict())
    sd["fc.weight"] = torch.zeros(4, 16)
    with pytest.raises(ValueError, match="fc.weight"):
        load_torch_state_dict(mnet, sd)
    del sd["fc.weight"]
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="extra.weight"):
        load_torch_state_dict(mnet, sd)
    for k, v in mnet.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)
    result = load_torch_state_dict(mnet, sd, strict=False)
    assert result.missing_keys == ["fc.weight"] and result.unexpected_keys == ["extra.weight"]
    close(mnet.fc.bias, sd["fc.bias"])


def test_float32_and_bfloat16_weights_take_the_models_dtype(torch):
    tnet = torch.nn.Linear(3, 2)
    mnet = nn.Linear(3, 2)
    load_torch_state_dict(mnet, tnet.double().state_dict())
    assert mnet.weight.dtype == np.float32
    close(mnet.weight, tnet.weight.float())
    load_torch_state_dict(mnet, tnet.to(torch.bfloat16).state_dict())
    close(mnet.bias, tnet.bias.float())


def test_numpy_state_dict_without_torch():
    rng = np.random.default_rng(0)
    mnet = nn.Linear(3, 2)
    sd = {"weight": rng.standard_normal((2, 3)), "bias": rng.standard_normal(2)}
    load_torch_state_dict(mnet, sd)
    assert_close(mnet.weight, sd["weight"].astype(np.float32), rtol=0)
    assert list(torch_state_dict_to_numpy(mnet.state_dict())) == ["weight", "bias"]


def test_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        load_torch_state_dict(object(), {})
    with pytest.raises(TypeError, match="state dict or a path"):
        load_torch_state_dict(nn.Linear(2, 2), [1, 2])
    with pytest.raises(TypeError, match="'weight' is a list"):
        load_torch_state_dict(nn.Linear(2, 2), {"weight": [[1, 2], [3, 4]], "bias": [0, 0]})


def test_missing_file(torch, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_torch_state_dict(nn.Linear(2, 2), tmp_path / "nothing.pth")

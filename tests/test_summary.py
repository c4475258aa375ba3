"""minidl.utils.summary: output shapes, parameter counts and multiply-accumulates."""
import io

import numpy as np
import pytest
from hypothesis import given, settings

from minidl import models, nn
from minidl.testing import strategies
from minidl.utils.summary import format_count, layer_macs, model_table, summary


def test_inception_bottleneck_arithmetic_of_the_course_notes(device):
    """A 5x5 conv 192 -> 32 on 28x28 costs 120.4M MACs; with a 1x1 reduction to 16
    channels first, 2.4M + 10.0M = 12.4M."""
    direct = summary(nn.Conv2d(192, 32, 5, padding=2).to(device), (192, 28, 28), file=None)
    assert direct.total_macs == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    assert direct.rows[0].output_shape == (1, 32, 28, 28)
    reduced = summary(nn.Sequential(nn.Conv2d(192, 16, 1), nn.ReLU(),
                                    nn.Conv2d(16, 32, 5, padding=2)).to(device),
                      (192, 28, 28), file=None)
    assert [r.macs for r in reduced.rows] == [28 * 28 * 16 * 192, 0, 28 * 28 * 32 * 25 * 16]
    assert [r.macs for r in reduced.rows] == [2_408_448, 0, 10_035_200]
    assert reduced.total_macs == 12_443_648
    assert format_count(direct.total_macs) == "120.42M"
    assert format_count(reduced.total_macs) == "12.44M"


def test_rows_totals_and_printed_table(device):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
                          nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 10)).to(device)
    model[4].weight.requires_grad_(False)
    out = io.StringIO()
    s = summary(model, (3, 8, 8), file=out)
    assert [r.name for r in s.rows] == ["0", "1", "2", "3", "4"]
    assert [r.kind for r in s.rows] == ["Conv2d", "BatchNorm2d", "ReLU", "Flatten", "Linear"]
    assert [r.output_shape for r in s.rows] == [(1, 8, 4, 4)] * 3 + [(1, 128), (1, 10)]
    assert [r.params for r in s.rows] == [8 * 3 * 9, 16, 0, 0, 128 * 10 + 10]
    assert [r.macs for r in s.rows] == [4 * 4 * 8 * 27, 0, 0, 0, 1280]
    assert s.total_params == 216 + 16 + 1290
    assert s.trainable_params == s.total_params - 1280
    assert s.non_trainable_params == 1280
    assert s.total_macs == 3456 + 1280
    text = out.getvalue()
    assert text == s.table() + "\n" and str(s) == s.table()
    for fragment in ["0 (Conv2d)", "(1, 8, 4, 4)", "4 (Linear)", "Total params: 1,522",
                     "Trainable params: 242", "Total MACs: 4,736"]:
        assert fragment in text, fragment


def test_batch_size_scales_macs_and_shapes():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(4 * 3 * 3, 5))
    one = summary(model, (2, 5, 5), file=None)
    four = summary(model, (2, 5, 5), batch_size=4, file=None)
    assert four.total_macs == 4 * one.total_macs
    assert four.rows[0].output_shape == (4, 4, 3, 3)


@settings(max_examples=15, deadline=None)
@given(strategies.conv_params())
def test_conv_macs_are_output_pixels_times_taps(p):
    n, cin, h, w = p["x_shape"]
    cout, cin_g, kh, kw = p["w_shape"]
    conv = nn.Conv2d(cin, cout, (kh, kw), stride=p["stride"], padding=p["padding"],
                     dilation=p["dilation"], groups=p["groups"])
    s = summary(conv, (cin, h, w), batch_size=n, file=None)
    oh = strategies.conv_output_size(h, kh, p["stride"][0], p["padding"][0], p["dilation"][0])
    ow = strategies.conv_output_size(w, kw, p["stride"][1], p["padding"][1], p["dilation"][1])
    assert s.rows[0].output_shape == (n, cout, oh, ow)
    # every output value is a sum over cin/groups channels of a kh x kw window
    assert s.total_macs == n * cout * oh * ow * (cin // p["groups"]) * kh * kw


def test_conv_transpose_and_grouped_conv_macs():
    up = nn.ConvTranspose2d(6, 4, kernel_size=2, stride=2)
    s = summary(up, (6, 5, 7), file=None)
    assert s.rows[0].output_shape == (1, 4, 10, 14)
    assert s.total_macs == 5 * 7 * 6 * 4 * 2 * 2          # every input pixel x 4x2x2 weights
    grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)
    assert summary(grouped, (8, 6, 6), file=None).total_macs == 6 * 6 * 8 * 9 * 2
    assert layer_macs(nn.ReLU(), (1, 3), (1, 3)) == 0


def test_summary_leaves_the_model_unchanged():
    model = models.cifar_resnet20()
    model.train()
    model.layer2.eval()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    s = summary(model, (3, 32, 32), file=None)
    assert model.training and not model.layer2.training and model.layer3.training
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)
    assert all(not m._forward_hooks for m in model.modules())
    assert s.total_params == 269_722
    # 3x3 convolutions: 16 ch at 32x32, 32 at 16x16, 64 at 8x8, + the fc
    convs = 32 * 32 * 16 * 27 + 6 * 32 * 32 * 16 * 144 + 16 * 16 * 32 * 144 + \
        5 * 16 * 16 * 32 * 288 + 8 * 8 * 64 * 288 + 5 * 8 * 8 * 64 * 576
    assert s.total_macs == convs + 64 * 10


def test_googlenet_aux_params_counted_but_not_run():
    model = models.googlenet(num_classes=10)
    s = summary(model, (3, 64, 64), file=None)
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert not any(r.name.startswith("aux") for r in s.rows)
    assert sum(r.params for r in s.rows) == s.total_params - sum(
        p.numel() for name, p in model.named_parameters() if name.startswith("aux"))
    assert model.training


def test_resnet18_at_224_matches_published_numbers():
    s = summary(models.resnet18(), (3, 224, 224), file=None)
    assert s.total_params == 11_689_512
    assert s.total_macs == 1_814_073_344          # torchvision lists 1.81 GFLOPS (MACs)
    assert s.rows[0].name == "conv1" and s.rows[0].output_shape == (1, 64, 112, 112)
    assert s.rows[-1].name == "fc" and s.rows[-1].output_shape == (1, 1000)


def test_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module"):
        summary(lambda x: x, (3, 8, 8))
    with pytest.raises(ValueError, match="input_shape"):
        summary(nn.ReLU(), (3, 0, 8))
    with pytest.raises(ValueError, match="input_shape"):
        summary(nn.ReLU(), 3)
    with pytest.raises(ValueError, match="batch_size"):
        summary(nn.ReLU(), (3,), batch_size=0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError):
        summary(model, (5, 8, 8))                    # wrong channels: conv2d's own error
    assert not model[0]._forward_hooks               # hooks removed even after an error


def test_model_table_markdown():
    table = model_table([("LeNet-5", models.lenet5, (1, 28, 28)),
                         ("tiny", nn.Linear(4, 2), (4,))])
    assert table.splitlines() == [
        "| Model | Input | Parameters | MACs |", "|---|---|---:|---:|",
        "| LeNet-5 | 1x28x28 | 61,706 | 416.52K |", "| tiny | 4 | 10 | 8 |"]
    assert format_count(1_814_073_344) == "1.81G" and format_count(999) == "999"

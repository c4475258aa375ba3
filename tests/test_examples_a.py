"""Smoke tests of the examples lenet5_digits, resnet_cifar, batchnorm_effect,
residual_vs_plain, init_study and dropout_and_augmentation.

Each example runs in --quick mode (seconds, CPU, fixed seed) through its ``main(argv)``,
must write its PNG and JSON into the folder given by --out, and, where the claim the
example demonstrates is robust at that small scale, the test asserts it.
"""
import gzip
import importlib
import json
import os
import pickle
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples")


def load_example(name):
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    return importlib.import_module(name)


def run_quick(name, out, *extra):
    """Run example ``name`` with --quick into ``out``; return its results and JSON."""
    module = load_example(name)
    results = module.main(["--quick", "--no-progress", "--out", str(out), *extra])
    png = out / f"{name}.png"
    assert png.is_file() and png.stat().st_size > 1000, f"{name} wrote no figure"
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(out / f"{name}.json") as f:
        saved = json.load(f)
    assert saved["example"] == name
    assert saved["args"]["quick"] is True
    assert saved["command"].startswith(f"python examples/{name}.py --quick")
    return results, saved


@pytest.mark.parametrize("name", ["lenet5_digits", "resnet_cifar", "batchnorm_effect",
                                  "residual_vs_plain", "init_study",
                                  "dropout_and_augmentation"])
def test_help_lists_the_common_options(name, capsys):
    module = load_example(name)
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--device", "--epochs", "--seed", "--quick", "--out"):
        assert option in text


def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    from minidl.backend import cuda_available
    if cuda_available():
        pytest.skip("a GPU is present: --device cuda is valid here")
    module = load_example("init_study")
    with pytest.raises(SystemExit) as exc:
        module.main(["--quick", "--device", "cuda"])
    assert exc.value.code == 2
    assert "--device cuda" in capsys.readouterr().err


def test_lenet5_digits_quick(tmp_path):
    results, saved = run_quick("lenet5_digits", tmp_path)
    assert results["parameters"] == 61706          # LeNet-5 with 10 classes
    assert results["n_train"] == 200 and results["n_test"] == 100
    # One epoch on 200 digits is already far better than chance (10%) at this seed.
    assert results["test_accuracy"] > 0.2
    assert saved["test_errors"] == round((1 - results["test_accuracy"]) * 100)
    assert len(saved["history"]["val_acc"]) == 1


def _write_idx(path, array):
    """An IDX file (MNIST's format) of uint8 values, gzipped."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_lenet5_reads_mnist_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "mnist"
    data.mkdir()
    for prefix, n in (("train", 40), ("t10k", 20)):
        _write_idx(data / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(data / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    results, _ = run_quick("lenet5_digits", tmp_path / "out", "--data-dir", str(data))
    assert results["data"] == "MNIST"
    assert results["n_train"] == 40 and results["n_test"] == 20


def test_resnet_cifar_quick_synthetic(tmp_path):
    results, _ = run_quick("resnet_cifar", tmp_path)
    assert results["model"] == "cifar_resnet20"
    assert results["data"].startswith("SyntheticShapes")
    assert results["n_train"] == 128 and results["n_test"] == 64
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert np.isfinite(results["test_loss"])


def test_resnet_cifar_reads_cifar_batches_and_other_models(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (8, 3072), dtype=np.uint8),
                 b"labels": list(range(8))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    results, _ = run_quick("resnet_cifar", tmp_path / "out", "--data-dir",
                           str(tmp_path / "cifar"), "--model", "preact_resnet20")
    assert results["data"] == "CIFAR-10"
    assert results["model"] == "preact_resnet20"
    assert results["n_train"] == 40 and results["n_test"] == 8


def test_resnet_cifar_rejects_an_unknown_model(tmp_path):
    module = load_example("resnet_cifar")
    with pytest.raises(SystemExit, match="--model must be a builder in minidl.models"):
        module.main(["--quick", "--out", str(tmp_path), "--model", "no_such_net"])


def test_batchnorm_effect_quick(tmp_path):
    results, _ = run_quick("batchnorm_effect", tmp_path)
    plain, bn = results["trainability"]["plain"], results["trainability"]["with BN"]
    assert len(plain["loss"]) == len(bn["loss"]) == 20        # 2 epochs of 10 batches
    # At lr 0.05 the plain net is still on its ln(10) plateau; the BN net has left it.
    assert plain["final_loss"] > 2.2
    assert bn["final_loss"] < plain["final_loss"] - 0.5
    # Train mode: a sample's logits depend on its batch-mates; eval mode: they do not.
    change = results["train_vs_eval"]["logit_change"]
    assert change["train"] > 1e-3
    assert change["eval"] == 0.0
    assert set(results["batch_size"]) == {"2", "32", "128"}


def test_residual_vs_plain_quick(tmp_path):
    results, _ = run_quick("residual_vs_plain", tmp_path)
    plain, res = results["runs"]["plain-20"], results["runs"]["resnet-20"]
    assert plain["parameters"] == res["parameters"]       # the shortcut adds nothing
    # Same depth, same initial weights, same batches: the residual net trains faster.
    assert res["final_train_error"] < plain["final_train_error"] - 0.2


def test_plain_block_has_no_shortcut():
    import minidl as md
    module = load_example("residual_vs_plain")
    md.manual_seed(0)
    plain = module.make_net(8, residual=False, width=4)
    md.manual_seed(0)
    res = module.make_net(8, residual=True, width=4)
    assert [k for k, _ in plain.named_parameters()] == [k for k, _ in res.named_parameters()]
    block = plain.layer1[0]
    x = md.randn(2, 4, 6, 6)
    block.eval()
    np.testing.assert_allclose(block(x).numpy(), block.residual(x).relu().numpy())


def test_init_study_quick(tmp_path):
    results, _ = run_quick("init_study", tmp_path)
    s = results["schemes"]
    # Zero init: every unit identical, activations and hidden gradients exactly 0, and
    # training cannot break the symmetry.
    assert all(v == 0 for v in s["zero"]["activation_std"])
    assert all(v == 0 for v in s["zero"]["gradient_std"])
    assert s["zero"]["units_identical_after_training"]
    assert not s["he"]["units_identical_after_training"]
    # N(0, 1) explodes with depth; Xavier shrinks under ReLU; He and LSUV keep the scale.
    normal = s["normal"]["activation_std"]
    assert normal[-1] > 100 * normal[0]
    xavier = s["xavier"]["activation_std"]
    assert xavier[-1] < 0.5 * xavier[0]
    for scheme in ("he", "lsuv"):
        a = s[scheme]["activation_std"]
        assert 0.3 < a[-1] / a[0] < 3, (scheme, a)


def test_dropout_and_augmentation_quick(tmp_path):
    results, _ = run_quick("dropout_and_augmentation", tmp_path)
    runs = results["runs"]
    assert list(runs) == ["plain", "dropout", "augmentation", "label smoothing",
                          "all three"]
    assert results["n_train"] == 60
    for r in runs.values():
        assert r["gap"] == pytest.approx(r["train_acc"] - r["test_acc"])
        assert len(r["train_acc_curve"]) == len(r["test_acc_curve"]) == 2

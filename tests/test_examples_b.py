"""Smoke tests of the part-B examples: each runs in --quick mode, writes its PNG and JSON,
and, where a claim holds at this small scale on a fixed seed, the test asserts it."""
import contextlib
import importlib.util
import itertools
import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")      # the embedded digits come from scikit-learn

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples")


def load(name):
    """Import examples/<name>.py as a module (its folder on sys.path for _common_B)."""
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    spec = importlib.util.spec_from_file_location(f"example_b_{name}",
                                                  os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def one_blas_thread():
    """The quick runs are small: one BLAS thread is faster on a shared machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def run_quick(name, tmp_path_factory, *extra):
    out = tmp_path_factory.mktemp(name)
    with one_blas_thread():
        results = load(name).main(["--quick", "--seed", "0", "--out", str(out), *extra])
    return results, out


def check_outputs(out, name, figures):
    for suffix in figures:
        png = out / f"{name}{suffix}.png"
        assert png.is_file() and png.stat().st_size > 1000, png
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / f"{name}.json").read_text())
    assert data["config"]["quick"] is True
    return data


# ---- each example once, shared by its tests -----------------------------------------

@pytest.fixture(scope="module")
def anomaly(tmp_path_factory):
    return run_quick("anomaly_autoencoder", tmp_path_factory)


@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    return run_quick("inception_cost", tmp_path_factory)


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    return run_quick("unet_segmentation", tmp_path_factory)


@pytest.fixture(scope="module")
def mixing(tmp_path_factory):
    return run_quick("mixup_cutmix", tmp_path_factory)


@pytest.fixture(scope="module")
def ensembles(tmp_path_factory):
    return run_quick("ensembles_and_tta", tmp_path_factory)


@pytest.fixture(scope="module")
def transfer(tmp_path_factory):
    return run_quick("transfer_learning", tmp_path_factory)


# ---- anomaly_autoencoder ---------------------------------------------------------------

def test_anomaly_autoencoder_flags_unseen_digits(anomaly):
    results, out = anomaly
    data = check_outputs(out, "anomaly_autoencoder", ["", "_maps"])
    assert data["roc_auc"] == pytest.approx(results["roc_auc"])
    # Trained on 0-4 for a few epochs, the reconstruction error separates 5-9.
    assert results["roc_auc"] > 0.9
    assert results["mean_score_anomalous"] > results["mean_score_normal"]
    assert set(results["per_class_auc"]) == {5, 6, 7, 8, 9}


def test_roc_auc_matches_sklearn_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    load("anomaly_autoencoder")
    import _common_B as common                         # the examples' own helpers
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 200).astype(float)     # many ties
    positive = rng.random(200) < 0.3
    assert common.roc_auc(scores, positive) == pytest.approx(
        metrics.roc_auc_score(positive, scores))
    fpr, tpr = common.roc_curve(scores, positive)
    ref_fpr, ref_tpr, _ = metrics.roc_curve(positive, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)


# ---- inception_cost ----------------------------------------------------------------------

def test_inception_cost_reproduces_course_notes(inception):
    results, out = inception
    check_outputs(out, "inception_cost", [""])
    rows = results["models"]
    # 28*28*32*5*5*192 and 28*28*16*192 + 28*28*32*5*5*16
    assert rows["5x5 conv, naive"]["macs"] == 120_422_400
    assert rows["5x5 conv, 1x1-reduced"]["macs"] == 12_443_648
    assert results["course_notes"] == {"naive_5x5_macs": 120_422_400,
                                       "reduced_5x5_macs": 12_443_648}
    assert rows["Inception 3a, naive"]["macs"] == 303_464_448
    assert rows["Inception 3a, 1x1-reduced"]["macs"] == 128_049_152
    assert rows["Inception 3a, naive"]["output_shape"] == [416, 28, 28]
    assert rows["Inception 3a, 1x1-reduced"]["output_shape"] == [256, 28, 28]
    assert rows["5x5 conv, naive"]["params"] == 192 * 32 * 25 + 32


# ---- unet_segmentation ---------------------------------------------------------------

def test_unet_finds_the_shapes(unet):
    results, out = unet
    check_outputs(out, "unet_segmentation", ["", "_curves"])
    test = results["test"]
    # Two quick epochs find the foreground; telling the shapes apart takes longer.
    assert test["foreground_iou"] > 0.7
    assert test["miou"] > results["all_background_baseline"]["miou"]
    assert len(results["test_miou_per_epoch"]) == results["config"]["epochs"]


def test_iou_from_confusion_matrix():
    mod = load("unet_segmentation")
    target = np.array([[0, 0, 1, 1], [0, 2, 2, 0]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 0]])
    scores = mod.iou_scores(mod.confusion(pred, target, 4))
    # class 0: TP 3, FP 1, FN 1 -> 3/5; class 1: 2/3; class 2: 1/2; class 3 absent
    np.testing.assert_allclose(scores["iou"][:3], [3 / 5, 2 / 3, 1 / 2])
    assert np.isnan(scores["iou"][3])
    assert scores["pixel_acc"] == pytest.approx(6 / 8)
    assert scores["foreground_iou"] == pytest.approx(3 / 5)


# ---- mixup_cutmix ----------------------------------------------------------------------

def test_mixup_cutmix_soft_label_loss_is_the_weighted_hard_loss(mixing):
    results, out = mixing
    check_outputs(out, "mixup_cutmix", ["", "_samples"])
    assert set(results["final"]) == {"plain", "mixup", "cutmix"}
    for method in ("mixup", "cutmix"):
        v = results["soft_label_identity"][method]
        assert 0.0 <= v["lam"] <= 1.0
        assert v["soft_label_ce"] == pytest.approx(v["lam_weighted_hard_ce"], rel=1e-5)


def test_cutmix_weight_is_the_pixel_share():
    mod = load("mixup_cutmix")
    from minidl.data import transforms as T
    x = np.stack([np.zeros((1, 16, 16), np.float32), np.ones((1, 16, 16), np.float32)])
    y = np.array([0, 1])
    mix = T.CutMix(alpha=1.0, num_classes=10)
    rng = np.random.default_rng(3)
    for _ in range(5):
        params = mix.sample_params(x.shape, rng)
        params["perm"] = np.array([1, 0])
        mixed, soft = mix.apply(x, y, params)
        share = mod.mixing_weight(mix, params, x.shape)
        # image 0 is zeros: the ones in it are the pasted pixels of image 1
        assert 1.0 - mixed[0].mean() == pytest.approx(share)
        assert soft[0, 0] == pytest.approx(share) and soft[0, 1] == pytest.approx(1 - share)


# ---- ensembles_and_tta -----------------------------------------------------------------

def test_ensemble_beats_its_average_member(ensembles):
    results, out = ensembles
    check_outputs(out, "ensembles_and_tta", [""])
    s = results["summary"]
    # Averaging probabilities: the NLL of the mean is below the mean NLL (strictly, as
    # the members differ), and on this seed the accuracy is not below the members' mean.
    assert s["ensemble"]["nll"] < s["member_mean"]["nll"]
    assert s["ensemble_tta"]["nll"] < s["member_mean_tta"]["nll"]
    assert s["ensemble"]["acc"] >= s["member_mean"]["acc"]
    # predict(list of models) averages exactly as the per-model probabilities do
    assert results["predict_vs_mean_max_abs_diff"] < 1e-5
    n = results["config"]["members"]
    assert [r["subsets"] for r in results["ensemble_by_size"]] == \
        [len(list(itertools.combinations(range(n), k))) for k in range(1, n + 1)]


def test_five_crops_are_the_centre_and_diagonal_shifts():
    mod = load("ensembles_and_tta")
    import minidl as md
    x = md.tensor(np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6))
    views = mod.five_crops(4, 1)(x)
    assert [v.shape for v in views] == [(1, 1, 4, 4)] * 5
    np.testing.assert_array_equal(views[0].numpy()[0, 0], x.numpy()[0, 0, 1:5, 1:5])
    np.testing.assert_array_equal(views[1].numpy()[0, 0], x.numpy()[0, 0, 0:4, 0:4])
    np.testing.assert_array_equal(views[4].numpy()[0, 0], x.numpy()[0, 0, 2:6, 2:6])


# ---- transfer_learning -----------------------------------------------------------------

def test_transfer_learning_freezes_what_it_says(transfer):
    results, out = transfer
    check_outputs(out, "transfer_learning", [""])
    change = results["trunk_weight_change"]
    assert all(v == 0.0 for v in change["head only"].values())
    assert change["top + head"]["0.weight"] == 0.0 and change["top + head"]["0.bias"] == 0.0
    assert change["top + head"]["3.weight"] > 0.0
    assert all(v > 0.0 for v in change["fine-tune"].values())
    assert results["source_test_acc"] > 0.8
    row = results["target_test_acc"]["2"]
    assert set(row) == {"scratch", "head only", "top + head", "fine-tune"}
    assert all(len(v["runs"]) == results["config"]["repeats"] for v in row.values())


# ---- every example has a working --help ------------------------------------------------

@pytest.mark.parametrize("name", ["anomaly_autoencoder", "inception_cost", "unet_segmentation",
                                  "mixup_cutmix", "ensembles_and_tta", "transfer_learning"])
def test_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        load(name).main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--device", "--epochs", "--seed", "--quick", "--out"):
        assert flag in text

"""The training loop: history, best checkpoint, early stopping, ensembles and TTA."""
import numpy as np
import pytest

import minidl as md
from minidl import nn, optim
from minidl.utils.train import EarlyStopping, History, evaluate, fit, predict, tta_views


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    x = centers[y] + rng.standard_normal((n, 2)) * 0.5
    return x.astype(np.float32), y.astype(np.int64)


def batches(x, y, size=20):
    return [(md.tensor(x[i:i + size]), md.tensor(y[i:i + size]))
            for i in range(0, len(x), size)]


def make_model():
    md.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


def test_fit_learns_and_records_history(tmp_path):
    x, y = blobs()
    model = make_model()
    opt = optim.SGD(model.parameters(), lr=0.2)
    history = fit(model, nn.CrossEntropyLoss(), opt, batches(x[:90], y[:90]),
                  batches(x[90:], y[90:]), epochs=8, progress=False, verbose=False,
                  checkpoint_path=tmp_path / "best.npz")
    assert len(history) == 8 and history["epoch"] == list(range(1, 9))
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_acc"][-1] >= 0.9
    saved = md.utils.checkpoint.load(tmp_path / "best.npz")
    assert saved["epoch"] == history.best_epoch
    assert '"epochs"' in history.to_json()
    pytest.importorskip("matplotlib", reason="History.plot needs the examples extra")
    history.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_early_stopping_stops():
    x, y = blobs()
    model = make_model()
    opt = optim.SGD(model.parameters(), lr=0.0)   # nothing improves
    history = fit(model, nn.CrossEntropyLoss(), opt, batches(x, y), batches(x, y),
                  epochs=10, callbacks=[EarlyStopping("val_loss", patience=2)],
                  progress=False, verbose=False)
    assert history.stopped_early and len(history) == 3


def test_keyboard_interrupt_keeps_last_checkpoint(tmp_path):
    x, y = blobs()
    model = make_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    data = batches(x, y)

    def interrupt_on_third_epoch(history, logs):
        if logs["epoch"] == 2:
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        fit(model, nn.CrossEntropyLoss(), opt, data, data, epochs=5,
            callbacks=[interrupt_on_third_epoch], checkpoint_path=tmp_path / "ck.npz",
            progress=False, verbose=False, monitor="val_loss")
    state = md.utils.checkpoint.load(tmp_path / "ck.npz")
    assert state["epoch"] in (1, 2)
    fresh = make_model()
    fresh.load_state_dict(state["model"])


def test_ensemble_and_tta_predict_and_evaluate():
    x, y = blobs()
    models = []
    for seed in range(3):
        md.manual_seed(seed)
        m = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
        fit(m, nn.CrossEntropyLoss(), optim.SGD(m.parameters(), lr=0.2), batches(x, y),
            epochs=5, progress=False, verbose=False)
        models.append(m)
    probs = predict(models, md.tensor(x))
    assert probs.shape == (len(x), 3)
    np.testing.assert_allclose(probs.numpy().sum(1), 1, rtol=1e-5)
    single = evaluate(models[0], nn.CrossEntropyLoss(), batches(x, y))
    ensemble = evaluate(models, nn.CrossEntropyLoss(), batches(x, y))
    assert ensemble["acc"] >= 0.9 and single["acc"] >= 0.85
    views = tta_views(md.randn(2, 1, 8, 8), flip=True, crops=4)
    assert len(views) == 6 and all(v.shape == (2, 1, 8, 8) for v in views)
    assert (views[1].numpy() == views[0].numpy()[..., ::-1]).all()


def test_fit_rejects_bad_arguments():
    model = make_model()
    with pytest.raises(TypeError, match="model"):
        fit("not a model", nn.CrossEntropyLoss(), None, [], epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), [],
            epochs=-1)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    assert History().best("val_loss") is None

"""Checkpoints: bit-exact round trips, atomic writes, clear errors for bad files."""
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl as md
from minidl import optim
from minidl.utils.checkpoint import FORMAT_VERSION, MAGIC, load, save


def _nested():
    rng = np.random.default_rng(0)
    f32 = rng.standard_normal((3, 4)).astype(np.float32)
    f32[0, 0], f32[0, 1], f32[0, 2] = np.nan, -np.inf, -0.0
    return {
        "model": OrderedDict([
            ("conv1.weight", md.tensor(rng.standard_normal((2, 1, 3, 3)).astype(np.float32))),
            ("bn.num_batches_tracked", md.tensor(np.array(7, dtype=np.int64))),
            ("fc.weight", md.tensor(rng.standard_normal((5, 2)), dtype="float64",
                                    requires_grad=True)),
        ]),
        "arrays": {"f32": f32, "f64": rng.standard_normal(6),
                   "i64": np.array([-(2 ** 62), 0, 2 ** 62 + 1], dtype=np.int64),
                   "u8": np.arange(5, dtype=np.uint8), "b": np.array([True, False]),
                   "f16": np.array([1.5, 65504.0], dtype=np.float16),
                   "empty": np.zeros((0, 3), dtype=np.float32),
                   "fortran": np.asfortranarray(rng.standard_normal((3, 2)))},
        "optimizer": {"state": {0: {"step": 3}, 11: {"step": 4}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 11],
                                        "nesterov": False, "name": None}]},
        "scalars": [0.1, 1e-300, float("nan"), float("inf"), -0.0, 2 ** 70, True, None,
                    np.float32(1.1), np.int64(-3), np.float64(np.pi)],
        "strings": ["", "résumé ✓", "a.b/c", "{\"json\": 1}"],
        "epoch": 3,
        "keys": {1.5: "float key", True: "bool key", None: "none key", "": "empty key"},
    }


def _assert_same(a, b, where="obj"):
    """Equal values, types and (for arrays) dtype, shape and bytes."""
    assert type(a) is type(b) or (isinstance(a, md.Tensor) and isinstance(b, md.Tensor)), \
        f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, md.Tensor):
        assert a.requires_grad == b.requires_grad, where
        a, b = a.numpy(), b.numpy()
    if isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert type(k) is type([kb for kb in b if kb == k][0]), f"{where} key {k!r}"
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert repr(a) == repr(b), where          # exact, nan and -0.0 included
    else:
        assert a == b, where


def test_round_trip_is_bit_exact(tmp_path):
    obj = _nested()
    path = tmp_path / "ckpt.npz"
    save(obj, path)
    back = load(path)
    _assert_same(obj, back)
    assert isinstance(back["model"], OrderedDict) and not isinstance(back["optimizer"],
                                                                      OrderedDict)
    assert back["model"]["conv1.weight"].device == "cpu"
    # Nothing but the file is left in the folder.
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_file_is_a_plain_npz_with_flattened_keys_and_a_header(tmp_path):
    path = tmp_path / "ckpt.npz"
    save(_nested(), str(path))
    with np.load(path, allow_pickle=False) as npz:
        files = set(npz.files)
        assert {"model.conv1.weight", "arrays.f32", "scalars.8", "__minidl_header__"} <= files
        np.testing.assert_array_equal(npz["arrays.i64"], _nested()["arrays"]["i64"])
        header = json.loads(npz["__minidl_header__"].tobytes().decode("utf-8"))
    assert header["magic"] == MAGIC == "minidl-checkpoint"
    assert header["version"] == FORMAT_VERSION == 1
    assert set(header["keys"]) == files - {"__minidl_header__"}


def test_colliding_flattened_keys_stay_apart(tmp_path):
    obj = {"a.b": np.ones(2), "a": {"b": np.zeros(2)}, "__minidl_header__": np.arange(3)}
    save(obj, tmp_path / "c.npz")
    _assert_same(obj, load(tmp_path / "c.npz"))


def test_optimizer_and_scheduler_state_survive_a_checkpoint(tmp_path):
    w = md.tensor(np.linspace(-1, 1, 6).reshape(2, 3), dtype="float32", requires_grad=True)
    opt = optim.Adam([w], lr=0.1, amsgrad=True)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2)
    for _ in range(3):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
        sched.step()
    save({"w": w, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
          "epoch": 3}, tmp_path / "run.npz")
    ckpt = load(tmp_path / "run.npz")

    w2 = md.tensor(ckpt["w"].numpy(), requires_grad=True)
    opt2 = optim.Adam([w2], lr=0.5)
    sched2 = optim.lr_scheduler.StepLR(opt2, step_size=2)
    opt2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    assert ckpt["epoch"] == 3 and opt2.param_groups[0]["betas"] == (0.9, 0.999)
    for o, s, p in ((opt, sched, w), (opt2, sched2, w2)):
        for _ in range(3):
            o.zero_grad()
            (p * p).sum().backward()
            o.step()
            s.step()
    assert np.array_equal(w.numpy(), w2.numpy()) and sched.get_last_lr() == \
        sched2.get_last_lr()


def test_map_location_and_tensors_on_cpu_by_default(tmp_path, device):
    save({"t": md.tensor([1.0, 2.0], device=device), "a": np.ones(2)}, tmp_path / "m.npz")
    back = load(tmp_path / "m.npz", map_location=device)
    assert back["t"].device == device and isinstance(back["a"], np.ndarray)
    assert load(tmp_path / "m.npz")["t"].device == "cpu"
    with pytest.raises(ValueError, match="device"):
        load(tmp_path / "m.npz", map_location="tpu")


def _fail_halfway(monkeypatch, after_calls):
    """Make np.lib.format.write_array write half of one array, then fail (disk full)."""
    real = np.lib.format.write_array
    calls = []

    def write_array(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) > after_calls:
            fp.write(np.ascontiguousarray(array).tobytes()[: array.nbytes // 2])
            raise OSError(28, "No space left on device")
        return real(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_array)


@pytest.mark.parametrize("after_calls", [0, 2])
def test_a_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch, after_calls):
    path = tmp_path / "ckpt.npz"
    old = {"epoch": 1, "w": np.arange(1000, dtype=np.float64)}
    save(old, path)
    before = path.read_bytes()
    _fail_halfway(monkeypatch, after_calls)
    with pytest.raises(OSError, match="No space left"):
        save({"epoch": 2, "w": np.ones(1000), "v": np.zeros(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    _assert_same(load(path), old)
    assert os.listdir(tmp_path) == ["ckpt.npz"], "the temporary file must be removed"


def test_a_failed_rename_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save({"epoch": 1}, path)

    def broken_replace(src, dst):
        raise PermissionError("rename refused")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(PermissionError):
        save({"epoch": 2}, path)
    monkeypatch.undo()
    assert load(path) == {"epoch": 1} and os.listdir(tmp_path) == ["ckpt.npz"]


def test_a_process_killed_while_saving_leaves_the_old_file_intact(tmp_path):
    # A hard crash (no Python cleanup at all) in the middle of writing an array.
    path = tmp_path / "ckpt.npz"
    save({"epoch": 1, "w": np.arange(10.0)}, path)
    before = path.read_bytes()
    script = (
        "import os, numpy as np\n"
        "from minidl.utils.checkpoint import save\n"
        "def die(fp, array, *a, **k):\n"
        "    fp.write(b'x' * 100); fp.flush(); os._exit(3)\n"
        "np.lib.format.write_array = die\n"
        f"save({{'epoch': 2, 'w': np.ones(10**5)}}, {str(path)!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 3, proc.stderr.decode()
    assert path.read_bytes() == before and load(path)["epoch"] == 1
    leftovers = [n for n in os.listdir(tmp_path) if n != "ckpt.npz"]
    assert all(n.startswith(".ckpt.npz.") and n.endswith(".tmp") for n in leftovers)


def test_saving_into_a_missing_folder(tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "ckpt.npz"
    with pytest.raises(FileNotFoundError, match="dir' of checkpoint .* does not exist"):
        save({"epoch": 1}, target)
    with pytest.raises(ValueError, match="is a folder"):
        save({"epoch": 1}, tmp_path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -1])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "ckpt.npz"
    save({"w": np.arange(2000.0), "b": np.ones(3)}, path)
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:keep])
    with pytest.raises(ValueError, match=r"cut\.npz' is truncated or corrupted"):
        load(cut)


def test_corrupted_array_bytes(tmp_path):
    path = tmp_path / "ckpt.npz"
    save({"w": np.arange(2000.0)}, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the stored array: the CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.npz' is empty \(0 bytes\); expected a "
                                         r"minidl checkpoint"):
        load(path)


def test_foreign_files(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, weight=np.ones(3))
    with pytest.raises(ValueError, match=r"plain\.npz' is an \.npz file but not a minidl "
                                         r"checkpoint .*'weight'"):
        load(plain)
    text = tmp_path / "notes.txt"
    text.write_text("epoch 3\n")
    with pytest.raises(ValueError, match=r"notes\.txt' is not a minidl checkpoint: expected "
                                         r"an \.npz \(zip\) file"):
        load(text)
    npy = tmp_path / "w.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(ValueError, match="not a minidl checkpoint"):
        load(npy)
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load(tmp_path / "missing.npz")


def _rewrite_header(path, **changes):
    """Rewrite a checkpoint with some header fields changed (the format is public)."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with np.load(path) as npz:
        header = json.loads(npz["__minidl_header__"].tobytes().decode("utf-8"))
    header.update(changes)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            if name == "__minidl_header__.npy":
                with zf.open(name, "w") as f:
                    np.lib.format.write_array(f, np.frombuffer(
                        json.dumps(header).encode(), dtype=np.uint8))
            else:
                zf.writestr(name, data)


def test_newer_format_version(tmp_path):
    path = tmp_path / "future.npz"
    save({"epoch": 1}, path)
    _rewrite_header(path, version=2)
    with pytest.raises(ValueError, match=r"future\.npz' has checkpoint format version 2, "
                                         r"newer than this minidl reads \(up to 1\)"):
        load(path)


def test_wrong_magic(tmp_path):
    path = tmp_path / "other.npz"
    save({"epoch": 1}, path)
    _rewrite_header(path, magic="someone-else")
    with pytest.raises(ValueError, match="magic 'someone-else', expected 'minidl-checkpoint'"):
        load(path)


def test_unsupported_objects_are_named_by_place(tmp_path):
    with pytest.raises(TypeError, match=r"type object at \['model'\]\['layer'\]\[1\]"):
        save({"model": {"layer": [np.ones(1), object()]}}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match=r"dict key \(1, 2\) of type tuple"):
        save({(1, 2): 3}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="dtype object"):
        save({"a": np.array([None, 1], dtype=object)}, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


@settings(max_examples=15, deadline=None)
@given(arrays=st.lists(hnp.arrays(
    dtype=st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int32, np.int64,
                           np.uint16, np.bool_, np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)), max_size=4),
    names=st.lists(st.text(max_size=6), min_size=4, max_size=4, unique=True))
def test_random_arrays_round_trip_bit_exact(arrays, names):
    obj = {name: a for name, a in zip(names, arrays)}
    obj["as_tensors"] = [md.tensor(a) for a in arrays if a.dtype != np.float16]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "r.npz")
        save(obj, path)
        _assert_same(obj, load(path))


def test_resuming_a_model_from_a_checkpoint_is_exact(tmp_path):
    from minidl import nn

    def make():
        md.manual_seed(1)
        model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                        weight_decay=1e-3)
        return model, opt, optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    rng = np.random.default_rng(0)
    batches = [(md.tensor(rng.standard_normal((6, 3)).astype(np.float32)),
                md.tensor(rng.standard_normal((6, 2)).astype(np.float32))) for _ in range(6)]

    def train(model, opt, sched, part):
        for x, y in part:
            opt.zero_grad()
            r = model(x) - y
            (r * r).mean().backward()
            opt.step()
            sched.step()

    model, opt, sched = make()
    train(model, opt, sched, batches)
    straight = model.state_dict()

    model, opt, sched = make()
    train(model, opt, sched, batches[:3])
    save({"model": model.state_dict(), "optimizer": opt.state_dict(),
          "scheduler": sched.state_dict(), "step": 3}, tmp_path / "mid.npz")
    model, opt, sched = make()
    ckpt = load(tmp_path / "mid.npz")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    train(model, opt, sched, batches[ckpt["step"]:])
    resumed = model.state_dict()
    assert list(straight) == list(resumed)
    for key in straight:
        assert np.array_equal(straight[key].numpy(), resumed[key].numpy()), key

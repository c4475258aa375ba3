"""Devices, creation functions, seeds, and the promise that CPU work never touches CUDA."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minidl as md
from minidl.backend import Device


def test_device_parsing():
    assert Device.parse("cpu") == Device("cpu")
    assert Device.parse("cuda") == Device("cuda", 0)
    assert Device.parse("CUDA:1") == Device("cuda", 1)
    assert str(Device.parse("cuda:1")) == "cuda:1"
    assert Device("cpu") == "cpu"
    for bad in ("gpu", "cuda:x", "cpu:0", ""):
        with pytest.raises(ValueError, match="device"):
            Device.parse(bad)
    with pytest.raises(TypeError, match="device"):
        Device.parse(3)


def test_import_and_cpu_work_never_import_cupy():
    code = ("import sys, minidl as md\n"
            "x = md.randn(3, 3, requires_grad=True)\n"
            "(x @ x).sum().backward()\n"
            "assert 'cupy' not in sys.modules, 'cupy was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_device_from_environment():
    code = "import minidl as md; print(md.get_default_device())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "MINIDL_DEVICE": "cpu"}, check=True)
    assert out.stdout.strip() == "cpu"


def test_manual_seed_reproduces_and_is_independent_of_numpy_global_state():
    md.manual_seed(5)
    a = md.randn(4).numpy()
    np.random.seed(123)
    np.random.standard_normal(10)
    md.manual_seed(5)
    b = md.randn(4).numpy()
    assert (a == b).all()
    md.manual_seed(6)
    assert not (md.randn(4).numpy() == a).all()


def test_creation_functions(device):
    assert md.zeros(2, 3, device=device).numpy().tolist() == [[0] * 3] * 2
    assert md.ones((2,), device=device).dtype == np.float32
    assert md.full((2, 2), 7, device=device).dtype == np.int64
    assert md.arange(5, device=device).numpy().tolist() == [0, 1, 2, 3, 4]
    assert md.arange(0, 1, 0.5, device=device).dtype == np.float32
    assert md.eye(3, device=device).numpy().trace() == 3
    x = md.rand(1000, device=device).numpy()
    assert 0 <= x.min() and x.max() < 1
    assert md.zeros_like(md.ones(2, dtype="float64", device=device)).dtype == np.float64
    assert md.randn(2, 2, device=device, requires_grad=True).requires_grad
    with pytest.raises(ValueError, match="size"):
        md.zeros(-1)


def test_tensor_dtypes_and_conversions(device):
    assert md.tensor([1.5, 2], device=device).dtype == np.float32
    assert md.tensor([1, 2], device=device).dtype == np.int64
    assert md.tensor([True], device=device).dtype == np.bool_
    assert md.tensor(np.ones(2), device=device).dtype == np.float64   # arrays keep dtype
    assert md.tensor([1, 2], dtype="float64", device=device).dtype == np.float64
    x = md.tensor([[1.0, 2.0]], device=device)
    assert x.shape == (1, 2) and x.ndim == 2 and x.numel() == 2
    assert x.sum().item() == 3.0 and isinstance(x.numpy(), np.ndarray)
    assert "tensor(" in repr(x)
    with pytest.raises(TypeError, match="objects|numeric"):
        md.tensor([object()])
    with pytest.raises(ValueError, match="one element"):
        x.item()


def test_tensor_copy_is_independent(device):
    a = np.ones(3)
    x = md.tensor(a, device=device)
    a[0] = 5
    assert x.numpy()[0] == 1


def test_setitem_takes_numbers_lists_arrays_and_tensors_from_any_device(device):
    # As in PyTorch, a NumPy array or a tensor on the other device is copied over (CuPy
    # alone refuses a host array in an assignment to a GPU array, and the reverse).
    x = md.zeros(5, device=device)
    x[0] = 1.5
    x[1:3] = [2.0, 3.0]
    x[3:] = np.array([4.0, 5.0], dtype=np.float32)
    assert x.numpy().tolist() == [1.5, 2.0, 3.0, 4.0, 5.0]
    for other in ["cpu"] + (["cuda"] if md.backend.cuda_available() else []):
        x[:2] = md.tensor([7.0, 8.0], device=other)
        assert x.numpy()[:2].tolist() == [7.0, 8.0] and x.device == md.Device(device)


def test_inplace_update_of_leaf_requires_no_grad(device):
    x = md.ones(3, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        x.zero_()
    with md.no_grad():
        x.fill_(2.0)
        x[0] = 5
    assert x.numpy().tolist() == [5, 2, 2]

"""GPU benchmark of minidl: our CUDA kernels, conv2d, and two training steps, against PyTorch.

One command on a machine with a CUDA GPU, CuPy and (optionally) PyTorch:

    python benchmarks/bench_gpu.py            # everything, a few minutes
    python benchmarks/bench_gpu.py --quick    # smaller shapes, fewer repeats
    python benchmarks/bench_gpu.py --only kernels --dtype float64

It prints one JSON object per measurement, then a table:

* kernels: each launcher of minidl.kernels on ResNet-sized tensors: time, achieved memory
  bandwidth (the bytes it must read and write once, divided by its time), that bandwidth
  as a fraction of a measured device-to-device copy, and PyTorch's time for the same op;
* conv2d: minidl's F.conv2d forward + backward (im2col + cuBLAS) against torch (cuDNN);
* models: one SGD training step (forward, loss, backward, update) of ResNet-18 (224x224,
  batch 64) and CIFAR ResNet-20 (32x32, batch 128), minidl against PyTorch.

ratio = minidl time / PyTorch time (1.0 means as fast; 2.0 means twice as slow).
PyTorch runs with TF32 off, so both sides compute in true float32. Times come from CUDA
events around `repeat` calls after `warmup` calls. Exit status 1 if any benchmark failed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import numpy as np

# minidl must be installed (pip install -e . ; benchmarks/gpu_check.sh does it): the
# package minidl.kernels lives in kernels/ and is mapped there only by installation.

RESULTS: list = []


def emit(record: dict) -> None:
    RESULTS.append(record)
    print(json.dumps(record), flush=True)


def cupy_time(fn, warmup: int, repeat: int) -> float:
    """Milliseconds per call of fn, from CUDA events on CuPy's current stream."""
    import cupy
    for _ in range(warmup):
        fn()
    cupy.cuda.get_current_stream().synchronize()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(repeat):
        fn()
    end.record()
    end.synchronize()
    return cupy.cuda.get_elapsed_time(start, end) / repeat


def torch_time(fn, warmup: int, repeat: int) -> float:
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeat):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / repeat


def load_torch():
    """torch with TF32 off and a GPU, or None (then only minidl's numbers are printed)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch


def copy_bandwidth(nbytes: int, warmup: int, repeat: int) -> float:
    """GB/s of a device-to-device copy (read + write), the practical ceiling."""
    import cupy
    a = cupy.ones(nbytes // 4, dtype=cupy.float32)
    b = cupy.empty_like(a)
    ms = cupy_time(lambda: cupy.copyto(b, a), warmup, repeat)
    return 2 * a.nbytes / ms / 1e6


def run_guarded(bench: str, name: str, fn) -> None:
    try:
        fn()
    except Exception as exc:  # one failing benchmark must not hide the others
        emit({"bench": bench, "name": name, "error": f"{type(exc).__name__}: {exc}",
              "trace": traceback.format_exc(limit=3)})


# ---- kernels ---------------------------------------------------------------------------
def bench_kernels(args, torch) -> None:
    import cupy

    from minidl.kernels import (activation, batchnorm, dropout, im2col, pool,
                                softmax_xent)
    dtype = np.dtype(args.dtype)
    tdtype = getattr(torch, args.dtype) if torch else None
    n, c, h = (16, 64, 56) if args.quick else (64, 64, 56)
    rng = cupy.random.default_rng(0)
    x = rng.standard_normal((n, c, h, h), dtype=dtype)
    gy_same = rng.standard_normal(x.shape, dtype=dtype)
    peak = copy_bandwidth(1 << 28, args.warmup, args.repeat)
    emit({"bench": "kernels", "name": "device_copy", "gbps": round(peak, 1)})
    xt = torch.as_tensor(x, device="cuda") if torch else None

    def one(name, fn, nbytes, torch_fn=None):
        def body():
            ms = cupy_time(fn, args.warmup, args.repeat)
            gbps = nbytes / ms / 1e6
            rec = {"bench": "kernels", "name": name, "dtype": dtype.name,
                   "ms": round(ms, 4), "gbps": round(gbps, 1),
                   "of_copy": round(gbps / peak, 3)}
            if torch_fn is not None and torch is not None:
                tms = torch_time(torch_fn, args.warmup, args.repeat)
                rec.update(torch_ms=round(tms, 4), ratio=round(ms / tms, 3))
            emit(rec)
        run_guarded("kernels", name, body)

    F = torch.nn.functional if torch else None
    # im2col / col2im of a 3x3, padding 1 convolution.
    cols = im2col.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1)
    one("im2col 3x3", lambda: im2col.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1),
        x.nbytes + cols.nbytes,
        (lambda: F.unfold(xt, 3, padding=1)) if torch else None)
    gcols = rng.standard_normal(cols.shape, dtype=dtype)
    gct = torch.randn(n, c * 9, h * h, device="cuda", dtype=tdtype) if torch else None
    one("col2im 3x3", lambda: im2col.col2im(gcols, x.shape, 3, 3, 1, 1, 1, 1, 1, 1),
        x.nbytes + gcols.nbytes,
        (lambda: F.fold(gct, (h, h), 3, padding=1)) if torch else None)
    # Pooling: 3x3 stride 2 max (ResNet's stem) and 2x2 average.
    y, idx = pool.max_pool2d_forward(x, 3, 3, 2, 2, 1, 1, 1, 1)
    one("max_pool2d_forward 3x3/2", lambda: pool.max_pool2d_forward(x, 3, 3, 2, 2, 1, 1, 1, 1),
        x.nbytes + y.nbytes + idx.nbytes,
        (lambda: F.max_pool2d(xt, 3, 2, 1, return_indices=True)) if torch else None)
    gy = rng.standard_normal(y.shape, dtype=dtype)
    one("max_pool2d_backward 3x3/2", lambda: pool.max_pool2d_backward(gy, idx, x.shape),
        gy.nbytes + idx.nbytes + x.nbytes)
    ya = pool.avg_pool2d_forward(x, 2, 2, 2, 2, 0, 0)
    one("avg_pool2d_forward 2x2/2", lambda: pool.avg_pool2d_forward(x, 2, 2, 2, 2, 0, 0),
        x.nbytes + ya.nbytes, (lambda: F.avg_pool2d(xt, 2, 2)) if torch else None)
    gya = rng.standard_normal(ya.shape, dtype=dtype)
    one("avg_pool2d_backward 2x2/2",
        lambda: pool.avg_pool2d_backward(gya, x.shape, 2, 2, 2, 2, 0, 0),
        gya.nbytes + x.nbytes)
    # BatchNorm (training): statistics, normalise, fused backward.
    w = cupy.ones(c, dtype=dtype)
    b = cupy.zeros(c, dtype=dtype)
    mean, var = batchnorm.batch_norm_stats(x)
    one("batch_norm_stats", lambda: batchnorm.batch_norm_stats(x), x.nbytes)
    one("batch_norm_forward", lambda: batchnorm.batch_norm_forward(x, mean, var, w, b, 1e-5),
        2 * x.nbytes)
    if torch:
        wt, bt = torch.ones(c, device="cuda", dtype=tdtype), torch.zeros(
            c, device="cuda", dtype=tdtype)
    one("batch_norm stats+forward",
        lambda: batchnorm.batch_norm_forward(x, *batchnorm.batch_norm_stats(x), w, b, 1e-5),
        2 * x.nbytes,
        (lambda: F.batch_norm(xt, None, None, wt, bt, training=True)) if torch else None)
    one("batch_norm_backward",
        lambda: batchnorm.batch_norm_backward(gy_same, x, mean, var, w, 1e-5), 3 * x.nbytes)
    # Dropout.
    yd, mask = dropout.dropout_forward(x, 0.5, seed=1)
    one("dropout_forward", lambda: dropout.dropout_forward(x, 0.5, seed=1),
        2 * x.nbytes + mask.nbytes, (lambda: F.dropout(xt, 0.5)) if torch else None)
    one("dropout_backward", lambda: dropout.dropout_backward(gy_same, mask, 0.5),
        2 * x.nbytes + mask.nbytes)
    # Softmax cross-entropy: ImageNet-sized logits.
    rows = 1024 if args.quick else 8192
    logits = rng.standard_normal((rows, 1000), dtype=dtype)
    target = cupy.asarray(np.random.default_rng(0).integers(0, 1000, rows))
    loss, prob = softmax_xent.softmax_xent_forward(logits, target)
    lt = torch.as_tensor(logits, device="cuda") if torch else None
    tt = torch.as_tensor(target, device="cuda") if torch else None
    one("softmax_xent_forward", lambda: softmax_xent.softmax_xent_forward(logits, target),
        2 * logits.nbytes, (lambda: F.cross_entropy(lt, tt, reduction="none")) if torch
        else None)
    one("softmax_xent_backward",
        lambda: softmax_xent.softmax_xent_backward(prob, target, 1.0 / rows),
        2 * logits.nbytes)
    # Activations.
    for name, fn, nb, tfn in (
            ("relu_forward", lambda: activation.relu_forward(x), 2,
             (lambda: F.relu(xt)) if torch else None),
            ("relu_backward", lambda: activation.relu_backward(x, gy_same), 3, None),
            ("gelu_forward", lambda: activation.gelu_forward(x), 2,
             (lambda: F.gelu(xt)) if torch else None),
            ("gelu_backward", lambda: activation.gelu_backward(x, gy_same), 3, None),
            ("sigmoid_forward", lambda: activation.sigmoid_forward(x), 2,
             (lambda: torch.sigmoid(xt)) if torch else None)):
        one(name, fn, nb * x.nbytes, tfn)


# ---- conv2d ----------------------------------------------------------------------------
def bench_conv(args, torch) -> None:
    import minidl as md
    import minidl.nn.functional as MF
    configs = [("3x3 64->64 56x56", (64, 64, 56, 56), (64, 64, 3, 3), 1, 1),
               ("3x3/2 128->256 28x28", (64, 128, 28, 28), (256, 128, 3, 3), 2, 1),
               ("1x1 256->64 56x56", (64, 256, 56, 56), (64, 256, 1, 1), 1, 0),
               ("7x7/2 3->64 224x224", (64, 3, 224, 224), (64, 3, 7, 7), 2, 3)]
    if args.quick:
        configs = [(n, (16,) + x[1:], w, s, p) for n, x, w, s, p in configs[:2]]
    for name, xs, ws, stride, pad in configs:
        def body(name=name, xs=xs, ws=ws, stride=stride, pad=pad):
            rng = np.random.default_rng(0)
            x_np = rng.standard_normal(xs).astype(args.dtype)
            w_np = (rng.standard_normal(ws) * 0.1).astype(args.dtype)
            x = md.tensor(x_np, device="cuda", requires_grad=True)
            w = md.tensor(w_np, device="cuda", requires_grad=True)

            def step():
                x.grad = w.grad = None
                y = MF.conv2d(x, w, stride=stride, padding=pad)
                y.backward(md.ones_like(y))
            ms = cupy_time(step, args.warmup, args.repeat)
            rec = {"bench": "conv2d fwd+bwd", "name": name, "dtype": args.dtype,
                   "ms": round(ms, 3)}
            if torch is not None:
                xt = torch.tensor(x_np, device="cuda", requires_grad=True)
                wt = torch.tensor(w_np, device="cuda", requires_grad=True)

                def tstep():
                    xt.grad = wt.grad = None
                    yt = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=pad)
                    yt.backward(torch.ones_like(yt))
                tms = torch_time(tstep, args.warmup, args.repeat)
                rec.update(torch_ms=round(tms, 3), ratio=round(ms / tms, 2))
            emit(rec)
        run_guarded("conv2d fwd+bwd", name, body)


# ---- training steps --------------------------------------------------------------------
def _torch_resnet(torch, kind: str, num_classes: int):
    """torchvision's resnet18 if present, else a local BasicBlock ResNet of the same shape;
    CIFAR ResNet-20 (He et al. 2016: 3 stages of 3 blocks, 16/32/64 channels, option A
    shortcuts: subsample and zero-pad the channels, no parameters) locally."""
    nn = torch.nn
    if kind == "resnet18":
        try:
            import torchvision
            return torchvision.models.resnet18(num_classes=num_classes)
        except ImportError:
            pass

    class PadShortcut(nn.Module):
        def __init__(self, extra):
            super().__init__()
            self.extra = extra

        def forward(self, x):
            x = x[:, :, ::2, ::2]
            return nn.functional.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra
                                         - self.extra // 2))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride, option_a):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            if stride == 1 and cin == cout:
                self.short = nn.Identity()
            elif option_a:
                self.short = PadShortcut(cout - cin)
            else:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                           nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            return torch.relu(self.b2(self.c2(y)) + self.short(x))

    if kind == "resnet18":
        stem = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                nn.MaxPool2d(3, 2, 1)]
        widths, blocks, cin = (64, 128, 256, 512), 2, 64
    else:
        stem = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
        widths, blocks, cin = (16, 32, 64), 3, 16
    layers = []
    for i, wd in enumerate(widths):
        for j in range(blocks):
            layers.append(Block(cin, wd, 2 if (j == 0 and i > 0) else 1,
                                option_a=kind != "resnet18"))
            cin = wd
    return nn.Sequential(*stem, *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(cin, num_classes))


def bench_models(args, torch) -> None:
    import minidl as md
    import minidl.nn.functional as MF
    from minidl import models, optim
    configs = [("resnet18", "resnet18", 64, 224, 1000),
               ("cifar_resnet20", "cifar_resnet20", 128, 32, 10)]
    if args.quick:
        configs = [("resnet18", "resnet18", 8, 224, 1000),
                   ("cifar_resnet20", "cifar_resnet20", 32, 32, 10)]
    for name, factory, batch, size, classes in configs:
        def body(name=name, factory=factory, batch=batch, size=size, classes=classes):
            rng = np.random.default_rng(0)
            x_np = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
            t_np = rng.integers(0, classes, batch)
            md.manual_seed(0)
            model = getattr(models, factory)(num_classes=classes).to("cuda")
            model.train()
            opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            x = md.tensor(x_np, device="cuda")
            t = md.tensor(t_np, device="cuda")

            def step():
                opt.zero_grad()
                loss = MF.cross_entropy(model(x), t)
                loss.backward()
                opt.step()
            t0 = time.perf_counter()
            ms = cupy_time(step, args.warmup, args.model_repeat)
            rec = {"bench": "train step", "name": f"{name} b{batch} {size}x{size}",
                   "ms": round(ms, 2), "images_per_s": round(batch / ms * 1e3, 1),
                   "wall_s": round(time.perf_counter() - t0, 1)}
            if torch is not None:
                tm = _torch_resnet(torch, factory, classes).cuda().train()
                topt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
                xt = torch.tensor(x_np, device="cuda")
                tt = torch.tensor(t_np, device="cuda")

                def tstep():
                    topt.zero_grad()
                    torch.nn.functional.cross_entropy(tm(xt), tt).backward()
                    topt.step()
                tms = torch_time(tstep, args.warmup, args.model_repeat)
                rec.update(torch_ms=round(tms, 2), ratio=round(ms / tms, 2))
            emit(rec)
        run_guarded("train step", name, body)


# ---- main ------------------------------------------------------------------------------
def print_table() -> None:
    cols = ["bench", "name", "dtype", "ms", "gbps", "of_copy", "torch_ms", "ratio", "error"]
    rows = [[str(r.get(c, "")) for c in cols] for r in RESULTS]
    widths = [max([len(c)] + [min(len(row[i]), 60) for row in rows])
              for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths))
    print("\n" + line + "\n" + "-" * len(line))
    for row in rows:
        print("  ".join(v[:60].ljust(w) for v, w in zip(row, widths)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["kernels", "conv", "models"], action="append",
                        help="run only these parts (repeatable; default: all)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                        help="element type of the kernel and conv benchmarks")
    parser.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--model-repeat", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the JSON lines here")
    args = parser.parse_args(argv)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    args.repeat = args.repeat if args.repeat is not None else (3 if args.quick else 20)
    args.model_repeat = args.model_repeat or (2 if args.quick else 5)

    from minidl.backend import cuda_unavailable_reason
    reason = cuda_unavailable_reason()
    if reason:
        print(f"bench_gpu: no GPU: {reason}", file=sys.stderr)
        return 2
    import cupy
    torch = load_torch()
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    emit({"bench": "env", "name": props["name"].decode() if isinstance(
        props["name"], bytes) else str(props["name"]), "cupy": cupy.__version__,
        "torch": torch.__version__ if torch else None,
        "minidl_kernels": os.environ.get("MINIDL_KERNELS", "1"),
        "tf32": False if torch else None})
    parts = args.only or ["kernels", "conv", "models"]
    if "kernels" in parts:
        run_guarded("kernels", "setup", lambda: bench_kernels(args, torch))
    if "conv" in parts:
        bench_conv(args, torch)
    if "models" in parts:
        bench_models(args, torch)
    print_table()
    if args.json:
        with open(args.json, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in RESULTS)
    failed = [r for r in RESULTS if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

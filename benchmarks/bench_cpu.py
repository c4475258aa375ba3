"""minidl on the CPU against PyTorch and against the machine's own GEMM rate.

Workloads (float32; the shapes of the CPU performance issue):

  gemm                NumPy matmul GFLOP/s: 2048^3, and the three im2col-shaped GEMMs of
                      the conv below (forward, weight gradient, input gradient); and a
                      single-threaded 1024^3 alone against two at once, which shows
                      whether the cores are really there in this run (core_scaling)
  conv2d fwd          N=32, 64->64 channels, 32x32, 3x3, padding 1, bias (no_grad)
  conv2d fwd+bwd      the same, forward and backward (input, weight and bias gradients)
  batchnorm2d         nn.BatchNorm2d(64), training mode, (32, 64, 32, 32), fwd+bwd
  maxpool2d           nn.MaxPool2d(2) on (32, 64, 32, 32), fwd+bwd
  lenet5 step         models.lenet5() training step at batch 128 (28x28x1 inputs)
  resnet18 step       CIFAR ResNet-18 training step at batch 32 (see _rss_step.py)
  resnet18 RSS        peak resident memory of a fresh process running that step

A training step is forward, cross-entropy, zero_grad, backward, SGD(momentum 0.9) step.
PyTorch runs the same networks with the same weights (copied from minidl, and the first
losses are compared) and the same batches, with torch.set_num_threads equal to NumPy's
BLAS thread count. minidl and PyTorch runs alternate so both see the same machine load;
times are medians. GFLOP/s counts the multiply-adds of convolutions and linear layers
(2 per MAC; backward: the weight gradient, and the input gradient where the input needs
one) and is compared with the 2048^3 GEMM rate measured in the same run. Peak RSS is read
in a separate process per framework (benchmarks/_rss_step.py).

Prints one JSON line per measurement, then a table with the ratio minidl/PyTorch and the
issue's target for each row. This machine may be shared: compare ratios from one run and
repeat when in doubt.

    python benchmarks/bench_cpu.py [--only conv,bn,pool,lenet,resnet,rss] [--repeats 15]
                                   [--step-repeats 7] [--no-torch] [--profile lenet]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from _timing import interleaved  # noqa: E402  (first: it sets OMP_WAIT_POLICY)

import minidl as md  # noqa: E402
import minidl.nn.functional as F  # noqa: E402
from minidl import models, nn  # noqa: E402

import _rss_step  # noqa: E402

N, C, O, HW, K = 32, 64, 64, 32, 3

# The targets: the largest acceptable minidl/PyTorch ratio of each row.
TARGETS = {"conv2d fwd+bwd": 1.6, "batchnorm2d fwd+bwd": 2.0, "maxpool2d fwd+bwd": 2.0,
           "lenet5 step b128": 2.0, "resnet18 step b32": 1.5, "resnet18 peak RSS": 1.5}
# conv2d fwd+bwd must also reach this fraction of the 2048^3 GEMM rate.
GEMM_FRACTION_TARGET = 0.6


# ---- the machine ----------------------------------------------------------------------
def blas_info() -> dict:
    """NumPy's BLAS: library, thread count and kernel (OpenBLAS's 'architecture')."""
    info = {"blas_threads": None, "blas": None, "blas_kernel": None}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        info["blas_note"] = "threadpoolctl not installed: BLAS threads assumed = cores"
        info["blas_threads"] = os.cpu_count()
        return info
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            info.update(blas_threads=int(pool["num_threads"]),
                        blas=f"{pool.get('internal_api')} {pool.get('version')}",
                        blas_kernel=pool.get("architecture"))
            break
    if info["blas_threads"] is None:
        info["blas_threads"] = os.cpu_count()
    return info


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gemm_rates(repeats: int) -> dict:
    """GFLOP/s of NumPy float32 matmul: 2048^3 and the conv's three im2col GEMMs."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2048, 2048), dtype=np.float32) for _ in range(2))
    ckk, cols = C * K * K, N * HW * HW
    w = rng.standard_normal((O, ckk), dtype=np.float32)
    x_cols = rng.standard_normal((ckk, cols), dtype=np.float32)
    gy_rows = rng.standard_normal((O, cols), dtype=np.float32)
    fns = {"sgemm 2048^3": lambda: a @ b,
           "sgemm conv fwd (64x576)@(576x32768)": lambda: w @ x_cols,
           "sgemm conv dW (64x32768)@(32768x576)": lambda: gy_rows @ x_cols.T,
           "sgemm conv dcols (576x64)@(64x32768)": lambda: w.T @ gy_rows}
    flops = {"sgemm 2048^3": 2 * 2048 ** 3}
    for name in list(fns)[1:]:
        flops[name] = 2 * O * ckk * cols
    t = interleaved(fns, repeats)
    return {name: flops[name] / t[name]["median"] / 1e9 for name in fns}


def gemm_2048():
    """A callable that makes one 2048^3 float32 product into a preallocated output, and
    its FLOP count: the reference rate, timed in the same turns as a workload."""
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal((2048, 2048), dtype=np.float32) for _ in range(2))
    out = np.empty((2048, 2048), dtype=np.float32)
    return (lambda: np.matmul(a, b, out=out)), 2 * 2048 ** 3


def one_core_efficiency(floor_fn, floor_flops: int, repeats: int) -> dict:
    """The rate of a workload's recorded products (its GEMM floor) on one core, as a
    fraction of the 2048^3 rate on one core, the two timed in alternating turns.

    minidl's convolutions run their products single-threaded, one share of the batch
    per thread, so this is the fraction of the GEMM rate that their products reach
    before any other work: an upper bound on the workload's own fraction (the products
    of the conv2d row: im2col chunks of 1024 columns, 64 rows). Needs threadpoolctl
    (else: {})."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return {}
    reference, reference_flops = gemm_2048()
    with threadpool_limits(limits=1, user_api="blas"):
        t = interleaved({"floor": floor_fn, "2048": reference}, repeats)
    floor_rate = floor_flops / t["floor"]["median"] / 1e9
    reference_rate = reference_flops / t["2048"]["median"] / 1e9
    return {"gemm_floor_1core_gflops": round(floor_rate, 1),
            "sgemm_2048_1core_gflops": round(reference_rate, 1),
            "gemm_floor_1core_fraction": round(floor_rate / reference_rate, 3)}


def core_scaling(repeats: int, size: int = 1024) -> dict:
    """Does the machine give two threads two cores' worth of GEMM right now?

    GFLOP/s of a single-threaded size^3 sgemm run alone, and of each of two run at the
    same time in two threads. On this project's 2-vCPU machine the second number was
    0.9-1.0x the first in some phases and 0.5x in others (the two vCPUs then shared one
    physical core, or the host was busy): in such a phase two threads do one core's work,
    for PyTorch and minidl alike, and every time in the run is longer. Printed so that a
    run can be read in the light of its phase. Needs threadpoolctl (else: {})."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return {}
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(1)
    a = rng.standard_normal((size, size), dtype=np.float32)
    bs = [rng.standard_normal((size, size), dtype=np.float32) for _ in range(2)]
    outs = [np.empty((size, size), dtype=np.float32) for _ in range(2)]

    def gemm(i):
        start = time.perf_counter()
        np.matmul(a, bs[i], out=outs[i])
        return time.perf_counter() - start
    alone, together = [], []
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(1) as pool:
        gemm(0)
        for _ in range(repeats):
            alone.append(gemm(0))
            other = pool.submit(gemm, 1)
            together += [gemm(0), other.result()]
    flops = 2 * size ** 3
    return {f"sgemm {size}^3, 1 thread, alone": flops / statistics.median(alone) / 1e9,
            f"sgemm {size}^3, 1 thread, 2 at once (each)":
                flops / statistics.median(together) / 1e9}


# ---- FLOP counting --------------------------------------------------------------------
def train_flops(model, x) -> int:
    """2 x the multiply-adds of one training step's convolutions and linear layers.

    Forward: every MAC of every conv/linear layer. Backward: the weight gradient costs
    as much again, and so does the input gradient, except for the first layer, whose
    input (the data) needs none.
    """
    macs = []

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs.append(output.data.size * (module.in_channels // module.groups) * kh * kw)
        else:
            macs.append(output.data.size * module.in_features)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with md.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return 2 * (3 * sum(macs) - macs[0])


# ---- the GEMM floor -----------------------------------------------------------------------
def _layout(a) -> tuple:
    """(shape, dtype, transposed): what BLAS is told about an operand. transposed: the
    last two axes are a transposed view of a row-major buffer."""
    transposed = a.ndim >= 2 and a.strides[-1] != a.itemsize and a.strides[-2] == a.itemsize
    return a.shape, a.dtype.str, transposed


def _operand(shape, dtype, transposed):
    if transposed:
        return np.ones(shape[:-2] + (shape[-1], shape[-2]), dtype=dtype).swapaxes(-1, -2)
    return np.ones(shape, dtype=dtype)


def gemm_floor(fn):
    """The matrix products that one call of ``fn`` makes, as one callable that makes
    them alone, and their FLOP count.

    While ``fn`` runs once, ``numpy.matmul`` (which conv2d calls as ``xp.matmul``)
    records the shape and memory order of each operand. The ``a @ b`` of the linear
    layers does not go through that name and is not seen: LeNet-5's floor leaves out
    its three linear layers, ResNet-18's its last one (0.01% of its FLOPs). The replay
    calls matmul with operands of the same shapes and orders into preallocated outputs,
    and does nothing else: no im2col, no layout copies, no elementwise work. Its time is
    what the same products cost with everything else free, so floor / PyTorch is the
    best ratio that any design built on these NumPy GEMMs can reach on that workload,
    measured in the same run. (Operands of equal layout share one array and stay warm in
    the cache: if anything, the floor is low.)
    """
    real, calls = np.matmul, []

    def recording(a, b, *args, **kwargs):
        out = real(a, b, *args, **kwargs)
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.ndim >= 2 \
                and b.ndim >= 2:
            calls.append((_layout(a), _layout(b), out.shape, out.dtype.str, a.shape[-1]))
        return out

    np.matmul = recording
    try:
        fn()
    finally:
        np.matmul = real
    operands, replay, flops = {}, [], 0
    for a_layout, b_layout, out_shape, out_dtype, inner in calls:
        out_key = ("out", out_shape, out_dtype)     # never an input's array
        for key, layout in ((a_layout, a_layout), (b_layout, b_layout),
                            (out_key, (out_shape, out_dtype, False))):
            if key not in operands:
                operands[key] = _operand(*layout)
        replay.append((operands[a_layout], operands[b_layout], operands[out_key]))
        flops += 2 * int(np.prod(out_shape)) * inner

    def run():
        for a, b, out in replay:
            real(a, b, out=out)
    return run, flops


# ---- workloads: each returns (minidl callable, torch callable or None, extra fields) -----
def _randn(shape, seed, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def conv_workloads(torch):
    xd, wd, bd = _randn((N, C, HW, HW), 0), _randn((O, C, K, K), 1, 0.05), _randn((O,), 2)
    gyd = _randn((N, O, HW, HW), 3)
    x, w, b = (md.tensor(a, requires_grad=True) for a in (xd, wd, bd))
    gy = md.tensor(gyd)
    conv_flop = 2 * N * O * HW * HW * C * K * K

    def md_fwd():
        with md.no_grad():
            F.conv2d(x, w, b, padding=1)

    def md_fwd_bwd():
        x.grad = w.grad = b.grad = None
        F.conv2d(x, w, b, padding=1).backward(gy)

    cases = {"conv2d fwd": (md_fwd, None, {"flops": conv_flop}),
             "conv2d fwd+bwd": (md_fwd_bwd, None, {"flops": 3 * conv_flop})}
    if torch is not None:
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xd, wd, bd))
        tgy = torch.tensor(gyd)

        def t_fwd():
            with torch.no_grad():
                torch.nn.functional.conv2d(tx, tw, tb, padding=1)

        def t_fwd_bwd():
            tx.grad = tw.grad = tb.grad = None
            torch.nn.functional.conv2d(tx, tw, tb, padding=1).backward(tgy)

        cases["conv2d fwd"] = (md_fwd, t_fwd, {"flops": conv_flop})
        cases["conv2d fwd+bwd"] = (md_fwd_bwd, t_fwd_bwd, {"flops": 3 * conv_flop})
    return cases


def _layer_workload(name, md_layer, torch_layer, x_shape, seed):
    """fwd+bwd of one layer (in training mode) on a random input and upstream gradient."""
    xd = _randn(x_shape, seed)
    x = md.tensor(xd, requires_grad=True)
    with md.no_grad():
        gyd = _randn(md_layer(x).shape, seed + 1)
    gy = md.tensor(gyd)

    def md_run():
        x.grad = None
        md_layer.zero_grad()
        md_layer(x).backward(gy)

    if torch_layer is None:
        return {name: (md_run, None, {})}
    import torch
    tx, tgy = torch.tensor(xd, requires_grad=True), torch.tensor(gyd)

    def t_run():
        tx.grad = None
        torch_layer.zero_grad()
        torch_layer(tx).backward(tgy)

    return {name: (md_run, t_run, {})}


def bn_workload(torch):
    return _layer_workload("batchnorm2d fwd+bwd", nn.BatchNorm2d(C),
                           torch.nn.BatchNorm2d(C) if torch else None, (N, C, HW, HW), 10)


def pool_workload(torch):
    return _layer_workload("maxpool2d fwd+bwd", nn.MaxPool2d(2),
                           torch.nn.MaxPool2d(2) if torch else None, (N, C, HW, HW), 20)


def torch_lenet5():
    """models.lenet5() (tanh, average pooling) in torch.nn, with the same parameter names."""
    import torch.nn as tnn

    class LeNet5(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(
                tnn.Conv2d(1, 6, 5, padding=2), tnn.Tanh(), tnn.AvgPool2d(2, 2),
                tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2, 2))
            self.avgpool = tnn.AdaptiveAvgPool2d((5, 5))
            self.classifier = tnn.Sequential(
                tnn.Linear(400, 120), tnn.Tanh(), tnn.Linear(120, 84), tnn.Tanh(),
                tnn.Linear(84, 10))

        def forward(self, x):
            return self.classifier(self.avgpool(self.features(x)).flatten(1))

    return LeNet5()


def _copy_weights(md_model, torch_model):
    import torch
    state = {k: torch.from_numpy(v.numpy().copy()) for k, v in md_model.state_dict().items()}
    torch_model.load_state_dict(state)


def _step_workload(name, md_model, torch_model, images, labels):
    md_step = _rss_step.minidl_step(md_model, images, labels)
    extra = {"flops": train_flops(md_model, md.tensor(images))}
    t_step = None
    if torch_model is not None:
        _copy_weights(md_model, torch_model)
        t_step = _rss_step.torch_step(torch_model, images, labels)
        # Same weights, same batch: the first losses must agree, or the comparison is off.
        extra.update(first_loss_minidl=round(md_step(), 5), first_loss_torch=round(t_step(), 5))
    return {name: (md_step, t_step, extra)}


def lenet_workload(torch):
    rng = np.random.default_rng(30)
    images = rng.standard_normal((128, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, 128)
    return _step_workload("lenet5 step b128", models.lenet5(),
                          torch_lenet5() if torch else None, images, labels)


def resnet_workload(torch):
    images, labels = _rss_step.batch(32)
    return _step_workload("resnet18 step b32", _rss_step.minidl_resnet18_cifar(),
                          _rss_step.torch_resnet18_cifar() if torch else None, images, labels)


def rss_rows(torch, threads: int) -> list:
    """Peak RSS of the ResNet-18 step, one fresh process per framework."""
    frameworks = ["minidl"] + (["torch"] if torch is not None else [])
    found = {}
    for fw in frameworks:
        out = subprocess.run([sys.executable, os.path.join(HERE, "_rss_step.py"),
                              "--framework", fw, "--threads", str(threads)],
                             capture_output=True, text=True, check=True)
        found[fw] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(found[fw]), flush=True)
    row = {"record": "result", "workload": "resnet18 peak RSS", "unit": "MB",
           "minidl": found["minidl"]["peak_rss_mb"]}
    if "torch" in found:
        row["torch"] = found["torch"]["peak_rss_mb"]
        row["ratio"] = round(row["minidl"] / row["torch"], 2)
    return [row]


WORKLOADS = {"conv": conv_workloads, "bn": bn_workload, "pool": pool_workload,
             "lenet": lenet_workload, "resnet": resnet_workload}


# ---- output ---------------------------------------------------------------------------
def _verdict(row) -> str:
    target = TARGETS.get(row["workload"])
    if target is None or "ratio" not in row:
        return ""
    ok = row["ratio"] <= target
    if row["workload"] == "conv2d fwd+bwd" and "gemm_fraction" in row:
        ok = ok and row["gemm_fraction"] >= GEMM_FRACTION_TARGET
    return "met" if ok else "MISSED"


def _cores_line(scaling: dict) -> str:
    alone, together = scaling.values()
    return (f"two threads ran {2 * together / alone:.1f} cores' worth of GEMM (2.0: two "
            f"real cores; about 1.0: they shared one); one thread alone {alone:.0f} GFLOP/s")


def print_table(setup, gemm, rows, scaling_after=None):
    print()
    print(f"{setup['cpu']}; {setup['blas']} ({setup['blas_kernel']} kernel), "
          f"{setup['blas_threads']} BLAS threads; torch {setup['torch']} with "
          f"{setup['torch_threads']} threads; load average {setup['load_before']} -> "
          f"{setup['load_after']}")
    for name, rate in gemm.items():
        print(f"  {name:<40}{rate:8.1f} GFLOP/s")
    scaling = {name: rate for name, rate in gemm.items() if ", 1 thread, " in name}
    if scaling:
        print("  at the start: " + _cores_line(scaling))
    if scaling_after:
        print("  at the end:   " + _cores_line(scaling_after))
    print()
    head = (f"{'workload':<22}{'minidl':>10}{'PyTorch':>10}{'ratio':>7}{'target':>8}"
            f"{'':>8}{'GFLOP/s':>9}{'of GEMM':>9}{'min ratio':>11}")
    print(head)
    print("-" * len(head))
    for r in rows:
        unit = r.get("unit", "ms")
        torch_cell = f"{r['torch']:.1f}" if "torch" in r else "-"
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        target = TARGETS.get(r["workload"])
        target_cell = f"<={target:g}" if target else ""
        rate = f"{r['gflops']:.0f}" if "gflops" in r else ""
        frac = f"{r['gemm_fraction']:.0%}" if "gemm_fraction" in r else ""
        min_ratio = f"{r['ratio_of_mins']:.2f}" if "ratio_of_mins" in r else ""
        print(f"{r['workload']:<22}{r['minidl']:>7.1f} {unit:<2}{torch_cell:>10}{ratio:>7}"
              f"{target_cell:>8}{_verdict(r):>8}{rate:>9}{frac:>9}{min_ratio:>11}")
    print("times are medians in ms (RSS in MB); ratio = minidl / PyTorch of the medians "
          "(the targets' measure), min ratio = of the fastest runs; 'of GEMM' = minidl's "
          "GFLOP/s / the 2048^3 sgemm rate timed in the same turns")
    for r in rows:
        if "torch_gemm_fraction" in r:
            print(f"  {r['workload']}: 2048^3 at {r['sgemm_2048_gflops']:.0f} GFLOP/s in its "
                  f"turns; PyTorch's {r['torch_gflops']:.0f} GFLOP/s = "
                  f"{r['torch_gemm_fraction']:.0%} of it; minidl's against the rate at "
                  f"the start: {r['gemm_fraction_vs_start']:.0%}")
    if any("gemm_fraction" in r for r in rows if r["workload"] == "conv2d fwd+bwd"):
        print(f"conv2d fwd+bwd also needs >= {GEMM_FRACTION_TARGET:.0%} of the GEMM rate")
    floors = [r for r in rows if "gemm_floor" in r]
    if floors:
        print("\nGEMM floor: the matmuls of minidl's run, replayed alone (bench_cpu.gemm_floor)")
        for r in floors:
            vs_torch = (f" = {r['gemm_floor_ratio']:.2f}x PyTorch's whole run"
                        if "gemm_floor_ratio" in r else "")
            print(f"  {r['workload']:<22}{r['gemm_floor']:>8.1f} ms at "
                  f"{r['gemm_floor_gflops']:.0f} GFLOP/s{vs_torch}, "
                  f"{r['gemm_floor_share']:.0%} of minidl's")
            if "gemm_floor_1core_fraction" in r:
                print(f"  {'':<22}on one core: {r['gemm_floor_1core_gflops']:.0f} GFLOP/s "
                      f"= {r['gemm_floor_1core_fraction']:.0%} of 2048^3 on one core "
                      f"({r['sgemm_2048_1core_gflops']:.0f})")


def profile(fn, label: str, calls: int = 5, top: int = 25) -> None:
    """cProfile of ``calls`` runs of minidl's callable, by own time."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    print(f"\ncProfile of {calls} x minidl {label} (sorted by own time):")
    print(buf.getvalue())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="conv,bn,pool,lenet,resnet,rss",
                        help="comma-separated subset of: gemm is always measured; "
                             + ", ".join(list(WORKLOADS) + ["rss"]))
    parser.add_argument("--repeats", type=int, default=15,
                        help="timed runs of each layer workload and the LeNet step")
    parser.add_argument("--step-repeats", type=int, default=7,
                        help="timed runs of the ResNet-18 step")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads for NumPy and torch.set_num_threads for PyTorch "
                             "(default: NumPy's BLAS default, usually the core count); "
                             "1 is steadier on a loaded machine")
    parser.add_argument("--no-torch", action="store_true", help="minidl only")
    parser.add_argument("--profile", choices=list(WORKLOADS), default=None,
                        help="also print a cProfile of minidl on that workload")
    args = parser.parse_args(argv)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = set(wanted) - set(WORKLOADS) - {"rss"}
    if unknown:
        parser.error(f"--only: unknown workloads {sorted(unknown)}")

    if args.threads is not None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            parser.error("--threads needs threadpoolctl (pip install threadpoolctl)")
        # Kept (on args) for the whole run; the RSS child processes get --threads too.
        args.blas_limits = threadpool_limits(limits=args.threads, user_api="blas")
    info = blas_info()
    threads = info["blas_threads"]
    md.set_num_threads(threads)     # minidl's own threads (BatchNorm's channel blocks)
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(threads)
        except ImportError:
            print(json.dumps({"record": "note", "note": "torch not installed: minidl only"}))
    md.manual_seed(0)
    if torch is not None:
        torch.manual_seed(0)
    setup = {"record": "setup", "cpu": cpu_name(), "cores": os.cpu_count(), **info,
             "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
             "numpy": np.__version__, "python": platform.python_version(),
             "torch": torch.__version__ if torch else None,
             "torch_threads": torch.get_num_threads() if torch else None,
             "minidl_threads": md.get_num_threads(),
             "load_before": round(os.getloadavg()[0], 1)}
    print(json.dumps(setup), flush=True)

    gemm = gemm_rates(max(3, args.repeats // 3))
    gemm.update(core_scaling(max(5, args.repeats // 2)))
    print(json.dumps({"record": "gemm", **{k: round(v, 1) for k, v in gemm.items()}}),
          flush=True)
    peak = gemm["sgemm 2048^3"]

    rows, profiled = [], None
    for key in wanted:
        if key == "rss":
            rows += rss_rows(torch, threads)
            print(json.dumps(rows[-1]), flush=True)
            continue
        for name, (mine, theirs, extra) in WORKLOADS[key](torch).items():
            repeats = args.step_repeats if key == "resnet" else args.repeats
            fns = {"minidl": mine} if theirs is None else {"minidl": mine, "torch": theirs}
            if "flops" in extra:
                # what minidl's GEMMs alone cost, and the reference GEMM rate, both in
                # the same turns: the machine's phase can change within a run
                fns["gemm floor"], floor_flops = gemm_floor(mine)
                fns["sgemm 2048^3"], reference_flops = gemm_2048()
            t = interleaved(fns, repeats)
            row = {"record": "result", "workload": name, "unit": "ms",
                   "minidl": round(t["minidl"]["median"] * 1e3, 2),
                   "minidl_min": round(t["minidl"]["min"] * 1e3, 2), "repeats": repeats}
            if "torch" in t:
                row.update(torch=round(t["torch"]["median"] * 1e3, 2),
                           torch_min=round(t["torch"]["min"] * 1e3, 2),
                           ratio=round(t["minidl"]["median"] / t["torch"]["median"], 2),
                           # the best runs of each: what a quiet machine would show
                           ratio_of_mins=round(t["minidl"]["min"] / t["torch"]["min"], 2))
            if "gemm floor" in t:
                floor = t["gemm floor"]["median"]
                row.update(gemm_floor=round(floor * 1e3, 2),
                           gemm_floor_gflops=round(floor_flops / floor / 1e9, 1),
                           gemm_floor_share=round(floor / t["minidl"]["median"], 3))
                if "torch" in t:
                    row["gemm_floor_ratio"] = round(floor / t["torch"]["median"], 2)
            if "flops" in extra:
                gflops = extra["flops"] / t["minidl"]["median"] / 1e9
                in_turns = reference_flops / t["sgemm 2048^3"]["median"] / 1e9
                # gemm_fraction: against the 2048^3 rate of the same turns (the target's
                # measure); gemm_fraction_vs_start: against the rate at the run's start
                row.update(gflops=round(gflops, 1), sgemm_2048_gflops=round(in_turns, 1),
                           gemm_fraction=round(gflops / in_turns, 3),
                           gemm_fraction_vs_start=round(gflops / peak, 3))
                if "torch" in t:
                    torch_gflops = extra["flops"] / t["torch"]["median"] / 1e9
                    row.update(torch_gflops=round(torch_gflops, 1),
                               torch_gemm_fraction=round(torch_gflops / in_turns, 3))
                row.update(one_core_efficiency(fns["gemm floor"], floor_flops,
                                               max(3, repeats // 3)))
            row.update({k: v for k, v in extra.items() if k != "flops"})
            print(json.dumps(row), flush=True)
            rows.append(row)
            if args.profile == key and profiled is None:
                profiled = (mine, name)
    setup["load_after"] = round(os.getloadavg()[0], 1)
    # The machine can change phase during the run: the core check once more at the end.
    scaling_after = core_scaling(max(5, args.repeats // 2))
    print(json.dumps({"record": "core check at the end",
                      **{k: round(v, 1) for k, v in scaling_after.items()}}), flush=True)
    print_table(setup, gemm, rows, scaling_after)
    if profiled is not None:
        profile(profiled[0], profiled[1])


if __name__ == "__main__":
    main()

"""Speed of the core layer ops against PyTorch and against the machine's GEMM rate.

Rows (float32, the shapes of the performance issue):

  conv2d fwd        N=32, 64->64 channels, 32x32, 3x3, padding 1, forward (no_grad)
  conv2d fwd+bwd    the same, forward and backward (input, weight and bias gradients)
  max_pool2d        2x2 (stride 2) on (32, 64, 32, 32), forward and backward
  batch_norm        training mode on (32, 64, 32, 32), forward and backward

For each row: minidl's median time, PyTorch's on the same shapes with
torch.set_num_threads equal to NumPy's BLAS thread count (interleaved with minidl's runs,
so both see the same machine load), their ratio, and for convolutions the achieved
GFLOP/s next to two NumPy float32 GEMM rates measured in the same run: a 2048^3 sgemm
(the practical ceiling) and the GEMM of the im2col shape itself, (64, 576) @ (576, 32768).
Breakdown rows time the parts of conv2d (im2col, GEMMs, col2im, layout copies) alone.

Prints one JSON line per measurement, then a table. This machine may be shared: compare
ratios from one run and repeat when in doubt.

    python benchmarks/bench_ops.py [--repeats 15] [--device cpu] [--no-torch] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _timing  # noqa: E402  (before torch: it sets OMP_WAIT_POLICY)

import minidl as md  # noqa: E402
from minidl.ops import conv as conv_ops  # noqa: E402
from minidl.ops.conv import conv2d  # noqa: E402
from minidl.ops.pool import max_pool2d  # noqa: E402

N, C, O, HW, K = 32, 64, 64, 32, 3


def blas_threads() -> tuple:
    """(threads NumPy's BLAS uses, how that was found)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return 2, "threadpoolctl missing: assumed 2"
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if not blas:
        return 2, "no BLAS pool found: assumed 2"
    return int(blas[0]["num_threads"]), f"{blas[0].get('internal_api')} via threadpoolctl"


def sync(device):
    if device != "cpu":
        import cupy
        cupy.cuda.Device().synchronize()


def interleaved(fns: dict, repeats: int, device: str) -> dict:
    """{name: (median, min)} seconds, run in turns (_timing.interleaved)."""
    t = _timing.interleaved(fns, repeats, sync=lambda: sync(device))
    return {name: (v["median"], v["min"]) for name, v in t.items()}


def gemm_rates(repeats: int) -> dict:
    """GFLOP/s of NumPy float32 matmul: 2048^3, and conv2d's forward GEMM shape."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    b = rng.standard_normal((2048, 2048), dtype=np.float32)
    w = rng.standard_normal((O, C * K * K), dtype=np.float32)
    cols = rng.standard_normal((C * K * K, N * HW * HW), dtype=np.float32)
    t = interleaved({"sgemm_2048": lambda: a @ b, "sgemm_im2col": lambda: w @ cols},
                    max(3, repeats // 3), "cpu")
    return {"sgemm_2048": 2 * 2048 ** 3 / t["sgemm_2048"][0] / 1e9,
            "sgemm_im2col": 2 * O * C * K * K * N * HW * HW / t["sgemm_im2col"][0] / 1e9}


def make(shape, device, seed, scale=1.0):
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * scale
    return md.tensor(data, device=device, requires_grad=True), data


def conv_cases(device, torch):
    x, xd = make((N, C, HW, HW), device, 0)
    w, wd = make((O, C, K, K), device, 1, 0.05)
    b, bd = make((O,), device, 2)
    gy = md.tensor(np.random.default_rng(3).standard_normal((N, O, HW, HW)).astype(np.float32),
                   device=device)

    def md_fwd():
        with md.no_grad():
            conv2d(x, w, b, padding=1)

    def md_fwd_bwd():
        x.grad = w.grad = b.grad = None
        conv2d(x, w, b, padding=1).backward(gy)

    cases = {"conv2d fwd": [md_fwd, None], "conv2d fwd+bwd": [md_fwd_bwd, None]}
    if torch is not None:
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xd, wd, bd))
        tgy = torch.tensor(gy.numpy())

        def t_fwd():
            with torch.no_grad():
                torch.nn.functional.conv2d(tx, tw, tb, padding=1)

        def t_fwd_bwd():
            tx.grad = tw.grad = tb.grad = None
            torch.nn.functional.conv2d(tx, tw, tb, padding=1).backward(tgy)

        cases["conv2d fwd"][1] = t_fwd
        cases["conv2d fwd+bwd"][1] = t_fwd_bwd
    return cases


def pool_case(device, torch):
    x, xd = make((N, C, HW, HW), device, 4)
    gy = md.tensor(np.random.default_rng(5).standard_normal((N, C, HW // 2, HW // 2))
                   .astype(np.float32), device=device)

    def md_run():
        x.grad = None
        max_pool2d(x, 2).backward(gy)

    if torch is None:
        return {"max_pool2d 2x2 fwd+bwd": [md_run, None]}
    tx = torch.tensor(xd, requires_grad=True)
    tgy = torch.tensor(gy.numpy())

    def t_run():
        tx.grad = None
        torch.nn.functional.max_pool2d(tx, 2).backward(tgy)
    return {"max_pool2d 2x2 fwd+bwd": [md_run, t_run]}


def batch_norm_case(device, torch):
    try:
        from minidl.ops.norm import batch_norm
    except ImportError as exc:
        return {}, f"batch_norm skipped: minidl.ops.norm.batch_norm not importable ({exc})"
    x, xd = make((N, C, HW, HW), device, 6)
    weight, wd = make((C,), device, 7)
    bias, bd = make((C,), device, 8)
    rm = md.tensor(np.zeros(C, np.float32), device=device)
    rv = md.tensor(np.ones(C, np.float32), device=device)
    gy = md.tensor(np.random.default_rng(9).standard_normal((N, C, HW, HW)).astype(np.float32),
                   device=device)

    def md_run():
        x.grad = weight.grad = bias.grad = None
        batch_norm(x, rm, rv, weight, bias, training=True).backward(gy)

    if torch is None:
        return {"batch_norm fwd+bwd": [md_run, None]}, None
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xd, wd, bd))
    trm, trv, tgy = torch.zeros(C), torch.ones(C), torch.tensor(gy.numpy())

    def t_run():
        tx.grad = tw.grad = tb.grad = None
        torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training=True).backward(tgy)
    return {"batch_norm fwd+bwd": [md_run, t_run]}, None


def conv_breakdown(repeats):
    """The parts of conv2d's forward and backward, each timed alone (NumPy, same shapes).

    Forward: im2col, GEMM, the transpose to NCHW. Backward: gy to rows and the gW GEMM;
    for gx, im2col of gy and the GEMM with the flipped kernel (stride 1), and for
    comparison the gcols GEMM + col2im that strided convolutions use.

    Each part runs on the whole batch at once. conv2d itself runs them on chunks of a
    few samples (minidl/ops/conv.py, _sample_chunks), so that a chunk's columns are
    still in the cache when its GEMM reads them: its time is less than these parts' sum.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, HW, HW), dtype=np.float32)
    w = rng.standard_normal((O, C, K, K), dtype=np.float32)
    gy = rng.standard_normal((N, O, HW, HW), dtype=np.float32)

    def gemm_operand(a):
        cols = conv_ops.im2col(a, K, 1, 1, 1)
        return cols.transpose(1, 2, 3, 0, 4, 5).reshape(1, a.shape[1] * K * K, -1)

    cols, cols_gy = gemm_operand(x), gemm_operand(gy)
    w3 = w.reshape(1, O, C * K * K)
    w_flip = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(1, C, O * K * K).copy()
    rows = w3 @ cols
    gy_rows = conv_ops._nchw_to_rows(gy, 1)
    gcols = np.matmul(w3.transpose(0, 2, 1), gy_rows)
    gcols6 = gcols.reshape(C, K, K, N, HW, HW).transpose(3, 0, 1, 2, 4, 5)
    parts = {
        "fwd im2col": lambda: conv_ops.im2col(x, K, 1, 1, 1),
        "fwd GEMM W @ cols": lambda: np.matmul(w3, cols),
        "fwd rows -> NCHW": lambda: conv_ops._rows_to_nchw(rows, N, HW, HW),
        "gW gy -> rows": lambda: conv_ops._nchw_to_rows(gy, 1),
        "gW GEMM cols @ gy^T": lambda: np.matmul(cols, gy_rows.transpose(0, 2, 1)),
        "gx im2col(gy)": lambda: conv_ops.im2col(gy, K, 1, 1, 1),
        "gx GEMM W_flip @ cols(gy)": lambda: np.matmul(w_flip, cols_gy),
        "gx rows -> NCHW": lambda: conv_ops._rows_to_nchw(rows, N, HW, HW),
        "(strided) GEMM W^T @ gy": lambda: np.matmul(w3.transpose(0, 2, 1), gy_rows),
        "(strided) col2im": lambda: conv_ops.col2im(gcols6, x.shape, K, 1, 1, 1),
    }
    return interleaved(parts, max(3, repeats // 2), "cpu")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per row")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of conv2d fwd+bwd")
    args = parser.parse_args(argv)

    threads, how = blas_threads()
    torch = None
    if not args.no_torch and args.device == "cpu":
        try:
            import torch
            torch.set_num_threads(threads)
        except ImportError:
            torch = None
    meta = {"record": "setup", "device": args.device, "blas_threads": threads,
            "blas_threads_from": how, "torch_threads": torch.get_num_threads() if torch else
            None, "numpy": np.__version__, "torch": torch.__version__ if torch else None}
    print(json.dumps(meta), flush=True)
    gemm = gemm_rates(args.repeats)
    print(json.dumps({"record": "gemm", **{k: round(v, 1) for k, v in gemm.items()}}),
          flush=True)

    cases = conv_cases(args.device, torch)
    cases.update(pool_case(args.device, torch))
    bn, note = batch_norm_case(args.device, torch)
    cases.update(bn)
    conv_flop = 2 * N * O * HW * HW * C * K * K
    flops = {"conv2d fwd": conv_flop, "conv2d fwd+bwd": 3 * conv_flop}
    rows = []
    for name, (mine, theirs) in cases.items():
        fns = {"minidl": mine}
        if theirs is not None:
            fns["torch"] = theirs
        t = interleaved(fns, args.repeats, args.device)
        row = {"record": "op", "op": name, "minidl_ms": round(t["minidl"][0] * 1e3, 2),
               "minidl_min_ms": round(t["minidl"][1] * 1e3, 2)}
        if "torch" in t:
            row.update(torch_ms=round(t["torch"][0] * 1e3, 2),
                       torch_min_ms=round(t["torch"][1] * 1e3, 2),
                       ratio=round(t["minidl"][0] / t["torch"][0], 2))
        if name in flops:
            gflops = flops[name] / t["minidl"][0] / 1e9
            row.update(gflops=round(gflops, 1),
                       frac_sgemm_2048=round(gflops / gemm["sgemm_2048"], 2),
                       frac_sgemm_im2col=round(gflops / gemm["sgemm_im2col"], 2))
        print(json.dumps(row), flush=True)
        rows.append(row)
    if note:
        print(json.dumps({"record": "note", "note": note}), flush=True)

    parts = conv_breakdown(args.repeats) if args.device == "cpu" else {}
    for name, (median, _) in parts.items():
        print(json.dumps({"record": "conv2d part", "part": name,
                          "ms": round(median * 1e3, 2)}), flush=True)

    print()
    print(f"BLAS threads {threads} ({how}); torch threads {meta['torch_threads']}; "
          f"sgemm 2048^3 {gemm['sgemm_2048']:.0f} GFLOP/s, im2col-shape sgemm "
          f"{gemm['sgemm_im2col']:.0f} GFLOP/s")
    print(f"{'op':<24}{'minidl ms':>11}{'torch ms':>10}{'ratio':>7}{'GFLOP/s':>9}"
          f"{'/2048':>7}{'/im2col':>9}")
    for r in rows:
        def cell(key, fmt):
            return format(r[key], fmt) if key in r else "-"
        print(f"{r['op']:<24}{r['minidl_ms']:>11.1f}{cell('torch_ms', '>10.1f'):>10}"
              f"{cell('ratio', '>7.2f'):>7}{cell('gflops', '>9.1f'):>9}"
              f"{cell('frac_sgemm_2048', '>7.2f'):>7}{cell('frac_sgemm_im2col', '>9.2f'):>9}")
    if note:
        print(note)
    if parts:
        print("conv2d parts (ms): " + ", ".join(f"{k} {v[0] * 1e3:.1f}" for k, v in
                                               parts.items()))
    if args.profile:
        fwd_bwd = cases["conv2d fwd+bwd"][0]
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            fwd_bwd()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(10)


if __name__ == "__main__":
    main()

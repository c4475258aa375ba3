"""benchmarks/bench_cpu.py runs from the checkout with the documented command and writes
what its table is built from. Marked slow: it times real GEMMs (about half a minute).

Speed itself is never asserted here (see benchmarks/README.md): only that every record
is there and that its numbers are consistent with each other.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_bench(*args) -> list:
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_cpu.py"),
                          *args], capture_output=True, text=True, timeout=600, check=True)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert "workload" in out.stdout and "GEMM floor" in out.stdout, out.stdout[-2000:]
    return records


def test_bench_cpu_conv_and_lenet_records():
    records = run_bench("--only", "conv,lenet", "--no-torch", "--repeats", "2",
                        "--threads", "1")
    kinds = [r["record"] for r in records]
    assert kinds[:2] == ["setup", "gemm"] and kinds[-1] == "core check at the end"
    assert records[0]["blas_threads"] == 1 and records[0]["minidl_threads"] == 1
    results = {r["workload"]: r for r in records if r["record"] == "result"}
    assert set(results) == {"conv2d fwd", "conv2d fwd+bwd", "lenet5 step b128"}
    for name, row in results.items():
        assert 0 < row["minidl_min"] <= row["minidl"], name
        # GFLOP/s against the 2048^3 rate timed in the same turns
        assert row["gemm_fraction"] == pytest.approx(
            row["gflops"] / row["sgemm_2048_gflops"], rel=0.02, abs=2e-3), name
        # the products alone take part of the whole run, never more than ~all of it
        assert 0 < row["gemm_floor"] <= 1.2 * row["minidl"], name
        assert 0 < row["gemm_floor_1core_fraction"] < 2, name
    conv = results["conv2d fwd+bwd"]
    # forward + backward of the conv is three times the forward's products
    assert conv["gemm_floor_gflops"] > 0 and conv["gflops"] > 0
    assert conv["gemm_floor"] > results["conv2d fwd"]["gemm_floor"]

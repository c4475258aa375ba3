#!/usr/bin/env bash
# The whole GPU verification of minidl in one command, on a machine with a CUDA GPU:
#
#   bash benchmarks/gpu_check.sh            # tests with --device cuda, then the benchmark
#   bash benchmarks/gpu_check.sh --quick    # the same with the benchmark's --quick
#
# 1. makes `minidl` and `minidl.kernels` importable from this checkout. minidl.kernels
#    lives in kernels/ and is mapped there only by installation (setup.cfg package_dir),
#    so a plain PYTHONPATH on the checkout is not enough: it installs the checkout with
#    pip, offline (--no-deps --no-build-isolation: setuptools is already there), editable
#    if it can; failing that, PYTHONPATH on a folder of symlinks laid out as the package;
# 2. points CUPY_CACHE_DIR at a writable folder, so kernels compile once per run;
# 3. runs `python -m pytest tests -q --device cuda` (every op on the GPU, our kernels
#    against the NumPy path, gradcheck on the GPU, device errors, model round trips);
# 4. runs `python benchmarks/bench_gpu.py` (kernel bandwidth, conv2d, ResNet steps vs
#    PyTorch).
#
# Logs go to $OUT when it is set (else to a new temporary folder, printed at the end):
# env.txt, pytest.log, bench_gpu.log, bench_gpu.jsonl. Extra pytest arguments can be given
# in PYTEST_ARGS, extra benchmark arguments in BENCH_ARGS. The exit status is non-zero if
# the tests or the benchmark failed; the benchmark runs even when tests failed.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
python="${PYTHON:-python}"
bench_args=(${BENCH_ARGS:-})
[ "${1:-}" = "--quick" ] && bench_args+=(--quick)

out="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/minidl-gpu-check.XXXXXX")}"
mkdir -p "$out"
export CUPY_CACHE_DIR="${CUPY_CACHE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/cupy-cache.XXXXXX")}"
export PYTHONDONTWRITEBYTECODE=1
export CUPY_TF32=0  # true float32 matrix products in CuPy (its default; made explicit)

log() { echo "gpu_check: $*" | tee -a "$out/env.txt"; }

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 \
        || echo "nvidia-smi: not available"
    "$python" --version 2>&1
    "$python" -c "import numpy; print('numpy', numpy.__version__)" 2>&1
    "$python" -c "import cupy; print('cupy', cupy.__version__, 'cuda runtime',
cupy.cuda.runtime.runtimeGetVersion())" 2>&1 || echo "cupy: NOT importable"
    "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
torch.cuda.is_available())" 2>&1 || echo "torch: not importable (no PyTorch ratios)"
    "$python" -c "import pytest, hypothesis; print('pytest', pytest.__version__,
'hypothesis', hypothesis.__version__)" 2>&1 || echo "pytest/hypothesis: NOT importable"
    echo "CUPY_CACHE_DIR=$CUPY_CACHE_DIR"
} >> "$out/env.txt" 2>&1
cat "$out/env.txt"

# minidl.kernels must resolve to this checkout's kernels/ (an older install would not do).
check_import='import os, sys, minidl, minidl.kernels.loader as l
want = os.path.realpath(sys.argv[1])
src = l.source("pool.cu")
assert open(os.path.join(want, "kernels", "pool.cu")).read() == src, "stale kernels"
print("minidl from", os.path.dirname(minidl.__file__))'
run_dir="$repo"
if "$python" -c "$check_import" "$repo" >> "$out/env.txt" 2>&1; then
    log "minidl and minidl.kernels already importable from this checkout"
elif "$python" -m pip install -q --no-deps --no-build-isolation -e "$repo" \
        >> "$out/env.txt" 2>&1 && "$python" -c "$check_import" "$repo" >> "$out/env.txt" 2>&1; then
    log "installed this checkout editable (pip install --no-deps -e .)"
elif "$python" -m pip install -q --no-deps --no-build-isolation "$repo" \
        >> "$out/env.txt" 2>&1; then
    # A regular install: run from outside the checkout, or ./minidl (without kernels/)
    # would shadow the installed package.
    run_dir="$(mktemp -d "${TMPDIR:-/tmp}/minidl-run.XXXXXX")"
    (cd "$run_dir" && "$python" -c "$check_import" "$repo") >> "$out/env.txt" 2>&1 \
        || { log "FAIL: the installed minidl.kernels does not match this checkout"; exit 3; }
    log "installed this checkout (pip install --no-deps .); running from $run_dir"
else
    # No usable pip/setuptools/wheel: lay out the package by symlinks instead (minidl/*
    # plus minidl/kernels -> kernels/) and put that folder on PYTHONPATH.
    shim="$(mktemp -d "${TMPDIR:-/tmp}/minidl-shim.XXXXXX")"
    mkdir "$shim/minidl"
    for entry in "$repo"/minidl/*; do ln -s "$entry" "$shim/minidl/$(basename "$entry")"; done
    ln -s "$repo/kernels" "$shim/minidl/kernels"
    export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"
    run_dir="$(mktemp -d "${TMPDIR:-/tmp}/minidl-run.XXXXXX")"
    (cd "$run_dir" && "$python" -c "$check_import" "$repo") >> "$out/env.txt" 2>&1 \
        || { log "FAIL: minidl is not importable (pip failed, see $out/env.txt)"; exit 3; }
    log "pip could not install this checkout; using PYTHONPATH=$shim (symlinks)"
fi

status=0
log "pytest: python -m pytest tests -q --device cuda ${PYTEST_ARGS:-}"
(cd "$run_dir" && "$python" -m pytest "$repo/tests" -q --device cuda -p no:cacheprovider \
    -c "$repo/setup.cfg" --rootdir "$repo" -rs ${PYTEST_ARGS:-}) 2>&1 | tee "$out/pytest.log"
rc=${PIPESTATUS[0]}
[ "$rc" -ne 0 ] && { log "pytest failed (exit $rc)"; status=1; }

log "bench: python benchmarks/bench_gpu.py ${bench_args[*]:-}"
(cd "$run_dir" && "$python" "$repo/benchmarks/bench_gpu.py" --json "$out/bench_gpu.jsonl" \
    "${bench_args[@]}") 2>&1 | tee "$out/bench_gpu.log"
rc=${PIPESTATUS[0]}
[ "$rc" -ne 0 ] && { log "bench_gpu failed (exit $rc)"; status=1; }

log "logs in $out (exit $status)"
exit "$status"

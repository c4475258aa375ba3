#!/usr/bin/env bash
# Compile every kernels/*.cu to PTX with nvcc, for sm_90 (Hopper) and for the oldest
# virtual architecture this nvcc still supports (compute_70, or compute_75 from CUDA 13 on),
# so that a CUDA syntax or type error cannot land on a machine without a GPU.
# -rdc=true keeps un-launched device functions (activation.cu) in the PTX, so their float
# and double instantiations are compiled too, not only parsed. Warnings are errors.
# Without nvcc it prints a skip line and succeeds.
set -euo pipefail
cd "$(dirname "$0")/.."

nvcc="${NVCC:-$(command -v nvcc || true)}"
if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
if [ -z "$nvcc" ]; then
    echo "compile_kernels: SKIP: nvcc not found; the CUDA kernels were not compiled"
    exit 0
fi

portable=$("$nvcc" --list-gpu-arch 2>/dev/null \
    | sed -n 's/^compute_\([0-9]*\)$/\1/p' | awk '$1 >= 70' | sort -n | head -n 1)
portable="compute_${portable:-75}"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
shopt -s nullglob
files=(kernels/*.cu)
if [ "${#files[@]}" -eq 0 ]; then
    echo "compile_kernels: no kernels/*.cu found" >&2
    exit 1
fi
status=0
for arch in sm_90 "$portable"; do
    for f in "${files[@]}"; do
        if "$nvcc" -ptx -rdc=true -arch="$arch" --std=c++14 -Werror all-warnings \
                -o "$out/$(basename "$f" .cu).$arch.ptx" "$f"; then
            echo "compile_kernels: ok   $f ($arch)"
        else
            echo "compile_kernels: FAIL $f ($arch)" >&2
            status=1
        fi
    done
done
"$nvcc" --version | tail -n 1
exit "$status"

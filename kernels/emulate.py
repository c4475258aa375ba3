"""Run the kernels of minidl.kernels on the CPU: a test harness for machines without a GPU.

g++ compiles a .cu file together with a small prelude that stands in for CUDA's built-ins
(blockIdx, threadIdx, __syncthreads, __shared__, atomicAdd, ...). A launch runs the blocks
one after another and the threads of a block as real OS threads, so __syncthreads is a
real barrier and a __shared__ array is shared by the block, as on a GPU.

``Emulator.kernel`` and ``Emulator.elementwise`` have the signatures of
``loader.kernel`` and ``loader.elementwise``; a test swaps them in and calls the very same
launchers on NumPy arrays. Each launch checks its arguments against the C signature of
the kernel (an array of the pointer's element type, C-contiguous; a NumPy scalar of the
exact C type: numpy.int32 for int, numpy.int64 for long long...), which is what a CuPy
launch silently gets wrong otherwise.

What it cannot show: timing, warp-level behaviour, memory coalescing, and NVRTC-specific
compile errors (nvcc in CI checks those). Needs g++ on PATH; used only by tests.

>>> emu = Emulator(elementwise_specs={"activation.cu": activation.ELEMENTWISE})
>>> monkeypatch.setattr(loader, "kernel", emu.kernel)
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass

import numpy as np

from . import loader

__all__ = ["Emulator", "parse_kernels", "KernelParam", "gxx_available"]

PRELUDE = r"""
#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// One copy per kernel: blocks run one after another, so it is the block's shared memory.
#define __shared__ static

struct dim3 { unsigned x, y, z; };
static thread_local dim3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;

class EmuBarrier {
public:
    void reset(unsigned n) { count_ = n; waiting_ = 0; generation_ = 0; }
    void wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        unsigned gen = generation_;
        if (++waiting_ == count_) {
            waiting_ = 0;
            ++generation_;
            cv_.notify_all();
        } else {
            cv_.wait(lock, [&] { return gen != generation_; });
        }
    }
private:
    std::mutex mutex_;
    std::condition_variable cv_;
    unsigned count_ = 1, waiting_ = 0, generation_ = 0;
};
static EmuBarrier emu_barrier;
static std::mutex emu_atomic_mutex;

static inline void __syncthreads() { emu_barrier.wait(); }
template <typename T> static inline T atomicAdd(T* address, T value) {
    std::lock_guard<std::mutex> guard(emu_atomic_mutex);
    T old = *address;
    *address = old + value;
    return old;
}
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline double __longlong_as_double(long long i) {
    double d; std::memcpy(&d, &i, 8); return d;
}
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
using std::erf; using std::exp; using std::fabs; using std::log; using std::sqrt;
using std::tanh;

static void emu_run(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                    unsigned bz, const std::function<void()>& body) {
    gridDim = {gx, gy, gz};
    blockDim = {bx, by, bz};
    unsigned nthreads = bx * by * bz, nblocks = gx * gy * gz;
    emu_barrier.reset(nthreads);
    std::vector<std::thread> threads;
    threads.reserve(nthreads);
    for (unsigned t = 0; t < nthreads; ++t) {
        threads.emplace_back([&, t] {
            threadIdx = {t % bx, (t / bx) % by, t / (bx * by)};
            for (unsigned b = 0; b < nblocks; ++b) {
                blockIdx = {b % gx, (b / gx) % gy, b / (gx * gy)};
                body();
                emu_barrier.wait();  // the whole block ends before the next one starts
            }
        });
    }
    for (auto& th : threads) th.join();
}
"""

_POINTEE = {"float": np.float32, "double": np.float64, "long long": np.int64,
            "int": np.int32, "bool": np.bool_, "unsigned char": np.uint8,
            "unsigned long long": np.uint64}
_SCALAR = {"float": (np.float32, ctypes.c_float), "double": (np.float64, ctypes.c_double),
           "int": (np.int32, ctypes.c_int32), "long long": (np.int64, ctypes.c_int64),
           "unsigned long long": (np.uint64, ctypes.c_uint64)}

_KERNEL_RE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)


@dataclass(frozen=True)
class KernelParam:
    """One parameter of an extern "C" kernel: C type, name, and what Python must pass."""

    ctype: str     # e.g. "const float*", "long long"
    name: str
    pointer: bool
    const: bool
    base: str      # "float", "long long", ...

    @property
    def dtype(self):
        return np.dtype(_POINTEE[self.base]) if self.pointer else np.dtype(_SCALAR[self.base][0])


def parse_kernels(code: str) -> dict:
    """{kernel name: [KernelParam, ...]} for every extern "C" __global__ kernel in code."""
    found = {}
    for name, params in _KERNEL_RE.findall(code):
        parsed = []
        for raw in params.split(","):
            text = " ".join(raw.replace("__restrict__", " ").replace("*", " * ").split())
            ctype, pname = text.rsplit(" ", 1)
            pointer = "*" in ctype
            base = " ".join(t for t in ctype.split() if t not in ("const", "*"))
            if base not in (_POINTEE if pointer else _SCALAR):
                raise ValueError(f"emulate: kernel {name} has a parameter of type {ctype!r} "
                                 f"the emulator does not know")
            parsed.append(KernelParam(ctype.replace(" *", "*"), pname, pointer,
                                      ctype.startswith("const"), base))
        found[name] = parsed
    return found


def _parse_elementwise_params(text: str):
    params = []
    for raw in text.split(","):
        ctype, name = raw.split()
        if ctype != "T":
            raise ValueError(f"emulate: elementwise parameter {raw.strip()!r}: only type T "
                             f"is emulated")
        params.append(name)
    return params


def gxx_available() -> bool:
    return shutil.which("g++") is not None


def _cache_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), "minidl-kernel-emulator")
    os.makedirs(path, exist_ok=True)
    return path


class EmulatedKernel:
    """A compiled kernel callable as a cupy.RawKernel: k(grid, block, args)."""

    def __init__(self, fn, name, params, max_blocks=None, max_threads=None):
        self.fn, self.name, self.params = fn, name, params
        self.max_blocks, self.max_threads = max_blocks, max_threads

    def __call__(self, grid, block, args, shared_mem: int = 0):
        grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
        block = tuple(int(b) for b in block) + (1,) * (3 - len(block))
        if min(grid) < 1 or min(block) < 1 or int(np.prod(block)) > 1024:
            raise ValueError(f"{self.name}: invalid launch grid {grid} block {block}")
        if self.max_blocks:  # fewer blocks than asked: the grid-stride loops must cope
            grid = (min(grid[0], self.max_blocks),) + grid[1:]
        if self.max_threads and block[0] > self.max_threads:
            # Smaller blocks (a power of two, as the tree reductions need): every kernel
            # here must be right for any such block size, and OS threads are costly.
            block = (1 << (self.max_threads.bit_length() - 1),) + block[1:]
        args = tuple(args)
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: expected {len(self.params)} arguments, got "
                            f"{len(args)}")
        holders = []
        slots = (ctypes.c_void_p * len(args))()
        for i, (arg, p) in enumerate(zip(args, self.params)):
            where = f"{self.name}: argument {i} ({p.ctype} {p.name})"
            if p.pointer:
                if not isinstance(arg, np.ndarray):
                    raise TypeError(f"{where} needs an array, got {type(arg).__name__}")
                if arg.dtype != p.dtype:
                    raise TypeError(f"{where} needs dtype {p.dtype}, got {arg.dtype}")
                if not arg.flags.c_contiguous:
                    raise ValueError(f"{where} must be C-contiguous")
                if not p.const and not arg.flags.writeable:
                    raise ValueError(f"{where} is written but the array is read-only")
                holder = ctypes.c_void_p(arg.ctypes.data)
            else:
                scalar_type, c_type = _SCALAR[p.base]
                if type(arg) is not scalar_type:
                    raise TypeError(f"{where} needs numpy.{scalar_type.__name__}, got "
                                    f"{type(arg).__name__} {arg!r}")
                holder = c_type(arg.item())
            holders.append(holder)
            slots[i] = ctypes.addressof(holder)
        self.fn(*grid, *block, slots)


class EmulatedElementwise:
    """A compiled elementwise loop callable as a cupy.ElementwiseKernel: k(*inputs)."""

    def __init__(self, lib, name, in_names, out_names):
        self.lib, self.name, self.in_names, self.out_names = lib, name, in_names, out_names

    def __call__(self, *args):
        if len(args) != len(self.in_names):
            raise TypeError(f"{self.name}: expected {len(self.in_names)} inputs, got "
                            f"{len(args)}")
        dtypes = {a.dtype for a in args if isinstance(a, np.ndarray)}
        if len(dtypes) != 1:
            raise TypeError(f"{self.name}: the arrays for T must share one dtype, got "
                            f"{sorted(map(str, dtypes))}")
        dtype = dtypes.pop()
        for a in args:
            if not isinstance(a, np.ndarray) and type(a) is not dtype.type:
                raise TypeError(f"{self.name}: a scalar for T must be numpy.{dtype.name}, got "
                                f"{type(a).__name__}")
        arrays = [np.ascontiguousarray(a) for a in np.broadcast_arrays(
            *[np.asarray(a) for a in args])]
        outs = [np.empty(arrays[0].shape, dtype=dtype) for _ in self.out_names]
        suffix = loader.kernel_suffix(dtype)
        fn = getattr(self.lib, f"emu_ew_{self.name}{suffix}")
        slots = (ctypes.c_void_p * (len(arrays) + len(outs)))(
            *[a.ctypes.data for a in arrays + outs])
        fn(slots, ctypes.c_longlong(arrays[0].size))
        return outs[0] if len(outs) == 1 else tuple(outs)


class Emulator:
    """Compiles minidl's .cu files for the CPU and hands out emulated kernels.

    Args:
        elementwise_specs: {file: {name: (in_params, out_params, operation)}} of the
            ElementwiseKernels built on that file (activation.ELEMENTWISE).
        max_blocks: when set, launches use at most this many blocks along x.
        max_threads: when set, blocks of more threads along x run with the largest power
            of two not above it instead (faster; the kernels take any block size).
    """

    def __init__(self, elementwise_specs=None, max_blocks: "int | None" = None,
                 max_threads: "int | None" = None):
        self.elementwise_specs = dict(elementwise_specs or {})
        self.max_blocks, self.max_threads = max_blocks, max_threads
        self._lib = None
        self._kernels_of: dict = {}
        self._lock = threading.Lock()

    def _program(self):
        """One C++ translation unit: the prelude, then each .cu file in a namespace of its
        own with its launch wrappers (one g++ run parses the prelude once for all)."""
        parts, kernels_of = [PRELUDE], {}
        for filename in loader.CU_FILES:
            code = loader.source(filename)
            kernels = kernels_of[filename] = parse_kernels(code)
            parts += [f"namespace emu_{filename[:-3]} {{", f'#line 1 "{filename}"', code,
                      '#line 1 "emulator-wrappers"']
            for name, params in kernels.items():
                call = ", ".join(f"*({p.ctype}*)a[{i}]" for i, p in enumerate(params))
                parts.append(
                    f'extern "C" void emu_launch_{name}(unsigned gx, unsigned gy, '
                    f"unsigned gz, unsigned bx, unsigned by, unsigned bz, void** a) {{\n"
                    f"    emu_run(gx, gy, gz, bx, by, bz, [=] {{ {name}({call}); }});\n}}")
            specs = self.elementwise_specs.get(filename, {})
            for name, (ins, outs, operation) in specs.items():
                in_names = _parse_elementwise_params(ins)
                out_names = _parse_elementwise_params(outs)
                lines = [f"const T {n} = ((const T*)a[{i}])[i];"
                         for i, n in enumerate(in_names)]
                lines += [f"T& {n} = ((T*)a[{len(in_names) + i}])[i];"
                          for i, n in enumerate(out_names)]
                body = " ".join(lines)
                parts.append(
                    f"template <typename T> void emu_ew_{name}(void** a, long long n) {{\n"
                    f"    for (long long i = 0; i < n; ++i) {{ {body} {operation}; }}\n}}\n"
                    f'extern "C" void emu_ew_{name}_float(void** a, long long n) '
                    f"{{ emu_ew_{name}<float>(a, n); }}\n"
                    f'extern "C" void emu_ew_{name}_double(void** a, long long n) '
                    f"{{ emu_ew_{name}<double>(a, n); }}")
            parts.append(f"}}  // namespace emu_{filename[:-3]}")
        return "\n".join(parts) + "\n", kernels_of

    def compile(self) -> None:
        """Compile every .cu file of the package into one library (cached by content)."""
        with self._lock:
            if self._lib is not None:
                return
            program, kernels_of = self._program()
            digest = hashlib.sha256(program.encode()).hexdigest()[:24]
            path = os.path.join(_cache_dir(), f"kernels-{digest}.so")
            if not os.path.exists(path):
                tmp = f"{path}.{os.getpid()}.tmp"
                done = subprocess.run(
                    ["g++", "-std=c++17", "-O1", "-shared", "-fPIC", "-pthread", "-w",
                     "-x", "c++", "-", "-o", tmp],
                    input=program.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                if done.returncode != 0:
                    raise RuntimeError(f"emulate: g++ failed:\n{done.stdout.decode()}")
                os.replace(tmp, path)  # atomic: a parallel run never loads half a file
            self._lib, self._kernels_of = ctypes.CDLL(path), kernels_of

    def kernel(self, filename: str, name: str, dtype=None):
        """Same as loader.kernel, but an EmulatedKernel that runs on NumPy arrays."""
        entry = name if dtype is None else name + loader.kernel_suffix(dtype)
        self.compile()
        kernels = self._kernels_of.get(filename, {})
        if entry not in kernels:
            raise AttributeError(f"emulate: {filename} has no kernel {entry!r}")
        fn = getattr(self._lib, f"emu_launch_{entry}")
        fn.restype = None
        return EmulatedKernel(fn, entry, kernels[entry], self.max_blocks, self.max_threads)

    def elementwise(self, filename: str, name: str, in_params: str, out_params: str,
                    operation: str):
        """Same as loader.elementwise, for a kernel registered in elementwise_specs."""
        spec = self.elementwise_specs.get(filename, {}).get(name)
        if spec != (in_params, out_params, operation):
            raise KeyError(f"emulate: elementwise kernel {name!r} of {filename} is not the "
                           f"one registered ({spec!r})")
        self.compile()
        return EmulatedElementwise(self._lib, name, _parse_elementwise_params(in_params),
                                   _parse_elementwise_params(out_params))

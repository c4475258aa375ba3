"""Several CPU cores for NumPy's memory-bound work.

NumPy runs a matrix product on every core (through BLAS) but an elementwise operation or
a reduction on one. A layer such as BatchNorm is a handful of such passes, each limited
by how fast one core streams memory. Its channels are independent, so the work splits
into blocks of channels that can run at the same time: NumPy releases the GIL inside
each large operation, and plain Python threads then run on different cores. PyTorch
does the same with OpenMP. (Measured on 2 cores, BatchNorm2d on (32, 64, 32, 32)
forward+backward: 21.5 ms in one thread, 9.6 ms in two.)

``set_num_threads(n)`` sets how many threads (the caller's included) such an op uses;
the default is the ``MINIDL_NUM_THREADS`` or ``OMP_NUM_THREADS`` environment variable,
else the number of cores this process may run on. It does not change BLAS's threads.

Work made of many mid-sized matrix products (conv2d on a batch, one chunk of samples
after another) goes faster the same way: ``map_gemm_chunks`` hands the chunks out to the
threads, the next to whichever is free, and has BLAS run every product single-threaded
meanwhile, so that each core runs its chunk's copies and product without waiting for
the other (``map_gemm_blocks`` does the same with one fixed share per thread). Left to
itself, OpenBLAS would split each product over all cores: it scales poorly on products
with 64 rows, and its workers spin between calls on the core the copies need.
(Measured on 2 cores: a CIFAR ResNet-18 training step at batch 32, 1460 -> 1220 ms.)
Setting BLAS's threads needs threadpoolctl, the library scikit-learn and joblib use for
the same purpose; without it, such work runs in the calling thread on BLAS's threads.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["get_num_threads", "set_num_threads", "map_blocks", "map_gemm_blocks",
           "map_gemm_chunks"]

_num_threads = None
_pool = None
_pool_lock = threading.Lock()


def _default_num_threads() -> int:
    for var in ("MINIDL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """How many threads minidl's CPU ops split their memory-bound work into."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_num_threads()
    return _num_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (n >= 1; 1 runs everything in the calling thread), as
    torch.set_num_threads."""
    global _num_threads, _pool
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    with _pool_lock:
        _num_threads = n
        if _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None


class _PoolFlag(threading.local):
    active = False          # True in the pool's own threads


_in_pool = _PoolFlag()


def _mark_pool_thread() -> None:
    _in_pool.active = True


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers != workers:
            if _pool is not None:
                _pool.shutdown(wait=True)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minidl",
                                       initializer=_mark_pool_thread)
        return _pool


def map_blocks(fn, size: int, min_block: int = 1, max_block: int = None) -> list:
    """[fn(slice(a, b)) for the blocks a:b that cut range(size) into parts], run in
    get_num_threads() threads; the results come back in block order.

    range(size) is first cut into one equal share per thread; each share is at least
    ``min_block`` long, so small inputs stay in one thread (a thread hand-off costs tens
    of microseconds). With ``max_block``, each thread then walks its share in blocks of
    at most ``max_block``: sized to fit the cache, so that all of ``fn``'s passes over
    a block after the first read it from there. ``fn`` must only write to its own block.
    """
    parts = max(1, min(get_num_threads(), size // max(min_block, 1)))
    bounds = [size * i // parts for i in range(parts + 1)]
    step = max_block or max(size, 1)

    def run(a: int, b: int) -> list:
        return [fn(slice(start, min(start + step, b))) for start in range(a, b, step)] \
            or [fn(slice(a, b))]            # size 0: one empty block, as without max_block
    if parts == 1 or _in_pool.active:
        # In one of the pool's own threads, waiting for the pool could wait forever.
        return run(0, size)
    pool = _get_pool(get_num_threads() - 1)
    futures = [pool.submit(run, a, b) for a, b in zip(bounds[1:-1], bounds[2:])]
    results = run(bounds[0], bounds[1])    # the calling thread takes the first share
    for future in futures:
        results += future.result()
    return results


# ---- BLAS-heavy work: one single-threaded BLAS per minidl thread -------------------------
_blas = None            # threadpoolctl's handle on NumPy's BLAS; False: none to be had
_blas_lock = threading.Lock()
_blas_users = 0         # map_gemm_blocks calls running now, in any thread
_blas_limiter = None    # the limit they share: set by the first, undone by the last


def _blas_controller():
    """threadpoolctl's controller of the BLAS libraries loaded in this process, or None
    (threadpoolctl not installed, or no BLAS it knows of)."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController().select(user_api="blas") or False
        except Exception:       # not installed, or failed to inspect the libraries
            _blas = False
    return _blas or None


def map_gemm_blocks(fn, size: int, min_block: int = 1) -> list:
    """map_blocks(fn, size, min_block) for work whose heavy part is BLAS calls.

    With more than one share, BLAS runs single-threaded while the shares run, one per
    thread, so that threads do not wait on each other inside BLAS. When BLAS's threads
    cannot be set (no threadpoolctl), or with one thread, ``fn`` gets the whole range
    in the calling thread, and each BLAS call runs on BLAS's own threads as usual.
    """
    blas = _blas_controller()
    if blas is None or min(get_num_threads(), size // max(min_block, 1)) < 2 or \
            _in_pool.active:
        return [fn(slice(0, size))]
    with _single_threaded_blas(blas):
        return map_blocks(fn, size, min_block)


def map_gemm_chunks(make_worker, chunks: list, combine=None, share: bool = True):
    """Run a worker over every chunk of a batch, in get_num_threads() threads that each
    take the next unclaimed chunk whenever they are free, BLAS single-threaded meanwhile.

    ``make_worker()`` is called once in each thread that gets a chunk and returns
    ``(run, release)``: ``run(chunk)`` does one chunk (writing only that chunk's part of
    any output) and returns its result; ``release()`` is called when the thread finds no
    chunk left. Returns the results in chunk order, or, with ``combine``, their running
    combination ``combine(...combine(combine(r0, r1), r2)..., r_last)``, always taken in
    chunk order, whichever thread computed which chunk: a sum made this way has the same
    bits at every thread count. Each result is combined as soon as those before it are,
    so only the results that finished out of order wait in memory.

    Chunks, not fixed shares, go to the threads: when one thread runs slower for a while
    (the machine is shared, the other thread was scheduled first), the other takes more
    of the chunks instead of waiting for it at the end. As map_gemm_blocks, without
    threadpoolctl or with one thread everything runs in the calling thread, on BLAS's
    own threads; so it does with ``share=False`` (work that gains nothing from sharing).
    """
    chunks = list(chunks)
    results = {}
    done = {"next": 0, "total": None}
    lock = threading.Lock()

    def deliver(i, result):
        if combine is None:
            results[i] = result
            return
        with lock:      # combine in chunk order, as soon as the order allows
            results[i] = result
            while done["next"] in results:
                r = results.pop(done["next"])
                done["total"] = r if done["next"] == 0 else combine(done["total"], r)
                done["next"] += 1

    claim = iter(range(len(chunks))).__next__      # atomic under the GIL

    def work():
        try:
            i = claim()
        except StopIteration:       # the others took every chunk: no worker needed
            return
        run, release = make_worker()
        try:
            while True:
                deliver(i, run(chunks[i]))
                try:
                    i = claim()
                except StopIteration:
                    return
        finally:
            release()

    blas = _blas_controller()
    threads = min(get_num_threads(), len(chunks))
    if not share or blas is None or threads < 2 or _in_pool.active:
        work()
    else:
        with _single_threaded_blas(blas):
            pool = _get_pool(get_num_threads() - 1)
            futures = [pool.submit(work) for _ in range(threads - 1)]
            try:
                work()
            finally:
                for future in futures:
                    future.result()
    if combine is not None:
        return done["total"]
    return [results[i] for i in range(len(chunks))]


@contextlib.contextmanager
def _single_threaded_blas(blas):
    """BLAS at one thread while any caller is inside, then as before, exception or not.

    BLAS's thread count is one setting for the whole process, so the callers share one
    limit: with a limit each, two overlapping calls in two threads would end with the
    second one putting back the first one's "1" for good.
    """
    global _blas_users, _blas_limiter
    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = blas.limit(limits=1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None

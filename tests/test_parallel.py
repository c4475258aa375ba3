"""minidl.parallel: blocks of work in threads, and the ops that use it (BatchNorm)."""
import threading

import numpy as np
import pytest

import minidl as md
from minidl import parallel
from minidl.ops.norm import batch_norm


@pytest.fixture
def threads():
    """Set the thread count for one test, then put the previous one back."""
    before = parallel.get_num_threads()
    yield parallel.set_num_threads
    parallel.set_num_threads(before)


@pytest.mark.parametrize("n_threads, size, min_block", [(1, 10, 1), (3, 10, 1), (4, 3, 1),
                                                        (3, 10, 4), (2, 0, 1)])
def test_map_blocks_covers_the_range_once_in_order(threads, n_threads, size, min_block):
    threads(n_threads)
    seen = []
    blocks = parallel.map_blocks(lambda s: (s.start, s.stop, threading.get_ident()), size,
                                 min_block)
    for start, stop, _ in blocks:
        seen.extend(range(start, stop))
    assert seen == list(range(size))
    assert len(blocks) == max(1, min(n_threads, size // min_block))
    assert all(stop - start >= min(min_block, size) for start, stop, _ in blocks)
    if len(blocks) > 1:         # the caller takes a block, the pool the others
        assert blocks[0][2] == threading.get_ident()
        assert blocks[1][2] != threading.get_ident()


@pytest.mark.parametrize("n_threads, size, min_block, max_block",
                         [(1, 10, 1, 3), (2, 10, 1, 3), (3, 100, 10, 7), (2, 5, 1, 10),
                          (2, 0, 1, 4)])
def test_map_blocks_walks_each_share_in_blocks_of_at_most_max_block(threads, n_threads,
                                                                    size, min_block,
                                                                    max_block):
    threads(n_threads)
    blocks = parallel.map_blocks(lambda s: (s.start, s.stop, threading.get_ident()), size,
                                 min_block, max_block)
    seen = [i for start, stop, _ in blocks for i in range(start, stop)]
    assert seen == list(range(size))
    assert all(stop - start <= max_block for start, stop, _ in blocks)
    shares = max(1, min(n_threads, size // min_block))
    assert len({ident for _, _, ident in blocks}) <= shares
    # each thread's share is cut into ceil(share / max_block) blocks
    bounds = [size * i // shares for i in range(shares + 1)]
    expected = sum(max(1, -(-(b - a) // max_block)) for a, b in zip(bounds, bounds[1:]))
    assert len(blocks) == expected


def _fails_in_second_block(s):
    if s.start > 0:
        raise ArithmeticError("second block")
    return s


def test_map_blocks_passes_exceptions_on(threads):
    threads(2)
    with pytest.raises(ArithmeticError, match="second block"):
        parallel.map_blocks(_fails_in_second_block, 8)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="set_num_threads: n must be a positive int"):
        parallel.set_num_threads(bad)


@pytest.mark.parametrize("shape", [(8, 16, 32, 32), (16, 3, 64, 64), (32, 2, 64, 64),
                                   (32, 4, 32, 32)])
def test_batch_norm_threads_do_not_change_float32_results(threads, shape):
    """Each channel is summed whole inside one block, and the same way in a block of one
    channel as in a block of many: any split gives the same bits."""
    rng = np.random.default_rng(8)
    x = (3 * rng.standard_normal(shape) + 1).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        threads(n)
        X = md.tensor(x, requires_grad=True)
        y = batch_norm(X, None, None, training=True)
        y.backward(md.tensor(gy))
        results.append((y.numpy(), X.grad.numpy()))
    for y, g in results[1:]:
        assert np.array_equal(y, results[0][0]) and np.array_equal(g, results[0][1])


# ---- map_gemm_blocks: shares in threads, BLAS single-threaded meanwhile ------------------
def _needs_settable_blas():
    pytest.importorskip("threadpoolctl")
    if parallel._blas_controller() is None:
        pytest.skip("threadpoolctl finds no BLAS library in this process")


def _blas_threads():
    """NumPy's BLAS thread count as threadpoolctl reads it, or None without it."""
    blas = parallel._blas_controller()
    return None if blas is None else blas.info()[0]["num_threads"]


@pytest.mark.parametrize("n_threads, size", [(2, 10), (3, 10), (3, 2), (2, 1), (1, 10)])
def test_map_gemm_blocks_runs_blas_single_threaded_in_its_shares(threads, n_threads, size):
    _needs_settable_blas()
    threads(n_threads)
    outside = _blas_threads()
    blocks = parallel.map_gemm_blocks(
        lambda s: (s.start, s.stop, threading.get_ident(), _blas_threads()), size)
    assert [i for start, stop, *_ in blocks for i in range(start, stop)] == list(range(size))
    shares = min(n_threads, size)
    assert len(blocks) == max(1, shares)
    if shares > 1:          # the shares run in threads, each with one BLAS thread
        assert blocks[0][2] == threading.get_ident()
        assert all(ident != threading.get_ident() for _, _, ident, _ in blocks[1:])
        assert all(inside == 1 for *_, inside in blocks)
    else:                   # one share: the caller's thread and BLAS's own threads
        assert blocks[0][2] == threading.get_ident() and blocks[0][3] == outside
    assert _blas_threads() == outside


def test_map_gemm_blocks_puts_blas_threads_back_after_an_exception(threads):
    _needs_settable_blas()
    threads(2)
    outside = _blas_threads()
    with pytest.raises(ArithmeticError, match="second block"):
        parallel.map_gemm_blocks(_fails_in_second_block, 8)
    assert _blas_threads() == outside


def test_map_gemm_blocks_without_threadpoolctl_runs_the_whole_range_here(threads,
                                                                        monkeypatch):
    """BLAS's threads cannot be set: no shares in threads, which would each run BLAS
    on every core at once."""
    monkeypatch.setattr(parallel, "_blas", False)
    threads(3)
    blocks = parallel.map_gemm_blocks(lambda s: (s.start, s.stop, threading.get_ident()), 9)
    assert blocks == [(0, 9, threading.get_ident())]


def test_map_gemm_blocks_calls_in_two_threads_share_one_blas_limit(threads):
    """Thread B's call starts inside thread A's and ends after it: BLAS stays
    single-threaded until B is done too, and then has all its threads back (with a
    limit each, B would put back the "1" it found when it started)."""
    _needs_settable_blas()
    threads(2)
    outside = _blas_threads()
    b_inside, a_done = threading.Event(), threading.Event()

    def b_share(s):
        if s.start == 0:
            b_inside.set()
            assert a_done.wait(timeout=30)

    b = threading.Thread(target=lambda: parallel.map_gemm_blocks(b_share, 4))

    def a_share(s):
        if s.start == 0:
            b.start()
            assert b_inside.wait(timeout=30)

    parallel.map_gemm_blocks(a_share, 4)
    after_a = _blas_threads()
    a_done.set()
    b.join(timeout=30)
    assert after_a == 1                   # B is still inside
    assert _blas_threads() == outside


def test_map_blocks_inside_a_pool_thread_runs_there(threads):
    """A share that itself calls map_blocks (say, an op inside an op) must not wait for
    the pool it is running on."""
    threads(2)

    def share(s):
        return parallel.map_blocks(lambda t: (t.start, t.stop, threading.get_ident()), 6)

    result = []
    caller = threading.Thread(target=lambda: result.append(parallel.map_blocks(share, 4)),
                              daemon=True)          # if it hangs, the test still ends
    caller.start()
    caller.join(timeout=30)
    assert result, "map_blocks inside a pool thread waited for its own pool"
    outer = result[0]
    assert len(outer[0]) == 2                     # the caller's share used the pool
    inner_in_pool = outer[1]
    assert [(a, b) for a, b, _ in inner_in_pool] == [(0, 6)]


# ---- map_gemm_chunks: chunks handed out to whichever thread is free ---------------------
def _chunk_worker(log, delay_in=None):
    """A make_worker for map_gemm_chunks that records which thread made it, ran which
    chunk and released; ``delay_in``: the thread ident whose chunks take 20 ms each."""
    import time

    def make_worker():
        me = threading.get_ident()
        log.append(("made", me))

        def run(chunk):
            if delay_in is not None and me == delay_in:
                time.sleep(0.02)
            log.append(("ran", me, chunk))
            return np.float32(chunk) / 3      # a result whose sum depends on order
        return run, lambda: log.append(("released", me))
    return make_worker


@pytest.mark.parametrize("n_threads, n_chunks", [(1, 6), (2, 6), (3, 7), (3, 2), (2, 1)])
def test_map_gemm_chunks_runs_every_chunk_once_and_returns_them_in_order(threads,
                                                                        n_threads, n_chunks):
    threads(n_threads)
    log = []
    results = parallel.map_gemm_chunks(_chunk_worker(log), list(range(n_chunks)))
    assert results == [np.float32(i) / 3 for i in range(n_chunks)]
    ran = sorted(chunk for event, _, *chunk in log if event == "ran" for chunk in chunk)
    assert ran == list(range(n_chunks))
    made = [who for event, who in (e[:2] for e in log) if event == "made"]
    released = [who for event, who in (e[:2] for e in log) if event == "released"]
    assert sorted(made) == sorted(released)     # (a pool thread may take two turns)
    if parallel._blas_controller() is not None:
        assert 1 <= len(made) <= min(n_threads, n_chunks)
    else:
        assert made == [threading.get_ident()]


def test_map_gemm_chunks_gives_a_slow_threads_chunks_to_the_others(threads):
    """While the calling thread is slow, the pool thread takes most chunks; the sum is
    still taken in chunk order: the same bits as one thread's."""
    if parallel._blas_controller() is None:
        pytest.skip("threadpoolctl finds no BLAS library in this process: one thread")
    threads(2)
    log = []
    total = parallel.map_gemm_chunks(_chunk_worker(log, delay_in=threading.get_ident()),
                                     list(range(40)), combine=lambda a, b: a + b)
    mine = [e for e in log if e[0] == "ran" and e[1] == threading.get_ident()]
    assert len(mine) < 20
    expected = np.float32(0)
    for i in range(40):
        expected = expected + np.float32(i) / 3 if i else np.float32(0) / 3
    assert total == expected and type(total) is type(expected)


def test_map_gemm_chunks_runs_blas_single_threaded_and_puts_it_back(threads):
    _needs_settable_blas()
    threads(2)
    outside = _blas_threads()
    inside = parallel.map_gemm_chunks(lambda: ((lambda c: _blas_threads()), lambda: None),
                                      list(range(4)))
    assert inside == [1, 1, 1, 1] and _blas_threads() == outside

    def fails(chunk):
        if chunk == 2:
            raise ArithmeticError("chunk 2")
    log = []
    with pytest.raises(ArithmeticError, match="chunk 2"):
        parallel.map_gemm_chunks(lambda: (fails, lambda: log.append("released")),
                                 list(range(4)))
    assert _blas_threads() == outside and log == ["released", "released"]


# ---- elementwise ops on blocks in threads ----------------------------------------------------
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_relu_add_mul_on_threads_match_numpy(threads, n_threads):
    """ReLU, Add and Mul split a large array into blocks on minidl's threads (above
    THREADED_MIN_SIZE values): the same values as NumPy's one call, and gradients too;
    a transposed (non-contiguous) operand takes the one-call path."""
    from minidl.ops import elementwise
    threads(n_threads)
    rng = np.random.default_rng(0)
    shape = (3, 16, 80, 80)                 # 307,200 values
    assert np.prod(shape) >= elementwise.THREADED_MIN_SIZE
    a, b = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    ta, tb = md.tensor(a, requires_grad=True), md.tensor(b, requires_grad=True)
    y = md.relu(ta) * tb + ta
    assert np.array_equal(y.numpy(), np.maximum(a, 0) * b + a)
    y.backward(md.ones(shape))
    assert np.array_equal(ta.grad.numpy(), (a > 0) * b + 1)
    assert np.array_equal(tb.grad.numpy(), np.maximum(a, 0))
    at = a.transpose(0, 1, 3, 2)
    assert np.array_equal(md.relu(md.tensor(at)).numpy(), np.maximum(at, 0))
    assert np.array_equal((md.tensor(at) + md.tensor(at)).numpy(), at + at)


def test_map_gemm_chunks_not_shared_runs_here_on_blas_threads(threads):
    """share=False (a conv too small to gain from sharing): every chunk in the calling
    thread, in order, with BLAS's own thread count."""
    threads(2)
    outside = _blas_threads()
    seen = parallel.map_gemm_chunks(
        lambda: ((lambda c: (c, threading.get_ident(), _blas_threads())), lambda: None),
        list(range(5)), share=False)
    assert seen == [(c, threading.get_ident(), outside) for c in range(5)]

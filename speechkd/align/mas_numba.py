"""Monotonic alignment search: the numba CPU kernel (see speechkd.align.mas for the algorithm).

It is faster than Glow-TTS's Cython kernel and than the same loop ported to
numba as is (``speechkd bench align``; measured in
egs/mini_en/tts1/RESULTS.md, "Speed"), thanks to
these layout choices:

- the DP keeps only two rows of Q (frame t-1 and t, indexed by token) and
  records each cell's decision, Q[s-1, t-1] > Q[s, t-1], in a bool buffer
  [T, S]; the backtrack reads decisions, not scores, and the input is never
  copied or modified;
- frames are processed in tiles of ``TILE`` frames: the tile of log_p is first
  transposed into a [TILE, S] buffer (eight token rows at a time) so that the
  inner loop over tokens reads contiguous memory and compiles to AVX2/AVX-512
  code (loop bounds written as ``range(n)`` from an offset: numba's
  ``range(lo, hi)`` defeats LLVM's vectoriser here);
- work buffers are allocated per calling thread, grown when needed and reused;
- with ``parallel=True`` items are spread over numba's threads round-robin
  (``prange`` over workers); by default the same kernel runs serially.

fastmath stays off so that float32 sums and the strict comparison give exactly
the ties of the reference implementation.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
from numba import njit, prange

TILE = 16  # frames transposed at a time: 16 float32 = one 64-byte cache line of a token row
_NEG = np.float32(-np.inf)


@njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _transpose_tile(v, tile, lo, n, t0, kk):
    """tile[k, s] = v[s, t0 + k] for tokens lo .. lo+n-1 and k < kk. Eight token rows at a
    time, written out: LLVM then emits 8-wide stores (faster than a gather loop)."""
    i = lo
    while i + 8 <= lo + n:
        for k in range(kk):
            t = t0 + k
            tile[k, i] = v[i, t]
            tile[k, i + 1] = v[i + 1, t]
            tile[k, i + 2] = v[i + 2, t]
            tile[k, i + 3] = v[i + 3, t]
            tile[k, i + 4] = v[i + 4, t]
            tile[k, i + 5] = v[i + 5, t]
            tile[k, i + 6] = v[i + 6, t]
            tile[k, i + 7] = v[i + 7, t]
        i += 8
    while i < lo + n:
        for k in range(kk):
            tile[k, i] = v[i, t0 + k]
        i += 1


@njit(nogil=True, cache=True, boundscheck=False, fastmath=False)
def _mas_one(path, v, S, T, q, came_from_prev, tile, zero):
    """One item: path [S_max, T_max] int32 (zeroed here if ``zero``), v [S_max, T_max] float32,
    q [2, S_max + 1] float32 (q[p, s+1] = Q[s]; q[p, 0] = Q[-1] = -inf),
    came_from_prev [T_max, S_max] bool, tile [TILE, S_max] float32."""
    for i in range(q.shape[1]):
        q[0, i] = _NEG
        q[1, i] = _NEG
    q[0, 1] = v[0, 0]
    t0 = 1
    while t0 < T:
        kk = min(TILE, T - t0)
        lo0 = max(0, S - T + t0)
        n0 = min(S, t0 + kk) - lo0
        _transpose_tile(v, tile, lo0, n0, t0, kk)
        for k in range(kk):
            t = t0 + k
            old = q[(t - 1) & 1]
            new = q[t & 1]
            vk = tile[k]
            dt = came_from_prev[t]
            lo = max(0, S - T + t)
            n = min(S, t + 1) - lo
            for i in range(n):
                s = lo + i
                a = old[s]       # Q[s-1, t-1]
                c = old[s + 1]   # Q[s, t-1]
                new[s + 1] = vk[s] + (a if a > c else c)
                dt[s] = a > c
        t0 += kk
    if zero:
        for s in range(path.shape[0]):
            prow = path[s]
            for t in range(path.shape[1]):
                prow[t] = 0
    s = S - 1
    for t in range(T - 1, -1, -1):
        path[s, t] = 1
        if s != 0 and (s == t or came_from_prev[t, s]):
            s -= 1


@njit(nogil=True, cache=True, boundscheck=False)
def _mas_serial(paths, v, s_len, t_len, q, came_from_prev, tile, zero):
    for b in range(paths.shape[0]):
        _mas_one(paths[b], v[b], s_len[b], t_len[b], q[0], came_from_prev[0], tile[0], zero)


@njit(nogil=True, cache=True, boundscheck=False, parallel=True)
def _mas_parallel(paths, v, s_len, t_len, q, came_from_prev, tile, zero):
    workers = q.shape[0]
    for w in prange(workers):  # worker w takes items w, w + workers, ...: balances ragged batches
        for b in range(w, paths.shape[0], workers):
            _mas_one(paths[b], v[b], s_len[b], t_len[b], q[w], came_from_prev[w], tile[w], zero)


_local = threading.local()  # per calling thread: nogil callers never share buffers


def _view(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A C-contiguous ``shape`` view of this thread's flat buffer ``name``, grown when too small."""
    size = int(np.prod(shape))
    flat = getattr(_local, name, None)
    if flat is None or flat.size < size:
        flat = np.empty(max(size, 1), dtype=dtype)
        setattr(_local, name, flat)
    return flat[:size].reshape(shape)


def _buffers(workers: int, s_max: int, t_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Work buffers for ``workers`` items in flight, reused across calls."""
    return (_view("q", (workers, 2, s_max + 1), np.float32),
            _view("came_from_prev", (workers, t_max, s_max), np.bool_),
            _view("tile", (workers, TILE, s_max), np.float32))


def maximum_path_numba(v: np.ndarray, s_len: np.ndarray, t_len: np.ndarray, out: np.ndarray | None = None,
                       parallel: bool = False) -> np.ndarray:
    """Path [B, S_max, T_max] int32 of float32 C-contiguous scores ``v`` [B, S_max, T_max].

    Lengths must already be checked (speechkd.align.mas.check_lengths).
    ``out``: an int32 array of the same shape to write into (no allocation).
    ``parallel``: spread items over numba's threads. Off by default: on an idle
    2-core machine it gains (``speechkd bench align``), but when
    another process holds a core the statically split work waits for it,
    and numba's OpenMP pool, once started, competes with torch's."""
    batch, s_max, t_max = v.shape
    # A new output comes from calloc (fresh pages are zero already: no second pass);
    # a caller's ``out`` is zeroed in the kernel, item by item.
    zero = out is not None
    if out is None:
        out = np.zeros((batch, s_max, t_max), dtype=np.int32)
    s_len = np.ascontiguousarray(s_len, dtype=np.int64)
    t_len = np.ascontiguousarray(t_len, dtype=np.int64)
    # Asked only when needed: numba.get_num_threads() starts numba's threading layer.
    workers = min(batch, numba.get_num_threads()) if parallel and batch > 1 else 1
    if workers > 1:
        _mas_parallel(out, v, s_len, t_len, *_buffers(workers, s_max, t_max), zero)
    else:
        _mas_serial(out, v, s_len, t_len, *_buffers(1, s_max, t_max), zero)
    return out

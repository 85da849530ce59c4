"""Monotonic alignment search: numba.cuda kernels (see speechkd.align.mas for the algorithm).

Two variants, both giving exactly the paths of the CPU kernel (float32 adds,
strict comparisons, no FMA: there is no multiplication to fuse):

- ``thread``: one thread per utterance, the CPU kernel's loop as is. Work
  buffers interleave the batch innermost ([2, S+1, B] scores, [T, S, B]
  decisions) so that the threads of a warp touch neighbouring addresses.
- ``block``: one block per utterance, one thread per token (threads stride over
  tokens past the block size). Both rows of Q live in shared memory; log_p is
  staged into shared memory ``tile`` frames at a time with coalesced loads
  (consecutive threads read consecutive frames of a token row); one
  ``syncthreads`` per frame. The backtrack is serial, so the block fetches the
  decisions it can need next (a ``tile`` x ``tile`` window) into shared memory
  and thread 0 walks them: one global round trip per ``tile`` frames, not one
  per frame.

``variant="auto"`` picks ``block`` when its shared memory fits (S_max up to
~5800 tokens), else ``thread``. Which one is faster depends on the GPU and the
shapes: ``speechkd bench align --backends cuda`` times both.

Under ``NUMBA_ENABLE_CUDASIM=1`` the kernels run in numba's simulator (numpy
inputs), which is how the tests check them against the CPU kernel.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from numba import cuda, float32, int8, int32

logger = logging.getLogger(__name__)

MAX_TILE = 32
_SHARED_BYTES = 48 * 1024  # dynamic shared memory available without an opt-in
_THREADS_PER_BLOCK = 256


def cuda_available() -> bool:
    """True when numba can launch CUDA kernels (a GPU and driver, or the simulator)."""
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install must not break CPU users
        return False


@cuda.jit
def _mas_thread_kernel(v, s_len, t_len, q, came, path):
    b = cuda.grid(1)
    if b >= v.shape[0]:
        return
    S = s_len[b]
    T = t_len[b]
    for i in range(S + 1):
        q[0, i, b] = -math.inf
        q[1, i, b] = -math.inf
    q[0, 1, b] = v[b, 0, 0]
    for t in range(1, T):
        o = (t - 1) & 1
        n = t & 1
        for s in range(max(0, S - T + t), min(S, t + 1)):
            a = q[o, s, b]
            c = q[o, s + 1, b]
            if a > c:
                q[n, s + 1, b] = v[b, s, t] + a
                came[t, s, b] = 1
            else:
                q[n, s + 1, b] = v[b, s, t] + c
                came[t, s, b] = 0
    s = S - 1  # path was zeroed by _zero_kernel
    for t in range(T - 1, -1, -1):
        path[b, s, t] = 1
        if s != 0 and (s == t or came[t, s, b] != 0):
            s -= 1


@cuda.jit
def _zero_kernel(path):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    n = path.shape[0] * path.shape[1] * path.shape[2]
    while i < n:
        b = i // (path.shape[1] * path.shape[2])
        r = i - b * path.shape[1] * path.shape[2]
        path[b, r // path.shape[2], r % path.shape[2]] = 0
        i += stride


@cuda.jit
def _mas_block_kernel(v, s_len, t_len, came, path, tile):
    b = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    s_max = path.shape[1]
    S = s_len[b]
    T = t_len[b]
    # Dynamic shared memory: Q rows at [0, S_max+1) and [S_max+1, 2 S_max+2), then the log_p tile.
    dyn = cuda.shared.array(0, dtype=float32)
    w1 = s_max + 1
    toff = 2 * w1
    win = cuda.shared.array((MAX_TILE, MAX_TILE), dtype=int8)
    cur = cuda.shared.array(1, dtype=int32)
    for i in range(tid, 2 * w1, nt):
        dyn[i] = -math.inf
    cuda.syncthreads()
    if tid == 0:
        dyn[1] = v[b, 0, 0]
    t0 = 1
    while t0 < T:
        kk = min(tile, T - t0)
        lo0 = max(0, S - T + t0)
        rows = min(S, t0 + kk) - lo0
        for i in range(tid, rows * kk, nt):  # coalesced: neighbouring threads, neighbouring frames
            r = i // kk
            k = i - r * kk
            dyn[toff + k * s_max + lo0 + r] = v[b, lo0 + r, t0 + k]
        cuda.syncthreads()
        for k in range(kk):
            t = t0 + k
            o = ((t - 1) & 1) * w1
            n = (t & 1) * w1
            for s in range(max(0, S - T + t) + tid, min(S, t + 1), nt):
                a = dyn[o + s]
                c = dyn[o + s + 1]
                if a > c:
                    dyn[n + s + 1] = dyn[toff + k * s_max + s] + a
                    came[b, t, s] = 1
                else:
                    dyn[n + s + 1] = dyn[toff + k * s_max + s] + c
                    came[b, t, s] = 0
            cuda.syncthreads()
        t0 += kk
    for s in range(s_max):
        for t in range(tid, path.shape[2], nt):
            path[b, s, t] = 0
    if tid == 0:
        cur[0] = S - 1
    cuda.syncthreads()
    t_hi = T - 1
    while t_hi >= 0:
        s_hi = cur[0]
        t_lo = max(0, t_hi - tile + 1)
        for i in range(tid, tile * tile, nt):  # decisions of frames t_hi - r, tokens s_hi - j
            r = i // tile
            j = i - r * tile
            if t_hi - r >= max(t_lo, 1) and s_hi - j >= 0:
                win[r, j] = came[b, t_hi - r, s_hi - j]
        cuda.syncthreads()
        if tid == 0:
            s = s_hi
            for t in range(t_hi, t_lo - 1, -1):
                path[b, s, t] = 1
                if s != 0 and (s == t or win[t_hi - t, s_hi - s] != 0):
                    s -= 1
            cur[0] = s
        cuda.syncthreads()
        t_hi = t_lo - 1


def block_tile(s_max: int) -> int:
    """Frames per shared-memory tile of the block kernel for S_max tokens (0: does not fit)."""
    free = _SHARED_BYTES // 4 - 2 * (s_max + 1)
    k = MAX_TILE
    while k > 1 and k * s_max > free:
        k //= 2
    return k if k * s_max <= free else 0


def maximum_path_cuda(log_p: Any, s_len: np.ndarray, t_len: np.ndarray, variant: str = "auto",
                      tile: int | None = None, threads: int | None = None) -> Any:
    """Path [B, S_max, T_max] int32 on the GPU; returns the input's kind.

    ``log_p``: a CUDA torch tensor (launched on torch's current stream, result a
    torch tensor), a numba device array, or a numpy array (copied to the device
    and back; the only input the simulator takes). Lengths must be checked
    already (speechkd.align.mas.check_lengths). ``tile``/``threads`` override the
    block kernel's frames per tile (<= 32) and threads per block (tests, tuning)."""
    batch, s_max, t_max = (int(n) for n in log_p.shape)
    tile = block_tile(s_max) if tile is None else min(int(tile), MAX_TILE)
    if variant == "auto":
        variant = "block" if tile else "thread"
    if variant not in ("thread", "block") or (variant == "block" and not tile):
        raise ValueError(f"bad CUDA MAS variant {variant!r} for S_max={s_max}")
    torch_in = type(log_p).__module__.startswith("torch")
    if torch_in:
        import torch

        log_p = log_p.detach().to(torch.float32).contiguous()
        stream = cuda.external_stream(torch.cuda.current_stream(log_p.device).cuda_stream)
        dev = log_p.device

        def empty(shape, dtype):
            return cuda.as_cuda_array(torch.empty(shape, dtype=getattr(torch, dtype), device=dev))

        path_t = torch.empty((batch, s_max, t_max), dtype=torch.int32, device=dev)
        v, path = cuda.as_cuda_array(log_p), cuda.as_cuda_array(path_t)
    else:
        stream = 0  # the default stream (the simulator has no stream objects)
        host = not hasattr(log_p, "copy_to_host")

        def empty(shape, dtype):
            return cuda.device_array(shape, dtype=getattr(np, dtype), stream=stream)

        v = cuda.to_device(np.ascontiguousarray(log_p, dtype=np.float32), stream=stream) if host else log_p
        path = empty((batch, s_max, t_max), "int32")
    sl = cuda.to_device(np.ascontiguousarray(s_len, dtype=np.int64), stream=stream)
    tl = cuda.to_device(np.ascontiguousarray(t_len, dtype=np.int64), stream=stream)
    if variant == "thread":
        q = empty((2, s_max + 1, batch), "float32")
        came = empty((t_max, s_max, batch), "int8")
        _zero_kernel[min(1024, (batch * s_max * t_max + 255) // 256), 256, stream](path)
        _mas_thread_kernel[(batch + 31) // 32, 32, stream](v, sl, tl, q, came, path)
    else:
        came = empty((batch, t_max, s_max), "int8")
        if threads is None:
            threads = min(_THREADS_PER_BLOCK, max(32, (s_max + 31) // 32 * 32))
        shared = 4 * (2 * (s_max + 1) + tile * s_max)
        _mas_block_kernel[batch, threads, stream, shared](v, sl, tl, came, path, tile)
    logger.debug("CUDA MAS %s variant, B=%d S=%d T=%d", variant, batch, s_max, t_max)
    if torch_in:
        return path_t
    if host:
        return path.copy_to_host(stream=stream)
    return path

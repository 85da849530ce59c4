"""The harmonic sum of :mod:`speechkd.models.vocoders.source_filter` as a numba.cuda kernel.

One thread per output sample (b, n), a 2-D grid over (samples, utterances): each thread reads
its phase, the two frames of harmonic amplitudes around it (neighbouring threads share them:
P = 80 samples per frame, so a warp reads the same cache lines) and accumulates the
Chebyshev-recurrence harmonic sum in a register, exactly the float32 arithmetic of the CPU
twin :func:`~speechkd.models.vocoders.source_filter.harmonics_cpu`. Nothing of size
[B, N, K] is ever stored.

Under ``NUMBA_ENABLE_CUDASIM=1`` the kernel runs in numba's simulator (numpy in and out),
which is how the tests compare it with the CPU twin.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

THREADS = 128


@cuda.jit
def _harmonics_kernel(phase, amp, kcount, n_samples, period, out):  # pragma: no cover - device code
    n = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    b = cuda.blockIdx.y
    if n >= phase.shape[1]:
        return
    if n >= n_samples[b]:
        out[b, n] = float32(0.0)
        return
    T = amp.shape[1]
    pos = float32(n) / period
    t = min(int(pos), T - 1)
    t1 = min(t + 1, T - 1)
    w = float32(pos - float32(t))
    c1 = float32(math.cos(phase[b, n]))
    two_c1 = float32(2.0) * c1
    prev = float32(1.0)
    cur = c1
    acc = float32(0.0)
    for k in range(kcount[b, t]):
        a = (float32(1.0) - w) * amp[b, t, k] + w * amp[b, t1, k]
        acc += a * cur
        nxt = two_c1 * cur - prev
        prev = cur
        cur = nxt
    out[b, n] = acc


def cuda_available() -> bool:
    """True when numba can launch CUDA kernels (a GPU and driver, or the simulator)."""
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install must not break CPU users
        return False


def harmonics_cuda(arrays: dict[str, np.ndarray], *, to_host: bool = True):
    """x_h [B, N] float32 from the arrays of :func:`~speechkd.models.vocoders.source_filter.prepare`."""
    phase = arrays["phase"]
    B, N = phase.shape
    d = {k: cuda.to_device(np.ascontiguousarray(arrays[k])) for k in ("phase", "amp", "kcount", "n_samples")}
    out = cuda.device_array((B, N), dtype=np.float32)
    grid = ((N + THREADS - 1) // THREADS, B)
    _harmonics_kernel[grid, THREADS](d["phase"], d["amp"], d["kcount"], d["n_samples"],
                                     np.float32(arrays["period"]), out)
    return out.copy_to_host() if to_host else out

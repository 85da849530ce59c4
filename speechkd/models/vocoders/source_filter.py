"""Batched harmonic-plus-noise synthesis from WORLD parameters (F0, spectral envelope, aperiodicity).

A source-filter synthesis in the spirit of WORLD's own (Morise et al. 2016), written so that
a whole batch runs as one kernel launch: the periodic part is a sum of harmonics whose
amplitudes are read off the envelope, the aperiodic part is white noise shaped by it::

    φ(n)    = 2π Σ_{m<n} f0(m) / fs                          (f0 linear between frames)
    A_k(t)  = 2 sqrt(sp_t(k f0_t) (1 − ap_t(k f0_t)²) f0_t / fs)     k f0_t < fs/2, voiced t
    x_h(n)  = Σ_k [(1 − w) A_k(t) + w A_k(t+1)] cos(k φ(n)),   t = ⌊n / P⌋, w = n / P − t
    x_n     = iSTFT(STFT(ε) · sqrt(sp) · ap),  ε ~ N(0, 1)
    x       = x_h + x_n

(P: frame period in samples). The constants follow CheapTrick's scale, measured here: a
harmonic of amplitude a at F0 f0 gives sp = a² fs / (4 f0) (4.13 measured at 100-220 Hz);
white noise of variance σ² gives sp = σ² (0.98). ``cos(k φ)`` comes from the Chebyshev
recurrence cos((k+1)φ) = 2 cos φ cos kφ − cos((k−1)φ): two multiply-adds per harmonic,
no transcendental in the inner loop.

Why a custom kernel (the CUDA path of this package), chosen by measurement
(``speechkd bench vocoder --threads 1``, 10 s of audio, loaded 2-core CPU, one process,
median wall times):

- torch has no source-filter synthesis; pyworld's (C++) runs one utterance at a time on the
  CPU only. Ours, noise and preparation included, is faster on the CPU twin, batched, and
  has a GPU path;
- in torch the harmonic sum must materialise [B, N, K] (K = 79 harmonics here: 12.6 M
  elements per 10 s utterance), far slower than the numba twin, which keeps
  the sum in a register, one output sample per (GPU) thread;
- the other candidates already have fast torch paths: the iSTFT / overlap-add is
  ``torch.istft`` (cuFFT on a GPU), and a fused Griffin-Lim phase update could only save the
  elementwise ``sgn``/``sub`` of each iteration, a small share of fast GL, the rest being
  the STFT and iSTFT. The timings: egs/mini_en/tts1/RESULTS.md, "Speed" and "Vocoders".

The CPU twin (:func:`harmonics_cpu`, numba) and the CUDA kernel
(:mod:`speechkd.models.vocoders.source_filter_cuda`) run the same float32 arithmetic; the tests
check them against each other under numba's CUDA simulator and against a float64 numpy
reference (:func:`harmonics_reference`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

from speechkd.errors import SpeechkdError

HARMONIC_SCALE = 4.0  # a² = 4 sp f0 / fs  (CheapTrick's harmonic level, measured 4.13)


def prepare(params: list, max_harmonics: int = 0) -> dict[str, np.ndarray]:
    """Per-batch arrays of the kernels: ``phase`` [B, N] (float32, wrapped to [0, 2π)), ``amp``
    [B, T, K], ``kcount`` [B, T] (harmonics to sum around frame t), ``n_samples`` [B] and the
    frame period in samples ``period``."""
    fs = params[0].sample_rate
    period = fs * params[0].frame_period_ms / 1000.0
    T = max(len(p.f0) for p in params)
    f0min = min([float(p.f0[p.f0 > 0].min()) for p in params if (p.f0 > 0).any()] or [fs / 2])
    K = max_harmonics or max(1, int(fs / 2 / f0min))
    B = len(params)
    n_samples = np.array([int((len(p.f0) - 1) * period) + 1 for p in params], dtype=np.int32)
    N = int(n_samples.max())
    amp = np.zeros((B, T, K), np.float32)
    kc = np.zeros((B, T), np.int32)
    phase = np.zeros((B, N), np.float32)
    for b, p in enumerate(params):
        f0 = np.asarray(p.f0, np.float64)
        fft_size = (p.sp.shape[1] - 1) * 2
        voiced = f0 > 0
        kt = np.where(voiced, np.floor(fs / 2 / np.maximum(f0, 1e-3)), 0).astype(np.int64).clip(0, K)
        k = np.arange(1, K + 1)[None, :]
        bins = np.minimum(k * f0[:, None] * fft_size / fs, fft_size / 2)  # fractional FFT bin of k f0
        lo = np.floor(bins).astype(np.int64)
        hi = np.minimum(lo + 1, fft_size // 2)
        w = bins - lo
        rows = np.arange(len(f0))[:, None]
        sp = (1 - w) * p.sp[rows, lo] + w * p.sp[rows, hi]
        ap = (1 - w) * p.ap[rows, lo] + w * p.ap[rows, hi]
        a = np.sqrt(HARMONIC_SCALE * np.maximum(sp * (1 - ap ** 2), 0) * f0[:, None] / fs)
        a[k > kt[:, None]] = 0.0
        amp[b, :len(f0)] = a
        kc[b, :len(f0)] = np.maximum(kt, np.append(kt[1:], 0))  # harmonics alive at t or t + 1
        # per-sample F0: linear between voiced frames; at a voicing edge the voiced frame's F0
        n = np.arange(n_samples[b]) / period
        left = np.interp(np.arange(len(f0)), np.flatnonzero(voiced), f0[voiced]) if voiced.any() \
            else np.zeros(len(f0))
        f = np.interp(n, np.arange(len(f0)), left)
        both_unvoiced = ~voiced[np.minimum(n.astype(np.int64), len(f0) - 1)] & \
            ~voiced[np.minimum(n.astype(np.int64) + 1, len(f0) - 1)]
        f[both_unvoiced] = 0.0
        ph = 2 * np.pi * np.concatenate([[0.0], np.cumsum(f[:-1])]) / fs
        phase[b, :n_samples[b]] = np.mod(ph, 2 * np.pi)
    return {"phase": phase, "amp": amp, "kcount": kc, "n_samples": n_samples, "period": np.float32(period)}


@njit(cache=True, fastmath=False)
def harmonics_cpu(phase, amp, kcount, n_samples, period, out):  # pragma: no cover - numba
    """x_h of every utterance into ``out`` [B, N] (the CPU twin of the CUDA kernel)."""
    B, N = phase.shape
    T = amp.shape[1]
    for b in range(B):
        for n in range(N):
            if n >= n_samples[b]:
                out[b, n] = 0.0
                continue
            pos = np.float32(n) / period
            t = min(int(pos), T - 1)
            t1 = min(t + 1, T - 1)
            w = np.float32(pos - np.float32(t))
            c1 = np.float32(math.cos(phase[b, n]))
            two_c1 = np.float32(2.0) * c1
            prev = np.float32(1.0)  # cos(0 φ)
            cur = c1  # cos(1 φ)
            acc = np.float32(0.0)
            for k in range(kcount[b, t]):
                a = (np.float32(1.0) - w) * amp[b, t, k] + w * amp[b, t1, k]
                acc += a * cur
                nxt = two_c1 * cur - prev
                prev = cur
                cur = nxt
            out[b, n] = acc


def harmonics_reference(phase: np.ndarray, amp: np.ndarray, kcount: np.ndarray, n_samples: np.ndarray,
                        period: float) -> np.ndarray:
    """The same sum in float64 numpy with explicit cosines (the tests' oracle; materialises [N, K])."""
    B, N = phase.shape
    out = np.zeros((B, N))
    T, K = amp.shape[1:]
    for b in range(B):
        n = np.arange(n_samples[b])
        pos = n.astype(np.float32) / np.float32(period)
        t = np.minimum(pos.astype(np.int64), T - 1)
        t1 = np.minimum(t + 1, T - 1)
        w = (pos - t)[:, None]
        a = (1 - w) * amp[b, t].astype(np.float64) + w * amp[b, t1].astype(np.float64)
        a[np.arange(K)[None, :] >= kcount[b, t][:, None]] = 0.0
        out[b, n] = (a * np.cos(np.arange(1, K + 1)[None, :] * phase[b, n, None].astype(np.float64))).sum(1)
    return out


def harmonics(arrays: dict[str, np.ndarray], device: str = "cpu") -> np.ndarray:
    """x_h [B, N] float32: the CUDA kernel on ``cuda``, the numba CPU twin otherwise."""
    if str(device).startswith("cuda"):
        # why: numba.cuda, GPU only
        from speechkd.models.vocoders.source_filter_cuda import cuda_available, harmonics_cuda

        if not cuda_available():
            raise SpeechkdError("the CUDA harmonic kernel needs a GPU that numba can use", field="--device",
                                hint="use --device cpu (the numba CPU twin) or auto")
        return harmonics_cuda(arrays)
    out = np.empty(arrays["phase"].shape, np.float32)
    harmonics_cpu(arrays["phase"], arrays["amp"], arrays["kcount"], arrays["n_samples"], arrays["period"], out)
    return out


def aperiodic(params: list, n_samples: np.ndarray, device: str = "cpu", seed: int = 0) -> torch.Tensor:
    """x_n [B, N]: unit white noise shaped in the STFT domain by sqrt(sp)·ap (hop = frame period)."""
    fs = params[0].sample_rate
    hop = int(round(fs * params[0].frame_period_ms / 1000.0))
    fft_size = (params[0].sp.shape[1] - 1) * 2
    win = min(4 * hop, fft_size)
    N = int(n_samples.max())
    g = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(len(params), N, generator=g).to(device)
    window = torch.hann_window(win, device=device)
    spec = torch.stft(noise, fft_size, hop, win, window, center=True, return_complex=True)  # [B, F, T']
    gain = np.zeros((len(params), spec.shape[1], spec.shape[2]), np.float32)
    for b, p in enumerate(params):
        m = min(len(p.f0), spec.shape[2])
        gain[b, :, :m] = (np.sqrt(p.sp[:m]) * p.ap[:m]).T
    # torch.istft divides by the summed squared windows: a flat gain g returns g·ε exactly, and a
    # smooth gain G(f) gives the power spectrum G(f)² (= sp·ap², CheapTrick's noise scale)
    return torch.istft(spec * torch.from_numpy(gain).to(device), fft_size, hop, win, window, center=True, length=N)


def synthesize_batch(params: list, device: str = "cpu", seed: int = 0) -> list[np.ndarray]:
    """Waveforms of WORLD parameters (one per utterance, float32 numpy)."""
    arrays = prepare(params)
    xh = harmonics(arrays, device)
    xn = aperiodic(params, arrays["n_samples"], device, seed).cpu().numpy()
    return [(xh[b, :n] + xn[b, :n]).astype(np.float32) for b, n in enumerate(arrays["n_samples"])]

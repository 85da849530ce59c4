"""STFT, inverse STFT and Griffin-Lim in numpy, with torch's conventions (``torch.stft`` /
``torch.istft``: the window zero-padded to ``n_fft`` in the middle, one-sided spectra, ``irfft``
scaled by 1/n_fft, overlap-add divided by the summed squared window), so that an exported
vocoder runs without torch and matches :mod:`speechkd.models.vocoders`.

The Vocos head's ``torch.istft`` does not export to a valid ONNX graph (the exporter writes a
ScatterND with int32 indices that onnxruntime refuses), so the exported vocoder stops at the
complex spectrum and :func:`istft` here finishes it.
"""

from __future__ import annotations

import numpy as np


def padded_window(window: np.ndarray, n_fft: int) -> np.ndarray:
    """``window`` (win_length) centred in ``n_fft`` zeros, as torch.stft/istft place it."""
    w = np.zeros(n_fft, np.float32)
    left = (n_fft - len(window)) // 2
    w[left:left + len(window)] = window
    return w


def periodic_window(kind: str, n: int) -> np.ndarray:
    """torch.hann_window / hamming_window(n, periodic=True) in float32."""
    k = np.arange(n, dtype=np.float64)
    if kind == "hann":
        w = 0.5 - 0.5 * np.cos(2 * np.pi * k / n)
    elif kind == "hamming":
        w = 0.54 - 0.46 * np.cos(2 * np.pi * k / n)
    else:
        raise ValueError(f"unknown window {kind!r}")
    return w.astype(np.float32)


def istft(spec: np.ndarray, n_fft: int, hop: int, window: np.ndarray, center: bool, length: int) -> np.ndarray:
    """Inverse of a one-sided STFT ``[B, n_fft/2 + 1, T]`` (complex) -> ``[B, length]`` float32:
    ``x[n] = sum_t w[n - t*hop] y_t[n - t*hop] / sum_t w[n - t*hop]^2`` (least-squares overlap-add,
    Griffin & Lim 1984, eq. 6); with ``center`` the first n_fft/2 samples are dropped."""
    w = padded_window(window, n_fft).astype(np.float64)
    b, _, t = spec.shape
    frames = np.fft.irfft(spec.transpose(0, 2, 1), n=n_fft, axis=-1) * w  # [B, T, n_fft]
    total = n_fft + hop * (t - 1)
    y = np.zeros((b, total), np.float64)
    env = np.zeros(total, np.float64)
    for i in range(t):  # T adds of [B, n_fft]: cheap next to the irfft
        y[:, i * hop:i * hop + n_fft] += frames[:, i]
        env[i * hop:i * hop + n_fft] += w * w
    start = n_fft // 2 if center else 0
    y, env = y[:, start:start + length], env[start:start + length]
    y = y / np.where(env > 1e-11, env, 1.0)
    if y.shape[1] < length:
        y = np.pad(y, ((0, 0), (0, length - y.shape[1])))
    return y.astype(np.float32)


def stft(x: np.ndarray, n_fft: int, hop: int, window: np.ndarray, center: bool) -> np.ndarray:
    """One-sided STFT ``[B, N]`` -> ``[B, n_fft/2 + 1, T]`` complex (reflect padding when centred)."""
    if center:
        x = np.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    t = 1 + (x.shape[1] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(t)[:, None]
    frames = x[:, idx] * padded_window(window, n_fft)  # [B, T, n_fft]
    return np.fft.rfft(frames, axis=-1).transpose(0, 2, 1)


def griffin_lim(mag: np.ndarray, n_fft: int, hop: int, window: np.ndarray, center: bool, length: int, *,
                n_iter: int = 32, momentum: float = 0.99, seed: int = 0) -> np.ndarray:
    """Fast Griffin-Lim (Perraudin et al. 2013, eq. 4, torchaudio's parameterisation
    alpha = momentum / (1 + momentum)) of a magnitude ``[B, freq, T]`` -> ``[B, length]``.
    The initial phase is drawn from numpy's generator, so the result differs from the torch
    vocoder's in the phase it starts from (not in the algorithm)."""
    rng = np.random.default_rng(seed)
    angles = np.exp(1j * rng.uniform(0, 2 * np.pi, mag.shape))
    alpha = momentum / (1.0 + momentum)
    prev = np.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = stft(istft(mag * angles, n_fft, hop, window, center, length), n_fft, hop, window, center)
        t = rebuilt - alpha * prev if momentum > 0 else rebuilt
        a = np.abs(t)
        angles = np.where(a > 0, t / np.where(a > 0, a, 1.0), 0.0)  # sgn(z), 0 at z = 0
        prev = rebuilt
    return istft(mag * angles, n_fft, hop, window, center, length)


def utterance_waves(wav: np.ndarray, mel_lens, hop: int) -> list[np.ndarray]:
    """Each utterance's samples of a padded vocoder batch ``wav`` [B, N] (its ``mel_lens[b] * hop``
    samples, float32), scaled down to a 0.99 peak where it exceeds 1: never clipped."""
    out = []
    for b in range(len(wav)):
        w = wav[b, :min(int(mel_lens[b]) * hop, wav.shape[1])].astype(np.float32)
        peak = float(np.abs(w).max()) if len(w) else 0.0
        out.append(w * (0.99 / peak) if peak > 1.0 else w)
    return out

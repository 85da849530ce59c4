"""The log-mel spectrogram: one function used by dumps, models, losses and vocoders.

For a waveform x and a :class:`~speechkd.features.config.FeatureConfig` c::

    X[f, t]   = torch.stft(x, n_fft, hop_length, win_length, periodic window,
                           center (reflect padding of n_fft/2), onesided)
                (center false: x is first reflect-padded by ``pad`` samples on each side,
                 HiFi-GAN's (n_fft - hop) / 2)
    M[m, t]   = sum_f B[m, f] * |X[f, t]| ** power          B = librosa.filters.mel(
                                                               sr, n_fft, n_mels, fmin, fmax,
                                                               htk=(mel_scale == "htk"),
                                                               norm="slaney" or None)
    logmel    = log(max(M, log_floor))    (natural log, or log10 when log_base == "10")

returned time-major: ``[..., frames, n_mels]``, frames = ``c.num_frames(len(x))``.
Everything later (teacher targets, student losses, vocoder inputs, evaluation)
must call :func:`log_mel` (torch, batched, differentiable, any device) or
:func:`log_mel_numpy` (one utterance, checks the sample rate); never a copy of
the formula, so that all parts of a system agree by construction.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from speechkd.errors import AudioError
from speechkd.features.config import FeatureConfig

_TORCH_CACHE: dict[tuple, torch.Tensor] = {}


def _basis_key(cfg: FeatureConfig) -> tuple:
    return (cfg.sample_rate, cfg.n_fft, cfg.n_mels, float(cfg.fmin), float(cfg.fmax), cfg.mel_scale)


def hz_to_mel(f: np.ndarray, htk: bool) -> np.ndarray:
    """HTK: 2595 log10(1 + f/700); Slaney (Auditory Toolbox): linear below 1 kHz (3 mels per 200 Hz),
    logarithmic above (27 steps per factor 6.4), as librosa's ``hz_to_mel``."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m: np.ndarray, htk: bool) -> np.ndarray:
    """The inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=16)
def _mel_basis_np(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, scale: str) -> np.ndarray:
    # Triangular filters between n_mels + 2 points equally spaced in mel: librosa.filters.mel, bit for
    # bit (tested), written out because importing librosa's filters pulls in scipy.signal, seconds of
    # a synthesis cold start. Slaney norm: each filter's area is 1 in Hz.
    htk = scale == "htk"
    fftfreqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    basis = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for i in range(n_mels):
        basis[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    if scale == "slaney":
        basis *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    basis.setflags(write=False)
    return basis


def mel_basis(cfg: FeatureConfig) -> np.ndarray:
    """The mel filter bank B, ``[n_mels, n_fft // 2 + 1]`` float32 (cached, read-only)."""
    return _mel_basis_np(*_basis_key(cfg))


def _cached(kind: str, cfg: FeatureConfig, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = (kind, *_basis_key(cfg), cfg.win_length, cfg.window, str(device), dtype)
    t = _TORCH_CACHE.get(key)
    if t is None:
        if kind == "basis":
            t = torch.from_numpy(np.array(mel_basis(cfg))).to(device=device, dtype=dtype)
        else:
            fn = torch.hann_window if cfg.window == "hann" else torch.hamming_window
            t = fn(cfg.win_length, periodic=True, device=device, dtype=dtype)
        _TORCH_CACHE[key] = t
    return t


def _as_batch(wav: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    if wav.dim() not in (1, 2):
        raise ValueError(f"expected a waveform [samples] or [batch, samples], got shape {tuple(wav.shape)}")
    if not torch.is_floating_point(wav):
        raise ValueError(f"expected a float waveform, got {wav.dtype}")
    wav2 = wav.unsqueeze(0) if wav.dim() == 1 else wav
    need = cfg.n_fft // 2 + 1 if cfg.center else max(cfg.n_fft - 2 * cfg.pad, cfg.pad + 1)
    if wav2.shape[-1] < need:
        raise AudioError(f"waveform of {wav2.shape[-1]} samples is too short for n_fft={cfg.n_fft} "
                         f"(need >= {need})", field="n_fft")
    return wav2


def stft_magnitude(wav: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """|X|: ``[batch, n_fft // 2 + 1, frames]`` (a 1-D input gets a batch of 1)."""
    wav = _as_batch(wav, cfg)
    window = _cached("window", cfg, wav.device, wav.dtype)
    if cfg.pad:
        wav = torch.nn.functional.pad(wav.unsqueeze(1), (cfg.pad, cfg.pad), mode="reflect").squeeze(1)
    spec = torch.stft(wav, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                      window=window, center=cfg.center, pad_mode="reflect", normalized=False,
                      onesided=True, return_complex=True)
    return spec.abs()


def mel_from_magnitude(mag: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """log-mel ``[batch, frames, n_mels]`` from |X| ``[batch, freq, frames]``."""
    basis = _cached("basis", cfg, mag.device, mag.dtype)
    spec = mag if cfg.power == 1.0 else mag.pow(cfg.power)
    mel = torch.matmul(basis, spec).clamp_min(cfg.log_floor)
    out = torch.log(mel) if cfg.log_base == "e" else torch.log10(mel)
    return out.transpose(-1, -2)


def log_mel(wav: torch.Tensor, cfg: FeatureConfig, *, sample_rate: int | None = None) -> torch.Tensor:
    """THE log-mel: ``[frames, n_mels]`` for ``[samples]``, ``[batch, frames, n_mels]`` for ``[batch, samples]``.

    ``sample_rate``, when given, must equal ``cfg.sample_rate`` (never resampled).
    Batched rows are treated independently; rows padded with zeros give extra
    frames at their end only (up to n_fft/2 samples of reflection differ).
    """
    check_rate(sample_rate, cfg)
    out = mel_from_magnitude(stft_magnitude(wav, cfg), cfg)
    return out[0] if wav.dim() == 1 else out


def log_mel_numpy(wav: np.ndarray, sample_rate: int, cfg: FeatureConfig) -> np.ndarray:
    """Log-mel of one float waveform as float32 ``[frames, n_mels]`` (sample rate checked)."""
    check_rate(sample_rate, cfg)
    with torch.no_grad():
        return log_mel(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), cfg).numpy()


def check_rate(sample_rate: int | None, cfg: FeatureConfig, utt: str | None = None,
               path: str | None = None) -> None:
    """Audio at another rate than the FeatureConfig's is an error, never silently resampled."""
    if sample_rate is not None and int(sample_rate) != cfg.sample_rate:
        raise AudioError(f"audio is {sample_rate} Hz but the feature config says {cfg.sample_rate} Hz",
                         path=path, utt=utt, field="sample_rate",
                         hint="resample the audio explicitly, or set sample_rate in the feature config")

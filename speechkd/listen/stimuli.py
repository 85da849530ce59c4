"""Audio made for the listening pages: MUSHRA anchors, degraded gold items, spectrogram thumbnails.

Anchors follow ITU-R BS.1534-3 section 5.1: the low-range anchor is the
reference low-pass filtered at 3.5 kHz, the mid-range anchor at 7 kHz.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from speechkd.errors import AudioError
from speechkd.utils.io import atomic_open, atomic_write_wav

logger = logging.getLogger(__name__)

ANCHORS: dict[str, float] = {"anchor_3.5k": 3500.0, "anchor_7k": 7000.0}
"""MUSHRA anchor name -> low-pass cut-off in Hz (ITU-R BS.1534-3, 5.1)."""


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    """float32 mono samples (channels averaged) and the sample rate."""
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioError(f"cannot read audio ({str(e).strip()[:200]})", path=str(path)) from None
    if wav.shape[0] == 0:
        raise AudioError("audio is empty", path=str(path))
    return wav.mean(axis=1), int(sr)


def lowpass(wav: np.ndarray, sr: int, cutoff_hz: float, order: int = 10) -> np.ndarray:
    """Zero-phase Butterworth low-pass; a cut-off at or above Nyquist returns the input unchanged."""
    if cutoff_hz >= 0.5 * sr * 0.999:
        logger.warning("low-pass at %.0f Hz is at/above Nyquist of %d Hz audio: anchor equals the reference",
                       cutoff_hz, sr)
        return wav.copy()
    sos = signal.butter(order, cutoff_hz, btype="low", fs=sr, output="sos")
    padlen = min(len(wav) - 1, 3 * (2 * len(sos) + 1))
    return signal.sosfiltfilt(sos, wav, padlen=max(padlen, 0)).astype(np.float32)


def degrade(wav: np.ndarray, sr: int, seed: int = 0) -> np.ndarray:
    """An obviously bad version for attention checks: 1 kHz low-pass, white noise at 0 dB SNR,
    hard clipping. Anyone listening rates it Poor or Bad (<= 2 on the P.800 ACR scale)."""
    x = lowpass(wav, sr, min(1000.0, 0.4 * sr))
    rms = float(np.sqrt(np.mean(x ** 2))) or 1e-3
    noise = np.random.default_rng(seed).standard_normal(len(x)).astype(np.float32) * rms
    y = x + noise
    peak = float(np.max(np.abs(y))) or 1.0
    y = np.clip(y / peak * 2.0, -1.0, 1.0) * 0.5  # clipping distortion, then back to a sane level
    return y.astype(np.float32)


def write_anchor(ref_path: Path, out_path: Path, cutoff_hz: float) -> None:
    wav, sr = read_mono(ref_path)
    atomic_write_wav(out_path, np.clip(lowpass(wav, sr, cutoff_hz), -1, 1), sr)


def write_degraded(src_path: Path, out_path: Path, seed: int) -> None:
    wav, sr = read_mono(src_path)
    atomic_write_wav(out_path, degrade(wav, sr, seed), sr)


def write_spectrogram(src_path: Path, out_path: Path, width_px: int = 240, height_px: int = 80) -> None:
    """A small log-magnitude STFT image (no axes), for the sample gallery."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wav, sr = read_mono(src_path)
    n_fft = 1 << int(np.ceil(np.log2(0.032 * sr)))  # ~32 ms window
    if len(wav) < n_fft:
        wav = np.pad(wav, (0, n_fft - len(wav)))
    spec = np.abs(librosa.stft(wav, n_fft=n_fft, hop_length=n_fft // 4))
    db = librosa.amplitude_to_db(spec, ref=np.max(spec) or 1.0, top_db=80.0)
    dpi = 100
    fig = plt.figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    try:
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0, interpolation="nearest")
        ax.set_axis_off()
        with atomic_open(out_path, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi)
    finally:
        plt.close(fig)

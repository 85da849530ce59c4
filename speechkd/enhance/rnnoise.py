"""RNNoise (Valin, MMSP 2018) as a peer system: the deployed real-time suppressor, from the
``pyrnnoise`` wheel (its bundled ``librnnoise``), behind ``builtin:rnnoise``.

RNNoise works on 48 kHz audio in 10 ms frames (480 samples) of 16-bit scale. Other rates are
resampled to 48 kHz and back (soxr). Its output lags its input: the analysis window spans two
frames and the synthesis overlap-adds them, so a frame leaves one call later than it came in.
That lag is not taken from the paper or a constant here but *measured* once per process
(:func:`delay_samples`: the peak of the cross-correlation between a test signal and RNNoise's
output of it) and removed: the input is padded with that many zeros at the end and the first
that-many output samples are dropped, so the output is time-aligned with the input, as SI-SDR
and PESQ need. Needs the optional extra ``pip install 'speechkd[se-peers]'``.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util

import numpy as np

from speechkd.corpora.common import resample
from speechkd.errors import SpeechkdError

RATE = 48000  # RNNoise's only rate
SCALE = 32768.0  # it expects samples at 16-bit scale
MAX_DELAY = 4800  # samples searched for the lag (100 ms at 48 kHz)
HINT = "pip install 'speechkd[se-peers]' (the pyrnnoise wheel), or leave rnnoise out (--baselines hpf80)"


def available() -> bool:
    """Whether the ``pyrnnoise`` wheel is installed (without importing it)."""
    return importlib.util.find_spec("pyrnnoise") is not None


@functools.lru_cache(maxsize=1)
def _lib():
    if not available():
        raise SpeechkdError("RNNoise needs the pyrnnoise wheel, which is not installed", field="--model", hint=HINT)
    # why: optional dependency (and its ctypes library), loaded only when RNNoise runs
    from pyrnnoise import rnnoise as r

    return r.lib, r.create, r.destroy, int(r.FRAME_SIZE)


def process_48k(x: np.ndarray) -> np.ndarray:
    """RNNoise's raw output of ``x`` (float, 48 kHz, full scale 1.0), frame by frame from a fresh
    state, lag included; the last partial frame is zero-padded, the output has ``len(x)`` samples."""
    lib, create, destroy, frame = _lib()
    x = np.asarray(x, np.float32) * SCALE
    n = len(x)
    buf = np.zeros(-(-n // frame) * frame, np.float32)
    buf[:n] = x
    state = create()
    try:
        for i in range(0, len(buf), frame):
            seg = np.ascontiguousarray(buf[i:i + frame])
            ptr = seg.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            lib.rnnoise_process_frame(state, ptr, ptr)  # in place
            buf[i:i + frame] = seg
    finally:
        destroy(state)
    return buf[:n] / SCALE


def probe_signal(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A voiced, speech-like 48 kHz signal RNNoise lets through: glottal pulses at a randomly
    jittered pitch (80-200 Hz, so no periodicity aliases the correlation peak), three formant
    resonances, a syllable-rate envelope; peak 0.5."""
    from scipy import signal

    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    x = np.zeros(n)
    i = 0
    while i < n:
        x[i] = 1.0
        i += int(RATE / rng.uniform(80, 200))
    for f, bw in ((700, 80), (1200, 100), (2600, 150)):
        b, a = signal.iirpeak(f, f / bw, fs=RATE)
        x = x + signal.lfilter(b, a, x)
    x *= 0.3 + np.abs(np.sin(2 * np.pi * 2.5 * np.arange(n) / RATE))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def measure_delay(x: np.ndarray, y: np.ndarray, max_lag: int = MAX_DELAY, min_lag: int = 0) -> int:
    """The lag L in [min_lag, max_lag] samples maximising the cross-correlation sum_t y[t + L] x[t]."""
    from scipy import signal

    c = signal.correlate(np.asarray(y, np.float64), np.asarray(x, np.float64), mode="full", method="fft")
    lags = signal.correlation_lags(len(y), len(x), mode="full")
    keep = (lags >= min_lag) & (lags <= max_lag)
    return int(lags[keep][np.argmax(c[keep])])


@functools.lru_cache(maxsize=1)
def delay_samples() -> int:
    """RNNoise's lag at 48 kHz, measured on :func:`probe_signal` (once per process)."""
    x = probe_signal()
    return measure_delay(x, process_48k(x))


def rnnoise(wav: np.ndarray, sr: int) -> np.ndarray:
    """RNNoise's estimate of ``wav`` at ``sr`` Hz, same rate and length, its lag removed."""
    x = resample(np.asarray(wav, np.float32), sr, RATE)
    d = delay_samples()
    y = process_48k(np.pad(x, (0, d)))[d:]
    out = resample(y, RATE, sr).astype(np.float32)
    return np.pad(out, (0, max(0, len(wav) - len(out))))[: len(wav)]

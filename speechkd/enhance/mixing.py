"""Mixing speech and noise at an exact signal-to-noise ratio.

SNR(s : n) = 10 log10(Σ s² / Σ n²) over the whole signal (the convention of
NyTT, Fujimura et al. 2021, and RemixIT). :func:`snr_gain` returns the gain g
that makes SNR(s : g·n) equal a requested value; :func:`mix_int16` quantises
speech and noise separately so that the written mixture is *exactly* the sum of
the written speech and noise (sums of 16-bit integers), and the measured SNR of
the files equals the requested one (the noise gain is re-fitted after rounding; egs/*/se1/RESULTS.md).
"""

from __future__ import annotations

import numpy as np

from speechkd.corpora.noise import fit
from speechkd.errors import AudioError

PEAK = 0.9            # mixtures louder than this are scaled down (speech and noise alike: SNR unchanged)
INT16_SCALE = 32768.0  # soundfile reads 16-bit PCM as int / 32768


def energy(x: np.ndarray) -> float:
    return float(np.dot(np.asarray(x, np.float64), np.asarray(x, np.float64)))


def snr_db(speech: np.ndarray, noise: np.ndarray) -> float:
    """10 log10(Σ s² / Σ n²); +inf for silent noise."""
    en = energy(noise)
    return float("inf") if en == 0.0 else float(10.0 * np.log10(energy(speech) / en))


def snr_gain(speech: np.ndarray, noise: np.ndarray, snr: float, *, what: str = "noise") -> float:
    """g such that SNR(speech : g·noise) = ``snr`` dB."""
    es, en = energy(speech), energy(noise)
    if en <= 0.0:
        raise AudioError(f"{what} is silent: no gain reaches {snr:g} dB SNR")
    if es <= 0.0:
        raise AudioError(f"speech is silent: no SNR defined ({what})")
    return float(np.sqrt(es / (en * 10.0 ** (snr / 10.0))))


def fit_noise(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random n-sample crop of ``noise``, or ``noise`` looped with 0-0.5 s gaps when shorter
    (:func:`speechkd.corpora.noise.fit`: the same rule the noise corpus uses)."""
    return np.asarray(fit(np.asarray(noise, np.float64), n, rng), np.float64)


def mix_int16(speech: np.ndarray, noise: np.ndarray, snr: float,
              peak: float = PEAK) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mixture, speech, scaled noise) as int16 with mixture == speech + noise exactly, and the
    overall scale applied (< 1 when mixture, speech or noise would peak above ``peak``).

    ``noise`` must already have the speech's length (see :func:`fit_noise`)."""
    s = np.asarray(speech, np.float64)
    n = snr_gain(s, noise, snr) * np.asarray(noise, np.float64)
    # speech and noise are written too, and may peak higher than their sum (they can cancel)
    top = max(float(np.max(np.abs(s + n))), float(np.max(np.abs(s))), float(np.max(np.abs(n))))
    scale = min(1.0, peak / top) if top > 0 else 1.0
    si = np.round(s * scale * INT16_SCALE).astype(np.int32)
    # Rounding changes the energies of quiet (sparse) signals by up to ~0.1%: re-fit the noise gain
    # on the quantised speech until the integer signals themselves meet the SNR.
    target = energy(si) / 10.0 ** (snr / 10.0)
    g = scale * INT16_SCALE
    for _ in range(4):
        ni = np.round(n * g).astype(np.int32)
        en = energy(ni)
        if en == 0.0 or abs(10.0 * np.log10(target / en)) < 1e-5:
            break
        g *= np.sqrt(target / en)
    mi = si + ni
    assert max(np.max(np.abs(mi)), np.max(np.abs(ni))) < 32768, "peak normalisation keeps 16-bit range"
    return mi.astype(np.int16), si.astype(np.int16), ni.astype(np.int16), scale

"""Mel-cepstral distortion as ESPnet2's ``evaluate_mcd.py`` defines it (egs2/TEMPLATE/tts1).

Published ESPnet tables quote this number; :mod:`speechkd.eval.mcd` (the default of
``speechkd eval tts``) defines MCD differently, so the two are not comparable. Per utterance,
following the script step by step:

  1. both wavs read as 16-bit integers (not scaled to [-1, 1]: c0 carries the level);
  2. frames of ``n_fft`` = 1024 samples every ``n_shift`` = 256, no padding,
     T = (len − n_fft) // n_shift + 1, each multiplied by SPTK's (normalised) Hamming window;
  3. SPTK ``mcep`` (Tokuda et al. 1994: the mel-cepstrum minimising the spectral criterion by
     Newton-Raphson, ``eps=1e-6`` as the initial log-periodogram, ``etype=1``) of order M with
     all-pass constant α chosen from the rate: M = 23, α = 0.42 at 16 kHz; 34, 0.45 at 22.05 kHz;
     34, 0.46 at 24 kHz; 39, 0.53 at 44.1 kHz; 39, 0.55 at 48 kHz. That is M + 1 coefficients,
     c0 included;
  4. FastDTW (Salvador & Chan 2007, radius 1) between the synthesized and the reference
     sequences, Euclidean distance over all M + 1 coefficients;
  5. MCD = mean over the path pairs of (10 / ln 10) · sqrt(2 · Σ_{d=0}^{M} (c_d − c'_d)²).

Differences from speechkd's default: SPTK ``mcep`` of windowed frames instead of WORLD
envelopes + ``sp2mc``; c0 (log level) inside the distance and the alignment, so a louder copy
of the same speech scores a distortion; FastDTW, an approximation, instead of exact DTW; no
envelope floor. The script resamples the reference when the rates differ with a call current
numpy and librosa refuse, so it has no defined result there; here the reference is then
resampled to the synthesized audio's rate (soxr_hq) on the int16 scale.

``pysptk`` and ``fastdtw`` come with the ESPnet extra (``tools/install_espnet.sh``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import euclidean

from speechkd.errors import AudioError, SpeechkdError

# ESPnet's evaluate_mcd.py: the (order, all-pass constant) it picks for a rate.
ESPNET_MCEP_PARAMS = {16000: (23, 0.42), 22050: (34, 0.45), 24000: (34, 0.46),
                      44100: (39, 0.53), 48000: (39, 0.55)}
MCD_CONST = 10.0 / math.log(10.0)
INSTALL_HINT = "install the ESPnet extra: bash tools/install_espnet.sh"


@dataclass
class EspnetMcdConfig:
    n_fft: int = 1024
    """analysis frame length in samples (the script's --n_fft default)"""
    n_shift: int = 256
    """frame shift in samples (the script's --n_shift default)"""
    mcep_dim: int | None = None
    """mel-cepstrum order M (M + 1 coefficients, c0 included); None: the script's choice for the rate"""
    mcep_alpha: float | None = None
    """all-pass constant; None: the script's choice for the rate"""


def mcep_params(sample_rate: int, cfg: EspnetMcdConfig) -> tuple[int, float]:
    """(order, alpha) as the script picks them: both given, or both from the rate's table."""
    if cfg.mcep_dim is not None and cfg.mcep_alpha is not None:
        return cfg.mcep_dim, cfg.mcep_alpha
    if sample_rate not in ESPNET_MCEP_PARAMS:
        raise SpeechkdError(f"ESPnet's MCD has no mel-cepstrum setting for {sample_rate} Hz",
                            field="sample_rate", hint=f"use audio at one of {sorted(ESPNET_MCEP_PARAMS)} Hz")
    return ESPNET_MCEP_PARAMS[sample_rate]


def _sptk():
    try:  # why: optional extra (tools/install_espnet.sh); the base package never needs it
        import warnings

        with warnings.catch_warnings():  # pysptk imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import pysptk
        from fastdtw import fastdtw
    except ImportError as e:
        raise SpeechkdError(f"ESPnet's MCD needs pysptk and fastdtw ({e})", hint=INSTALL_HINT) from None
    return pysptk, fastdtw


def sptk_mcep(x: np.ndarray, sample_rate: int, cfg: EspnetMcdConfig | None = None) -> np.ndarray:
    """(T, M + 1) SPTK mel-cepstra of ``x`` (int16-scale samples), framed as the script frames."""
    cfg = cfg or EspnetMcdConfig()
    pysptk, _ = _sptk()
    order, alpha = mcep_params(sample_rate, cfg)
    n_frames = (len(x) - cfg.n_fft) // cfg.n_shift + 1
    if n_frames < 1:
        raise AudioError(f"audio is shorter than one {cfg.n_fft}-sample analysis frame "
                         f"({len(x)} samples)", field="n_fft")
    win = pysptk.sptk.hamming(cfg.n_fft)
    x = np.asarray(x)
    return np.stack([pysptk.mcep(x[i * cfg.n_shift: i * cfg.n_shift + cfg.n_fft] * win, order, alpha,
                                 eps=1e-6, etype=1) for i in range(n_frames)])


def espnet_mcd(ref: np.ndarray, syn: np.ndarray, sample_rate: int,
               cfg: EspnetMcdConfig | None = None) -> tuple[float, int]:
    """(MCD in dB, FastDTW path length) of ``syn`` against ``ref``, both int16-scale at ``sample_rate``."""
    cfg = cfg or EspnetMcdConfig()
    _, fastdtw = _sptk()
    mc_syn = sptk_mcep(syn, sample_rate, cfg)
    mc_ref = sptk_mcep(ref, sample_rate, cfg)
    # the script's order: synthesized first, scipy's Euclidean distance
    _, path = fastdtw(mc_syn, mc_ref, dist=euclidean)
    idx = np.asarray(path).T
    diff2 = np.sum((mc_syn[idx[0]] - mc_ref[idx[1]]) ** 2, axis=1)
    return float(np.mean(MCD_CONST * np.sqrt(2.0 * diff2))), idx.shape[1]


def int16_pair(ref: np.ndarray, ref_sr: int, syn: np.ndarray, syn_sr: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(ref, syn, rate) at the synthesized audio's rate; the reference resampled on the int16
    scale when the rates differ (see the module notes)."""
    if ref_sr != syn_sr:
        import librosa  # why: resampling is rare here and librosa is slow to import

        ref = librosa.resample(ref.astype(np.float64), orig_sr=ref_sr, target_sr=syn_sr, res_type="soxr_hq")
    return ref, syn, syn_sr

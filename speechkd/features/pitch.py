"""F0 with pyworld (WORLD: Morise et al. 2016), on the mel frame grid.

dio + stonemask (default) or harvest run at a frame period of hop/sr, then each
mel frame takes the WORLD frame nearest its centre (t*hop, or t*hop + n_fft/2
without centre padding), so F0 has exactly as many frames as the mel.

Returned, as FastSpeech 2 style variance targets:

- ``lf0`` [T]: continuous log-F0 (natural log of Hz): log of voiced frames,
  linear interpolation across unvoiced gaps, the nearest voiced value at the
  edges; all zeros when no frame is voiced (silence, noise);
- ``vuv`` [T]: 1.0 where WORLD found voicing, else 0.0.
"""

from __future__ import annotations

import numpy as np

from speechkd.features.config import FeatureConfig
from speechkd.features.mel import check_rate


def world_f0(wav: np.ndarray, sample_rate: int, cfg: FeatureConfig) -> tuple[np.ndarray, float]:
    """Raw WORLD F0 in Hz (0 = unvoiced) and its frame period in seconds."""
    pyworld = import_pyworld()
    x = np.ascontiguousarray(wav, dtype=np.float64)
    period_ms = 1000.0 * cfg.hop_length / sample_rate
    if cfg.f0_method == "harvest":
        f0, _ = pyworld.harvest(x, sample_rate, f0_floor=cfg.f0_floor, f0_ceil=cfg.f0_ceil,
                                frame_period=period_ms)
    else:
        f0, t = pyworld.dio(x, sample_rate, f0_floor=cfg.f0_floor, f0_ceil=cfg.f0_ceil,
                            frame_period=period_ms)
        f0 = pyworld.stonemask(x, f0, t, sample_rate)
    return f0, period_ms / 1000.0


def import_pyworld():
    """pyworld, without its pkg_resources deprecation warning (it needs setuptools<81)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import pyworld
    return pyworld


def extract_pitch(wav: np.ndarray, sample_rate: int, cfg: FeatureConfig,
                  num_frames: int | None = None, utt: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(lf0, vuv), both float32 [num_frames] (default: the mel's frame count)."""
    check_rate(sample_rate, cfg, utt=utt)
    T = cfg.num_frames(len(wav)) if num_frames is None else num_frames
    f0, period = world_f0(wav, sample_rate, cfg)
    offset = 0 if cfg.center else cfg.n_fft // 2 - cfg.pad
    centres = (np.arange(T) * cfg.hop_length + offset) / sample_rate
    idx = np.clip(np.rint(centres / period).astype(np.int64), 0, len(f0) - 1)
    f0 = f0[idx]
    return continuous_lf0(f0)


def continuous_lf0(f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(interpolated log-F0, voiced flag) of an F0 track in Hz with 0 for unvoiced."""
    voiced = f0 > 0
    lf0 = np.zeros(len(f0), dtype=np.float64)
    if voiced.any():
        pos = np.flatnonzero(voiced)
        lf0 = np.interp(np.arange(len(f0)), pos, np.log(f0[pos]))
    return lf0.astype(np.float32), voiced.astype(np.float32)

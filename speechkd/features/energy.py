"""Frame energy: the L2 norm of the STFT magnitude of each frame (FastSpeech 2, Ren et al. 2021, 2.3).

Same framing as the mel (:func:`speechkd.features.mel.stft_magnitude`), so
energy has exactly the mel's frames: ``e[t] = sqrt(sum_f |X[f, t]|^2)``.
Stored linear (not log); models standardise it with the dump's statistics.
"""

from __future__ import annotations

import numpy as np
import torch

from speechkd.features.config import FeatureConfig
from speechkd.features.mel import check_rate, stft_magnitude


def energy_from_magnitude(mag: torch.Tensor) -> torch.Tensor:
    """``[batch, frames]`` energy from |X| ``[batch, freq, frames]``."""
    return torch.linalg.vector_norm(mag, ord=2, dim=-2)


def frame_energy(wav: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """Energy ``[frames]`` of ``[samples]``, ``[batch, frames]`` of ``[batch, samples]``."""
    out = energy_from_magnitude(stft_magnitude(wav, cfg))
    return out[0] if wav.dim() == 1 else out


def frame_energy_numpy(wav: np.ndarray, sample_rate: int, cfg: FeatureConfig) -> np.ndarray:
    """Energy of one waveform as float32 ``[frames]`` (sample rate checked)."""
    check_rate(sample_rate, cfg)
    with torch.no_grad():
        return frame_energy(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), cfg).numpy()

"""SubbandGRU: a ~50 K-parameter band-gain enhancer (the SE student).

Sized like GTCRN (Rong et al., ICASSP 2024: 48 K parameters), built like
RNNoise (Valin 2018): the 257 STFT bins are pooled into bands (one band per bin
below ``full_bins``, then bands of growing width, roughly ERB-like), a causal
conv over time and a GRU estimate one gain per band, and each bin takes its
band's gain as mask. Waveform in, waveform out; causal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechkd.config import field
from speechkd.enhance.stft import MaskEnhancer


@dataclass
class SubbandGRUConfig:
    n_fft: int = field(512, help="STFT size: n_fft // 2 + 1 frequency bins")
    hop: int = field(128, help="STFT hop in samples")
    level: Literal["utterance", "running"] = field(
        "utterance", help="input level the magnitudes are divided by: the whole input's RMS (utterance), or "
                            "the RMS of the samples each frame has seen (running: causal, streams exactly)")
    bands: int = field(64, help="number of bands the bins are pooled into")
    full_bins: int = field(32, help="lowest bins kept one per band (0-1 kHz at 16 kHz / 512)")
    conv_kernel: int = field(3, help="causal conv kernel over frames")
    hidden: int = field(80, help="GRU width")


def band_edges(n_freq: int, bands: int, full_bins: int) -> np.ndarray:
    """Start bin of each band and n_freq at the end: ``full_bins`` single bins, then widths
    growing geometrically up to the Nyquist bin (every band non-empty)."""
    if not 0 < full_bins < bands < n_freq:
        raise ValueError(f"need 0 < full_bins ({full_bins}) < bands ({bands}) < bins ({n_freq})")
    rest = bands - full_bins
    edges = np.round(np.geomspace(full_bins, n_freq, rest + 1)).astype(int)
    for i in range(1, len(edges)):  # at least one bin per band
        edges[i] = max(edges[i], edges[i - 1] + 1)
    edges = np.minimum(edges, n_freq)
    edges[-1] = n_freq
    if len(np.unique(edges)) != len(edges):
        raise ValueError(f"{bands} bands do not fit into {n_freq} bins with {full_bins} single bins")
    return np.concatenate([np.arange(full_bins), edges])


class SubbandGRU(MaskEnhancer):
    """Band-gain STFT enhancer: (B, N) noisy waveform -> (B, N) enhanced waveform."""

    Config = SubbandGRUConfig
    causal = True  # a causal conv in time, a unidirectional GRU: mask_step runs it frame by frame

    def __init__(self, cfg: SubbandGRUConfig):
        super().__init__(cfg.n_fft, cfg.hop, cfg.level)
        edges = band_edges(self.n_freq, cfg.bands, cfg.full_bins)
        band_of_bin = np.repeat(np.arange(cfg.bands), np.diff(edges))
        pool = np.zeros((self.n_freq, cfg.bands), np.float32)
        pool[np.arange(self.n_freq), band_of_bin] = 1.0
        pool /= pool.sum(0, keepdims=True)                    # mean over each band's bins
        self.register_buffer("pool", torch.from_numpy(pool), persistent=False)
        self.register_buffer("band_of_bin", torch.from_numpy(band_of_bin).long(), persistent=False)
        self.kernel = cfg.conv_kernel
        self.conv = nn.Conv1d(cfg.bands, cfg.bands, cfg.conv_kernel)
        self.rnn = nn.GRU(cfg.bands, cfg.hidden, batch_first=True)
        self.out = nn.Linear(cfg.hidden, cfg.bands)

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        """The streaming state before the first frame: the causal conv's last ``conv_kernel - 1``
        input frames (zeros: its left padding) and the GRU state."""
        p = self.pool
        return [p.new_zeros(batch, self.kernel - 1, p.shape[1]), p.new_zeros(1, batch, self.rnn.hidden_size)]

    def mask_step(self, mag: torch.Tensor, conv_state: torch.Tensor, h: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``mask`` of the frames ``mag`` (B, T, F) that follow ``state``; returns the mask and the
        state after them, so frames fed in any chunks give the mask of all of them at once."""
        feats = torch.log((mag ** (2 / 0.3)) @ self.pool + 1e-8)   # log band power (B, T, bands)
        past = torch.cat([conv_state, feats], 1)                    # causal in time: past frames on the left
        x = F.elu(self.conv(past.transpose(1, 2))).transpose(1, 2) + feats
        y, h = self.rnn(x, h)
        gains = torch.sigmoid(self.out(y))                          # (B, T, bands)
        return gains[..., self.band_of_bin], past[:, past.shape[1] - (self.kernel - 1):], h

    def mask(self, mag: torch.Tensor) -> torch.Tensor:
        return self.mask_step(mag, *self.initial_state(mag.shape[0]))[0]  # each bin takes its band's gain

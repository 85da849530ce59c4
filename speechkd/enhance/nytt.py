"""Noisy-target training pairs (NyTT; Fujimura, Koizumi, Yatabe & Miyazaki, EUSIPCO 2021).

The network never sees clean speech. From noisy speech y and extra noise n'
(clips in no training mixture) it builds x = y + g·n' with the gain g chosen so
that SNR(y : g·n') = 10 log10(Σy² / Σ(g·n')²) ~ U[−5, 5] dB (the paper's range; the
recipes' presets draw from U[−5, 10], ``data.snr_range``), and learns
f(x) ≈ y: removing the added noise teaches it to remove noise, so at test
time f(y) estimates the clean speech.
"""

from __future__ import annotations

import torch

MAX_GAIN = 100.0  # a near-silent noise crop is not blown up to the requested SNR beyond this


def scale_to_snr(signal: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor,
                 max_gain: float = MAX_GAIN) -> torch.Tensor:
    """g·noise with SNR(signal : g·noise) = snr_db per row; (B, N), (B, N), (B,) -> (B, N)."""
    es = signal.pow(2).sum(-1)
    en = noise.pow(2).sum(-1).clamp_min(1e-12)
    g = torch.sqrt(es / (en * 10.0 ** (snr_db / 10.0))).clamp(max=max_gain)
    return g[:, None] * noise


def noisy_target_pair(y: torch.Tensor, extra_noise: torch.Tensor,
                      snr_db: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(input x = y + g·n', target y)."""
    return y + scale_to_snr(y, extra_noise, snr_db), y

"""STFT front end shared by the mask-based enhancers: waveform in, waveform out.

:class:`MaskEnhancer` takes a Hann STFT of the input, asks the subclass for a real
mask M(t, f) in [0, 1] of the compressed magnitude |Y / s|^0.3, applies it to the
noisy spectrum (noisy phase kept) and returns the inverse STFT at the input's
length. s is the input's level, so f(a·y) = a·f(y): the models need no level
augmentation. ``level="utterance"``: s is the RMS of the whole input (one value);
``level="running"``: s_t is the RMS of the samples frame t has seen,
x[: t·hop + n_fft/2], so a stream that receives the input hop by hop computes
exactly the offline output (a causal model trained this way streams exactly).
"""

from __future__ import annotations

import torch
from torch import nn

RMS_FLOOR = 1e-5
LEVELS = ("utterance", "running")


def running_level(wav: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """(B, N) -> (B, T): RMS of x[: min(t·hop + n_fft/2, N)] for each centred STFT frame t, floored."""
    n = wav.shape[-1]
    frames = n // hop + 1
    ends = torch.clamp(torch.arange(frames, device=wav.device) * hop + n_fft // 2, max=n)
    power = torch.cumsum(wav.double().pow(2), -1)[:, ends - 1] / ends.double()
    return power.sqrt().clamp_min(RMS_FLOOR).to(wav.dtype)


class STFT(nn.Module):
    """Hann-windowed STFT / iSTFT (centred, perfect reconstruction with hop <= n_fft / 2)."""

    def __init__(self, n_fft: int = 512, hop: int = 128):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, N) -> complex (B, F, T), F = n_fft // 2 + 1."""
        return torch.stft(wav, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True, length=length)


class MaskEnhancer(nn.Module):
    """Base of the STFT-mask models: subclasses implement :meth:`mask` on compressed magnitudes."""

    def __init__(self, n_fft: int, hop: int, level: str = "utterance"):
        super().__init__()
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
        self.stft = STFT(n_fft, hop)
        self.n_freq = n_fft // 2 + 1
        self.level = level

    def mask(self, mag: torch.Tensor) -> torch.Tensor:
        """Compressed magnitude |Y|^0.3 (B, T, F) -> mask in [0, 1] (B, T, F)."""
        raise NotImplementedError

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Noisy waveform (B, N) -> enhanced waveform (B, N)."""
        squeeze = wav.dim() == 1
        if squeeze:
            wav = wav[None]
        if self.level == "running":
            spec = self.stft(wav)                                             # (B, F, T)
            scaled = spec.abs() / running_level(wav, self.stft.n_fft, self.stft.hop)[:, None, :]
            m = self.mask(scaled.clamp_min(1e-8).pow(0.3).transpose(1, 2)).transpose(1, 2)
            out = self.stft.inverse(spec * m, wav.shape[-1])
        else:
            scale = wav.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(RMS_FLOOR)
            spec = self.stft(wav / scale)                                # (B, F, T)
            mag = spec.abs().clamp_min(1e-8).pow(0.3).transpose(1, 2)   # (B, T, F), power-law compression
            m = self.mask(mag).transpose(1, 2)
            out = self.stft.inverse(spec * m, wav.shape[-1]) * scale
        return out[0] if squeeze else out

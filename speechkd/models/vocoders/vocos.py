"""Vocos-like neural vocoder (Siuzdak 2023, "Vocos: closing the gap between time-domain and
Fourier-based neural vocoders"): log-mel -> ConvNeXt backbone -> STFT coefficients -> iSTFT.

Every layer runs at the frame rate, not the sample rate (unlike HiFi-GAN's upsampling
stack), which is what makes it fast on a CPU (``speechkd bench vocoder``; measured in
egs/mini_en/tts1/RESULTS.md, "Speed").

    h_0   = LayerNorm(Conv1d_7(standardise(log_mel)))                         (embedding)
    h_l+1 = h_l + γ_l · W2 GELU(W1 LayerNorm(DWConv_7(h_l)))                  (ConvNeXt block,
                                                                             Liu et al. 2022)
    [m, p] = Linear(LayerNorm(h_L))   -> |X| = min(exp(m), 100), X = |X| (cos p + i sin p)
    y     = iSTFT(X)                                                           (Vocos, sec. 3)

The phase is predicted as an angle through (cos p, sin p), which keeps it on the unit
circle (Vocos, sec. 3). The iSTFT uses the FeatureConfig's hop, window and centring, so
``T`` mel frames give ``(T - 1) * hop`` samples, the same length as Griffin-Lim's output.
The input is the dump's raw log-mel; the model standardises it with the training
statistics, kept as buffers (they travel in the state dict).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from speechkd.config import field
from speechkd.features.config import FeatureConfig


@dataclass
class VocosConfig:
    dim: int = field(256, help="backbone channels (Vocos: 512)")
    intermediate_dim: int = field(768, help="ConvNeXt pointwise expansion (Vocos: 1536)")
    num_layers: int = field(8, help="ConvNeXt blocks (Vocos: 8)")
    kernel_size: int = field(7, help="depthwise convolution width in frames")
    head_n_fft: int = field(0, help="FFT size of the iSTFT head; 0 = the FeatureConfig's n_fft "
                                    "(hop, window and centring are always the FeatureConfig's)")
    max_log_mag: float = field(4.6, help="predicted log-magnitudes are clamped to this (exp(4.6) = 100, "
                                         "as Vocos), so an early training step cannot overflow")


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> pointwise MLP (GELU) -> layer scale, residual (ConvNeXt)."""

    def __init__(self, dim: int, intermediate: int, kernel: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, intermediate)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T]
        h = self.dwconv(x).transpose(1, 2)
        h = self.gamma * self.pw2(self.act(self.pw1(self.norm(h))))
        return x + h.transpose(1, 2)


class VocosGenerator(nn.Module):
    """``forward(log_mel [B, T, n_mels]) -> wav [B, (T - 1) * hop]``."""

    Config = VocosConfig

    def __init__(self, cfg: VocosConfig, feats: FeatureConfig, mel_mean: np.ndarray | None = None,
                 mel_std: np.ndarray | None = None):
        super().__init__()
        self.cfg, self.feature_config = cfg, feats
        self.n_fft = cfg.head_n_fft or feats.n_fft
        if self.n_fft < feats.win_length:
            raise ValueError(f"head_n_fft ({self.n_fft}) must be >= the window length ({feats.win_length})")
        n = feats.n_mels
        self.register_buffer("mel_mean", torch.as_tensor(np.zeros(n) if mel_mean is None else mel_mean,
                                                         dtype=torch.float32))
        self.register_buffer("mel_std", torch.as_tensor(np.ones(n) if mel_std is None else mel_std,
                                                        dtype=torch.float32))
        self.embed = nn.Conv1d(n, cfg.dim, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.blocks = nn.ModuleList([ConvNeXtBlock(cfg.dim, cfg.intermediate_dim, cfg.kernel_size,
                                                   1.0 / cfg.num_layers) for _ in range(cfg.num_layers)])
        self.final_norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, self.n_fft + 2)  # n_fft/2+1 log-magnitudes and phase angles
        fn = torch.hann_window if feats.window == "hann" else torch.hamming_window
        self.register_buffer("window", fn(feats.win_length, periodic=True), persistent=False)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def spectrum(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Complex STFT ``[B, n_fft/2 + 1, T]`` predicted from log-mel ``[B, T, n_mels]``."""
        x = ((log_mel - self.mel_mean) / self.mel_std).transpose(1, 2)
        h = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        m, p = self.head(self.final_norm(h.transpose(1, 2))).transpose(1, 2).chunk(2, dim=1)
        mag = torch.exp(m.clamp(max=self.cfg.max_log_mag))
        return torch.complex(mag * torch.cos(p), mag * torch.sin(p))

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        spec = self.spectrum(log_mel)
        f = self.feature_config
        if not f.center and f.pad:
            # HiFi-GAN's framing: frame t is centred on sample t*hop + n_fft/2 - pad. An un-centred iSTFT
            # of as many frames has no full window overlap at its ends (torch refuses it), so invert
            # centred (frame t at t*hop) and delay by n_fft/2 - pad, keeping (T-1)*hop samples as the
            # training segments do.
            n = (spec.shape[-1] - 1) * f.hop_length
            wav = torch.istft(spec, self.n_fft, f.hop_length, f.win_length, self.window, center=True, length=n)
            return torch.nn.functional.pad(wav, (self.n_fft // 2 - f.pad, 0))[..., :n]
        n = (spec.shape[-1] - 1) * f.hop_length if f.center else (spec.shape[-1] - 1) * f.hop_length + self.n_fft
        return torch.istft(spec, self.n_fft, f.hop_length, f.win_length, self.window, center=f.center, length=n)


class Vocos:
    """A trained generator as a vocoder: ``voc(log_mel [B, T, n_mels], lengths=None) -> wav [B, N]``."""

    needs_training = True
    needs_wav = False

    def __init__(self, generator: VocosGenerator, feature_config: FeatureConfig, device: str = "cpu",
                 path: str = "", step: int = -1):
        self.generator = generator.to(device).eval()
        self.feature_config = feature_config
        self.device, self.path, self.step = torch.device(device), path, step  # step: of its checkpoint

    @torch.no_grad()
    def __call__(self, log_mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        log_mel = log_mel.to(self.device, torch.float32)
        if log_mel.dim() == 2:
            log_mel = log_mel.unsqueeze(0)
        if lengths is not None:  # padded frames -> silence (the log floor), as in the dump
            pad = torch.arange(log_mel.shape[1], device=self.device)[None, :] >= lengths.to(self.device)[:, None]
            fc = self.feature_config
            floor = float(np.log(fc.log_floor) if fc.log_base == "e" else np.log10(fc.log_floor))
            log_mel = log_mel.masked_fill(pad[..., None], floor)
        wav = self.generator(log_mel)
        if lengths is not None:
            keep = torch.arange(wav.shape[1], device=self.device)[None, :] < \
                ((lengths.to(self.device) - 1) * self.feature_config.hop_length)[:, None]
            wav = wav * keep
        return wav

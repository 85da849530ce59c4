"""Training losses of the SE models (all on waveforms, batch-averaged).

- L1 on the waveform (NyTT, Fujimura et al. 2021, trains with an L1-type loss on y).
- Multi-resolution STFT loss (Yamamoto et al. 2020, Parallel WaveGAN eqs. 1-3): per
  resolution, spectral convergence ||S - Ŝ||_F / ||S||_F plus the mean L1 distance
  of log magnitudes; averaged over resolutions.
- Negative SI-SDR (Le Roux et al. 2019), the RemixIT loss (Tzinis et al. 2022).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from speechkd.config import field


@dataclass
class LossConfig:
    wave_l1: float = field(1.0, help="weight of the L1 waveform loss")
    mrstft: float = field(1.0, help="weight of the multi-resolution STFT loss (spectral convergence + log-mag L1)")
    si_sdr: float = field(0.0, help="weight of the negative SI-SDR loss (dB; RemixIT uses it alone)")
    resolutions: list[list[int]] = field(default_factory=lambda: [[512, 128], [1024, 256], [256, 64]],
                                         help="(n_fft, hop) pairs of the multi-resolution STFT loss")


def neg_si_sdr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean over the batch of −SI-SDR(est, ref) in dB; (B, N) inputs, zero-meaned here."""
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    ratio = target.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps)
    return -(10 * torch.log10(ratio + eps)).mean()


def _mag(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    win = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, window=win, center=True, return_complex=True)
    return spec.abs().clamp_min(1e-7)


def mrstft_loss(est: torch.Tensor, ref: torch.Tensor, resolutions: list[list[int]]) -> torch.Tensor:
    total = est.new_zeros(())
    for n_fft, hop in resolutions:
        e, r = _mag(est, n_fft, hop), _mag(ref, n_fft, hop)
        sc = torch.linalg.vector_norm(r - e, dim=(1, 2)) / torch.linalg.vector_norm(r, dim=(1, 2)).clamp_min(1e-7)
        total = total + sc.mean() + (r.log() - e.log()).abs().mean()
    return total / len(resolutions)


def se_loss(est: torch.Tensor, ref: torch.Tensor, cfg: LossConfig) -> dict[str, torch.Tensor]:
    """{"loss": weighted sum, and each non-zero term} of an estimate against its target."""
    out: dict[str, torch.Tensor] = {}
    if cfg.wave_l1:
        out["wave_l1"] = (est - ref).abs().mean()
    if cfg.mrstft:
        out["mrstft"] = mrstft_loss(est, ref, cfg.resolutions)
    if cfg.si_sdr:
        out["neg_si_sdr"] = neg_si_sdr(est, ref)
    weights = {"wave_l1": cfg.wave_l1, "mrstft": cfg.mrstft, "neg_si_sdr": cfg.si_sdr}
    out["loss"] = sum(weights[k] * v for k, v in out.items())
    return out

"""Discriminators and adversarial losses of the neural vocoders.

- Multi-period discriminator (HiFi-GAN, Kong et al. 2020, sec. 2.2): the waveform folded into
  [T/p, p] for each period p, 2-D convolutions with (k, 1) kernels, so each sub-discriminator
  sees every p-th sample (periodic structure).
- Multi-resolution discriminator (UnivNet, Jang et al. 2021; used by Vocos): 2-D convolutions
  on linear STFT magnitudes at several (n_fft, hop, win).

Both return, per sub-discriminator, the logits and the feature maps of every layer.
Losses (``gan_loss``): hinge (Vocos) or least squares (HiFi-GAN eq. 1-2), and feature
matching (HiFi-GAN eq. 4: L1 between real and generated feature maps, per layer mean).
Channel widths are scaled down from the papers for CPU training (``channels``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from speechkd.config import field


@dataclass
class DiscriminatorConfig:
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11], help="MPD periods (HiFi-GAN)")
    mpd_channels: list[int] = field(default_factory=lambda: [32, 128, 256, 256],
                                    help="MPD conv channels (HiFi-GAN: 32, 128, 512, 1024, then 1024)")
    resolutions: list[list[int]] = field(default_factory=lambda: [[1024, 256, 1024], [512, 128, 512],
                                                                  [256, 64, 256]],
                                         help="MRD (n_fft, hop, win) triples")
    mrd_channels: int = field(32, help="MRD conv channels (UnivNet: 32)")


LRELU = 0.1


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, channels: list[int]):
        super().__init__()
        self.period = period
        chans = [1, *channels]
        self.convs = nn.ModuleList([weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0)))
                                    for a, b in zip(chans[:-1], chans[1:])])
        self.convs.append(weight_norm(nn.Conv2d(chans[-1], chans[-1], (5, 1), 1, padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:  # x [B, N]
        b, n = x.shape
        if n % self.period:
            x = F.pad(x, (0, self.period - n % self.period), mode="reflect")
        h = x.view(b, 1, -1, self.period)
        return _conv_stack(h, self.convs, self.post)


def _conv_stack(h: torch.Tensor, convs: nn.ModuleList, post: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv stack then the 1-channel output conv: (logits [B, *], every feature map)."""
    feats = []
    for conv in convs:
        h = F.leaky_relu(conv(h), LRELU)
        feats.append(h)
    h = post(h)
    feats.append(h)
    return h.flatten(1), feats


class ResolutionDiscriminator(nn.Module):
    def __init__(self, n_fft: int, hop: int, win: int, channels: int):
        super().__init__()
        self.n_fft, self.hop, self.win = n_fft, hop, win
        self.register_buffer("window", torch.hann_window(win), persistent=False)
        c = channels
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, c, (3, 9), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
        ])
        self.post = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        mag = torch.stft(x, self.n_fft, self.hop, self.win, self.window, center=True, return_complex=True).abs()
        h = mag.transpose(1, 2).unsqueeze(1)  # [B, 1, T, F]
        return _conv_stack(h, self.convs, self.post)


class Discriminators(nn.Module):
    """MPD + MRD: ``forward(wav [B, N]) -> (logits per sub-discriminator, feature maps per sub)``."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.subs = nn.ModuleList([PeriodDiscriminator(p, cfg.mpd_channels) for p in cfg.periods] +
                                  [ResolutionDiscriminator(*r, cfg.mrd_channels) for r in cfg.resolutions])

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        outs = [d(x) for d in self.subs]
        return [o[0] for o in outs], [o[1] for o in outs]


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor], kind: str) -> torch.Tensor:
    """Hinge: E[max(0, 1 - D(y))] + E[max(0, 1 + D(ŷ))]; least squares: E[(D(y) - 1)²] + E[D(ŷ)²]."""
    loss = real[0].new_zeros(())
    for r, f in zip(real, fake):
        if kind == "hinge":
            loss = loss + F.relu(1 - r).mean() + F.relu(1 + f).mean()
        else:
            loss = loss + ((r - 1) ** 2).mean() + (f ** 2).mean()
    return loss / len(real)


def generator_adv_loss(fake: list[torch.Tensor], kind: str) -> torch.Tensor:
    """Hinge: E[max(0, 1 - D(ŷ))]; least squares: E[(D(ŷ) - 1)²]."""
    losses = [F.relu(1 - f).mean() if kind == "hinge" else ((f - 1) ** 2).mean() for f in fake]
    return sum(losses) / len(losses)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean over sub-discriminators of Σ_layers mean |D_l(y) − D_l(ŷ)| (HiFi-GAN eq. 4)."""
    total = [sum(F.l1_loss(f, r.detach()) for r, f in zip(rs, fs)) for rs, fs in zip(real, fake)]
    return sum(total) / len(total)

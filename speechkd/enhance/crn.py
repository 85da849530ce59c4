"""CRN: convolutional recurrent network estimating a magnitude mask (the SE teacher).

After Tan & Wang, "A convolutional recurrent neural network for real-time speech
enhancement" (Interspeech 2018): a convolutional encoder that halves the
frequency axis at each layer (kernel (2, 3), stride (1, 2), causal in time), a
GRU over time on the flattened bottleneck, and a mirrored decoder (sub-pixel
upsampling instead of transposed convs) with skip connections (concatenation) ending in a sigmoid mask. Smaller
than the paper's (~1 M instead of 17 M parameters) to train on a CPU; causal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from speechkd.config import field
from speechkd.enhance.stft import MaskEnhancer


@dataclass
class CRNConfig:
    n_fft: int = field(512, help="STFT size (32 ms at 16 kHz): n_fft // 2 + 1 frequency bins")
    hop: int = field(128, help="STFT hop in samples (8 ms at 16 kHz)")
    level: Literal["utterance", "running"] = field(
        "utterance", help="input level the magnitudes are divided by: the whole input's RMS (utterance), or "
                            "the RMS of the samples each frame has seen (running: causal, streams exactly)")
    channels: list[int] = field(default_factory=lambda: [8, 16, 32, 64],
                                help="encoder channels; each layer halves the frequency axis")
    rnn_hidden: int = field(256, help="GRU width over the flattened bottleneck")
    rnn_layers: int = field(1, help="GRU layers")


def _freq_after(n: int, layers: int) -> int:
    for _ in range(layers):
        n = (n - 3) // 2 + 1
    return n


class EncoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=(2, 3), stride=(1, 2))
        self.norm = nn.BatchNorm2d(cout)
        self.act = nn.ELU()

    def forward(self, x: torch.Tensor, past: torch.Tensor | None = None) -> torch.Tensor:
        """``past``: the input frame before ``x`` (B, C, 1, F); zeros (the causal padding) if None."""
        x = F.pad(x, (0, 0, 1, 0)) if past is None else torch.cat([past, x], 2)
        return self.act(self.norm(self.conv(x)))


class DecoderBlock(nn.Module):
    """Doubles the frequency axis by a sub-pixel convolution (Shi et al. 2016) along frequency:
    a (1, 3) conv to 2·cout channels, interleaved into 2F bins; faster on CPU than the
    paper's transposed convolution, same receptive field."""

    def __init__(self, cin: int, cout: int, last: bool):
        super().__init__()
        self.cout = cout
        self.conv = nn.Conv2d(2 * cin, 2 * cout, kernel_size=(1, 3), padding=(0, 1))
        self.norm = nn.Identity() if last else nn.BatchNorm2d(cout)
        self.act = nn.Sigmoid() if last else nn.ELU()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        y = self.conv(torch.cat([x, skip], dim=1))         # (B, 2C, T, F)
        b, _, t, f = y.shape
        y = y.reshape(b, 2, self.cout, t, f).permute(0, 2, 3, 4, 1).reshape(b, self.cout, t, 2 * f)
        return self.act(self.norm(y))


class CRN(MaskEnhancer):
    """Mask-based STFT CRN: (B, N) noisy waveform -> (B, N) enhanced waveform."""

    Config = CRNConfig
    causal = True  # causal convs in time, a unidirectional GRU: mask_step runs it frame by frame

    def __init__(self, cfg: CRNConfig):
        super().__init__(cfg.n_fft, cfg.hop, cfg.level)
        chans = [1, *cfg.channels]
        self.encoder = nn.ModuleList(EncoderBlock(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.decoder = nn.ModuleList(DecoderBlock(b, a, last=(a == 1))
                                     for a, b in reversed(list(zip(chans[:-1], chans[1:]))))
        self.f_bottleneck = _freq_after(self.n_freq, len(cfg.channels))
        flat = cfg.channels[-1] * self.f_bottleneck
        self.proj_in = nn.Linear(flat, cfg.rnn_hidden)
        self.rnn = nn.GRU(cfg.rnn_hidden, cfg.rnn_hidden, num_layers=cfg.rnn_layers, batch_first=True)
        self.proj_out = nn.Linear(cfg.rnn_hidden, flat)

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        """The streaming state before the first frame: each encoder layer's previous input frame
        (zeros: its causal padding) and the GRU state."""
        w = self.proj_in.weight
        sizes = [self.n_freq] + [_freq_after(self.n_freq, i + 1) for i in range(len(self.encoder) - 1)]
        return ([w.new_zeros(batch, enc.conv.in_channels, 1, f) for enc, f in zip(self.encoder, sizes)]
                + [w.new_zeros(self.rnn.num_layers, batch, self.rnn.hidden_size)])

    def mask_step(self, mag: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``mask`` of the frames ``mag`` (B, T, F) that follow ``state``; returns the mask and the
        state after them, so frames fed in any chunks give the mask of all of them at once."""
        x = mag[:, None]                                   # (B, 1, T, F)
        skips, new_state = [], []
        for enc, past in zip(self.encoder, state):
            new_state.append(torch.cat([past, x], 2)[:, :, -1:])
            x = enc(x, past)
            skips.append(x)
        b, c, t, f = x.shape
        h, h_n = self.rnn(self.proj_in(x.permute(0, 2, 1, 3).reshape(b, t, c * f)), state[-1])
        x = self.proj_out(h).reshape(b, t, c, f).permute(0, 2, 1, 3)
        sizes = [self.n_freq] + [s.shape[-1] for s in skips[:-1]]  # frequency size each decoder restores
        for dec, skip, size in zip(self.decoder, reversed(skips), reversed(sizes)):
            x = dec(x, skip)
            x = F.pad(x, (0, size - x.shape[-1])) if x.shape[-1] < size else x[..., :size]
        return (x[:, 0], *new_state, h_n)

    def mask(self, mag: torch.Tensor) -> torch.Tensor:
        return self.mask_step(mag, *self.initial_state(mag.shape[0]))[0]

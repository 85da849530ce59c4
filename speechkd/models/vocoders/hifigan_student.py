"""A small trainable HiFi-GAN generator (Kong, Kim & Bae 2020, sec. 2.1 and Table 1): the V1
architecture of :class:`speechkd.models.vocoders.hifigan.HiFiGANGenerator` (upsampling
8, 8, 2, 2 with kernels 16, 16, 4, 4; MRF kernels 3, 7, 11 with dilations 1, 3, 5) with fewer
channels. ``upsample_initial_channel`` h_u sets the size: the default 128 is the paper's V2
(0.93 M parameters), the released V1 teacher has 512 (13.9 M): the student of vocoder
distillation from that teacher (``speechkd train-vocoder`` with ``generator: hifigan``). On a CPU
the speed does not follow the parameter count alone: channel counts that are not powers of two
(h_u 160: 80, 40, 20 after the upsamplings) fall off the fastest convolution kernels.

Contract of a trainable generator (``GENERATORS``): ``forward(log_mel [B, T, n_mels]) ->
wav [B, (T - 1) * hop]``. HiFi-GAN emits hop samples per frame, ``T * hop`` in all; with
HiFi-GAN's framing (``center: false, pad: (n_fft - hop) / 2``) frame t is centred on sample
t·hop + hop/2, so samples [t·hop, (t+1)·hop) belong to frame t and the first (T − 1)·hop of the
output pair with the training segment (:mod:`speechkd.train.vocoder`). With centred frames the
pairing is off by half a hop, which the convolutions absorb (the receptive field spans frames).
The input is standardised with the training statistics (buffers, as the Vocos-like generator);
weights are initialised N(0, 0.01) as the reference code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from speechkd.config import field
from speechkd.errors import ConfigError
from speechkd.features.config import FeatureConfig
from speechkd.models.vocoders.hifigan import HiFiGANConfig, HiFiGANGenerator


@dataclass
class HiFiGANStudentConfig:
    upsample_initial_channel: int = field(128, gt=0, help="h_u, channels after conv_pre, halved per upsampling "
                                                          "(V2: 128; V1 teacher: 512)")
    upsample_rates: list = field(default_factory=(lambda: [8, 8, 2, 2]),
                                 help="stride of each transposed conv; their product must be the hop length")
    upsample_kernel_sizes: list = field(default_factory=(lambda: [16, 16, 4, 4]),
                                        help="kernel of each transposed conv (2x its stride in V1)")
    resblock_kernel_sizes: list = field(default_factory=(lambda: [3, 7, 11]), help="kernel of each MRF branch")
    resblock_dilation_sizes: list = field(default_factory=(lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]),
                                          help="dilations of each MRF branch")


class HiFiGANStudent(nn.Module):
    """``forward(log_mel [B, T, n_mels]) -> wav [B, (T - 1) * hop]`` (module docstring)."""

    Config = HiFiGANStudentConfig

    def __init__(self, cfg: HiFiGANStudentConfig, feats: FeatureConfig, mel_mean: np.ndarray | None = None,
                 mel_std: np.ndarray | None = None):
        super().__init__()
        self.cfg, self.feature_config = cfg, feats
        hop = int(np.prod(cfg.upsample_rates))
        if hop != feats.hop_length:
            raise ConfigError(f"upsample_rates {cfg.upsample_rates} multiply to {hop}, the features' hop is "
                              f"{feats.hop_length}", field="generator_conf.upsample_rates")
        if len(cfg.upsample_kernel_sizes) != len(cfg.upsample_rates) or \
                len(cfg.resblock_dilation_sizes) != len(cfg.resblock_kernel_sizes):
            raise ConfigError("one kernel per upsampling stage and one dilation list per MRF kernel",
                              field="generator_conf")
        if cfg.upsample_initial_channel % 2 ** len(cfg.upsample_rates):
            raise ConfigError(f"upsample_initial_channel must be divisible by 2^{len(cfg.upsample_rates)}",
                              field="generator_conf.upsample_initial_channel")
        n = feats.n_mels
        self.register_buffer("mel_mean", torch.as_tensor(np.zeros(n) if mel_mean is None else mel_mean,
                                                         dtype=torch.float32))
        self.register_buffer("mel_std", torch.as_tensor(np.ones(n) if mel_std is None else mel_std,
                                                        dtype=torch.float32))
        self.net = HiFiGANGenerator(HiFiGANConfig(
            n_mels=n, upsample_initial_channel=cfg.upsample_initial_channel, upsample_rates=list(cfg.upsample_rates),
            upsample_kernel_sizes=list(cfg.upsample_kernel_sizes),
            resblock_kernel_sizes=list(cfg.resblock_kernel_sizes),
            resblock_dilation_sizes=[list(d) for d in cfg.resblock_dilation_sizes]))
        for m in self.net.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                nn.init.normal_(m.weight, 0.0, 0.01)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        x = ((log_mel - self.mel_mean) / self.mel_std).transpose(1, 2)
        wav = self.net(x)[:, 0]
        return wav[:, : (log_mel.shape[1] - 1) * self.feature_config.hop_length]

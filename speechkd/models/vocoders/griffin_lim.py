"""Griffin-Lim phase reconstruction from log-mel, batched in torch (CPU or CUDA).

mel -> linear magnitude by the pseudo-inverse of the mel filter bank (least
squares, clamped at 0), then the fast Griffin-Lim algorithm (Perraudin,
Balazs & Søndergaard 2013, "A fast Griffin-Lim algorithm", eq. 4): the
projection onto consistent spectrograms is extrapolated with momentum α,

    c_n = P_C(P_A(t_{n-1})),   t_n = c_n + α (c_n − c_{n−1}),

which with α = 0.99 converges in ~32 iterations where plain Griffin & Lim
(1984) needs ~100. The STFT settings are the FeatureConfig's, so it inverts
exactly the log-mel of :func:`speechkd.features.mel.log_mel`. Needs no
training: it is the vocoder of every recipe until a neural one is trained.
With ``center: false`` and ``pad`` p > 0 (HiFi-GAN's framing), frame t of x is frame t of the
centred STFT of x advanced by n_fft/2 - p samples, so the centred algorithm runs and its
output is delayed by that much (exact but for the reflected edges).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from speechkd.config import field
from speechkd.features.config import FeatureConfig
from speechkd.features.mel import mel_basis


@dataclass
class GriffinLimConfig:
    n_iter: int = field(32, help="Griffin-Lim iterations")
    momentum: float = field(0.99, help="fast Griffin-Lim momentum α (0 = the original algorithm)")
    power: float = field(1.0, help="exponent on the linear magnitude before phase reconstruction "
                                   "(>1 sharpens harmonics, a common trick; 1 = none)")
    seed: int = field(0, help="seed of the initial random phase")


class GriffinLim:
    """Vocoder: log-mel ``[B, T, n_mels]`` -> waveform ``[B, samples]``."""

    needs_training = False
    needs_wav = False

    def __init__(self, feats: FeatureConfig, cfg: GriffinLimConfig | None = None, device: str = "cpu"):
        self.feature_config, self.cfg, self.device = feats, cfg or GriffinLimConfig(), torch.device(device)
        basis = torch.from_numpy(np.array(mel_basis(feats), dtype=np.float32))
        self.inv_basis = torch.linalg.pinv(basis).to(self.device)  # [freq, n_mels]
        self.window = torch.hann_window(feats.win_length, periodic=True, device=self.device) \
            if feats.window == "hann" else torch.hamming_window(feats.win_length, periodic=True, device=self.device)

    def mel_to_magnitude(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Linear |X| ``[B, freq, T]`` from log-mel ``[B, T, n_mels]`` (pseudo-inverse, >= 0)."""
        mel = torch.exp(log_mel) if self.feature_config.log_base == "e" else torch.pow(10.0, log_mel)
        spec = torch.matmul(self.inv_basis, mel.transpose(1, 2)).clamp_min(0.0)
        if self.feature_config.power != 1.0:  # the features were built on |X|^p
            spec = spec.pow(1.0 / self.feature_config.power)
        return spec.pow(self.cfg.power) if self.cfg.power != 1.0 else spec

    @property
    def _center(self) -> bool:
        return self.feature_config.center or self.feature_config.pad > 0

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        f = self.feature_config
        return torch.stft(x, f.n_fft, f.hop_length, f.win_length, self.window, center=self._center,
                          pad_mode="reflect", return_complex=True)

    def _istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        f = self.feature_config
        return torch.istft(spec, f.n_fft, f.hop_length, f.win_length, self.window, center=self._center,
                           length=length)

    @torch.no_grad()
    def __call__(self, log_mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Waveforms ``[B, T * hop]``; with ``lengths`` (frames), padded frames are zeroed first."""
        log_mel = log_mel.to(self.device, torch.float32)
        if log_mel.dim() == 2:
            log_mel = log_mel.unsqueeze(0)
        mag = self.mel_to_magnitude(log_mel)
        if lengths is not None:
            mask = torch.arange(mag.shape[-1], device=self.device)[None, :] < lengths.to(self.device)[:, None]
            mag = mag * mask[:, None, :]
        n_samples = (mag.shape[-1] - 1) * self.feature_config.hop_length if self._center \
            else (mag.shape[-1] - 1) * self.feature_config.hop_length + self.feature_config.n_fft
        g = torch.Generator(device="cpu").manual_seed(self.cfg.seed)
        phase = torch.rand(mag.shape, generator=g).to(self.device) * (2 * np.pi)
        angles = torch.polar(torch.ones_like(mag), phase)
        alpha = self.cfg.momentum / (1.0 + self.cfg.momentum)  # torchaudio's parameterisation of eq. 4
        prev = torch.zeros_like(angles)
        for _ in range(self.cfg.n_iter):
            rebuilt = self._stft(self._istft(mag * angles, n_samples))
            # t_n = c_n - α' c_{n-1}, then keep its phase only (sgn(z) = z/|z|, 0 at z = 0)
            angles = torch.sgn(rebuilt.sub(prev, alpha=alpha) if self.cfg.momentum > 0 else rebuilt)
            prev = rebuilt
        wav = self._istft(mag * angles, n_samples)
        if not self.feature_config.center and self.feature_config.pad:  # delay by n_fft/2 - pad, to T * hop samples
            shift = self.feature_config.n_fft // 2 - self.feature_config.pad
            wav = torch.nn.functional.pad(wav, (shift, self.feature_config.hop_length - shift))
        return wav

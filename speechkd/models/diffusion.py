"""Diffusion acoustic model predicting clean mels (DiffSpeech, Liu et al. 2022; ProDiff, Huang et
al. 2022): the ProDiff teacher, and every student of its progressive distillation.

    tokens -> FastSpeech 2 encoder + variance adaptor (durations, pitch, energy) -> cond [B, T, d]
    x_t, tau, cond -> WaveNet-style residual denoiser -> x0^                   (ProDiff sec. 3.2)

Denoiser (DiffWave, Kong et al. 2021, fig. 2, as DiffSpeech/ProDiff use it): a 1x1 input
projection + ReLU; a sinusoidal embedding of the diffusion time through an MLP (Mish); L
residual layers, each adding a per-layer projection of that embedding to its input, a dilated
conv (dilation 2^(i mod cycle)) plus a 1x1 projection of the condition, the gated unit
tanh(a) * sigmoid(b), and a 1x1 output split into a residual (scaled by 1/sqrt 2) and a skip;
the skips summed / sqrt(L), 1x1 + ReLU, a zero-initialised 1x1 to n_mels. Padded frames are
zeroed before every convolution, so they never reach a real frame.

Generator-based parameterisation (ProDiff sec. 3.2, eq. 6): the network predicts x0, trained
with a masked L1 ``|x0 - x0^|`` at a uniformly drawn step t in 1..N, optionally jointly with the
condition's duration/pitch/energy losses (ProDiff trains the FastSpeech 2 part with it). Mels are
standardised per bin with the training statistics inside the model (``set_stats``), so that
noise of unit variance has the same meaning for every bin. Sampling: DDIM (eta = 0) or the DDPM
posterior on any k-step sub-grid of the model's N steps (:mod:`speechkd.models.diffusion_sampling`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechkd.config import field
from speechkd.models.diffusion_sampling import NoiseSchedule, q_sample, sample, sampling_grid
from speechkd.models.fastspeech2 import FastSpeech2, FastSpeech2Config
from speechkd.models.layers import length_mask


@dataclass
class DenoiserConfig:
    """WaveNet-style residual denoiser (DiffSpeech/ProDiff: 20 layers, 256 channels, cycle 1)."""

    residual_layers: int = field(20, help="residual layers L")
    residual_channels: int = field(256, help="channels C of every residual layer")
    kernel_size: int = field(3, help="kernel of the dilated convolutions (odd)")
    dilation_cycle: int = field(1, help="dilation of layer i is 2^(i mod cycle); 1: no dilation (ProDiff)")
    time_scale: float = field(1000.0, help="the sinusoidal step embedding sees tau * time_scale (tau in [0, 1])")

    def __post_init__(self) -> None:
        if self.kernel_size % 2 == 0 or self.residual_layers < 1 or self.dilation_cycle < 1:
            raise ValueError("denoiser needs an odd kernel_size, residual_layers >= 1 and dilation_cycle >= 1")


def step_embedding(tau: torch.Tensor, dim: int, scale: float) -> torch.Tensor:
    """Sinusoidal embedding [B, dim] of the diffusion time (Vaswani et al. 2017 sec. 3.5, as DiffWave)."""
    half = dim // 2
    dtype = tau.dtype if tau.is_floating_point() else torch.float32
    freqs = torch.exp(torch.arange(half, device=tau.device, dtype=dtype) * (-math.log(10000.0) / (half - 1)))
    arg = (tau.to(dtype) * scale)[:, None] * freqs[None]
    return torch.cat([arg.sin(), arg.cos()], dim=-1)


class ResidualLayer(nn.Module):
    def __init__(self, c: int, d_cond: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(c, 2 * c, kernel, padding=dilation * (kernel // 2), dilation=dilation)
        self.step_proj = nn.Linear(c, c)
        self.cond_proj = nn.Conv1d(d_cond, 2 * c, 1)
        self.out_proj = nn.Conv1d(c, 2 * c, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, step: torch.Tensor,
                m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T], cond [B, d, T], step [B, C], m [B, 1, T] -> (residual out, skip)."""
        y = (x + self.step_proj(step)[..., None]) * m
        y = self.conv(y) + self.cond_proj(cond)
        gate, filt = y.chunk(2, dim=1)
        y = torch.sigmoid(gate) * torch.tanh(filt)
        res, skip = self.out_proj(y).chunk(2, dim=1)
        return (x + res) * m / math.sqrt(2.0), skip * m


class Denoiser(nn.Module):
    """x0^ = f(x_t, tau, cond); every tensor batch-first ``[B, T, ...]``."""

    def __init__(self, cfg: DenoiserConfig, n_mels: int, d_cond: int):
        super().__init__()
        c = cfg.residual_channels
        self.cfg = cfg
        self.in_proj = nn.Conv1d(n_mels, c, 1)
        self.step_mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.Mish(), nn.Linear(4 * c, c))
        self.layers = nn.ModuleList(ResidualLayer(c, d_cond, cfg.kernel_size, 2 ** (i % cfg.dilation_cycle))
                                    for i in range(cfg.residual_layers))
        self.skip_proj = nn.Conv1d(c, c, 1)
        self.out_proj = nn.Conv1d(c, n_mels, 1)
        nn.init.zeros_(self.out_proj.weight)  # DiffWave: start from a zero prediction
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x_t: torch.Tensor, tau: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :].to(x_t.dtype)
        x = F.relu(self.in_proj(x_t.transpose(1, 2) * m)) * m
        cond = cond.transpose(1, 2) * m
        step = self.step_mlp(step_embedding(tau, self.cfg.residual_channels, self.cfg.time_scale))
        skips = 0.0
        for layer in self.layers:
            x, skip = layer(x, cond, step, m)
            skips = skips + skip
        y = F.relu(self.skip_proj(skips / math.sqrt(len(self.layers)))) * m
        return (self.out_proj(y) * m).transpose(1, 2)


@dataclass
class DiffusionConfig:
    """ProDiff-style diffusion acoustic model: schedule, step count, denoiser, condition, losses."""

    steps: int = field(8, help="diffusion steps N of this model's grid (tau = t/N); a distilled student has "
                               "half its teacher's")
    schedule: Literal["vpsde", "cosine"] = field("vpsde", help="noise schedule: vpsde (ProDiff) or cosine "
                                                               "(Nichol & Dhariwal)")
    beta_min: float = field(0.1, help="vpsde: beta(0) of the continuous VP-SDE (ProDiff: 0.1)")
    beta_max: float = field(40.0, help="vpsde: beta(1) (ProDiff: 40)")
    cosine_s: float = field(0.008, help="cosine: offset s of Nichol & Dhariwal's schedule")
    sampler: Literal["ddim", "ddpm"] = field("ddim", help="default sampler: deterministic DDIM (eta 0) or the "
                                                          "DDPM posterior")
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig, help="the WaveNet-style denoiser")
    condition: FastSpeech2Config = field(default_factory=lambda: FastSpeech2Config(dec_layers=0),
                                         help="the FastSpeech 2 encoder + variance adaptor giving the frame-level "
                                              "condition (its decoder settings are unused)")
    variance_loss_weight: float = field(1.0, help="weight of the condition's duration/pitch/energy losses "
                                                  "(joint training as in ProDiff); 0: diffusion loss only")
    val_sample_steps: int = field(0, help="validation: sample the dev mels with this many DDIM steps (ground-"
                                          "truth durations) and log their L1 to the target; 0: off")

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.val_sample_steps and self.steps % self.val_sample_steps:
            raise ValueError(f"val_sample_steps {self.val_sample_steps} must divide steps {self.steps}")


def masked_l1(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |x - y| over the real frames (``mask [B, T]``) and bins; ``weight [B]`` per utterance."""
    m = mask[..., None].to(x.dtype)
    err = (x - y).abs() * m
    if weight is not None:
        err = err * weight.to(x.dtype).view(-1, 1, 1)
    return err.sum() / (m.sum() * x.size(-1)).clamp_min(1.0)


class DiffusionTTS(nn.Module):
    """FastSpeech 2 condition + x0-predicting denoiser; see the module docstring."""

    Config = DiffusionConfig
    # batch entries TTSTask passes to forward(): the condition is teacher-forced like FastSpeech 2
    batch_needs = FastSpeech2.batch_needs
    has_variances = True

    def __init__(self, cfg: DiffusionConfig, n_vocab: int, n_mels: int, condition: nn.Module | None = None,
                 n_speakers: int = 0, spk_embed_dim: int = 0):
        super().__init__()
        self.cfg, self.n_mels = cfg, n_mels
        self.schedule = NoiseSchedule(cfg.schedule, cfg.beta_min, cfg.beta_max, cfg.cosine_s)
        # the speaker enters through the condition (FastSpeech 2's encoder output), as every other input
        self.condition = (condition if condition is not None
                          else build_condition(cfg, n_vocab, n_mels, n_speakers, spk_embed_dim))
        d_cond = getattr(self.condition, "d_condition", None) or cfg.condition.d_model
        self.denoiser = Denoiser(cfg.denoiser, n_mels, d_cond)
        # per-bin standardisation of the mels (training statistics, set once by set_stats and saved)
        self.register_buffer("mel_loc", torch.zeros(n_mels))
        self.register_buffer("mel_scale", torch.ones(n_mels))

    # ---- scaling -----------------------------------------------------------------------------
    def set_stats(self, stats: Any) -> None:
        """Standardise mels per bin with the training ``Stats`` of the mels this model is given
        (TTSTask passes mean 0 / std 1 when the features are globally normalised already); also
        hands them to the condition (pitch/energy)."""
        self.mel_loc.copy_(torch.as_tensor(stats.mel_mean, dtype=torch.float32))
        self.mel_scale.copy_(torch.as_tensor(stats.mel_std, dtype=torch.float32).clamp_min(1e-5))
        if hasattr(self.condition, "set_stats"):
            self.condition.set_stats(stats)

    def set_speaker_stats(self, rows: list[list[float]]) -> None:
        """Per-speaker pitch/energy statistics, for the condition (FastSpeech 2)."""
        if hasattr(self.condition, "set_speaker_stats"):
            self.condition.set_speaker_stats(rows)

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.mel_loc) / self.mel_scale

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mel_scale + self.mel_loc

    # ---- the pieces ----------------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor, token_lens: torch.Tensor, **kw: Any
               ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(cond [B, T, d], mel_lens, variance predictions) from the FastSpeech 2 condition."""
        return self.condition.encode_condition(tokens, token_lens, **kw)

    def denoise(self, x_t: torch.Tensor, tau: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x0^ (normalised domain) of ``x_t`` at times ``tau [B]``."""
        return self.denoiser(x_t, tau, cond, mask)

    def draw_steps(self, batch_size: int, device: torch.device) -> torch.Tensor:
        """t uniform in 1..N per utterance (the training distribution of ProDiff's teacher)."""
        return torch.randint(1, self.cfg.steps + 1, (batch_size,), device=device)

    # ---- training ----------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, token_lens: torch.Tensor, mels: torch.Tensor, mel_lens: torch.Tensor,
                **condition_inputs: Any) -> dict[str, Any]:
        """Teacher-forced condition (ground-truth durations/pitch/energy from the batch), one
        noisy x_t per utterance at a random step, and the model's x0^ of it."""
        cond, lens, pred = self.encode(tokens, token_lens, **condition_inputs)
        t_max = mels.size(1)
        cond = _fit_frames(cond, t_max)
        mask = length_mask(mel_lens, t_max)
        x0 = self.normalize(mels) * mask[..., None]
        t = self.draw_steps(mels.size(0), mels.device)
        tau = t.double() / self.cfg.steps
        a, sigma = self.schedule.a_sigma(tau, x0)
        x_t = q_sample(x0, a, sigma, torch.randn_like(x0)) * mask[..., None]
        x0_hat = self.denoise(x_t, tau.to(x0.dtype), cond, mask)
        return {"x0": x0, "x0_hat": x0_hat, "x_t": x_t, "t": t, "mask": mask, "cond": cond,
                "pred": pred, "cond_lens": lens}

    def losses(self, batch: dict, out: dict, step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Masked L1 on x0 (ProDiff eq. 6) + the condition's variance losses."""
        l1 = masked_l1(out["x0_hat"], out["x0"], out["mask"])
        logs = {"diff_l1": l1}
        loss = l1
        if self.cfg.variance_loss_weight > 0 and hasattr(self.condition, "variance_losses"):
            v_logs = self.condition.variance_losses(batch, out["pred"])
            loss = loss + self.cfg.variance_loss_weight * sum(self.condition.loss_weight(k) * v
                                                              for k, v in v_logs.items())
            logs.update(v_logs)
        logs["loss"] = loss
        return loss, logs

    @torch.no_grad()
    def validation_metrics(self, batch: dict, out: dict) -> dict[str, list[float]]:
        """L1 (log-mel) of the DDIM-sampled mel to the target per dev utterance, if configured."""
        k = self.cfg.val_sample_steps
        if k <= 0:
            return {}
        g = torch.Generator(device=out["x0"].device).manual_seed(0)
        x = self.sample_mel(out["cond"], out["mask"], steps=k, generator=g)
        out["sampled"] = x
        m = out["mask"][..., None].to(x.dtype)
        err = ((self.denormalize(x) - self.denormalize(out["x0"])).abs() * m).sum((1, 2))
        return {f"sample_l1_{k}steps": (err / (m.sum((1, 2)) * x.size(-1))).tolist()}

    def plot_arrays(self, batch: dict, out: dict, b: int) -> dict[str, np.ndarray]:
        n = int(out["mask"][b].sum())

        def np_(x: torch.Tensor) -> np.ndarray:
            return self.denormalize(x[b, :n]).detach().float().cpu().numpy()

        arrays = {"mel target": np_(out["x0"]), f"mel x0^ at t={int(out['t'][b])}/{self.cfg.steps}": np_(out["x0_hat"])}
        if "sampled" in out:
            arrays[f"mel sampled ({self.cfg.val_sample_steps} DDIM steps)"] = np_(out["sampled"])
        return arrays

    # ---- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def sample_mel(self, cond: torch.Tensor, mask: torch.Tensor, *, steps: int | None = None, sampler: str | None = None,
                   generator: torch.Generator | None = None, x_T: torch.Tensor | None = None) -> torch.Tensor:
        """A normalised-domain mel [B, T, n_mels] sampled from pure noise on a ``steps``-point sub-grid."""
        grid = sampling_grid(self.cfg.steps, steps or self.cfg.steps)
        if x_T is None:
            x_T = torch.randn((*mask.shape, self.n_mels), generator=generator, device=cond.device, dtype=cond.dtype)
        return sample(lambda x, tau: self.denoise(x, tau, cond, mask), self.schedule, x_T, grid, self.cfg.steps,
                      sampler or self.cfg.sampler, mask, generator)

    @torch.no_grad()
    def inference(self, tokens: torch.Tensor, token_lens: torch.Tensor, *, steps: int | None = None,
                  speed: float = 1.0, pitch_scale: float = 1.0, energy_scale: float = 1.0,
                  sampler: str | None = None, generator: torch.Generator | None = None,
                  **condition_inputs: Any) -> dict[str, torch.Tensor]:
        """Mels from tokens: predicted durations/pitch/energy (or given ones), then ``steps`` sampler
        steps (default: the model's N). Returns ``mel [B, T, n_mels]`` (zero past each length), ``mel_lens``."""
        cond, mel_lens, _ = self.encode(tokens, token_lens, speed=speed, pitch_scale=pitch_scale,
                                        energy_scale=energy_scale, **condition_inputs)
        mask = length_mask(mel_lens, cond.size(1))
        x = self.sample_mel(cond, mask, steps=steps, sampler=sampler, generator=generator)
        return {"mel": self.denormalize(x) * mask[..., None], "mel_lens": mel_lens}


def _fit_frames(x: torch.Tensor, t: int) -> torch.Tensor:
    """Cut or zero-pad ``x [B, T', d]`` to ``t`` frames (durations sum to the target length, but a
    batch's padded length may differ)."""
    if x.size(1) >= t:
        return x[:, :t]
    return F.pad(x, (0, 0, 0, t - x.size(1)))


def build_condition(cfg: DiffusionConfig, n_vocab: int, n_mels: int, n_speakers: int = 0,
                    spk_embed_dim: int = 0) -> FastSpeech2:
    """FastSpeech 2 without its mel decoder: only ``encode_condition`` (encoder, variance adaptor,
    length regulator) and its variance losses are used (ProDiff sec. 3.2, DiffSpeech)."""
    fs2 = FastSpeech2(cfg.condition, n_vocab, n_mels, n_speakers, spk_embed_dim)
    fs2.decoder = fs2.mel_out = fs2.postnet = None  # unused parameters (DDP would need find_unused_parameters)
    return fs2

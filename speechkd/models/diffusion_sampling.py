"""Gaussian diffusion in x0 form: noise schedules, the DDIM and DDPM samplers, and the
progressive-distillation target (Song et al. 2021; Ho et al. 2020; Salimans & Ho 2022; ProDiff).

Time is continuous, tau in [0, 1]; a model with N steps lives on the grid tau = t/N, t = 0..N
(t = 0: clean data). ``q(x_t | x_0) = N(a_t x_0, sigma_t^2 I)`` with ``a = sqrt(alpha_bar)`` and
``sigma = sqrt(1 - alpha_bar)``, so ``a^2 + sigma^2 = 1`` (variance preserving). A k-step
student of an N-step teacher (k divides N) uses the teacher's own noise levels at t = j N/k:
the same schedule, a coarser grid, the same time labels.

Schedules (alpha_bar as a function of tau):

- ``vpsde`` (ProDiff, Song et al. 2021 eq. 33): beta(s) = beta_min + s (beta_max - beta_min),
  alpha_bar(tau) = exp(-(beta_min tau + (beta_max - beta_min) tau^2 / 2)). ProDiff's released
  ``vpsde_beta_t(t, T)`` = 1 - exp(-beta_min/T - (beta_max - beta_min)(2t - 1)/(2T^2)) is this
  integral over [(t-1)/T, t/T], so its cumulative product on N steps equals alpha_bar(t/N)
  exactly (tested). ProDiff: beta_min 0.1, beta_max 40.
- ``cosine`` (Nichol & Dhariwal 2021, eq. 17): alpha_bar(tau) = f(tau)/f(0),
  f(tau) = cos^2((tau + s)/(1 + s) pi/2), s = 0.008. alpha_bar(1) = 0: the last step is pure
  noise, which an x0-predicting model handles (no 1/a_t anywhere); we do not clip beta at 0.999
  as the eps-predicting original does.

Samplers (every function broadcasts ``a, sigma`` of shape [B, 1, 1] against ``x [B, T, C]``):

- DDIM, eta = 0 (Song et al. 2021, eq. 12 in x0 form):
  x_s = a_s x0^ + (sigma_s / sigma_t)(x_t - a_t x0^).
- DDPM posterior q(x_s | x_t, x0^) between any two grid points s < t (Ho et al. 2020 eq. 7,
  Kingma et al. 2021 eq. 26-27 for a skip): with a_{t|s} = a_t / a_s and
  sigma_{t|s}^2 = sigma_t^2 - a_{t|s}^2 sigma_s^2, mean = (a_s sigma_{t|s}^2 / sigma_t^2) x0^
  + (a_{t|s} sigma_s^2 / sigma_t^2) x_t, variance = sigma_{t|s}^2 sigma_s^2 / sigma_t^2.
- Distillation target (Salimans & Ho 2022, Alg. 2; ProDiff eq. 9): after two teacher DDIM steps
  t -> t' -> t'', the x0 that takes x_t to x_t'' in ONE DDIM step is
  x~ = (x_t'' - (sigma_t''/sigma_t) x_t) / (a_t'' - (sigma_t''/sigma_t) a_t); at t'' = 0 (sigma = 0)
  that is x_t'' itself.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch

from speechkd.errors import ConfigError

Schedule = Literal["vpsde", "cosine"]
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t [B,T,C], tau [B]) -> x0^ [B,T,C]


class NoiseSchedule:
    """alpha_bar(tau) of a variance-preserving diffusion, and the grid helpers built on it."""

    def __init__(self, kind: Schedule = "vpsde", beta_min: float = 0.1, beta_max: float = 40.0,
                 cosine_s: float = 0.008):
        if kind not in ("vpsde", "cosine"):
            raise ConfigError(f"unknown noise schedule {kind!r}; known: vpsde, cosine", field="schedule")
        if kind == "vpsde" and not 0 <= beta_min < beta_max:
            raise ConfigError(f"vpsde needs 0 <= beta_min < beta_max, got {beta_min}, {beta_max}",
                              field="beta_min")
        self.kind, self.beta_min, self.beta_max, self.cosine_s = kind, beta_min, beta_max, cosine_s

    def alpha_bar(self, tau: torch.Tensor) -> torch.Tensor:
        """alpha_bar at times ``tau`` (any shape, in [0, 1]); computed in float64."""
        t = tau.double()
        if self.kind == "vpsde":
            return torch.exp(-(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t))
        s = self.cosine_s
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        return (f / math.cos(s / (1 + s) * math.pi / 2) ** 2).clamp(0.0, 1.0)

    def a_sigma(self, tau: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, sigma) at ``tau [B]``, shaped [B, 1, 1] in the dtype/device of ``like``."""
        ab = self.alpha_bar(tau)
        a, sigma = ab.sqrt(), (1.0 - ab).clamp_min(0.0).sqrt()
        shape = (-1,) + (1,) * (like.dim() - 1)
        return a.to(like).view(shape), sigma.to(like).view(shape)

    def discrete_betas(self, steps: int) -> torch.Tensor:
        """beta_t = 1 - alpha_bar(t/N) / alpha_bar((t-1)/N), t = 1..N (the DDPM parameterisation)."""
        ab = self.alpha_bar(torch.arange(steps + 1, dtype=torch.float64) / steps)
        return 1.0 - ab[1:] / ab[:-1]


def sampling_grid(train_steps: int, steps: int) -> list[int]:
    """Indices on a ``train_steps`` grid visited by a ``steps``-step sampler: N, N - N/k, ..., 0.

    A model trained on N steps has seen only the noise levels t/N, so k must divide N."""
    if steps < 1 or train_steps % steps:
        raise ConfigError(f"cannot sample with {steps} steps on a model trained with {train_steps}: the "
                          f"step count must divide {train_steps}", field="steps",
                          hint=f"use one of {[k for k in range(1, train_steps + 1) if train_steps % k == 0]}")
    stride = train_steps // steps
    return list(range(train_steps, -1, -stride))


def ddim_step(x_t: torch.Tensor, x0: torch.Tensor, a_t: torch.Tensor, sigma_t: torch.Tensor,
              a_s: torch.Tensor, sigma_s: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from t to s < t: x_s = a_s x0 + (sigma_s/sigma_t)(x_t - a_t x0)."""
    return a_s * x0 + (sigma_s / sigma_t) * (x_t - a_t * x0)


def ddpm_step(x_t: torch.Tensor, x0: torch.Tensor, a_t: torch.Tensor, sigma_t: torch.Tensor,
              a_s: torch.Tensor, sigma_s: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A sample of the DDPM posterior q(x_s | x_t, x0) (see the module docstring)."""
    a_ts = a_t / a_s
    var_ts = (sigma_t ** 2 - a_ts ** 2 * sigma_s ** 2).clamp_min(0.0)
    mean = (a_s * var_ts / sigma_t ** 2) * x0 + (a_ts * sigma_s ** 2 / sigma_t ** 2) * x_t
    std = (var_ts * sigma_s ** 2 / sigma_t ** 2).sqrt()
    noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
    return mean + std * noise


def distill_target(x_t: torch.Tensor, x_t2: torch.Tensor, a_t: torch.Tensor, sigma_t: torch.Tensor,
                   a_t2: torch.Tensor, sigma_t2: torch.Tensor) -> torch.Tensor:
    """x~ such that ONE DDIM step t -> t'' from x_t with x0^ = x~ lands on ``x_t2`` (Salimans & Ho
    2022, Alg. 2): x~ = (x_t'' - r x_t) / (a_t'' - r a_t), r = sigma_t''/sigma_t; x_t'' at sigma_t'' = 0."""
    r = sigma_t2 / sigma_t
    den = a_t2 - r * a_t
    # den = a_t'' (1 - SNR-ratio) > 0 for t'' < t; exactly 1 where t'' = 0 (r = 0, a_t'' = 1)
    return torch.where(sigma_t2 > 0, (x_t2 - r * x_t) / den, x_t2)


def q_sample(x0: torch.Tensor, a_t: torch.Tensor, sigma_t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = a_t x0 + sigma_t eps (the forward process, Ho et al. 2020 eq. 4)."""
    return a_t * x0 + sigma_t * noise


@torch.no_grad()
def sample(denoise: Denoiser, schedule: NoiseSchedule, x_T: torch.Tensor, grid: list[int], train_steps: int,
           sampler: Literal["ddim", "ddpm"] = "ddim", mask: torch.Tensor | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Run ``denoise`` down ``grid`` (indices on a ``train_steps`` grid, from high to 0) from ``x_T``.

    ``mask [B, T]`` (True on real frames) zeroes padded frames after every step, so the padding
    never carries noise into a real frame (the denoiser masks its own convolutions too)."""
    if sampler not in ("ddim", "ddpm"):
        raise ConfigError(f"unknown sampler {sampler!r}; known: ddim, ddpm", field="sampler")
    m = None if mask is None else mask[..., None].to(x_T)
    x = x_T if m is None else x_T * m
    b = x.size(0)
    for t, s in zip(grid[:-1], grid[1:]):
        tau_t = torch.full((b,), t / train_steps, dtype=torch.float64, device=x.device)
        tau_s = torch.full((b,), s / train_steps, dtype=torch.float64, device=x.device)
        x0 = denoise(x, tau_t.to(x.dtype))
        a_t, sig_t = schedule.a_sigma(tau_t, x)
        a_s, sig_s = schedule.a_sigma(tau_s, x)
        if s == 0:
            x = x0  # both samplers end on x0^ (sigma_0 = 0)
        elif sampler == "ddim":
            x = ddim_step(x, x0, a_t, sig_t, a_s, sig_s)
        else:
            x = ddpm_step(x, x0, a_t, sig_t, a_s, sig_s, generator)
        if m is not None:
            x = x * m
    return x

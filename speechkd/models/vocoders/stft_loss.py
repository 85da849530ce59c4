"""Multi-resolution STFT loss (Yamamoto, Song & Kim 2020, "Parallel WaveGAN", sec. 2.3, eq. 4-6).

Per resolution m (n_fft, hop, win), with |Y| the STFT magnitude of the target y and |Ŷ| of the
generated ŷ (Hann window, centred frames):

    L_sc^m  = ‖ |Y| − |Ŷ| ‖_F / ‖ |Y| ‖_F                       (spectral convergence, eq. 4)
    L_mag^m = (1/N) ‖ log|Y| − log|Ŷ| ‖_1                        (log STFT magnitude, eq. 5)
    L_stft  = (1/M) Σ_m (L_sc^m + L_mag^m)                        (eq. 6)

Several resolutions keep the generator from fitting one time-frequency trade-off only. In
teacher-target vocoder distillation y is the teacher's waveform for the same mel, so the
student is pulled to the teacher's fine structure (phase-sensitive detail a mel loss ignores
only through the magnitudes at resolutions finer than the mel's).
"""

from __future__ import annotations

import torch

# Parallel WaveGAN's resolutions (n_fft, hop, win) at 24 kHz
DEFAULT_RESOLUTIONS = [[1024, 120, 600], [2048, 240, 1200], [512, 50, 240]]


def _magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, win, window, center=True, return_complex=True)
    return spec.abs().clamp(min=1e-7)  # the log of an exact zero is not a gradient


def stft_loss(y_hat: torch.Tensor, y: torch.Tensor, resolutions: list[list[int]]) -> torch.Tensor:
    """``L_stft`` (module docstring) between waveforms ``[B, N]``; ``resolutions``: (n_fft, hop, win)."""
    total = y.new_zeros(())
    for n_fft, hop, win in resolutions:
        mag, mag_hat = _magnitude(y.float(), n_fft, hop, win), _magnitude(y_hat.float(), n_fft, hop, win)
        sc = torch.linalg.vector_norm(mag - mag_hat) / torch.linalg.vector_norm(mag)
        total = total + sc + (mag.log() - mag_hat.log()).abs().mean()
    return total / len(resolutions)

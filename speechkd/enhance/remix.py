"""Remixing the teacher's speech and noise estimates into student training pairs.

docs/architecture.md, "Speech enhancement". The teacher T (e.g. a noisy-target model) gives
s^ = T(y) and, by mixture consistency, n^ = y − s^ (so s^ + n^ = y exactly).
With π a permutation of the batch without fixed points (each utterance takes
another utterance's noise):

- noisy-target remix (NyTT-4-like): input y + g·n^_π, target y;
- enhanced-target remix: input s^ + g·n^_π, target s^;
- RemixIT (Tzinis, Adi, Ithapu, Xu, Smaragdis & Kumar, IEEE JSTSP 2022, eqs. 4-6): mixture
  m = s^ + n^_π (g = 1), the student's speech estimate s~ = S(m) and noise estimate
  n~ = m − s~ (mixture consistency), loss −SI-SDR(s~, s^) − SI-SDR(n~, n^_π).

g sets SNR(base : g·n^_π) to a drawn value (``snr``; None keeps g = 1). Rehearsal
(``remix.extra_noise``): in a drawn fraction of the rows the added noise is NyTT's extra
noise n' instead of n^_π. n^ is whatever the teacher removed: its training voices' speech
where it over-suppresses, and only the training set's noise types; a student trained on n^_π
alone learns to remove that speech and forgets other noises, while the n' rows keep it on the
teacher's own task (for remix_noisy they are exactly the teacher's NyTT pairs). An EMA
teacher (RemixIT's sequentially updated teacher) follows the student:
θ_T ← d·θ_T + (1 − d)·θ_S after each step. In EMA-teacher rounds the teacher's
estimates of the whole training set are regenerated at the start of each round
(:func:`teacher_estimates`, :func:`current_round`) while the student carries on.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from speechkd.enhance.losses import neg_si_sdr
from speechkd.enhance.nytt import scale_to_snr

MODES = ("remix_noisy", "remix_enhanced", "remixit")


def noise_estimate(y: torch.Tensor, s_hat: torch.Tensor) -> torch.Tensor:
    """n^ = y − s^ (mixture consistency: s^ + n^ == y)."""
    return y - s_hat


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation π of range(n) with π[i] != i for every i (n >= 2)."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 items")
    order = rng.permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)  # each item in a random cycle takes the next one's noise
    return perm


def remix_pairs(mode: str, y: torch.Tensor, s_hat: torch.Tensor, perm: torch.Tensor,
                snr_db: torch.Tensor | None, extra: torch.Tensor | None = None,
                use_extra: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """{"input", "target", "noise_target"} of a batch of noisy crops y and estimates s^ (B, N);
    rows where ``use_extra`` (B,) is true take the extra noise crop ``extra`` (B, N) instead of n^_π."""
    if mode not in MODES:
        raise ValueError(f"unknown remix mode {mode!r}; known: {', '.join(MODES)}")
    n_pi = noise_estimate(y, s_hat)[perm]
    if use_extra is not None:
        if extra is None or mode == "remixit":
            raise ValueError("rehearsal rows need the extra noise crops and a remix_noisy/remix_enhanced mode")
        n_pi = torch.where(use_extra[:, None], extra, n_pi)
    base = y if mode == "remix_noisy" else s_hat
    noise = n_pi if snr_db is None else scale_to_snr(base, n_pi, snr_db)
    return {"input": base + noise, "target": base, "noise_target": noise}


def remixit_loss(student: torch.Tensor, mixture: torch.Tensor, speech_target: torch.Tensor,
                 noise_target: torch.Tensor) -> dict[str, torch.Tensor]:
    """RemixIT loss on the student's speech estimate and its implied noise estimate."""
    ls = neg_si_sdr(student, speech_target)
    ln = neg_si_sdr(mixture - student, noise_target)
    return {"loss": ls + ln, "neg_si_sdr_speech": ls, "neg_si_sdr_noise": ln}


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """θ_T ← decay·θ_T + (1 − decay)·θ_S (parameters and float buffers, e.g. BatchNorm statistics)."""
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        pt.mul_(decay).add_(ps.detach(), alpha=1.0 - decay)
    for bt, bs in zip(teacher.buffers(), student.buffers()):
        if bt.dtype.is_floating_point:
            bt.mul_(decay).add_(bs, alpha=1.0 - decay)
        else:
            bt.copy_(bs)


def current_round(rounds: int, step: int, minutes: float, max_steps: int, max_minutes: float) -> int:
    """0-based round of the next step when the budget (max_steps, else max_minutes) is split into
    ``rounds`` equal parts; the last round runs on past the budget."""
    frac = step / max_steps if max_steps > 0 else minutes / max_minutes
    return min(rounds - 1, math.floor(frac * rounds + 1e-9))


@torch.no_grad()
def teacher_estimates(teacher: nn.Module, noisy: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{utt: s^ = T(y)} of whole utterances (the teacher in eval mode; its mode is restored)."""
    was_training = teacher.training
    teacher.eval()
    device = next(teacher.parameters()).device
    out = {u: teacher(torch.from_numpy(y).to(device)).cpu().numpy().astype(np.float32) for u, y in noisy.items()}
    teacher.train(was_training)
    return out

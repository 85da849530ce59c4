"""Paired evaluation of a diffusion teacher sampled with k steps against its distilled k-step
students, on mels (no vocoder, no recogniser): what progressive distillation changes, measured
where it acts.

Every system samples every utterance of a split from the SAME initial noise, with the
ground-truth durations, pitch and energy of the teacher dump (so frames align one to one), and
is scored per utterance on log-mels (the dump's units) by:

- ``l1_gt``, ``rmse_gt``: distance to the ground-truth mel;
- ``l1_teacher``: distance to the teacher's own N-step sample -- how well a k-step sampler
  reproduces the N-step one (0 for the teacher at N steps);
- ``gv_ratio``: global variance (Toda & Tokuda 2007: per-bin variance over time) of the output
  divided by the ground truth's, averaged over bins. A sampler that lands near the conditional
  mean over-smooths (ratio well below 1) yet scores a LOWER pointwise distance to the ground
  truth, so ``l1_gt`` alone would rank over-smoothing first; read it with ``gv_ratio``.

Systems: ``teacher@k`` for every k of the chain (and 1), ``student@k`` for every student dir.

Each round's own objective (:func:`distillation_l1`): on the same held-out utterances and the same
x_t, the L1 of a student's x0^ to its round's target (two DDIM steps of the round's teacher, the
model with 2k steps), per student step j, beside the same L1 at the round's start (the teacher's
own network on the student's grid). A round that works ends below its start at every j.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from speechkd.distill.progressive import distillation_loss
from speechkd.errors import SpeechkdError
from speechkd.models.layers import length_mask
from speechkd.train.module import SPEAKER_KEYS

logger = logging.getLogger(__name__)

METRICS = ("l1_gt", "rmse_gt", "l1_teacher", "gv_ratio")


@dataclass
class System:
    name: str
    model: torch.nn.Module
    steps: int


def global_variance(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-utterance, per-bin variance over the real frames: ``x [B, T, C]``, ``mask [B, T]`` -> ``[B, C]``."""
    m = mask[..., None].to(x.dtype)
    n = m.sum(1).clamp_min(1.0)
    mu = (x * m).sum(1) / n
    return (((x - mu[:, None]) ** 2) * m).sum(1) / n


def systems_of(models: dict[int, torch.nn.Module]) -> list[System]:
    """teacher@N (first, the reference), teacher@k and student@k for each student step count k, teacher@1."""
    n = max(models)
    teacher = models[n]
    ks = sorted({k for k in models if k != n} | {1}, reverse=True)
    out = [System(f"teacher@{n}", teacher, n)]
    for k in ks:
        out.append(System(f"teacher@{k}", teacher, k))
        if k in models:
            out.append(System(f"student@{k}", models[k], k))
    return out


def _speaker(batch: dict) -> dict:
    """Each utterance's own voice, for a multi-speaker model (the batch's speaker rows/embeddings)."""
    return {k: batch[k] for k in SPEAKER_KEYS if k in batch}


@torch.no_grad()
def evaluate(systems: list[System], batches, seed: int = 0,
             to_logmel: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> dict[str, dict[str, list[float]]]:
    """Per-utterance metrics ``{system: {metric: [..]}}`` over ``batches`` (TTSTask-style batches with
    ``durations``, ``pitch``, ``energy``; mels in the models' input units, which ``to_logmel`` maps back
    to the dump's log-mels). ``systems[0]`` is the reference of ``l1_teacher``."""
    g = torch.Generator().manual_seed(seed)
    res = {s.name: {k: [] for k in METRICS} for s in systems}
    for batch in batches:
        lens = batch["mel_lens"]
        mask = length_mask(lens, batch["mels"].size(1))
        mels = to_logmel(batch["mels"]) * mask[..., None]
        m = mask[..., None].to(mels.dtype)
        n_val = m.sum((1, 2)) * mels.size(-1)
        x_T = torch.randn(mels.shape, generator=g)
        gv_gt = global_variance(mels, mask)
        ref = None
        for s in systems:
            cond, cond_lens, _ = s.model.encode(batch["tokens"], batch["token_lens"], durations=batch["durations"],
                                                pitch=batch["pitch"], energy=batch["energy"], **_speaker(batch))
            if not torch.equal(cond_lens.cpu(), lens.cpu()):
                raise SpeechkdError(f"durations sum to {cond_lens.tolist()}, the mels have {lens.tolist()} frames",
                                    utt=batch["utts"][0], hint="the teacher dump is stale: rerun stage 4")
            x = to_logmel(s.model.denormalize(s.model.sample_mel(cond, mask, steps=s.steps, x_T=x_T))) * m
            ref = x if ref is None else ref
            err = (x - mels) * m
            r = res[s.name]
            r["l1_gt"] += (err.abs().sum((1, 2)) / n_val).tolist()
            r["rmse_gt"] += ((err ** 2).sum((1, 2)) / n_val).sqrt().tolist()
            r["l1_teacher"] += (((x - ref) * m).abs().sum((1, 2)) / n_val).tolist()
            r["gv_ratio"] += (global_variance(x, mask) / gv_gt.clamp_min(1e-8)).mean(1).tolist()
    return res


@torch.no_grad()
def distillation_l1(rounds: list[tuple[str, torch.nn.Module, torch.nn.Module]], batches, seed: int = 0
                    ) -> dict[str, dict[str, list[float]]]:
    """Per-utterance distillation L1 ``{student: {"start j=J" | "trained j=J": [..]}}`` for every
    ``(name, student, round_teacher)`` of ``rounds`` (normalised-mel units, the training loss's).
    ``batches`` as for :func:`evaluate`; the students run in eval mode with their own condition."""
    g = torch.Generator().manual_seed(seed)
    res: dict[str, dict[str, list[float]]] = {name: {} for name, _, _ in rounds}
    for batch in batches:
        extra = {**{k: batch[k] for k in ("durations", "pitch", "energy")}, **_speaker(batch)}
        b = batch["mels"].size(0)
        for name, student, teacher in rounds:
            for j in range(1, student.cfg.steps + 1):
                noise = torch.randn(batch["mels"].shape, generator=g)
                out = distillation_loss(student, teacher, batch["tokens"], batch["token_lens"], batch["mels"],
                                        batch["mel_lens"], extra, j=torch.full((b,), j), noise=noise)
                m = out["mask"][..., None].to(out["target"].dtype)
                n_val = (m.sum((1, 2)) * out["target"].size(-1)).clamp_min(1.0)
                # the round's start is the teacher's own network at t: its x0^ is the teacher's first one
                for label, x0_hat in (("start", out["x0_teacher"]), ("trained", out["x0_hat"])):
                    err = ((x0_hat - out["target"]).abs() * m).sum((1, 2)) / n_val
                    res[name].setdefault(f"{label} j={j}", []).extend(err.tolist())
    return res


def summarize(res: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Mean and 95% half-width (normal approximation) of each metric per system."""
    out = {}
    for name, metrics in res.items():
        out[name] = {}
        for k, v in metrics.items():
            a = np.asarray(v, dtype=np.float64)
            out[name][k] = float(a.mean()) if len(a) else math.nan
            out[name][k + "_ci95"] = float(1.96 * a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else math.nan
    return out


def markdown(summary: dict[str, dict[str, float]], title: str, n_utts: int) -> str:
    lines = [f"# {title}", "", f"{n_utts} utterances, ground-truth durations/pitch/energy, the same initial "
             "noise for every system; log-mel units; mean +- 95% half-width.", "",
             "| system | L1 to ground truth | RMSE to ground truth | L1 to the teacher's N-step sample | GV ratio |",
             "|---|---:|---:|---:|---:|"]
    for name, s in summary.items():
        cells = [f"{s[k]:.4f} ± {s[k + '_ci95']:.4f}" if k != "gv_ratio" else f"{s[k]:.3f} ± {s[k + '_ci95']:.3f}"
                 for k in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "GV ratio: per-bin variance over time of the output / of the ground truth (over-smoothing "
              "lowers it, and lowers the distance to the ground truth too)."]
    return "\n".join(lines) + "\n"


def distillation_markdown(summary: dict[str, dict[str, float]]) -> str:
    """The rounds' objective table (``summarize`` of :func:`distillation_l1`)."""
    lines = ["## Each round's objective on these utterances", "",
             "Masked L1 (normalised mels) of x0^ to the round's target (two DDIM steps of the round's teacher), "
             "same x_t; start: the teacher's own network on the student's grid. Mean ± 95% half-width.", "",
             "| student | step j | round start | trained | trained − start |", "|---|---:|---:|---:|---:|"]
    for name, s in summary.items():
        js = sorted({int(key[len("start j="):]) for key in s
                     if key.startswith("start j=") and not key.endswith("_ci95")})
        for j in js:
            a, b = s[f"start j={j}"], s[f"trained j={j}"]
            lines.append(f"| {name} | {j} | {a:.4f} ± {s[f'start j={j}_ci95']:.4f} | {b:.4f} ± "
                         f"{s[f'trained j={j}_ci95']:.4f} | {b - a:+.4f} |")
    return "\n".join(lines) + "\n"

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
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from speechkd.errors import SpeechkdError
from speechkd.models.layers import length_mask

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
                                                pitch=batch["pitch"], energy=batch["energy"])
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

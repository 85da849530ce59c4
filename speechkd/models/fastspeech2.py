"""FastSpeech 2 (Ren et al. 2021, "FastSpeech 2: Fast and High-Quality End-to-End Text to Speech"):
FastSpeech trained on ground-truth mels, with a variance adaptor that also predicts pitch and energy.

    encoder output h -> duration predictor (log(d+1), as FastSpeech)           (sec. 2.3)
                     -> pitch predictor  p^ ; h += E_p[bucket(p)]              (sec. 2.3)
                     -> energy predictor e^ ; h += E_e[bucket(e)]              (sec. 2.3)
                     -> length regulator -> FFT decoder -> mel                 (sec. 2.2, Fig. 1)

Pitch and energy are predicted per TOKEN (the phoneme-level variant of the public FastSpeech 2
implementations, instead of the paper's frame-level CWT pitch): the targets are the token means
of the feature dump's continuous log-F0 and linear frame energy over the teacher's durations
(:mod:`speechkd.features.average`), standardised with the training statistics (``stats.npz``:
lf0_mean/std over voiced frames, energy_mean/std). Each value is quantised into ``n_bins``
buckets, evenly spaced between the training minimum and maximum (normalised), whose embedding is
added to the hidden sequence; training uses the target values (teacher forcing), inference the
predictions. Loss: mel L1 + duration/pitch/energy MSE (sec. 2.3).

Inference controls (act on the denormalised values, so they mean the same for every voice):

- ``pitch_scale`` multiplies F0 in Hz, i.e. adds ``log(pitch_scale)`` to the predicted log-F0
  (2.0 = one octave up); unvoiced tokens are shifted too (their contour is interpolated);
- ``energy_scale`` multiplies the predicted frame energy (the L2 norm of the linear STFT
  magnitude), e.g. 1.26 is +2 dB;
- ``speed`` as FastSpeech (2.0 = twice as fast).

A multi-speaker model (``speaker_variance_norm``) standardises pitch and energy with each
speaker's own training mean and standard deviation, so the predictors learn a contour and the
speaker's statistics restore its register at synthesis. What the bucket embeddings see is
``variance_embedding``: ``speaker`` embeds the speaker-normalised value (buckets over the
speaker-normalised range of all speakers), so the decoder has to add the register from the speaker
vector; ``global`` embeds the denormalised value standardised with the global statistics (buckets
over the global range), so the decoder is told the absolute F0 and energy, as in the single-speaker
model, and one bucket means one pitch for every voice.

The statistics live in model buffers (set by :meth:`FastSpeech2.set_stats` before training), so a
checkpoint carries them and :func:`speechkd.checkpoints.load_model` restores them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from speechkd.config import field
from speechkd.models.fastspeech import FastSpeech, FastSpeechConfig, VariancePredictor, durations_from_log


@dataclass
class FastSpeech2Config(FastSpeechConfig):
    """FastSpeech with a variance adaptor (pitch and energy per token)."""

    n_bins: int = field(256, help="quantisation buckets of the pitch and energy embeddings (paper: 256)")
    speaker_variance_norm: bool = field(True, help="multi-speaker models: standardise pitch and energy with each "
                                                   "speaker's own training statistics (the predictors learn the "
                                                   "contour, the speaker supplies the register)")
    variance_embedding: Literal["speaker", "global"] = field(
        "speaker", help="multi-speaker models with speaker_variance_norm: what the pitch/energy embeddings see: "
                        "speaker (the speaker-normalised value) or global (the absolute value, standardised "
                        "with the global statistics: the decoder is told the register)")
    pitch_loss_weight: float = field(1.0, help="weight of the token pitch MSE (normalised log-F0)")
    energy_loss_weight: float = field(1.0, help="weight of the token energy MSE (normalised energy)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {self.n_bins}")


class FastSpeech2(FastSpeech):
    """FastSpeech 2: FastSpeech + token-level pitch and energy in the variance adaptor."""

    Config = FastSpeech2Config
    batch_needs = ("durations", "pitch", "energy")
    has_variances = True

    def __init__(self, cfg: FastSpeech2Config, n_vocab: int, n_mels: int, n_speakers: int = 0,
                 spk_embed_dim: int = 0):
        super().__init__(cfg, n_vocab, n_mels, n_speakers, spk_embed_dim)
        d, c = cfg.d_model, cfg
        self.pitch_predictor = VariancePredictor(d, c.predictor_channels, c.predictor_kernel, c.predictor_dropout)
        self.energy_predictor = VariancePredictor(d, c.predictor_channels, c.predictor_kernel, c.predictor_dropout)
        self.pitch_embed = nn.Embedding(cfg.n_bins, d)
        self.energy_embed = nn.Embedding(cfg.n_bins, d)
        # [mean, std, normalised min, normalised max] of log-F0 and of energy (training statistics)
        self.register_buffer("pitch_stats", torch.tensor([0.0, 1.0, -4.0, 4.0]))
        self.register_buffer("energy_stats", torch.tensor([0.0, 1.0, -4.0, 4.0]))
        # multi-speaker: [mean, std] of log-F0 and of energy per speaker-table row
        per_speaker = n_speakers > 1 and cfg.speaker_variance_norm
        self.register_buffer("spk_pitch_stats", torch.tensor([[0.0, 1.0]] * n_speakers) if per_speaker else None)
        self.register_buffer("spk_energy_stats", torch.tensor([[0.0, 1.0]] * n_speakers) if per_speaker else None)

    def set_stats(self, stats) -> None:
        """Take the normalisation and bucket range of pitch and energy from the training
        :class:`speechkd.features.stats.Stats`."""
        for buf, mean, std, lo, hi in ((self.pitch_stats, stats.lf0_mean, stats.lf0_std, stats.lf0_min, stats.lf0_max),
                                       (self.energy_stats, stats.energy_mean, stats.energy_std, stats.energy_min,
                                        stats.energy_max)):
            std = max(float(std), 1e-5)
            lo_n, hi_n = (float(lo) - mean) / std, (float(hi) - mean) / std
            if not hi_n > lo_n:  # no voiced frame / constant energy: any non-empty range
                lo_n, hi_n = -4.0, 4.0
            buf.copy_(torch.tensor([float(mean), std, lo_n, hi_n]))

    def set_speaker_stats(self, rows: list[list[float]]) -> None:
        """Per-speaker statistics, one row per table row: ``[lf0 mean, std, min, max, energy mean, std,
        min, max]`` (:class:`speechkd.data.speakers.VarianceAccumulator`). The bucket range becomes that
        of the speaker-normalised values over all speakers."""
        if self.spk_pitch_stats is None:
            return
        speaker_range = self.cfg.variance_embedding == "speaker"  # else the buckets keep the global range
        st = torch.tensor(rows, dtype=torch.float32)
        for buf, glob, cols in ((self.spk_pitch_stats, self.pitch_stats, slice(0, 4)),
                                (self.spk_energy_stats, self.energy_stats, slice(4, 8))):
            mean, std, lo, hi = st[:, cols].unbind(1)
            std = std.clamp_min(1e-5)
            buf.copy_(torch.stack([mean, std], 1))
            lo_n, hi_n = float(((lo - mean) / std).min()), float(((hi - mean) / std).max())
            if speaker_range and hi_n > lo_n:
                glob[2:].copy_(torch.tensor([lo_n, hi_n]))

    def _mean_std(self, name: str, spk: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalisation of ``pitch``/``energy``: the speaker's ``[B, 1]`` (multi-speaker) or global."""
        per = self.spk_pitch_stats if name == "pitch" else self.spk_energy_stats
        if per is not None and spk is not None:
            row = per[spk.long().view(-1)]
            return row[:, 0:1], row[:, 1:2]
        st = self.pitch_stats if name == "pitch" else self.energy_stats
        return st[0], st[1]

    def _normalise(self, x: torch.Tensor, name: str, spk: torch.Tensor | None = None) -> torch.Tensor:
        mean, std = self._mean_std(name, spk)
        return (x - mean) / std

    def _denormalise(self, x: torch.Tensor, name: str, spk: torch.Tensor | None = None) -> torch.Tensor:
        mean, std = self._mean_std(name, spk)
        return x * std + mean

    def _embedded(self, x: torch.Tensor, name: str, spk: torch.Tensor | None) -> torch.Tensor:
        """The value the bucket embedding sees for the normalised ``x``: ``x`` itself, or with
        ``variance_embedding: global`` in a speaker-normalised model the absolute value standardised
        with the global statistics."""
        if self.spk_pitch_stats is None or spk is None or self.cfg.variance_embedding == "speaker":
            return x
        st = self.pitch_stats if name == "pitch" else self.energy_stats
        return (self._denormalise(x, name, spk) - st[0]) / st[1]

    def _bucket_embed(self, values: torch.Tensor, st: torch.Tensor, emb: nn.Embedding) -> torch.Tensor:
        """E[bucket(v)]: n_bins buckets, n_bins - 1 boundaries evenly between the normalised min and max."""
        edges = torch.linspace(float(st[2]), float(st[3]), self.cfg.n_bins - 1, device=values.device)
        return emb(torch.bucketize(values.contiguous(), edges))

    def adapt(self, h: torch.Tensor, tmask: torch.Tensor, durations: torch.Tensor | None, speed: float,
              spk: torch.Tensor | None = None, pitch: torch.Tensor | None = None, energy: torch.Tensor | None = None,
              pitch_scale: float = 1.0, energy_scale: float = 1.0
              ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Variance adaptor (sec. 2.3) at token level; ``pitch``/``energy`` are raw targets (log-Hz,
        linear) or None for the (scaled) predictions. Predictions are returned normalised
        (``pitch``, ``energy``; per speaker in a multi-speaker model), the values embedded
        denormalised (``pitch_used`` in log-Hz, ``energy_used`` linear)."""
        if pitch_scale <= 0 or energy_scale <= 0:
            raise ValueError(f"pitch_scale and energy_scale must be > 0, got {pitch_scale}, {energy_scale}")
        m = tmask.to(h.dtype)
        log_d = self.duration_predictor(h, tmask)
        if durations is None:
            durations = durations_from_log(log_d, tmask, speed, self.cfg.max_token_frames)
        p_hat = self.pitch_predictor(h, tmask)
        if pitch is None:  # log(F0 * s) = log F0 + log s
            p = p_hat + math.log(pitch_scale) / self._mean_std("pitch", spk)[1]
        else:
            p = self._normalise(pitch.to(h.dtype), "pitch", spk)
        h = h + self._bucket_embed(self._embedded(p, "pitch", spk), self.pitch_stats, self.pitch_embed) * m[..., None]
        e_hat = self.energy_predictor(h, tmask)
        if energy is None:
            # energy is a norm (>= 0): clamp before scaling, so that a scale > 1 always means louder
            e = self._normalise(self._denormalise(e_hat, "energy", spk).clamp(min=0.0) * energy_scale, "energy", spk)
        else:
            e = self._normalise(energy.to(h.dtype), "energy", spk)
        e_seen = self._embedded(e, "energy", spk)
        h = h + self._bucket_embed(e_seen, self.energy_stats, self.energy_embed) * m[..., None]
        pred = {"log_durations": log_d, "pitch": p_hat, "energy": e_hat,
                "pitch_used": self._denormalise(p, "pitch", spk) * m,
                "energy_used": self._denormalise(e, "energy", spk) * m}
        return h, durations.long() * tmask.long(), pred

    def variance_losses(self, batch: dict, out: dict) -> dict[str, torch.Tensor]:
        """Duration MSE on log(d + 1), pitch and energy MSE on the normalised token values."""
        logs = super().variance_losses(batch, out)
        tm = out["token_mask"].to(out["pitch"].dtype)
        for name in ("pitch", "energy"):
            target = self._normalise(batch[name].to(tm.dtype), name, batch.get("spk"))
            logs[name] = (((out[name] - target) ** 2) * tm).sum() / tm.sum()
        return logs

    def loss_weight(self, name: str) -> float:
        c = self.cfg
        return {"duration": c.duration_loss_weight, "pitch": c.pitch_loss_weight, "energy": c.energy_loss_weight}[name]

    def validation_metrics(self, batch: dict, out: dict) -> dict[str, list[float]]:
        """FastSpeech's metrics + per-utterance RMSE of the predicted token log-F0 (``lf0_rmse``,
        log-Hz) and energy (``energy_rmse``, linear)."""
        res = super().validation_metrics(batch, out)
        for name, key in (("pitch", "lf0_rmse"), ("energy", "energy_rmse")):
            pred = self._denormalise(out[name].detach(), name, batch.get("spk"))
            res[key] = [float(((pred[b, :s] - batch[name][b, :s]) ** 2).mean().sqrt())
                        for b, s in enumerate(batch["token_lens"].tolist())]
        return res

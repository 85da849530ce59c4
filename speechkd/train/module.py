"""The Lightning module shared by the acoustic models: optimiser and schedule, logging,
validation metrics and plots, checkpoint metadata.

A registered model provides::

    forward(tokens, token_lens, mels, mel_lens) -> dict        (teacher-forced outputs)
    losses(batch, outputs, step) -> (loss, {name: scalar})    ("loss" among them)
    validation_metrics(batch, outputs) -> {name: [per-utterance floats]}   (optional)
    plot_arrays(batch, outputs, b) -> {title: 2-D array}                  (optional)

Mels are standardised with the training statistics when the FeatureConfig says
``normalization: global`` (the statistics travel in the checkpoint).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import lightning as L
import numpy as np
import torch

from speechkd.config import read_yaml, to_dict
from speechkd.data.speakers import Speakers
from speechkd.features.config import FeatureConfig
from speechkd.features.stats import Stats
from speechkd.models import get_model_class
from speechkd.text.tokens import TokenList
from speechkd.train.config import OptimConfig, TrainConfig
from speechkd.utils.version import code_version
from speechkd.train.plots import plot_matrices

logger = logging.getLogger(__name__)

SPEAKER_KEYS = ("spk", "spk_emb")  # batch entries of a multi-speaker model (speechkd.train.data)
FOCUS_THRESHOLD = 0.5  # utterances below are "not aligned" (see speechkd.distill.teacher_dump)


def _frontend_beside(token_list: TokenList) -> dict | None:
    """The text frontend settings (``frontend.yaml`` beside the token list), so that a checkpoint
    can turn text into its tokens wherever it is copied (``speechkd synth``)."""
    path = os.path.join(os.path.dirname(token_list.path), "frontend.yaml") if token_list.path else ""
    return read_yaml(path) if path and os.path.exists(path) else None


def noam_factor(step: int, warmup: int, schedule: str = "noam") -> float:
    """Learning-rate factor: linear warm-up to 1, then sqrt(warmup / step) (Vaswani et al., eq. 3,
    rescaled so that the peak is the configured lr)."""
    s, w = step + 1, max(warmup, 1)
    if s < w:
        return s / w
    return 1.0 if schedule == "constant" else (w / s) ** 0.5


class TTSTask(L.LightningModule):
    """Trains any registered acoustic model on (tokens, mel) batches."""

    def __init__(self, cfg: TrainConfig, token_list: TokenList, feature_config: FeatureConfig, stats: Stats,
                 exp_dir: str | None = None, speakers: Speakers | None = None):
        """``speakers``: the training split's speaker table and embeddings (None: single-speaker)."""
        super().__init__()
        self.cfg, self.exp_dir = cfg, exp_dir
        sp = speakers or Speakers()
        self.model = get_model_class(cfg.model)(cfg.model_conf, n_vocab=len(token_list), n_mels=feature_config.n_mels,
                                                n_speakers=sp.n_table, spk_embed_dim=sp.embed_dim)
        norm = feature_config.normalization == "global"
        # FastSpeech 2: pitch/energy normalisation; diffusion: mel scaling. The statistics of the mels
        # the model sees: standardised already under global normalisation.
        self.model.set_stats(dataclasses.replace(stats, mel_mean=0.0 * stats.mel_mean,
                                                 mel_std=1.0 + 0.0 * stats.mel_std) if norm else stats)
        if sp.n_table and sp.variance_stats and hasattr(self.model, "set_speaker_stats"):
            self.model.set_speaker_stats([sp.variance_stats[s] for s in sp.ids])
        self.meta = {"config": to_dict(cfg), "tokens": list(token_list.tokens),
                     "feature_config": to_dict(feature_config), "mel_mean": stats.mel_mean.tolist(),
                     "mel_std": stats.mel_std.tolist(), "version": code_version(),
                     "frontend": _frontend_beside(token_list), "speakers": sp.to_meta()}
        self.register_buffer("mel_mean", torch.tensor(stats.mel_mean if norm else 0.0 * stats.mel_mean))
        self.register_buffer("mel_std", torch.tensor(stats.mel_std if norm else 1.0 + 0.0 * stats.mel_std))
        self.train_minutes = 0.0  # training minutes, summed over resumes (the runner's TimeBudget; in checkpoints)
        self._val: dict[str, list[float]] = {}
        self._plot: dict[str, np.ndarray] | None = None

    # ---- steps -------------------------------------------------------------------------------
    def model_inputs(self, batch: dict) -> dict:
        """What ``forward`` takes besides tokens and mels: the model's ``batch_needs`` (students:
        durations, pitch, energy) and the speaker inputs the batch carries."""
        extra = {k: batch[k] for k in self.model.batch_needs}
        return {**extra, **{k: batch[k] for k in SPEAKER_KEYS if k in batch}}

    def _run(self, batch: dict) -> tuple[dict, torch.Tensor, dict[str, torch.Tensor]]:
        batch = dict(batch, mels=(batch["mels"] - self.mel_mean) / self.mel_std)
        extra = self.model_inputs(batch)
        out = self.model(batch["tokens"], batch["token_lens"], batch["mels"], batch["mel_lens"], **extra)
        loss, logs = self.model.losses(batch, out, step=self.global_step)
        return batch, loss, {**logs, "out": out}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        _, loss, logs = self._run(batch)
        logs.pop("out")
        bs = len(batch["utts"])
        self.log_dict({f"train/{k}": v.detach().float() for k, v in logs.items()}, batch_size=bs)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=bs)
        self.log("train/frames", float(batch["mel_lens"].sum()), batch_size=bs)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        batch, _, logs = self._run(batch)
        out = logs.pop("out")
        self.log_dict({f"val/{k}": v.float() for k, v in logs.items()}, batch_size=len(batch["utts"]),
                      sync_dist=True)
        for k, vals in self.model.validation_metrics(batch, out).items():
            self._val.setdefault(k, []).extend(vals)
        want = self.cfg.data.plot_utt
        if want in batch["utts"]:
            self._plot = {"utt": want, **self.model.plot_arrays(batch, out, batch["utts"].index(want))}

    def on_validation_epoch_end(self) -> None:
        for k, vals in self._val.items():
            v = torch.tensor(vals, dtype=torch.float32)
            self.log(f"val/{k}", v.mean(), sync_dist=True)
            if k == "focus_rate":  # how many dev utterances are aligned
                self.log(f"val/{k}_above_{FOCUS_THRESHOLD:g}", (v > FOCUS_THRESHOLD).float().mean(), sync_dist=True)
        self.log("minutes", self.train_minutes, sync_dist=True)
        self._val = {}
        if self._plot is not None and self.exp_dir and self.trainer.is_global_zero and not self.trainer.sanity_checking:
            utt = self._plot.pop("utt")
            path = os.path.join(self.exp_dir, "plots", f"step{self.global_step:07d}.png")
            plot_matrices({k: v for k, v in self._plot.items()}, path, title=f"{utt}, step {self.global_step}")
        self._plot = None

    # ---- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        o: OptimConfig = self.cfg.optim
        cls = torch.optim.AdamW if o.weight_decay > 0 else torch.optim.Adam
        opt = cls(self.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: noam_factor(s, o.warmup_steps, o.schedule))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- checkpoints -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["speechkd"] = {**self.meta, "train_minutes": self.train_minutes}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.train_minutes = float(checkpoint.get("speechkd", {}).get("train_minutes", 0.0))


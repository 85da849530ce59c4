"""``SETask``: the Lightning module of every SE training method.

``training_step`` turns a batch of :class:`speechkd.enhance.data.SEBatches` into
(input, target) by the method's rule (:mod:`speechkd.enhance.nytt`,
:mod:`speechkd.enhance.remix`), runs the model and the loss. Validation is the
same for every method and needs no clean speech: noisy-target pairs of dev
speech plus extra noise, reporting the loss and the SI-SDR improvement
towards the noisy dev speech y.

EMA-teacher rounds (``remix.rounds`` > 1): the teacher follows the student
(θ_T ← d·θ_T + (1 − d)·θ_S after each step) and its estimates s^ of the whole
training set are regenerated when a round starts; batches carry crop indices, so
every step after a regeneration crops the new estimates. A resumed run regenerates
them from the checkpointed EMA teacher.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from speechkd.config import to_dict
from speechkd.enhance.config import REMIX, SETrainConfig
from speechkd.enhance.data import SEBatches, crops_of
from speechkd.enhance.exp import load_se_model, model_state, read_checkpoint, resolve_checkpoint
from speechkd.enhance.losses import neg_si_sdr, se_loss
from speechkd.enhance.models import build_se_model
from speechkd.enhance.nytt import noisy_target_pair
from speechkd.enhance.remix import current_round, ema_update, remix_pairs, remixit_loss, teacher_estimates
from speechkd.errors import ConfigError
from speechkd.utils.version import code_version

logger = logging.getLogger(__name__)


class SETask(L.LightningModule):
    def __init__(self, cfg: SETrainConfig, dev: list[dict[str, torch.Tensor]] | None = None,
                 batches: SEBatches | None = None):
        super().__init__()
        self.cfg, self.dev, self.batches = cfg, dev or [], batches
        if cfg.remix.rounds > 1 and batches is None:
            raise ValueError("EMA-teacher rounds need the training batches (their noisy speech)")
        self.round, self.round_log = -1, []   # the current EMA-teacher round; one record per regeneration
        self.estimates: dict[str, np.ndarray] = {}
        self.model = build_se_model(cfg.model, cfg.model_conf)
        self.teacher = None
        if cfg.remix.teacher:
            self.teacher = load_se_model(cfg.remix.teacher).model
            self.teacher.requires_grad_(False)
            if cfg.remix.ema_decay and type(self.teacher) is not type(self.model):
                raise ConfigError("an EMA teacher needs the student's model class", field="remix.ema_decay")
        if cfg.init_from:
            path = resolve_checkpoint(cfg.init_from)
            self.model.load_state_dict(model_state(read_checkpoint(path)))
            logger.info("model initialised from %s", path)
        self.train_minutes = 0.0  # summed over resumes (the runner's TimeBudget; in checkpoints)
        self.version = code_version()

    # ---- pairs
    def pairs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        m = self.cfg.method
        y = batch["y"]
        if m == "nytt":
            x, t = noisy_target_pair(y, batch["extra"], batch["snr"])
            return {"input": x, "target": t}
        if m == "clean":
            return {"input": y, "target": batch["clean"]}
        if self.cfg.remix.rounds > 1:
            s_hat = crops_of(self.estimates, self.batches.utts, batch["index"], batch["offset"],
                             y.shape[-1]).to(y.device)
        elif self.teacher is not None:
            self.teacher.eval()
            with torch.no_grad():
                s_hat = self.teacher(y)
        else:
            s_hat = batch["s_hat"]
        return remix_pairs(m, y, s_hat, batch["perm"], None if m == "remixit" else batch["snr"],
                           batch.get("extra"), batch.get("use_extra"))

    def step_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        p = self.pairs(batch)
        est = self.model(p["input"])
        if self.cfg.method == "remixit":
            return remixit_loss(est, p["input"], p["target"], p["noise_target"])
        return se_loss(est, p["target"], self.cfg.loss)

    # ---- Lightning hooks
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = self.step_loss(batch)
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, prog_bar=False, on_step=True,
                      batch_size=batch["y"].shape[0])
        return losses["loss"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # the runner's TimeBudget callback has counted this step's minutes (callbacks run first)
        if self.teacher is not None and self.cfg.remix.ema_decay:
            ema_update(self.teacher, self.model, self.cfg.remix.ema_decay)
        if self.cfg.remix.rounds > 1 and self.round_index() != self.round:
            self.regenerate()  # timed as training: the next step's interval includes it

    # ---- EMA-teacher rounds
    def round_index(self) -> int:
        t = self.cfg.trainer
        return current_round(self.cfg.remix.rounds, self.global_step, self.train_minutes, t.max_steps,
                             t.max_minutes)

    def regenerate(self) -> None:
        """The current teacher's estimates of every training utterance, for the round that starts now."""
        t0 = time.perf_counter()
        self.estimates = teacher_estimates(self.teacher, self.batches.noisy)
        self.round = self.round_index()
        rec = {"round": self.round, "step": int(self.global_step), "minutes": round(self.train_minutes, 3),
               "seconds": round(time.perf_counter() - t0, 2)}
        self.round_log.append(rec)
        logger.info("EMA-teacher round %d/%d from step %d: the teacher's estimates of %d utterances "
                    "regenerated in %.1f s", self.round + 1, self.cfg.remix.rounds, rec["step"],
                    len(self.estimates), rec["seconds"])

    def on_train_start(self) -> None:
        if self.cfg.remix.rounds > 1:
            self.regenerate()  # round 0 (or, resumed, the round of the checkpoint's step)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.dev, batch_size=None)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        x, y = noisy_target_pair(batch["y"], batch["extra"], batch["snr"])
        est = self.model(x)
        n = y.shape[0]
        self.log("val/nytt_loss", se_loss(est, y, self.cfg.loss)["loss"], batch_size=n)
        self.log("val/nytt_si_sdri", neg_si_sdr(x, y) - neg_si_sdr(est, y), batch_size=n, prog_bar=True)

    def configure_optimizers(self):
        o = self.cfg.optim
        cls = torch.optim.AdamW if o.weight_decay > 0 else torch.optim.Adam
        return cls(self.model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["speechkd"] = {"kind": "se", "config": to_dict(self.cfg), "model": self.cfg.model,
                                  "sample_rate": self.cfg.data.sample_rate, "train_minutes": self.train_minutes,
                                  "version": self.version, "remix": self.cfg.method in REMIX,
                                  "rounds": list(self.round_log)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.get("speechkd", {})
        self.train_minutes = float(meta.get("train_minutes", 0.0))
        self.round_log = list(meta.get("rounds", []))

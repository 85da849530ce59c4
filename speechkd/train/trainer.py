"""``run_training``: an acoustic model (any registered one; diffusion and progressive rounds too)
trained or resumed in an exp dir by the shared runner (:mod:`speechkd.train.runner`).

Resume restores weights, optimiser, schedule, step counter, the training minutes (the
``max_minutes`` budget is over all runs) and the metrics rows; the interrupted epoch starts
over with the same batch order, so the batches before the kill are seen once more.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

from lightning.pytorch.callbacks import Callback

from speechkd.data.speakers import SPK2ID
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig, check_compatible
from speechkd.models import get_model_class
from speechkd.train.config import TrainConfig, require_data, train_config_from_dict
from speechkd.train.datamodule import TTSDataModule
from speechkd.train.module import TTSTask
from speechkd.train.plots import plot_curves
from speechkd.train.runner import Job, run

logger = logging.getLogger(__name__)

# data settings that may change when a run is resumed (where the data is, not what it is)
RESUMABLE_CHANGES = ("data.num_workers", "data.dump_dir", "data.token_list", "data.plot_utt",
                     "data.max_dev_utts", "data.teacher_dump_dir")
CURVES = ["train/loss", "val/loss", "val/focus_rate", "val/focus_rate_above_0.5", "val/mel_l1", "val/dur_mae",
          "train/lr"]


class AcousticJob(Job):
    """Token sequences -> mels with :class:`TTSTask` (or ``make_task``'s subclass of it)."""

    command = "speechkd train"
    resumable = RESUMABLE_CHANGES

    def __init__(self, cfg: TrainConfig, make_task: Callable[..., TTSTask] = TTSTask):
        self.config, self.make_task = cfg, make_task

    def prepare(self, exp_dir: str) -> None:
        cfg = self.config
        require_data(cfg)
        self.dm = TTSDataModule(cfg.data, seed=cfg.trainer.seed,
                                needs=get_model_class(cfg.model).batch_needs)
        self.dm.setup()
        if not cfg.data.plot_utt and self.dm.dev_utts:
            cfg.data.plot_utt = self.dm.dev_utts[0].utt

    def config_from_checkpoint(self, meta: dict, source: str) -> TrainConfig:
        return train_config_from_dict(meta["config"], source=source)

    def check_resume(self, ckpt: dict, path: str) -> None:
        meta = ckpt["speechkd"]
        check_compatible(FeatureConfig.from_dict(meta["feature_config"]), self.dm.feature_config,
                         f"checkpoint {path}", "training dump",
                         hint="train in a new --exp dir, or use the dump the checkpoint was trained on")
        ids = (meta.get("speakers") or {}).get("ids", [])
        if list(ids) != list(self.dm.speakers.ids if self.dm.speakers.n_table else []):
            raise SpeechkdError("the training speakers differ from those the checkpoint was trained with", path=path,
                                hint="train in a new --exp dir, or use the data the checkpoint was trained on")
        if list(meta["tokens"]) != self.dm.token_list.tokens:
            raise SpeechkdError("the token list differs from the one the checkpoint was trained with", path=path,
                                hint=f"use the original token list, or a new --exp dir ({self.dm.token_list.path})")

    def build(self, exp_dir: str, step: int) -> tuple[TTSTask, dict[str, Any]]:
        dm = self.dm
        task = self.make_task(self.config, dm.token_list, dm.feature_config, dm.stats, exp_dir=exp_dir,
                              speakers=dm.speakers)
        if dm.speakers.n_table:  # table rows, as in the checkpoints (speechkd.data.speakers)
            dm.speakers.write_spk2id(os.path.join(exp_dir, SPK2ID))
        logger.info("model %s: %.2f M parameters", self.config.model,
                    sum(p.numel() for p in task.model.parameters()) / 1e6)
        return task, {"datamodule": dm}

    def trainer_args(self, task: TTSTask) -> dict[str, Any]:
        return {"gradient_clip_val": self.config.optim.grad_clip or None}

    def finish(self, trainer, task, metrics, exp_dir: str) -> None:
        plot_curves(metrics.rows, os.path.join(exp_dir, "plots", "curves.png"), CURVES)
        plot_curves(metrics.rows, os.path.join(exp_dir, "plots", "curves_minutes.png"), CURVES, x="minutes")


def run_training(cfg: TrainConfig, exp_dir: str, *, progress_bar: bool | None = None,
                 make_task: Callable[..., TTSTask] = TTSTask, callbacks: list[Callback] | None = None) -> str:
    """Train (or resume) in ``exp_dir``; returns the path of the last checkpoint. ``make_task(cfg,
    token_list, feature_config, stats, exp_dir=..., speakers=...)`` builds the Lightning module (a TTSTask
    subclass, e.g. :class:`speechkd.distill.progressive.ProgressiveTask`)."""
    return run(AcousticJob(cfg, make_task), exp_dir, progress_bar=progress_bar, callbacks=callbacks)

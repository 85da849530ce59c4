"""``run_se_training``: one SE training run in an exp dir by the shared runner
(:mod:`speechkd.train.runner`), resuming from its last checkpoint or seeded from ``continue_from``.
Training stops at ``trainer.max_steps`` or ``trainer.max_minutes`` (summed over resumes).
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from speechkd.checkpoints import CKPT_DIR, LAST, read_checkpoint
from speechkd.enhance.config import SETrainConfig, resolve_paths
from speechkd.enhance.data import SEBatches, dev_batches
from speechkd.enhance.exp import resolve_checkpoint
from speechkd.enhance.models import num_parameters
from speechkd.enhance.task import SETask
from speechkd.train.runner import Job, run
from speechkd.utils.io import atomic_open

logger = logging.getLogger(__name__)

RESUMABLE = ("data.max_dev_utts",)


class SEJob(Job):
    """Speech enhancement by the method of the config (:mod:`speechkd.enhance.config`)."""

    command = "speechkd se-train"
    kind = "se"
    resumable = RESUMABLE

    def __init__(self, cfg: SETrainConfig, continue_from: str = ""):
        self.config, self.continue_from = resolve_paths(cfg), continue_from

    def prepare(self, exp_dir: str) -> None:
        """With ``continue_from`` and no checkpoint of its own, the exp starts from a copy of that one."""
        last = os.path.join(exp_dir, CKPT_DIR, LAST)
        if not os.path.exists(last) and self.continue_from:
            src = resolve_checkpoint(self.continue_from)
            read_checkpoint(src, self.kind)  # refuse a damaged, unsafe or foreign file before copying it
            with open(src, "rb") as fin, atomic_open(last, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            logger.info("continuing %s (copied to %s)", src, last)

    def build(self, exp_dir: str, step: int) -> tuple[SETask, dict[str, Any]]:
        cfg = self.config
        batches = SEBatches(cfg, start_step=step)
        task = SETask(cfg, dev_batches(cfg), batches)
        logger.info("%s: %s, %s, %.3f M parameters", cfg.method, cfg.model, task.version,
                    num_parameters(task.model) / 1e6)
        return task, {"train_dataloaders": DataLoader(batches, batch_size=None, num_workers=0)}

    def trainer_args(self, task: SETask) -> dict[str, Any]:
        return {"gradient_clip_val": self.config.optim.grad_clip or None, "limit_val_batches": len(task.dev) or 0}


def run_se_training(cfg: SETrainConfig, exp_dir: str, *, continue_from: str = "",
                    callbacks: list[Callback] | None = None, progress_bar: bool | None = None) -> str:
    """Train (or resume) in ``exp_dir``; returns the path of the last checkpoint."""
    return run(SEJob(cfg, continue_from), exp_dir, progress_bar=progress_bar, callbacks=callbacks)

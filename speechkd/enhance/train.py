"""``run_se_training``: one SE training run in an exp dir, resuming from its last checkpoint.

Order of work: check a previous run in the same exp dir is compatible (or seed
it from ``continue_from``), write ``config.yaml``, load the data, build the
Lightning trainer, fit (from ``last.ckpt`` when there is one). Training stops at
``trainer.max_steps`` or ``trainer.max_minutes`` (summed over resumes).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from speechkd.config import dump_config, from_dict
from speechkd.enhance.config import SETrainConfig, config_changes, resolve_paths
from speechkd.enhance.data import SEBatches, dev_batches
from speechkd.enhance.exp import read_checkpoint, resolve_checkpoint
from speechkd.train.exp import CKPT_DIR, LAST, AtomicCheckpointIO, CSVMetricsLogger, attach_log_file
# last.ckpt at the end of training and on SIGTERM (the same callback as the TTS trainer)
from speechkd.train.trainer import checkpoint_callbacks
from speechkd.enhance.models import num_parameters
from speechkd.enhance.task import SETask
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.utils.io import atomic_open, atomic_write_text

logger = logging.getLogger(__name__)

# Settings that may change when a run is resumed: how long and where it trains, not what.
RESUMABLE = ("trainer.max_steps", "trainer.max_minutes", "trainer.val_every_steps", "trainer.ckpt_every_steps",
             "trainer.keep_checkpoints", "trainer.log_every_steps", "trainer.num_threads", "trainer.accelerator",
             "trainer.devices", "data.max_dev_utts")


def previous_run(exp_dir: str, cfg: SETrainConfig, continue_from: str = "") -> tuple[str | None, int]:
    """(checkpoint to resume from, its step): this exp's last.ckpt, else a copy of ``continue_from``'s."""
    last = os.path.join(exp_dir, CKPT_DIR, LAST)
    if not os.path.exists(last) and continue_from:
        src = resolve_checkpoint(continue_from)
        with open(src, "rb") as fin, atomic_open(last, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        logger.info("continuing %s (copied to %s)", src, last)
    if not os.path.exists(last):
        return None, 0
    ckpt = read_checkpoint(last)
    old = from_dict(SETrainConfig, ckpt["speechkd"]["config"], source=f"{last} (embedded config)")
    changed = config_changes(old, cfg)
    fixed = [k for k in changed if not k.startswith(RESUMABLE)]
    if fixed:
        raise ConfigError(f"cannot resume {exp_dir}: its checkpoint was trained with other settings of "
                          f"{', '.join(fixed)}", path=last, hint="use a new --exp dir, or restore those settings")
    if changed:
        logger.info("resuming with changed settings: %s", ", ".join(changed))
    return last, int(ckpt.get("global_step", 0))


def run_se_training(cfg: SETrainConfig, exp_dir: str, *, continue_from: str = "",
                    callbacks: list[Callback] | None = None, progress_bar: bool | None = None) -> str:
    """Train (or resume) in ``exp_dir``; returns the path of the last checkpoint."""
    cfg = resolve_paths(cfg)
    t = cfg.trainer
    if t.max_steps < 0 and t.max_minutes <= 0:
        logger.warning("neither trainer.max_steps nor trainer.max_minutes is set: training runs until killed")
    os.makedirs(os.path.join(exp_dir, CKPT_DIR), exist_ok=True)
    handler = attach_log_file(exp_dir)
    try:
        if t.num_threads > 0:
            torch.set_num_threads(t.num_threads)
        L.seed_everything(t.seed, workers=True, verbose=False)
        resume, step = previous_run(exp_dir, cfg, continue_from)
        atomic_write_text(os.path.join(exp_dir, "config.yaml"), dump_config(cfg))
        batches = SEBatches(cfg, start_step=step)
        task = SETask(cfg, dev_batches(cfg), batches)
        logger.info("speechkd se-train %s -> %s: %s, %s, %.3f M parameters; %s", cfg.method, exp_dir, cfg.model,
                    task.version, num_parameters(task.model) / 1e6,
                    f"resuming from {resume} (step {step})" if resume else "fresh start")
        train = DataLoader(batches, batch_size=None, num_workers=0)
        metrics = CSVMetricsLogger(exp_dir)
        metrics.truncate_after(step)
        ckpt_dir = os.path.join(exp_dir, CKPT_DIR)
        cbs = [*checkpoint_callbacks(ckpt_dir, t.ckpt_every_steps, t.keep_checkpoints), *(callbacks or [])]
        bar = sys.stderr.isatty() if progress_bar is None else progress_bar
        trainer = L.Trainer(
            accelerator=t.accelerator, devices=int(t.devices) if t.devices.isdigit() else t.devices,
            precision=t.precision, max_steps=t.max_steps, max_epochs=-1, val_check_interval=t.val_every_steps,
            check_val_every_n_epoch=None, num_sanity_val_steps=0, log_every_n_steps=t.log_every_steps,
            gradient_clip_val=cfg.optim.grad_clip or None, logger=metrics, callbacks=cbs,
            plugins=[AtomicCheckpointIO()], default_root_dir=exp_dir, enable_progress_bar=bar,
            enable_model_summary=False, limit_val_batches=len(task.dev) or 0)
        try:
            trainer.fit(task, train_dataloaders=train, ckpt_path=resume)
        except SIGTERMException:
            # Lightning exits 0 on SIGTERM: a recipe would mark the stage done and train the next
            # model on an unfinished one. Fail instead; the rerun resumes from last.ckpt.
            raise SpeechkdError(f"training stopped by SIGTERM at step {trainer.global_step}; "
                                f"{os.path.join(ckpt_dir, LAST)} holds that state", path=exp_dir,
                                hint="rerun the same command to resume") from None
        logger.info("stopped at step %d after %.1f training minutes", trainer.global_step, task.train_minutes)
        return os.path.join(ckpt_dir, LAST)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()

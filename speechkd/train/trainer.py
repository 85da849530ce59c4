"""``run_training``: one training run in an exp dir, resuming from its last checkpoint.

Order of work (icefall style, top to bottom): resolve the data, check a previous run in the
same exp dir is compatible, write ``config.yaml``, build the model and the Lightning trainer,
fit (``ckpt_path="last"`` when a checkpoint exists), plot the curves.

Resume restores weights, optimiser, schedule, step counter, the elapsed training time (the
``max_minutes`` budget is over all runs) and the metrics rows; the interrupted epoch starts
over with the same batch order, so the batches before the kill are seen once more.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
from typing import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from speechkd.config import dump_config
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.features.config import FeatureConfig, check_compatible
from speechkd.models import get_model_class
from speechkd.text.tokens import TokenList
from speechkd.train.config import TrainConfig, config_changes, require_data, train_config_from_dict
from speechkd.train.data import TTSDataModule
from speechkd.train.exp import (CKPT_DIR, LAST, AtomicCheckpointIO, CSVMetricsLogger, attach_log_file,
                                code_version)
from speechkd.train.module import TTSTask
from speechkd.train.plots import plot_curves
from speechkd.utils.io import atomic_write_text

logger = logging.getLogger(__name__)

# Settings that may change when a run is resumed (how long and where it trains, not what).
RESUMABLE_CHANGES = ("trainer.", "data.num_workers", "data.dump_dir", "data.token_list", "data.plot_utt",
                     "data.max_dev_utts", "data.teacher_dump_dir")
CURVES = ["train/loss", "val/loss", "val/focus_rate", "val/focus_rate_above_0.5", "val/mel_l1", "val/dur_mae",
          "train/lr"]


class FinalCheckpoint(Callback):
    """Write last.ckpt when training ends (max_steps, max_minutes or the end of data) or is
    stopped by SIGTERM (a cluster's preemption, ``kill``), so a rerun resumes exactly there;
    Lightning's ModelCheckpoint only refreshes it every N steps. (Lightning raises its SIGTERM
    exception between batches, so the state saved is consistent; after SIGKILL or Ctrl-C the
    rerun resumes from the last periodic checkpoint.)"""

    def __init__(self, path: str):
        self.path = path

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.path)


def checkpoint_callbacks(ckpt_dir: str, every_steps: int, keep: int) -> list[Callback]:
    """step<N>.ckpt every ``every_steps`` steps (the last ``keep`` kept) and checkpoints/last.ckpt,
    the same for every trainer. ``save_on_train_epoch_end``: otherwise Lightning defers a step
    checkpoint that falls on an epoch's last batch to the next validation, and never writes it
    when validation is scheduled by steps."""
    return [ModelCheckpoint(dirpath=ckpt_dir, filename="step{step}", auto_insert_metric_name=False,
                            every_n_train_steps=every_steps, save_last=True, monitor="step", mode="max",
                            save_top_k=keep, enable_version_counter=False, save_on_train_epoch_end=True),
            FinalCheckpoint(os.path.join(ckpt_dir, LAST))]


def _devices(spec: str) -> int | str | list[int]:
    spec = spec.strip()
    if spec.isdigit():
        return int(spec)
    if "," in spec:
        return [int(x) for x in spec.split(",") if x.strip()]
    return spec


def check_previous_run(exp_dir: str, cfg: TrainConfig, tokens: TokenList, fc: FeatureConfig) -> str | None:
    """The checkpoint to resume from (None for a fresh run), after checking it fits this config/data."""
    last = os.path.join(exp_dir, CKPT_DIR, LAST)
    if not os.path.exists(last):
        return None
    meta = torch.load(last, map_location="cpu", weights_only=False).get("speechkd", {})
    old = train_config_from_dict(meta["config"], source=f"{last} (embedded config)")
    changed = config_changes(old, cfg)
    fixed = [k for k in changed if not k.startswith(RESUMABLE_CHANGES)]
    if fixed:
        raise ConfigError(f"cannot resume {exp_dir}: its checkpoint was trained with other settings of "
                          f"{', '.join(fixed)}", path=last,
                          hint="use a new --exp dir, or restore those settings")
    if changed:
        logger.info("resuming with changed settings: %s", ", ".join(changed))
    check_compatible(FeatureConfig.from_dict(meta["feature_config"]), fc, f"checkpoint {last}", "training dump",
                     hint="train in a new --exp dir, or use the dump the checkpoint was trained on")
    if list(meta["tokens"]) != tokens.tokens:
        raise SpeechkdError("the token list differs from the one the checkpoint was trained with", path=last,
                            hint=f"use the original token list, or a new --exp dir ({tokens.path})")
    return last


def run_training(cfg: TrainConfig, exp_dir: str, *, progress_bar: bool | None = None,
                 make_task: Callable[..., TTSTask] = TTSTask) -> str:
    """Train (or resume) in ``exp_dir``; returns the path of the last checkpoint. ``make_task(cfg,
    token_list, feature_config, stats, exp_dir=...)`` builds the Lightning module (a TTSTask
    subclass, e.g. :class:`speechkd.distill.progressive.ProgressiveTask`)."""
    require_data(cfg)
    t = cfg.trainer
    if t.max_steps < 0 and t.max_minutes <= 0:
        logger.warning("neither trainer.max_steps nor trainer.max_minutes is set: training runs until killed")
    os.makedirs(os.path.join(exp_dir, "plots"), exist_ok=True)
    handler = attach_log_file(exp_dir)
    try:
        logger.info("speechkd train -> %s (%s)", exp_dir, code_version())
        if t.num_threads > 0:
            torch.set_num_threads(t.num_threads)
        L.seed_everything(t.seed, workers=True, verbose=False)
        dm = TTSDataModule(cfg.data, seed=t.seed, needs=getattr(get_model_class(cfg.model), "batch_needs", ()))
        dm.setup()
        if not cfg.data.plot_utt and dm.dev_utts:
            cfg.data.plot_utt = dm.dev_utts[0].utt
        resume = check_previous_run(exp_dir, cfg, dm.token_list, dm.feature_config)
        atomic_write_text(os.path.join(exp_dir, "config.yaml"), dump_config(cfg))
        task = make_task(cfg, dm.token_list, dm.feature_config, dm.stats, exp_dir=exp_dir)
        n_params = sum(p.numel() for p in task.model.parameters())
        logger.info("model %s: %.2f M parameters; %s", cfg.model, n_params / 1e6,
                    f"resuming from {resume}" if resume else "fresh start")
        ckpt_dir = os.path.join(exp_dir, CKPT_DIR)
        callbacks = checkpoint_callbacks(ckpt_dir, t.ckpt_every_steps, t.keep_checkpoints)
        bar = sys.stderr.isatty() if progress_bar is None else progress_bar
        trainer = L.Trainer(
            accelerator=t.accelerator, devices=_devices(t.devices), num_nodes=t.num_nodes, strategy=t.strategy,
            precision=t.precision, max_steps=t.max_steps, max_epochs=-1,
            max_time=datetime.timedelta(minutes=t.max_minutes) if t.max_minutes > 0 else None,
            val_check_interval=t.val_every_steps, check_val_every_n_epoch=None, num_sanity_val_steps=0,
            log_every_n_steps=t.log_every_steps, gradient_clip_val=cfg.optim.grad_clip or None,
            accumulate_grad_batches=t.accumulate_grad_batches, logger=CSVMetricsLogger(exp_dir),
            callbacks=callbacks, plugins=[AtomicCheckpointIO()], default_root_dir=exp_dir,
            use_distributed_sampler=False, enable_progress_bar=bar, enable_model_summary=False)
        try:
            trainer.fit(task, datamodule=dm, ckpt_path=resume)
        except SIGTERMException:
            # Lightning's SIGTERM exception is a SystemExit with status 0: a recipe would mark the
            # stage done. Make it an error, so that the stage fails and its rerun resumes.
            raise SpeechkdError(f"training stopped by SIGTERM at step {trainer.global_step}; "
                                f"{os.path.join(ckpt_dir, LAST)} holds that state", path=exp_dir,
                                hint="rerun the same command to resume") from None
        if trainer.is_global_zero:
            rows = trainer.logger.rows
            plot_curves(rows, os.path.join(exp_dir, "plots", "curves.png"), CURVES)
            plot_curves(rows, os.path.join(exp_dir, "plots", "curves_minutes.png"), CURVES, x="minutes")
        logger.info("stopped at step %d after %.1f training minutes", trainer.global_step, task.train_minutes)
        return os.path.join(ckpt_dir, LAST)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()

"""The one training runner: every model family (acoustic models, diffusion, progressive rounds,
vocoders, SE models) trains through :func:`run`, the only place that builds a Lightning trainer.

Order of work (icefall style, top to bottom), the same for every family:

1. log to ``train.log``, choose the CPU threads (:mod:`speechkd.utils.threads`), seed;
2. ``job.prepare()``: what the resume check needs (token list, feature config, ...);
3. the resume point (:func:`resume_point`): ``checkpoints/last.ckpt`` read with
   ``weights_only=True``; a damaged one (truncated, not ours, a pickle that would run code) falls
   back to the newest intact ``step<N>.ckpt``, said in one log line; none intact is an error;
4. the checkpoint's embedded config against this one: only ``trainer.*`` settings (how long and
   where, not what; the seed excepted) and the family's ``resumable`` keys may change;
   ``job.check_resume`` checks the rest (feature definitions, token list);
5. ``config.yaml``, ``job.build(step)`` (the Lightning module and its data), the trainer, fit
   (resuming with ``weights_only=True``), ``job.finish`` (plots).

The time budget is one callback (:class:`TimeBudget`): training minutes (validation excluded),
summed over resumes in the task's ``train_minutes`` (kept in every checkpoint), stop at
``trainer.max_minutes`` unless ``trainer.min_steps`` are not reached yet. Lightning turns SIGTERM
into an exit with status 0; the runner makes it an error after last.ckpt is written, so a recipe
stage is not marked done and its rerun resumes.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from dataclasses import fields
from typing import Any, Callable

import lightning as L
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from speechkd.checkpoints import CKPT_DIR, LAST, read_checkpoint, step_checkpoints
from speechkd.config import config_changes, dump_config, from_dict
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.train.checks import check_loss_fell
from speechkd.train.config import TrainerConfig
from speechkd.train.exp import AtomicCheckpointIO, CSVMetricsLogger, attach_log_file
from speechkd.utils.version import code_version
from speechkd.utils.io import atomic_write_text
from speechkd.utils.threads import training_threads

logger = logging.getLogger(__name__)

# trainer settings a resume may change: how long and where it trains, not what (the seed is what)
RESUMABLE_TRAINER = tuple(f"trainer.{f.name}" for f in fields(TrainerConfig) if f.name != "seed")
STARVED = 0.5  # CPU time below this share of what the threads could use: the run looks starved


class Job:
    """One family's part of a run; :func:`run` does the rest. Subclasses set ``config`` (a dataclass
    with a ``trainer: TrainerConfig``), ``command`` (for the log), ``kind`` (``speechkd.kind`` of its
    checkpoints; None for acoustic models) and ``resumable`` (further config keys, or prefixes ending
    in ".", that a resume may change), and implement :meth:`build`."""

    config: Any
    command = "speechkd train"
    kind: str | None = None
    resumable: tuple[str, ...] = ()
    loss_key = "train/loss"  # the metrics.csv column that must fall (trainer.min_loss_drop)

    def prepare(self, exp_dir: str) -> None:
        """Load what the resume check needs (called before it)."""

    def config_from_checkpoint(self, meta: dict, source: str) -> Any:
        """The config embedded in a checkpoint's ``speechkd`` entry, typed like ``self.config``."""
        return from_dict(type(self.config), meta["config"], source=source)

    def check_resume(self, ckpt: dict, path: str) -> None:
        """Refuse a checkpoint trained on other data definitions (features, tokens)."""

    def build(self, exp_dir: str, step: int) -> tuple[L.LightningModule, dict[str, Any]]:
        """The Lightning module and ``trainer.fit``'s data arguments (``datamodule=`` or
        ``train_dataloaders=``); ``step`` is the resumed step (0 for a fresh run)."""
        raise NotImplementedError

    def strategy(self, name: str) -> Any:
        """The Lightning strategy for ``trainer.strategy`` (a family may need another flavour of it)."""
        return name

    def trainer_args(self, task: L.LightningModule) -> dict[str, Any]:
        """Family-specific ``L.Trainer`` arguments (gradient clipping, validation batches)."""
        return {}

    def finish(self, trainer: L.Trainer, task: L.LightningModule, metrics: CSVMetricsLogger,
               exp_dir: str) -> None:
        """After training, on rank 0 (plots)."""


# ---- checkpoints -----------------------------------------------------------------------------------
class FinalCheckpoint(Callback):
    """Write last.ckpt when training ends (max_steps, max_minutes or the end of data) or is
    stopped by SIGTERM (a cluster's preemption, ``kill``), so a rerun resumes exactly there;
    Lightning's ModelCheckpoint only refreshes it every N steps. (Lightning raises its SIGTERM
    exception between batches, so the state saved is consistent; after SIGKILL or Ctrl-C the
    rerun resumes from the last periodic checkpoint.)"""

    def __init__(self, path: str):
        self.path = path

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # weights_only=False here means the full training state (optimizer, loops), what a resume needs
        trainer.save_checkpoint(self.path, weights_only=False)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.path, weights_only=False)


def checkpoint_callbacks(ckpt_dir: str, every_steps: int, keep: int) -> list[Callback]:
    """step<N>.ckpt every ``every_steps`` steps (the last ``keep`` kept) and checkpoints/last.ckpt.
    ``save_on_train_epoch_end``: otherwise Lightning defers a step checkpoint that falls on an
    epoch's last batch to the next validation, and never writes it when validation is by steps."""
    return [ModelCheckpoint(dirpath=ckpt_dir, filename="step{step}", auto_insert_metric_name=False,
                            every_n_train_steps=every_steps, save_last=True, monitor="step", mode="max",
                            save_top_k=keep, enable_version_counter=False, save_on_train_epoch_end=True),
            FinalCheckpoint(os.path.join(ckpt_dir, LAST))]


def resume_point(exp_dir: str, kind: str | None) -> tuple[str | None, dict | None]:
    """(path, checkpoint) to resume from: last.ckpt, or, when it is damaged, the newest intact
    step<N>.ckpt (logged); (None, None) for a fresh run. Nothing intact is an error."""
    last = os.path.join(exp_dir, CKPT_DIR, LAST)
    if not os.path.exists(last):
        return None, None
    damaged = []
    for path in [last, *reversed(step_checkpoints(exp_dir))]:
        try:
            ckpt = read_checkpoint(path, kind)
        except Exception as e:  # noqa: BLE001 - whatever is wrong with the file, the next one is tried
            damaged.append(f"{os.path.basename(path)} ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
                           if str(e) else f"{os.path.basename(path)} ({type(e).__name__})")
            continue
        if damaged:
            logger.warning("%s is unusable: %s; resuming from the newest intact checkpoint %s (step %d)",
                           last, damaged[0], path, int(ckpt.get("global_step", 0)))
        return path, ckpt
    raise SpeechkdError(f"cannot resume: no intact checkpoint; {'; '.join(damaged)}", path=exp_dir,
                        hint="restore the checkpoints, or train afresh in a new --exp dir")


def check_changes(job: Job, ckpt: dict, path: str) -> None:
    """Refuse to resume with other settings of what is trained; log the allowed changes."""
    old = job.config_from_checkpoint(ckpt["speechkd"], f"{path} (embedded config)")
    changed = config_changes(old, job.config)
    allowed = RESUMABLE_TRAINER + tuple(job.resumable)
    fixed = [k for k in changed if not any(k == a or (a.endswith(".") and k.startswith(a)) for a in allowed)]
    if fixed:
        raise ConfigError(f"cannot resume {os.path.dirname(os.path.dirname(path))}: its checkpoint was trained "
                          f"with other settings of {', '.join(fixed)}", path=path,
                          hint="use a new --exp dir, or restore those settings")
    if changed:
        logger.info("resuming with changed settings: %s", ", ".join(changed))


# ---- the time budget -------------------------------------------------------------------------------
class TimeBudget(Callback):
    """Training minutes (the task's ``train_minutes``, restored from its checkpoint, so summed over
    resumes; validation excluded) logged as ``minutes``; stop at ``max_minutes`` (0: no limit)
    once ``min_steps`` are done. On a CPU it also compares the process's CPU time with what its
    ``threads`` could use, and says once when the run looks starved by other work."""

    def __init__(self, max_minutes: float = 0.0, min_steps: int = 0, threads: int = 1, check_after_s: float = 60.0,
                 clock: Callable[[], float] = time.perf_counter, cpu_clock: Callable[[], float] = time.process_time):
        self.max_minutes, self.min_steps, self.threads = max_minutes, min_steps, max(1, threads)
        self.check_after_s, self.clock, self.cpu_clock = check_after_s, clock, cpu_clock
        self._t0: float | None = None
        self._cpu0 = self._wall0 = 0.0
        self._on_cpu = self._reached = self._warned = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._on_cpu = isinstance(trainer.accelerator, CPUAccelerator)
        self._cpu0, self._wall0 = self.cpu_clock(), self.clock()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._t0 is None:
            self._t0 = self.clock()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = self.clock()
        pl_module.train_minutes += (now - (now if self._t0 is None else self._t0)) / 60.0
        self._t0 = now
        pl_module.log("minutes", pl_module.train_minutes, batch_size=1)
        if self._on_cpu and not self._warned and now - self._wall0 >= self.check_after_s:
            self.check_starved(trainer.global_step)
        # under DDP each rank has its own clock: stop when any rank's budget is spent, so that all stop
        # at the same step (a rank left training would wait for the others' gradients forever)
        if self.max_minutes > 0 and trainer.strategy.reduce_boolean_decision(
                pl_module.train_minutes >= self.max_minutes, all=False):
            if trainer.global_step >= self.min_steps:
                logger.info("max_minutes %g reached at step %d", self.max_minutes, trainer.global_step)
                trainer.should_stop = True
            elif not self._reached:
                logger.info("max_minutes %g reached at step %d; training on to min_steps %d", self.max_minutes,
                            trainer.global_step, self.min_steps)
            self._reached = True

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = None  # validation time is not training time

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._on_cpu and not self._warned and self.clock() - self._wall0 >= self.check_after_s:
            self.check_starved(trainer.global_step)

    def check_starved(self, step: int) -> float:
        """The share of CPU time the run got since training started; warns once when below STARVED."""
        wall = self.clock() - self._wall0
        share = (self.cpu_clock() - self._cpu0) / max(1e-9, wall * self.threads)
        if share < STARVED:
            self._warned = True
            logger.warning("training looks starved: it got %.0f%% of the CPU time its %d thread(s) could use over "
                           "%.1f minutes (step %d); the machine is busy, so max_minutes buys fewer steps (pin the "
                           "length with trainer.max_steps, or set a floor with trainer.min_steps)", 100 * share,
                           self.threads, wall / 60, step)
        return share


def _devices(spec: str) -> int | str | list[int]:
    spec = spec.strip()
    if spec.isdigit():
        return int(spec)
    if "," in spec:
        return [int(x) for x in spec.split(",") if x.strip()]
    return spec


def launched_as_global_zero() -> bool:
    """Whether this process is global rank 0, from the environment a DDP launcher gives the
    processes it starts (Lightning's re-executed script: LOCAL_RANK, NODE_RANK; torchrun: RANK;
    srun: SLURM_PROCID). Known before the trainer exists; a plain run is rank 0."""
    return all(os.environ.get(k, "0") in ("", "0") for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def set_threads(t: TrainerConfig) -> int:
    """Set torch's intra-op threads for this run (:func:`speechkd.utils.threads.training_threads`)."""
    n, why = training_threads(t.num_threads)
    torch.set_num_threads(n)
    logger.info("torch threads: %d (%s; OMP_WAIT_POLICY=%s)", n, why, os.environ.get("OMP_WAIT_POLICY", "unset"))
    return n


# ---- the run ---------------------------------------------------------------------------------------
def run(job: Job, exp_dir: str, *, progress_bar: bool | None = None, callbacks: list[Callback] | None = None) -> str:
    """Train (or resume) ``job`` in ``exp_dir``; returns the path of the last checkpoint."""
    t: TrainerConfig = job.config.trainer
    if t.max_steps < 0 and t.max_minutes <= 0:
        logger.warning("neither trainer.max_steps nor trainer.max_minutes is set: training runs until killed")
    ckpt_dir = os.path.join(exp_dir, CKPT_DIR)
    os.makedirs(ckpt_dir, exist_ok=True)
    os.makedirs(os.path.join(exp_dir, "plots"), exist_ok=True)
    # under DDP every rank runs this function; only rank 0 writes the exp dir's files (train.log,
    # config.yaml; metrics.csv and checkpoints are Lightning's rank-0 writes), the others log to stderr
    zero = launched_as_global_zero()
    handler = attach_log_file(exp_dir) if zero else None
    threads_before = torch.get_num_threads()
    try:
        logger.info("%s -> %s (%s)", job.command, exp_dir, code_version())
        threads = set_threads(t)
        L.seed_everything(t.seed, workers=True, verbose=False)
        job.prepare(exp_dir)
        resume, ckpt = resume_point(exp_dir, job.kind)
        step = 0
        if resume:
            check_changes(job, ckpt, resume)
            job.check_resume(ckpt, resume)
            step = int(ckpt.get("global_step", 0))
        del ckpt
        if zero:
            atomic_write_text(os.path.join(exp_dir, "config.yaml"), dump_config(job.config))
        task, data = job.build(exp_dir, step)
        logger.info("%s", f"resuming from {resume} (step {step})" if resume else "fresh start")
        metrics = CSVMetricsLogger(exp_dir)
        metrics.truncate_after(step)
        budget = TimeBudget(t.max_minutes, t.min_steps, threads)
        cbs = [*checkpoint_callbacks(ckpt_dir, t.ckpt_every_steps, t.keep_checkpoints), budget, *(callbacks or [])]
        if not task.automatic_optimization:  # step checkpoints hold the state after the step: what a resume wants
            warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
        trainer = L.Trainer(
            accelerator=t.accelerator, devices=_devices(t.devices), num_nodes=t.num_nodes, strategy=job.strategy(t.strategy),
            precision=t.precision, max_steps=t.max_steps, max_epochs=-1, val_check_interval=t.val_every_steps,
            check_val_every_n_epoch=None, num_sanity_val_steps=0, log_every_n_steps=t.log_every_steps,
            accumulate_grad_batches=t.accumulate_grad_batches, logger=metrics, callbacks=cbs,
            plugins=[AtomicCheckpointIO()], default_root_dir=exp_dir, use_distributed_sampler=False,
            enable_progress_bar=sys.stderr.isatty() if progress_bar is None else progress_bar,
            enable_model_summary=False, **job.trainer_args(task))
        if isinstance(trainer.accelerator, CPUAccelerator) and trainer.num_devices > 1 and not t.num_threads:
            # DDP on CPU: every process on this machine counted the same free cores; share them
            budget.threads = threads = max(1, threads // trainer.num_devices)
            torch.set_num_threads(threads)
            logger.info("torch threads: %d per process (%d CPU processes share the free cores)", threads,
                        trainer.num_devices)
        try:
            trainer.fit(task, ckpt_path=resume, weights_only=True, **data)
        except SIGTERMException:
            # Lightning's SIGTERM exception is a SystemExit with status 0: a recipe would mark the
            # stage done. Make it an error, so that the stage fails and its rerun resumes.
            raise SpeechkdError(f"training stopped by SIGTERM at step {trainer.global_step}; "
                                f"{os.path.join(ckpt_dir, LAST)} holds that state", path=exp_dir,
                                hint="rerun the same command to resume") from None
        if trainer.is_global_zero:
            job.finish(trainer, task, metrics, exp_dir)
        logger.info("stopped at step %d after %.1f training minutes", trainer.global_step, task.train_minutes)
        if t.min_loss_drop >= 0 and trainer.is_global_zero:  # the run's own pass/fail figure
            fig = check_loss_fell(os.path.join(exp_dir, "metrics.csv"), job.loss_key, t.min_loss_drop)
            logger.info("%s fell by %.1f%% (mean of the first %d logged values %.4g, of the last %d %.4g)",
                        job.loss_key, 100 * fig["drop"], fig["window"], fig["first"], fig["window"], fig["last"])
        return os.path.join(ckpt_dir, LAST)
    finally:
        torch.set_num_threads(threads_before)
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


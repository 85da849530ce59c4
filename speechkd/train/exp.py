"""Experiment dirs and checkpoints.

``exp/<tag>/`` holds::

    config.yaml            the resolved TrainConfig with help comments (rewritten at each start)
    train.log              log of every run, appended
    metrics.csv            step, time, train/* and val/* columns (rewritten atomically; on resume
                           rows after the restored step, from the killed run, are dropped)
    plots/                 PNG: attention and mels of a dev utterance per validation, curves.png
    checkpoints/last.ckpt  the latest state (resume point), step<N>.ckpt a few older ones

A checkpoint is a Lightning checkpoint whose ``"speechkd"`` entry holds the resolved config,
the token list, the FeatureConfig, the feature statistics and the code version
(``speechkd.__version__`` and the git commit), all plain values so that
:mod:`speechkd.checkpoints` reads it back with ``weights_only=True`` and without Lightning;
everything is written atomically (temporary file, then rename), so a kill never leaves a
truncated checkpoint. This module is the writer side.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from speechkd.utils.io import atomic_open, atomic_write_text

logger = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into a temporary file beside the target, then rename over it."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str, storage_options: Any = None) -> None:
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        with atomic_open(path, "wb") as f:
            f.write(buf.getbuffer())


class CSVMetricsLogger(Logger):
    """``metrics.csv``: one row per logged step, columns added as metrics appear, rewritten
    atomically; survives resumes (rows past the resumed step are dropped)."""

    def __init__(self, exp_dir: str):
        super().__init__()
        self.path = os.path.join(exp_dir, "metrics.csv")
        self.rows: list[dict[str, Any]] = []
        if os.path.exists(self.path):
            with open(self.path, newline="", encoding="utf-8") as f:
                self.rows = [{k: v for k, v in r.items() if v != ""} for r in csv.DictReader(f)]

    @property
    def name(self) -> str:
        return "csv"

    @property
    def version(self) -> str:
        return ""

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the config lives in config.yaml

    def truncate_after(self, step: int) -> None:
        """Drop rows of steps after ``step`` (logged by a killed run after its last checkpoint)."""
        n = len(self.rows)
        self.rows = [r for r in self.rows if int(float(r.get("step", 0))) <= step]
        if len(self.rows) < n:
            logger.info("metrics.csv: dropped %d row(s) after the resumed step %d", n - len(self.rows), step)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {"step": step, **{k: float(v) for k, v in metrics.items() if k != "epoch"}}
        if self.rows and str(self.rows[-1].get("step")) == str(step):
            self.rows[-1].update(row)  # train and val metrics of one step share a row
        else:
            self.rows.append(row)

    @rank_zero_only
    def save(self) -> None:
        cols = ["step"] + sorted({k for r in self.rows for k in r} - {"step"})
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()


def attach_log_file(exp_dir: str) -> logging.Handler:
    """Append the log of this run (speechkd and Lightning) to ``train.log``."""
    h = logging.FileHandler(os.path.join(exp_dir, "train.log"), encoding="utf-8")
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.addHandler(h)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return h

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
(``speechkd.__version__`` and the git commit); everything is written atomically
(temporary file, then rename), so a kill never leaves a truncated checkpoint.
"""

from __future__ import annotations

import csv
import glob
import io
import logging
import os
import re
import subprocess
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

import speechkd
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.text.tokens import TokenList
from speechkd.train.config import TrainConfig, train_config_from_dict
from speechkd.utils.io import atomic_open, atomic_write_text

logger = logging.getLogger(__name__)

CKPT_DIR = "checkpoints"
LAST = "last.ckpt"


def code_version() -> dict[str, str]:
    """speechkd's version and, in a git checkout, the commit (with ``-dirty`` for local changes)."""
    out = {"speechkd": speechkd.__version__, "git_commit": ""}
    root = os.path.dirname(os.path.dirname(os.path.abspath(speechkd.__file__)))
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        if commit:
            dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            out["git_commit"] = commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


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


@dataclass
class LoadedModel:
    """A trained model with everything needed to use it consistently."""

    model: torch.nn.Module
    config: TrainConfig
    token_list: TokenList
    feature_config: FeatureConfig
    mel_mean: np.ndarray
    mel_std: np.ndarray
    step: int
    version: dict
    path: str
    frontend: dict | None = None  # text frontend settings (frontend.yaml); None in older checkpoints

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        if self.feature_config.normalization != "global":
            return mel
        return (mel - torch.as_tensor(self.mel_mean).to(mel)) / torch.as_tensor(self.mel_std).to(mel)

    def denormalize(self, mel: torch.Tensor) -> torch.Tensor:
        if self.feature_config.normalization != "global":
            return mel
        return mel * torch.as_tensor(self.mel_std).to(mel) + torch.as_tensor(self.mel_mean).to(mel)


def resolve_checkpoint(exp_or_ckpt: str, trainer: str = "speechkd train") -> str:
    """``exp/<tag>`` -> its checkpoints/last.ckpt; a ``.ckpt`` path is returned as is.
    ``trainer`` names the command that writes such exp dirs (for the hint)."""
    if os.path.isdir(exp_or_ckpt):
        path = os.path.join(exp_or_ckpt, CKPT_DIR, LAST)
        if not os.path.exists(path):
            raise SpeechkdError("experiment has no checkpoint", path=exp_or_ckpt,
                                hint=f"train it first ({trainer}) or pass a .ckpt path")
        return path
    if not os.path.exists(exp_or_ckpt):
        raise SpeechkdError("exp dir or checkpoint does not exist", path=exp_or_ckpt)
    return exp_or_ckpt


def read_checkpoint(path: str, kind: str | None = None, trainer: str = "speechkd train") -> dict:
    """A speechkd checkpoint as a dict; one-line errors for an unreadable file, a checkpoint that
    is not ours, or one of another kind (``speechkd.kind``: "vocoder", "se"; acoustic models: none)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise SpeechkdError(f"cannot read checkpoint ({type(e).__name__}: {e})", path=path) from None
    meta = ckpt.get("speechkd") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        what = {None: "acoustic-model", "se": "SE"}.get(kind, kind)
        raise SpeechkdError(f"not a speechkd {what} checkpoint", path=path,
                            hint=f"pass an exp dir written by `{trainer}`")
    return ckpt


def model_state(ckpt: dict) -> dict[str, torch.Tensor]:
    """The model's weights in a Lightning checkpoint (the task's ``model.`` submodule)."""
    return {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}


def _step_of(path: str) -> int:
    return int(re.findall(r"step(\d+)", os.path.basename(path))[0])


def step_checkpoints(exp_dir: str) -> list[str]:
    """The exp's step<N>.ckpt files, oldest first."""
    return sorted(glob.glob(os.path.join(exp_dir, CKPT_DIR, "step*.ckpt")), key=_step_of)


def last_checkpoints(exp_dir: str, n: int, kind: str | None = None, trainer: str = "speechkd train") -> list[str]:
    """The last ``n`` distinct steps of an exp dir, oldest first: step<N>.ckpt files older than
    last.ckpt, then last.ckpt (which may be newer than every step<N>.ckpt). Fewer when there are fewer."""
    last = resolve_checkpoint(exp_dir, trainer)
    last_step = int(read_checkpoint(last, kind, trainer).get("global_step", 0))
    older = [p for p in step_checkpoints(exp_dir) if _step_of(p) < last_step]
    return (older[-(n - 1):] if n > 1 else []) + [last]


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point weights (in float64, cast back); other entries (counters,
    integer buffers) from the newest state. Checkpoint averaging as in ESPnet's recipes."""
    if len(states) == 1:
        return states[0]
    return {k: (sum(s[k].double() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
            for k, v in states[-1].items()}


def checkpoints_to_load(exp_or_ckpt: str, average: int, kind: str | None = None,
                        trainer: str = "speechkd train") -> list[str]:
    """The checkpoint paths ``average`` asks for: the last N of an exp dir (warning when it has
    fewer), or the one checkpoint."""
    if average < 1:
        raise SpeechkdError(f"--average must be >= 1, got {average}", field="--average")
    if average == 1:
        return [resolve_checkpoint(exp_or_ckpt, trainer)]
    if not os.path.isdir(exp_or_ckpt):
        raise SpeechkdError("averaging checkpoints needs an exp dir", path=exp_or_ckpt, field="--average")
    paths = last_checkpoints(exp_or_ckpt, average, kind, trainer)
    if len(paths) < average:
        logger.warning("%s: averaging the %d checkpoints there are (asked for %d; keep more with "
                       "trainer.keep_checkpoints)", exp_or_ckpt, len(paths), average)
    return paths


def load_model(exp_or_ckpt: str, device: str | torch.device = "cpu", average: int = 1) -> LoadedModel:
    """Rebuild a trained model from its checkpoint (eval mode), with its tokens and FeatureConfig;
    ``average`` > 1 averages the weights of the exp dir's last N checkpoints (its config, tokens
    and statistics are those of the newest)."""
    from speechkd.models import get_model_class

    paths = checkpoints_to_load(exp_or_ckpt, average)
    path = paths[-1]
    ckpt = read_checkpoint(path)
    meta = ckpt["speechkd"]
    cfg = train_config_from_dict(meta["config"], source=f"{path} (embedded config)")
    tl = TokenList(meta["tokens"], path=f"{path} (embedded token list)")
    fc = FeatureConfig.from_dict(meta["feature_config"], source=f"{path} (embedded feature config)")
    model = get_model_class(cfg.model)(cfg.model_conf, n_vocab=len(tl), n_mels=fc.n_mels)
    states = [model_state(read_checkpoint(p)) for p in paths[:-1]] + [model_state(ckpt)]
    model.load_state_dict(average_states(states))
    if len(paths) > 1:
        logger.info("loaded %s: average of %d checkpoints (%s)", exp_or_ckpt, len(paths),
                    ", ".join(os.path.basename(p) for p in paths))
    model.to(device).eval()
    return LoadedModel(model, cfg, tl, fc, np.asarray(meta["mel_mean"], np.float32),
                       np.asarray(meta["mel_std"], np.float32), int(ckpt.get("global_step", 0)),
                       meta.get("version", {}), path, meta.get("frontend"))

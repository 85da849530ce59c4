"""SE experiment dirs and checkpoints.

``exp/<tag>/`` holds::

    config.yaml             the resolved SETrainConfig with help comments
    train.log               log of every run, appended
    metrics.csv             step, minutes, train/* and val/* (rewritten atomically; rows past a
                            resumed step, written by a killed run, are dropped)
    checkpoints/last.ckpt   the resume point; step<N>.ckpt the last few (for averaging)

A checkpoint is a Lightning checkpoint whose ``"speechkd"`` entry holds the resolved config,
the model name, the sample rate, the training minutes and the code version; it is written
atomically (temporary file, then rename), so a kill never leaves a truncated one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
# One exp-dir convention for every trainer, read without Lightning (weights_only).
from speechkd.checkpoints import average_states, checkpoints_to_load, model_state
from speechkd.checkpoints import last_checkpoints as _last
from speechkd.checkpoints import read_checkpoint as _read
from speechkd.checkpoints import resolve_checkpoint as _resolve
from speechkd.config import from_dict
from speechkd.enhance.config import SETrainConfig
from speechkd.enhance.models import SEModel, build_se_model
from speechkd.errors import SpeechkdError

logger = logging.getLogger(__name__)


def resolve_checkpoint(exp_or_ckpt: str) -> str:
    """``exp/<tag>`` -> its checkpoints/last.ckpt; a ``.ckpt`` path is returned as is."""
    return _resolve(exp_or_ckpt, "speechkd se-train")


def read_checkpoint(path: str) -> dict:
    return _read(path, "se", "speechkd se-train")


@dataclass
class LoadedSE:
    """A trained SE model (eval mode) with its config and provenance."""

    model: SEModel
    name: str
    sample_rate: int
    step: int
    paths: list[str]
    version: dict


def last_checkpoints(exp_dir: str, n: int) -> list[str]:
    """The last ``n`` distinct steps of an SE exp dir, oldest first (see speechkd.checkpoints)."""
    return _last(exp_dir, n, "se", "speechkd se-train")


def load_se_model(exp_or_ckpt: str, *, average: int = 1, checkpoint: int = 0,
                  device: str | torch.device = "cpu") -> LoadedSE:
    """Rebuild a trained SE model; ``average`` > 1 averages the weights of the last N checkpoints
    of an exp dir (single checkpoints vary: egs/asterisk_en/se1/RESULTS.md); ``checkpoint`` K > 0 takes the
    K-th newest of them alone (1: last.ckpt), to measure that spread."""
    if (average > 1 or checkpoint > 0) and not os.path.isdir(exp_or_ckpt):
        raise SpeechkdError("choosing or averaging checkpoints needs an exp dir", path=exp_or_ckpt,
                            field="--checkpoint" if checkpoint else "--average")
    if average > 1 and checkpoint > 0:
        raise SpeechkdError("give either --average N or --checkpoint K, not both", field="--checkpoint")
    if checkpoint > 0:
        paths = last_checkpoints(exp_or_ckpt, checkpoint)
        if len(paths) < checkpoint:
            raise SpeechkdError(f"has {len(paths)} distinct checkpoints, no {checkpoint}-th newest",
                                path=exp_or_ckpt, field="--checkpoint",
                                hint="keep more (trainer.keep_checkpoints) or ask for fewer")
        paths = paths[:1]
    else:
        paths = checkpoints_to_load(exp_or_ckpt, average, "se", "speechkd se-train")
    ckpts = [read_checkpoint(p) for p in paths]
    meta = ckpts[-1]["speechkd"]
    cfg = from_dict(SETrainConfig, meta["config"], source=f"{paths[-1]} (embedded config)")
    model = build_se_model(cfg.model, cfg.model_conf, source=f"{paths[-1]} (embedded config)")
    model.load_state_dict(average_states([model_state(c) for c in ckpts]))
    model.to(device).eval()
    logger.info("loaded %s (%s, step %d%s)", exp_or_ckpt, cfg.model, int(ckpts[-1].get("global_step", 0)),
                f", average of {len(paths)} checkpoints" if len(paths) > 1 else "")
    return LoadedSE(model, cfg.model, cfg.data.sample_rate, int(ckpts[-1].get("global_step", 0)), paths,
                    meta.get("version", {}))

"""SE exp dirs written directly (random weights, a checkpoint as ``speechkd se-train`` writes it):
what the SE export, the streaming and the SE server tests need, in milliseconds and without training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speechkd.config import to_dict
from speechkd.enhance.config import SETrainConfig
from speechkd.enhance.models import build_se_model

TINY = {"crn": {"channels": [4, 8], "rnn_hidden": 16},
        "subband_gru": {"bands": 24, "full_bins": 8, "hidden": 16}}


def write_se_exp(exp: Path, model: str = "subband_gru", conf: dict | None = None, steps: tuple[int, ...] = (2, 4),
                 seed: int = 0) -> Path:
    """``exp/checkpoints/step<N>.ckpt`` for each step (weights differing per step) and last.ckpt (the
    last step); BatchNorm statistics randomised so that eval mode matters."""
    conf = TINY[model] if conf is None else conf
    cfg = SETrainConfig(model=model, model_conf=dict(conf))
    (exp / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    for i, step in enumerate(steps):
        m = build_se_model(model, conf)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.3, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
        ckpt = {"speechkd": {"kind": "se", "config": to_dict(cfg), "model": model, "sample_rate": 16000,
                             "train_minutes": 0.0, "version": {}, "remix": False, "rounds": []},
                "state_dict": {f"model.{k}": v for k, v in m.state_dict().items()}, "global_step": step}
        torch.save(ckpt, exp / "checkpoints" / f"step{step}.ckpt")
        if i == len(steps) - 1:
            torch.save(ckpt, exp / "checkpoints" / "last.ckpt")
    return exp


def noisy(seconds: float, seed: int = 0, sr: int = 16000) -> np.ndarray:
    """A harmonic tone in white noise at -10 dBFS-ish: something for a mask to act on."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8)) + 0.5 * rng.standard_normal(len(t))
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)

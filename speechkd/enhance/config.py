"""SE training configuration: one typed dataclass tree, loaded from commented YAML.

``method`` picks the training pairs (docs/architecture.md, "Speech enhancement"):

- ``nytt``: noisy-target training (Fujimura et al. 2021): input y + g·n', target y.
- ``clean``: supervised upper bound: input y, target the clean s (reads ``data.clean_dir``,
  the eval-only copy; the only method that does).
- ``remix_noisy``: input y + g·n^_π, target y, with n^ = y − T(y).
- ``remix_enhanced``: input s^ + g·n^_π, target s^ = T(y).
- ``remixit``: RemixIT (Tzinis et al. 2022): input s^ + g·n^_π, student speech estimate vs s^
  and noise estimate (mixture − speech, mixture consistency) vs g·n^_π, both by −SI-SDR.

Remix methods read the teacher's estimates s^ from ``data.estimates_dir`` (stage 3), or compute
them online with ``remix.teacher`` (then optionally an EMA teacher, ``remix.ema_decay``), or in
``remix.rounds`` EMA-teacher rounds that regenerate the estimates of the whole training set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from speechkd.config import field, load_typed
from speechkd.enhance.losses import LossConfig
from speechkd.enhance.models import build_se_model
from speechkd.errors import ConfigError
from speechkd.train.config import TrainerConfig

METHODS = ("nytt", "clean", "remix_noisy", "remix_enhanced", "remixit")
REMIX = ("remix_noisy", "remix_enhanced", "remixit")


@dataclass
class SEDataConfig:
    train_dir: str = field("data/se/train_noisy", help="noisy training speech y (data dir); never clean speech")
    dev_dir: str = field("data/se/dev_noisy", help="noisy dev speech for validation (no clean needed)")
    extra_noise_dir: str = field("data/se/extra_noise", help="extra noise n' (data dir) of noisy-target pairs "
                                                              "and of validation")
    clean_dir: str = field("", help="method=clean only: clean speech of train_dir, same utterance ids "
                                    "(data/se/train_clean_eval_only)")
    estimates_dir: str = field("", help="remix methods: directory of the teacher's <utt>.wav estimates s^ "
                                        "of train_dir (stage 3); '' with remix.teacher set: online")
    sample_rate: int = field(16000, help="audio rate; other rates are refused")
    segment_seconds: float = field(2.0, help="training crop length (shorter utterances are zero-padded)")
    batch_size: int = field(8, help="crops per batch")
    snr_range: list[float] = field(default_factory=lambda: [-5.0, 5.0],
                                   help="SNR (dB) of input speech to added noise, drawn uniformly "
                                        "(NyTT: U[-5, 5])")
    max_dev_utts: int = field(32, help="validate on the first N dev utterances; 0 = all")
    gain_db: list[float] = field(default_factory=lambda: [0.0, 0.0],
                                 help="random gain augmentation: each training crop (its input and target alike) "
                                      "scaled by a gain in dB drawn uniformly from [low, high]; [0, 0]: off")
    speed_perturb: list[float] = field(default_factory=list,
                                       help="speed perturbation (Ko et al. 2015; e.g. [0.9, 1.0, 1.1]): each "
                                            "training crop resampled by a factor drawn from this list (tempo "
                                            "and pitch change together, noise included); []: off")


@dataclass
class SEOptimConfig:
    lr: float = field(1e-3, gt=0.0, help="Adam learning rate (constant)")
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999], help="Adam betas")
    weight_decay: float = field(0.0, help="decoupled weight decay (AdamW); 0: plain Adam")
    grad_clip: float = field(5.0, help="clip the gradient norm to this; 0: no clipping")


def se_trainer_defaults() -> TrainerConfig:
    """The shared TrainerConfig with SE's defaults: one device, one thread (the SE models are small
    recurrent nets: more threads cost more in synchronisation than they gain), 3 step checkpoints
    kept (averaged at inference)."""
    return TrainerConfig(keep_checkpoints=3, num_threads=1, devices="1")


@dataclass
class RemixConfig:
    teacher: str = field("", help="teacher exp dir or .ckpt: run on each batch (online remixing, instead of "
                                  "data.estimates_dir), or, with rounds > 1, on the training set each round")
    ema_decay: float = field(0.0, help="after each student step θ_T <- d θ_T + (1 - d) θ_S (RemixIT; 0.995); "
                                       "0: fixed teacher. Needs remix.teacher and the same model for both")
    rounds: int = field(1, help="EMA-teacher rounds (RemixIT, offline): > 1 splits the student's budget "
                                "(trainer.max_steps, else max_minutes) into N rounds; at the start of each "
                                "the (EMA) teacher's estimates s^ of the whole training set are regenerated; "
                                "the student and its optimizer carry on. 1: estimates_dir, or online with "
                                "remix.teacher")
    extra_noise: float = field(0.0, help="remix_noisy / remix_enhanced: the fraction of each batch's crops whose "
                                         "added noise is NyTT's extra noise n' (data.extra_noise_dir) instead of "
                                         "another crop's noise estimate n^_π, so the student keeps rehearsing its "
                                         "teacher's task; 0: every crop remixed, 1: the teacher's own pairs")


@dataclass
class SETrainConfig:
    method: Literal["nytt", "clean", "remix_noisy", "remix_enhanced", "remixit"] = field(
        "nytt", help="training pairs: nytt | clean | remix_noisy | remix_enhanced | remixit")
    model: str = field("crn", help="SE model (speechkd.enhance.models.SE_MODELS): crn | subband_gru")
    model_conf: dict[str, Any] = field(default_factory=dict, help="the model's own Config fields")
    init_from: str = field("", help="exp dir or .ckpt whose model weights initialise this model (same model)")
    data: SEDataConfig = field(default_factory=SEDataConfig, help="training data")
    loss: LossConfig = field(default_factory=LossConfig, help="loss weights")
    optim: SEOptimConfig = field(default_factory=SEOptimConfig, help="optimizer")
    trainer: TrainerConfig = field(default_factory=se_trainer_defaults, help="how long and where")
    remix: RemixConfig = field(default_factory=RemixConfig, help="remix students: online teacher, EMA")

    def resolve_config(self, source: str) -> None:
        check_config(self, source)


def augmented(d: SEDataConfig) -> bool:
    """Whether training crops are augmented (random gain or speed perturbation)."""
    return d.gain_db != [0.0, 0.0] or any(f != 1.0 for f in d.speed_perturb)


def check_config(cfg: SETrainConfig, source: str = "<config>") -> SETrainConfig:
    """Cross-field checks; builds the model config once so its keys are checked too."""
    build_se_model(cfg.model, cfg.model_conf, source=source)
    d = cfg.data
    if len(d.snr_range) != 2 or d.snr_range[0] > d.snr_range[1]:
        raise ConfigError(f"must be [low, high], got {d.snr_range}", path=source, field="data.snr_range")
    if len(d.gain_db) != 2 or not -40.0 <= d.gain_db[0] <= d.gain_db[1] <= 40.0:
        raise ConfigError(f"must be [low, high] within [-40, 40] dB, got {d.gain_db}", path=source,
                          field="data.gain_db")
    if any(not 0.5 <= f <= 2.0 for f in d.speed_perturb):
        raise ConfigError(f"speed factors must lie in [0.5, 2], got {d.speed_perturb}", path=source,
                          field="data.speed_perturb")
    r = cfg.remix
    if r.rounds > 1 and augmented(d):
        raise ConfigError("remix.rounds > 1 takes the estimates of the un-augmented crops: leave data.gain_db "
                          "[0, 0] and data.speed_perturb []", path=source, field="remix.rounds")
    if r.rounds < 1:
        raise ConfigError(f"must be >= 1, got {r.rounds}", path=source, field="remix.rounds")
    if r.rounds > 1:
        need = [(not r.teacher, "remix.teacher (the teacher whose estimates are regenerated)"),
                (not r.ema_decay, "remix.ema_decay > 0 (a fixed teacher gives the same estimates every round)"),
                (bool(d.estimates_dir), "data.estimates_dir empty (the rounds make their own estimates)"),
                (cfg.trainer.max_steps <= 0 and cfg.trainer.max_minutes <= 0,
                 "trainer.max_steps or trainer.max_minutes (the budget split into rounds)")]
        for bad, what in need:
            if bad:
                raise ConfigError(f"remix.rounds {r.rounds} needs {what}", path=source, field="remix.rounds")
    if cfg.method == "clean" and not d.clean_dir:
        raise ConfigError("method clean needs data.clean_dir (the eval-only clean speech)", path=source,
                          field="data.clean_dir")
    if cfg.method != "clean" and d.clean_dir:
        raise ConfigError(f"method {cfg.method} trains without clean speech: data.clean_dir must be empty",
                          path=source, field="data.clean_dir")
    if cfg.method in REMIX and not (d.estimates_dir or cfg.remix.teacher):
        raise ConfigError(f"method {cfg.method} needs the teacher's estimates: set data.estimates_dir "
                          "(stage 3) or remix.teacher (online)", path=source, field="data.estimates_dir")
    if cfg.method not in REMIX and (d.estimates_dir or cfg.remix.teacher):
        raise ConfigError(f"method {cfg.method} uses no teacher: leave data.estimates_dir and remix.teacher empty",
                          path=source, field="method")
    if cfg.remix.ema_decay and not cfg.remix.teacher:
        raise ConfigError("remix.ema_decay needs an online teacher (remix.teacher)", path=source,
                          field="remix.ema_decay")
    if not 0.0 <= r.extra_noise <= 1.0:
        raise ConfigError(f"must lie in [0, 1], got {r.extra_noise}", path=source, field="remix.extra_noise")
    if r.extra_noise and cfg.method not in ("remix_noisy", "remix_enhanced"):
        raise ConfigError(f"method {cfg.method} takes no extra noise in its pairs", path=source,
                          field="remix.extra_noise", hint="use it with remix_noisy or remix_enhanced")
    if not 0.0 <= cfg.remix.ema_decay < 1.0:
        raise ConfigError(f"must lie in [0, 1), got {cfg.remix.ema_decay}", path=source, field="remix.ema_decay")
    if d.batch_size < 2 and cfg.method in REMIX:
        raise ConfigError("remixing permutes noise within a batch: data.batch_size must be >= 2",
                          path=source, field="data.batch_size")
    if cfg.trainer.accumulate_grad_batches != 1:
        raise ConfigError("gradient accumulation is not supported by SE training", path=source,
                          field="trainer.accumulate_grad_batches", hint="raise data.batch_size instead")
    return cfg


def load_se_config(path: str | None, overrides: list[str] | None = None) -> SETrainConfig:
    return load_typed(SETrainConfig, path, overrides)


def resolve_paths(cfg: SETrainConfig) -> SETrainConfig:
    """Data paths made absolute (the resolved config must work from any directory)."""
    d = cfg.data
    for name in ("train_dir", "dev_dir", "extra_noise_dir", "clean_dir", "estimates_dir"):
        v = getattr(d, name)
        if v:
            setattr(d, name, os.path.abspath(v))
    for obj, name in ((cfg, "init_from"), (cfg.remix, "teacher")):
        if getattr(obj, name):
            setattr(obj, name, os.path.abspath(getattr(obj, name)))
    return cfg

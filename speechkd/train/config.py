"""Training configuration: one typed dataclass tree, loaded from commented YAML.

``model`` names a class of :data:`speechkd.models.MODELS`; ``model_conf`` is that class's own
``Config`` dataclass (typed and checked like the rest once the model is known). The resolved
tree is what ``exp/<tag>/config.yaml`` and every checkpoint hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from speechkd.config import field, from_dict, load_typed
from speechkd.errors import ConfigError
from speechkd.models import get_model_class

if TYPE_CHECKING:
    from speechkd.checkpoints import LoadedModel


@dataclass
class DataConfig:
    """Where the training pairs come from and how they are batched."""

    dump_dir: str = field("", help="dump root holding tokens/<split>/tokens and feats/<split>/feats.scp "
                                   "(`speechkd train --data` sets it)")
    token_list: str = field("", help="tokens.txt giving the token ids (`--token-list` sets it)")
    train_set: str = field("train", help="training split name under the dump root")
    dev_set: str = field("dev", help="validation split name under the dump root")
    batch_frames: int = field(3000, help="mel frames per batch, counted with padding (utterances x longest); "
                                         "per device")
    max_frames: int = field(3000, help="training utterances longer than this many frames are left out (logged)")
    num_workers: int = field(0, help="DataLoader worker processes (0: load in the training process)")
    plot_utt: str = field("", help="dev utterance whose attention and mels are plotted at each validation; "
                                   "'' = the first dev utterance (C-sorted)")
    max_dev_utts: int = field(0, help="validate on the first N dev utterances only; 0 = all")
    kd_mode: Literal["none", "teacher_forced", "free_running"] = field(
        "none", help="students (FastSpeech, FastSpeech 2): where durations and mel targets come from. "
                     "free_running: the teacher's generated mels and their durations (sequence-level KD, "
                     "the FastSpeech paper); teacher_forced: ground-truth mels with the teacher-forced "
                     "durations; none: ground-truth mels only (the AR teacher). `--kd-mode` sets it")
    teacher_dump_dir: str = field("", help="teacher dump root holding <split>/<kd_mode>/index.scp "
                                           "(speechkd teacher-dump, stage 4); '' = <dump_dir>/teacher. "
                                           "`--teacher-dump` sets it")
    speakers: Literal["auto", "none"] = field(
        "auto", help="auto: a speaker table when the training split's utt2spk (dump/tokens/<split>/utt2spk) names "
                     "more than one speaker; none: train speaker-agnostic")
    spk_embed: str = field("", help="external speaker embeddings (x-vectors, ...): '<utt-or-speaker> v1 ... vD' "
                                    "lines, or a Kaldi text ark; added to the table (docs/data-formats.md)")
    keep_filtered: bool = field(False, help="also train on utterances the teacher dump lists in 'filtered' "
                                            "(low focus rate, never stopped); by default they are left out "
                                            "(logged)")


@dataclass
class OptimConfig:
    """Adam with the Noam schedule (Vaswani et al. 2017, eq. 3) rescaled to peak at ``lr``."""

    lr: float = field(1e-3, gt=0.0, help="peak learning rate, reached after warmup_steps")
    warmup_steps: int = field(400, ge=0, help="linear warm-up steps; then lr * sqrt(warmup / step)")
    schedule: Literal["noam", "constant"] = field("noam", help="noam (warm-up + inverse square root) or "
                                                               "constant (after the same warm-up)")
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98], help="Adam betas")
    eps: float = field(1e-9, gt=0.0, help="Adam epsilon")
    weight_decay: float = field(0.0, help="decoupled weight decay (AdamW); 0: plain Adam")
    grad_clip: float = field(1.0, help="clip the gradient norm to this; 0: no clipping")


@dataclass
class TrainerConfig:
    """How long and where to train: the one trainer config of every model family (acoustic,
    diffusion, progressive rounds, vocoder, SE), read by :func:`speechkd.train.runner.run`."""

    max_steps: int = field(-1, help="stop after this many optimizer steps; -1: no step limit")
    max_minutes: float = field(0.0, help="stop after this many minutes of training (validation excluded), "
                                         "summed over resumes (presets are defined by CPU minutes); 0: no time "
                                         "limit")
    min_steps: int = field(0, help="with max_minutes: train at least this many steps even when the minutes are "
                                   "spent (a floor for a busy machine); 0: no floor")
    min_loss_drop: float = field(-1.0, ge=-1.0, lt=1.0, help="after training, stop with an error (exit 2) unless the training loss "
                                            "fell from the first to the last logged steps by more than this share "
                                            "(0: it fell at all; 0.1: by a tenth); -1: no check")
    val_every_steps: int = field(200, help="validate (dev loss and the family's metrics, plots) every N steps")
    ckpt_every_steps: int = field(100, help="write checkpoints/last.ckpt and a step<N>.ckpt every N steps "
                                            "(and last.ckpt at the end)")
    keep_checkpoints: int = field(2, help="step-numbered checkpoints kept besides last.ckpt (the resume "
                                          "fallback when last.ckpt is damaged, and checkpoint averaging)")
    log_every_steps: int = field(10, help="append training losses to metrics.csv every N steps")
    seed: int = field(1, ge=0, help="random seed (weights, batch order, dropout, crops)")
    accelerator: str = field("auto", help="Lightning accelerator: auto, cpu, gpu")
    devices: str = field("auto", help="devices per node: auto, a count (e.g. 2) or a list (e.g. 0,1)")
    num_nodes: int = field(1, help="machines for multi-node DDP")
    strategy: str = field("auto", help="Lightning strategy: auto, ddp, ...")
    precision: str = field("32-true", help="32-true, 16-mixed or bf16-mixed")
    accumulate_grad_batches: int = field(1, help="batches per optimizer step")
    num_threads: int = field(0, help="torch CPU threads; 0: the cores free when training starts (all of them "
                                     "on a quiet machine, fewer beside other work)")

    def resolve_config(self, source: str) -> None:
        if self.min_steps > 0 and self.max_steps > 0 and self.min_steps > self.max_steps:
            raise ConfigError(f"min_steps {self.min_steps} exceeds max_steps {self.max_steps}", path=source,
                              field="trainer.min_steps")


@dataclass
class TrainConfig:
    """Everything `speechkd train` needs besides the exp dir."""

    model: str = field("transformer_tts", help="registered model name (speechkd.models.MODELS)")
    model_conf: Any = field(default_factory=dict, help="the model's settings (its Config dataclass)")
    data: DataConfig = field(default_factory=DataConfig, help="training data")
    optim: OptimConfig = field(default_factory=OptimConfig, help="optimiser and learning-rate schedule")
    trainer: TrainerConfig = field(default_factory=TrainerConfig, help="training length, devices, precision")

    def resolve_config(self, source: str) -> None:
        """Type ``model_conf`` by the registered model's ``Config``."""
        cls = get_model_class(self.model)
        if not isinstance(self.model_conf, cls.Config):
            conf = self.model_conf if self.model_conf is not None else {}
            self.model_conf = from_dict(cls.Config, conf, source=source, prefix="model_conf.")


def train_config_from_dict(data: dict, source: str = "<dict>") -> TrainConfig:
    """A TrainConfig whose ``model_conf`` is typed by the registered model's ``Config``."""
    return from_dict(TrainConfig, data, source=source)


def load_train_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults <- YAML ``path`` <- dotted ``overrides`` (e.g. ``model_conf.d_model=128``)."""
    return load_typed(TrainConfig, path, overrides)


def require_data(cfg: TrainConfig) -> None:
    if not cfg.data.dump_dir or not cfg.data.token_list:
        raise ConfigError("data.dump_dir and data.token_list must be set",
                          hint="pass --data DUMP_ROOT --token-list TOKENS_TXT (or set them in the YAML)")


def loaded_train_config(lm: LoadedModel) -> TrainConfig:
    """The typed training config a loaded acoustic model was trained with (its checkpoint's)."""
    return train_config_from_dict(lm.meta["config"], source=f"{lm.path} (embedded config)")

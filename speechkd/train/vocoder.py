"""Neural vocoder training (``speechkd train-vocoder``); loading is :func:`speechkd.checkpoints.load_vocoder`.

Data: random segments of ``segment_frames`` mel frames from a feature dump
(``<feats>/<split>/feats.scp``) with the matching audio from the data dir
(``<data>/<split>/wav.scp``): frame t of a centred STFT is centred on sample t·hop, so frames
t0..t0+S-1 pair with samples [t0·hop, (t0+S-1)·hop), which is what the iSTFT head returns.
Each segment comes from the next utterance of an epoch-wise shuffled order
(:class:`speechkd.data.shards.EpochShards`): every utterance once per epoch, across the ranks
under DDP (``--devices N --strategy ddp``), at a random offset drawn per rank.

Teacher targets (vocoder distillation, ``data.teacher_dir``): the target waveform y of a mel is
not the recording but a teacher vocoder's output for that same mel, written once by
``speechkd vocode --feats <feats>/<split> --vocoder hifigan_universal --out <teacher_dir>/<split>``
(a dump: the teacher runs once, not every epoch). The student then learns the teacher's mapping,
also on mels no recording matches (an acoustic model's predicted mels: give their dump as
``--feats``). The dump's recorded settings must name these very mels. Validation (``val/mel_l1``)
compares the student's output with its input mels in either mode, so runs on recordings and on a
teacher's waveforms read on one scale.

Losses per step, with ŷ = G(mel) (HiFi-GAN's total losses summed over sub-discriminators; Vocos
uses the same terms with the hinge loss):

    L_D = Σ_k adv_D(D_k(y), D_k(ŷ))                                (hinge or least squares)
    L_G = λ_adv Σ_k adv_G(D_k(ŷ)) + λ_fm L_FM + λ_mel ‖logmel(y) − logmel(ŷ)‖₁ + λ_stft L_stft(ŷ, y)

``L_stft`` is the multi-resolution STFT loss (:mod:`speechkd.models.vocoders.stft_loss`; off at
λ_stft = 0); with teacher targets L_FM matches the discriminator's features of the teacher's
waveform. ``logmel`` is THE feature definition (:func:`speechkd.features.mel.log_mel`). Before
``loss.disc_start_step`` the generator trains on the mel loss alone and no discriminator
runs: a mel-only step costs a fraction of a GAN step, so on a CPU budget the mel phase does
most of the work.

Experiment dir as every trainer's (:mod:`speechkd.train.exp`): config.yaml, train.log,
metrics.csv, atomic checkpoints carrying ``{"kind": "vocoder", config, feature_config,
version, train_minutes}``; a rerun resumes from checkpoints/last.ckpt; ``samples/`` holds a dev
utterance vocoded at each validation. ``global_step`` counts generator steps (the
discriminator's optimizer is stepped outside Lightning's step counter).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, IterableDataset

from speechkd.audio import load_audio
from speechkd.config import field, from_dict, load_typed, to_dict
from speechkd.data.kaldi import read_datadir
from speechkd.data.shards import EpochShards, rank_world
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.features.config import MEL_FIELDS, FeatureConfig, check_compatible
from speechkd.features.dump import read_feats_scp
from speechkd.features.mel import log_mel
from speechkd.features.stats import Stats
from speechkd.models.vocoders import GENERATORS
from speechkd.models.vocoders.discriminators import (DiscriminatorConfig, Discriminators, discriminator_loss,
                                                     feature_matching_loss, generator_adv_loss)
from speechkd.models.vocoders.stft_loss import DEFAULT_RESOLUTIONS, stft_loss
from speechkd.train.config import TrainerConfig
from speechkd.utils.version import code_version
from speechkd.train.plots import plot_curves
from speechkd.train.runner import Job, run
from speechkd.utils.io import atomic_write_wav
from speechkd.utils.outputs import read_settings
from speechkd.utils.paths import safe_child

logger = logging.getLogger(__name__)

RESUMABLE = ("data.max_dev_utts",)


@dataclass
class VocoderDataConfig:
    feats_dir: str = field("", help="feature dump root holding <split>/feats.scp (`--feats` sets it)")
    data_dir: str = field("", help="data root holding <split>/wav.scp, the audio of the dump (`--data` sets it); "
                                   "unused with teacher_dir")
    teacher_dir: str = field("", help="teacher targets: root holding <split>/<utt>.wav, a teacher vocoder's output "
                                      "for the dump's mels (speechkd vocode --feats <feats_dir>/<split> --out "
                                      "<teacher_dir>/<split>; `--teacher-audio` sets it); \"\" = the recordings")
    train_set: str = field("train", help="training split")
    dev_set: str = field("dev", help="validation split")
    segment_frames: int = field(32, help="mel frames per training segment ((S-1)·hop samples of audio)")
    batch_size: int = field(8, help="segments per batch")
    max_dev_utts: int = field(4, help="validate on the first N dev utterances (whole utterances); 0 = all")


@dataclass
class VocoderLossConfig:
    gan_loss: Literal["hinge", "lsgan"] = field("hinge", help="adversarial loss: hinge (Vocos) or least squares "
                                                               "(HiFi-GAN)")
    mel_weight: float = field(45.0, help="λ_mel on the log-mel L1 (HiFi-GAN, Vocos: 45)")
    fm_weight: float = field(2.0, help="λ_fm on the feature-matching loss (HiFi-GAN: 2)")
    adv_weight: float = field(1.0, help="λ_adv on the generator's adversarial loss")
    disc_start_step: int = field(0, help="generator steps trained on the mel loss alone before the "
                                         "discriminators start")
    stft_weight: float = field(0.0, ge=0.0, help="λ_stft on the multi-resolution STFT loss (Parallel WaveGAN); "
                                                 "0 = off")
    stft_resolutions: list[list[int]] = field(default_factory=lambda: [list(r) for r in DEFAULT_RESOLUTIONS],
                                              help="(n_fft, hop, win) of each STFT loss resolution")


@dataclass
class VocoderOptimConfig:
    lr: float = field(5e-4, gt=0.0, help="AdamW learning rate of both networks (Vocos: 5e-4)")
    betas: list[float] = field(default_factory=lambda: [0.8, 0.9], help="AdamW betas (Vocos)")
    weight_decay: float = field(0.01, help="AdamW decoupled weight decay")
    grad_clip: float = field(10.0, help="clip each network's gradient norm to this; 0: no clipping")


@dataclass
class VocoderTrainConfig:
    """Everything `speechkd train-vocoder` needs besides the exp dir."""

    generator: str = field("vocos", help="registered generator (speechkd.models.vocoders.GENERATORS)")
    generator_conf: Any = field(default_factory=dict, help="the generator's settings (its Config dataclass)")
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig, help="MPD + MRD settings")
    data: VocoderDataConfig = field(default_factory=VocoderDataConfig, help="training data")
    loss: VocoderLossConfig = field(default_factory=VocoderLossConfig, help="loss weights")
    optim: VocoderOptimConfig = field(default_factory=VocoderOptimConfig, help="optimisers")
    trainer: TrainerConfig = field(default_factory=TrainerConfig, help="training length, devices, precision")

    def resolve_config(self, source: str) -> None:
        """Type ``generator_conf`` by the registered generator's Config; no gradient accumulation."""
        if self.generator not in GENERATORS:
            raise ConfigError(f"unknown generator '{self.generator}'; known: {', '.join(GENERATORS)}", path=source,
                              field="generator")
        cls = GENERATORS[self.generator][1]
        if not isinstance(self.generator_conf, cls):
            self.generator_conf = from_dict(cls, self.generator_conf or {}, source=source, prefix="generator_conf.")
        if self.trainer.accumulate_grad_batches != 1:
            raise ConfigError("gradient accumulation is not supported by the GAN loop", path=source,
                              field="trainer.accumulate_grad_batches", hint="raise data.batch_size instead")


def vocoder_config_from_dict(data: dict, source: str = "<dict>") -> VocoderTrainConfig:
    return from_dict(VocoderTrainConfig, data, source=source)


def load_vocoder_config(path: str | None, overrides: list[str] | None = None) -> VocoderTrainConfig:
    return load_typed(VocoderTrainConfig, path, overrides)


# ---- data ------------------------------------------------------------------------------------------
def teacher_audio(teacher_root: str, feats_dir: str) -> tuple[str, dict]:
    """The dir of a teacher's waveforms for the mels of ``feats_dir`` (``<teacher_root>/<split>``) and
    its recorded ``speechkd vocode`` settings, which must name ``feats_dir`` itself: a teacher's
    output for other mels (another split, a stale dump) is not a target for these."""
    split_dir = os.path.join(teacher_root, os.path.basename(os.path.normpath(feats_dir)))
    settings = read_settings(split_dir)
    hint = (f"write it with: speechkd vocode --feats {feats_dir} --vocoder hifigan_universal "
            f"--out {split_dir}")
    if not settings or "feats" not in settings:
        raise SpeechkdError("not the output of `speechkd vocode` (no recorded settings)", path=split_dir, hint=hint)
    if os.path.realpath(str(settings["feats"])) != os.path.realpath(feats_dir):
        raise SpeechkdError(f"the teacher vocoded {settings['feats']}, not {os.path.abspath(feats_dir)}",
                            path=split_dir, field="data.teacher_dir", hint=hint)
    return split_dir, settings


def load_pairs(feats_root: str, data_root: str, split: str, fc: FeatureConfig, max_utts: int = 0,
               teacher_root: str = "") -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(utt, log-mel [T, n_mels], wav [N]) of every utterance of the dump, the wav from the data dir
    or, with ``teacher_root``, the teacher's ``<teacher_root>/<split>/<utt>.wav``."""

    index = [(u, p, T) for u, (p, T) in read_feats_scp(os.path.join(feats_root, split)).items()]
    if teacher_root:
        tdir, settings = teacher_audio(teacher_root, os.path.join(feats_root, split))
        paths = {u: safe_child(tdir, u, ".wav") for u, _, _ in index}
        missing = [u for u, p in paths.items() if not os.path.isfile(p)]
        where, hint = tdir, (f"the teacher's output is incomplete: rerun speechkd vocode --feats "
                             f"{os.path.join(feats_root, split)} --vocoder {settings.get('vocoder')} --out {tdir}")
    else:
        dd = read_datadir(os.path.join(data_root, split))
        missing = [u for u, _, _ in index if u not in dd.utt2spk]
        where = os.path.join(data_root, split)
        hint = "--feats and --data must be the same corpus (stage 2 dumps stage 0's data)"
    if missing:
        raise SpeechkdError(f"{len(missing)} dumped utterance(s) have no target audio, e.g. {missing[0]}",
                            path=where, utt=missing[0], hint=hint)
    out = []
    for utt, npz, frames in index[:max_utts] if max_utts > 0 else index:
        if teacher_root:
            wav = load_audio(paths[utt], sample_rate=fc.sample_rate, utt=utt)[0]
        else:
            entry, seg = dd.audio(utt)
            wav = load_audio(entry, sample_rate=fc.sample_rate, utt=utt, segment=seg)[0]
        if fc.num_frames(len(wav)) != frames:
            raise SpeechkdError(f"{len(wav)} samples give {fc.num_frames(len(wav))} frames, the dump has {frames}",
                                path=npz, utt=utt, hint="the dump is stale: rerun speechkd features"
                                + (" and speechkd vocode" if teacher_root else ""))
        with np.load(npz) as z:
            out.append((utt, z["mel"][:frames].astype(np.float32), wav))
    if not out:
        raise SpeechkdError("no utterances", path=os.path.join(feats_root, split))
    return out


class SegmentBatches(IterableDataset):
    """Endless batches ``{"mel" [B, S, n_mels], "wav" [B, (S-1)·hop], "index" [B]}``: one random segment
    of each utterance of the rank's epoch order (``index`` into ``pairs``)."""

    def __init__(self, pairs: list[tuple[str, np.ndarray, np.ndarray]], fc: FeatureConfig, segment_frames: int,
                 batch_size: int, seed: int, start_step: int = 0):
        super().__init__()
        self.pairs, self.fc, self.S, self.bs = pairs, fc, segment_frames, batch_size
        self.seed, self.start_step = seed, start_step
        self.floor = float(np.log(fc.log_floor) if fc.log_base == "e" else np.log10(fc.log_floor))

    def segment(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        _, mel, wav = self.pairs[i]
        S, hop = self.S, self.fc.hop_length
        t0 = int(rng.integers(max(1, len(mel) - S + 1)))
        m = mel[t0:t0 + S]
        w = wav[t0 * hop:(t0 + S - 1) * hop]
        if len(m) < S:  # a short utterance: silence after it
            m = np.concatenate([m, np.full((S - len(m), mel.shape[1]), self.floor, np.float32)])
        return m, np.pad(w, (0, (S - 1) * hop - len(w)))

    def __iter__(self):
        rank, world = rank_world()
        order = EpochShards(len(self.pairs), self.seed, rank, world)
        rng = np.random.default_rng([self.seed, self.start_step, rank])  # DDP: each rank its own offsets
        k = self.start_step * self.bs  # a resumed run continues the order where it stopped
        while True:
            picks = order.take(k, self.bs)
            k += self.bs
            segs = [self.segment(int(i), rng) for i in picks]
            yield {"mel": torch.from_numpy(np.stack([s[0] for s in segs])),
                   "wav": torch.from_numpy(np.stack([s[1] for s in segs])), "index": torch.from_numpy(picks)}


# ---- the Lightning module --------------------------------------------------------------------------
def build_generator(cfg: VocoderTrainConfig, fc: FeatureConfig, mel_mean=None, mel_std=None) -> torch.nn.Module:
    return GENERATORS[cfg.generator][0](cfg.generator_conf, fc, mel_mean, mel_std)


class VocoderTask(L.LightningModule):
    def __init__(self, cfg: VocoderTrainConfig, fc: FeatureConfig, mel_mean: np.ndarray, mel_std: np.ndarray,
                 dev: list[tuple[str, np.ndarray, np.ndarray]], exp_dir: str | None = None):
        super().__init__()
        self.cfg, self.fc, self.dev, self.exp_dir = cfg, fc, dev, exp_dir
        self.generator = build_generator(cfg, fc, mel_mean, mel_std)
        self.discriminator = Discriminators(cfg.discriminator)
        self.automatic_optimization = False
        self.train_minutes = 0.0  # summed over resumes (the runner's TimeBudget; in checkpoints)
        self.version = code_version()
        self._val: list[float] = []

    def _clip(self, module: torch.nn.Module) -> None:
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.cfg.optim.grad_clip)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        c = self.cfg.loss
        opt_g, opt_d = self.optimizers()
        y, y_hat = batch["wav"], self.generator(batch["mel"])
        adversarial = self.global_step >= c.disc_start_step
        logs = {}
        if adversarial:
            real, _ = self.discriminator(y)
            fake, _ = self.discriminator(y_hat.detach())
            loss_d = discriminator_loss(real, fake, c.gan_loss)
            opt_d.optimizer.zero_grad(set_to_none=True)  # the raw optimizer: not counted as a global step
            self.manual_backward(loss_d)
            self._clip(self.discriminator)
            opt_d.optimizer.step()
            logs["loss_d"] = loss_d.detach()
        mel_l1 = F.l1_loss(log_mel(y_hat, self.fc), log_mel(y, self.fc))
        loss_g = c.mel_weight * mel_l1
        if c.stft_weight > 0:
            stft = stft_loss(y_hat, y, c.stft_resolutions)
            loss_g = loss_g + c.stft_weight * stft
            logs["stft"] = stft.detach()
        if adversarial:
            _, real_feats = self.discriminator(y)
            fake, fake_feats = self.discriminator(y_hat)
            adv, fm = generator_adv_loss(fake, c.gan_loss), feature_matching_loss(real_feats, fake_feats)
            loss_g = loss_g + c.adv_weight * adv + c.fm_weight * fm
            logs.update(adv_g=adv.detach(), fm=fm.detach())
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        self._clip(self.generator)
        opt_g.step()
        logs.update(loss_g=loss_g.detach(), mel_l1=mel_l1.detach())
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=y.shape[0])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        mel = batch["mel"]
        y_hat = self.generator(mel)
        m = log_mel(y_hat, self.fc)
        n = min(m.shape[1], mel.shape[1])
        self._val.append(float((m[:, :n] - mel[:, :n]).abs().mean()))
        if batch_idx == 0 and self.exp_dir and self.trainer.is_global_zero:
            path = os.path.join(self.exp_dir, "samples", f"step{self.global_step:07d}_{batch['utt']}.wav")
            wav = y_hat[0].float().cpu().numpy()
            atomic_write_wav(path, wav * min(1.0, 0.99 / max(1e-9, float(np.abs(wav).max()))), self.fc.sample_rate)

    def on_validation_epoch_end(self) -> None:
        if self._val:
            self.log("val/mel_l1", float(np.mean(self._val)))
        self.log("minutes", self.train_minutes)
        self._val = []

    def val_dataloader(self) -> DataLoader:
        items = [{"utt": u, "mel": torch.from_numpy(m)[None]} for u, m, _ in self.dev]
        return DataLoader(items, batch_size=None)

    def configure_optimizers(self):
        o = self.cfg.optim
        mk = lambda m: torch.optim.AdamW(m.parameters(), lr=o.lr, betas=tuple(o.betas),  # noqa: E731
                                         weight_decay=o.weight_decay)
        return [mk(self.generator), mk(self.discriminator)]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["speechkd"] = {"kind": "vocoder", "config": to_dict(self.cfg), "feature_config": to_dict(self.fc),
                                  "version": self.version, "train_minutes": self.train_minutes}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.train_minutes = float(checkpoint.get("speechkd", {}).get("train_minutes", 0.0))


# ---- the run ---------------------------------------------------------------------------------------
class VocoderJob(Job):
    """GAN training of a generator on random segments (module docstring)."""

    command = "speechkd train-vocoder"
    kind = "vocoder"
    resumable = RESUMABLE
    loss_key = "train/mel_l1"  # the adversarial terms need not fall; the reconstruction must

    def __init__(self, cfg: VocoderTrainConfig):
        self.config = cfg

    def prepare(self, exp_dir: str) -> None:
        d = self.config.data
        if not d.feats_dir or not (d.data_dir or d.teacher_dir):
            raise ConfigError("data.feats_dir and data.data_dir (or data.teacher_dir) must be set",
                              hint="pass --feats DUMP/feats --data DATA (or --teacher-audio DIR)")
        self.fc = FeatureConfig.load(os.path.join(d.feats_dir, d.train_set, "feature_config.yaml"))
        check_compatible(self.fc, FeatureConfig.load(os.path.join(d.feats_dir, d.dev_set, "feature_config.yaml")),
                         f"{d.train_set} dump", f"{d.dev_set} dump", only=MEL_FIELDS)

    def config_from_checkpoint(self, meta: dict, source: str) -> VocoderTrainConfig:
        return vocoder_config_from_dict(meta["config"], source=source)

    def check_resume(self, ckpt: dict, path: str) -> None:
        check_compatible(FeatureConfig.from_dict(ckpt["speechkd"]["feature_config"]), self.fc, f"checkpoint {path}",
                         "training dump", hint="train in a new --exp dir, or use the dump the checkpoint was trained on")

    def build(self, exp_dir: str, step: int) -> tuple[VocoderTask, dict[str, Any]]:
        cfg, d, fc = self.config, self.config.data, self.fc
        stats = Stats.load(os.path.join(d.feats_dir, d.train_set, "stats.npz"))
        train = load_pairs(d.feats_dir, d.data_dir, d.train_set, fc, teacher_root=d.teacher_dir)
        dev = load_pairs(d.feats_dir, d.data_dir, d.dev_set, fc, d.max_dev_utts, teacher_root=d.teacher_dir)
        if d.teacher_dir:
            teacher = read_settings(os.path.join(d.teacher_dir, d.train_set)) or {}
            logger.info("targets: the waveforms of teacher %s for the dump's mels (%s)", teacher.get("vocoder"),
                        d.teacher_dir)
        task = VocoderTask(cfg, fc, stats.mel_mean, stats.mel_std, dev, exp_dir=exp_dir)
        logger.info("%s: %.3f M generator parameters, %.3f M discriminator; %d training utterances (%.1f min)",
                    cfg.generator, sum(p.numel() for p in task.generator.parameters()) / 1e6,
                    sum(p.numel() for p in task.discriminator.parameters()) / 1e6, len(train),
                    sum(len(w) for _, _, w in train) / fc.sample_rate / 60)
        batches = SegmentBatches(train, fc, d.segment_frames, d.batch_size, cfg.trainer.seed, start_step=step)
        return task, {"train_dataloaders": DataLoader(batches, batch_size=None)}

    def strategy(self, name: str) -> str:
        # A GAN step is two backward passes, and before loss.disc_start_step the discriminators get
        # no gradient: plain DDP expects every parameter in every backward, so it must look for unused ones.
        return "ddp_find_unused_parameters_true" if name == "ddp" else name

    def finish(self, trainer, task, metrics, exp_dir: str) -> None:
        plot_curves(metrics.rows, os.path.join(exp_dir, "plots", "curves.png"),
                    ["train/mel_l1", "val/mel_l1", "train/loss_d", "train/adv_g", "train/fm", "train/stft"])


def run_vocoder_training(cfg: VocoderTrainConfig, exp_dir: str, *, progress_bar: bool | None = None,
                         callbacks: list[Callback] | None = None) -> str:
    """Train (or resume) a neural vocoder in ``exp_dir``; returns the path of the last checkpoint."""
    return run(VocoderJob(cfg), exp_dir, progress_bar=progress_bar, callbacks=callbacks)

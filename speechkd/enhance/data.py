"""SE training batches: random crops of in-memory audio, drawn from one seeded generator.

What a batch holds depends on the method (:mod:`speechkd.enhance.config`); every
random choice (utterances, crop offsets, noise clips, SNRs, remix permutations)
is made here, so training steps are pure functions of their batch. The noisy
speech comes from ``data.train_dir`` only: the clean speech is read for
``method: clean`` alone (from ``data.clean_dir``), never otherwise.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction

import numpy as np
import torch
from torch.utils.data import IterableDataset

from speechkd.audio import load_audio
from speechkd.data.kaldi import read_datadir
from speechkd.data.shards import EpochShards, rank_world
from speechkd.enhance.config import REMIX, SETrainConfig
from speechkd.enhance.mixing import fit_noise
from speechkd.enhance.remix import derangement
from speechkd.errors import DataDirError
from speechkd.utils.paths import safe_child

logger = logging.getLogger(__name__)


def load_datadir_audio(path: str, sr: int, max_utts: int = 0) -> dict[str, np.ndarray]:
    """{utt: float32 waveform} of a data dir (first ``max_utts`` in C order when > 0)."""
    dd = read_datadir(path)
    utts = dd.utts[:max_utts] if max_utts > 0 else dd.utts
    if not utts:
        raise DataDirError("data dir has no utterances", path=path)
    out = {}
    for u in utts:
        entry, seg = dd.audio(u)
        out[u] = load_audio(entry, sample_rate=sr, utt=u, segment=seg)[0]
    return out


def load_estimates(est_dir: str, utts: list[str], sr: int) -> dict[str, np.ndarray]:
    """{utt: teacher estimate} from ``<est_dir>/<utt>.wav`` for every utterance of the training set."""
    if not os.path.isdir(est_dir):
        raise DataDirError("teacher estimates directory does not exist", path=est_dir,
                           hint="run stage 3 (speechkd enhance --model exp/teacher_... --data-dir ... --out-dir ...)")
    out = {}
    for u in utts:
        path = safe_child(est_dir, u, ".wav")
        if not os.path.exists(path):
            raise DataDirError("no teacher estimate for this training utterance", path=path, utt=u,
                               hint="rerun stage 3 over the whole training set")
        out[u] = load_audio(path, sample_rate=sr, utt=u)[0]
    return out


def crop(x: np.ndarray, n: int, offset: int) -> np.ndarray:
    """x[offset:offset + n], zero-padded at the end to n samples."""
    seg = x[offset:offset + n]
    return seg if len(seg) == n else np.pad(seg, (0, n - len(seg)))


def speed(x: np.ndarray, factor: float, n: int) -> np.ndarray:
    """``x`` played ``factor`` times faster (resampled by 1/factor, polyphase; tempo and pitch change
    together, as Kaldi's speed perturbation), cut or zero-padded to ``n`` samples."""
    from scipy.signal import resample_poly

    f = Fraction(factor).limit_denominator(100)
    y = resample_poly(x, f.denominator, f.numerator).astype(np.float32)
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


class SEBatches(IterableDataset):
    """Endless batches {"y", "index" (of ``utts``), "offset" (of the crop), and per method "extra" |
    "clean" | "s_hat", "snr", "perm", "use_extra"} as tensors."""

    def __init__(self, cfg: SETrainConfig, start_step: int = 0):
        super().__init__()
        d = cfg.data
        self.cfg, self.start_step = cfg, start_step
        self.length = int(round(d.segment_seconds * d.sample_rate))
        self.noisy = load_datadir_audio(d.train_dir, d.sample_rate)
        self.utts = sorted(self.noisy, key=str.encode)
        self.extra = list(load_datadir_audio(d.extra_noise_dir, d.sample_rate).values()) \
            if cfg.method == "nytt" or cfg.remix.extra_noise > 0 else []
        self.paired: dict[str, np.ndarray] = {}
        if cfg.method == "clean":
            self.paired = load_datadir_audio(d.clean_dir, d.sample_rate)
        elif cfg.method in REMIX and d.estimates_dir:
            self.paired = load_estimates(d.estimates_dir, self.utts, d.sample_rate)
        for u in self.utts if self.paired else ():
            if u not in self.paired or len(self.paired[u]) != len(self.noisy[u]):
                raise DataDirError("paired audio missing or of another length than the noisy utterance",
                                   path=d.clean_dir or d.estimates_dir, utt=u)
        minutes = sum(len(x) for x in self.noisy.values()) / d.sample_rate / 60
        logger.info("training data: %d noisy utterances (%.1f min) from %s%s", len(self.utts), minutes, d.train_dir,
                    f"; {len(self.extra)} extra noise clips" if self.extra else "")

    def batch(self, rng: np.random.Generator, picks: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """One batch of crops of the utterances ``picks`` (indices into ``utts``; None: drawn from ``rng``)."""
        d, n, bs = self.cfg.data, self.length, self.cfg.data.batch_size
        picks = rng.integers(len(self.utts), size=bs) if picks is None else picks
        ys, paired, offsets = [], [], []
        for i in picks:
            u = self.utts[int(i)]
            # augmentation draws only when on, so un-augmented runs keep their random stream
            f = float(d.speed_perturb[int(rng.integers(len(d.speed_perturb)))]) if d.speed_perturb else 1.0
            m = n if f == 1.0 else int(round(n * f))  # source samples that play in n at speed f
            off = int(rng.integers(max(1, len(self.noisy[u]) - m + 1)))
            gain = 10.0 ** (rng.uniform(*d.gain_db) / 20.0) if d.gain_db != [0.0, 0.0] else 1.0
            offsets.append(off)
            pair = [self.noisy[u]] + ([self.paired[u]] if self.paired else [])
            pair = [crop(x, m, off) if f == 1.0 else speed(crop(x, m, off), f, n) for x in pair]
            pair = [x if gain == 1.0 else (gain * x).astype(np.float32) for x in pair]
            ys.append(pair[0])
            if self.paired:
                paired.append(pair[1])
        out = {"y": torch.from_numpy(np.stack(ys)), "index": torch.from_numpy(picks.astype(np.int64)),
               "offset": torch.tensor(offsets, dtype=torch.int64)}
        if self.paired:
            out["clean" if self.cfg.method == "clean" else "s_hat"] = torch.from_numpy(np.stack(paired))
        if self.cfg.method == "nytt":
            out["extra"] = self.extra_crops(rng, bs, n)
        if self.cfg.method != "clean":
            out["snr"] = torch.from_numpy(rng.uniform(d.snr_range[0], d.snr_range[1], size=bs).astype(np.float32))
        if self.cfg.method in REMIX:
            out["perm"] = torch.from_numpy(derangement(bs, rng))
        if self.cfg.method in REMIX and self.cfg.remix.extra_noise > 0:  # drawn last: the remix draws stay as they were
            out["extra"] = self.extra_crops(rng, bs, n)
            out["use_extra"] = torch.from_numpy(rng.random(bs) < self.cfg.remix.extra_noise)
        return out

    def extra_crops(self, rng: np.random.Generator, bs: int, n: int) -> torch.Tensor:
        """(bs, n) crops of randomly drawn extra-noise clips n'."""
        clips = rng.integers(len(self.extra), size=bs)
        return torch.from_numpy(np.stack([fit_noise(self.extra[int(c)], n, rng) for c in clips]).astype(np.float32))

    def __iter__(self):
        rank, world = rank_world()
        # DDP: each rank draws its own crops, gains and noises (the same seed would give every rank the
        # same ones), and the utterances come from an epoch order dealt to the ranks, so that together
        # they use every utterance once per epoch. One process keeps its stream (utterances drawn with
        # replacement), so measured runs reproduce.
        rng = np.random.default_rng([self.cfg.trainer.seed, self.start_step] + ([rank] if rank else []))
        order = EpochShards(len(self.utts), self.cfg.trainer.seed, rank, world) if world > 1 else None
        k = self.start_step * self.cfg.data.batch_size  # a resumed run continues the order
        while True:
            picks = None
            if order is not None:
                picks = order.take(k, self.cfg.data.batch_size)
                k += len(picks)
            yield self.batch(rng, picks)


def dev_batches(cfg: SETrainConfig, seed: int = 12345) -> list[dict[str, torch.Tensor]]:
    """Fixed validation batches, the same for every method: dev noisy speech y plus extra noise
    at SNRs in data.snr_range (noisy-target pairs: no clean speech needed)."""
    d = cfg.data
    n = int(round(d.segment_seconds * d.sample_rate))
    dev = load_datadir_audio(d.dev_dir, d.sample_rate, d.max_dev_utts)
    extra = list(load_datadir_audio(d.extra_noise_dir, d.sample_rate).values())
    rng = np.random.default_rng(seed)
    ys, ns = [], []
    for u in sorted(dev, key=str.encode):
        ys.append(crop(dev[u], n, int(rng.integers(max(1, len(dev[u]) - n + 1)))))
        ns.append(fit_noise(extra[int(rng.integers(len(extra)))], n, rng).astype(np.float32))
    snr = rng.uniform(d.snr_range[0], d.snr_range[1], size=len(ys)).astype(np.float32)
    out = []
    for i in range(0, len(ys), d.batch_size):
        out.append({"y": torch.from_numpy(np.stack(ys[i:i + d.batch_size])),
                    "extra": torch.from_numpy(np.stack(ns[i:i + d.batch_size])),
                    "snr": torch.from_numpy(snr[i:i + d.batch_size])})
    return out


def crops_of(audio: dict[str, np.ndarray], utts: list[str], index: torch.Tensor, offset: torch.Tensor,
             n: int) -> torch.Tensor:
    """(B, n) crops of ``audio[utts[index[b]]]`` at ``offset[b]``: the same crops as a batch's y."""
    return torch.from_numpy(np.stack([crop(audio[utts[int(i)]], n, int(o)) for i, o in zip(index, offset)]))

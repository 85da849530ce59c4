"""Training data: (tokens, features) pairs joined by utterance id, batched by mel frames.

A split ``<split>`` of a dump root ``<dump>`` is::

    <dump>/tokens/<split>/tokens      <utt> tok tok ...            (speechkd text, stage 1)
    <dump>/tokens/<split>/utt2spk     <utt> <speaker>              (copied from the data dir, stage 1)
    <dump>/feats/<split>/feats.scp    <utt> data/<utt>.npz <T>     (speechkd features, stage 2)
    <dump>/feats/<split>/feature_config.yaml, stats.npz

Both files must list the same utterances: any id in one and not the other is an error
naming the utterances and both files (a stale dump is the usual cause). Batches group
utterances of similar length so that ``utterances x longest <= batch_frames`` (padding
counted, which bounds memory); batch order is shuffled per epoch with a seeded generator,
and under DDP every rank takes every world_size-th batch.

Students (models whose ``batch_needs`` name ``durations``, see :mod:`speechkd.models.fastspeech`)
also read the teacher dump of ``data.kd_mode`` (:mod:`speechkd.distill.teacher_dump`)::

    <teacher_dump_dir>/<split>/<kd_mode>/index.scp   <utt> data/<utt>.npz <num_frames>
    <teacher_dump_dir>/<split>/<kd_mode>/filtered    <utt> <reason>   (left out unless keep_filtered)

Their batches add ``durations [B, S]`` (frames per token, summing to ``mel_lens``) and, for
FastSpeech 2, ``pitch``/``energy [B, S]``: the token means of the ground-truth log-F0 (log-Hz)
and energy over those durations (:mod:`speechkd.features.average`). With ``free_running`` the
mel targets are the teacher's generated mels (sequence-level KD), with ``teacher_forced`` the
ground-truth mels.

Speakers (:mod:`speechkd.data.speakers`): with more than one speaker in the training split's
``utt2spk`` (and ``data.speakers: auto``) batches add ``spk [B]``, each utterance's row of the
speaker table; with ``data.spk_embed`` they add ``spk_emb [B, D]``. Dev utterances of speakers
the training split lacks are left out (logged): the table has no row for them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from speechkd.data.kaldi import read_table
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.features.average import token_energy, token_pitch
from speechkd.features.config import FeatureConfig
from speechkd.features.dump import read_feats_scp
from speechkd.text.tokens import TokenList, read_tokens
from speechkd.train.config import DataConfig

logger = logging.getLogger(__name__)

_SHOWN = 5  # utterance ids named in a mismatch error


@dataclass
class Utterance:
    utt: str
    token_ids: np.ndarray  # int64 [S]
    npz: str  # absolute path of the features
    frames: int
    teacher_npz: str = ""  # students: absolute path of the teacher dump's npz (durations, generated mel)
    teacher_frames: int = -1  # frames of the teacher's target (free_running: its generated mel)
    spk: str = ""  # speaker (dump/tokens/<split>/utt2spk; "" without one)
    spk_index: int = -1  # row of the model's speaker table (-1: none)
    spk_emb: np.ndarray | None = None  # external speaker embedding (data.spk_embed)

    @property
    def target_frames(self) -> int:
        """Frames of the training target (batching, length limit)."""
        return self.teacher_frames if self.teacher_frames >= 0 else self.frames


def split_paths(dump_dir: str, split: str) -> tuple[str, str]:
    """(tokens file, feats dir) of a split of a dump root."""
    return os.path.join(dump_dir, "tokens", split, "tokens"), os.path.join(dump_dir, "feats", split)


def read_split(dump_dir: str, split: str, token_list: TokenList, on_unknown: str = "error") -> list[Utterance]:
    """The utterances of a split, tokens encoded, joined with their features by id (C-sorted)."""
    tok_path, feats_dir = split_paths(dump_dir, split)
    scp = os.path.join(feats_dir, "feats.scp")
    for p, stage in ((tok_path, "speechkd text (stage 1)"), (scp, "speechkd features (stage 2)")):
        if not os.path.exists(p):
            raise SpeechkdError(f"split '{split}' has no {os.path.basename(p)}", path=p, hint=f"run {stage}")
    tokens, feats = read_tokens(tok_path), read_feats_scp(feats_dir)
    spk_path = os.path.join(os.path.dirname(tok_path), "utt2spk")
    utt2spk = read_table(spk_path) if os.path.exists(spk_path) else {}
    only_tok, only_feat = sorted(set(tokens) - set(feats)), sorted(set(feats) - set(tokens))
    if only_tok or only_feat:
        parts = []
        for ids, here, there in ((only_tok, tok_path, scp), (only_feat, scp, tok_path)):
            if ids:
                more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
                parts.append(f"{len(ids)} utterance(s) in {here} but not in {there}: {', '.join(ids[:_SHOWN])}{more}")
        raise SpeechkdError("tokens and features list different utterances: " + "; ".join(parts),
                            utt=(only_tok or only_feat)[0],
                            hint="one of them is stale: rerun stages 1 and 2 for this split")
    out = []
    for utt in sorted(tokens):
        ids = np.asarray(token_list.encode(tokens[utt], utt=utt, on_unknown=on_unknown), dtype=np.int64)
        if len(ids) == 0:
            raise SpeechkdError("utterance has no tokens", path=tok_path, utt=utt)
        out.append(Utterance(utt, ids, *feats[utt], spk=utt2spk.get(utt, "")))
    return out


def read_feature_config(dump_dir: str, split: str) -> FeatureConfig:
    path = os.path.join(split_paths(dump_dir, split)[1], "feature_config.yaml")
    if not os.path.exists(path):
        raise SpeechkdError("dump has no feature_config.yaml", path=path, hint="rerun speechkd features")
    return FeatureConfig.load(path)


class UtteranceDataset(Dataset):
    """Item i: ``{"utt", "tokens" [S], "mel" [T, n_mels]}`` (+ other npz arrays listed in ``keys``).
    Indexed by a list of indices (one batch) when used with :class:`FrameBatchSampler`."""

    def __init__(self, utts: list[Utterance], keys: tuple[str, ...] = ("mel",)):
        self.utts, self.keys = utts, keys

    def __len__(self) -> int:
        return len(self.utts)

    def load(self, i: int) -> dict:
        u = self.utts[i]
        with np.load(u.npz) as z:
            item = {k: z[k] for k in self.keys}
        if item["mel"].shape[0] != u.frames:
            raise SpeechkdError(f"features have {item['mel'].shape[0]} frames, feats.scp says {u.frames}",
                                path=u.npz, utt=u.utt, hint="the dump is stale: rerun speechkd features")
        item.update(utt=u.utt, tokens=u.token_ids)
        if u.spk_index >= 0:
            item["spk"] = u.spk_index
        if u.spk_emb is not None:
            item["spk_emb"] = u.spk_emb
        return item

    def __getitem__(self, idx: int | list[int]) -> dict | list[dict]:
        return [self.load(i) for i in idx] if isinstance(idx, (list, tuple)) else self.load(idx)


class StudentDataset(UtteranceDataset):
    """Items of :class:`UtteranceDataset` + ``durations [S]`` from the teacher dump; with ``free_running``
    the teacher's mel replaces the ground truth; with ``token_variances`` also token-level
    ``pitch``/``energy [S]`` (the frame-level lf0, vuv and energy are dropped)."""

    def __init__(self, utts: list[Utterance], kd_mode: str, token_variances: bool = False):
        super().__init__(utts, ("mel", "lf0", "vuv", "energy") if token_variances else ("mel",))
        self.kd_mode, self.token_variances = kd_mode, token_variances

    def load(self, i: int) -> dict:
        item, u = super().load(i), self.utts[i]
        try:
            with np.load(u.teacher_npz) as z:
                d = z["durations"].astype(np.int64)
                mel = z["mel"] if self.kd_mode == "free_running" else None
        except (OSError, KeyError, ValueError, EOFError) as e:
            raise SpeechkdError(f"cannot read the teacher dump ({type(e).__name__}: {e})", path=u.teacher_npz,
                                utt=u.utt, hint=f"rerun speechkd teacher-dump --kd-mode {self.kd_mode}") from None
        if mel is not None:
            item["mel"] = mel
        if len(d) != len(u.token_ids) or int(d.sum()) != len(item["mel"]) or d.min() < 0:
            raise SpeechkdError(f"{len(d)} durations summing to {int(d.sum())} frames for {len(u.token_ids)} tokens "
                                f"and a {len(item['mel'])}-frame target", path=u.teacher_npz, utt=u.utt,
                                field="durations", hint="the teacher dump is stale: rerun speechkd teacher-dump "
                                                        "on the current tokens and features")
        item["durations"] = d
        if self.token_variances:
            item["pitch"] = token_pitch(item.pop("lf0"), item.pop("vuv"), d, utt=u.utt)
            item["energy"] = token_energy(item.pop("energy"), d, utt=u.utt)
        return item


def attach_teacher_dump(utts: list[Utterance], dump_dir: str, split: str, kd_mode: str,
                        keep_filtered: bool = False) -> list[Utterance]:
    """The utterances of a split joined with the teacher dump ``<dump_dir>/<split>/<kd_mode>``; those
    it lists in ``filtered`` are left out (logged) unless ``keep_filtered``. An utterance of the
    features that the dump neither indexes nor filters, or the reverse, is an error naming both."""
    d = os.path.join(dump_dir, split, kd_mode)
    index_path, filt_path = os.path.join(d, "index.scp"), os.path.join(d, "filtered")
    if not os.path.exists(index_path):
        raise SpeechkdError(f"no {kd_mode} teacher dump of split '{split}'", path=index_path,
                            hint=f"run speechkd teacher-dump --split {split} --kd-mode {kd_mode} (stage 4), "
                                 "or point --teacher-dump at its output")
    index = {}
    for utt, value in read_table(index_path).items():  # <utt> data/<utt>.npz <num_frames>
        rel, frames = value.rsplit(maxsplit=1)
        index[utt] = (os.path.join(d, rel), int(frames))
    filtered = read_table(filt_path, allow_empty_value=True) if os.path.exists(filt_path) else {}
    ids = {u.utt for u in utts}
    only_dump = sorted(set(index) - ids)
    only_feats = sorted(ids - set(index) - set(filtered))
    if only_dump or only_feats:
        parts = []
        for bad, here, there in ((only_dump, index_path, "the tokens/features"), (only_feats, "the features",
                                                                                   f"{index_path} or {filt_path}")):
            if bad:
                more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
                parts.append(f"{len(bad)} utterance(s) in {here} but not in {there}: {', '.join(bad[:_SHOWN])}{more}")
        raise SpeechkdError("teacher dump and features list different utterances: " + "; ".join(parts),
                            utt=(only_dump or only_feats)[0],
                            hint="the teacher dump is stale: rerun speechkd teacher-dump for this split")
    out, left = [], []
    for u in utts:
        if u.utt not in index or (u.utt in filtered and not keep_filtered):
            left.append(u.utt)
            continue
        npz, frames = index[u.utt]
        if kd_mode == "teacher_forced" and frames != u.frames:
            raise SpeechkdError(f"teacher-forced dump has {frames} frames, the features {u.frames}", path=npz,
                                utt=u.utt, hint="the teacher dump is stale: rerun speechkd teacher-dump")
        out.append(dataclasses.replace(u, teacher_npz=npz, teacher_frames=frames))
    if left:
        logger.warning("%s/%s: left out %d utterance(s) the teacher dump filtered (%s): %s%s", split, kd_mode,
                       len(left), filt_path, ", ".join(f"{x} ({filtered.get(x, 'no durations')})" for x in left[:_SHOWN]),
                       f" and {len(left) - _SHOWN} more" if len(left) > _SHOWN else "")
    return out


def pad_stack(arrays: list[np.ndarray], value: float = 0.0) -> torch.Tensor:
    """Stack arrays of different first-axis lengths, padding at the end."""
    n = max(a.shape[0] for a in arrays)
    out = np.full((len(arrays), n, *arrays[0].shape[1:]), value, dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return torch.from_numpy(out)


def collate(items: list[dict]) -> dict:
    """A batch: ``utts``, ``tokens [B, S]`` (0 = <pad>), ``token_lens``, ``mels [B, T, n_mels]``,
    ``mel_lens``, ``spk [B]`` (multi-speaker), and every other array padded with zeros along its first axis."""
    batch: dict = {"utts": [it["utt"] for it in items],
                   "tokens": pad_stack([it["tokens"] for it in items]),
                   "token_lens": torch.tensor([len(it["tokens"]) for it in items]),
                   "mels": pad_stack([it["mel"] for it in items]),
                   "mel_lens": torch.tensor([len(it["mel"]) for it in items])}
    if "spk" in items[0]:
        batch["spk"] = torch.tensor([it["spk"] for it in items], dtype=torch.long)
    for k in items[0]:
        if k not in ("utt", "tokens", "mel", "spk"):
            batch[k] = pad_stack([np.asarray(it[k]) for it in items])
    return batch


class FrameBatchSampler(Sampler):
    """Yields lists of indices: length-sorted buckets with ``count x longest <= batch_frames``."""

    def __init__(self, frames: list[int], batch_frames: int, shuffle: bool, seed: int = 0):
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        order = sorted(range(len(frames)), key=lambda i: frames[i])
        self.batches: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            if cur and (len(cur) + 1) * frames[i] > batch_frames:
                self.batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            self.batches.append(cur)

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at each epoch
        self.epoch = epoch

    @staticmethod
    def _rank_world() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __iter__(self):
        batches = list(self.batches)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(batches)
        rank, world = self._rank_world()
        if world > 1:  # equal counts on every rank (DDP needs them): wrap around
            n = math.ceil(len(batches) / world) * world
            batches = (batches * math.ceil(n / len(batches)))[:n][rank::world]
        return iter(batches)

    def __len__(self) -> int:
        return math.ceil(len(self.batches) / self._rank_world()[1])


def check_kd_mode(cfg: DataConfig, needs: tuple[str, ...]) -> None:
    """A student needs a KD mode; FastSpeech 2's token pitch/energy need ground-truth-aligned durations."""
    if "durations" in needs and cfg.kd_mode == "none":
        raise ConfigError("this model trains on teacher durations: set the KD mode", field="data.kd_mode",
                          hint="--kd-mode free_running (the teacher's mels, sequence-level KD) or teacher_forced "
                               "(ground-truth mels)")
    if "pitch" in needs and cfg.kd_mode == "free_running":
        raise ConfigError("token pitch/energy targets come from the ground-truth features, so their durations must "
                          "split the ground-truth frames", field="data.kd_mode", hint="use --kd-mode teacher_forced")
    if not needs and cfg.kd_mode != "none":
        logger.warning("data.kd_mode=%s is ignored: this model trains on ground-truth mels only", cfg.kd_mode)

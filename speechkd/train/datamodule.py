"""The Lightning data module of acoustic-model training: the splits of :mod:`speechkd.train.data`
(tokens, features, teacher dump, speakers) as Lightning's train and dev dataloaders.

Apart from :mod:`speechkd.train.data` so that what only reads a dump (the teacher dump, the ESPnet
interop) imports torch but not Lightning.
"""

from __future__ import annotations

import logging
import os

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from speechkd.data.speakers import (Speakers, VarianceAccumulator, embedding_for, read_embeddings, speaker_list,
                                    speaker_means)
from speechkd.errors import SpeechkdError
from speechkd.features.config import check_compatible
from speechkd.features.stats import Stats
from speechkd.text.tokens import TokenList
from speechkd.train.config import DataConfig
from speechkd.train.data import (FrameBatchSampler, StudentDataset, Utterance, UtteranceDataset, attach_teacher_dump,
                                 check_kd_mode, collate, read_feature_config, read_split, split_paths)

logger = logging.getLogger(__name__)


class TTSDataModule(L.LightningDataModule):
    """Reads the token list, the FeatureConfig and statistics of the training dump at construction
    (the model needs them), and the splits lazily."""

    def __init__(self, cfg: DataConfig, seed: int = 0, keys: tuple[str, ...] = ("mel",),
                 needs: tuple[str, ...] = ()):
        """``needs``: the model's ``batch_needs`` (e.g. ``("durations", "pitch", "energy")``)."""
        super().__init__()
        self.cfg, self.seed, self.keys, self.needs = cfg, seed, keys, tuple(needs)
        check_kd_mode(cfg, self.needs)
        self.token_list = TokenList.load(cfg.token_list)
        self.feature_config = read_feature_config(cfg.dump_dir, cfg.train_set)
        dev_fc = read_feature_config(cfg.dump_dir, cfg.dev_set)
        check_compatible(self.feature_config, dev_fc, f"{cfg.train_set} dump", f"{cfg.dev_set} dump",
                         hint="dump every split with the same conf/feats.yaml")
        self.stats = Stats.load(os.path.join(split_paths(cfg.dump_dir, cfg.train_set)[1], "stats.npz"))
        self.train_utts: list[Utterance] | None = None
        self.dev_utts: list[Utterance] | None = None
        self.speakers = Speakers()  # set by setup()

    def setup(self, stage: str | None = None) -> None:
        if self.train_utts is not None:
            return
        c = self.cfg
        utts = read_split(c.dump_dir, c.train_set, self.token_list)
        if self.needs:
            utts = attach_teacher_dump(utts, self.teacher_dump_dir, c.train_set, c.kd_mode, c.keep_filtered)
        self.train_utts = [u for u in utts if u.target_frames <= c.max_frames]
        if len(self.train_utts) < len(utts):
            logger.warning("left out %d training utterance(s) longer than data.max_frames=%d",
                           len(utts) - len(self.train_utts), c.max_frames)
        if not self.train_utts:
            raise SpeechkdError("no training utterances", path=c.dump_dir)
        self.speakers = self._speakers(self.train_utts)
        # dev/test text may hold phones the training text lacks: map them to <unk> there
        self.dev_utts = read_split(c.dump_dir, c.dev_set, self.token_list, on_unknown="map")
        if self.needs:
            self.dev_utts = attach_teacher_dump(self.dev_utts, self.teacher_dump_dir, c.dev_set, c.kd_mode,
                                                c.keep_filtered)
        self.dev_utts = self._with_speakers(self.dev_utts, c.dev_set)
        if c.max_dev_utts > 0:
            self.dev_utts = self.dev_utts[: c.max_dev_utts]
        if self.needs and not self.dev_utts:
            raise SpeechkdError("no dev utterances left after the teacher dump's filter", path=self.teacher_dump_dir,
                                hint="set data.keep_filtered=true, or retrain the teacher until it aligns")
        logger.info("data: %d training utterances (%d frames), %d dev utterances%s", len(self.train_utts),
                    sum(u.target_frames for u in self.train_utts), len(self.dev_utts),
                    f"; {c.kd_mode} teacher dump {self.teacher_dump_dir}" if self.needs else "")

    def _speakers(self, utts: list[Utterance]) -> Speakers:
        """The speaker table of the training utterances (and their embeddings, per-speaker pitch and
        energy statistics); the utterances get their rows."""
        c = self.cfg
        ids = speaker_list({u.utt: u.spk for u in utts}) if c.speakers == "auto" else []
        if ids == [""]:  # a dump without utt2spk (written before speakers existed): one voice
            ids = []
        if "" in ids:  # some utterances have a speaker, others not: a broken dump
            raise SpeechkdError("some training utterances have no speaker in utt2spk",
                                path=os.path.join(split_paths(c.dump_dir, c.train_set)[0]),
                                utt=next(u.utt for u in utts if not u.spk), hint="rerun speechkd text (stage 1)")
        sp = Speakers(ids=ids if len(ids) > 1 else [])
        if c.spk_embed:
            self._embeddings = read_embeddings(c.spk_embed)
            vecs = {u.utt: embedding_for(self._embeddings, u.utt, u.spk, c.spk_embed) for u in utts}
            sp.embed_dim = len(next(iter(vecs.values())))
            sp.embeddings = speaker_means(vecs, {u.utt: u.spk for u in utts})
        if sp.n_table:
            acc = VarianceAccumulator()
            for u in utts:
                with np.load(u.npz) as z:
                    if {"lf0", "vuv", "energy"} <= set(z.files):
                        acc.add(u.spk, z["lf0"], z["vuv"], z["energy"])
            sp.variance_stats = acc.result()
            logger.info("speakers: %d in the table (%s)", sp.n_table, ", ".join(sp.ids[:10]) +
                        (" ..." if sp.n_table > 10 else ""))
        self.speakers = sp
        return sp if not sp.conditioned else self._assign(sp, utts)

    def _assign(self, sp: Speakers, utts: list[Utterance]) -> Speakers:
        c = self.cfg
        for u in utts:
            if sp.n_table:
                u.spk_index = sp.ids.index(u.spk)
            if sp.embed_dim:
                u.spk_emb = embedding_for(self._embeddings, u.utt, u.spk, c.spk_embed)
        return sp

    def _with_speakers(self, utts: list[Utterance], split: str) -> list[Utterance]:
        """Dev utterances with their speaker rows; those of speakers without a row are left out."""
        sp = self.speakers
        if not sp.conditioned:
            return utts
        known = set(sp.ids) if sp.n_table else None
        kept = [u for u in utts if known is None or u.spk in known]
        if utts and not kept:
            raise SpeechkdError(f"no {split} utterance is spoken by a training speaker: a speaker table has no row "
                                "for voices it never heard", path=split_paths(self.cfg.dump_dir, split)[0],
                                hint="validate on held-out utterances of training speakers, or train "
                                     "speaker-agnostic with data.speakers=none")
        if len(kept) < len(utts):
            logger.warning("%s: left out %d utterance(s) of speakers the training split lacks (no table row)",
                           split, len(utts) - len(kept))
        self._assign(sp, kept)
        return kept

    @property
    def teacher_dump_dir(self) -> str:
        return self.cfg.teacher_dump_dir or os.path.join(self.cfg.dump_dir, "teacher")

    def _loader(self, utts: list[Utterance], shuffle: bool) -> DataLoader:
        sampler = FrameBatchSampler([u.target_frames for u in utts], self.cfg.batch_frames, shuffle, self.seed)
        ds = (StudentDataset(utts, self.cfg.kd_mode, token_variances="pitch" in self.needs) if self.needs
              else UtteranceDataset(utts, self.keys))
        # batch_size=None: the sampler yields whole batches, and Lightning finds its set_epoch
        return DataLoader(ds, sampler=sampler, batch_size=None, collate_fn=collate,
                          num_workers=self.cfg.num_workers, persistent_workers=self.cfg.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.train_utts, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.dev_utts, shuffle=False)

"""Predicted-mel dump: an acoustic model's own mels for the utterances of a split, as a feature
dump (``speechkd predict-mels``), the input of vocoder distillation on predicted mels.

The model runs teacher-forced, as in training: a student (FastSpeech, FastSpeech 2) expands its
tokens by the teacher dump's durations (and FastSpeech 2 takes the dump's pitch and energy),
the autoregressive teacher decodes from the previous ground-truth frames. Its mels are then the
ones it makes for this text with this timing: "ground-truth-aligned" mels (Shen et al. 2018,
sec. 3.2, WaveNet trained on Tacotron 2's teacher-forced predictions; Kong et al. 2020, sec. 4.4,
HiFi-GAN fine-tuned on them). With ``kd_mode: teacher_forced`` durations they have exactly the
recording's frames, so a control vocoder can still train on the recordings; with
``free_running`` durations they have the teacher's free-running length, and only a teacher
vocoder's waveform is a target for them (``speechkd vocode`` of this dump, then
``speechkd train-vocoder --teacher-audio``).

Layout of ``out`` (that of ``speechkd features``, so every mel reader takes it)::

    data/<utt>.npz          mel float32 [T, n_mels] (raw log-mel, never normalised)
    feats.scp               <utt> data/<utt>.npz <T>
    feature_config.yaml     the model's FeatureConfig (= the dump's, checked)
    stats.npz               copied from the ground-truth dump of the split (the vocoder standardises with it)
    predict_info.json       model checkpoint and step, split, kd_mode, utterances

Writes are atomic; a rerun with the same settings keeps the utterances already written.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil

import numpy as np
import torch

from speechkd.checkpoints import load_model, resolve_device
from speechkd.data.kaldi import write_table
from speechkd.errors import SpeechkdError
from speechkd.features.config import check_compatible
from speechkd.train.data import split_paths
from speechkd.train.datamodule import TTSDataModule
from speechkd.train.config import loaded_train_config
from speechkd.train.module import SPEAKER_KEYS
from speechkd.utils.io import atomic_open, atomic_write_json
from speechkd.utils.outputs import claim_output_dir
from speechkd.utils.paths import safe_child

logger = logging.getLogger(__name__)


def dump_predicted_mels(model: str, split: str, out: str, *, dump_dir: str = "", teacher_dump_dir: str = "",
                        kd_mode: str = "", device: str = "cpu", overwrite: bool = False) -> dict:
    """Write the teacher-forced mels of ``model`` (exp dir or checkpoint) for every utterance of
    ``split`` into ``out`` (module docstring); data locations and KD mode default to the model's
    training config. Returns the figures of ``predict_info.json``."""
    device = resolve_device(device)
    lm = load_model(model, device)
    over = {"dev_set": split, "max_dev_utts": 0, "keep_filtered": True, "num_workers": 0}
    over.update({k: v for k, v in (("dump_dir", dump_dir), ("teacher_dump_dir", teacher_dump_dir),
                                   ("kd_mode", kd_mode)) if v})
    data = dataclasses.replace(loaded_train_config(lm).data, **over)
    # the training split's speaker table, as the model's; the split to predict is the "dev" set
    dm = TTSDataModule(data, needs=lm.model.batch_needs)
    dm.setup()
    check_compatible(lm.feature_config, dm.feature_config, lm.path, "the dump")
    if list(dm.token_list.tokens) != list(lm.token_list.tokens):
        raise SpeechkdError("the dump's token list differs from the model's", path=data.token_list, field="--model")
    settings = {"model": os.path.abspath(lm.path), "step": lm.step, "split": split,
                "dump_dir": os.path.abspath(data.dump_dir), "kd_mode": data.kd_mode if lm.model.batch_needs else "none"}
    claim_output_dir(out, settings, verb="predict-mels", overwrite=overwrite)
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    index: dict[str, str] = {}
    done = 0
    with torch.no_grad():
        for batch in dm.val_dataloader():
            paths = [safe_child(os.path.join(out, "data"), u, ".npz") for u in batch["utts"]]
            lens = batch["mel_lens"].tolist()
            if all(os.path.exists(p) for p in paths):
                index.update({u: f"data/{u}.npz {T}" for u, T in zip(batch["utts"], lens)})
                continue
            b = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            extra = {k: b[k] for k in lm.model.batch_needs}
            extra.update({k: b[k] for k in SPEAKER_KEYS if k in b})
            res = lm.model(b["tokens"], b["token_lens"], lm.normalize(b["mels"]), b["mel_lens"], **extra)
            if "mel_after" not in res:
                raise SpeechkdError(f"a {lm.name!r} model has no teacher-forced mel prediction", path=lm.path,
                                    field="--model", hint="give a Transformer-TTS, FastSpeech or FastSpeech 2 exp dir")
            mels = lm.denormalize(res["mel_after"]).float().cpu().numpy()
            for u, p, T, m in zip(batch["utts"], paths, lens, mels):
                with atomic_open(p, "wb") as f:
                    np.savez(f, mel=m[:T].astype(np.float32))
                index[u] = f"data/{u}.npz {T}"
                done += 1
    if not index:
        raise SpeechkdError(f"no utterances of {split} to predict", path=data.dump_dir)
    write_table(os.path.join(out, "feats.scp"), index)
    lm.feature_config.save(os.path.join(out, "feature_config.yaml"))
    stats = os.path.join(split_paths(data.dump_dir, split)[1], "stats.npz")
    if os.path.exists(stats):
        shutil.copyfile(stats, os.path.join(out, "stats.npz"))
    info = {**settings, "utterances": len(index), "predicted_now": done}
    atomic_write_json(os.path.join(out, "predict_info.json"), info)
    logger.info("%s: teacher-forced mels of %d utterances of %s (%d predicted now)", out, len(index), split, done)
    return info

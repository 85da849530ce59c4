"""Copy synthesis: ground-truth (or any dumped) log-mels -> waveforms through a vocoder.

The "resynthesis" system of every recipe: the upper bound an acoustic model
can reach with that vocoder, evaluated and listened to beside the students.
The dump's ``feature_config.yaml`` is the vocoder's input contract: a vocoder
with its own FeatureConfig (a trained one) must match it, field by field.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import torch

from speechkd.config import from_dict
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.models.vocoders import VOCODERS
from speechkd.utils.io import atomic_write_json, atomic_write_wav

log = logging.getLogger(__name__)


def read_feats_index(feats_dir: str) -> list[tuple[str, str, int]]:
    """(utt, npz path, frames) of a feature dump's ``feats.scp``."""
    scp = os.path.join(feats_dir, "feats.scp")
    if not os.path.exists(scp):
        raise SpeechkdError("no feats.scp: not a feature dump", path=feats_dir,
                            hint="run `speechkd features` (recipe stage 2) first")
    out = []
    with open(scp, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 3:
                raise SpeechkdError(f"line {n}: expected '<utt> <path> <frames>'", path=scp)
            out.append((parts[0], os.path.join(feats_dir, parts[1]), int(parts[2])))
    return out


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def build_vocoder(name: str, feats: FeatureConfig, options: dict | None = None, device: str = "cpu"):
    if name not in VOCODERS:
        raise SpeechkdError(f"unknown vocoder '{name}'; known: {', '.join(VOCODERS)}", field="--vocoder")
    cls, cfg_cls = VOCODERS[name]
    return cls(feats, from_dict(cfg_cls, options or {}, source="--vocoder options"), device=device)


def vocode_dump(feats_dir: str, out: str, vocoder: str = "griffin_lim", options: dict | None = None, *,
                num_utts: int = 0, device: str = "auto") -> dict:
    """Vocode the first ``num_utts`` (0: all) utterances of a dump into ``out/<utt>.wav``.
    Wavs already there are kept (a killed run resumes); returns timing figures."""
    feats = FeatureConfig.load(os.path.join(feats_dir, "feature_config.yaml"))
    index = read_feats_index(feats_dir)
    if num_utts > 0:
        index = index[:num_utts]
    device = resolve_device(device)
    voc = build_vocoder(vocoder, feats, options, device)
    os.makedirs(out, exist_ok=True)
    done = seconds = audio_s = 0.0
    for utt, path, frames in index:
        wav_path = os.path.join(out, f"{utt}.wav")
        if os.path.exists(wav_path):
            continue
        with np.load(path) as z:
            mel = torch.from_numpy(z["mel"][:frames].astype(np.float32))
        t0 = time.perf_counter()
        wav = voc(mel[None])[0].cpu().numpy()
        seconds += time.perf_counter() - t0
        audio_s += len(wav) / feats.sample_rate
        peak = float(np.abs(wav).max())
        if peak > 1.0:  # never clip: scale down and say so
            log.warning("%s: peak %.2f > 1, scaled to 0.99", utt, peak)
            wav = wav * (0.99 / peak)
        atomic_write_wav(wav_path, wav.astype(np.float32), feats.sample_rate)
        done += 1
    info = {"vocoder": vocoder, "options": options or {}, "device": device, "feats_dir": feats_dir,
            "utterances": len(index), "vocoded_now": int(done), "seconds": round(seconds, 3),
            "rtf": round(seconds / audio_s, 4) if audio_s else None}
    atomic_write_json(os.path.join(out, "vocode_info.json"), info)
    log.info("vocoded %d utterances into %s (RTF %s)", done, out, info["rtf"])
    return info

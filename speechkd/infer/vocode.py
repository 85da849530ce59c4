"""Copy synthesis: ground-truth (or any dumped) log-mels -> waveforms through a vocoder.

The "resynthesis" system of every recipe: the upper bound an acoustic model
can reach with that vocoder, evaluated and listened to beside the students.
The dump's ``feature_config.yaml`` is the vocoder's input contract: a vocoder
with its own FeatureConfig (a trained one, given as its exp dir) must match it, field by field.
WORLD is not a mel vocoder: its copy synthesis analyses the data dir's waveforms
(:func:`resynthesize_datadir`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Collection

import numpy as np
import torch

from speechkd.audio import load_audio
from speechkd.checkpoints import load_vocoder, resolve_device
from speechkd.data.kaldi import read_datadir
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.features.dump import read_feats_scp
from speechkd.utils.io import atomic_write_json, atomic_write_wav
from speechkd.utils.outputs import claim_output_dir
from speechkd.utils.paths import safe_child

log = logging.getLogger(__name__)


def _write(wav_path: str, wav: np.ndarray, sr: int, utt: str) -> None:
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak > 1.0:  # never clip: scale down and say so
        log.warning("%s: peak %.2f > 1, scaled to 0.99", utt, peak)
        wav = wav * (0.99 / peak)
    atomic_write_wav(wav_path, wav.astype(np.float32), sr)


def vocode_dump(feats_dir: str, out: str, vocoder: str = "griffin_lim", options: dict | None = None, *,
                num_utts: int = 0, device: str = "auto", overwrite: bool = False,
                utts: Collection[str] | None = None) -> dict:
    """Vocode the first ``num_utts`` (0: all) utterances of a dump (only those in ``utts`` when
    given) into ``out/<utt>.wav``. Wavs already there are kept (a killed run resumes) when the same
    vocoder checkpoint made them; returns timing figures."""
    feats = FeatureConfig.load(os.path.join(feats_dir, "feature_config.yaml"))
    index = [(u, v) for u, v in read_feats_scp(feats_dir).items() if utts is None or u in utts]
    if num_utts > 0:
        index = index[:num_utts]
    device = resolve_device(device)
    voc = load_vocoder(vocoder, feats, device, options)
    if voc.needs_wav:
        raise SpeechkdError(f"{vocoder} resynthesises waveforms, not log-mels", field="--vocoder",
                            hint="give the data dir: speechkd vocode --vocoder world --data-dir data/<split>")
    settings = {"vocoder": vocoder, "options": options or {}, "feats": os.path.abspath(feats_dir)}
    if getattr(voc, "path", ""):  # a trained vocoder: which checkpoint (retrained -> its wavs are stale)
        settings.update(checkpoint=os.path.abspath(voc.path), step=int(voc.step))
    claim_output_dir(out, settings, verb="vocode", overwrite=overwrite)
    done = seconds = audio_s = 0.0
    for utt, (path, frames) in index:
        wav_path = safe_child(out, utt, ".wav", source=os.path.join(feats_dir, "feats.scp"))
        if os.path.exists(wav_path):
            continue
        with np.load(path) as z:
            mel = torch.from_numpy(z["mel"][:frames].astype(np.float32))
        t0 = time.perf_counter()
        wav = voc(mel[None])[0].cpu().numpy()
        seconds += time.perf_counter() - t0
        audio_s += len(wav) / feats.sample_rate
        _write(wav_path, wav, feats.sample_rate, utt)
        done += 1
    info = {"vocoder": vocoder, "options": options or {}, "device": device, "feats_dir": feats_dir,
            "utterances": len(index), "vocoded_now": int(done), "seconds": round(seconds, 3),
            "rtf": round(seconds / audio_s, 4) if audio_s else None}
    atomic_write_json(os.path.join(out, "vocode_info.json"), info)
    log.info("vocoded %d utterances into %s (RTF %s)", done, out, info["rtf"])
    return info


def resynthesize_datadir(data_dir: str, out: str, vocoder: str = "world", options: dict | None = None, *,
                         feats: FeatureConfig | None = None, num_utts: int = 0, device: str = "auto",
                         batch_size: int = 8, nj: int = 1, overwrite: bool = False) -> dict:
    """Copy synthesis of a data dir's waveforms by a vocoder that analyses audio (WORLD) into
    ``out/<utt>.wav``, ``batch_size`` utterances per synthesis call (the batched kernel's batch);
    wavs already there are kept. The first ``num_utts`` in C order (the dump's order).
    ``nj`` > 1 (CPU only) shares whole batches among that many processes: the same batches as
    one process makes, so the same output (WORLD analysis holds the GIL: threads would not help)."""
    feats = feats or FeatureConfig()
    device = resolve_device(device)
    voc = load_vocoder(vocoder, feats, device, options)
    if not voc.needs_wav:
        raise SpeechkdError(f"{vocoder} vocodes log-mels: give --feats (a feature dump), not --data-dir",
                            field="--vocoder")
    if nj < 1:
        raise SpeechkdError(f"nj must be >= 1, got {nj}", field="--nj")
    dd = read_datadir(data_dir)
    utts = dd.utts[:num_utts] if num_utts > 0 else dd.utts
    scp = os.path.join(data_dir, "wav.scp")
    outs = [safe_child(out, u, ".wav", source=scp) for u in utts]  # every id checked before any work
    claim_output_dir(out, {"vocoder": vocoder, "options": options or {}, "data_dir": os.path.abspath(data_dir)},
                     verb="vocode", overwrite=overwrite)
    todo = [u for u, o in zip(utts, outs) if not os.path.exists(o)]
    batches = [todo[i:i + max(1, batch_size)] for i in range(0, len(todo), max(1, batch_size))]
    jobs = min(nj, len(batches)) if device == "cpu" else 1
    if jobs <= 1:
        seconds, audio_s = _resynthesize_batches(voc, dd, batches, out, feats.sample_rate)
    else:
        args = (data_dir, out, vocoder, options, feats, device)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(_resynthesize_shard, [(*args, batches[j::jobs]) for j in range(jobs)]))
        seconds, audio_s = sum(p[0] for p in parts), sum(p[1] for p in parts)
    info = {"vocoder": vocoder, "options": options or {}, "device": device, "data_dir": data_dir,
            "utterances": len(utts), "vocoded_now": len(todo), "jobs": max(1, jobs), "seconds": round(seconds, 3),
            "rtf": round(seconds / audio_s, 4) if audio_s else None}
    atomic_write_json(os.path.join(out, "vocode_info.json"), info)
    log.info("resynthesised %d utterances into %s (RTF %s, analysis included)", len(todo), out, info["rtf"])
    return info


def _resynthesize_batches(voc, dd, batches: list[list[str]], out: str, sample_rate: int) -> tuple[float, float]:
    """Analyse and resynthesise each batch of utterances into ``out``: (seconds, seconds of audio)."""
    seconds = audio_s = 0.0
    for chunk in batches:
        wavs = []
        for u in chunk:
            entry, seg = dd.audio(u)
            wavs.append(load_audio(entry, sample_rate=sample_rate, utt=u, segment=seg)[0])
        t0 = time.perf_counter()
        outs = voc.resynthesize(wavs, sample_rate)
        seconds += time.perf_counter() - t0
        for u, w in zip(chunk, outs):
            audio_s += len(w) / sample_rate
            _write(safe_child(out, u, ".wav"), w, sample_rate, u)
    return seconds, audio_s


def _resynthesize_shard(job: tuple) -> tuple[float, float]:
    """One worker process of :func:`resynthesize_datadir` (module level: spawn pickles it by name)."""
    data_dir, out, vocoder, options, feats, device, batches = job
    torch.set_num_threads(1)
    return _resynthesize_batches(load_vocoder(vocoder, feats, device, options), read_datadir(data_dir),
                                 batches, out, feats.sample_rate)

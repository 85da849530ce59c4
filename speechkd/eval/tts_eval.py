"""Objective evaluation of synthesized speech against the ground-truth recordings.

Per utterance: MCD (DTW-aligned WORLD mel-cepstra, :mod:`speechkd.eval.mcd`),
log-F0 RMSE in cents, V/UV error and F0 correlation on the same path
(:mod:`speechkd.eval.f0`); optionally WER/CER from the offline recogniser
(:mod:`speechkd.eval.intelligibility`). Means come with Student-t 95% CIs over
utterances (:mod:`speechkd.eval.stats`). Both signals are resampled to one
common rate (``TtsEvalConfig.sample_rate``) before analysis, never implicitly.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from speechkd.audio import load_audio, resample
from speechkd.data.kaldi import DataDir
from speechkd.errors import AudioError, ConfigError, SpeechkdError
from speechkd.eval.f0 import f0_metrics
from speechkd.eval.intelligibility import evaluate_asr
from speechkd.eval.mcd import MEL_ALPHA, mcd_dtw, world_features
from speechkd.eval.mcd_espnet import EspnetMcdConfig, espnet_mcd, int16_pair
from speechkd.eval.stats import fmt_ci, summarize
from speechkd.utils.paths import safe_child
from speechkd.utils.parallel import process_map

log = logging.getLogger(__name__)

METRICS = ("mcd", "f0_rmse_cents", "vuv_error", "f0_corr")
MIN_SECONDS = 0.05  # shorter audio has too few WORLD frames to compare


@dataclass
class TtsEvalConfig:
    sample_rate: int = 16000
    """common analysis rate; reference and synthesized audio are resampled to it (soxr_hq)"""
    f0_method: str = "dio"
    """WORLD F0 estimator: dio (+ stonemask, fast) or harvest (several times slower). Harvest marks
    nearly every flite frame voiced, pauses included, and its F0 in those frames is erratic: on
    Griffin-Lim copies of flite speech its log-F0 RMSE is several times dio's."""
    frame_period: float = 5.0
    """analysis hop in ms"""
    f0_floor: float = 71.0
    """lowest F0 searched, Hz (WORLD default)"""
    f0_ceil: float = 800.0
    """highest F0 searched, Hz (WORLD default)"""
    order: int = 24
    """mel-cepstrum order M (c0..cM computed; MCD over c1..cM)"""
    alpha: float | None = None
    """all-pass constant; None = 0.42 at 16 kHz, 0.455 at 22.05 kHz (speechkd.eval.mcd.MEL_ALPHA)"""
    floor_db: float = 80.0
    """spectral envelope floored this far below the utterance's maximum (speechkd.eval.mcd notes)"""
    mcd: str = "world"
    """MCD definition: world (speechkd.eval.mcd, c0 excluded, exact DTW) or espnet (ESPnet2's
    evaluate_mcd.py: SPTK mcep of int16 audio at the synthesized audio's rate, c0 included,
    FastDTW; speechkd.eval.mcd_espnet). F0 metrics use the WORLD analysis either way."""
    espnet: EspnetMcdConfig | None = None
    """settings of the espnet definition (None: the script's defaults)"""


def load_for_eval(entry: str, sample_rate: int, *, utt: str,
                  segment: tuple[float, float] | None = None) -> tuple[np.ndarray, int]:
    """Mono float audio resampled to ``sample_rate``; (audio, original rate).
    Empty, NaN, silent, too-short or multi-channel audio is an :class:`AudioError` (a stereo file
    is refused, not averaged: a TTS system that writes two channels has a bug worth seeing)."""
    wav, sr = load_audio(entry, utt=utt, segment=segment, mono="error")
    if len(wav) < MIN_SECONDS * sr:
        raise AudioError(f"audio is too short to evaluate ({len(wav) / sr * 1000:.0f} ms, need "
                         f"{MIN_SECONDS * 1000:.0f} ms)", path=entry, utt=utt)
    if not np.any(wav):
        raise AudioError("audio is all zeros (silent)", path=entry, utt=utt,
                         hint="the synthesis or vocoder produced no signal")
    if sr != sample_rate:
        log.debug("%s: resampling %s from %d to %d Hz", utt, entry, sr, sample_rate)
        wav = resample(wav, sr, sample_rate)
    return wav, sr


def evaluate_pair(ref: np.ndarray, syn: np.ndarray, cfg: TtsEvalConfig) -> dict:
    """MCD and F0 metrics of ``syn`` against ``ref``, both at ``cfg.sample_rate``,
    plus the analysis and DTW time in seconds."""
    kw = dict(f0_method=cfg.f0_method, frame_period=cfg.frame_period, f0_floor=cfg.f0_floor,
              f0_ceil=cfg.f0_ceil, order=cfg.order, alpha=cfg.alpha, floor_db=cfg.floor_db)
    t0 = time.perf_counter()
    fr = world_features(ref, cfg.sample_rate, **kw)
    fs = world_features(syn, cfg.sample_rate, **kw)
    t1 = time.perf_counter()
    mcd, path = mcd_dtw(fr.mcep, fs.mcep)
    t2 = time.perf_counter()
    return {"mcd": mcd, **f0_metrics(fr.f0, fs.f0, path), "frames_ref": len(fr.f0),
            "frames_syn": len(fs.f0), "path_len": len(path),
            "_world_s": t1 - t0, "_dtw_s": t2 - t1}


def _eval_job(job: tuple) -> dict:
    utt, ref_entry, seg, syn_path, cfg = job
    ref, ref_sr = load_for_eval(ref_entry, cfg.sample_rate, utt=utt, segment=seg)
    syn, syn_sr = load_for_eval(syn_path, cfg.sample_rate, utt=utt)
    row = {"utt": utt, "ref_sr": ref_sr, "syn_sr": syn_sr,
           "ref_seconds": len(ref) / cfg.sample_rate, "syn_seconds": len(syn) / cfg.sample_rate}
    row.update(evaluate_pair(ref, syn, cfg))
    if cfg.mcd == "espnet":
        # ESPnet reads the files themselves as int16, at their own rate (no common-rate resampling)
        ref16, ref_sr = load_audio(ref_entry, utt=utt, segment=seg, dtype="int16")
        syn16, syn_sr = load_audio(syn_path, utt=utt, dtype="int16")
        ref16, syn16, sr = int16_pair(ref16, ref_sr, syn16, syn_sr)
        n_fft = (cfg.espnet or EspnetMcdConfig()).n_fft
        for path, x, xf in ((ref_entry, ref16, ref), (syn_path, syn16, syn)):
            # libsndfile reads a float wav as int16 unscaled (|x| < 0.5 -> 0): the peaks disagree
            if np.max(np.abs(x)) < 0.5 * 32767 * np.max(np.abs(xf)):
                raise AudioError("reads as near-silence as 16-bit integers (a float wav: libsndfile converts "
                                 "it unscaled, so ESPnet's script would compare silence)", path=path, utt=utt,
                                 hint="write 16-bit PCM wavs (speechkd synth does), or use --mcd world")
            if len(x) < n_fft:
                raise AudioError(f"audio is shorter than one {n_fft}-sample frame of ESPnet's MCD",
                                 path=path, utt=utt, hint="evaluate it with --mcd world")
        mcd, n = espnet_mcd(ref16, syn16, sr, cfg.espnet)
        row.update({"mcd_world": row["mcd"], "mcd": mcd, "espnet_path_len": n})
    return row


def evaluate_tts(dd: DataDir, utts: list[str], wav_dir: str, cfg: TtsEvalConfig | None = None, *,
                 nj: int = 1, allow_missing: bool = False, asr: bool = True) -> dict:
    """Evaluate ``wav_dir/<utt>.wav`` against the data dir's audio for ``utts``.

    Returns {"settings", "summary", "timing", "missing", "asr", "utts"}; a missing
    synthesized file is an error unless ``allow_missing`` (then listed under "missing")."""
    cfg = cfg or TtsEvalConfig()
    if cfg.mcd not in ("world", "espnet"):
        raise ConfigError(f"unknown MCD definition '{cfg.mcd}'", field="mcd", hint="world or espnet")
    if cfg.alpha is None and cfg.sample_rate not in MEL_ALPHA:
        raise ConfigError(f"no all-pass constant for an analysis rate of {cfg.sample_rate} Hz",
                          field="sample_rate", hint=f"use one of {sorted(MEL_ALPHA)}")
    if not os.path.isdir(wav_dir):
        raise SpeechkdError("directory of synthesized audio does not exist", path=wav_dir,
                            hint="run the synthesis stage for this system first")
    jobs, missing = [], []
    for utt in utts:
        path = safe_child(wav_dir, utt, ".wav")
        if not os.path.exists(path):
            if not allow_missing:
                raise SpeechkdError("synthesized audio is missing", path=path, utt=utt,
                                    hint="run the synthesis stage, or pass --allow-missing to record it")
            log.warning("%s: synthesized audio missing: %s", utt, path)
            missing.append({"utt": utt, "path": path})
            continue
        entry, seg = dd.audio(utt)
        jobs.append((utt, entry, seg, path, cfg))
    if not jobs:
        raise SpeechkdError("no synthesized audio to evaluate", path=wav_dir)
    t0 = time.perf_counter()
    rows = process_map(_eval_job, jobs, nj)
    wall = time.perf_counter() - t0
    audio_s = sum(r["ref_seconds"] + r["syn_seconds"] for r in rows)
    timing = {"wall_seconds": wall, "audio_seconds": audio_s,
              "world_rtf": sum(r.pop("_world_s") for r in rows) / audio_s,
              "dtw_rtf": sum(r.pop("_dtw_s") for r in rows) / audio_s}
    res = {"settings": asdict(cfg), "summary": summarize(rows, METRICS), "timing": timing,
           "missing": missing, "asr": None, "utts": rows, "by_speaker": {}}
    if asr:
        a = evaluate_asr(dd, [r["utt"] for r in rows], wav_dir=wav_dir, nj=nj)
        res["asr"] = a.summary()
        for r, ar in zip(rows, a.utts):
            r.update({"hyp": ar["hyp"], "word_errors": ar["word_errors"], "words": ar["words"],
                      "char_errors": ar["char_errors"], "chars": ar["chars"]})
        timing["asr_rtf"] = a.seconds / sum(r["syn_seconds"] for r in rows)
    res["by_speaker"] = per_speaker(rows, dd.utt2spk)
    log.info("evaluated %d utterances in %.1f s (WORLD RTF %.3f, DTW RTF %.4f)",
             len(rows), wall, timing["world_rtf"], timing["dtw_rtf"])
    return res


def per_speaker(rows: list[dict], utt2spk: dict[str, str]) -> dict[str, dict]:
    """Per speaker, when the rows hold more than one: utterances, mean of each metric present and
    the WER (word errors over words, as the pooled figure)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(utt2spk.get(r["utt"], ""), []).append(r)
    if len(groups) < 2:
        return {}
    out = {}
    for spk, rs in sorted(groups.items()):
        d: dict = {"n": len(rs), **{k: v["mean"] for k, v in summarize(rs, METRICS).items() if v["n"]}}
        if all("words" in r for r in rs):
            d["wer"] = sum(r["word_errors"] for r in rs) / max(1, sum(r["words"] for r in rs))
        out[spk] = d
    return out


def speaker_markdown(by: dict[str, dict]) -> list[str]:
    """The per-speaker table (empty for one speaker)."""
    if not by:
        return []
    cols = [c for c in ("mcd", "f0_rmse_cents", "vuv_error", "wer") if any(c in d for d in by.values())]
    names = {"mcd": "MCD dB", "f0_rmse_cents": "log-F0 RMSE cents", "vuv_error": "V/UV error %", "wer": "WER %"}
    fmt = {"mcd": lambda x: f"{x:.2f}", "f0_rmse_cents": lambda x: f"{x:.0f}",
           "vuv_error": lambda x: f"{100 * x:.1f}", "wer": lambda x: f"{100 * x:.1f}"}
    lines = ["## Per speaker", "", "| speaker | utterances | " + " | ".join(names[c] for c in cols) + " |",
             "|---|---:|" + "---:|" * len(cols)]
    lines += [f"| {s} | {d['n']} | " + " | ".join(fmt[c](d[c]) if c in d else "–" for c in cols) + " |"
              for s, d in by.items()]
    return lines + [""]


def tts_markdown(res: dict, title: str) -> str:
    s, a = res["summary"], res["asr"]
    cfg = res["settings"]
    head = "| utterances | MCD dB | log-F0 RMSE cents | V/UV error % | F0 corr |"
    row = (f"| {s['mcd']['n']} | {fmt_ci(s['mcd'])} | {fmt_ci(s['f0_rmse_cents'], 0)} | "
           f"{fmt_ci(s['vuv_error'], 1, 100)} | {fmt_ci(s['f0_corr'])} |")
    if a:
        head += " WER % | CER % |"
        row += (f" {100 * a['wer']:.1f} ({100 * a['wer_ci95'][0]:.1f}–{100 * a['wer_ci95'][1]:.1f}) |"
                f" {100 * a['cer']:.1f} |")
    if cfg.get("mcd", "world") == "espnet":
        e = cfg.get("espnet") or {}
        mcd_note = (f"MCD: ESPnet2's evaluate_mcd.py definition (SPTK mcep of int16 audio at its own rate, "
                    f"c0 included, order and alpha from the rate, Hamming {e.get('n_fft', 1024)}/"
                    f"{e.get('n_shift', 256)}, FastDTW, mean over path frames). ")
    else:
        mcd_note = (f"MCD: WORLD ({cfg['f0_method']}, CheapTrick) "
                    f"mel-cepstrum c1..c{cfg['order']}, alpha {cfg['alpha'] or 'default'}, {cfg['sample_rate']} Hz, "
                    f"envelope floor -{cfg['floor_db']:g} dB, exact DTW, mean over path frames. ")
    lines = [f"# {title}", "", head, "|" + "---:|" * (head.count("|") - 1), row, "",
             f"Means with Student-t 95% CIs over utterances. {mcd_note}"
             f"F0 (WORLD) on the WORLD MCD's DTW path: RMSE over frames voiced in both.", ""]
    lines += speaker_markdown(res.get("by_speaker") or {})
    if res["missing"]:
        lines += [f"Missing synthesized audio ({len(res['missing'])}): "
                  + ", ".join(m["utt"] for m in res["missing"]), ""]
    lines += ["| utt | MCD dB | F0 RMSE cents | V/UV % | ref s | syn s |" + (" hypothesis |" if a else ""),
              "|---|---:|---:|---:|---:|---:|" + ("---|" if a else "")]
    for r in res["utts"]:
        line = (f"| {r['utt']} | {r['mcd']:.2f} | {r['f0_rmse_cents']:.0f} | {100 * r['vuv_error']:.1f} | "
                f"{r['ref_seconds']:.2f} | {r['syn_seconds']:.2f} |")
        lines.append(line + (f" {r.get('hyp', '')} |" if a else ""))
    return "\n".join(lines) + "\n"

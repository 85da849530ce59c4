"""Does a multi-speaker model sound like the voice it was asked for?

Every test sentence is synthesized with every voice the model and the test set share, and each
synthesized utterance is compared with the recording of that sentence (spoken by the test
utterance's own speaker j). For the voice i asked for and the recorded speaker j:

    MCD[i, j]    = mean over the test utterances of j of MCD(synth(text_u, i), rec_u)
                   (WORLD mel-cepstra, exact DTW; :mod:`speechkd.eval.mcd`)
    dLF0[i, j]   = mean over the same utterances of |mean log-F0(synth) - mean log-F0(rec)|, in cents
                   (voiced frames only): the register alone
    RLF0[i, j]   = mean over the same utterances of the log-F0 RMSE in cents on the MCD's DTW path
                   (frames voiced in both; :func:`speechkd.eval.f0.f0_metrics`): register and contour,
                   the construction of MCD[i, j] applied to log-F0. Two voices of one register
                   (two synthesizers of one human speaker) differ in their intonation, not their mean.

Identity survives when every row i has its minimum on the diagonal (j = i): the synthesized voice
i is closer to recordings of i than to those of any other speaker, even though the sentences of
column j were spoken by j only (the same sentences where the split allows: column i and row i
share their texts). The tables and the per-row checks go to ``results.json`` / ``results.md``.
With ``reference_feats`` (the test set's feature dump) each recording is replaced by its own
dumped mel through the same vocoder (kept under ``out/reference``; the tables go to
``results_vocoded.{json,md}`` beside the others, and the synthesized wavs are reused): the vocoder's own error, e.g.
the register shift Griffin-Lim gives some voices, is then on both sides of every cell, so the
tables measure the acoustic model alone (the "ground-truth mel + vocoder" reference of TTS papers).
The synthesized wavs are kept under ``out/wav``, which records the checkpoint, vocoder and seed that
made them (:func:`speechkd.utils.outputs.claim_output_dir`): a rerun reuses them for the same
checkpoint and refuses another one unless ``overwrite`` (rather than scoring stale audio).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict

import numpy as np

from speechkd.data.kaldi import read_datadir
from speechkd.errors import SpeechkdError
from speechkd.eval.f0 import f0_metrics
from speechkd.eval.mcd import mcd_dtw, world_features
from speechkd.eval.stats import json_safe
from speechkd.eval.tts_eval import TtsEvalConfig, load_for_eval
from speechkd.infer.synthesize import Synthesizer
from speechkd.infer.vocode import vocode_dump
from speechkd.utils.io import atomic_write_json, atomic_write_text, atomic_write_wav
from speechkd.utils.outputs import claim_output_dir
from speechkd.utils.parallel import process_map
from speechkd.utils.paths import check_id, safe_child

logger = logging.getLogger(__name__)


def _features(job: tuple) -> tuple[str, np.ndarray, np.ndarray, float]:
    """(key, mel-cepstrum, F0 track, mean voiced log-F0) of one recording or synthesized wav."""
    key, entry, seg, cfg = job
    wav, _ = load_for_eval(entry, cfg.sample_rate, utt=key, segment=seg)
    f = world_features(wav, cfg.sample_rate, f0_method=cfg.f0_method, frame_period=cfg.frame_period,
                       f0_floor=cfg.f0_floor, f0_ceil=cfg.f0_ceil, order=cfg.order, alpha=cfg.alpha,
                       floor_db=cfg.floor_db)
    voiced = f.f0[f.f0 > 0]
    return key, f.mcep, f.f0, float(np.log(voiced).mean()) if voiced.size else float("nan")


def _distances(job: tuple) -> tuple[float, float]:
    """(MCD, log-F0 RMSE in cents on the same DTW path) of a (recording, synthesis) pair."""
    (mc_rec, f0_rec), (mc_syn, f0_syn) = job
    mcd, path = mcd_dtw(mc_rec, mc_syn)
    return mcd, f0_metrics(f0_rec, f0_syn, path)["f0_rmse_cents"]


def test_utterances(data_dir: str, speakers: list[str], per_speaker: int) -> dict[str, list[str]]:
    """Test utterances of each shared speaker (C order, the first ``per_speaker``; 0 = all)."""
    dd = read_datadir(data_dir)
    by = {s: u for s, u in dd.spk2utt.items() if s in speakers}
    if len(by) < 2:
        raise SpeechkdError(f"the test set shares {len(by)} speaker(s) with the model ({', '.join(by) or 'none'}); "
                            "an identity table needs two or more", path=data_dir,
                            hint="use a test set whose utt2spk names the model's speakers")
    return {s: (u[:per_speaker] if per_speaker > 0 else u) for s, u in sorted(by.items())}


def speaker_identity(model: str, data_dir: str, out: str, *, vocoder: str = "griffin_lim", per_speaker: int = 0,
                     nj: int = 1, device: str = "cpu", seed: int = 0, average: int = 1,
                     cfg: TtsEvalConfig | None = None, overwrite: bool = False,
                     reference_feats: str | None = None) -> dict:
    """Synthesize every test sentence with every shared voice (kept under ``out/wav/<voice>/``;
    a rerun reuses them), then the three speaker x speaker tables (module docstring), against
    the recordings or, with ``reference_feats``, against their dumped mels through ``vocoder``."""
    synth = Synthesizer.from_exp(model, vocoder=vocoder, device=device, on_unknown="map", average=average)
    if not synth.speakers:
        raise SpeechkdError("a single-speaker model has no speaker table to check", path=model,
                            hint="train on a corpus with several speakers (utt2spk)")
    dd = read_datadir(data_dir)
    by_spk = test_utterances(data_dir, synth.speakers, per_speaker)
    voices = list(by_spk)
    utts = [u for s in voices for u in by_spk[s]]
    cfg = cfg or TtsEvalConfig()
    claim_output_dir(os.path.join(out, "wav"), {"checkpoint": os.path.abspath(synth.loaded.path),
                                                 "step": int(synth.loaded.step), "average": int(average),
                                                 "vocoder": vocoder, "seed": int(seed)},
                     verb="eval speakers", overwrite=overwrite)
    for v in voices:
        check_id(v, source=data_dir)
        vdir = os.path.join(out, "wav", v)
        todo = [u for u in utts if not os.path.exists(safe_child(vdir, u, ".wav"))]
        if todo:
            os.makedirs(vdir, exist_ok=True)

            def write(r, _d=vdir) -> None:
                if r.wav is None:
                    raise SpeechkdError(r.error or "synthesis failed", utt=r.utt)
                atomic_write_wav(safe_child(_d, r.utt, ".wav"), r.wav, synth.sample_rate)

            synth.batch([dd.text[u] for u in todo], todo, speakers=v, seed=seed, on_done=write)
        logger.info("voice %s: %d utterances synthesized (%d now)", v, len(utts), len(todo))
    if reference_feats:  # the recordings' own mels through the same vocoder (module docstring)
        ref_dir = os.path.join(out, "reference")
        vocode_dump(reference_feats, ref_dir, vocoder, device=device, overwrite=overwrite, utts=set(utts))
        missing = [u for u in utts if not os.path.exists(safe_child(ref_dir, u, ".wav"))]
        if missing:
            raise SpeechkdError(f"{len(missing)} test utterance(s) are not in the feature dump: "
                                f"{', '.join(missing[:5])}",
                                path=reference_feats, utt=missing[0], hint="give the dump of --data-dir's split")
        jobs = [(f"rec/{u}", safe_child(ref_dir, u, ".wav"), None, cfg) for u in utts]
    else:
        jobs = [(f"rec/{u}", *dd.audio(u), cfg) for u in utts]
    jobs += [(f"{v}/{u}", safe_child(os.path.join(out, "wav", v), u, ".wav"), None, cfg) for v in voices for u in utts]
    feats = {k: (mc, f0, lf0) for k, mc, f0, lf0 in process_map(_features, jobs, nj)}
    pairs = [(v, u) for v in voices for u in utts]
    dists = process_map(_distances, [(feats[f"rec/{u}"][:2], feats[f"{v}/{u}"][:2]) for v, u in pairs], nj)
    spk_of = {u: s for s, us in by_spk.items() for u in us}
    n = len(voices)
    mcd, dlf0, rlf0 = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
    cells: dict[tuple[int, int], list[tuple[float, float, float]]] = {}
    for (v, u), (m, r) in zip(pairs, dists):
        d = 1200.0 / np.log(2.0) * abs(feats[f"{v}/{u}"][2] - feats[f"rec/{u}"][2])
        cells.setdefault((voices.index(v), voices.index(spk_of[u])), []).append((m, d, r))
    for (i, j), vals in cells.items():
        mcd[i, j] = float(np.mean([m for m, _, _ in vals]))
        for t, k in ((dlf0, 1), (rlf0, 2)):
            xs = [x[k] for x in vals if np.isfinite(x[k])]
            t[i, j] = float(np.mean(xs)) if xs else float("nan")
    # how far apart the recorded voices themselves are in mean log-F0 (the resolution of that table)
    rec = {s: float(np.nanmean([feats[f"rec/{u}"][2] for u in by_spk[s]])) for s in voices}
    rec_cents = [[1200.0 / np.log(2.0) * abs(rec[a] - rec[b]) for b in voices] for a in voices]
    res = {"model": model, "vocoder": vocoder, "data_dir": data_dir, "speakers": voices,
           "reference": f"{reference_feats} through {vocoder}" if reference_feats else "recordings",
           "recording_f0_hz": {s: float(np.exp(v)) for s, v in rec.items()}, "recording_lf0_cents": rec_cents,
           "utterances_per_speaker": {s: len(u) for s, u in by_spk.items()}, "settings": asdict(cfg),
           "mcd": mcd.tolist(), "lf0_diff_cents": dlf0.tolist(), "lf0_rmse_cents": rlf0.tolist(),
           "diagonal_min_mcd": _diagonal_rows(mcd), "diagonal_min_lf0": _diagonal_rows(dlf0),
           "diagonal_min_lf0_rmse": _diagonal_rows(rlf0)}
    os.makedirs(out, exist_ok=True)
    name = results_name(reference_feats)
    atomic_write_json(os.path.join(out, f"{name}.json"), json_safe(res))
    atomic_write_text(os.path.join(out, f"{name}.md"), identity_markdown(res))
    return res


def results_name(reference_feats: str | None) -> str:
    """``results`` (against the recordings) or ``results_vocoded``: both live beside the one set of
    synthesized wavs, so a second run with the other reference synthesizes nothing."""
    return "results_vocoded" if reference_feats else "results"


def _row_min(row: np.ndarray) -> int:
    """Index of the row's minimum, NaN cells (no voiced frame to compare) ignored; -1 if all are NaN."""
    return -1 if np.isnan(row).all() else int(np.nanargmin(row))


def _diagonal_rows(t: np.ndarray) -> dict:
    """Which rows have their minimum on the diagonal (a row without any number fails)."""
    ok = [_row_min(t[i]) == i for i in range(len(t))]
    return {"rows": ok, "all": all(ok), "count": int(sum(ok))}


def identity_markdown(res: dict) -> str:
    v = res["speakers"]
    lines = [f"# Speaker identity: {res['model']} ({res['vocoder']})", "",
             "Rows: the voice asked for; columns: the speaker of the recording compared with (its own sentences). "
             "Bold: the row's minimum.", ""]
    if res.get("reference", "recordings") != "recordings":
        lines += [f"Reference: not the recordings but their dumped mels, {res['reference']} (the vocoder's own "
                  "error on both sides).", ""]
    tables = (("mcd", "diagonal_min_mcd", "MCD dB", "{:.2f}"),
              ("lf0_diff_cents", "diagonal_min_lf0", "|mean log-F0 difference| cents", "{:.0f}"),
              ("lf0_rmse_cents", "diagonal_min_lf0_rmse", "log-F0 RMSE on the DTW path, cents", "{:.0f}"))
    for key, dkey, title, fmt in tables:
        if key not in res:  # results written before that table existed
            continue
        t = np.asarray(res[key])
        diag = res[dkey]
        lines += [f"## {title}: minimum on the diagonal in {diag['count']}/{len(v)} rows", "",
                  "| voice \\ recording | " + " | ".join(v) + " |", "|---|" + "---:|" * len(v)]
        for i, s in enumerate(v):
            cells = [(f"**{fmt.format(x)}**" if j == _row_min(t[i]) else fmt.format(x))
                     for j, x in enumerate(t[i])]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        lines.append("")
    if "recording_f0_hz" in res:
        what = "The recordings'" if res.get("reference", "recordings") == "recordings" else "The references'"
        lines += [f"## {what} own mean F0 (resolution of the log-F0 table)", "",
                  "| recording \\ recording | Hz | " + " | ".join(v) + " |", "|---|---:|" + "---:|" * len(v)]
        for i, s in enumerate(v):
            lines.append(f"| {s} | {res['recording_f0_hz'][s]:.1f} | "
                         + " | ".join(f"{x:.0f}" for x in res["recording_lf0_cents"][i]) + " |")
        lines.append("")
    n = res["utterances_per_speaker"]
    lines.append("Test utterances per speaker: " + ", ".join(f"{s} {n[s]}" for s in v) + ".")
    return "\n".join(lines) + "\n"

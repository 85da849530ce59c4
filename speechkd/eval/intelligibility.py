"""Intelligibility of a set of utterances: offline ASR, then WER and CER against the text."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from speechkd.data.kaldi import DataDir
from speechkd.errors import SpeechkdError
from speechkd.eval.asr import recognize_many
from speechkd.eval.wer import EditCounts, bootstrap_rate_ci, cer_counts, normalize_for_wer, wer_counts
from speechkd.utils.paths import safe_child

log = logging.getLogger(__name__)


@dataclass
class AsrResult:
    utts: list[dict]      # per utterance: utt, ref, hyp, word/char errors and lengths
    wer: float
    wer_ci: tuple[float, float]
    cer: float
    cer_ci: tuple[float, float]
    seconds: float

    def summary(self) -> dict:
        return {"num_utts": len(self.utts), "wer": self.wer, "wer_ci95": list(self.wer_ci),
                "cer": self.cer, "cer_ci95": list(self.cer_ci), "asr_seconds": self.seconds}


def evaluate_asr(dd: DataDir, utts: list[str], wav_dir: str | None = None, nj: int = 1) -> AsrResult:
    """WER/CER of the audio of ``utts``: from the data dir itself (ground truth),
    or from ``wav_dir/<utt>.wav`` (a system's output for the same utterances)."""
    jobs = []
    for utt in utts:
        if utt not in dd.text:
            raise SpeechkdError("no reference text", path=dd.path, utt=utt, field="text")
        if wav_dir is None:
            entry, seg = dd.audio(utt)
        else:
            entry, seg = safe_child(wav_dir, utt, ".wav"), None
            if not os.path.exists(entry):
                raise SpeechkdError("synthesized audio is missing", path=entry, utt=utt,
                                    hint="run the synthesis stage for this system first")
        jobs.append((utt, entry, seg))
    t0 = time.perf_counter()
    hyps = recognize_many(jobs, nj=nj)
    seconds = time.perf_counter() - t0
    rows, wc, cc = [], [], []
    for utt in utts:
        w, c = wer_counts(dd.text[utt], hyps[utt]), cer_counts(dd.text[utt], hyps[utt])
        wc.append(w)
        cc.append(c)
        rows.append({"utt": utt, "ref": normalize_for_wer(dd.text[utt]), "hyp": hyps[utt],
                     "word_errors": w.errors, "words": w.ref_len, "sub": w.sub, "del": w.dele,
                     "ins": w.ins, "char_errors": c.errors, "chars": c.ref_len})
    tot_w, tot_c = sum(wc, EditCounts()), sum(cc, EditCounts())
    return AsrResult(rows, tot_w.rate, bootstrap_rate_ci(wc), tot_c.rate, bootstrap_rate_ci(cc), seconds)


def asr_markdown(res: AsrResult, title: str) -> str:
    s = res.summary()
    lines = [f"# {title}", "",
             "| utterances | WER % (95% CI) | CER % (95% CI) |", "|---:|---:|---:|",
             f"| {s['num_utts']} | {100 * s['wer']:.1f} ({100 * s['wer_ci95'][0]:.1f}–{100 * s['wer_ci95'][1]:.1f})"
             f" | {100 * s['cer']:.1f} ({100 * s['cer_ci95'][0]:.1f}–{100 * s['cer_ci95'][1]:.1f}) |", "",
             "Recogniser: pocketsphinx en-us (offline). Corpus-level rates; CIs by bootstrap over utterances.",
             "", "| utt | errors/words | reference | hypothesis |", "|---|---:|---|---|"]
    for r in res.utts:
        lines.append(f"| {r['utt']} | {r['word_errors']}/{r['words']} | {r['ref']} | {r['hyp']} |")
    return "\n".join(lines) + "\n"

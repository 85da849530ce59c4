"""Objective evaluation of enhanced speech against clean references.

For every utterance of the reference set: PESQ-wb, STOI, ESTOI and SI-SDR of
the enhanced audio (:mod:`speechkd.eval.se_metrics`); given the noisy input
too, the same metrics of the noisy input and the improvements
(SI-SDRi = SI-SDR(enhanced) − SI-SDR(noisy), ΔPESQ, ΔSTOI, ΔESTOI). With ``dnsmos``, also the
reference-free DNSMOS P.835 SIG/BAK/OVRL of each (:mod:`speechkd.eval.dnsmos`). Means
with Student-t 95% CIs over utterances; metrics that could not be computed
are NaN with the reason and are left out of the means (their count is kept).

Audio sets are Kaldi data dirs (with ``wav.scp``) or directories of ``<utt>.wav``.
Estimate and reference must have the same sample rate (an error names the file);
PESQ is computed at 16 kHz, resampling explicitly when the audio is at another rate.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from speechkd.audio import load_audio, resample
from speechkd.data.kaldi import read_datadir
from speechkd.errors import AudioError, SpeechkdError
from speechkd.eval import dnsmos as dnsmos_p835
from speechkd.eval.se_metrics import PESQ_SAMPLE_RATE, pesq_wb, si_sdr, stoi_scores
from speechkd.eval.stats import fmt_ci, summarize
from speechkd.eval.summary import read_results
from speechkd.utils.paths import safe_child
from speechkd.utils.parallel import process_map

log = logging.getLogger(__name__)

BASE = ("pesq", "stoi", "estoi", "si_sdr")
DNSMOS_MODES = ("auto", "on", "off")  # auto: when the speechmos wheel and onnxruntime are installed
MAX_LENGTH_MISMATCH = 0.05  # fraction of the reference length tolerated (STFT padding), trimmed away


class AudioSet:
    """Audio per utterance from a Kaldi data dir or a directory of ``<utt>.wav``."""

    def __init__(self, path: str, role: str):
        self.path, self.role = path, role
        if not os.path.isdir(path):
            raise SpeechkdError(f"{role} directory does not exist", path=path)
        self.dd = read_datadir(path) if os.path.exists(os.path.join(path, "wav.scp")) else None

    def utts(self) -> list[str]:
        if self.dd is not None:
            return self.dd.utts
        return sorted((f[:-4] for f in os.listdir(self.path) if f.endswith(".wav")), key=lambda u: u.encode())

    def locate(self, utt: str) -> tuple[str, tuple[float, float] | None] | None:
        """(entry, segment), or None when this set has no audio for ``utt``."""
        if self.dd is not None:
            return self.dd.audio(utt) if utt in self.dd.utt2spk else None
        path = safe_child(self.path, utt, ".wav")
        return (path, None) if os.path.exists(path) else None


def _match(est: np.ndarray, ref: np.ndarray, utt: str, name: str) -> np.ndarray:
    """``est`` trimmed or zero-padded to the reference length when they differ slightly."""
    if abs(len(est) - len(ref)) > MAX_LENGTH_MISMATCH * len(ref):
        raise AudioError(f"length {len(est)} samples differs from the reference's {len(ref)} by more than "
                         f"{MAX_LENGTH_MISMATCH:.0%}", path=name, utt=utt,
                         hint="estimates must be time-aligned with their references")
    if len(est) >= len(ref):
        return est[: len(ref)]
    return np.pad(est, (0, len(ref) - len(est)))


def score(est: np.ndarray, ref: np.ndarray, sr: int, dnsmos: bool = False) -> dict:
    """{pesq, stoi, estoi, si_sdr} of ``est`` against ``ref`` (equal lengths, rate ``sr``),
    with pesq_error / stoi_error saying why a score is NaN; with ``dnsmos`` also the
    reference-free dnsmos_sig/bak/ovrl of ``est``."""
    if sr != PESQ_SAMPLE_RATE:
        r16, e16 = resample(ref, sr, PESQ_SAMPLE_RATE), resample(est, sr, PESQ_SAMPLE_RATE)
    else:
        r16, e16 = ref, est
    t0 = time.perf_counter()
    p, err = pesq_wb(r16, e16, PESQ_SAMPLE_RATE)
    t1 = time.perf_counter()
    st, est_, st_err = stoi_scores(ref, est, sr)
    t2 = time.perf_counter()
    out = {"pesq": p, "stoi": st, "estoi": est_, "si_sdr": si_sdr(est, ref),
           "_pesq_s": t1 - t0, "_stoi_s": t2 - t1, "_dnsmos_s": 0.0}
    if dnsmos:
        out.update(dnsmos_p835.dnsmos(est, sr))
        out["_dnsmos_s"] = time.perf_counter() - t2
    if err:
        out["pesq_error"] = err
    if st_err:
        out["stoi_error"] = st_err
    return out


def _load(loc: tuple[str, tuple[float, float] | None], utt: str,
          ref_sr: int | None = None) -> tuple[np.ndarray, int]:
    """Mono audio of a located entry; a rate other than ``ref_sr`` is an error."""
    wav, sr = load_audio(loc[0], utt=utt, segment=loc[1], mono="mean")
    if ref_sr is not None and sr != ref_sr:
        raise AudioError(f"sample rate is {sr} Hz but the clean reference is at {ref_sr} Hz",
                         path=loc[0], utt=utt, field="sample_rate",
                         hint="estimates must be written at the reference's rate; resample explicitly")
    return wav, sr


def _eval_job(job: tuple) -> dict:
    utt, ref_loc, enh_loc, noisy_loc, dnsmos, noisy_known = job
    ref, sr = _load(ref_loc, utt)
    enh = _match(_load(enh_loc, utt, sr)[0], ref, utt, enh_loc[0])
    row = {"utt": utt, "seconds": len(ref) / sr, "sample_rate": sr}
    row.update(score(enh, ref, sr, dnsmos))
    if noisy_loc is not None:
        known = noisy_known or {}
        dns_known = dnsmos and all(k in known for k in dnsmos_p835.KEYS)
        if noisy_loc == enh_loc:  # the noisy input's own row: its scores, not computed twice
            n = {k: v for k, v in row.items() if k not in ("utt", "seconds", "sample_rate")}
            n.update({"_pesq_s": 0.0, "_stoi_s": 0.0, "_dnsmos_s": 0.0})
        elif all(k in known for k in BASE) and (dns_known or not dnsmos):  # all reused (noisy_scores)
            n = {k: v for k, v in known.items() if k in metric_keys(dnsmos) or k.endswith("_error")}
            n.update({"_pesq_s": 0.0, "_stoi_s": 0.0, "_dnsmos_s": 0.0})
        else:  # scored here; DNSMOS, the costly one, still reused when known
            noisy = _match(_load(noisy_loc, utt, sr)[0], ref, utt, noisy_loc[0])
            n = score(noisy, ref, sr, dnsmos and not dns_known)
            n.update({k: known[k] for k in dnsmos_p835.KEYS} if dns_known else {})
        for t in ("_pesq_s", "_stoi_s", "_dnsmos_s"):
            row[t] += n.pop(t)
        row.update({f"{k}_noisy": v for k, v in n.items()})
        for k in metric_keys(dnsmos):
            row[f"{k}_delta"] = row[k] - row[f"{k}_noisy"]
    return row


def metric_keys(dnsmos: bool) -> tuple[str, ...]:
    return BASE + (dnsmos_p835.KEYS if dnsmos else ())


def use_dnsmos(mode: str) -> bool:
    """Whether DNSMOS is computed: ``on`` (an error when its packages are missing), ``off``, or
    ``auto`` (when they are installed; logged when they are not)."""
    if mode not in DNSMOS_MODES:
        raise SpeechkdError(f"unknown mode {mode!r}; one of {', '.join(DNSMOS_MODES)}", field="--dnsmos")
    if mode == "off":
        return False
    if dnsmos_p835.available():
        return True
    if mode == "on":
        raise SpeechkdError("DNSMOS needs the speechmos wheel and onnxruntime", field="--dnsmos", hint=dnsmos_p835.HINT)
    log.warning("DNSMOS left out: the speechmos wheel or onnxruntime is not installed (%s)", dnsmos_p835.HINT)
    return False


def noisy_scores(path: str, ref_dir: str, noisy_dir: str) -> dict[str, dict[str, float]]:
    """{utt: scores of the noisy input} from the results.json of ``eval se`` run on the noisy input
    itself (as its enhanced audio), to be reused rather than recomputed for every system: its
    reference-free DNSMOS when it scored the same noisy audio, and its PESQ, STOI, ESTOI and SI-SDR
    too when it also had the same clean reference ({} for the results of other audio)."""
    res = read_results(path)
    same = (lambda a, b: isinstance(a, str) and os.path.realpath(a) == os.path.realpath(b))
    if not same(res.get("system"), noisy_dir):
        log.warning("%s scored %s, not the noisy input %s: not reused", path, res.get("system"), noisy_dir)
        return {}
    keys = dnsmos_p835.KEYS + (BASE if same(res.get("reference"), ref_dir) else ())
    out = {}
    for r in res.get("utts", []):
        if "utt" not in r:
            continue
        vals = {k: float(r[k]) for k in keys if isinstance(r.get(k), (int, float))}
        if "pesq" in vals:  # a NaN PESQ/STOI comes with the reason, reused with it
            vals.update({k: r[k] for k in ("pesq_error", "stoi_error") if isinstance(r.get(k), str)})
        out[str(r["utt"])] = vals
    return out


def dnsmos_subset(utts: list[str], n: int) -> set[str]:
    """``n`` of ``utts`` spread over the list (all when ``n`` is 0 or covers them). DNSMOS runs its
    network on 9-s windows (a short clip repeated to fill several), so it costs far more than the
    other measures. A test set lists each sentence at every SNR in turn, so an even stride could
    alias onto one SNR; the positions are the golden-ratio sequence frac(i·φ) instead, spread
    evenly over the set and over any period in it."""
    if n <= 0 or n >= len(utts):
        return set(utts)
    picked: dict[int, None] = {}
    i = 0
    while len(picked) < n:
        picked[int(((i * 0.6180339887498949) % 1.0) * len(utts))] = None
        i += 1
    return {utts[j] for j in picked}


def evaluate_se(ref_dir: str, enh_dir: str, noisy_dir: str | None = None, *, num_utts: int = 0,
                nj: int = 1, allow_missing: bool = False, dnsmos: str = "auto",
                noisy_results: str | None = None, dnsmos_utts: int = 0) -> dict:
    """Evaluate the enhanced set against the clean reference set (and the noisy set, when given);
    ``dnsmos``: one of :data:`DNSMOS_MODES` (:func:`use_dnsmos`); ``noisy_results``: the noisy
    input's own results.json, whose scores are reused (:func:`noisy_scores`).

    Utterances are those of the reference set (the first ``num_utts`` in C order
    when > 0). Returns {"summary", "timing", "missing", "utts"}."""
    with_dnsmos = use_dnsmos(dnsmos)
    known = noisy_scores(noisy_results, ref_dir, noisy_dir) if (noisy_results and noisy_dir) else {}
    ref_set, enh_set = AudioSet(ref_dir, "clean reference"), AudioSet(enh_dir, "enhanced audio")
    noisy_set = AudioSet(noisy_dir, "noisy input") if noisy_dir else None
    utts = ref_set.utts()
    utts = utts[:num_utts] if num_utts > 0 else utts
    if not utts:
        raise SpeechkdError("no reference utterances", path=ref_dir)
    with_dns = dnsmos_subset(utts, dnsmos_utts) if with_dnsmos else set()
    jobs, missing = [], []
    for utt in utts:
        enh = enh_set.locate(utt)
        noisy = noisy_set.locate(utt) if noisy_set else None
        lost = [(s, safe_child(s.path, utt, ".wav")) for s, loc in ((enh_set, enh), (noisy_set, noisy))
                if s is not None and loc is None]
        if lost:
            s, path = lost[0]
            if not allow_missing:
                raise SpeechkdError(f"{s.role} is missing", path=path, utt=utt,
                                    hint="run the enhancement stage, or pass --allow-missing to record it")
            log.warning("%s: %s missing: %s", utt, s.role, path)
            missing.append({"utt": utt, "path": path})
            continue
        jobs.append((utt, ref_set.locate(utt), enh, noisy, utt in with_dns, known.get(utt)))
    if not jobs:
        raise SpeechkdError("no enhanced audio to evaluate", path=enh_dir)
    t0 = time.perf_counter()
    rows = process_map(_eval_job, jobs, nj)
    wall = time.perf_counter() - t0
    # audio seconds scored: the enhanced set, and the noisy set when given
    audio_s = sum(r["seconds"] for r in rows) * (2 if noisy_set else 1)
    timing = {"wall_seconds": wall, "audio_seconds": audio_s,
              "pesq_rtf": sum(r.pop("_pesq_s") for r in rows) / audio_s,
              "stoi_estoi_rtf": sum(r.pop("_stoi_s") for r in rows) / audio_s}
    dns_s = sum(r.pop("_dnsmos_s") for r in rows)
    if with_dnsmos:
        timing["dnsmos_rtf"] = dns_s / audio_s
    base = metric_keys(with_dnsmos)
    keys = list(base) + ([f"{k}_noisy" for k in base] + [f"{k}_delta" for k in base] if noisy_set else [])
    log.info("evaluated %d utterances in %.1f s", len(rows), wall)
    return {"summary": summarize(rows, keys), "timing": timing, "missing": missing, "utts": rows}


def se_markdown(res: dict, title: str) -> str:
    s = res["summary"]
    noisy = "si_sdr_noisy" in s
    dns = "dnsmos_ovrl" in s
    dhead = " DNSMOS SIG | DNSMOS BAK | DNSMOS OVRL |" if dns else ""
    lines = [f"# {title}", "", "| audio | utterances | PESQ-wb | STOI | ESTOI | SI-SDR dB |" + dhead,
             "|---|---:|---:|---:|---:|---:|" + ("---:|" * 3 if dns else "")]
    rows = [("enhanced", "")] + ([("noisy input", "_noisy"), ("improvement", "_delta")] if noisy else [])
    for name, sfx in rows:
        line = (f"| {name} | {s['si_sdr' + sfx]['n']} | {fmt_ci(s['pesq' + sfx])} | "
                f"{fmt_ci(s['stoi' + sfx], 3)} | {fmt_ci(s['estoi' + sfx], 3)} | {fmt_ci(s['si_sdr' + sfx])} |")
        if dns:
            line += "".join(f" {fmt_ci(s[k + sfx])} |" for k in dnsmos_p835.KEYS)
        lines.append(line)
    n_nan = s["pesq"]["n_nan"]
    lines += ["", "Means with Student-t 95% CIs over utterances. SI-SDR: Le Roux et al. 2019; "
              "improvement = enhanced − noisy per utterance (SI-SDRi)."
              + (" DNSMOS P.835 (Reddy et al. 2022): reference-free SIG/BAK/OVRL, 1-5." if dns else "")
              + (f" PESQ could not score {n_nan} utterance(s): see results.json." if n_nan else ""), ""]
    if res["missing"]:
        lines += [f"Missing audio ({len(res['missing'])}): " + ", ".join(m["utt"] for m in res["missing"]), ""]
    lines += ["| utt | PESQ | STOI | ESTOI | SI-SDR dB |" + (" SI-SDRi dB |" if noisy else "")
              + (" DNSMOS OVRL |" if dns else ""),
              "|---|---:|---:|---:|---:|" + ("---:|" if noisy else "") + ("---:|" if dns else "")]
    for r in res["utts"]:
        line = f"| {r['utt']} | {r['pesq']:.2f} | {r['stoi']:.3f} | {r['estoi']:.3f} | {r['si_sdr']:.2f} |"
        lines.append(line + (f" {r['si_sdr_delta']:.2f} |" if noisy else "")
                     + ((f" {r['dnsmos_ovrl']:.2f} |" if "dnsmos_ovrl" in r else " – |") if dns else ""))
    return "\n".join(lines) + "\n"

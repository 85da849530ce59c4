"""Duration accuracy of a teacher dump against flite's own phone timings (``speechkd eval durations``).

On the synthetic ``mini_en`` corpus the truth is known: ``flite -psdur`` printed every phone
with its duration while it made the audio (``data/<split>/phone_durations``:
``<utt> ph1:sec1 ph2:sec2 ...``). Our tokens are espeak-ng phonemes plus stress marks,
``<space>`` and punctuation; flite's are CMU (ARPAbet-like) phones plus ``pau``. The two
phone strings differ (``ɑːɹ`` is flite's ``aa r``, flaps, reduced vowels, "of the" as one
espeak word), so word boundaries cannot be matched one to one, and flite prints no word
segmentation. We therefore align the two PHONE strings monotonically:

1. Each token is a *phone* (it has an entry in :data:`IPA_TO_FLITE`, or is unknown) or a
   *joiner* (stress mark, ``<space>``, punctuation, special symbols), which has frames but no
   flite counterpart. flite's ``pau`` is its joiner.
2. A Needleman-Wunsch alignment of the phones (edit costs: a listed correspondence 0, e.g.
   ``ɾ``-``t``/``d`` or ``ɑːɹ``-``aa r``; another phone of the same broad class, vowel or
   consonant, 0.5; otherwise 1; an unmatched phone on either side 1) pairs each token phone
   with one or two flite phones.
3. A *boundary* lies between two consecutive aligned pairs with no unmatched phone between
   them on either side. Its time on each side is the middle of whatever lies between the
   two phones (joiner tokens / a ``pau``), or their common edge. Edges of the utterance
   are not boundaries: our tokens have no silence symbol, so the first and last tokens
   absorb flite's leading and trailing ``pau`` whatever the teacher does.

Frame c of a centred STFT (``center: true``) is centred on sample ``c * hop``, so the edge
between frames c-1 and c lies at ``(c - 0.5) * hop`` samples (``+ n_fft / 2 - pad`` without
centring); a duration boundary after c frames is converted with that formula
(:meth:`speechkd.features.config.FeatureConfig.frame_edge_seconds`, the dump's own framing).

Reported per system (the teacher's durations, and an even split of each utterance's frames
over its tokens as the baseline): mean absolute boundary error in ms, the mean signed lag
(system - flite; > 0: the system's boundaries come late), median and 90th percentile, and
for the teacher the error after removing a constant shift of k frames (the lag scan), and
the mean duration the joiners (``<space>``, stress marks) get.
"""

from __future__ import annotations

import math
import os
import unicodedata
from dataclasses import dataclass

import numpy as np

from speechkd.align.durations import fix_durations
from speechkd.data.kaldi import read_table
from speechkd.errors import SpeechkdError
from speechkd.eval.stats import fmt_ci, mean_ci
from speechkd.features.config import FeatureConfig
from speechkd.text.tokens import read_tokens

# espeak-ng (en-us) phoneme token -> flite (cmu_us) phone sequences it may be spoken as.
IPA_TO_FLITE: dict[str, tuple[tuple[str, ...], ...]] = {
    "p": (("p",),), "b": (("b",),), "t": (("t",),), "d": (("d",),), "k": (("k",),), "ɡ": (("g",),),
    "g": (("g",),), "m": (("m",),), "n": (("n",),), "ŋ": (("ng",),), "f": (("f",),), "v": (("v",),),
    "θ": (("th",),), "ð": (("dh",),), "s": (("s",),), "z": (("z",),), "ʃ": (("sh",),), "ʒ": (("zh",),),
    "h": (("hh",),), "tʃ": (("ch",),), "dʒ": (("jh",),), "l": (("l",),), "ɹ": (("r",),), "r": (("r",),),
    "w": (("w",),), "j": (("y",),), "ɾ": (("t",), ("d",)), "ʔ": (("t",),), "n̩": (("n",), ("ax", "n")),
    "əl": (("ax", "l"), ("l",), ("el",)), "l̩": (("l",), ("ax", "l")),
    "iː": (("iy",),), "i": (("iy",), ("ih",)), "ɪ": (("ih",), ("ax",), ("iy",)), "ᵻ": (("ih",), ("ax",), ("iy",)),
    "ɛ": (("eh",),), "æ": (("ae",),), "ə": (("ax",), ("ah",)), "ɐ": (("ax",), ("ah",)), "ʌ": (("ah",), ("ax",)),
    "ɚ": (("er",), ("axr",), ("ax", "r")), "ɜː": (("er",),), "ɑː": (("aa",),), "ɑ": (("aa",),),
    "ɔː": (("ao",), ("aa",)), "ɔ": (("ao",), ("aa",)), "oʊ": (("ow",),), "oː": (("ow",), ("ao",)),
    "ʊ": (("uh",),), "uː": (("uw",),), "u": (("uw",),), "eɪ": (("ey",),), "aɪ": (("ay",),),
    "aʊ": (("aw",),), "ɔɪ": (("oy",),), "ɑːɹ": (("aa", "r"),), "ɔːɹ": (("ao", "r"), ("ow", "r")),
    "oːɹ": (("ao", "r"), ("ow", "r")), "ɛɹ": (("eh", "r"),), "ɪɹ": (("ih", "r"), ("iy", "r")),
    "ʊɹ": (("uh", "r"), ("uw", "r")), "iə": (("iy", "ax"), ("ih", "ax")), "aɪɚ": (("ay", "er"), ("ay", "ax", "r")),
    "aɪə": (("ay", "ax"),),
}
FLITE_VOWELS = frozenset("aa ae ah ao aw ax axr ay eh er ey ih iy ow oy uh uw".split())
FLITE_PAUSES = frozenset({"pau", "sil", "h#"})
_SPECIAL = frozenset({"<space>", "<eos>", "<pad>", "<unk>", "<blank>", "<sos>"})
_IPA_VOWEL_CHARS = set("aeiouæɐɑɒɔəɘɚɛɜɝɞɤɨɪɯɵɶʉʊʌʏᵻ")


def phone_of(token: str) -> str:
    """The phone of a token with its stress mark attached (``ˈoʊ`` -> ``oʊ``; frontend
    ``stress_tokens: false``); other tokens unchanged."""
    bare = token.lstrip("ˈˌ")
    return bare if bare and bare != token else token


def is_joiner(token: str) -> bool:
    """True for tokens that take frames but name no phone: <space>, stress marks, punctuation."""
    if token in _SPECIAL:
        return True
    if phone_of(token) in IPA_TO_FLITE:
        return False
    return all(c in "ˈˌ" or unicodedata.category(c)[0] in "PSZ" for c in token)


def _is_vowel_token(token: str) -> bool:
    return any(c in _IPA_VOWEL_CHARS for c in token)


@dataclass
class BoundaryStats:
    """Boundary errors (system - truth) in ms of one system over a set of utterances."""

    errors_ms: np.ndarray

    def as_dict(self) -> dict:
        e = self.errors_ms
        if len(e) == 0:
            return {"num_boundaries": 0}
        a = np.abs(e)
        return {"num_boundaries": int(len(e)), "mean_abs_ms": float(a.mean()), "mean_signed_ms": float(e.mean()),
                "median_abs_ms": float(np.median(a)), "p90_abs_ms": float(np.percentile(a, 90)),
                "within_20ms": float((a <= 20).mean()), "within_50ms": float((a <= 50).mean())}


def parse_phone_durations(value: str, utt: str = "", path: str = "") -> list[tuple[str, float]]:
    """``ph1:sec1 ph2:sec2 ...`` -> [(phone, seconds)]."""
    out = []
    for item in value.split():
        ph, _, sec = item.rpartition(":")
        try:
            d = float(sec)
        except ValueError:
            d = float("nan")
        if not ph or not math.isfinite(d) or d < 0:
            raise SpeechkdError(f"bad phone duration '{item}' (want phone:seconds)", path=path or None,
                                utt=utt or None, field="phone_durations")
        out.append((ph, d))
    return out


def align_phones(ours: list[str], flite: list[str]) -> list[tuple[int, int, int]]:
    """Monotonic alignment of our phone tokens to flite phones (Needleman-Wunsch).

    Returns (i, j, n) triples in order: our phone i is flite phones j..j+n-1 (n = 1 or 2,
    2 only for a listed two-phone correspondence such as ɑːɹ = aa r). Unmatched phones on
    either side (cost 1 each) appear in no triple."""
    n_o, n_f = len(ours), len(flite)
    inf = float("inf")
    cost = np.full((n_o + 1, n_f + 1), inf)
    back = np.zeros((n_o + 1, n_f + 1), dtype=np.int8)  # 1 del ours, 2 ins flite, 3 match 1, 4 match 2
    cost[0, :] = np.arange(n_f + 1)
    cost[:, 0] = np.arange(n_o + 1)
    back[0, 1:], back[1:, 0] = 2, 1
    f_vowel = [p in FLITE_VOWELS for p in flite]
    for i in range(1, n_o + 1):
        tok = phone_of(ours[i - 1])
        allowed = IPA_TO_FLITE.get(tok, ())
        singles = {a[0] for a in allowed if len(a) == 1}
        doubles = {a for a in allowed if len(a) >= 2}
        vowel = _is_vowel_token(tok)
        for j in range(1, n_f + 1):
            sub = 0.0 if flite[j - 1] in singles else (0.5 if f_vowel[j - 1] == vowel else 1.0)
            best, how = cost[i - 1, j - 1] + sub, 3
            if j >= 2 and (flite[j - 2], flite[j - 1]) in doubles and cost[i - 1, j - 2] < best:
                best, how = cost[i - 1, j - 2], 4
            if cost[i - 1, j] + 1 < best:
                best, how = cost[i - 1, j] + 1, 1
            if cost[i, j - 1] + 1 < best:
                best, how = cost[i, j - 1] + 1, 2
            cost[i, j], back[i, j] = best, how
    pairs = []
    i, j = n_o, n_f
    while i > 0 or j > 0:
        how = back[i, j]
        if how == 3:
            pairs.append((i - 1, j - 1, 1))
            i, j = i - 1, j - 1
        elif how == 4:
            pairs.append((i - 1, j - 2, 2))
            i, j = i - 1, j - 2
        elif how == 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def boundaries(tokens: list[str], starts_s: np.ndarray, ends_s: np.ndarray,
               phones: list[tuple[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(system, flite) times in seconds of the comparable boundaries of one utterance.

    ``starts_s``/``ends_s``: each token's time span under the system's durations."""
    tok_idx = [k for k, t in enumerate(tokens) if not is_joiner(t)]
    ph_idx = [k for k, (p, _) in enumerate(phones) if p not in FLITE_PAUSES]
    edges = np.concatenate([[0.0], np.cumsum([d for _, d in phones])])
    pairs = align_phones([tokens[k] for k in tok_idx], [phones[k][0] for k in ph_idx])
    sys_b, ref_b = [], []
    for (i0, j0, n0), (i1, j1, _) in zip(pairs[:-1], pairs[1:]):
        if i1 != i0 + 1 or j1 != j0 + n0:  # an unmatched phone lies between: no comparable boundary
            continue
        a_end, b_start = ends_s[tok_idx[i0]], starts_s[tok_idx[i1]]
        f_end, f_start = edges[ph_idx[j0 + n0 - 1] + 1], edges[ph_idx[j1]]
        sys_b.append(0.5 * (a_end + b_start))
        ref_b.append(0.5 * (f_end + f_start))
    return np.asarray(sys_b), np.asarray(ref_b)


def even_split(num_tokens: int, num_frames: int) -> np.ndarray:
    """The baseline: ``num_frames`` spread evenly over the tokens (largest remainder)."""
    return fix_durations(np.ones(num_tokens, dtype=np.int64), num_frames)


def _spans(d: np.ndarray, fc: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) seconds of each token: the frame edges before its first and after its last frame."""
    t = fc.frame_edge_seconds(np.concatenate([[0], np.cumsum(d)]).astype(np.float64))
    return t[:-1], t[1:]


SHIFTS = tuple(range(-6, 7))  # frames, for the lag scan


def evaluate_utterance(tokens: list[str], durations: np.ndarray, phones: list[tuple[str, float]],
                       fc: FeatureConfig, attn_durations: np.ndarray | None = None) -> dict:
    """Boundary errors (ms) of the system's durations (frames of ``fc``) and of the even split for
    one utterance (and of the attention-only durations of a refined dump, as ``teacher_attention``)."""
    d = np.asarray(durations, dtype=np.int64)
    ms_per_frame = 1000.0 * fc.frame_shift_s
    out = {}
    systems = [("teacher", d), ("even_split", even_split(len(tokens), int(d.sum())))]
    if attn_durations is not None:
        systems.append(("teacher_attention", np.asarray(attn_durations, dtype=np.int64)))
    for name, dur in systems:
        s, e = _spans(dur, fc)
        sys_b, ref_b = boundaries(tokens, s, e, phones)
        out[name] = 1000.0 * (sys_b - ref_b)
    joiner = [k for k, t in enumerate(tokens) if is_joiner(t)]
    out["joiner_ms"] = (d[joiner] * ms_per_frame).tolist()
    out["phone_ms"] = (np.delete(d, joiner) * ms_per_frame).tolist()
    return out


def _read_dump(dump: str) -> tuple[dict, dict[str, str]]:
    import json


    info_path, index = os.path.join(dump, "dump_info.json"), os.path.join(dump, "index.scp")
    for p in (info_path, index, os.path.join(dump, "feature_config.yaml")):
        if not os.path.exists(p):
            raise SpeechkdError("not a teacher dump (no " + os.path.basename(p) + ")", path=dump,
                                hint="pass the kd-mode dir, e.g. dump/teacher/train/teacher_forced")
    info = json.load(open(info_path, encoding="utf-8"))
    if info.get("kd_mode") != "teacher_forced":
        raise SpeechkdError(f"kd_mode is {info.get('kd_mode')!r}: durations of free-running mels do not split "
                            "the recorded audio", path=dump, field="kd_mode",
                            hint="evaluate the teacher_forced dump")
    return info, {u: v.split()[0] for u, v in read_table(index).items()}


def _default_tokens(info: dict, dump: str) -> str:
    """<dump root>/tokens/<split>/tokens beside the feats dir the dump was made from."""
    src = info.get("source", "")
    root, split = os.path.dirname(os.path.dirname(src)), os.path.basename(src)
    path = os.path.join(root, "tokens", split, "tokens")
    if not src or not os.path.exists(path):
        raise SpeechkdError(f"cannot find the dump's token file ({path or 'no source in dump_info.json'})",
                            path=dump, field="--tokens", hint="pass --tokens dump/tokens/<split>/tokens")
    return path


def _missing(ids: list[str], where: str) -> str:
    return f"{len(ids)} utterance(s) of the dump have no entry in {where}: {', '.join(ids[:5])}" + \
        (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def evaluate_dump(dump: str, data_dir: str, tokens_path: str | None = None, min_focus_rate: float = 0.0,
                  num_utts: int = 0) -> dict:
    """Duration accuracy of a teacher_forced dump against ``<data_dir>/phone_durations``."""
    info, index = _read_dump(dump)
    pd_path = os.path.join(data_dir, "phone_durations")
    if not os.path.exists(pd_path):
        raise SpeechkdError("no phone_durations file: the truth comes from flite -psdur", path=data_dir,
                            field="phone_durations",
                            hint="only flite corpora (speechkd corpus mini_en) record phone timings")
    truth = read_table(pd_path)
    tokens_path = tokens_path or _default_tokens(info, dump)
    tokens = read_tokens(tokens_path)
    fc = FeatureConfig.load(os.path.join(dump, "feature_config.yaml"))
    hop, sr = fc.hop_length, fc.sample_rate
    utts = sorted(index)
    for table, where in ((truth, pd_path), (tokens, tokens_path)):
        miss = [u for u in utts if u not in table]
        if miss:
            raise SpeechkdError(_missing(miss, where), path=where, utt=miss[0],
                                hint="the dump, the data dir and the token file must come from the same split")
    if num_utts > 0:
        utts = utts[:num_utts]
    errs: dict[str, list[np.ndarray]] = {"teacher": [], "even_split": []}
    rows, skipped, joiner_ms, phone_ms = [], [], [], []
    for u in utts:
        with np.load(os.path.join(dump, index[u])) as z:
            d, rate = z["durations"].astype(np.int64), float(z["focus_rate"])
            d_attn = z["durations_attn"].astype(np.int64) if "durations_attn" in z.files else None
        phones = parse_phone_durations(truth[u], u, pd_path)
        if len(d) != len(tokens[u]):
            raise SpeechkdError(f"{len(d)} durations in the dump but {len(tokens[u])} tokens", path=tokens_path,
                                utt=u, field="durations", hint="the token file is not the one the teacher saw")
        expected = 1 + int(round(sum(p[1] for p in phones) * sr)) // hop
        if abs(int(d.sum()) - expected) > 2:
            raise SpeechkdError(f"durations cover {int(d.sum())} frames but flite's phones last "
                                f"{sum(p[1] for p in phones):.3f} s ({expected} frames at hop {hop})",
                                path=pd_path, utt=u, hint="the dump and the data dir describe different audio")
        if rate < min_focus_rate:
            skipped.append({"utt": u, "focus_rate": rate})
            continue
        # HiFi-GAN's pad p frames like a window of n_fft - 2p without it (frame edges move back by p)
        r = evaluate_utterance(tokens[u], d, phones, fc, attn_durations=d_attn)
        if d_attn is not None:
            errs.setdefault("teacher_attention", [])
        for k in errs:
            if k in r:
                errs[k].append(r[k])
        joiner_ms += r["joiner_ms"]
        phone_ms += r["phone_ms"]
        rows.append({"utt": u, "focus_rate": rate, "num_boundaries": int(len(r["teacher"])),
                     **{f"{k}_mean_abs_ms": float(np.abs(r[k]).mean()) if len(r.get(k, ())) else None
                        for k in errs},
                     "teacher_mean_signed_ms": float(r["teacher"].mean()) if len(r["teacher"]) else None})
    if not rows:
        raise SpeechkdError(f"no utterance left to evaluate (min focus rate {min_focus_rate})", path=dump)
    pooled = {k: np.concatenate(v) for k, v in errs.items()}
    ms_per_frame = 1000.0 * hop / sr
    scan = {k: float(np.abs(pooled["teacher"] + k * ms_per_frame).mean()) for k in SHIFTS}
    best = min(scan, key=scan.get)
    summary = {k: {**BoundaryStats(v).as_dict(),
                   "utterance_mean_abs_ms": mean_ci([r[f"{k}_mean_abs_ms"] for r in rows
                                                             if r.get(f"{k}_mean_abs_ms") is not None]).as_dict()}
               for k, v in pooled.items()}
    flite_phone_ms = [1000 * d for u in utts for p, d in parse_phone_durations(truth[u]) if p not in FLITE_PAUSES]
    return {"teacher_dump": os.path.abspath(dump), "data_dir": os.path.abspath(data_dir), "tokens": tokens_path,
            "checkpoint": info.get("checkpoint"), "step": info.get("step"),
            "reduction_factor": info.get("reduction_factor"), "duration_shift_frames": info.get("shift_frames", 0),
            "attention": info.get("attention", "head"), "refine": info.get("refine"),
            "frame_ms": ms_per_frame, "center": fc.center, "num_utts": len(rows), "min_focus_rate": min_focus_rate,
            "skipped_low_focus_rate": skipped, "summary": summary,
            "lag_scan": {"shift_frames_to_mean_abs_ms": {str(k): v for k, v in scan.items()},
                         "best_shift_frames": best, "best_mean_abs_ms": scan[best],
                         "note": "teacher boundaries moved by k frames (k < 0: earlier)"},
            "mean_duration_ms": {"joiner_tokens": float(np.mean(joiner_ms)) if joiner_ms else None,
                                 "phone_tokens": float(np.mean(phone_ms)) if phone_ms else None,
                                 "flite_phones": float(np.mean(flite_phone_ms))},
            "utts": rows}


def durations_markdown(res: dict, title: str) -> str:
    """results.md of :func:`evaluate_dump`."""
    s, scan, md_ = res["summary"], res["lag_scan"], res["mean_duration_ms"]
    lines = [f"# {title}", "",
             f"{res['num_utts']} utterances of {res['teacher_dump']} (step {res['step']}, r={res['reduction_factor']}, "
             f"attention {res['attention']}, dump shift {res['duration_shift_frames']} frames) against flite's phone timings in "
             f"{res['data_dir']}/phone_durations; frame {res['frame_ms']:g} ms"
             + (f"; {len(res['skipped_low_focus_rate'])} below focus rate {res['min_focus_rate']:g} left out"
                if res["skipped_low_focus_rate"] else "") + ".", "",
             "| durations | boundaries | mean abs error ms | per-utterance mean [95% CI] | signed lag ms | "
             "median ms | p90 ms | <= 20 ms | <= 50 ms |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    att = "the chosen head" if res["attention"] == "head" else "the mean of all heads"
    ref = res.get("refine") or {}
    rows = [("teacher", f"teacher (MAS on {att})"), ("even_split", "even split (baseline)")]
    if "teacher_attention" in s:
        rows = [("teacher", f"teacher, refined ({ref.get('iters')} iterations, alpha {ref.get('attn_weight')}, "
                            f"beta {ref.get('acoustic_weight')})"),
                ("teacher_attention", f"teacher, attention only (MAS on {att})"), rows[1]]
    for name, label in rows:
        x = s[name]
        lines.append(f"| {label} | {x['num_boundaries']} | {x['mean_abs_ms']:.1f} | "
                     f"{fmt_ci(x['utterance_mean_abs_ms'], 1)} | {x['mean_signed_ms']:+.1f} | "
                     f"{x['median_abs_ms']:.1f} | "
                     f"{x['p90_abs_ms']:.1f} | {100 * x['within_20ms']:.0f}% | {100 * x['within_50ms']:.0f}% |")
    scan_txt = ", ".join(f"{k}: {v:.1f}" for k, v in scan["shift_frames_to_mean_abs_ms"].items())
    lines += ["", f"Lag scan (teacher boundaries moved by k frames -> mean abs error ms): {scan_txt}; best k = "
                  f"{scan['best_shift_frames']} ({scan['best_mean_abs_ms']:.1f} ms).", "",
              f"Mean duration: joiner tokens (<space>, stress marks, punctuation) {md_['joiner_tokens']:.1f} ms, "
              f"phone tokens {md_['phone_tokens']:.1f} ms; flite phones {md_['flite_phones']:.1f} ms.", "",
              "Boundaries: internal phone boundaries of a monotonic alignment of the espeak phonemes to "
              "flite's phones (speechkd/eval/durations.py); signed lag > 0: later than flite."]
    return "\n".join(lines) + "\n"

"""Word and character error rates.

WER = (S + D + I) / N from a Levenshtein alignment of hypothesis against
reference (Levenshtein 1966; the NIST sclite convention: corpus WER is total
errors over total reference words, not the mean of per-utterance rates).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

_PUNCT = re.compile(r"[^\w' ]+")


def normalize_for_wer(text: str) -> str:
    """Lowercase, strip accents and punctuation (apostrophes kept), collapse spaces.
    Hyphens split words ("long-term" -> "long term"), as recognisers emit them."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("-", " ").replace("_", " ")
    text = _PUNCT.sub(" ", text)
    text = " ".join(w.strip("'") for w in text.split())
    return " ".join(text.split())


@dataclass
class EditCounts:
    """Substitutions, deletions and insertions against ``ref_len`` reference units."""

    sub: int = 0
    dele: int = 0
    ins: int = 0
    ref_len: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def rate(self) -> float:
        return self.errors / max(self.ref_len, 1)

    def __add__(self, o: "EditCounts") -> "EditCounts":
        return EditCounts(self.sub + o.sub, self.dele + o.dele, self.ins + o.ins, self.ref_len + o.ref_len)


def edit_counts(ref: list[str], hyp: list[str]) -> EditCounts:
    """Minimum-edit alignment of ``hyp`` to ``ref`` with (S, D, I) counts.

    Among alignments of equal cost, prefers substitutions over a deletion plus
    an insertion (sclite's tie-break)."""
    n, m = len(ref), len(hyp)
    # cost[i, j] and the counts along the chosen path, rolled row by row.
    prev = [(j, 0, 0, j) for j in range(m + 1)]  # (cost, sub, del, ins)
    for i in range(1, n + 1):
        cur = [(i, 0, i, 0)]
        for j in range(1, m + 1):
            c, s, d, ins = prev[j - 1]
            diag = (c, s, d, ins) if ref[i - 1] == hyp[j - 1] else (c + 1, s + 1, d, ins)
            c, s, d, ins = prev[j]
            up = (c + 1, s, d + 1, ins)
            c, s, d, ins = cur[j - 1]
            left = (c + 1, s, d, ins + 1)
            cur.append(min(diag, up, left, key=lambda t: (t[0], -t[1])))
        prev = cur
    _, s, d, ins = prev[m]
    return EditCounts(s, d, ins, n)


def wer_counts(ref: str, hyp: str) -> EditCounts:
    return edit_counts(normalize_for_wer(ref).split(), normalize_for_wer(hyp).split())


def cer_counts(ref: str, hyp: str) -> EditCounts:
    """Character errors over normalised text, spaces included as characters."""
    return edit_counts(list(normalize_for_wer(ref)), list(normalize_for_wer(hyp)))


def bootstrap_rate_ci(counts: list[EditCounts], n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the corpus error rate, resampling utterances."""
    return bootstrap_ratio_ci([c.errors for c in counts], [c.ref_len for c in counts], n_boot, seed, level)


def bootstrap_ratio_ci(num, den, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of sum(num) / sum(den), resampling utterances (the rows): a corpus
    error rate, or with num = errors of A − errors of B a paired difference of rates."""
    if len(num) == 0:
        return float("nan"), float("nan")
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, len(num), size=(n_boot, len(num)))
    rates = num[idx].sum(1) / np.maximum(den[idx].sum(1), 1)
    lo, hi = np.quantile(rates, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)

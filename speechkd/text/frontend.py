"""Text frontend: normalised text -> the token sequence a model sees.

Two kinds of tokens (:class:`Frontend.kind`):

- ``phoneme``: IPA phones from espeak-ng through phonemizer, with stress marks
  as tokens of their own (``ˈ oʊ``; or attached, ``ˈoʊ``), ``<space>`` between words and
  punctuation as its own token (``, . ? ! ; :``; or ``<pau>``, or dropped).
  Numbers, currencies and most abbreviations are read out by espeak itself.
- ``char``: lower-cased letters, apostrophe, ``<space>`` and punctuation;
  numbers are spelled out here (``23`` -> ``twenty three``).

Many utterances are phonemised in one phonemizer call (:meth:`Frontend.batch`):
starting espeak per utterance costs far more than phonemising. The result is
identical to phonemising one utterance at a time.

Example (``speechkd text "Hello, world!"``)::

    h ə l ˈ oʊ , <space> w ˈ ɜː l d !
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from speechkd.config import field
from speechkd.errors import SpeechkdError

logger = logging.getLogger(__name__)

SPACE = "<space>"
_STRESS_RE = re.compile("([ˈˌ])")
PAUSE = "<pau>"
PUNCT = ",.?!;:"
# A run of punctuation becomes one token: the strongest mark of the run ("?!" -> "?", "..." -> ".").
_PUNCT_PRIORITY = "?!.;:,"

_ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "st": "saint", "co": "company",
    "jr": "junior", "sr": "senior", "maj": "major", "gen": "general", "drs": "doctors",
    "rev": "reverend", "lt": "lieutenant", "hon": "honorable", "sgt": "sergeant", "capt": "captain",
    "esq": "esquire", "ltd": "limited", "col": "colonel", "ft": "fort", "vs": "versus",
    "etc": "et cetera", "no": "number",
}
# "No." only before a number ("No. 5"), not at a sentence end ("I said no.").
_ABBREV_RE = re.compile(r"\b(" + "|".join(a for a in _ABBREVIATIONS if a != "no") + r")\.(?=\s|$)"
                        r"|\b(no)\.(?=\s*\d)", re.IGNORECASE)


@dataclass
class Frontend:
    """The text frontend settings, saved as ``frontend.yaml`` beside every token list."""

    kind: Literal["phoneme", "char"] = field("phoneme", help="token kind: phoneme (espeak-ng IPA) or char")
    language: str = field("en-us", help="espeak-ng language/voice for phoneme tokens (e.g. en-us, en-gb)")
    stress: bool = field(True, help="keep primary/secondary stress marks (ˈ ˌ)")
    stress_tokens: bool = field(True, help="stress marks as tokens of their own (ˈ oʊ) rather than attached "
                                           "to the vowel (ˈoʊ): a smaller inventory, so dev/test rarely hold "
                                           "a symbol the training set lacks")
    word_boundary: bool = field(True, help=f"insert a '{SPACE}' token between words")
    punctuation: Literal["keep", "pause", "drop"] = field(
        "keep", help=f"punctuation {PUNCT!r}: keep as its own token, map every mark to '{PAUSE}', or drop it")

    def text_to_tokens(self, text: str, utt: str | None = None) -> list[str]:
        """Tokens of one text; an empty result is an error naming the utterance."""
        return self.batch([text], [utt])[0]

    def batch(self, texts: list[str], utts: list[str | None] | None = None) -> list[list[str]]:
        """Tokens of many texts with one phonemizer call (same result as one at a time)."""
        utts = list(utts) if utts is not None else [None] * len(texts)
        norm = [normalize_text(t, lowercase=(self.kind == "char")) for t in texts]
        if self.kind == "char":
            out = [self._char_tokens(n) for n in norm]
        else:
            out = self._phoneme_tokens(norm)
        for utt, text, toks in zip(utts, texts, out):
            if not toks:
                raise SpeechkdError(f"text {text!r} gives no tokens", utt=utt, field="text",
                                    hint="fix or remove the transcript (`speechkd data fix` drops empty texts)")
        return out

    # ------------------------------------------------------------------ internals
    def _punct_token(self, run: str) -> list[str]:
        if self.punctuation == "drop":
            return []
        if self.punctuation == "pause":
            return [PAUSE]
        return [next(p for p in _PUNCT_PRIORITY if p in run)]

    def _split(self, word: str) -> list[str]:
        """Split a space-separated chunk into phones/chars and one token per punctuation run."""
        out: list[str] = []
        for piece in re.split(f"([{re.escape(PUNCT)}]+)", word):
            if not piece:
                continue
            out.extend(self._punct_token(piece) if piece[0] in PUNCT else [piece])
        return out

    def _join_words(self, words: list[list[str]]) -> list[str]:
        toks: list[str] = []
        for w in words:
            if not w:
                continue
            if toks and self.word_boundary and not _all_punct(w):
                toks.append(SPACE)
            toks.extend(w)
        return toks

    def _char_tokens(self, text: str) -> list[str]:
        words = []
        for word in text.split():
            words.append([t for piece in re.split(f"([{re.escape(PUNCT)}]+)", word) if piece
                          for t in (self._punct_token(piece) if piece[0] in PUNCT else list(piece))])
        return self._join_words(words)

    def _phoneme_tokens(self, norm: list[str]) -> list[list[str]]:
        # Texts without any letter or digit would upset phonemizer's punctuation
        # bookkeeping (it drops them and shifts the following lines): keep them out.
        idx = [i for i, t in enumerate(norm) if any(c.isalnum() for c in t)]
        phon = _phonemize([norm[i] for i in idx], self.language, self.stress) if idx else []
        out: list[list[str]] = [[] for _ in norm]
        for i, p in zip(idx, phon):
            words = [self._split_phones(w) for w in p.split("|")]
            out[i] = self._join_words(words)
        return out

    def _split_phones(self, word: str) -> list[str]:
        toks = [t for chunk in word.split() for t in self._split(chunk)]
        if self.stress and self.stress_tokens:
            toks = [piece for t in toks for piece in _STRESS_RE.split(t) if piece]
        return toks


def _all_punct(tokens: list[str]) -> bool:
    return all(t in PUNCT or t == PAUSE for t in tokens)


def _phonemize(texts: list[str], language: str, stress: bool) -> list[str]:
    from phonemizer.separator import Separator

    backend = _backend(language, stress)
    out = backend.phonemize(texts, separator=Separator(phone=" ", word=" | ", syllable=""), strip=True)
    if len(out) != len(texts):  # never seen; a shifted batch would silently mislabel utterances
        raise SpeechkdError(f"phonemizer returned {len(out)} lines for {len(texts)} texts",
                            hint="report this with the data dir's text file")
    return out


@lru_cache(maxsize=4)
def _backend(language: str, stress: bool):
    from phonemizer.backend import EspeakBackend

    quiet = logging.getLogger("speechkd.text.phonemizer")
    quiet.setLevel(logging.ERROR)  # its "words count mismatch" warnings are noise here
    try:
        return EspeakBackend(language, preserve_punctuation=True, punctuation_marks=PUNCT + "¡¿—…",
                             with_stress=stress, language_switch="remove-flags", logger=quiet)
    except RuntimeError as e:
        raise SpeechkdError(f"espeak-ng backend unavailable for language {language!r}: {e}",
                            field="language", hint="install espeak-ng (`apt-get install espeak-ng`) "
                            "and check `espeak-ng --voices`") from None


def normalize_text(text: str, lowercase: bool = False) -> str:
    """Unicode NFKC, quotes and brackets removed, dashes -> commas, common abbreviations
    expanded, space before punctuation removed, whitespace collapsed. ``lowercase``
    (char tokens) also lower-cases and spells out numbers."""
    t = unicodedata.normalize("NFKC", text)
    t = t.replace("’", "'").replace("‘", "'")
    t = re.sub(r"[\"“”«»()\[\]{}]", " ", t)
    t = re.sub(r"(?<![A-Za-z])'|'(?![A-Za-z])", " ", t)  # quotes, not apostrophes inside words
    t = re.sub(r"\s*[—–]\s*|\s+-+\s+", ", ", t)
    t = t.replace("…", "...")
    t = _ABBREV_RE.sub(lambda m: _ABBREVIATIONS[(m.group(1) or m.group(2)).lower()], t)
    if lowercase:
        t = t.lower()
        t = re.sub(r"(\d+)\.(\d+)", lambda m: f"{m.group(1)} point {' '.join(m.group(2))}", t)
        t = re.sub(r"\d+", lambda m: f" {number_words(int(m.group()))} ", t.replace(",000", "000"))
        t = re.sub(r"[^\w\s'" + re.escape(PUNCT) + "]", " ", t).replace("_", " ")
    t = re.sub(r"\s+([" + re.escape(PUNCT) + "])", r"\1", t)
    t = re.sub(r"([,;:!?])(?=[^\W\d_])", r"\1 ", t)  # "Hello,world" -> "Hello, world"
    t = re.sub(r"^[\s" + re.escape(PUNCT) + "]+", "", t)  # no leading pause
    return re.sub(r"\s+", " ", t).strip()


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """English words of a non-negative integer (``1999`` -> ``one thousand nine hundred ninety nine``)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_words(n % 100))
    for div, name in ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= div:
            if n >= div * 1000:  # beyond the table: read digit by digit
                return " ".join(_ONES[int(d)] for d in str(n))
            rest = n % div
            return number_words(n // div) + " " + name + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError(n)


def text_to_tokens(text: str, utt: str | None = None, frontend: Frontend | None = None) -> list[str]:
    """Tokens of one text with ``frontend`` (default: English phonemes with stress)."""
    return (frontend or Frontend()).text_to_tokens(text, utt)


def encode_texts(frontend: Frontend, token_list, texts, utts, on_unknown: str = "error") -> list:
    """Token ids of each text through ``frontend`` and ``token_list`` (a :class:`TokenList`), or the
    SpeechkdError that text causes (empty, no tokens, unknown symbols): one bad text never stops
    the others. Every synthesizer's text path (PyTorch and exported)."""
    out: list = [SpeechkdError("empty text", utt=u, field="text", hint="give a sentence; drop empty lines")
                 if not t.strip() else [] for t, u in zip(texts, utts)]
    live = [i for i, t in enumerate(texts) if t.strip()]
    try:  # one phonemizer call for all (much faster than one per text) ...
        toks = dict(zip(live, frontend.batch([texts[i] for i in live], [utts[i] for i in live])))
    except SpeechkdError:  # ... and one at a time to find the text that fails
        toks = {}
        for i in live:
            try:
                toks[i] = frontend.text_to_tokens(texts[i], utts[i])
            except SpeechkdError as e:
                out[i] = e
    for i, tk in toks.items():
        try:
            out[i] = token_list.encode(tk, utt=utts[i], on_unknown=on_unknown)
        except SpeechkdError as e:
            out[i] = e
    return out

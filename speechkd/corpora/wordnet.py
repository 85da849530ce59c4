"""Prompt sentences from the example sentences of Debian ``wordnet-base``.

WordNet's ``data.{noun,verb,adj,adv}`` glosses hold usage examples in double
quotes after the definition (``... | cause to be calm; "The patient must be
sedated"``): ~48,000 quoted strings, ~23,000 of 6+ words. Kept are strings of
6-20 words made of plain ASCII letters, spaces and ``, . ' ? ! -`` that look
like sentences: starting upper case, or starting lower case with a subject
word and a finite verb (which drops fragments such as "a door flush with the
wall"). Digits are dropped too: flite and espeak read numbers differently, and
flite's phone timings must match the text a student model reads.

A fixed tenth of the pool (by a hash of the normalised text) is held out for
noise babble (:func:`heldout_sentences`), so babble never speaks a text of
the speech corpora whatever their seeds.
"""

from __future__ import annotations

import logging
import re
import zlib
from functools import lru_cache
from pathlib import Path

from speechkd.corpora.common import dedupe, dedupe_key, require_path, seeded_shuffle
from speechkd.errors import SpeechkdError

logger = logging.getLogger(__name__)

WORDNET_DIR = Path("/usr/share/wordnet")
PACKAGE = "wordnet-base"
POS = ("noun", "verb", "adj", "adv")
MIN_WORDS, MAX_WORDS = 6, 20

_QUOTED = re.compile(r'"([^"]*)"')
_ALLOWED = re.compile(r"[A-Za-z][A-Za-z ,.'?!-]*")
_SUBJECTS = {"i", "he", "she", "it", "we", "they", "you", "there", "this", "that", "these", "those",
             "the", "a", "an", "his", "her", "their", "our", "my", "its", "your", "some", "many",
             "most", "all", "every", "each", "no", "one", "nobody", "everyone", "someone"}
_FINITE = {"is", "was", "are", "were", "am", "has", "had", "have", "will", "would", "can", "could",
           "should", "shall", "may", "might", "must", "did", "does", "do", "isn't", "wasn't",
           "don't", "doesn't", "didn't", "won't", "can't", "couldn't", "wouldn't", "hasn't",
           "hadn't", "haven't", "aren't", "weren't", "he's", "she's", "it's", "they're", "we're",
           "i'm", "you're", "there's", "that's", "got", "went", "made", "took", "gave", "came",
           "saw", "felt", "left", "kept", "said", "told", "thought", "knew", "found", "ran",
           "began", "became", "brought", "bought", "held", "stood", "fell", "sat", "lost", "won",
           "paid", "met", "put", "set", "let", "cut", "hit", "sold", "sent", "spent", "built"}


def clean_sentence(q: str, verbs: frozenset[str] = frozenset()) -> str | None:
    """The quoted string ``q`` as a prompt sentence, or None if it does not look like one.

    ``verbs``: WordNet verb lemmas, to recognise finite verbs ("creates", "yielded") in
    sentences that start in lower case.
    """
    q = re.sub(r"\s+([,.?!])", r"\1", " ".join(q.split()))  # "iris , islands" -> "iris, islands"
    words = q.split()
    if not (MIN_WORDS <= len(words) <= MAX_WORDS) or not _ALLOWED.fullmatch(q):
        return None
    if ".." in q or "--" in q or ",," in q or re.search(r"(^|\s)['-]|['-](\s|$|[,.?!])", q):
        return None  # ellipses, dashes, quotation marks ('hot' and 'cold'), dangling hyphens
    if re.search(r"[.?!].", q.rstrip(".?!")) and not re.search(r"\b[A-Z]\.", q):
        return None  # two sentences glued together ("He left. She stayed.")
    if q[-1] == ",":
        return None
    if q[0].islower():
        lw = [w.strip(",.?!").lower() for w in words]
        if lw[0] not in _SUBJECTS or not any(_is_finite(w, verbs) for w in lw[1:]):
            return None
        q = q[0].upper() + q[1:]
    return q if q[-1] in ".?!" else q + "."


def _is_finite(w: str, verbs: frozenset[str]) -> bool:
    if w in _FINITE:
        return True
    for suffix, repl in (("ied", "y"), ("ies", "y"), ("ed", ""), ("ed", "e"), ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) > len(suffix) + 2 and w[: -len(suffix)] + repl in verbs:
            return True
    return False


def _check() -> None:
    for pos in POS:
        require_path(WORDNET_DIR / f"data.{pos}", PACKAGE)


@lru_cache(maxsize=1)
def _verbs() -> frozenset[str]:
    out = set()
    with open(WORDNET_DIR / "index.verb", encoding="latin-1") as f:
        for line in f:
            if not line.startswith(" "):
                out.add(line.split(" ", 1)[0])
    return frozenset(out)


@lru_cache(maxsize=1)
def _pool() -> tuple[str, ...]:
    """All usable sentences, de-duplicated, in C order (independent of file order)."""
    _check()
    verbs = _verbs()
    found = []
    for pos in POS:
        with open(WORDNET_DIR / f"data.{pos}", encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or " | " not in line:
                    continue  # licence header lines
                for q in _QUOTED.findall(line.split(" | ", 1)[1]):
                    s = clean_sentence(q, verbs)
                    if s is not None:
                        found.append(s)
    pool = tuple(dedupe(sorted(set(found)), lambda s: s))
    logger.info("wordnet: %d prompt sentences from %s", len(pool), WORDNET_DIR)
    return pool


def _heldout(s: str) -> bool:
    return zlib.crc32(dedupe_key(s).encode()) % 10 == 0


def sentences(n: int | None, seed: int) -> list[str]:
    """``n`` prompts (all if None) for the speech corpora, in a seeded order.

    The first ``n`` of a seed do not depend on ``n``: a larger corpus extends a smaller one.
    """
    pool = [s for s in _pool() if not _heldout(s)]
    if n is not None and n > len(pool):
        raise SpeechkdError(f"asked for {n} prompts, WordNet offers {len(pool)}",
                            hint="lower --num-utts")
    return seeded_shuffle(pool, seed)[:n]


def heldout_sentences(n: int, seed: int) -> list[str]:
    """``n`` prompts from the held-out tenth of the pool (never in :func:`sentences`)."""
    pool = [s for s in _pool() if _heldout(s)]
    return seeded_shuffle(pool, seed)[:n]

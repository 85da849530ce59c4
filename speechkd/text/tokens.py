"""Token lists: token <-> integer id, saved as ``tokens.txt`` (one token per line, id = line number).

The first lines are always the special tokens, in this order::

    0  <pad>    padding (and the blank of CTC-style losses)
    1  <unk>    only produced with ``on_unknown="map"``
    2  <eos>    end of sequence, for models that append one

followed by the tokens seen in the training text, most frequent first (ties
in code-point order), so the same text always gives the same list.

Unknown symbols: by default :meth:`TokenList.encode` refuses a token that is not
in the list, with an :class:`UnknownSymbolError` naming the utterance and every
unknown symbol; ``on_unknown="map"`` maps them to ``<unk>`` instead (with a
warning), which is the documented alternative for dev/test text that holds a
symbol the training text lacks.
"""

from __future__ import annotations

import collections
import logging
import os
from typing import Iterable, Literal

from speechkd.data.kaldi import read_table, write_table
from speechkd.errors import SpeechkdError
from speechkd.utils.io import atomic_write_text

logger = logging.getLogger(__name__)

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
SPECIALS = (PAD, UNK, EOS)


class UnknownSymbolError(SpeechkdError):
    """Text that holds symbols the token list does not know."""


class TokenList:
    """An ordered token inventory; ``ids[token]`` and ``tokens[id]``."""

    def __init__(self, tokens: Iterable[str], path: str | None = None):
        self.tokens: list[str] = list(tokens)
        self.path = path
        where = path or "<token list>"
        if tuple(self.tokens[:len(SPECIALS)]) != SPECIALS:
            raise SpeechkdError(f"token list must start with {', '.join(SPECIALS)}, starts with "
                                f"{self.tokens[:len(SPECIALS)]}", path=where,
                                hint="rebuild it with `speechkd text --build-token-list`")
        self.ids: dict[str, int] = {}
        for i, t in enumerate(self.tokens):
            if not t or any(c.isspace() for c in t):
                raise SpeechkdError(f"line {i + 1}: token {t!r} is empty or holds whitespace", path=where)
            if t in self.ids:
                raise SpeechkdError(f"token {t!r} on lines {self.ids[t] + 1} and {i + 1}", path=where)
            self.ids[t] = i

    pad_id = 0
    unk_id = 1
    eos_id = 2

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenList) and self.tokens == other.tokens

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TokenList":
        path = str(path)
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            raise SpeechkdError("token list does not exist", path=path,
                                hint="build it first: `speechkd text --data-dir data/train --out ... "
                                     "--build-token-list PATH`") from None
        return cls([ln.strip() for ln in lines if ln.strip()], path=path)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, "".join(t + "\n" for t in self.tokens))
        self.path = str(path)

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """The distinct symbols of ``tokens`` not in the list, in order of appearance."""
        return list(dict.fromkeys(t for t in tokens if t not in self.ids))

    def encode(self, tokens: list[str], utt: str | None = None,
               on_unknown: Literal["error", "map"] = "error") -> list[int]:
        """Ids of ``tokens``. Unknown symbols: an error naming utterance and symbols, or ``<unk>``."""
        unk = self.unknown(tokens)
        if unk:
            msg = f"unknown symbol(s) {', '.join(repr(u) for u in unk)} not in the token list"
            if on_unknown == "error":
                raise UnknownSymbolError(msg, path=self.path, utt=utt,
                                         hint="the training text lacks them: rebuild the token list from "
                                              "text that has them, fix the transcript, or map them to "
                                              f"{UNK} (`--on-unknown map`)")
            logger.warning("%s%s; mapped to %s", f"utterance '{utt}': " if utt else "", msg, UNK)
        return [self.ids.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]


def build_token_list(token_seqs: Iterable[list[str]], extra: Iterable[str] = ()) -> TokenList:
    """A token list from tokenised texts (most frequent first) plus ``extra`` symbols."""
    counts: collections.Counter[str] = collections.Counter()
    for seq in token_seqs:
        counts.update(seq)
    for t in extra:
        counts.setdefault(t, 0)
    for s in SPECIALS:
        counts.pop(s, None)
    ordered = sorted(counts, key=lambda t: (-counts[t], t))
    return TokenList(list(SPECIALS) + ordered)


def write_tokens(path: str, seqs: dict[str, list[str]]) -> None:
    """A dump's ``tokens`` file: one Kaldi table line ``<utt> <tok> <tok> ...`` per utterance."""
    write_table(path, {u: " ".join(s) for u, s in seqs.items()})


def read_tokens(path: str) -> dict[str, list[str]]:
    """Read a ``tokens`` file written by :func:`write_tokens`."""
    return {u: v.split() for u, v in read_table(path).items()}

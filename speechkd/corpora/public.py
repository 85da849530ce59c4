"""Shared machinery of the readers of published corpora (LJSpeech, VCTK, LibriTTS-R, VoiceBank-DEMAND).

A reader never copies or converts the corpus: it checks the published layout, reads its
metadata and writes Kaldi data dirs whose ``wav.scp`` names the corpus files themselves.
Where a file's rate differs from the recipe's rate, or it is not mono, the entry is a
``sox`` pipe that resamples on the fly (``sox -R FILE -t wav -r RATE -b 16 -c 1 - |``,
Kaldi's extended filename, run by :mod:`speechkd.audio`; ``-R``: repeatable dither, so every
read gives the same samples), so resampling is explicit in
``wav.scp`` and costs no disk. ``utt2dur`` holds each file's duration from its header.

A missing or incomplete corpus raises one :class:`CorpusLayoutError`: which files are
missing, the layout expected, and where the corpus is published.
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import soundfile as sf

from speechkd.corpora.common import require_binary
from speechkd.data.kaldi import DataDir, write_datadir, write_table
from speechkd.errors import SpeechkdError

logger = logging.getLogger(__name__)


class CorpusLayoutError(SpeechkdError):
    """A published corpus that is missing or does not have its published layout."""


@dataclass(frozen=True)
class Entry:
    """One utterance of a published corpus: id (starts with the speaker), speaker, text, audio file."""

    utt_id: str
    spk: str
    text: str
    audio: Path


def layout_error(corpus: str, root: Path, missing: Iterable[str], layout: str, url: str) -> CorpusLayoutError:
    """The one message of an absent or incomplete corpus (at most 5 missing paths named)."""
    missing = list(missing)
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return CorpusLayoutError(
        f"not a complete {corpus}: missing {shown}; expected layout: {layout}",
        path=str(root), hint=f"{corpus} is published at {url}; point --db-root (a recipe: --db_root or its db.sh) at the unpacked corpus")


def find_root(db_root: str | os.PathLike, subdir: str, marker: str) -> Path:
    """``db_root`` itself when it holds ``marker``, else ``db_root/subdir`` (the archive's top dir)."""
    root = Path(db_root)
    if not (root / marker).exists() and (root / subdir / marker).exists():
        return root / subdir
    return root


def clean_text(text: str) -> str:
    """One line of text: runs of whitespace (newlines included) become one space."""
    return " ".join(text.split())


def read_text_file(path: Path) -> str:
    try:
        return clean_text(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise CorpusLayoutError(f"transcript is not UTF-8 text ({e.reason} at byte {e.start})",
                                path=str(path)) from None


def wav_entry(path: Path, rate: int) -> tuple[str, float]:
    """(wav.scp entry, duration in seconds) of one corpus file read at ``rate`` Hz.

    The file itself when it is mono at ``rate``; otherwise a sox pipe resampling and
    down-mixing it (sox's default high-quality rate conversion).
    """
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise CorpusLayoutError(f"cannot read the audio header ({str(e).splitlines()[0][:160]})",
                                path=str(path), hint="the file is corrupt; re-extract it from the archive") from None
    seconds = info.frames / info.samplerate
    if info.samplerate == rate and info.channels == 1:
        return str(path.resolve()), seconds
    return f"sox -R {shlex.quote(str(path.resolve()))} -t wav -r {rate} -b 16 -c 1 - |", seconds


def write_split(out: Path, entries: list[Entry], rate: int) -> dict:
    """A Kaldi data dir (wav.scp, text, utt2spk, spk2utt, utt2dur) of ``entries``; its counts."""
    if not entries:
        raise SpeechkdError("no utterances for this split", path=str(out),
                            hint="check the corpus and the split options")
    wav, dur = {}, {}
    for e in entries:
        wav[e.utt_id], dur[e.utt_id] = wav_entry(e.audio, rate)
    if any(v.endswith("|") for v in wav.values()):
        require_binary("sox", "sox")
    dd = DataDir(wav_scp=wav, text={e.utt_id: e.text for e in entries},
                 utt2spk={e.utt_id: e.spk for e in entries})
    write_datadir(out, dd)
    write_table(out / "utt2dur", {u: f"{d:.4f}" for u, d in dur.items()})
    return {"utterances": len(entries), "speakers": len({e.spk for e in entries}),
            "minutes": round(sum(dur.values()) / 60.0, 3)}


def check_unique(entries: Iterable[Entry], root: Path) -> None:
    seen: set[str] = set()
    for e in entries:
        if e.utt_id in seen:
            raise CorpusLayoutError("two files give the same utterance id", path=str(root), utt=e.utt_id)
        seen.add(e.utt_id)

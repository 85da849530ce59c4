"""Shared machinery of the readers of published corpora (LJSpeech, VCTK, LibriTTS-R, VoiceBank-DEMAND).

A reader checks the published layout, reads its metadata and writes Kaldi data dirs. Files
already at the recipe's rate (mono wav: LJSpeech at 22.05 kHz, LibriTTS-R at 24 kHz) are named in
place; the others (VCTK's 48 kHz FLAC, VoiceBank-DEMAND's 48 kHz wav) are resampled once, explicitly
(soxr, very high quality), into ``<out>/wav/<split>/<utt>.wav``: every later stage, the listening
page included, then reads plain wav files, and no file is resampled twice. ``utt2dur`` holds each
corpus file's duration from its header.

A missing or incomplete corpus raises one :class:`CorpusLayoutError`: which files are
missing, the layout expected, and where the corpus is published.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import soundfile as sf

from speechkd.corpora.common import load_mono, run_jobs, safe_id, write_wav
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


def audio_header(path: Path) -> sf._SoundFileInfo:
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise CorpusLayoutError(f"cannot read the audio header ({str(e).splitlines()[0][:160]})",
                                path=str(path), hint="the file is corrupt; re-extract it from the archive") from None


def needs_resampling(info: sf._SoundFileInfo, rate: int) -> bool:
    """Whether a file must be converted to be read as-is: another rate, channels or container."""
    return info.samplerate != rate or info.channels != 1 or info.format != "WAV"


def _convert(job: tuple[str, str, int]) -> None:
    """Worker: one corpus file -> 16-bit mono wav at the recipe's rate (soxr, very high quality)."""
    src, dst, rate = job
    write_wav(dst, load_mono(src, rate), rate)


def _converted(job: tuple[str, str, int]) -> bool:
    dst = Path(job[1])
    return dst.exists() and sf.info(str(dst)).samplerate == job[2]


def write_split(outp: Path, name: str, entries: list[Entry], rate: int, nj: int = 1) -> dict:
    """The Kaldi data dir ``outp/name`` (wav.scp, text, utt2spk, spk2utt, utt2dur) of ``entries``.

    Files at the recipe's ``rate`` (mono wav) are named in place; the others are converted
    once into ``outp/wav/name/<utt>.wav`` (``nj`` processes; a rerun converts only what is
    missing). Returns the split's counts.
    """
    if not entries:
        raise SpeechkdError("no utterances for this split", path=str(outp / name),
                            hint="check the corpus and the split options")
    wav, dur, jobs = {}, {}, []
    wav_dir = outp / "wav" / name
    for e in entries:
        info = audio_header(e.audio)
        dur[e.utt_id] = info.frames / info.samplerate
        if not needs_resampling(info, rate):
            wav[e.utt_id] = str(e.audio.resolve())
            continue
        if safe_id(e.utt_id) != e.utt_id:
            raise CorpusLayoutError("utterance id cannot name a file", path=str(e.audio), utt=e.utt_id)
        dst = wav_dir / f"{e.utt_id}.wav"
        jobs.append((str(e.audio), str(dst), rate))
        wav[e.utt_id] = str(dst.resolve())
    if jobs:
        wav_dir.mkdir(parents=True, exist_ok=True)
        for tmp in wav_dir.glob(".*.tmp"):  # left by a killed run
            tmp.unlink()
        ran, kept = run_jobs(_convert, jobs, _converted, nj, desc=f"resampling {name} to {rate} Hz")
        logger.info("%s: %d files resampled to %d Hz, %d already done", name, ran, rate, kept)
    dd = DataDir(wav_scp=wav, text={e.utt_id: e.text for e in entries},
                 utt2spk={e.utt_id: e.spk for e in entries})
    write_datadir(outp / name, dd)
    write_table(outp / name / "utt2dur", {u: f"{d:.4f}" for u, d in dur.items()})
    return {"utterances": len(entries), "speakers": len({e.spk for e in entries}),
            "minutes": round(sum(dur.values()) / 60.0, 3), "resampled": len(jobs)}


def check_unique(entries: Iterable[Entry], root: Path) -> None:
    seen: set[str] = set()
    for e in entries:
        if e.utt_id in seen:
            raise CorpusLayoutError("two files give the same utterance id", path=str(root), utt=e.utt_id)
        seen.add(e.utt_id)

"""``asterisk_en``: real recorded speech, one speaker (Allison Smith), CC-BY-SA-3.0.

docs/data-formats.md, "Built-in corpora". Audio: Debian ``asterisk-core-sounds-en-g722``
(G.722 at 16 kHz, 64 kbit/s, so 2 samples per byte), decoded with Debian's
ffmpeg. Transcripts: ``core-sounds-en.txt.gz`` of ``asterisk-core-sounds-en``,
one ``name: transcript`` line per prompt (``digits/1: one``; sub directories
``digits/``, ``letters/``, ``phonetic/``, ... are in the name).

Dropped: transcripts that are only a bracketed description (``[ascending
tones]``, ``(1 second of silence)``, ``<beep ascending>``), prompts whose
annotations say the audio holds a tone, beep or silence, prompts without audio,
and clips under 0.5 s. Prompts recorded twice with one text (``conf-muted``,
``confbridge-muted``) are both kept, in the same split. Other annotations are removed
(``at [@]`` -> ``at``). Texts are lower-cased, with numbers spelled out and
``#``/``*`` read as "pound"/"star", as the prompts say them.
"""

from __future__ import annotations

import gzip
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechkd.corpora.common import (SR, Utt, prepare_out, require_binary, require_path, run_cmd,
                                     run_jobs, safe_id, seeded_shuffle, split_items,
                                     write_manifest, write_splits, write_wav)
from speechkd.errors import SpeechkdError
from speechkd.text.frontend import number_words

logger = logging.getLogger(__name__)

NAME = "asterisk_en"
SPEAKER = "allison"
SOUNDS_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
MIN_SECONDS = 0.5
LICENSE = ("CC-BY-SA-3.0: Asterisk core sound prompts, recorded by Allison Smith "
           "(Debian asterisk-core-sounds-en-g722, asterisk-core-sounds-en)")

_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")
_NON_SPEECH = re.compile(r"\b(tones?|beeps?|silence|sounds?|plays|music|screaming)\b", re.I)
_FIXES = {"exclaimation-point": "exclamation point", "umute": "unmute"}  # typos in the transcripts



def normalize_transcript(text: str) -> str | None:
    """The spoken words of a transcript, or None for a prompt that is not (only) speech."""
    text = text.strip()
    annotations = _ANNOTATION.findall(text)
    if any(_NON_SPEECH.search(a) for a in annotations):
        return None  # "(simple tone sound plays)": the audio holds more than the words
    text = _ANNOTATION.sub(" ", text)
    text = text.replace("#", " pound ").replace("*", " star ").replace('"', " ")
    text = re.sub(r"\d+", lambda m: f" {number_words(int(m.group()))} ", text)
    text = re.sub(r"\s+([,.?!;:])", r"\1", " ".join(text.split())).lower()
    text = " ".join(_FIXES.get(w, w) for w in text.split())
    text = re.sub(r"^[^a-z0-9]+", "", text)  # "... using your keypad" -> "using your keypad"
    return text if text else None


def parse_transcripts(lines: list[str]) -> dict[str, str]:
    """``name: transcript`` lines -> {name: normalised text}; non-speech prompts dropped.

    Comments (``;``) and blank lines are skipped; a repeated name keeps its first line.
    """
    out: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith(";") or ":" not in line:
            continue
        name, raw = (s.strip() for s in line.split(":", 1))
        text = normalize_transcript(raw)
        if text is None:
            logger.debug("asterisk: dropped %s: %r", name, raw)
        elif name not in out:
            out[name] = text
    return out


@dataclass(frozen=True)
class DecodeJob:
    src: str
    wav: str


def decode_g722(job: DecodeJob) -> None:
    """Decode one G.722 file to a 16 kHz wav; refuse a decode whose length is not ~2 samples/byte."""
    pcm = run_cmd(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "g722", "-i", job.src,
                   "-ar", str(SR), "-ac", "1", "-f", "s16le", "-"], what=job.src)
    wav = np.frombuffer(pcm, dtype="<i2")
    expected = 2 * Path(job.src).stat().st_size
    if abs(len(wav) - expected) > 0.02 * expected + 160:
        raise SpeechkdError(f"decoded {len(wav)} samples, expected ~{expected} at 16 kHz "
                            "(G.722, 64 kbit/s)", path=job.src, hint="check the ffmpeg build")
    write_wav(job.wav, wav.astype(np.int16))


def build(out: str, *, num_utts: int | None = None, seed: int = 1, nj: int = 1,
          num_dev: int | None = None, num_test: int | None = None) -> dict:
    """Decode every usable prompt (or a seeded subset of ``num_utts``) into ``out``."""
    started = time.time()
    require_binary("ffmpeg", "ffmpeg")
    require_path(SOUNDS_DIR, "asterisk-core-sounds-en-g722")
    require_path(TRANSCRIPTS, "asterisk-core-sounds-en")
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as f:
        texts = parse_transcripts(f.read().splitlines())
    missing = [n for n in texts if not (SOUNDS_DIR / f"{n}.g722").exists()]
    if missing:
        logger.info("asterisk: %d prompts have no audio, dropped: %s", len(missing), " ".join(missing))
    names = [n for n in sorted(texts) if n not in missing]
    short = [n for n in names if (SOUNDS_DIR / f"{n}.g722").stat().st_size / 8000 < MIN_SECONDS]
    names = [n for n in names if n not in short]
    logger.info("asterisk: %d prompts kept of %d transcripts (%d under %.1f s)",
                len(names), len(texts), len(short), MIN_SECONDS)
    if num_utts is not None:
        names = sorted(seeded_shuffle(names, seed)[:num_utts])
    outp = prepare_out(out, NAME, seed)
    ids = [f"{SPEAKER}_{safe_id(n.replace('/', '-'))}" for n in names]
    utts = [Utt(i, SPEAKER, texts[n], outp / "wav" / f"{i}.wav") for i, n in zip(ids, names)]
    jobs = [DecodeJob(str(SOUNDS_DIR / f"{n}.g722"), str(u.wav)) for n, u in zip(names, utts)]
    ran, skipped = run_jobs(decode_g722, jobs, lambda j: Path(j.wav).exists(), nj, desc=NAME)
    splits = split_items(seeded_shuffle(utts, seed + 1), num_dev, num_test, key=lambda u: u.text)
    write_splits(outp, splits)
    return write_manifest(outp, NAME, seed, splits, license=LICENSE, started=started,
                          generated=ran, skipped=skipped, source=str(SOUNDS_DIR))

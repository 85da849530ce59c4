"""CSTR VCTK Corpus 0.92 (CC-BY-4.0): 110 English speakers, ~400 sentences each, 48 kHz FLAC.

Published layout (``VCTK-Corpus-0.92.zip``)::

    speaker-info.txt                       ID  AGE  GENDER  ACCENTS  REGION COMMENTS (whitespace columns)
    txt/p225/p225_001.txt                  one sentence
    wav48_silence_trimmed/p225/p225_001_mic1.flac   (DPA 4035 omni microphone)
    wav48_silence_trimmed/p225/p225_001_mic2.flac   (Sennheiser MKH 800 small-diaphragm microphone)

Known quirks, handled and counted in the log and in prepare.json: p315 has audio but its
transcripts were lost (no ``txt/p315``), some transcripts have no recording with the chosen
microphone, and some recordings have no transcript. The recording of one microphone
(``--mic mic1|mic2``) is used, resampled once to the recipe's rate (:mod:`speechkd.corpora.public`).
Split: the utterances are shuffled with a seed and cut into test, dev and train, every
recording of one sentence in the same split (sentences 001-024, the rainbow passage and
the elicitation paragraph, are read by every speaker), so no test text is seen in training.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from speechkd.corpora.common import seeded_shuffle, split_items
from speechkd.corpora.public import Entry, check_unique, find_root, layout_error, read_text_file, write_split
from speechkd.errors import SpeechkdError
from speechkd.utils.io import atomic_write_json

logger = logging.getLogger(__name__)

NAME = "VCTK-Corpus-0.92"
URL = "https://datashare.ed.ac.uk/handle/10283/3443 (VCTK-Corpus-0.92.zip)"
LAYOUT = ("speaker-info.txt, txt/<spk>/<spk>_<nnn>.txt, "
          "wav48_silence_trimmed/<spk>/<spk>_<nnn>_mic1.flac and _mic2.flac")
AUDIO_DIR = "wav48_silence_trimmed"
MICS = ("mic1", "mic2")
RATE = 22050


def read_speaker_info(root: Path) -> dict[str, dict[str, str]]:
    """speaker id -> {age, gender, accents, region}: speaker-info.txt's whitespace-separated columns
    (REGION may be several words or absent; COMMENTS, e.g. p315's, follow it in parentheses)."""
    out = {}
    for line in (root / "speaker-info.txt").read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
        parts = line.split()
        if len(parts) < 3:
            continue
        spk = parts[0] if parts[0][0].isalpha() else f"p{parts[0]}"  # 0.80 wrote 225, 0.92 writes p225
        out[spk] = {"age": parts[1], "gender": parts[2], "accents": parts[3] if len(parts) > 3 else "",
                    "region": " ".join(parts[4:])}
    return out


def prepare(db_root: str | os.PathLike, out: str | os.PathLike, *, rate: int = RATE, mic: str = "mic1",
            num_dev: int = 100, num_test: int = 100, seed: int = 1, speakers: tuple[str, ...] = (),
            nj: int = 1, **_: object) -> dict:
    """Kaldi data dirs ``out/{train,dev,test}`` of VCTK 0.92 (one microphone); returns the counts.

    ``speakers``: only these (e.g. one voice for a single-speaker model); empty: all.
    """
    if mic not in MICS:
        raise SpeechkdError(f"unknown microphone '{mic}' (use mic1 or mic2)", field="--mic")
    root = find_root(db_root, NAME, "speaker-info.txt")
    missing = [p for p in ("speaker-info.txt", "txt", AUDIO_DIR) if not (root / p).exists()]
    if missing:
        raise layout_error(NAME, root, missing, LAYOUT, URL)
    info = read_speaker_info(root)
    audio_spks = sorted(p.name for p in (root / AUDIO_DIR).iterdir() if p.is_dir())
    text_spks = {p.name for p in (root / "txt").iterdir() if p.is_dir()}
    if not audio_spks:
        raise layout_error(NAME, root, [f"{AUDIO_DIR}/<spk>/"], LAYOUT, URL)
    text_only = text_spks - set(audio_spks)  # speakers with transcripts and no recordings at all
    if speakers:
        absent = sorted(set(speakers) - set(audio_spks))
        if absent:
            raise SpeechkdError(f"speakers {absent} have no recordings in {AUDIO_DIR}/", path=str(root),
                                field="--speakers")
        audio_spks = [s for s in audio_spks if s in speakers]
    skipped = {"speakers_without_transcripts": sorted(set(audio_spks) - text_spks),
               "recordings_without_transcript": 0, "empty_transcripts": 0,
               "transcripts_without_audio": sum(len(list((root / "txt" / s).glob("*.txt")))
                                                for s in text_only if not speakers or s in speakers)}
    entries = []
    for spk in audio_spks:
        if spk not in text_spks:
            continue
        audio = {p.name[:-len(f"_{mic}.flac")]: p for p in (root / AUDIO_DIR / spk).glob(f"*_{mic}.flac")}
        texts = {p.stem: p for p in (root / "txt" / spk).glob("*.txt")}
        skipped["recordings_without_transcript"] += len(set(audio) - set(texts))
        skipped["transcripts_without_audio"] += len(set(texts) - set(audio))
        for utt in sorted(set(audio) & set(texts)):
            text = read_text_file(texts[utt])
            if text:
                entries.append(Entry(utt, spk, text, audio[utt]))
            else:
                skipped["empty_transcripts"] += 1
    if not entries:
        raise layout_error(NAME, root, [f"{AUDIO_DIR}/<spk>/<spk>_<nnn>_{mic}.flac with a transcript"],
                           LAYOUT, URL)
    check_unique(entries, root)
    splits = split_items(seeded_shuffle(entries, seed), num_dev, num_test, minimum=0, key=lambda e: e.text)
    outp = Path(out)
    counts = {s: write_split(outp, s, sorted(e, key=lambda x: x.utt_id), rate, nj) for s, e in splits.items() if e}
    skipped["speakers_without_transcripts_recordings"] = sum(
        len(list((root / AUDIO_DIR / s).glob(f"*_{mic}.flac"))) for s in skipped["speakers_without_transcripts"])
    manifest = {"corpus": NAME, "db_root": str(root.resolve()), "sample_rate": rate, "mic": mic, "seed": seed,
                "splits": counts, "skipped": skipped,
                "speakers_in_speaker_info": len(info),
                "speakers_not_in_speaker_info": sorted({e.spk for e in entries} - set(info))}
    atomic_write_json(outp / "prepare.json", manifest)
    logger.info("%s (%s): %s utterances; skipped: %d recordings of speakers without transcripts (%s), "
                "%d recordings without transcript, %d transcripts without %s audio", NAME, mic,
                {s: c["utterances"] for s, c in counts.items()},
                skipped["speakers_without_transcripts_recordings"],
                " ".join(skipped["speakers_without_transcripts"]) or "none",
                skipped["recordings_without_transcript"], skipped["transcripts_without_audio"], mic)
    return manifest

"""LibriTTS-R (Koizumi et al. 2023, CC-BY-4.0): LibriTTS restored, 24 kHz 16-bit mono, by subset.

Published layout (``<subset>.tar.gz`` each unpacks to ``LibriTTS_R/<subset>/``)::

    LibriTTS_R/SPEAKERS.txt         ;-comment lines, then  ID | SEX | SUBSET | MINUTES | NAME
    LibriTTS_R/<subset>/<spk>/<chapter>/<spk>_<chapter>_<n>_<m>.wav
    LibriTTS_R/<subset>/<spk>/<chapter>/<spk>_<chapter>_<n>_<m>.normalized.txt   (the text used)
    LibriTTS_R/<subset>/<spk>/<chapter>/<spk>_<chapter>_<n>_<m>.original.txt

Splits by subset: train from ``--subsets`` (train-clean-100 by default; train-clean-360,
train-other-500 too), dev from dev-clean, test from test-clean (each read only if present
when it is not asked for). Utterance ids are the file names with ``-`` for ``_``
(``103-1241-000000-000001``): with the speaker id first and ``-`` sorting before digits,
utt2spk and spk2utt sort alike (Kaldi's rule; ``103_...`` would sort after ``1034_...``).
A recording without ``.normalized.txt`` is skipped and counted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from speechkd.corpora.public import Entry, check_unique, find_root, layout_error, read_text_file, write_split
from speechkd.errors import SpeechkdError
from speechkd.utils.io import atomic_write_json

logger = logging.getLogger(__name__)

NAME = "LibriTTS_R"
URL = "https://www.openslr.org/141/ (<subset>.tar.gz)"
LAYOUT = ("SPEAKERS.txt and <subset>/<spk>/<chapter>/<spk>_<chapter>_<n>_<m>.wav with "
          ".normalized.txt beside each, subsets train-clean-100, dev-clean, test-clean")
TRAIN_SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500")
RATE = 24000


def read_speakers(root: Path) -> dict[str, dict[str, str]]:
    """speaker id -> {sex, subset, minutes, name} of SPEAKERS.txt (pipe-separated, ';' comments)."""
    out = {}
    for line in (root / "SPEAKERS.txt").read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        parts = [p.strip() for p in line.split("|", 4)]
        if len(parts) == 5:
            out[parts[0]] = {"sex": parts[1], "subset": parts[2], "minutes": parts[3], "name": parts[4]}
    return out


def read_subset(root: Path, subset: str, skipped: dict[str, int]) -> list[Entry]:
    entries = []
    for wav in sorted((root / subset).glob("*/*/*.wav")):
        spk, chapter = wav.parent.parent.name, wav.parent.name
        stem = wav.name[:-len(".wav")]
        if not stem.startswith(f"{spk}_{chapter}_"):
            raise SpeechkdError(f"expected a name {spk}_{chapter}_<n>_<m>.wav", path=str(wav))
        txt = wav.with_name(f"{stem}.normalized.txt")
        text = read_text_file(txt) if txt.is_file() else ""
        if not text:
            skipped[subset] = skipped.get(subset, 0) + 1
            continue
        entries.append(Entry(stem.replace("_", "-"), spk, text, wav))
    return entries


def prepare(db_root: str | os.PathLike, out: str | os.PathLike, *, rate: int = RATE,
            subsets: tuple[str, ...] = ("train-clean-100",), nj: int = 1, **_: object) -> dict:
    """Kaldi data dirs ``out/{train,dev,test}`` of LibriTTS-R; returns the counts."""
    unknown = [s for s in subsets if s not in TRAIN_SUBSETS]
    if unknown or not subsets:
        raise SpeechkdError(f"unknown training subsets {unknown} (choose from {', '.join(TRAIN_SUBSETS)})",
                            field="--subsets")
    root = find_root(db_root, NAME, "SPEAKERS.txt")
    want = {"train": list(subsets), "dev": ["dev-clean"], "test": ["test-clean"]}
    missing = ([] if (root / "SPEAKERS.txt").is_file() else ["SPEAKERS.txt"]) + \
        [f"{s}/" for ss in want.values() for s in ss if not (root / s).is_dir()]
    if missing:
        raise layout_error(NAME, root, missing, LAYOUT, URL)
    speakers = read_speakers(root)
    skipped: dict[str, int] = {}
    splits = {name: [e for s in ss for e in read_subset(root, s, skipped)] for name, ss in want.items()}
    empty = [f"{s}/<spk>/<chapter>/*.wav" for name, ss in want.items() if not splits[name] for s in ss]
    if empty:
        raise layout_error(NAME, root, empty, LAYOUT, URL)
    check_unique([e for es in splits.values() for e in es], root)
    outp = Path(out)
    counts = {s: write_split(outp, s, e, rate, nj) for s, e in splits.items()}
    manifest = {"corpus": NAME, "db_root": str(root.resolve()), "sample_rate": rate, "subsets": want,
                "splits": counts, "skipped": {"recordings_without_normalized_text": skipped},
                "speakers_not_in_SPEAKERS.txt": sorted({e.spk for es in splits.values() for e in es} - set(speakers))}
    atomic_write_json(outp / "prepare.json", manifest)
    logger.info("%s: %s utterances; skipped recordings without .normalized.txt: %s", NAME,
                {s: c["utterances"] for s, c in counts.items()}, skipped or "none")
    return manifest

"""LJSpeech 1.1 (Keith Ito, public domain): one speaker, 13,100 clips, 22.05 kHz 16-bit mono.

Published layout (``LJSpeech-1.1.tar.bz2`` unpacks to ``LJSpeech-1.1/``)::

    LJSpeech-1.1/metadata.csv     id|raw text|normalized text   (pipe-separated, no header)
    LJSpeech-1.1/wavs/LJ001-0001.wav

The normalised column (numbers, abbreviations spelled out) is the text. The texts hold
quote characters that are not CSV quoting (``"`` opens no field), so each line is split on
``|`` only, never parsed as CSV. Held-out split, the ESPnet convention: the last 500 clips
in metadata.csv order, the first 250 of them dev and the last 250 test (``--num-dev``,
``--num-test``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from speechkd.corpora.public import Entry, check_unique, clean_text, find_root, layout_error, write_split
from speechkd.errors import SpeechkdError
from speechkd.utils.io import atomic_write_json

logger = logging.getLogger(__name__)

NAME = "LJSpeech-1.1"
URL = "https://keithito.com/LJ-Speech-Dataset/ (LJSpeech-1.1.tar.bz2)"
LAYOUT = "LJSpeech-1.1/metadata.csv (id|raw text|normalized text) and LJSpeech-1.1/wavs/<id>.wav"
SPEAKER = "LJ"
RATE = 22050


def read_metadata(root: Path) -> list[tuple[str, str, str]]:
    """(id, raw text, normalized text) of every line of metadata.csv, in file order."""
    path = root / "metadata.csv"
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 3 or not fields[0]:
            raise SpeechkdError(f"line {n}: expected 'id|raw text|normalized text', got {len(fields)} fields",
                                path=str(path))
        # A few published lines leave the normalized column empty: the raw text stands in.
        out.append((fields[0].strip(), fields[1], fields[2] or fields[1]))
    return out


def prepare(db_root: str | os.PathLike, out: str | os.PathLike, *, rate: int = RATE,
            num_dev: int = 250, num_test: int = 250, nj: int = 1, **_: object) -> dict:
    """Kaldi data dirs ``out/{train,dev,test}`` of LJSpeech; returns the counts (also in prepare.json)."""
    root = find_root(db_root, NAME, "metadata.csv")
    if not (root / "metadata.csv").is_file():
        raise layout_error(NAME, root, ["metadata.csv"], LAYOUT, URL)
    rows = read_metadata(root)
    missing = [f"wavs/{i}.wav" for i, _, _ in rows if not (root / "wavs" / f"{i}.wav").is_file()]
    if missing:
        raise layout_error(NAME, root, missing, LAYOUT, URL)
    entries = [Entry(i, SPEAKER, clean_text(norm), root / "wavs" / f"{i}.wav") for i, _, norm in rows]
    check_unique(entries, root)
    if num_dev < 0 or num_test < 0 or len(entries) - num_dev - num_test < 1:
        raise SpeechkdError(f"cannot hold out dev={num_dev} and test={num_test} of {len(entries)} clips "
                            "and keep a training set", path=str(root), hint="lower --num-dev/--num-test")
    n_train = len(entries) - num_dev - num_test
    splits = {"train": entries[:n_train], "dev": entries[n_train:n_train + num_dev],
              "test": entries[n_train + num_dev:]}
    outp = Path(out)
    counts = {s: write_split(outp, s, e, rate, nj) for s, e in splits.items() if e}
    manifest = {"corpus": NAME, "db_root": str(root.resolve()), "sample_rate": rate, "splits": counts,
                "skipped": {}}
    atomic_write_json(outp / "prepare.json", manifest)
    logger.info("%s: %s", NAME, {s: c["utterances"] for s, c in counts.items()})
    return manifest

"""Shared machinery of the built-in corpora (docs/data-formats.md, "Built-in corpora").

Every corpus follows the same steps: pick prompts (deterministic order, seeded
shuffle, normalised texts de-duplicated), split them into train/dev/test so
that no text is in two splits, generate the audio that is not on disk yet
(``--nj`` worker processes, each wav written atomically, so a killed run
resumes where it stopped), then write the Kaldi data dirs and ``corpus.json``.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import os
import random
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

import numpy as np
import soundfile as sf

from speechkd.data.kaldi import DataDir, write_datadir, write_table
from speechkd.errors import SpeechkdError
from speechkd.utils.io import atomic_write_json, atomic_write_wav

logger = logging.getLogger(__name__)

SR = 16000
SPLITS = ("train", "dev", "test")
INSTALL_HINT = "install it with `bash tools/install_system.sh`"
_PARAMS = ".corpus_params.json"
T = TypeVar("T")


@dataclass
class Utt:
    """One utterance: id (starts with the speaker id), speaker, text and its wav path."""

    utt_id: str
    spk: str
    text: str
    wav: Path
    extra: dict[str, str] = field(default_factory=dict)  # data-dir file name -> value


# --------------------------------------------------------------------------- system checks

def require_binary(name: str, package: str) -> str:
    """Path of executable ``name``, or a SpeechkdError naming the Debian package."""
    path = shutil.which(name)
    if path is None:
        raise SpeechkdError(f"'{name}' is not installed (Debian package {package})", hint=INSTALL_HINT)
    return path


def require_path(path: str | os.PathLike, package: str) -> Path:
    """``path`` if it exists, else a SpeechkdError naming the Debian package that ships it."""
    p = Path(path)
    if not p.exists():
        raise SpeechkdError(f"missing (Debian package {package})", path=str(p), hint=INSTALL_HINT)
    return p


def run_cmd(cmd: Sequence[str], *, input: bytes | None = None, what: str = "") -> bytes:
    """Run a command, return its stdout; a failure raises SpeechkdError with its stderr."""
    proc = subprocess.run(list(cmd), input=input, capture_output=True)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-300:]
        raise SpeechkdError(f"{cmd[0]} failed with status {proc.returncode}: {err}", path=what or None)
    return proc.stdout


# --------------------------------------------------------------------------- text and ids

def dedupe_key(text: str) -> str:
    """Normalised form used to de-duplicate prompts: lower case, letters/digits only."""
    return " ".join(re.sub(r"[^a-z0-9']+", " ", text.lower()).replace("'", "").split())


def dedupe(items: Iterable[T], text: Callable[[T], str]) -> list[T]:
    """Keep the first item of every normalised text (:func:`dedupe_key`), in order."""
    seen: set[str] = set()
    out = []
    for it in items:
        k = dedupe_key(text(it))
        if k and k not in seen:
            seen.add(k)
            out.append(it)
    return out


def safe_id(s: str) -> str:
    """An id made of ``[A-Za-z0-9_-]`` only (other runs of characters become '-')."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", s).strip("-")


def seeded_shuffle(items: Sequence[T], seed: int) -> list[T]:
    out = list(items)
    random.Random(seed).shuffle(out)
    return out


# --------------------------------------------------------------------------- splitting

def split_sizes(n: int, num_dev: int | None = None, num_test: int | None = None,
                frac: float = 0.05, minimum: int = 1) -> tuple[int, int, int]:
    """(train, dev, test) sizes: dev/test default to ``frac`` of ``n`` (at least ``minimum``)."""
    dev = max(minimum, round(frac * n)) if num_dev is None else num_dev
    test = max(minimum, round(frac * n)) if num_test is None else num_test
    if dev < 0 or test < 0 or n - dev - test < 1:
        raise SpeechkdError(f"cannot split {n} utterances into dev={dev}, test={test} and a "
                            "non-empty train set", hint="raise --num-utts or lower --num-dev/--num-test")
    return n - dev - test, dev, test


def split_items(items: Sequence[T], num_dev: int | None = None, num_test: int | None = None,
                minimum: int = 1, key: Callable[[T], str] | None = None) -> dict[str, list[T]]:
    """Cut an (already shuffled) list into train/dev/test: test first, then dev, rest train.

    ``key``: items with the same normalised ``key`` text (:func:`dedupe_key`) stay in one
    split (two recordings of one prompt); sizes then count such groups.
    """
    groups: dict[str, list[T]] = {}
    for n, it in enumerate(items):
        groups.setdefault(dedupe_key(key(it)) if key else str(n), []).append(it)
    g = list(groups.values())
    _, dev, test = split_sizes(len(g), num_dev, num_test, minimum=minimum)
    flat = lambda gs: [it for grp in gs for it in grp]  # noqa: E731
    return {"train": flat(g[test + dev:]), "dev": flat(g[test:test + dev]), "test": flat(g[:test])}


# --------------------------------------------------------------------------- output dir

def prepare_out(out: str | os.PathLike, name: str, seed: int, **settings) -> Path:
    """Create ``out``; refuse a dir built by another corpus, seed or generation ``settings`` (its wavs
    would be wrong: an existing wav is reused, not made again).

    Utterance ids are a function of (corpus, seed), so an existing wav is reused only
    when these match. Temporary files left by a killed run are removed.
    """
    out = Path(out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    params = {"name": name, "seed": seed, **settings}
    p = out / _PARAMS
    if p.exists():
        old = json.loads(p.read_text())
        if old != params:
            diff = ", ".join(f"{k} {old.get(k)!r} there, {params.get(k)!r} here"
                             for k in dict.fromkeys([*params, *old]) if old.get(k) != params.get(k))
            raise SpeechkdError(f"holds corpus '{old.get('name')}' built with other settings ({diff})", path=str(out),
                                hint="use another --out or delete that directory")
    else:
        atomic_write_json(p, params)
    for tmp in (out / "wav").rglob(".*.tmp"):
        tmp.unlink()
    return out


def run_jobs(fn: Callable[[T], None], jobs: Sequence[T], done: Callable[[T], bool],
             nj: int = 1, desc: str = "generating") -> tuple[int, int]:
    """Run ``fn`` on every job not ``done`` yet, over ``nj`` processes. (ran, skipped)."""
    todo = [j for j in jobs if not done(j)]
    skipped = len(jobs) - len(todo)
    if skipped:
        logger.info("%s: %d of %d already on disk, skipped", desc, skipped, len(jobs))
    from tqdm import tqdm

    with tqdm(total=len(todo), desc=desc, unit="utt", disable=None) as bar:
        if nj <= 1 or len(todo) <= 1:
            for j in todo:
                fn(j)
                bar.update()
        else:
            with cf.ProcessPoolExecutor(max_workers=nj) as ex:
                for _ in ex.map(fn, todo, chunksize=max(1, min(16, len(todo) // (4 * nj)))):
                    bar.update()
    return len(todo), skipped


# --------------------------------------------------------------------------- audio

def to_int16(wav: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16 (clipped), for exact 16-bit PCM writes."""
    if wav.dtype == np.int16:
        return wav
    return np.clip(np.round(wav * 32767.0), -32768, 32767).astype(np.int16)


def resample(wav: np.ndarray, sr: int, target: int = SR) -> np.ndarray:
    """Explicit resampling (soxr, very high quality); a no-op at the target rate."""
    if sr == target:
        return wav
    import soxr

    return soxr.resample(wav.astype(np.float32), sr, target, quality="VHQ")


def load_mono(path: str | os.PathLike, target: int = SR) -> np.ndarray:
    """Any sound file libsndfile reads (wav, flac, ogg) as float32 mono at ``target`` Hz."""
    wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(wav.mean(axis=1), sr, target).astype(np.float32)


def write_wav(path: str | os.PathLike, wav: np.ndarray, sr: int = SR) -> None:
    """16-bit PCM mono wav, written atomically (a killed run leaves no partial file)."""
    atomic_write_wav(path, to_int16(wav), sr, subtype="PCM_16")


def wav_seconds(path: str | os.PathLike) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


# --------------------------------------------------------------------------- writing

def write_splits(out: Path, splits: dict[str, list[Utt]]) -> None:
    """One Kaldi data dir per split; ``Utt.extra`` keys become extra files (C-sorted)."""
    for name, utts in splits.items():
        dd = DataDir(wav_scp={u.utt_id: str(u.wav.resolve()) for u in utts},
                     text={u.utt_id: u.text for u in utts},
                     utt2spk={u.utt_id: u.spk for u in utts})
        write_datadir(out / name, dd)
        for extra in sorted({k for u in utts for k in u.extra}):
            write_table(out / name / extra, {u.utt_id: u.extra[extra] for u in utts if extra in u.extra})


def write_manifest(out: Path, name: str, seed: int, splits: dict[str, list[Utt]], *,
                   license: str, started: float, generated: int, skipped: int,
                   **extra) -> dict:
    """``corpus.json``: counts, minutes and speakers per split, license, build time."""
    minutes = {s: round(sum(wav_seconds(u.wav) for u in utts) / 60.0, 3) for s, utts in splits.items()}
    manifest = {
        "name": name,
        "seed": seed,
        "sample_rate": SR,
        "counts": {s: len(u) for s, u in splits.items()},
        "minutes": {**minutes, "total": round(sum(minutes.values()), 3)},
        "speakers": sorted({u.spk for utts in splits.values() for u in utts}),
        "license": license,
        "generated": generated,
        "skipped_existing": skipped,
        "build_seconds": round(time.time() - started, 2),
        **extra,
    }
    atomic_write_json(out / "corpus.json", manifest)
    logger.info("%s: %s utterances, %.1f min, %d speakers in %.1f s -> %s", name,
                manifest["counts"], manifest["minutes"]["total"], len(manifest["speakers"]),
                manifest["build_seconds"], out)
    return manifest

"""Tiny generated corpora for the SE tests: speech-like harmonic tones and high-passed noise
in the on-disk layout of ``speechkd corpus mini_en`` / ``noise`` (milliseconds to make)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from speechkd.corpora.noise import colored_noise, highpass
from speechkd.data.kaldi import DataDir, write_datadir

SR = 16000


def speechlike(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Harmonics of a gliding F0 under a syllable-rate (4 Hz) envelope, with leading/trailing silence."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = rng.uniform(120, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None) ** 2
    env[: int(0.1 * SR)] = 0
    env[-int(0.1 * SR):] = 0
    return (0.3 * x * env / np.max(np.abs(x))).astype(np.float32)


def _write(root: Path, name: str, items: dict[str, tuple[np.ndarray, str]]) -> None:
    wavs = {}
    for utt, (x, _) in items.items():
        p = root / "wav" / f"{utt}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, x, SR, subtype="PCM_16")
        wavs[utt] = str(p.resolve())
    write_datadir(root / name, DataDir(wav_scp=wavs, text={u: f"utterance {u}" for u in items},
                                       utt2spk={u: spk for u, (_, spk) in items.items()}))


def make_corpora(tmp: Path, n_train: int = 8, n_dev: int = 3, n_test: int = 2,
                 speakers: tuple[str, ...] = ("spk",), seed: int = 0) -> tuple[Path, Path]:
    """(speech root with train/dev/test, noise root with in_domain/extraneous) under ``tmp``;
    the speakers take turns within each split."""
    rng = np.random.default_rng(seed)
    speech, noise = tmp / "speech", tmp / "noise"
    i = 0
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        items = {}
        for k in range(n):
            spk = speakers[k % len(speakers)]
            items[f"{spk}_{i:04d}"] = (speechlike(rng.uniform(1.0, 1.5), rng), spk)
            i += 1
        _write(speech, split, items)
    in_domain = {}
    for kind, exponent in (("white", 0.0), ("pink", 1.0)):
        for k in range(5):
            x = highpass(colored_noise(int(rng.uniform(1.5, 2.5) * SR), exponent, rng))
            in_domain[f"{kind}_{k:04d}"] = ((0.5 * x / np.max(np.abs(x))).astype(np.float32), kind)
    _write(noise, "in_domain", in_domain)
    t = np.arange(int(0.6 * SR)) / SR
    extraneous = {f"chirp_{k}": ((0.4 * np.sin(2 * np.pi * (500 + 2000 * k) * t * (1 + t))).astype(np.float32), "event")
                  for k in range(2)}
    _write(noise, "extraneous", extraneous)
    return speech, noise

"""Format-faithful replicas of published corpora, for tests (in the spirit of lhotse's test fixtures).

Each ``make_<corpus>(root, ...)`` writes a small directory with the published corpus's file
names, formats, sample rates, metadata files and known quirks, its speech spoken by flite
voices (resampled to the corpus's rate), and returns the directory a user would pass as
``--db-root``. The readers in :mod:`speechkd.corpora` (and the recipes' ``local/data.sh``)
cannot tell a replica from the corpus by its layout; only the sizes differ.

Quirks reproduced: LJSpeech's quote characters inside texts and raw vs normalised columns;
VCTK's speaker p315 with audio and no transcripts, transcripts without audio, two
microphones; LibriTTS-R's speaker ids that are prefixes of others (``103``, ``1034``) and
its ``.original.txt`` beside ``.normalized.txt``; VoiceBank-DEMAND's paired clean/noisy
files and its test speakers p232, p257.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from speechkd.corpora.common import resample
from speechkd.corpora.synth import FLITE_VOICES, SynthJob, check_voice, synthesize

# (raw text, normalised text): the raw column keeps digits, abbreviations and quote characters
TEXTS: tuple[tuple[str, str], ...] = (
    ('The printer said "good type" was the first need.', 'The printer said "good type" was the first need.'),
    ("In 1470 the press came to Paris.", "In fourteen seventy the press came to Paris."),
    ("Mr. Smith read the 'old' letters aloud.", "Mister Smith read the 'old' letters aloud."),
    ("Please call Stella.", "Please call Stella."),
    ("The rainbow is a division of white light.", "The rainbow is a division of white light."),
    ('He wrote, "the work is done," and left at 5 p.m.', 'He wrote, "the work is done," and left at five p.m.'),
    ("Ask her to bring these things with her.", "Ask her to bring these things with her."),
    ("When the sunlight strikes raindrops, they act as a prism.", "When the sunlight strikes raindrops, they act as a prism."),
)


def _say(text: str, voice: str, rate: int) -> np.ndarray:
    """flite ``voice`` saying ``text``, float32 mono at ``rate`` Hz."""
    check_voice("flite", voice)
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "x.wav")
        synthesize(SynthJob("flite", voice, text, wav))
        x, sr = sf.read(wav, dtype="float32")
    return resample(x, sr, rate).astype(np.float32)


def _write(path: Path, wav: np.ndarray, rate: int, fmt: str = "WAV") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(wav, -1.0, 1.0), rate, subtype="PCM_16", format=fmt)


def _voice(i: int) -> str:
    return FLITE_VOICES[i % len(FLITE_VOICES)]


# --------------------------------------------------------------------------- LJSpeech 1.1

def make_ljspeech(root: str | os.PathLike, n_utts: int = 6) -> Path:
    """``root/LJSpeech-1.1``: metadata.csv (``id|raw|normalized``, no header) and wavs/ at 22.05 kHz."""
    top = Path(root) / "LJSpeech-1.1"
    lines = []
    for i in range(n_utts):
        utt = f"LJ{1 + i // 4:03d}-{1 + i % 4:04d}"
        raw, norm = TEXTS[i % len(TEXTS)]
        _write(top / "wavs" / f"{utt}.wav", _say(norm, "slt", 22050), 22050)
        lines.append(f"{utt}|{raw}|{norm}\n")
    (top / "metadata.csv").write_text("".join(lines), encoding="utf-8")
    (top / "README").write_text("LJ Speech Dataset replica (speechkd.testing.replicas): flite speech.\n")
    return top


# --------------------------------------------------------------------------- VCTK 0.92

def make_vctk(root: str | os.PathLike, speakers: Sequence[str] = ("p225", "p226", "p315"), n_utts: int = 3) -> Path:
    """``root/VCTK-Corpus-0.92``: 48 kHz FLAC per microphone, txt/, speaker-info.txt.

    Quirks: p315 (when listed) has recordings but no ``txt/p315``; every other speaker has one
    transcript more than recordings (``<spk>_<n_utts+1>.txt``, no audio).
    """
    top = Path(root) / "VCTK-Corpus-0.92"
    info = ["ID  AGE  GENDER  ACCENTS  REGION COMMENTS \n"]
    for k, spk in enumerate(speakers):
        voice = _voice(k)
        info.append(f"{spk}  {22 + k}  {'F' if voice == 'slt' else 'M'}    English    Southern  England"
                    + ("  (Text missing)" if spk == "p315" else "") + "\n")
        for i in range(1, n_utts + 2):
            utt = f"{spk}_{i:03d}"
            text = TEXTS[(k + i) % len(TEXTS)][1]
            if spk != "p315":
                (top / "txt" / spk).mkdir(parents=True, exist_ok=True)
                (top / "txt" / spk / f"{utt}.txt").write_text(text + "\n", encoding="utf-8")
            if i > n_utts:
                continue  # the transcript without audio
            x = _say(text, voice, 48000)
            _write(top / "wav48_silence_trimmed" / spk / f"{utt}_mic1.flac", x, 48000, "FLAC")
            # mic2: another microphone further away: quieter, duller, 1 ms later
            x2 = np.convolve(np.concatenate([np.zeros(48, np.float32), x]), np.ones(4) / 4, mode="same")[:len(x)]
            _write(top / "wav48_silence_trimmed" / spk / f"{utt}_mic2.flac", 0.7 * x2, 48000, "FLAC")
    (top / "speaker-info.txt").write_text("".join(info), encoding="utf-8")
    (top / "README.txt").write_text("CSTR VCTK Corpus 0.92 replica (speechkd.testing.replicas): flite speech.\n")
    return top


# --------------------------------------------------------------------------- LibriTTS-R

LIBRITTS_SPEAKERS = {  # subset -> ((speaker, chapter), ...): 103 and 1034 test the id sort order
    "train-clean-100": (("103", "1241"), ("1034", "121119")),
    "train-clean-360": (("14", "208"),),
    "dev-clean": (("84", "121123"),),
    "test-clean": (("121", "127105"),),
}


def make_libritts_r(root: str | os.PathLike, subsets: Sequence[str] = ("train-clean-100", "dev-clean", "test-clean"),
                    utts_per_speaker: int = 2) -> Path:
    """``root/LibriTTS_R``: SPEAKERS.txt and ``<subset>/<spk>/<chapter>/<spk>_<chapter>_<n>_<m>.wav``
    (24 kHz) with ``.normalized.txt`` and ``.original.txt`` beside each, a ``.trans.tsv`` per chapter."""
    top = Path(root) / "LibriTTS_R"
    spk_lines = ["; Some pipe(|) separated metadata about all LibriVox readers, whose work was used\n",
                 "; in the corpus.\n", ";\n", ";ID  |SEX| SUBSET           |MINUTES| NAME\n"]
    k = 0
    for subset in subsets:
        for spk, chapter in LIBRITTS_SPEAKERS[subset]:
            voice = _voice(k)
            spk_lines.append(f"{spk:<5}| {'F' if voice == 'slt' else 'M'} | {subset:<16} | 25.00 | Reader {spk}\n")
            d = top / subset / spk / chapter
            trans = []
            for i in range(utts_per_speaker):
                raw, norm = TEXTS[(k + i) % len(TEXTS)]
                stem = f"{spk}_{chapter}_{i:06d}_{i + 1:06d}"
                _write(d / f"{stem}.wav", _say(norm, voice, 24000), 24000)
                (d / f"{stem}.normalized.txt").write_text(norm, encoding="utf-8")
                (d / f"{stem}.original.txt").write_text(raw, encoding="utf-8")
                trans.append(f"{stem}\t{raw}\t{norm}\n")
            (d / f"{spk}_{chapter}.trans.tsv").write_text("".join(trans), encoding="utf-8")
            k += 1
    (top / "SPEAKERS.txt").write_text("".join(spk_lines), encoding="utf-8")
    return top


# --------------------------------------------------------------------------- VoiceBank-DEMAND

def make_voicebank_demand(root: str | os.PathLike, train_speakers: Sequence[str] = ("p226", "p230", "p287"),
                          utts_per_speaker: int = 2, test_speakers: Sequence[str] = ("p232", "p257"),
                          variants: Sequence[str] = ("28spk",), seed: int = 0) -> Path:
    """``root`` with clean/noisy train and test wav dirs (48 kHz) and the text dirs.

    Noisy = clean + a seeded noise (white, or brown: integrated white) at one of the test
    set's SNRs (2.5, 7.5, 12.5, 17.5 dB), sample-aligned with the clean file, as published.
    """
    top = Path(root)
    rng = np.random.default_rng(seed)

    def pair(clean_dir: str, noisy_dir: str, txt_dir: str, spks: Sequence[str], offset: int) -> None:
        for k, spk in enumerate(spks):
            for i in range(1, utts_per_speaker + 1):
                utt = f"{spk}_{i:03d}"
                text = TEXTS[(offset + k + i) % len(TEXTS)][1]
                s = _say(text, _voice(offset + k), 48000)
                n = rng.standard_normal(len(s)).astype(np.float32)
                if i % 2 == 0:
                    n = np.cumsum(n) - np.cumsum(n).mean()
                snr = (2.5, 7.5, 12.5, 17.5)[(k + i) % 4]
                n *= np.sqrt(np.mean(s ** 2) / (np.mean(n ** 2) + 1e-12) / 10 ** (snr / 10))
                _write(top / clean_dir / f"{utt}.wav", s, 48000)
                _write(top / noisy_dir / f"{utt}.wav", s + n, 48000)
                (top / txt_dir).mkdir(parents=True, exist_ok=True)
                (top / txt_dir / f"{utt}.txt").write_text(text + "\n", encoding="utf-8")

    for v in variants:
        pair(f"clean_trainset_{v}_wav", f"noisy_trainset_{v}_wav", f"trainset_{v}_txt", train_speakers, 0)
    pair("clean_testset_wav", "noisy_testset_wav", "testset_txt", test_speakers, len(train_speakers))
    return top

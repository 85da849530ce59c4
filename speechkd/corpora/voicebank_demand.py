"""VoiceBank-DEMAND (Valentini-Botinhao et al. 2016, CC-BY-4.0): noisy/clean VCTK speech pairs, 48 kHz.

Published layout (one zip per directory, unpacked side by side)::

    clean_trainset_28spk_wav/p226_001.wav   noisy_trainset_28spk_wav/p226_001.wav   trainset_28spk_txt/p226_001.txt
    clean_testset_wav/p232_001.wav          noisy_testset_wav/p232_001.wav          testset_txt/p232_001.txt

(the 56-speaker training set: ``*_trainset_56spk_wav``, ``trainset_56spk_txt``; ``--variant 56spk``).
The standard test set is 824 utterances of p232 and p257 (noisy: DEMAND and other noises at
2.5, 7.5, 12.5 and 17.5 dB SNR). Everything is resampled once to the recipe's rate
(``<out>/wav/<set>/``; :mod:`speechkd.corpora.public`).

Written in the layout of ``speechkd se-data`` (:mod:`speechkd.enhance.prepare`), so that the
SE recipe's training and evaluation stages read it unchanged::

    train_noisy/              the noisy training set, minus the dev speakers: the noisy-target
                              methods' only training speech
    train_clean_eval_only/    its clean speech (same ids): the clean-target upper bound and
                              evaluation only; noisy-target and remix training never open it
    dev_noisy/, dev_clean_eval_only/   the same for the dev speakers (``--dev-speakers``,
                              default p226 p287, held out of training as in MetricGAN+/CMGAN)
    test_voicebank/           the noisy test set, and test_voicebank/ref/ its clean speech
    extra_noise/              NyTT's extra noise n' (``--noise-dir``: a Kaldi data dir, e.g. the
                              built-in noise corpus's in_domain/, or any directory of sound files
                              such as DEMAND's), never mixed into any set above
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from speechkd.corpora.common import safe_id
from speechkd.corpora.public import Entry, layout_error, read_text_file, write_split
from speechkd.data.kaldi import read_datadir
from speechkd.errors import SpeechkdError
from speechkd.utils.io import atomic_write_json

logger = logging.getLogger(__name__)

NAME = "VoiceBank-DEMAND"
URL = "https://datashare.ed.ac.uk/handle/10283/2791"
TEST_SPEAKERS = ("p232", "p257")
STANDARD_TEST_UTTS = 824
DEV_SPEAKERS = ("p226", "p287")
RATE = 16000
AUDIO_EXTS = (".wav", ".flac")


def dirs(variant: str) -> dict[str, str]:
    return {"clean_train": f"clean_trainset_{variant}_wav", "noisy_train": f"noisy_trainset_{variant}_wav",
            "text_train": f"trainset_{variant}_txt", "clean_test": "clean_testset_wav",
            "noisy_test": "noisy_testset_wav", "text_test": "testset_txt"}


def _pairs(root: Path, clean: str, noisy: str, text: str) -> tuple[list[tuple[str, Path, Path, str]], list[str]]:
    """(id, clean wav, noisy wav, text) of every clean file; the missing partners and transcripts."""
    rows, missing = [], []
    for c in sorted((root / clean).glob("*.wav")):
        n, t = root / noisy / c.name, root / text / f"{c.stem}.txt"
        missing += [f"{noisy}/{c.name}"] * (not n.is_file()) + [f"{text}/{c.stem}.txt"] * (not t.is_file())
        if n.is_file() and t.is_file():
            rows.append((c.stem, c, n, read_text_file(t)))
    missing += [f"{clean}/{n.name}" for n in sorted((root / noisy).glob("*.wav")) if not (root / clean / n.name).is_file()]
    return rows, missing


def _speaker(utt: str) -> str:
    return utt.split("_", 1)[0]


def noise_entries(noise_dir: str | os.PathLike) -> list[Entry]:
    """Extra noise: the files of a Kaldi data dir (plain wav.scp paths; text = the noise type), or
    every sound file under a plain directory (DEMAND: ``DKITCHEN/ch01.wav`` -> ``DKITCHEN_ch01``)."""
    src = Path(noise_dir)
    if (src / "wav.scp").is_file():
        dd = read_datadir(src)
        if dd.segments is not None or any(e.rstrip().endswith("|") for e in dd.wav_scp.values()):
            raise SpeechkdError("noise data dir with segments or pipes: extract its audio to wav files first",
                                path=str(src), field="--noise-dir")
        return [Entry(u, u, dd.text.get(u) or "noise", Path(dd.wav_scp[u])) for u in dd.utts]
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_EXTS and p.is_file())
    if not files:
        raise SpeechkdError("no noise: neither a Kaldi data dir (wav.scp) nor a directory of .wav/.flac files",
                            path=str(src), field="--noise-dir")
    out = []
    for p in files:
        key = safe_id(str(p.relative_to(src).with_suffix("")).replace(os.sep, "_"))
        out.append(Entry(key, key, p.parent.name or "noise", p))
    return out


def prepare(db_root: str | os.PathLike, out: str | os.PathLike, *, rate: int = RATE, variant: str = "28spk",
            dev_speakers: tuple[str, ...] = DEV_SPEAKERS, noise_dir: str | None = None, nj: int = 1,
            **_: object) -> dict:
    """The SE data sets of VoiceBank-DEMAND under ``out`` (data/se); returns the counts."""
    if variant not in ("28spk", "56spk"):
        raise SpeechkdError(f"unknown training set variant '{variant}' (28spk or 56spk)", field="--variant")
    root = Path(db_root)
    d = dirs(variant)
    layout = ", ".join(f"{v}/" for v in d.values()) + " (files <spk>_<nnn>.wav / .txt)"
    missing = [f"{v}/" for v in d.values() if not (root / v).is_dir()]
    if missing:
        raise layout_error(NAME, root, missing, layout, URL)
    train, miss_train = _pairs(root, d["clean_train"], d["noisy_train"], d["text_train"])
    test, miss_test = _pairs(root, d["clean_test"], d["noisy_test"], d["text_test"])
    if miss_train or miss_test or not train or not test:
        empty = [f"{d['clean_train']}/*.wav"] * (not train) + [f"{d['clean_test']}/*.wav"] * (not test)
        raise layout_error(NAME, root, empty + miss_train + miss_test, layout, URL)
    odd = sorted({_speaker(u) for u, *_ in test} - set(TEST_SPEAKERS))
    if odd:
        raise SpeechkdError(f"test speakers {odd} are not the standard test set's {list(TEST_SPEAKERS)}",
                            path=str(root / d["clean_test"]))
    if len(test) != STANDARD_TEST_UTTS:
        logger.warning("%s: the test set has %d utterances, not the standard %d: results are not comparable "
                       "with published ones", NAME, len(test), STANDARD_TEST_UTTS)
    dev = [r for r in train if _speaker(r[0]) in dev_speakers]
    train = [r for r in train if _speaker(r[0]) not in dev_speakers]
    if not train or not dev:
        raise SpeechkdError(f"dev speakers {list(dev_speakers)} leave an empty {'dev' if train else 'training'} set",
                            field="--dev-speakers")
    outp = Path(out)

    def entries(rows, clean: bool) -> list[Entry]:
        return [Entry(u, _speaker(u), text, c if clean else n) for u, c, n, text in rows]

    sets = {"train_noisy": entries(train, False), "train_clean_eval_only": entries(train, True),
            "dev_noisy": entries(dev, False), "dev_clean_eval_only": entries(dev, True),
            "test_voicebank": entries(test, False), "test_voicebank/ref": entries(test, True)}
    if noise_dir is not None:
        sets["extra_noise"] = noise_entries(noise_dir)
    counts = {name: write_split(outp, name, es, rate, nj) for name, es in sets.items()}
    manifest = {"corpus": NAME, "db_root": str(root.resolve()), "variant": variant, "sample_rate": rate,
                "dev_speakers": list(dev_speakers), "test_speakers": list(TEST_SPEAKERS),
                "standard_test_set": len(test) == STANDARD_TEST_UTTS, "splits": counts, "skipped": {}}
    atomic_write_json(outp / "prepare.json", manifest)
    logger.info("%s (%s): %s", NAME, variant, {s: c["utterances"] for s, c in counts.items()})
    return manifest


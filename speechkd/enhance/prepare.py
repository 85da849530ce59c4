"""``speechkd se-data``: noisy training speech, extra noise and test sets for SE.

From one or more speech corpora (``<speech>/{train,dev,test}`` each, merged; utterance ids must
be unique across them) and the noise corpus (``<noise>/in_domain``, ``<noise>/extraneous``;
:mod:`speechkd.corpora.noise`) it writes, under ``out`` (data/se)::

    noise_train/            in-domain clips mixed into train_noisy and dev_noisy
    extra_noise/            held-out in-domain clips, in no mixture: NyTT's extra noise n'
    noise_test/             held-out in-domain clips, used only by test_in_domain
    train_noisy/            y = s + n at SNR ~ U[snr_low, snr_high]; wav.scp, text, utt2spk, utt2snr, utt2noise,
                            utt2noise_type (the clip's type: the noise corpus's utt2spk)
    train_clean_eval_only/  the s and n of train_noisy (clean.scp == wav.scp, noise.scp): for
                            evaluation and the clean-trained upper bound only; noisy-target and
                            remix training never open it (tests/test_enhance_data.py proves it)
    dev_noisy/, dev_clean_eval_only/   the same for the dev split
    test_in_domain/         every test utterance at each test SNR (0, 5, 10 dB) with noise_test
                            clips; wav.scp (noisy), clean.scp, noise.scp, utt2snr, utt2noise,
                            and ref/ (a data dir of the clean references, for `speechkd eval se`)
    test_mismatched/        the same with the extraneous (event-sound) noise
    test_unseen_noise/      (with unseen noise types) the test utterances with clips of the in-domain
                            noise types held out of training entirely (no clip in training or extra noise)
    test_unseen_voice/      (with unseen speakers) utterances of the voices held out of training,
                            with noise_test clips (seen noise types)
    test_unseen_voice_noise/  (with both) unseen voices with unseen noise types
    mix.json                parameters, counts, measured SNRs, the speakers and noise types of each set

Generalisation (``MixPlan.unseen_speakers``, ``MixPlan.unseen_noise_types``): the voices named
are left out of train/dev (speaker-disjoint splits; every utterance of theirs, in any split of the
input, is test material: a seeded choice of as many as the seen-voice test set has); the noise types
named are left out of noise_train, extra_noise and noise_test. The seen-voice test sets use the
input's test split (texts never in training) of the training voices. Speaker-disjointness is
checked on the written utt2spk files (:func:`check_speaker_disjoint`).

Every mixture is written as 16-bit PCM with mixture == speech + noise exactly
(:func:`speechkd.enhance.mixing.mix_int16`); everything is a function of the
seed, each utterance drawing from its own generator (order-independent).
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechkd.audio import load_audio
from speechkd.data.kaldi import DataDir, read_datadir, write_datadir, write_table
from speechkd.enhance.mixing import fit_noise, mix_int16, snr_db
from speechkd.errors import DataDirError, SpeechkdError
from speechkd.utils.io import atomic_write_json, atomic_write_wav
from speechkd.utils.paths import check_id, safe_child

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MixPlan:
    """What to mix: SNR range of the training mixtures, test SNRs, noise split fractions."""

    seed: int = 1
    train_snr: tuple[float, float] = (-5.0, 10.0)
    test_snrs: tuple[float, ...] = (0.0, 5.0, 10.0)
    extra_fraction: float = 0.2   # of each in-domain noise type -> extra_noise
    test_fraction: float = 0.2    # of each in-domain noise type -> noise_test
    unseen_speakers: tuple[str, ...] = ()     # voices in no training mixture: test_unseen_voice*
    unseen_noise_types: tuple[str, ...] = ()  # in-domain noise types in no training mixture: test_unseen_*noise


TRAINING_SETS = ("train_noisy", "dev_noisy")
UNSEEN_VOICE_SETS = ("test_unseen_voice", "test_unseen_voice_noise")


def snr_tag(snr: float) -> str:
    """Utterance-id suffix of a test SNR: 0 -> snr00, 5 -> snr05, -5 -> snrm05."""
    s = f"{abs(snr):02g}".zfill(2) if float(snr).is_integer() else f"{abs(snr):g}".replace(".", "p")
    return f"snr{'m' if snr < 0 else ''}{s}"


def _rng(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def split_noise(dd: DataDir, plan: MixPlan) -> dict[str, list[str]]:
    """Clip ids of noise_train / extra_noise / noise_test, split per noise type (utt2spk) so every
    type appears in each part (types with fewer than 3 clips go to training only)."""
    parts: dict[str, list[str]] = {"noise_train": [], "extra_noise": [], "noise_test": []}
    for kind, utts in dd.spk2utt.items():
        order = list(utts)
        _rng(plan.seed, "noise-split", kind).shuffle(order)
        n = len(order)
        n_extra = max(1, round(plan.extra_fraction * n)) if n >= 3 else 0
        n_test = max(1, round(plan.test_fraction * n)) if n >= 3 else 0
        parts["extra_noise"] += order[:n_extra]
        parts["noise_test"] += order[n_extra:n_extra + n_test]
        parts["noise_train"] += order[n_extra + n_test:]
    for name, ids in parts.items():
        if not ids:
            raise SpeechkdError(f"no noise clips for {name}", path=dd.path,
                                hint="the in-domain noise set needs at least 3 clips of some type")
    return parts


class _Noise:
    """Noise clips of a data dir, loaded once each."""

    def __init__(self, dd: DataDir, ids: list[str], sr: int):
        self.dd, self.ids, self.sr, self.cache = dd, sorted(ids, key=str.encode), sr, {}

    def get(self, clip: str) -> np.ndarray:
        if clip not in self.cache:
            entry, seg = self.dd.audio(clip)
            self.cache[clip] = load_audio(entry, sample_rate=self.sr, utt=clip, segment=seg)[0]
        return self.cache[clip]


def _write_mix(out: Path, name: str, speech: DataDir, utts: list[tuple[str, str, float]], noise: _Noise,
               sr: int, seed: int, *, clean_dir: Path | None, with_ref: bool) -> dict:
    """Mix (new utt, source utt, snr) triples; write the noisy data dir ``out/name`` and the clean
    side either into ``clean_dir`` (training splits) or beside the noisy audio (test sets)."""
    noisy_dir = out / name
    wav_scp, clean_scp, noise_scp, text, utt2spk, utt2snr, utt2noise, utt2type = {}, {}, {}, {}, {}, {}, {}, {}
    clean_root = clean_dir if clean_dir is not None else noisy_dir
    measured = []
    for new, src, snr in utts:
        rng = _rng(seed, name, new)
        entry, seg = speech.audio(src)
        s = load_audio(entry, sample_rate=sr, utt=src, segment=seg)[0].astype(np.float64)
        clip = noise.ids[int(rng.integers(len(noise.ids)))]
        n = fit_noise(noise.get(clip), len(s), rng)
        mix, s16, n16, _ = mix_int16(s, n, snr)
        paths = {"noisy": Path(safe_child(noisy_dir / "wav", new, ".wav", source=f"{speech.path}/wav.scp")),
                 "clean": Path(safe_child(clean_root / "wav" / "clean", new, ".wav")),
                 "noise": Path(safe_child(clean_root / "wav" / "noise", new, ".wav"))}
        for kind, x in (("noisy", mix), ("clean", s16), ("noise", n16)):
            atomic_write_wav(paths[kind], x, sr, subtype="PCM_16")
        measured.append(snr_db(s16.astype(np.float64), n16.astype(np.float64)) - snr)
        wav_scp[new], clean_scp[new], noise_scp[new] = (str(paths[k].resolve()) for k in ("noisy", "clean", "noise"))
        text[new], utt2spk[new] = speech.text.get(src, ""), speech.utt2spk[src]
        utt2snr[new], utt2noise[new], utt2type[new] = f"{snr:.2f}", clip, noise.dd.utt2spk[clip]
    write_datadir(noisy_dir, DataDir(wav_scp=wav_scp, text=text, utt2spk=utt2spk))
    write_table(noisy_dir / "utt2snr", utt2snr)
    write_table(noisy_dir / "utt2noise", utt2noise)
    write_table(noisy_dir / "utt2noise_type", utt2type)  # eval se-systems: SI-SDRi per noise type
    if clean_dir is not None:
        write_datadir(clean_dir, DataDir(wav_scp=clean_scp, text=text, utt2spk=utt2spk))
        write_table(clean_dir / "clean.scp", clean_scp)
        write_table(clean_dir / "noise.scp", noise_scp)
        write_table(clean_dir / "utt2snr", utt2snr)
    else:
        write_table(noisy_dir / "clean.scp", clean_scp)
        write_table(noisy_dir / "noise.scp", noise_scp)
    if with_ref:
        write_datadir(noisy_dir / "ref", DataDir(wav_scp=clean_scp, text=text, utt2spk=utt2spk))
    snrs = [float(v) for v in utt2snr.values()]
    err = float(np.max(np.abs(measured))) if measured else 0.0
    logger.info("%s: %d mixtures, SNR %.1f..%.1f dB (max |measured - requested| %.1e dB)",
                name, len(utts), min(snrs), max(snrs), err)
    return {"utterances": len(utts), "snr_min": min(snrs), "snr_max": max(snrs),
            "snr_mean": float(np.mean(snrs)), "max_snr_error_db": err}


def _read(root: Path, name: str) -> DataDir:
    path = root / name
    if not (path / "wav.scp").exists():
        raise DataDirError(f"expected a data dir '{name}' here", path=str(root),
                           hint="run stage 0 (speechkd corpus mini_en / noise) first")
    return read_datadir(path)


def _subset(dd: DataDir, keep) -> DataDir:
    """``dd.subset(keep)`` that still names where it was read (for error messages)."""
    out = dd.subset([u for u in dd.utts if keep(u)])
    out.path = dd.path
    return out


def merge_datadirs(dds: list[DataDir]) -> DataDir:
    """One data dir of several (no segments); an utterance id in two of them is an error."""
    if len(dds) == 1:
        return dds[0]
    out = DataDir(path=" + ".join(str(d.path) for d in dds))
    for d in dds:
        if d.segments is not None:
            raise DataDirError("several speech corpora with segments files cannot be merged", path=d.path,
                               hint="give one speech corpus, or corpora of one file per utterance")
        for u in d.utts:
            if u in out.utt2spk:
                raise DataDirError("utterance id in two speech corpora", path=d.path, utt=u,
                                   hint="utterance ids must be unique across --speech corpora")
            out.wav_scp[u], out.utt2spk[u] = d.wav_scp[u], d.utt2spk[u]
            out.text[u] = d.text.get(u, "")
    return out


def check_speaker_disjoint(out: str) -> dict[str, list[str]]:
    """{set: its speakers} of the written data dirs, checked: no speaker of a test_unseen_voice* set
    is in train_noisy or dev_noisy (their utt2spk files). Returns the speakers of every set."""
    root = Path(out)
    spk = {p.name: sorted(set(read_datadir(p).utt2spk.values()))
           for p in sorted(root.iterdir()) if (p / "utt2spk").is_file() and p.name.startswith(("train", "dev", "test"))}
    training = {s for name in TRAINING_SETS for s in spk.get(name, [])}
    for name in UNSEEN_VOICE_SETS:
        both = training & set(spk.get(name, []))
        if both:
            raise DataDirError(f"speaker(s) {', '.join(sorted(both))} of {name} are in the training data",
                               path=str(root / name / "utt2spk"), field="utt2spk",
                               hint="the unseen-voice test sets need speaker-disjoint splits")
    return spk


def prepare_se_data(speech_root: str | list[str], noise_root: str, out: str, plan: MixPlan = MixPlan(),
                    sample_rate: int = 16000) -> dict:
    """Write every SE data dir under ``out`` (see the module docstring); returns mix.json's content.
    ``speech_root``: one speech corpus root or several (merged)."""
    started = time.time()
    roots = [Path(r) for r in ([speech_root] if isinstance(speech_root, (str, Path)) else speech_root)]
    nz, outp = Path(noise_root), Path(out)
    lo, hi = plan.train_snr
    if lo > hi:
        raise SpeechkdError(f"training SNR range {lo}..{hi} is empty", field="--train-snr")
    if not roots:
        raise SpeechkdError("no speech corpus given", field="--speech")
    speech = {s: merge_datadirs([_read(r, s) for r in roots]) for s in ("train", "dev", "test")}
    for s, dd in speech.items():  # ids name the mixtures' files: all checked before any work
        for u in dd.utts:
            check_id(u, source=f"{dd.path}/utt2spk")
    every_spk = {v for dd in speech.values() for v in dd.utt2spk.values()}
    unseen = set(plan.unseen_speakers)
    if unseen - every_spk:
        raise SpeechkdError(f"unseen speaker(s) {', '.join(sorted(unseen - every_spk))} are in no speech corpus; "
                            f"speakers: {', '.join(sorted(every_spk))}", field="--unseen-speakers")
    seen = {s: _subset(dd, lambda u, dd=dd: dd.utt2spk[u] not in unseen) for s, dd in speech.items()}
    for s, dd in seen.items():
        if not dd.utts:
            raise SpeechkdError(f"no {s} speech left once the unseen speakers are taken out", field="--unseen-speakers",
                                hint="keep at least one training voice")
    in_domain, extraneous = _read(nz, "in_domain"), _read(nz, "extraneous")
    kinds = set(in_domain.spk2utt)
    held = set(plan.unseen_noise_types)
    if held - kinds:
        raise SpeechkdError(f"unseen noise type(s) {', '.join(sorted(held - kinds))} are not in-domain noise types; "
                            f"types: {', '.join(sorted(kinds))}", field="--unseen-noise-types")
    if held == kinds:
        raise SpeechkdError("every in-domain noise type is held out: nothing left to train with",
                            field="--unseen-noise-types")
    trained_noise = _subset(in_domain, lambda u: in_domain.utt2spk[u] not in held)
    parts = split_noise(trained_noise, plan)
    if held:
        parts["noise_unseen"] = [u for u in in_domain.utts if in_domain.utt2spk[u] in held]
    for name, ids in parts.items():
        write_datadir(outp / name, in_domain.subset(ids))
    pools = {k: _Noise(in_domain, v, sample_rate) for k, v in parts.items()}
    mismatched = _Noise(extraneous, extraneous.utts, sample_rate)

    stats = {}
    for split in ("train", "dev"):
        dd = seen[split]
        # rounded to 0.01 dB so that utt2snr holds exactly the SNR that was mixed
        triples = [(u, u, round(float(_rng(plan.seed, "snr", split, u).uniform(lo, hi)), 2)) for u in dd.utts]
        stats[f"{split}_noisy"] = _write_mix(outp, f"{split}_noisy", dd, triples, pools["noise_train"],
                                             sample_rate, plan.seed, clean_dir=outp / f"{split}_clean_eval_only",
                                             with_ref=False)
    test = seen["test"]
    sets = [("test_in_domain", test, pools["noise_test"]), ("test_mismatched", test, mismatched)]
    if held:
        sets.append(("test_unseen_noise", test, pools["noise_unseen"]))
    if unseen:
        # every utterance of the unseen voices is unseen material; as many as the seen-voice test set
        pool = merge_datadirs([_subset(dd, lambda u, dd=dd: dd.utt2spk[u] in unseen) for dd in speech.values()])
        order = sorted(pool.utts, key=str.encode)
        _rng(plan.seed, "unseen-voice").shuffle(order)
        chosen = set(order[:len(test.utts)])
        voice = _subset(pool, lambda u: u in chosen)
        sets.append(("test_unseen_voice", voice, pools["noise_test"]))
        if held:
            sets.append(("test_unseen_voice_noise", voice, pools["noise_unseen"]))
    for name, dd, pool in sets:
        triples = [(f"{u}_{snr_tag(snr)}", u, float(snr)) for u in dd.utts for snr in plan.test_snrs]
        stats[name] = _write_mix(outp, name, dd, triples, pool, sample_rate, plan.seed, clean_dir=None,
                                 with_ref=True)
    speakers = check_speaker_disjoint(out)
    manifest = {"speech": [str(r.resolve()) for r in roots], "noise": str(nz.resolve()), "sample_rate": sample_rate,
                "seed": plan.seed, "train_snr_range": list(plan.train_snr), "test_snrs": list(plan.test_snrs),
                "unseen_speakers": sorted(unseen), "unseen_noise_types": sorted(held),
                "noise_types": {"training": sorted(kinds - held), "unseen": sorted(held),
                                "mismatched": sorted(set(extraneous.utt2spk.values()))},
                "speakers": {k: v for k, v in speakers.items() if k in stats},
                "noise_clips": {k: len(v) for k, v in parts.items()} | {"mismatched": len(extraneous.utts)},
                "sets": stats, "clean_eval_only": ["train_clean_eval_only", "dev_clean_eval_only"],
                "build_seconds": round(time.time() - started, 2)}
    atomic_write_json(outp / "mix.json", manifest)
    logger.info("se-data: %s -> %s in %.1f s", {k: v["utterances"] for k, v in stats.items()}, out,
                manifest["build_seconds"])
    return manifest

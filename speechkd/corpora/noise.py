"""``noise``: noise clips for speech enhancement, in two Kaldi-like sets.

docs/data-formats.md, "Built-in corpora". ``in_domain/``: seeded white, pink (1/f),
brown (1/f^2) and speech-shaped noise (white noise shaped by the long-term
average spectrum of the babble speech), babble (4-6 of six espeak-ng voices saying
held-out WordNet sentences that no speech corpus uses), and freely licensed recordings from
Debian ``sonic-pi-samples`` (CC0, MIT) and ``lmms-common`` (GPL-2+). ``extraneous/``:
event sounds of ``sound-theme-freedesktop`` (mismatched test noise; its spoken
``audio-channel-*`` files are left out). Licences come from each package's
``debian/copyright``; files under other licences are skipped.

Why espeak-ng for babble: no speech corpus here uses its voices, so a babble talker
is never a voice an enhancer is asked to keep (a training voice) or a test voice;
babble of flite voices put the test talker ``rms`` into its own noise.

Every clip (4-10 s, 16 kHz) is high-passed at 100 Hz (6th-order Butterworth,
run forwards and backwards by ``sosfiltfilt``: zero phase, 12th-order
magnitude) and peak-normalised to 0.9. Why the high-pass: synthetic pink/brown
noise keeps most of its energy below 80 Hz, so without it a plain 80 Hz
high-pass filter would "enhance" by many dB on brown noise; after it such a
filter is close to a no-op (the ``hpf80`` rows of egs/*/se1/RESULTS.md). 6th
rather than 4th order because a few bass-drum samples (``bd_boom``) keep a
noticeable share of their energy below 80 Hz at 4th.

Data dirs: ``wav.scp``, ``utt2spk`` (speaker = noise type), ``text`` (type
and source name), ``utt2license``.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from speechkd.corpora import wordnet
from speechkd.corpora.common import (SR, Utt, load_mono, prepare_out, require_path, run_jobs,
                                     safe_id, write_manifest, write_splits, write_wav)
from speechkd.corpora.synth import ESPEAK_VOICES, SynthJob, check_voice, synthesize
from speechkd.errors import SpeechkdError

logger = logging.getLogger(__name__)

NAME = "noise"
DEFAULT_CLIPS = 20          # per generated type (white, pink, brown, speech_shaped, babble)
CLIP_SECONDS = (4.0, 10.0)
HIGHPASS_HZ, HIGHPASS_ORDER = 100.0, 6
PEAK = 0.9
BABBLE_ENGINE, BABBLE_VOICES = "espeak", tuple(ESPEAK_VOICES)
BABBLE_PER_VOICE = 16
MIN_SOURCE_SECONDS = 1.0    # shorter in-domain recordings (single drum hits) are left out
FREE_LICENSES = re.compile(r"^(CC0|CC-BY(-SA)?-[\d.]+|GPL-[23]\+?|LGPL-[\d.]+\+?|BSD-\d-clause|Expat|MIT|"
                           r"public-domain)$", re.I)
# source type -> (directory, glob, Debian package, excluded name patterns)
SOURCES = {
    "sonicpi": ("/usr/share/sonic-pi/samples", "*.flac", "sonic-pi-samples", ()),
    "lmms": ("/usr/share/lmms/samples", "*/*.*", "lmms-common", ("shapes/*", "waveforms/*", "drumsynth/*")),
    "freedesktop": ("/usr/share/sounds/freedesktop/stereo", "*.oga", "sound-theme-freedesktop",
                    ("audio-channel-*",)),
}
EXTRANEOUS = ("freedesktop",)
GENERATED = ("white", "pink", "brown", "speech_shaped", "babble")


@dataclass(frozen=True)
class ClipJob:
    """One clip: ``kind`` is a generated type or a source type; ``src`` a file or babble list."""

    kind: str
    index: int
    seed: int
    wav: str
    src: tuple[str, ...] = ()
    ltass: tuple[float, ...] = ()


def highpass(x: np.ndarray, sr: int = SR) -> np.ndarray:
    """Zero-phase Butterworth high-pass at 100 Hz (removes sub-80 Hz energy)."""
    sos = signal.butter(HIGHPASS_ORDER, HIGHPASS_HZ, "highpass", fs=sr, output="sos")
    return signal.sosfiltfilt(sos, x)


def colored_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), zero mean."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[1:] /= f[1:] ** (exponent / 2)
    spec[0] = 0
    return np.fft.irfft(spec, n)


def shaped_noise(n: int, psd: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White noise shaped by a power spectrum ``psd`` sampled on ``len(psd)`` bins up to SR/2."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec *= np.sqrt(np.interp(f, np.linspace(0, SR / 2, len(psd)), psd))
    return np.fft.irfft(spec, n)


def ltass(wavs: list[np.ndarray]) -> np.ndarray:
    """Long-term average speech spectrum (Welch, 1024-point) of some utterances, peak 1."""
    _, psd = signal.welch(np.concatenate(wavs), fs=SR, nperseg=1024)
    return psd / psd.max()


def fit(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random n-sample crop of ``x``, or ``x`` repeated with 0-0.5 s gaps when shorter."""
    if len(x) >= n:
        start = int(rng.integers(0, len(x) - n + 1))
        return x[start:start + n]
    parts, total = [], 0
    while total < n:
        gap = np.zeros(int(rng.uniform(0, 0.5) * SR), dtype=x.dtype)
        parts += [x, gap]
        total += len(x) + len(gap)
    out = np.concatenate(parts)
    shift = int(rng.integers(0, len(x)))  # do not always start on an onset
    return np.roll(out, -shift)[:n]


def make_clip(job: ClipJob) -> None:
    """Generate one clip, high-pass it, peak-normalise and write it (a worker entry point)."""
    rng = np.random.default_rng([job.seed, zlib.crc32(job.kind.encode()), job.index])
    n = int(rng.uniform(*CLIP_SECONDS) * SR)
    if job.kind in ("white", "pink", "brown"):
        x = colored_noise(n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[job.kind], rng)
    elif job.kind == "speech_shaped":
        x = shaped_noise(n, np.asarray(job.ltass), rng)
    elif job.kind == "babble":
        talkers = rng.choice(len(job.src), size=int(rng.integers(4, 7)), replace=False)
        x = np.zeros(n)
        for t in talkers:
            s = load_mono(job.src[t]).astype(np.float64)
            x += fit(s / (np.sqrt(np.mean(s**2)) + 1e-9), n, rng)
    else:
        x = fit(load_mono(job.src[0]).astype(np.float64), n, rng)
    x = highpass(x)
    peak = np.max(np.abs(x))
    if not peak > 0:
        raise SpeechkdError("noise clip is silent", path=job.src[0] if job.src else job.wav)
    write_wav(job.wav, (PEAK / peak) * x)


def dep5_licenses(copyright_file: Path) -> list[tuple[list[str], str]]:
    """(file globs, licence) stanzas of a machine-readable ``debian/copyright``."""
    stanzas, files, key = [], None, None
    for line in copyright_file.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            files, key = None, None
            continue
        if line[0] in " \t":
            if key == "Files" and files is not None:
                files += line.split()
            continue
        key, _, value = line.partition(":")
        if key == "Files":
            files = value.split()
        elif key == "License" and files is not None:
            stanzas.append((files, value.strip()))
    return stanzas


def license_of(path: Path, stanzas: list[tuple[list[str], str]]) -> str | None:
    """The licence of ``path``: the last stanza with a glob matching its last 2 path parts."""
    tail = "/".join(path.parts[-2:])
    found = None
    for globs, lic in stanzas:
        for g in globs:
            if g == "*" or fnmatch.fnmatch(tail, "/".join(g.split("/")[-2:])):
                found = lic
    return found


def source_files(kind: str) -> list[tuple[Path, str]]:
    """(file, licence) of a source type's freely licensed recordings, in C order."""
    root, pattern, package, exclude = SOURCES[kind]
    rootp = require_path(root, package)
    stanzas = dep5_licenses(require_path(f"/usr/share/doc/{package}/copyright", package))
    out = []
    for p in sorted(rootp.glob(pattern), key=lambda p: str(p).encode()):
        rel = str(p.relative_to(rootp))
        if any(fnmatch.fnmatch(rel, e) for e in exclude):
            continue
        lic = license_of(p, stanzas)
        if lic is None or not FREE_LICENSES.match(lic):
            logger.debug("noise: skipped %s (licence %s)", p, lic)
            continue
        if kind not in EXTRANEOUS:
            import soundfile as sf

            try:
                info = sf.info(str(p))
            except (RuntimeError, sf.LibsndfileError):
                continue  # not a sound file libsndfile reads
            if info.frames / info.samplerate < MIN_SOURCE_SECONDS:
                continue
        out.append((p, lic))
    return out


def build(out: str, *, num_utts: int | None = None, seed: int = 1, nj: int = 1,
          num_dev: int | None = None, num_test: int | None = None) -> dict:
    """Write ``num_utts`` clips per generated type plus one per recording into ``out``."""
    started = time.time()
    clips = num_utts or DEFAULT_CLIPS
    for v in BABBLE_VOICES:
        check_voice(BABBLE_ENGINE, v)
    sources = {k: source_files(k) for k in SOURCES}
    texts = wordnet.heldout_sentences(len(BABBLE_VOICES) * BABBLE_PER_VOICE, seed)
    # the babble voices are a setting: a dir whose babble another version spoke is refused, not reused
    outp = prepare_out(out, NAME, seed, babble=f"{BABBLE_ENGINE}: {' '.join(BABBLE_VOICES)}")

    # Held-out speech for babble and the speech-shaped spectrum.
    voices = [BABBLE_VOICES[i % len(BABBLE_VOICES)] for i in range(len(texts))]
    speech = [SynthJob(BABBLE_ENGINE, v, t, str(outp / "wav" / "speech" / f"{v}_{i:03d}.wav"))
              for i, (v, t) in enumerate(zip(voices, texts))]
    run_jobs(synthesize, speech, lambda j: Path(j.wav).exists(), nj, desc="noise: babble speech")
    psd = tuple(float(v) for v in ltass([load_mono(j.wav) for j in speech]))

    jobs: list[ClipJob] = []
    utts: dict[str, list[Utt]] = {"in_domain": [], "extraneous": []}
    for kind in GENERATED:
        for i in range(clips):
            uid = f"{kind}_{i:04d}"
            wav = outp / "wav" / f"{uid}.wav"
            src = tuple(j.wav for j in speech) if kind == "babble" else ()
            jobs.append(ClipJob(kind, i, seed, str(wav), src, psd if kind == "speech_shaped" else ()))
            lic = "CC0 (generated)" if kind != "babble" else "espeak-ng voices (GPL-3+); WordNet text"
            utts["in_domain"].append(Utt(uid, kind, kind, wav, {"utt2license": lic}))
    for kind, files in sources.items():
        for p, lic in files:
            stem = str(p.relative_to(SOURCES[kind][0]).with_suffix(""))
            uid = f"{kind}_{safe_id(stem.replace('/', '-'))}"
            wav = outp / "wav" / f"{uid}.wav"
            # The crop depends on the file's name, not on its position in the package.
            jobs.append(ClipJob(kind, zlib.crc32(stem.encode()), seed, str(wav), (str(p),)))
            split = "extraneous" if kind in EXTRANEOUS else "in_domain"
            utts[split].append(Utt(uid, kind, f"{kind} {p.name}", wav, {"utt2license": lic}))
    ran, skipped = run_jobs(make_clip, jobs, lambda j: Path(j.wav).exists(), nj, desc=NAME)
    write_splits(outp, utts)
    licenses = sorted({u.extra["utt2license"] for us in utts.values() for u in us})
    return write_manifest(
        outp, NAME, seed, utts, started=started, generated=ran, skipped=skipped,
        license="per clip in utt2license: " + "; ".join(licenses),
        processing=f"{HIGHPASS_ORDER}th-order Butterworth high-pass at {HIGHPASS_HZ:g} Hz "
                   f"(sosfiltfilt), peak {PEAK}, clips {CLIP_SECONDS[0]:g}-{CLIP_SECONDS[1]:g} s",
        clips_per_generated_type=clips,
        sources={k: SOURCES[k][2] for k in SOURCES})

"""Synthesis with Debian ``flite``, ``festival`` and ``espeak-ng`` voices, one wav per call.

flite: ``flite -voice V -psdur -t TEXT -o out.wav`` writes 16 kHz audio
(``kal`` is 8 kHz and not used) and, with ``-psdur``, prints every phone with
its end time (``pau:0.184 dh:0.241 ...``) in the same call, at no extra cost.
festival: ``text2wave -eval "(voice_X)"`` reads the text on stdin. espeak-ng:
``espeak-ng -v VARIANT -w out.wav TEXT`` (formant synthesis, 22.05 kHz, resampled);
its voices sound like no flite or festival voice, which is why the noise corpus's
babble uses them (a babble talker is never a target voice). Festival's
``kal_diphone`` is left out: it is the diphone set flite's ``kal16`` is built
from, so the two would be one speaker under two ids; so is the HTS voice
``cmu_us_slt_arctic_hts``, the talent of flite ``slt``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from speechkd.corpora.common import SR, require_binary, require_path, resample, run_cmd, write_wav
from speechkd.errors import SpeechkdError
from speechkd.utils.io import atomic_write_text

FLITE_VOICES = ("slt", "kal16", "awb", "rms")
# speaker id -> (festival voice function, its directory, its Debian package)
FESTIVAL_VOICES = {
    "ked": ("voice_ked_diphone", "/usr/share/festival/voices/english/ked_diphone", "festvox-kdlpc16k"),
}

# speaker id -> espeak-ng voice (language + variant): three male, three female, four accents
ESPEAK_VOICES = {
    "es_us_m3": "en-us+m3", "es_us_f2": "en-us+f2", "es_gb_m1": "en-gb+m1",
    "es_sc_f4": "en-gb-scotland+f4", "es_ca_m7": "en-029+m7", "es_rp_f5": "en-gb-x-rp+f5",
}


@dataclass(frozen=True)
class SynthJob:
    """Say ``text`` with ``engine`` ("flite"/"festival"/"espeak") voice ``voice`` into ``wav``.

    ``phones``: where flite's phone durations go (written before the wav, so an
    existing wav always has its durations beside it).
    """

    engine: str
    voice: str
    text: str
    wav: str
    phones: str | None = None


def check_voice(engine: str, voice: str) -> None:
    """Raise SpeechkdError naming the Debian package when a voice is not installed."""
    if engine == "flite":
        require_binary("flite", "flite")
        if voice not in FLITE_VOICES:
            raise SpeechkdError(f"unknown flite voice '{voice}' (use one of {', '.join(FLITE_VOICES)})")
    elif engine == "festival":
        require_binary("text2wave", "festival")
        if voice not in FESTIVAL_VOICES:
            raise SpeechkdError(f"unknown festival voice '{voice}' (use one of {', '.join(FESTIVAL_VOICES)})")
        _, path, package = FESTIVAL_VOICES[voice]
        require_path(path, package)
    elif engine == "espeak":
        require_binary("espeak-ng", "espeak-ng")
        if voice not in ESPEAK_VOICES:
            raise SpeechkdError(f"unknown espeak voice '{voice}' (use one of {', '.join(ESPEAK_VOICES)})")
    else:
        raise SpeechkdError(f"unknown synthesis engine '{engine}'")


def parse_psdur(out: str) -> list[tuple[str, int]]:
    """``flite -psdur`` output -> [(phone, duration in ms)]; durations sum to the end time.

    flite prints end times; a new line (a new utterance) restarts them at 0.
    """
    phones: list[tuple[str, int]] = []
    offset = prev = 0
    for line in out.splitlines():
        items = [t for t in line.split() if ":" in t]
        if not items:
            continue
        offset, prev = offset + prev, 0
        for item in items:
            ph, end = item.rsplit(":", 1)
            end_ms = round(float(end) * 1000)
            phones.append((ph, max(0, end_ms - prev)))
            prev = end_ms
    return phones


def format_phones(phones: list[tuple[str, int]]) -> str:
    """``ph1:dur1 ph2:dur2 ...`` with durations in seconds (the ``phone_durations`` file)."""
    return " ".join(f"{ph}:{ms / 1000:.3f}" for ph, ms in phones)


def synthesize(job: SynthJob) -> None:
    """Run one synthesis job (a worker-process entry point)."""
    # The engine's own output goes to a hidden temporary beside the target, which
    # prepare_out() removes if this process is killed before it can.
    target = Path(job.wav)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        if job.engine == "flite":
            args = ["flite", "-voice", job.voice] + (["-psdur"] if job.phones else [])
            out = run_cmd(args + ["-t", job.text, "-o", tmp], what=job.wav).decode()
            if job.phones:
                phones = parse_psdur(out)
                if not phones:
                    raise SpeechkdError("flite printed no phone durations", path=job.wav)
                atomic_write_text(job.phones, format_phones(phones) + "\n")
        elif job.engine == "espeak":
            # "--" ends the options: a text starting with "-" is still text
            run_cmd(["espeak-ng", "-v", ESPEAK_VOICES[job.voice], "-w", tmp, "--", job.text], what=job.wav)
        else:
            fn = FESTIVAL_VOICES[job.voice][0]
            run_cmd(["text2wave", "-eval", f"({fn})", "-o", tmp], input=job.text.encode(), what=job.wav)
        wav, sr = sf.read(tmp, dtype="int16")
        if wav.ndim > 1:
            wav = wav[:, 0]
        if sr != SR:  # espeak-ng: 22.05 kHz
            wav = resample(wav.astype(np.float32) / 32768.0, sr, SR)
        if len(wav) == 0:
            raise SpeechkdError(f"{job.engine} voice {job.voice} produced no audio for '{job.text}'",
                                path=job.wav)
        write_wav(job.wav, wav)
    finally:
        Path(tmp).unlink(missing_ok=True)

"""Reading audio named by a Kaldi ``wav.scp`` entry, with checks.

An entry is a path (``/a/b.wav``) or a Kaldi extended filename ending in a
pipe (``sox x.flac -t wav - |``), whose command writes a wav file to stdout.
Every problem raises :class:`AudioError` naming the file and the utterance.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess

import numpy as np
import soundfile as sf

from speechkd.errors import AudioError


def read_entry_bytes(entry: str, utt: str | None = None) -> bytes | str:
    """Return the path for a plain entry, or the bytes a pipe entry produces."""
    entry = entry.strip()
    if not entry.endswith("|"):
        return entry
    cmd = entry[:-1].strip()
    proc = subprocess.run(cmd, shell=True, capture_output=True)
    if proc.returncode != 0:
        raise AudioError(f"pipe command failed with status {proc.returncode}: "
                         f"{proc.stderr.decode(errors='replace').strip()[-300:]}",
                         path=cmd, utt=utt, field="wav.scp")
    return proc.stdout


def audio_info(entry: str, utt: str | None = None) -> tuple[int, int, int]:
    """(sample_rate, channels, frames) of an entry, without reading samples of plain files."""
    src = read_entry_bytes(entry, utt)
    name = entry if isinstance(src, str) else f"{entry} (pipe)"
    try:
        info = sf.info(io.BytesIO(src) if isinstance(src, bytes) else src)
    except (FileNotFoundError, sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise _read_error(e, name, utt) from None
    return int(info.samplerate), int(info.channels), int(info.frames)


def audio_sample_problem(entry: str, utt: str | None = None) -> tuple[str, str] | None:
    """(kind, message) when an entry's samples are unusable although its header reads: a WAV
    whose data chunk is cut short of the size its header declares (a truncated copy or a killed
    writer), or a float file holding NaN/Inf samples (PCM cannot). None when neither."""
    src = read_entry_bytes(entry, utt)
    name = entry if isinstance(src, str) else f"{entry} (pipe)"
    if isinstance(src, str):
        with open(src, "rb") as f:
            short = _riff_data_shortfall(f, os.fstat(f.fileno()).st_size)
    else:
        short = _riff_data_shortfall(io.BytesIO(src), len(src))
    if short:
        declared, present = short
        return ("truncated-audio", f"'{name}' is truncated: its data chunk declares {declared} bytes but "
                                   f"holds {present} (re-create or re-copy the file)")
    try:
        info = sf.info(io.BytesIO(src) if isinstance(src, bytes) else src)
        if info.subtype not in ("FLOAT", "DOUBLE"):
            return None
        for block in sf.blocks(io.BytesIO(src) if isinstance(src, bytes) else src, blocksize=1 << 16,
                               dtype="float64", always_2d=True):
            if not np.all(np.isfinite(block)):
                return ("nonfinite-audio", f"'{name}' contains NaN or infinite samples")
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        return ("unreadable-audio", f"'{name}': cannot read samples ({_short(e)})")
    return None


def _riff_data_shortfall(f, size: int) -> tuple[int, int] | None:
    """(declared, present) bytes of a RIFF/WAVE data chunk shorter than declared, else None."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None  # not a plain RIFF wav (RF64, FLAC, ...): libsndfile's own checks apply
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk = f.read(8)
        cid, csize = chunk[:4], struct.unpack("<I", chunk[4:8])[0]
        if cid == b"data":
            present = size - pos - 8
            # 0 and 0xFFFFFFFF are the placeholders of streamed writers (sizes unknown when written)
            return (csize, present) if csize not in (0, 0xFFFFFFFF) and csize > present else None
        pos += 8 + csize + (csize & 1)
    return None


def load_audio(entry: str, *, sample_rate: int | None = None, utt: str | None = None,
               mono: str = "error", min_samples: int = 1,
               segment: tuple[float, float] | None = None, dtype: str = "float32") -> tuple[np.ndarray, int]:
    """Read an entry as float32 in [-1, 1] (``dtype="int16"``: 16-bit integer samples, as
    libsndfile converts them; ESPnet's evaluation scripts read audio that way).

    sample_rate: when given, a file at another rate is an error (resampling is
        an explicit step, never a silent one).
    mono: "error" refuses multi-channel audio; "first" keeps channel 0;
        "mean" averages the channels.
    segment: (start, end) in seconds, as in a Kaldi ``segments`` file (end < 0: to the end).
    """
    src = read_entry_bytes(entry, utt)
    name = entry if isinstance(src, str) else f"{entry} (pipe)"
    try:
        wav, sr = sf.read(io.BytesIO(src) if isinstance(src, bytes) else src,
                          dtype=dtype, always_2d=True)
    except (FileNotFoundError, sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise _read_error(e, name, utt) from None
    if sample_rate is not None and sr != sample_rate:
        raise AudioError(f"sample rate is {sr} Hz, expected {sample_rate} Hz", path=name, utt=utt,
                         field="sample_rate",
                         hint=f"resample the corpus explicitly (e.g. `sox in.wav -r {sample_rate} out.wav`)")
    if wav.shape[1] > 1:
        if mono == "error":
            raise AudioError(f"audio has {wav.shape[1]} channels, expected mono", path=name, utt=utt,
                             field="channels", hint="down-mix it (e.g. `sox in.wav -c 1 out.wav`)")
        wav = wav[:, :1] if mono == "first" else wav.mean(axis=1, keepdims=True)
    wav = wav[:, 0]
    if segment is not None:
        start, end = segment
        a = int(round(start * sr))
        b = len(wav) if end < 0 else int(round(end * sr))
        if a >= len(wav) or b <= a:
            raise AudioError(f"segment {start:.3f}-{end:.3f}s lies outside the "
                             f"{len(wav) / sr:.3f}s recording", path=name, utt=utt, field="segments")
        wav = wav[a:b]
    if len(wav) < min_samples:
        raise AudioError(f"audio is empty or too short ({len(wav)} samples, need {min_samples})",
                         path=name, utt=utt, hint="drop it with `speechkd data fix`")
    if not np.all(np.isfinite(wav)):
        raise AudioError("audio contains NaN or infinite samples", path=name, utt=utt)
    return wav, sr


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``librosa.resample(wav, orig_sr=..., target_sr=..., res_type="soxr_hq")``, sample for sample
    (soxr's HQ filter, the length fixed to ceil(len · target / orig), the input dtype), without
    importing librosa: a worker process that only resamples would spend seconds on that import."""
    import soxr  # why: a compiled module, loaded by the callers that resample

    if orig_sr == target_sr:
        return wav
    y = soxr.resample(wav, orig_sr, target_sr, quality="soxr_hq")
    n = int(np.ceil(len(wav) * float(target_sr) / orig_sr))
    y = y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))
    return np.asarray(y, dtype=wav.dtype)


def _read_error(e: Exception, name: str, utt: str | None) -> AudioError:
    if isinstance(e, FileNotFoundError):
        return AudioError("audio file does not exist", path=name, utt=utt,
                          hint="check wav.scp, or run `speechkd data fix` to drop it")
    return AudioError(f"cannot read audio ({_short(e)})", path=name, utt=utt,
                      hint="the file is corrupt or not a sound file; re-create it or drop it "
                           "with `speechkd data fix`")


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__

"""Resample a Kaldi data dir's audio to another rate: ``speechkd data resample DIR OUT --rate R``.

Feature extraction refuses audio at a rate other than its FeatureConfig's, so moving a corpus to
22.05 or 24 kHz is this explicit step. Each recording of wav.scp is read (``cmd |`` entries are
run: resample only data dirs you trust), resampled with soxr's HQ filter
(:func:`speechkd.audio.resample`) and written as 16-bit PCM to ``OUT/wav/<recording>.wav``; the
other files are copied (``segments`` and durations are in seconds and stay valid), except those
counting frames of features made at the old rate (``feats.scp``, ``utt2num_frames``), which are
dropped. A killed run resumes: a wav already at the new rate is kept. ``OUT/wav/`` records the source
and the rate (:func:`speechkd.utils.outputs.claim_output_dir`), so a wav is only ever kept by a rerun of
the same command, never by one from another source that happens to share a recording id.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from speechkd.audio import load_audio, resample
from speechkd.data.kaldi import DataDir, read_datadir
from speechkd.data.split import read_valid
from speechkd.data.validate import write_new_datadir
from speechkd.errors import DataDirError
from speechkd.utils.io import atomic_write_wav
from speechkd.utils.outputs import claim_output_dir, same_path
from speechkd.utils.parallel import process_map
from speechkd.utils.paths import safe_child

logger = logging.getLogger(__name__)

# written by write_new_datadir, or no longer true at the new rate (frame counts of old features)
NOT_COPIED = ("wav.scp", "text", "utt2spk", "spk2utt", "segments", "feats.scp", "utt2num_frames")


@dataclass(frozen=True)
class _Job:
    rec: str
    entry: str
    target: str
    rate: int


def _resample_one(job: _Job) -> bool:
    """Write one recording at ``job.rate``; False when a finished wav was already there."""
    if os.path.exists(job.target):
        try:
            info = sf.info(job.target)
            if info.samplerate == job.rate and info.frames > 0:
                return False
        except RuntimeError:
            pass  # a wav that does not open is written again
    wav, sr = load_audio(job.entry, utt=job.rec)
    y = resample(wav, sr, job.rate)
    # soxr's filter may overshoot a full-scale input slightly; 16-bit PCM would wrap it
    atomic_write_wav(job.target, np.clip(y, -1.0, 32767 / 32768), job.rate)
    return True


def resample_datadir(path: str | os.PathLike, out: str | os.PathLike, rate: int, *, nj: int = 1,
                     overwrite: bool = False) -> tuple[int, int]:
    """Write ``path``'s data dir to ``out`` with every recording at ``rate`` Hz.

    Returns (recordings resampled now, recordings kept from an earlier run)."""
    src = os.fspath(path)
    dd = read_valid(src)
    if os.path.exists(out) and same_path(src, out):
        raise DataDirError("the output is the input data dir: resampling in place would replace its audio",
                           path=os.fspath(out), hint="give another output dir")
    wav_dir = Path(out) / "wav"
    scp = os.path.join(src, "wav.scp")
    new_scp = {rec: os.path.abspath(safe_child(wav_dir, rec, ".wav", source=scp)) for rec in dd.wav_scp}
    new = DataDir(wav_scp=new_scp, text=dd.text, utt2spk=dd.utt2spk, segments=dd.segments)
    if os.path.isfile(os.path.join(out, "wav.scp")) and not overwrite:
        # refuse before any audio is written into another data dir (write_new_datadir decides for good)
        try:
            old = read_datadir(out, lenient=True).wav_scp
        except DataDirError:
            old = None
        if old != new_scp:
            raise DataDirError("is another data dir (its wav.scp lists other audio)", path=os.fspath(out),
                               hint="pass --overwrite to replace it (its files are copied into .backup/ "
                                    "first) or choose another output dir")
    with open(scp, "rb") as f:
        scp_sha1 = hashlib.sha1(f.read()).hexdigest()
    claim_output_dir(wav_dir, {"source": os.path.abspath(src), "wav_scp_sha1": scp_sha1, "rate": rate},
                     verb="data resample", overwrite=overwrite)
    jobs = [_Job(rec, entry, new_scp[rec], rate) for rec, entry in dd.wav_scp.items()]
    done = process_map(_resample_one, jobs, nj)
    write_new_datadir(src, out, new, overwrite=overwrite)
    for name in sorted(os.listdir(src)):
        p = os.path.join(src, name)
        if os.path.isfile(p) and name not in NOT_COPIED:
            shutil.copyfile(p, os.path.join(out, name))
    ran = sum(done)
    logger.info("%s -> %s: %d recordings at %d Hz (%d resampled now, %d kept)", src, out, len(jobs), rate,
                ran, len(jobs) - ran)
    return ran, len(jobs) - ran

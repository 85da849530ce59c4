"""Offline speech recognition for intelligibility: pocketsphinx's US-English model.

The model ships inside the ``pocketsphinx`` wheel (no download). It is a
weak, 2010-era recogniser, fragile on noisy or unusual speech: compare WERs
of systems against the WER of ground-truth audio under the same recogniser,
never as absolute numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from speechkd.audio import load_audio, resample
from speechkd.errors import SpeechkdError
from speechkd.utils.parallel import process_map

log = logging.getLogger(__name__)

ASR_SAMPLE_RATE = 16000
_decoder = None


def _get_decoder():
    global _decoder
    if _decoder is None:
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise SpeechkdError("pocketsphinx is not installed",
                                hint="install the eval extra: pip install -e '.[eval]'") from None
        _decoder = Decoder(samprate=ASR_SAMPLE_RATE, logfn="/dev/null")
    return _decoder


def recognize(wav: np.ndarray, sr: int) -> str:
    """Transcribe float audio in [-1, 1]; resampled to 16 kHz when needed."""
    if sr != ASR_SAMPLE_RATE:
        wav = resample(wav.astype(np.float32), sr, ASR_SAMPLE_RATE)
    pcm = (np.clip(wav, -1.0, 1.0) * 32767.0).astype("<i2")
    dec = _get_decoder()
    dec.start_utt()
    dec.process_raw(pcm.tobytes(), full_utt=True)
    dec.end_utt()
    hyp = dec.hyp()
    return hyp.hypstr if hyp is not None else ""


@dataclass
class _Job:
    utt: str
    entry: str
    segment: tuple[float, float] | None


def _recognize_job(job: _Job) -> tuple[str, str]:
    wav, sr = load_audio(job.entry, utt=job.utt, segment=job.segment, mono="mean")
    return job.utt, recognize(wav, sr)


def recognize_many(jobs: list[tuple[str, str, tuple[float, float] | None]], nj: int = 1) -> dict[str, str]:
    """{utt: hypothesis} for (utt, wav.scp entry, segment) triples, over ``nj`` processes."""
    if nj > 1 and len(jobs) > 1:
        _get_decoder()  # load the models once here: the forked workers inherit them instead of each loading
    return dict(process_map(_recognize_job, [_Job(*j) for j in jobs], nj))

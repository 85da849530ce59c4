"""``mini_en``: one synthetic speaker, flite ``slt`` reading WordNet example sentences.

docs/data-formats.md, "Built-in corpora". Besides the Kaldi files every split holds
``phone_durations`` (``<utt> ph1:dur1 ph2:dur2 ...``, seconds, C-sorted):
flite's own phone timings from ``flite -psdur``, taken in the same call as the
audio (no extra synthesis time). They sum to the audio length within a few ms
and serve as ground truth for duration accuracy.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from speechkd.corpora import wordnet
from speechkd.corpora.common import (Utt, prepare_out, run_jobs, seeded_shuffle, split_items,
                                     write_manifest, write_splits)
from speechkd.corpora.synth import SynthJob, check_voice, synthesize

logger = logging.getLogger(__name__)

NAME = "mini_en"
SPEAKER = "slt"
DEFAULT_UTTS = 600
LICENSE = ("audio synthesised with flite voice cmu_us_slt (CMU Flite licence, BSD-like); "
           "text from WordNet 3.0 example sentences (WordNet licence, BSD-like)")


def build(out: str, *, num_utts: int | None = None, seed: int = 1, nj: int = 1,
          num_dev: int | None = None, num_test: int | None = None) -> dict:
    """Generate ``num_utts`` utterances into ``out``/{train,dev,test} and ``out``/wav."""
    started = time.time()
    check_voice("flite", SPEAKER)
    texts = wordnet.sentences(num_utts or DEFAULT_UTTS, seed)
    outp = prepare_out(out, NAME, seed)
    utts = [Utt(f"{SPEAKER}_{i:06d}", SPEAKER, t, outp / "wav" / f"{SPEAKER}_{i:06d}.wav")
            for i, t in enumerate(texts)]
    jobs = [SynthJob("flite", SPEAKER, u.text, str(u.wav), phones=str(_phones(u.wav))) for u in utts]
    ran, skipped = run_jobs(synthesize, jobs, lambda j: Path(j.wav).exists(), nj, desc=NAME)
    for u in utts:
        u.extra["phone_durations"] = _phones(u.wav).read_text().strip()
    # Texts are unique (wordnet de-duplicates); shuffle again so the split is seeded too.
    splits = split_items(seeded_shuffle(utts, seed + 1), num_dev, num_test)
    write_splits(outp, splits)
    return write_manifest(outp, NAME, seed, splits, license=LICENSE, started=started,
                          generated=ran, skipped=skipped, voice="flite slt",
                          prompts="wordnet-base example sentences")


def _phones(wav: Path) -> Path:
    return wav.with_suffix(".phones")

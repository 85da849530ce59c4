"""``mini_multi``: five synthetic voices reading WordNet example sentences.

docs/data-formats.md, "Built-in corpora". Voices: flite ``slt``, ``kal16``, ``awb``,
``rms`` and festival ``ked_diphone`` (16 kHz), five different human talents.
Festival's HTS ``cmu_us_slt_arctic_hts`` is left out: it is the talent of flite
``slt`` through another synthesiser (1 cent apart in mean F0), so a speaker-identity
table could not tell the two apart. Every text is spoken once; texts are split first (no text in two
splits) and the speakers are then dealt round-robin inside each split, so every
speaker appears in every split (dev and test hold at least one utterance per
speaker).
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

NAME = "mini_multi"
DEFAULT_UTTS = 400
# speaker id -> (engine, voice)
VOICES: dict[str, tuple[str, str]] = {
    "awb": ("flite", "awb"),
    "kal16": ("flite", "kal16"),
    "ked": ("festival", "ked"),
    "rms": ("flite", "rms"),
    "slt": ("flite", "slt"),
}
LICENSE = ("audio synthesised with flite voices slt, kal16, awb, rms (CMU Flite licence) and "
           "festival voice ked_diphone (festvox licence, free); "
           "text from WordNet 3.0 example sentences (WordNet licence, BSD-like)")


def build(out: str, *, num_utts: int | None = None, seed: int = 1, nj: int = 1,
          num_dev: int | None = None, num_test: int | None = None) -> dict:
    """Generate ``num_utts`` utterances over all voices into ``out``."""
    started = time.time()
    for engine, voice in VOICES.values():
        check_voice(engine, voice)
    spks = sorted(VOICES)
    texts = list(enumerate(wordnet.sentences(num_utts or DEFAULT_UTTS, seed)))
    outp = prepare_out(out, NAME, seed)
    text_splits = split_items(seeded_shuffle(texts, seed + 1), num_dev, num_test, minimum=len(spks))
    splits: dict[str, list[Utt]] = {}
    for n, (name, items) in enumerate(text_splits.items()):
        order = seeded_shuffle(spks, seed + 2 + n)
        splits[name] = []
        for k, (i, text) in enumerate(items):
            spk = order[k % len(order)]
            utt = f"{spk}_{i:06d}"  # index i fixes the text for a seed: ids never change meaning
            splits[name].append(Utt(utt, spk, text, outp / "wav" / f"{utt}.wav"))
    utts = [u for us in splits.values() for u in us]
    jobs = [SynthJob(*VOICES[u.spk], u.text, str(u.wav)) for u in utts]
    ran, skipped = run_jobs(synthesize, jobs, lambda j: Path(j.wav).exists(), nj, desc=NAME)
    write_splits(outp, splits)
    return write_manifest(outp, NAME, seed, splits, license=LICENSE, started=started,
                          generated=ran, skipped=skipped,
                          voices={s: f"{e} {v}" for s, (e, v) in VOICES.items()},
                          prompts="wordnet-base example sentences")

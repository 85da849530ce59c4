"""Build the static listening-test site (works from ``file://``, no server needed).

Layout of ``out``::

    index.html          sample gallery (sentence x system, spectrogram thumbnails; one per speaker
                        when the manifest has several) and links to the tests
    <test>.html         one rating page per test (mos, cmos, ab, abx, mushra)
    listen.js, listen.css
    audio/*.wav         copies (or hard links) of the manifest's audio; anchors and degraded gold items
    spec/*.png          spectrogram thumbnails

The trials of each test are fixed here; the per-listener order and the A/B
counterbalancing are drawn in the page from hash(seed, listener, test), so the
same listener id always gets the same order. Data reach the page as JSON inside
``<script type="application/json">`` (``<``, ``>``, ``&`` escaped by jinja2's
``tojson``) and are rendered with ``textContent`` only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from speechkd.errors import SpeechkdError
from speechkd.listen.manifest import Manifest, load_manifest
from speechkd.listen.stimuli import ANCHORS, write_anchor, write_degraded, write_spectrogram
from speechkd.utils.io import atomic_write_text

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
ALL_TESTS = ("mos", "cmos", "ab", "abx", "mushra")
DEGRADED = "_degraded"

TEST_INFO: dict[str, dict[str, str]] = {
    "mos": {"name": "MOS (naturalness)",
            "instructions": "Listen to each sample and rate how natural it sounds, from 5 (Excellent) "
                            "to 1 (Bad). Rating is enabled once the sample has been played."},
    "cmos": {"name": "CMOS (comparison)",
             "instructions": "Listen to A and to B, then say how B sounds compared with A, "
                             "from -3 (much worse) to +3 (much better)."},
    "ab": {"name": "AB preference",
           "instructions": "Listen to A and to B, then choose the one you prefer."},
    "abx": {"name": "ABX discrimination",
            "instructions": "Listen to A, B and X. X is identical to either A or B: say which."},
    "mushra": {"name": "MUSHRA",
               "instructions": "Listen to the reference, then rate every sample from 0 to 100 against it. "
                               "One of the samples is the reference itself: rate it 100."},
}


@dataclass
class PageOptions:
    tests: tuple[str, ...] | None = None
    """Tests to build; None: every test the manifest allows."""
    seed: int = 0
    title: str = "Listening test"
    gold: int = 2
    """Degraded attention-check items per MOS, CMOS and AB test."""
    repeats: int = 2
    """Items repeated (per listener) in MOS, CMOS and AB, to check consistency."""
    ab_no_preference: bool = True
    play_fraction: float = 0.8
    """Fraction of a sample that must be heard before it can be rated."""
    link: bool = True
    """Hard-link audio into the site when possible (else copy)."""


def _digest(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode("utf-8")).hexdigest()[:16]


def _place(src: Path, dst: Path, link: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copyfile(src, dst)


def available_tests(m: Manifest) -> list[str]:
    """Tests the manifest supports: CMOS and AB/ABX need two systems, MUSHRA a reference."""
    out = ["mos"]
    if len(m.systems) >= 2:
        out += ["cmos", "ab", "abx"]
    if m.reference is not None and m.test_systems:
        out.append("mushra")
    return out


def _pairs(m: Manifest) -> list[tuple[str, str]]:
    if len(m.test_systems) >= 2:
        return list(itertools.combinations(m.test_systems, 2))
    return [(m.test_systems[0], m.reference)] if m.reference and m.test_systems else []


class _Builder:
    def __init__(self, m: Manifest, out: Path, opts: PageOptions):
        self.m, self.out, self.opts = m, out, opts
        self.rng = random.Random(opts.seed)
        self.src: dict[tuple[str, str], str] = {}  # (system, utt) -> site-relative audio path
        self.text = {u.id: u.text for u in m.utts}
        self.made: set[str] = set()  # degraded files written by this build (never reuse a stale one)

    def place_audio(self) -> None:
        for u in self.m.utts:
            for s, p in u.audio.items():
                rel = f"audio/{_digest(s, u.id)}{p.suffix.lower() or '.wav'}"
                _place(p, self.out / rel, self.opts.link)
                self.src[(s, u.id)] = rel

    def spectrograms(self) -> dict[tuple[str, str], str]:
        out = {}
        for u in self.m.utts:
            for s, p in u.audio.items():
                rel = f"spec/{_digest(s, u.id)}.png"
                write_spectrogram(p, self.out / rel)
                out[(s, u.id)] = rel
        return out

    def degraded(self, system: str, utt: str) -> str:
        rel = f"audio/{_digest(DEGRADED, system, utt)}.wav"
        if rel not in self.made:
            audio = next(u.audio[system] for u in self.m.utts if u.id == utt)
            write_degraded(audio, self.out / rel, seed=self.opts.seed)
            self.made.add(rel)
        return rel

    def gold_sources(self) -> list[tuple[str, str]]:
        """(system, utt) of the audio degraded for gold items: the reference when there is one."""
        utts = [u.id for u in self.m.utts]
        chosen = self.rng.sample(utts, min(self.opts.gold, len(utts)))
        return [(self.m.reference or self.rng.choice(self.m.systems), u) for u in chosen]

    def trial(self, key: str, utt: str, system: str, other: str, kind: str, expected: str,
              stimuli: list[str]) -> dict:
        return {"key": key, "item": utt, "text": self.text[utt], "system": system, "other": other,
                "kind": kind, "expected": expected, "stimuli": stimuli}

    def mos(self) -> list[dict]:
        trials = [self.trial(f"n{i}", u.id, s, "", "normal", "", [self.src[(s, u.id)]])
                  for i, (u, s) in enumerate((u, s) for u in self.m.utts for s in self.m.systems)]
        trials += [self.trial(f"g{i}", utt, DEGRADED, "", "gold", "<=2", [self.degraded(s, utt)])
                   for i, (s, utt) in enumerate(self.gold_sources())]
        return trials

    def cmos(self) -> list[dict]:
        base = self.m.reference or self.m.systems[0]
        others = [s for s in self.m.systems if s != base]
        # stimuli[0] is the 'other' (baseline), stimuli[1] the system; the page draws which is A.
        trials = [self.trial(f"n{i}", u.id, s, base, "normal", "", [self.src[(base, u.id)], self.src[(s, u.id)]])
                  for i, (u, s) in enumerate((u, s) for u in self.m.utts for s in others)]
        trials += [self.trial(f"g{i}", utt, DEGRADED, base, "gold", "<=-1",
                              [self.src[(base, utt)], self.degraded(base, utt)])
                   for i, (_, utt) in enumerate(self.gold_sources())]
        return trials

    def ab(self, gold: bool) -> list[dict]:
        # stimuli[0] is the system, stimuli[1] the other; score 1 = system preferred / X identified.
        trials = [self.trial(f"n{i}", u.id, a, b, "normal", "", [self.src[(a, u.id)], self.src[(b, u.id)]])
                  for i, (u, (a, b)) in enumerate((u, p) for u in self.m.utts for p in _pairs(self.m))]
        if gold:
            trials += [self.trial(f"g{i}", utt, s, DEGRADED, "gold", ">=1", [self.src[(s, utt)],
                                                                           self.degraded(s, utt)])
                       for i, (s, utt) in enumerate(self.gold_sources())]
        return trials

    def mushra(self) -> list[dict]:
        ref = self.m.reference
        assert ref is not None
        trials = []
        for i, u in enumerate(self.m.utts):
            stim = [{"system": s, "src": self.src[(s, u.id)], "kind": "reference" if s == ref else "normal"}
                    for s in self.m.systems]  # the hidden reference is one of the stimuli
            for name, cutoff in ANCHORS.items():
                rel = f"audio/{_digest(name, u.id)}.wav"
                write_anchor(u.audio[ref], self.out / rel, cutoff)
                stim.append({"system": name, "src": rel, "kind": "anchor"})
            trials.append({"key": f"n{i}", "item": u.id, "text": u.text, "kind": "normal",
                           "reference": self.src[(ref, u.id)], "stimuli": stim})
        return trials


def gallery_groups(m: Manifest, rows: dict[str, dict]) -> list[dict]:
    """The gallery's tables: one per speaker (C order, utterances in manifest order) when the
    manifest has several speakers, else a single table without a speaker (the page as before)."""
    if len(m.speakers) <= 1:
        return [{"speaker": None, "rows": [rows[u.id] for u in m.utts]}]
    return [{"speaker": spk, "rows": [rows[u.id] for u in m.utts if u.speaker == spk]} for spk in m.speakers]


def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def build_site(manifest: str | os.PathLike, out: str | os.PathLike, opts: PageOptions | None = None) -> Path:
    """Build the site in ``out`` from a manifest; returns the path of ``index.html``."""
    opts = opts or PageOptions()
    m = load_manifest(manifest)
    out = Path(out)
    possible = available_tests(m)
    tests = list(opts.tests) if opts.tests else possible
    for t in tests:
        if t not in ALL_TESTS:
            raise SpeechkdError(f"unknown test {t!r}; known: {', '.join(ALL_TESTS)}", field="--tests")
        if t not in possible:
            why = "a reference (reference_system or 'ref' wavs)" if t == "mushra" else "at least two systems"
            raise SpeechkdError(f"test {t!r} needs {why}", path=str(m.path), field="--tests")
    if not 0.0 < opts.play_fraction <= 1.0:
        raise SpeechkdError(f"play fraction must be in (0, 1], got {opts.play_fraction}", field="--play-fraction")
    out.mkdir(parents=True, exist_ok=True)
    b = _Builder(m, out, opts)
    b.place_audio()
    specs = b.spectrograms()
    makers = {"mos": b.mos, "cmos": b.cmos, "ab": lambda: b.ab(gold=True), "abx": lambda: b.ab(gold=False),
              "mushra": b.mushra}
    trials = {t: makers[t]() for t in tests}
    site_id = _digest(json.dumps(trials, sort_keys=True), str(opts.seed), opts.title)
    env = _env()
    common = {"title": opts.title, "tests": [{"id": t, "name": TEST_INFO[t]["name"]} for t in tests]}
    for t in tests:
        data = {"site_id": site_id, "title": opts.title, "seed": opts.seed, "test": t, "trials": trials[t],
                "repeats": opts.repeats if t in ("mos", "cmos", "ab") else 0,
                "no_preference": opts.ab_no_preference, "play_fraction": opts.play_fraction}
        html = env.get_template("test.html").render(**common, test=t, info=TEST_INFO[t], data=data)
        atomic_write_text(out / f"{t}.html", html)
    rows = {u.id: {"id": u.id, "text": u.text,
                   "cells": [{"system": s, "src": b.src[(s, u.id)], "spec": specs[(s, u.id)]} for s in m.systems]}
            for u in m.utts}
    atomic_write_text(out / "index.html", env.get_template("index.html").render(
        **common, systems=m.systems, reference=m.reference, groups=gallery_groups(m, rows), site_id=site_id))
    atomic_write_text(out / "site.json", json.dumps({"site_id": site_id, "title": opts.title, "seed": opts.seed,
                                                     "tests": tests, "systems": m.systems,
                                                     "reference": m.reference}, indent=2) + "\n")
    for static in ("listen.js", "listen.css"):
        shutil.copyfile(TEMPLATES / static, out / static)
    n = {t: len(v) for t, v in trials.items()}
    logger.info("listening site %s: %d utts x %d systems; trials per test %s", out, len(m.utts), len(m.systems), n)
    return out / "index.html"

"""The listening-test manifest: which system produced which audio for which sentence.

    {"systems": ["gt", "fastspeech", "fastspeech2"],          # column order
     "reference_system": "gt",                                 # optional
     "utts": [{"id": "utt1", "text": "Hello.", "ref": "ref/utt1.wav",   # ref optional
               "speaker": "spk1",                                          # optional
               "systems": {"gt": "gt/utt1.wav", "fastspeech": "fs/utt1.wav", ...}}]}

Relative paths are relative to the manifest file. The reference (hidden
reference of MUSHRA, baseline of CMOS) is ``reference_system`` when given,
otherwise the per-utterance ``ref`` wavs, which then form a system named
``reference``. Without either there is no reference.

``speaker`` is who speaks the utterance (its ``utt2spk`` entry; a multi-speaker
model speaks each test utterance with that voice). It is given for every
utterance or for none (manifests written before speakers existed): a manifest
with several speakers gets a sample gallery per speaker and, given to
``speechkd listen aggregate --manifest``, scores per speaker.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from speechkd.data.kaldi import DataDir, read_datadir, sort_key
from speechkd.errors import SpeechkdError
from speechkd.utils.paths import safe_child
from speechkd.utils.io import atomic_write_json

logger = logging.getLogger(__name__)

REF_NAME = "reference"
# Names the page generates itself; a manifest may not use them.
RESERVED = ("_degraded", "anchor_3.5k", "anchor_7k")


@dataclass
class Utt:
    id: str
    text: str
    audio: dict[str, Path] = field(default_factory=dict)
    """system name -> audio file (the reference included, under its system name)."""
    speaker: str = ""
    """Who speaks it; empty when the manifest names no speakers (older manifests)."""


@dataclass
class Manifest:
    path: Path
    systems: list[str]
    """All systems in column order, the reference (if any) included."""
    reference: str | None
    utts: list[Utt]

    @property
    def test_systems(self) -> list[str]:
        """The systems under test: every system except the reference."""
        return [s for s in self.systems if s != self.reference]

    @property
    def speakers(self) -> list[str]:
        """The distinct speakers in C order; [] when the manifest names none."""
        return sorted({u.speaker for u in self.utts if u.speaker}, key=sort_key)

    @property
    def utt2spk(self) -> dict[str, str]:
        """Utterance id -> speaker ("" when the manifest names no speakers)."""
        return {u.id: u.speaker for u in self.utts}


def _need(cond: bool, msg: str, path: Path, utt: str | None = None, fld: str | None = None) -> None:
    if not cond:
        raise SpeechkdError(msg, path=str(path), utt=utt, field=fld,
                            hint="see `speechkd listen page --help` for the manifest format")


def load_manifest(path: str | os.PathLike, *, check_audio: bool = True) -> Manifest:
    """Read and check a manifest; every audio file must exist unless ``check_audio`` is False
    (aggregating answers needs the utterances and speakers, not the audio)."""
    path = Path(path)
    if not path.is_file():
        raise SpeechkdError("manifest does not exist", path=str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SpeechkdError(f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                            path=str(path)) from None
    except UnicodeDecodeError as e:
        raise SpeechkdError(f"not UTF-8 text ({e.reason})", path=str(path)) from None
    _need(isinstance(data, dict), "top level must be an object", path)
    utts_raw = data.get("utts")
    _need(isinstance(utts_raw, list) and len(utts_raw) > 0, "needs a non-empty list 'utts'", path, fld="utts")
    systems = data.get("systems")
    if systems is None:  # default: first appearance order
        systems = list(dict.fromkeys(s for u in utts_raw if isinstance(u, dict)
                                     for s in (u.get("systems") or {})))
    _need(isinstance(systems, list) and all(isinstance(s, str) and s for s in systems),
          "'systems' must be a list of non-empty strings", path, fld="systems")
    _need(len(set(systems)) == len(systems), "'systems' has duplicates", path, fld="systems")
    for s in systems:
        _need(s not in RESERVED and s != REF_NAME or s == data.get("reference_system"),
              f"system name {s!r} is reserved", path, fld="systems")
    reference = data.get("reference_system")
    _need(reference is None or reference in systems,
          f"reference_system {reference!r} is not one of the systems {systems}", path, fld="reference_system")
    has_ref = [isinstance(u, dict) and u.get("ref") is not None for u in utts_raw]
    if reference is None and any(has_ref):
        _need(all(has_ref), "'ref' is given for some utterances but not all", path, fld="ref")
        reference = REF_NAME
        systems = [REF_NAME] + list(systems)
    elif reference is not None and any(has_ref):
        logger.warning("%s: 'ref' wavs ignored, reference_system %r is the reference", path, reference)
    has_spk = [isinstance(u, dict) and "speaker" in u for u in utts_raw]
    if any(has_spk) and not all(has_spk):
        _need(False, f"'speaker' is given for some utterances but not all (not for utts[{has_spk.index(False)}])",
              path, fld="speaker")

    base = path.parent
    utts: list[Utt] = []
    seen: set[str] = set()
    for i, u in enumerate(utts_raw):
        _need(isinstance(u, dict), f"utts[{i}] must be an object", path, fld=f"utts[{i}]")
        uid = u.get("id")
        _need(isinstance(uid, str) and uid != "", f"utts[{i}] needs a non-empty string 'id'", path,
              fld=f"utts[{i}].id")
        _need(uid not in seen, "duplicate utterance id", path, utt=uid, fld="id")
        seen.add(uid)
        text = u.get("text", "")
        _need(isinstance(text, str), "'text' must be a string", path, utt=uid, fld="text")
        speaker = u.get("speaker", "")
        _need(isinstance(speaker, str) and (speaker != "" or "speaker" not in u),
              "'speaker' must be a non-empty string", path, utt=uid, fld="speaker")
        sysmap = u.get("systems")
        _need(isinstance(sysmap, dict), "needs an object 'systems' (system -> audio path)", path, uid, "systems")
        if reference == REF_NAME and REF_NAME not in sysmap:
            sysmap = {**sysmap, REF_NAME: u["ref"]}
        unknown = sorted(set(sysmap) - set(systems))
        _need(not unknown, f"systems {unknown} are not listed in 'systems'", path, uid, "systems")
        missing = [s for s in systems if s not in sysmap]
        _need(not missing, f"no audio for systems {missing}", path, uid, "systems")
        audio: dict[str, Path] = {}
        for s in systems:
            p = sysmap[s]
            _need(isinstance(p, str) and p != "", f"audio path of system {s!r} must be a string", path, uid, s)
            ap = Path(p) if os.path.isabs(p) else base / p
            if check_audio and not ap.is_file():
                raise SpeechkdError(f"audio file of system {s!r} does not exist: {ap}", path=str(path),
                                    utt=uid, hint="synthesize it first or fix the path")
            audio[s] = ap
        utts.append(Utt(uid, text, audio, speaker))
    m = Manifest(path, list(systems), reference, utts)
    logger.info("manifest %s: %d utterances x %d systems, %d speakers (reference: %s)", path, len(utts),
                len(systems), len(m.speakers), reference)
    return m


def _pick(dd: DataDir, num_utts: int) -> list[str]:
    """The utterances of a page: all, or ``num_utts`` of them taken in turn from each speaker
    (C order), so that a multi-speaker test set is heard in every voice; in data-dir order."""
    if num_utts <= 0 or num_utts >= len(dd.utts):
        return dd.utts
    per_spk = list(dd.spk2utt.values())
    chosen: set[str] = set()
    for i in range(max(len(u) for u in per_spk)):
        for utts in per_spk:
            if i < len(utts) and len(chosen) < num_utts:
                chosen.add(utts[i])
    return [u for u in dd.utts if u in chosen]


def build_manifest(data_dir: str, systems: dict[str, str], out: str | os.PathLike, *,
                   num_utts: int = 0, reference_system: str | None = None) -> Path:
    """Write a manifest for ``num_utts`` (0: all) utterances of a Kaldi data dir, each with its speaker.

    With one speaker these are the first ``num_utts``; with several, the first of each
    speaker in turn, so every voice is heard.

    ``systems`` maps a system name to a directory of ``<utt>.wav``, or to a Kaldi
    data dir (one with a ``wav.scp``: e.g. ``data_dir`` itself, the ground truth, or
    the clean references of a speech-enhancement test set). Utterances missing from
    any system are left out with a warning, so the page compares like with like.
    """
    dd = read_datadir(data_dir)
    sources = {name: read_datadir(src) if os.path.isfile(os.path.join(src, "wav.scp")) else src
               for name, src in systems.items()}
    utts = _pick(dd, num_utts)
    rows = []
    for utt in utts:
        audio: dict[str, str] = {}
        for name, src in sources.items():
            if isinstance(src, str):
                audio[name] = os.path.abspath(safe_child(src, utt, ".wav"))
                continue
            if utt not in src.utt2spk:
                audio[name] = ""
                continue
            entry, seg = src.audio(utt)
            if seg is not None or entry.endswith("|"):
                raise SpeechkdError("audio must be a plain wav file for a listening page",
                                    path=src.path, utt=utt, field="wav.scp",
                                    hint="extract segments/pipes to wav files first")
            audio[name] = os.path.abspath(entry)
        missing = [n for n, p in audio.items() if not p or not os.path.isfile(p)]
        if missing:
            logger.warning("%s: no audio from %s; left out of the page", utt, ", ".join(missing))
            continue
        rows.append({"id": utt, "text": dd.text.get(utt, ""), "speaker": dd.utt2spk[utt], "systems": audio})
    if not rows:
        raise SpeechkdError("no utterance has audio from every system", path=data_dir,
                            hint="run the synthesis stage first")
    data: dict = {"systems": list(systems), "utts": rows}
    if reference_system:
        if reference_system not in systems:
            raise SpeechkdError(f"reference system {reference_system!r} is not one of {list(systems)}",
                                field="--reference")
        data["reference_system"] = reference_system
    atomic_write_json(out, data)
    return Path(out)

"""The systems a TTS recipe compares on its test set, and which pairs of them it compares.

What an exp dir holds decides the systems (a model or vocoder counts once it has
``checkpoints/last.ckpt``); each speaks the test set into ``<exp>/<name>/synth/<test set>``:

- ``resynth_griffin_lim``: copy synthesis of the ground-truth mels by Griffin-Lim;
- ``resynth_world``: WORLD analysis and resynthesis of the test audio;
- ``resynth_<v>``: the ground-truth mels through each trained neural vocoder ``exp/vocoder_<v>``;
- ``<model>``: each trained acoustic model (``teacher_ar``, ``fastspeech``, ``fastspeech2``,
  ``diffusion_*``) through Griffin-Lim, and ``<model>_<v>`` through each trained vocoder;
- ``diffusion_<N>_steps<k>`` (and ``..._<v>``): the diffusion teacher ``exp/diffusion_<N>`` sampled
  with the step count k of each distilled student ``exp/diffusion_<k>`` (k < N).

Paired comparisons, utterance by utterance: every system that is not a resynthesis against the
ground-truth mels through its own vocoder (``reference``: what the acoustic model alone costs),
and each k-step student against the teacher sampled with k steps through the same vocoder
(``teacher``: progressive distillation's claim, that the student beats the teacher at k steps).

The manifest (:func:`write_manifest`, recipe stage 10 writes ``exp/systems.tsv``) holds one row
per system; ``speechkd synth --systems`` synthesises it, ``speechkd eval systems`` evaluates it,
``speechkd listen manifest --systems`` puts it on the listening page. Its order (resyntheses
first, then the others, each by name in code-point order) is the order of the results table and
of the page's columns.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from speechkd.errors import SpeechkdError
from speechkd.utils.manifest import read_rows, write_rows

# The acoustic models a recipe trains (stages 3, 5, 6), before the diffusion ones (stages 7-8).
ACOUSTIC_MODELS = ("teacher_ar", "fastspeech", "fastspeech2")
KINDS = ("copy", "world", "model")
COLUMNS = ("name", "kind", "model", "vocoder", "steps", "reference", "teacher", "wav_dir")
GRIFFIN_LIM = "griffin_lim"
_STUDENT = re.compile(r"diffusion_([1-9][0-9]*)$")


@dataclass(frozen=True)
class System:
    """One row of the manifest."""

    name: str  # exp/<name>/synth/<test set> holds its wavs; the name in every table
    kind: str  # copy: vocode the ground-truth mels; world: resynthesise the test audio; model: speak the text
    model: str  # the acoustic model's exp dir (kind model), else ""
    vocoder: str  # griffin_lim, world, or a trained vocoder's exp dir
    steps: int  # diffusion sampler steps (0: the model's own)
    reference: str  # the system it is compared with through the same vocoder ("" for resyntheses)
    teacher: str  # a k-step student's teacher sampled with k steps ("" for the others)
    wav_dir: str  # where its <utt>.wav go


def _trained(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "checkpoints", "last.ckpt"))


def _copy_reference(vocoder_name: str) -> str:
    return f"resynth_{vocoder_name}"


def list_systems(expdir: str, test_set: str, diffusion_steps: int = 8) -> list[System]:
    """Every system ``expdir`` can synthesise the test set with, by the rules of the module
    docstring, in table order. ``diffusion_steps`` is N of the diffusion teacher exp/diffusion_<N>."""
    if not os.path.isdir(expdir):
        raise SpeechkdError("exp dir does not exist", path=expdir, hint="train something first (recipe stages 3-9)")
    entries = sorted(os.listdir(expdir))
    wav = lambda name: os.path.join(expdir, name, "synth", test_set)  # noqa: E731
    vocoders = [(e[len("vocoder_"):], os.path.join(expdir, e)) for e in entries
                if e.startswith("vocoder_") and len(e) > len("vocoder_") and _trained(os.path.join(expdir, e))]
    out = [System("resynth_griffin_lim", "copy", "", GRIFFIN_LIM, 0, "", "", wav("resynth_griffin_lim")),
           System("resynth_world", "world", "", "world", 0, "", "", wav("resynth_world"))]
    out += [System(f"resynth_{v}", "copy", "", path, 0, "", "", wav(f"resynth_{v}")) for v, path in vocoders]

    def spoken(name: str, model: str, steps: int = 0, teacher_of: str | None = None) -> list[System]:
        """``name`` through Griffin-Lim and ``name_<v>`` through each trained vocoder."""
        rows = []
        for v, vpath in [(GRIFFIN_LIM, GRIFFIN_LIM)] + vocoders:
            n = name if v == GRIFFIN_LIM else f"{name}_{v}"
            t = "" if teacher_of is None else (teacher_of if v == GRIFFIN_LIM else f"{teacher_of}_{v}")
            rows.append(System(n, "model", model, vpath, steps, _copy_reference(v), t, wav(n)))
        return rows

    teacher = f"diffusion_{diffusion_steps}"
    teacher_trained = _trained(os.path.join(expdir, teacher))
    students = {e: int(m.group(1)) for e in entries if (m := _STUDENT.match(e))}
    diffusion = [e for e in entries if e.startswith("diffusion_")]
    for name in [*ACOUSTIC_MODELS, *diffusion]:
        path = os.path.join(expdir, name)
        if not _trained(path):
            continue
        k = students.get(name)
        is_student = teacher_trained and k is not None and k < diffusion_steps
        out += spoken(name, path, teacher_of=f"{teacher}_steps{k}" if is_student else None)
        if is_student:
            out += spoken(f"{teacher}_steps{k}", os.path.join(expdir, teacher), steps=k)
    return _table_order(out)


def _table_order(systems: list[System]) -> list[System]:
    names = [s.name for s in systems]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpeechkdError(f"two systems named {', '.join(dup)}", hint="rename one of the exp dirs")
    resynth = sorted((s for s in systems if s.name.startswith("resynth_")), key=lambda s: s.name)
    rest = sorted((s for s in systems if not s.name.startswith("resynth_")), key=lambda s: s.name)
    return resynth + rest


def pairs(systems: list[System]) -> list[tuple[str, str]]:
    """``(A, B)`` compared as A − B: every system against its reference, then every k-step student
    against its teacher at k steps (in the order of the teachers' rows); only pairs whose both sides
    are in ``systems``."""
    names = {s.name for s in systems}
    out = [(s.name, s.reference) for s in systems if s.reference and s.reference in names]
    for t in systems:
        out += [(s.name, t.name) for s in systems if s.teacher == t.name]
    return out


def diffusion_chain(systems: list[System]) -> list[str]:
    """Exp dirs of the diffusion teacher and its distilled students (``exp/diffusion_<k>``) the
    systems speak with, each once: the input of the paired comparison on mels."""
    seen: list[str] = []
    for s in systems:
        if s.kind == "model" and not s.steps and _STUDENT.match(os.path.basename(os.path.normpath(s.model))) \
                and s.model not in seen:
            seen.append(s.model)
    return sorted(seen)


# ---- the manifest file -------------------------------------------------------------------------
def write_manifest(path: str, systems: list[System]) -> None:
    write_rows(path, COLUMNS, systems)


def read_manifest(path: str) -> list[System]:
    """The rows of a manifest, checked: the header, a known kind, a name that is one path
    component, integer steps, unique names, and references to systems of the manifest."""
    out = []
    for n, d in read_rows(path, COLUMNS, "systems manifest", "stage 10, speechkd synth --systems FILE --systems-from EXP,"):
        if d["kind"] not in KINDS:
            raise SpeechkdError(f"line {n}: unknown kind {d['kind']!r}", path=path, field="kind",
                                hint=f"one of {', '.join(KINDS)}")
        if d["kind"] == "model" and not d["model"]:
            raise SpeechkdError(f"line {n}: a model system without its model", path=path, field="model")
        if not d["steps"].isdigit():
            raise SpeechkdError(f"line {n}: steps {d['steps']!r} is not a whole number >= 0", path=path, field="steps")
        out.append(System(**{**d, "steps": int(d["steps"])}))
    names = {s.name for s in out}
    if len(names) != len(out):
        raise SpeechkdError("a system name appears twice", path=path)
    for s in out:
        for field in ("reference", "teacher"):
            if getattr(s, field) and getattr(s, field) not in names:
                raise SpeechkdError(f"system {s.name}: {field} {getattr(s, field)!r} is not in the manifest",
                                    path=path, field=field)
    return out

"""The systems a speech-enhancement recipe compares on its test sets (recipes/se.sh stages 5-7).

What an exp dir holds decides the systems (a model counts once it has a ``checkpoints/`` dir),
in this order, which is the order of the results tables and of the listening page's columns:

- the baselines, by default both: ``hpf80``, the 80 Hz high-pass baseline (``builtin:highpass80``),
  and ``rnnoise``, RNNoise, the deployed peer (``builtin:rnnoise``; needs the pyrnnoise wheel);
- ``teacher_nytt``, ``teacher_nytt_more`` (the same-compute control), ``clean_upper`` (the
  clean-target upper bound) and each student, each with its last checkpoints averaged;
- ``<student>_st``: teacher/student inference S(T(y)), the student applied to the teacher's output.

The spread systems are the trained models whose single checkpoints 1..K are also evaluated alone:
the teacher, the control and the students (not the high-pass baseline, not S(T(y)), not the upper
bound: no claim rests on its spread), optionally only those named in ``spread_only``.

Each system writes ``<dir>/enhanced/<test set>/<utt>.wav`` (``<dir>`` is ``exp/<name>``) and, for
each checkpoint k of its spread, ``<dir>/enhanced_ckpt<k>/<test set>/``. The manifest
(:func:`write_manifest`, recipe stage 5 writes ``exp/systems.tsv``) holds one row per system;
``speechkd enhance --systems`` enhances it, ``speechkd eval se-systems`` evaluates it,
``speechkd listen manifest --systems`` puts it on the listening page.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from speechkd.enhance import rnnoise
from speechkd.errors import SpeechkdError
from speechkd.utils.manifest import NAME, read_rows, write_rows

logger = logging.getLogger(__name__)

TEACHER = "teacher_nytt"
CONTROL = "teacher_nytt_more"
UPPER_BOUND = "clean_upper"
HPF = ("hpf80", "builtin:highpass80")
RNNOISE = ("rnnoise", "builtin:rnnoise")
BASELINES = dict((HPF, RNNOISE))  # name -> model, in table order
COLUMNS = ("name", "model", "teacher", "spread", "dir")


@dataclass(frozen=True)
class SeSystem:
    """One row of the manifest."""

    name: str  # the name in every table; one file name
    model: str  # exp dir of speechkd se-train, or builtin:highpass80
    teacher: str  # the teacher's exp dir for S(T(y)) (the teacher runs first); "" for the others
    spread: int  # K: its single checkpoints 1..K are enhanced and evaluated alone too (0: none)
    dir: str  # <dir>/enhanced/<test set>/ holds its output

    def enhanced_dir(self, test_set: str, checkpoint: int = 0) -> str:
        """Where the system's output of ``test_set`` goes (``checkpoint`` k > 0: its k-th newest
        checkpoint alone)."""
        return os.path.join(self.dir, f"enhanced_ckpt{checkpoint}" if checkpoint else "enhanced", test_set)


def _trained(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "checkpoints"))


def list_systems(expdir: str, students: list[str], spread: int = 0,
                 spread_only: list[str] | None = None, baselines: list[str] | tuple[str, ...] = ("hpf80",)
                 ) -> list[SeSystem]:
    """Every system of ``expdir`` by the rules of the module docstring, in table order.
    ``students``: the student exp dir names the recipe trains; ``spread`` K >= 0; ``spread_only``:
    names of the only systems whose spread is evaluated (empty or None: all eligible);
    ``baselines``: names of :data:`BASELINES` (rnnoise refused when pyrnnoise is not installed)."""
    for b in baselines:
        if b not in BASELINES:
            raise SpeechkdError(f"unknown baseline {b!r}; known: {', '.join(BASELINES)}", field="--baselines")
    if "rnnoise" in baselines and not rnnoise.available():
        raise SpeechkdError("the rnnoise baseline needs the pyrnnoise wheel, which is not installed",
                            field="--baselines", hint=rnnoise.HINT)
    if spread < 0:
        raise SpeechkdError(f"must be >= 0, got {spread}", field="--spread")
    for s in students:
        if not NAME.match(s):
            raise SpeechkdError(f"student name {s!r} is not one file name", field="--students")
    only = set(spread_only or ())
    path = lambda name: os.path.join(expdir, name)  # noqa: E731
    rows = [(b, m, "") for b, m in BASELINES.items() if b in baselines]
    rows += [(s, path(s), "") for s in [TEACHER, CONTROL, UPPER_BOUND, *students] if _trained(path(s))]
    rows += [(f"{s}_st", path(s), path(TEACHER)) for s in students if _trained(path(s))]
    names = [r[0] for r in rows]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpeechkdError(f"two systems named {', '.join(dup)}", field="--students",
                            hint="name each student once, none after the teacher, control or upper bound")
    out = []
    for name, model, teacher in rows:
        k = spread if (not teacher and name != UPPER_BOUND and _trained(model)
                       and (not only or name in only)) else 0
        out.append(SeSystem(name, model, teacher, k, path(name)))
    return out


# ---- the manifest file -------------------------------------------------------------------------
def write_manifest(path: str, systems: list[SeSystem]) -> None:
    write_rows(path, COLUMNS, systems)


def is_manifest(path: str) -> bool:
    """Whether ``path`` starts with this manifest's header (a TTS systems manifest does not)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return tuple(f.readline().rstrip("\r\n").split("\t")) == COLUMNS
    except (OSError, UnicodeDecodeError):
        return False


def read_manifest(path: str) -> list[SeSystem]:
    """The rows of a manifest, checked: the header, a name that is one file name, a model,
    a whole-number spread only for a model without a teacher, unique names."""
    out = []
    for n, d in read_rows(path, COLUMNS, "SE systems manifest", "stage 5, speechkd enhance --systems FILE --systems-from EXP,"):
        for field in ("model", "dir"):
            if not d[field]:
                raise SpeechkdError(f"line {n}: system {d['name']} has no {field}", path=path, field=field)
        if not d["spread"].isdigit():
            raise SpeechkdError(f"line {n}: spread {d['spread']!r} is not a whole number >= 0", path=path,
                                field="spread")
        if int(d["spread"]) and (d["teacher"] or d["model"].startswith("builtin:")):
            raise SpeechkdError(f"line {n}: system {d['name']} has a spread but no single checkpoints of its own",
                                path=path, field="spread", hint="spread 0 for S(T(y)) and built-in systems")
        out.append(SeSystem(**{**d, "spread": int(d["spread"])}))
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpeechkdError(f"system {dup[0]} appears twice", path=path, field="name")
    return out


# ---- enhancing every system --------------------------------------------------------------------
@dataclass(frozen=True)
class EnhanceJob:
    """One system (or one of its single checkpoints) on one test set."""

    system: SeSystem
    test_set: str
    checkpoint: int  # k > 0: the k-th newest checkpoint alone; 0: the averaged weights
    data_dir: str
    out_dir: str


def enhance_jobs(systems: list[SeSystem], test_sets: list[str], data_root: str) -> list[EnhanceJob]:
    """Every system on every test set, then every spread checkpoint k of each spread system on
    every test set (the order the recipe runs them in)."""
    jobs = [EnhanceJob(s, t, 0, os.path.join(data_root, t), s.enhanced_dir(t)) for s in systems for t in test_sets]
    jobs += [EnhanceJob(s, t, k, os.path.join(data_root, t), s.enhanced_dir(t, k))
             for s in systems for k in range(1, s.spread + 1) for t in test_sets]
    return jobs


def enhance_systems(systems: list[SeSystem], test_sets: list[str], data_root: str, *, average: int = 1,
                    nj: int = 1, num_utts: int = 0) -> list[dict]:
    """Run :func:`enhance_jobs` in this process; a dir whose ``enhance.json`` exists (written when
    every utterance is enhanced) is skipped. Returns the ``enhance.json`` record of each job run."""
    # why: enhance.infer imports torch; listing and reading systems (listen, eval) stay light
    from speechkd.enhance.infer import enhance_datadir

    done = []
    for j in enhance_jobs(systems, test_sets, data_root):
        if os.path.isfile(os.path.join(j.out_dir, "enhance.json")):
            print(f"{j.out_dir}: already enhanced")
            continue
        info = enhance_datadir(j.data_dir, j.out_dir, model=j.system.model, teacher=j.system.teacher or None,
                               average=1 if j.checkpoint else average, checkpoint=j.checkpoint, nj=nj,
                               num_utts=num_utts)
        print(f"{j.data_dir}: {info['enhanced']} enhanced, {info['skipped_existing']} already there -> {j.out_dir}")
        done.append(info)
    return done

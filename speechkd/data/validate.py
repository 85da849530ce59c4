"""Validate and fix Kaldi data dirs (Kaldi's ``validate_data_dir.sh`` / ``fix_data_dir.sh``).

:func:`validate_datadir` never raises for a problem in the data: it returns a
:class:`Report` whose errors and warnings each name the file, the utterance
id and the field. :func:`fix_datadir` drops the utterances that cannot be
used (logging why), sorts, regenerates ``spk2utt`` and writes the dir back
atomically, keeping the originals in ``<dir>/.backup/``.
"""

from __future__ import annotations

import filecmp
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field

from speechkd.audio import audio_info, audio_sample_problem
from speechkd.data.kaldi import REQUIRED, DataDir, read_datadir, read_lines, read_table, sort_key, \
    write_datadir, write_table
from speechkd.errors import AudioError, DataDirError
from speechkd.utils.outputs import same_path
from speechkd.utils.paths import id_problem

logger = logging.getLogger(__name__)

# Files the validator reads; spk2utt and segments are optional.
FILES = ("wav.scp", "text", "utt2spk", "segments", "spk2utt")
# Other per-key files fix keeps consistent when present: file -> what its keys are.
EXTRA_FILES = {"utt2dur": "utt", "utt2num_frames": "utt", "feats.scp": "utt", "utt2lang": "utt",
               "spk2gender": "spk", "reco2dur": "rec"}
# Error kinds fix repairs by rewriting the files rather than by dropping utterances.
REWRITE_KINDS = {"duplicate-id", "unsorted", "spk2utt-mismatch"}
# Error kinds fix cannot repair.
FATAL_KINDS = {"missing-file", "unreadable-file"}
SEGMENT_TOLERANCE_S = 0.01  # segments are written rounded to ms


@dataclass(frozen=True)
class Issue:
    """One problem: ``kind`` is a short slug (e.g. ``missing-audio``) for counting."""

    kind: str
    file: str
    utt: str | None
    field: str | None
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        parts = [where] + ([f"utterance '{self.utt}'"] if self.utt is not None else []) \
            + ([f"field '{self.field}'"] if self.field else [])
        return f"{', '.join(parts)}: {self.message}"


@dataclass
class Report:
    """What :func:`validate_datadir` found. ``unusable`` maps each utterance fix would drop
    to the first error that condemns it."""

    path: str
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    unusable: dict[str, Issue] = field(default_factory=dict)
    num_utts: int = 0
    num_speakers: int = 0
    minutes: float | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self, issues: list[Issue] | None = None) -> dict[str, int]:
        """Number of issues of each kind (errors by default), most frequent first."""
        return dict(Counter(i.kind for i in (self.errors if issues is None else issues)).most_common())

    def summary(self) -> str:
        mins = f", {self.minutes:.2f} minutes" if self.minutes is not None else ""
        return (f"{self.num_utts} utterances ({len(self.unusable)} unusable), "
                f"{self.num_speakers} speakers{mins}")

    def format(self, limit: int = 20) -> str:
        """Human-readable text: the first ``limit`` errors and warnings, then counts per kind."""
        status = "OK" if self.ok else "INVALID"
        lines = [f"{self.path}: {status}: {len(self.errors)} errors, {len(self.warnings)} warnings; "
                 f"{self.summary()}"]
        for title, issues in (("errors", self.errors), ("warnings", self.warnings)):
            if not issues:
                continue
            lines.append(f"{title}:")
            lines += [f"  {i}" for i in issues[:limit]]
            if len(issues) > limit:
                lines.append(f"  ... and {len(issues) - limit} more")
            lines.append(f"{title} by kind: " + ", ".join(f"{k} {n}" for k, n in self.counts(issues).items()))
        if not self.ok:
            lines.append("run `speechkd data fix` to drop unusable utterances, sort and regenerate spk2utt")
        return "\n".join(lines)

    def _add(self, issue: Issue, *, warning: bool = False, drops: str | None = None) -> None:
        (self.warnings if warning else self.errors).append(issue)
        if drops is not None:
            self.unusable.setdefault(drops, issue)


@dataclass
class FixReport:
    """What :func:`fix_datadir` did: ``dropped`` maps each dropped utterance to its reason."""

    path: str
    kept: int
    dropped: dict[str, Issue]
    repaired: list[Issue]
    backup: str | None
    before: Report


def unsafe_id_reason(key: str) -> str | None:
    """Why an id cannot serve as a file name (dumps are named after ids), or None: the writers'
    own rule (:func:`speechkd.utils.paths.id_problem`) plus Kaldi's stricter ones."""
    problem = id_problem(key)
    if problem:
        return problem
    if not key.isprintable():
        return "contains a non-printable character"
    if any(c.isspace() for c in key):
        return "contains whitespace"
    if "/" in key or "\\" in key:
        return "contains a path separator"
    if ".." in key:
        return "contains '..'"
    if key[0] in "-.":
        return f"starts with '{key[0]}'"
    return None


def validate_datadir(path: str | os.PathLike, *, sample_rate: int | None = None,
                     check_audio: bool = True, read_pipes: bool = False) -> Report:
    """Check a data dir against the Kaldi contract and return what is wrong with it.

    sample_rate: when given, audio at another rate is an error (otherwise mixed
        rates are a warning). check_audio: read every audio file (headers; the samples of
        float files for NaN/Inf; the RIFF chunk sizes of wavs for truncation). read_pipes:
        also run the commands of ``cmd |`` entries (off by default, like Kaldi's validator:
        a data dir from elsewhere must not run code just by being checked).
    """
    path = str(path)
    rep = Report(path=path)
    if not os.path.isdir(path):
        rep._add(Issue("missing-file", path, None, None, "data dir does not exist"))
        return rep
    tables: dict[str, dict[str, str]] = {}
    has_segments = os.path.exists(_p(path, "segments"))
    for name in FILES:
        p = os.path.join(path, name)
        if not os.path.exists(p):
            if name in REQUIRED:
                rep._add(Issue("missing-file", p, None, None, f"missing required file {name}"))
            elif name == "spk2utt":
                rep._add(Issue("no-spk2utt", p, None, None, "no spk2utt (fix regenerates it)"),
                         warning=True)
            continue
        try:
            # Keys of these files are utterance ids (wav.scp's are recording ids with segments).
            utt_keyed = name in ("text", "utt2spk", "segments") or (name == "wav.scp" and not has_segments)
            tables[name] = _check_lines(rep, p, name, read_lines(p), utt_keyed)
        except DataDirError as e:
            rep._add(Issue("unreadable-file", p, None, None, str(e)))
    if any(i.kind in FATAL_KINDS for i in rep.errors):
        return rep

    utt2spk, text = tables["utt2spk"], tables["text"]
    segments = _parse_segments(rep, os.path.join(path, "segments"), tables.get("segments"),
                               tables["wav.scp"])
    audio_keys = segments if segments is not None else tables["wav.scp"]
    audio_name = "segments" if segments is not None else "wav.scp"
    utts = sorted(set(utt2spk) | set(text) | set(audio_keys), key=sort_key)
    rep.num_utts = len(utts)
    rep.num_speakers = len({s for s in utt2spk.values() if s})

    for utt in utts:
        have = {"utt2spk": utt in utt2spk, "text": utt in text, audio_name: utt in audio_keys}
        for missing in (n for n, ok in have.items() if not ok):
            rep._add(Issue("missing-id", os.path.join(path, missing), utt, "id",
                           f"in {' and '.join(n for n, ok in have.items() if ok)} but not in {missing}"),
                     drops=utt)
        reason = unsafe_id_reason(utt)
        if reason:
            rep._add(Issue("unsafe-id", _p(path, "utt2spk" if have["utt2spk"] else "text"), utt, "id",
                           f"utterance id {reason}; ids become file names of dumps"), drops=utt)
        spk = utt2spk.get(utt)
        if spk:
            reason = unsafe_id_reason(spk)
            if reason:
                rep._add(Issue("unsafe-id", _p(path, "utt2spk"), utt, "speaker",
                               f"speaker id '{spk}' {reason}"), drops=utt)
            elif not utt.startswith(spk):
                rep._add(Issue("speaker-prefix", _p(path, "utt2spk"), utt, "speaker",
                               f"utterance id does not start with its speaker id '{spk}' "
                               "(Kaldi's rule, so that utt2spk and spk2utt sort alike)"), warning=True)

    if "spk2utt" in tables:
        _check_spk2utt(rep, _p(path, "spk2utt"), tables["spk2utt"], utt2spk)
    if check_audio:
        _check_audio(rep, path, utts, tables["wav.scp"], segments, sample_rate, read_pipes)
    return rep


def _p(path: str, name: str) -> str:
    return os.path.join(path, name)


def _check_lines(rep: Report, p: str, name: str, lines: list[tuple[int, str, str]],
                 utt_keyed: bool) -> dict[str, str]:
    """Order, duplicates and empty values of one file; returns key -> value (first occurrence)."""
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    unsorted_reported = False
    for i, (n, key, value) in enumerate(lines):
        if key in out:
            rep._add(Issue("duplicate-id", p, key, "id", f"duplicate of line {first_line[key]} "
                           "(fix keeps the first)", n))
            continue
        prev = lines[i - 1][1] if i else None
        if prev is not None and sort_key(key) < sort_key(prev) and not unsorted_reported:
            unsorted_reported = True  # one report per file: the first key out of order
            rep._add(Issue("unsorted", p, key, "id", f"not sorted in C order (`LC_ALL=C sort`): "
                           f"comes after '{prev}' (fix sorts it)", n))
        if not value:
            kind = "empty-text" if name == "text" else "empty-value"
            what = "text is empty" if name == "text" else "line has a key but no value"
            rep._add(Issue(kind, p, key, "text" if name == "text" else "value", what, n),
                     drops=key if utt_keyed else None)
        out[key] = value
        first_line[key] = n
    return out


def _parse_segments(rep: Report, p: str, table: dict[str, str] | None,
                    wav_scp: dict[str, str]) -> dict[str, tuple[str, float, float]] | None:
    """utt -> (recording, start, end) of well-formed lines; malformed ones are errors."""
    if table is None:
        return None
    out: dict[str, tuple[str, float, float]] = {}
    for utt, value in table.items():
        if not value:
            out[utt] = ("", 0.0, -1.0)  # already reported as empty-value
            continue
        parts = value.split()
        try:
            rec, start, end = parts[0], float(parts[1]), float(parts[2])
            if len(parts) != 3:
                raise ValueError
        except (IndexError, ValueError):
            rep._add(Issue("bad-segment", p, utt, "segment",
                           f"expected '<utt> <recording> <start> <end>', got '{utt} {value}'"), drops=utt)
            out[utt] = (parts[0], 0.0, -1.0)
            continue
        out[utt] = (rec, start, end)
        if rec not in wav_scp:
            rep._add(Issue("bad-segment", p, utt, "recording", f"recording '{rec}' is not in wav.scp"),
                     drops=utt)
        elif start < 0 or (end >= 0 and end <= start):
            rep._add(Issue("bad-segment", p, utt, "segment",
                           f"bad times {start:.3f}-{end:.3f}s (need 0 <= start < end, or end -1)"), drops=utt)
    used = {rec for rec, _, _ in out.values()}
    for rec in sorted(set(wav_scp) - used, key=sort_key):
        rep._add(Issue("unused-recording", os.path.join(os.path.dirname(p), "wav.scp"), rec, "id",
                       "recording is used by no segment (fix removes it)"), warning=True)
    return out


def _check_spk2utt(rep: Report, p: str, spk2utt: dict[str, str], utt2spk: dict[str, str]) -> None:
    derived: dict[str, list[str]] = {}
    for utt in sorted(utt2spk, key=sort_key):
        derived.setdefault(utt2spk[utt], []).append(utt)
    for spk in sorted(set(derived) | set(spk2utt), key=sort_key):
        have, want = spk2utt.get(spk, "").split(), derived.get(spk, [])
        if have != want:
            rep._add(Issue("spk2utt-mismatch", p, None, "speaker",
                           f"speaker '{spk}' lists {' '.join(have) or 'nothing'} but utt2spk gives "
                           f"{' '.join(want) or 'nothing'} (fix regenerates spk2utt)"))
            return  # one report: spk2utt is derived data, regenerated as a whole


def _check_audio(rep: Report, path: str, utts: list[str], wav_scp: dict[str, str],
                 segments: dict[str, tuple[str, float, float]] | None, sample_rate: int | None,
                 read_pipes: bool = False) -> None:
    """Read the header of every recording once; the duration of usable utterances in minutes."""
    scp = _p(path, "wav.scp")
    infos: dict[str, tuple[int, int, int] | tuple[str, str]] = {}
    rates: Counter[int] = Counter()
    seconds, skipped_pipes = 0.0, []
    for utt in utts:
        if utt in rep.unusable:
            continue
        rec, start, end = segments[utt] if segments is not None else (utt, 0.0, -1.0)
        entry = wav_scp[rec]
        if entry.strip().endswith("|") and not read_pipes:
            skipped_pipes.append(utt)
            continue
        if rec not in infos:
            infos[rec] = _probe(entry, rec)
            if len(infos[rec]) == 3:
                rates[infos[rec][0]] += 1
        info = infos[rec]
        rec_note = f" (recording '{rec}')" if segments is not None else ""
        if len(info) == 2:  # (kind, message)
            rep._add(Issue(info[0], scp, utt, "audio", info[1] + rec_note), drops=utt)
            continue
        sr, channels, frames = info
        problem = None
        if frames == 0:
            problem = ("empty-audio", f"'{entry}' has no samples")
        elif channels != 1:
            problem = ("multichannel-audio", f"'{entry}' has {channels} channels, expected mono "
                       "(down-mix it, e.g. `sox in.wav -c 1 out.wav`)")
        elif sample_rate is not None and sr != sample_rate:
            problem = ("sample-rate", f"'{entry}' is at {sr} Hz, expected {sample_rate} Hz "
                       f"(resample it explicitly, e.g. `sox in.wav -r {sample_rate} out.wav`)")
        if problem:
            rep._add(Issue(problem[0], scp, utt, "audio", problem[1] + rec_note), drops=utt)
            continue
        duration = frames / sr
        if segments is not None:
            if start >= duration or (end >= 0 and end > duration + SEGMENT_TOLERANCE_S):
                rep._add(Issue("bad-segment", _p(path, "segments"), utt, "segment",
                               f"{start:.3f}-{end:.3f}s lies outside recording '{rec}' "
                               f"({duration:.3f}s)"), drops=utt)
                continue
            duration = (min(end, duration) if end >= 0 else duration) - start
        seconds += duration
    if sample_rate is None and len(rates) > 1:
        rep._add(Issue("sample-rate", scp, None, "audio", "recordings have mixed sample rates: " +
                       ", ".join(f"{n} at {sr} Hz" for sr, n in rates.most_common())), warning=True)
    if skipped_pipes:
        rep._add(Issue("pipe-not-run", scp, skipped_pipes[0], "audio",
                       f"{len(skipped_pipes)} utterance(s) read audio through a 'cmd |' entry, not run "
                       "(pass --read-pipes to run them and check their audio)"), warning=True)
    rep.minutes = seconds / 60.0 if not skipped_pipes else None


def _probe(entry: str, rec: str) -> tuple[int, int, int] | tuple[str, str]:
    """audio_info of an entry, or (kind, message) when it cannot be read or its samples are unusable."""
    if not entry.endswith("|") and not os.path.exists(entry):
        return ("missing-audio", f"audio file '{entry}' does not exist")
    try:
        info = audio_info(entry, rec)
        problem = audio_sample_problem(entry, rec)
    except AudioError as e:
        return ("unreadable-audio", f"'{entry}': {_bare(e)}")
    except OSError as e:
        return ("unreadable-audio", f"'{entry}': {e.strerror or e}")
    return problem if problem else info


def _bare(e: AudioError) -> str:
    """An AudioError's message without the location prefix and hint its str() adds."""
    text = str(e)
    where = ", ".join(x for x in (e.path, e.utt and f"utterance '{e.utt}'",
                                  e.field and f"field '{e.field}'") if x)
    if where and text.startswith(where + ": "):
        text = text[len(where) + 2:]
    return text[:-len(e.hint) - 3] if e.hint and text.endswith(f" ({e.hint})") else text


def fix_datadir(path: str | os.PathLike, *, sample_rate: int | None = None,
                out: str | os.PathLike | None = None, read_pipes: bool = True,
                overwrite: bool = False) -> FixReport:
    """Drop unusable utterances (each logged with its reason), sort, regenerate spk2utt.

    Writes in place (originals copied to ``<dir>/.backup/`` first) or to ``out``.
    Raises DataDirError only when the dir cannot be repaired (missing or unreadable files).
    """
    path = str(path)
    before = validate_datadir(path, sample_rate=sample_rate, check_audio=True, read_pipes=read_pipes)
    fatal = [i for i in before.errors if i.kind in FATAL_KINDS]
    if fatal:
        raise DataDirError(f"cannot fix: {fatal[0].message}", path=fatal[0].file,
                           hint="restore or re-create the file, then run fix again")
    dd = read_datadir(path, lenient=True)
    dropped = dict(before.unusable)
    audio_keys = dd.segments if dd.segments is not None else dd.wav_scp
    for utt in set(dd.utt2spk) | set(dd.text) | set(audio_keys):
        if not (utt in dd.utt2spk and utt in dd.text and utt in audio_keys):
            # Only reached if lenient reading lost a line that validation accepted.
            dropped.setdefault(utt, Issue("missing-id", path, utt, "id", "incomplete after reading"))
    keep = [u for u in dd.utt2spk if u not in dropped]
    for utt in sorted(dropped, key=sort_key):
        logger.warning("dropped utterance '%s': %s", utt, dropped[utt])
    fixed = dd.subset(keep)

    dest = str(out) if out is not None else path
    in_place = os.path.abspath(dest) == os.path.abspath(path) or (os.path.exists(dest) and os.path.samefile(dest, path))
    backup = _backup(path) if in_place else None
    if in_place:
        write_datadir(dest, fixed)
    else:
        write_new_datadir(path, dest, fixed, overwrite=overwrite)
    _filter_extras(path, dest, fixed)
    repaired = [i for i in before.errors if i.kind in REWRITE_KINDS]
    for issue in repaired:
        logger.info("repaired: %s", issue)
    kinds = Counter(i.kind for i in dropped.values())
    logger.info("fixed %s: kept %d utterances, dropped %d%s%s", dest, len(keep), len(dropped),
                f" ({', '.join(f'{k} {n}' for k, n in kinds.most_common())})" if kinds else "",
                f"; originals in {backup}" if backup else "")
    return FixReport(path=dest, kept=len(keep), dropped=dropped, repaired=repaired, backup=backup,
                     before=before)


def _backup(path: str) -> str:
    """Copy the dir's files to ``<dir>/.backup/``; never overwrite an earlier, different backup."""
    bdir = os.path.join(path, ".backup")
    os.makedirs(bdir, exist_ok=True)
    for name in (*FILES, *EXTRA_FILES):
        src = os.path.join(path, name)
        if not os.path.isfile(src):
            continue
        n = 0
        while True:
            dst = os.path.join(bdir, name if n == 0 else f"{name}.{n}")
            if not os.path.exists(dst):
                shutil.copy2(src, dst)
                break
            if filecmp.cmp(src, dst, shallow=False):
                break  # this version is already backed up
            n += 1
    return bdir


def write_new_datadir(src: str | os.PathLike, out: str | os.PathLike, dd: DataDir, *,
                      overwrite: bool = False) -> None:
    """Write ``dd`` to ``out``, never silently over its own input or another data dir.

    ``out`` == ``src`` is refused; an existing data dir at ``out`` holding other utterances or
    contents is refused unless ``overwrite``, which first copies its files into ``out/.backup/``
    (the convention of :func:`fix_datadir`). Rewriting identical content
    (a rerun) is allowed."""
    if os.path.exists(out) and same_path(src, out):
        raise DataDirError("the output is the input data dir: writing it would replace the input", path=str(out),
                           hint="give another output dir")
    if os.path.isfile(out):
        raise DataDirError("exists and is a file, not a directory", path=str(out), hint="give a directory path")
    present = [n for n in ("wav.scp", "text", "utt2spk", "segments") if os.path.exists(os.path.join(out, n))]
    if present:
        try:
            old = read_datadir(out, lenient=True)
            same = (old.wav_scp, old.text, old.utt2spk, old.segments) == (dd.wav_scp, dd.text, dd.utt2spk,
                                                                          dd.segments)
        except DataDirError:
            same = False
        if not same:
            if not overwrite:
                raise DataDirError(f"is another data dir ({', '.join(present)} with other contents)",
                                   path=str(out), hint="pass --overwrite to replace it (its files are copied "
                                                       "into .backup/ first) or choose another output dir")
            logger.warning("replacing data dir %s; its files are kept in %s", out, _backup(str(out)))
    write_datadir(out, dd)


def _filter_extras(src: str, dest: str, dd: DataDir) -> None:
    """Keep optional per-utterance/speaker/recording files consistent with the kept utterances."""
    keys = {"utt": set(dd.utt2spk), "spk": set(dd.utt2spk.values()), "rec": set(dd.wav_scp)}
    for name, what in EXTRA_FILES.items():
        p = os.path.join(src, name)
        if os.path.isfile(p):
            table = read_table(p, on_duplicate="first", on_bad_line="skip")
            write_table(os.path.join(dest, name), {k: v for k, v in table.items() if k in keys[what]})

"""Kaldi data directories: the on-disk contract every stage reads and writes.

A data dir holds one line per key, sorted in C (byte) order, exactly as Kaldi
and ESPnet expect::

    wav.scp   <recording-id> <path or "command |">
    text      <utt-id> <transcript>
    utt2spk   <utt-id> <speaker-id>
    spk2utt   <speaker-id> <utt-id> <utt-id> ...   (derived from utt2spk)
    segments  <utt-id> <recording-id> <start-s> <end-s>   (optional)

Without ``segments`` recording ids are utterance ids. Utterance ids should
start with their speaker id so that utt2spk and spk2utt sort consistently
(Kaldi's rule; :func:`speechkd.data.validate.validate_datadir` checks it).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from speechkd.errors import DataDirError
from speechkd.utils.io import atomic_write_text

logger = logging.getLogger(__name__)

REQUIRED = ("wav.scp", "text", "utt2spk")


def sort_key(key: str) -> bytes:
    """C-locale sort order (``LC_ALL=C sort``), as Kaldi's tools assume."""
    return key.encode("utf-8")


@dataclass
class DataDir:
    """An in-memory Kaldi data dir. ``segments`` maps utt -> (recording, start, end)."""

    wav_scp: dict[str, str] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    utt2spk: dict[str, str] = field(default_factory=dict)
    segments: dict[str, tuple[str, float, float]] | None = None
    path: str | None = None

    @property
    def utts(self) -> list[str]:
        """Utterance ids in C sort order."""
        return sorted(self.utt2spk, key=sort_key)

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for utt in self.utts:
            out.setdefault(self.utt2spk[utt], []).append(utt)
        return dict(sorted(out.items(), key=lambda kv: sort_key(kv[0])))

    def audio(self, utt: str) -> tuple[str, tuple[float, float] | None]:
        """(wav.scp entry, optional (start, end) segment) of an utterance."""
        if self.segments is not None:
            if utt not in self.segments:
                raise DataDirError("no entry in segments", path=self._p("segments"), utt=utt)
            rec, start, end = self.segments[utt]
            if rec not in self.wav_scp:
                raise DataDirError(f"recording '{rec}' not in wav.scp", path=self._p("wav.scp"), utt=utt)
            return self.wav_scp[rec], (start, end)
        if utt not in self.wav_scp:
            raise DataDirError("no entry in wav.scp", path=self._p("wav.scp"), utt=utt)
        return self.wav_scp[utt], None

    def subset(self, utts: list[str] | set[str]) -> "DataDir":
        """A data dir restricted to ``utts`` (recordings kept only where used)."""
        keep = set(utts)
        seg = None
        if self.segments is not None:
            seg = {u: s for u, s in self.segments.items() if u in keep}
            recs = {s[0] for s in seg.values()}
            wav = {r: e for r, e in self.wav_scp.items() if r in recs}
        else:
            wav = {u: e for u, e in self.wav_scp.items() if u in keep}
        return DataDir(wav_scp=wav, text={u: t for u, t in self.text.items() if u in keep},
                       utt2spk={u: s for u, s in self.utt2spk.items() if u in keep}, segments=seg)

    def _p(self, name: str) -> str:
        return os.path.join(self.path, name) if self.path else name


def read_lines(path: str | os.PathLike) -> list[tuple[int, str, str]]:
    """``(line number, key, value)`` of every non-blank line, in file order, unchecked."""
    path = str(path)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataDirError("file does not exist", path=path) from None
    except UnicodeDecodeError as e:
        raise DataDirError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=path) from None
    out = []
    for n, line in enumerate(lines, 1):
        parts = line.strip().split(maxsplit=1)
        if parts:
            out.append((n, parts[0], parts[1].strip() if len(parts) > 1 else ""))
    return out


def read_table(path: str | os.PathLike, *, allow_empty_value: bool = False,
               on_duplicate: str = "error", on_bad_line: str = "error") -> dict[str, str]:
    """Read ``<key> <value...>`` lines. Duplicate keys are an error naming both lines.

    on_duplicate="first" keeps the first of duplicate keys; on_bad_line="skip"
    drops lines with a key but no value. Both are logged as warnings.
    """
    out: dict[str, str] = {}
    where: dict[str, int] = {}
    path = str(path)
    for n, key, value in read_lines(path):
        if not value and not allow_empty_value:
            if on_bad_line == "error":
                raise DataDirError(f"line {n} has a key but no value", path=path, utt=key,
                                   hint="remove the line or run `speechkd data fix`")
            logger.warning("%s: line %d: dropped '%s': key but no value", path, n, key)
            continue
        if key in out:
            if on_duplicate == "error":
                raise DataDirError(f"duplicate key on lines {where[key]} and {n}", path=path, utt=key,
                                   hint="ids must be unique; run `speechkd data fix` to keep the first")
            logger.warning("%s: line %d: dropped duplicate '%s' (kept line %d)", path, n, key, where[key])
            continue
        out[key] = value
        where[key] = n
    return out


def write_table(path: str | os.PathLike, table: dict[str, str]) -> None:
    """Write ``<key> <value>`` lines, sorted in C order, atomically."""
    lines = [f"{k} {table[k]}\n" for k in sorted(table, key=sort_key)]
    atomic_write_text(path, "".join(lines))


def read_datadir(path: str | os.PathLike, *, lenient: bool = False) -> DataDir:
    """Read a data dir. ``lenient`` keeps the first of duplicate keys and empty texts and
    drops (with a warning) lines it cannot parse, for :func:`speechkd.data.validate.fix_datadir`."""
    path = str(path)
    if not os.path.isdir(path):
        raise DataDirError("data dir does not exist", path=path)
    for name in REQUIRED:
        if not os.path.exists(os.path.join(path, name)):
            raise DataDirError(f"missing required file {name}", path=path,
                               hint="a data dir needs wav.scp, text and utt2spk")
    kw = {"on_duplicate": "first", "on_bad_line": "skip"} if lenient else {}
    dd = DataDir(
        wav_scp=read_table(os.path.join(path, "wav.scp"), **kw),
        text=read_table(os.path.join(path, "text"), allow_empty_value=True, **kw),
        utt2spk=read_table(os.path.join(path, "utt2spk"), **kw),
        path=path,
    )
    seg_path = os.path.join(path, "segments")
    if os.path.exists(seg_path):
        dd.segments = {}
        for utt, value in read_table(seg_path, **kw).items():
            parts = value.split()
            try:
                rec, start, end = parts[0], float(parts[1]), float(parts[2])
            except (IndexError, ValueError):
                if lenient:
                    logger.warning("%s: dropped '%s': expected '<utt> <recording> <start> <end>'",
                                   seg_path, utt)
                    continue
                raise DataDirError(f"expected '<utt> <recording> <start> <end>', got '{utt} {value}'",
                                   path=seg_path, utt=utt) from None
            dd.segments[utt] = (rec, start, end)
    return dd


def write_datadir(path: str | os.PathLike, dd: DataDir) -> None:
    """Write all files of a data dir (spk2utt derived from utt2spk), each atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_table(path / "wav.scp", dd.wav_scp)
    write_table(path / "text", dd.text)
    write_table(path / "utt2spk", dd.utt2spk)
    write_table(path / "spk2utt", {s: " ".join(u) for s, u in dd.spk2utt.items()})
    if dd.segments is not None:
        write_table(path / "segments",
                    {u: f"{r} {s:.3f} {e:.3f}" for u, (r, s, e) in dd.segments.items()})
    elif (path / "segments").exists():
        (path / "segments").unlink()
    dd.path = str(path)

"""Reading the answers exported by the listening pages (CSV or JSON), with checks.

One row per rating: ``listener, test, item, system, score, plays,
listening_time_s, timestamp`` (required) and ``other, kind, expected,
position`` (optional). Meaning of ``score`` per test:

- mos: 1..5, ITU-T P.800 ACR (5 Excellent .. 1 Bad) of ``system``;
- cmos: -3..+3, ITU-T P.800 CCR of ``system`` compared with ``other``;
- ab: 1 ``system`` preferred, 0 ``other`` preferred, 0.5 no preference;
- abx: 1 X identified correctly, 0 not (``system`` vs ``other``);
- mushra: 0..100 (ITU-R BS.1534-3); ``kind`` is reference / anchor / normal.

``kind`` is normal, gold (attention check with ``expected`` such as ``<=2``),
repeat (a second rating of an item, for consistency), reference or anchor.
Every problem raises :class:`SpeechkdError` naming the file and the line (CSV)
or row (JSON).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from speechkd.errors import SpeechkdError

logger = logging.getLogger(__name__)

REQUIRED = ("listener", "test", "item", "system", "score", "plays", "listening_time_s", "timestamp")
OPTIONAL = {"other": "", "kind": "normal", "expected": "", "position": "0"}
KINDS = ("normal", "gold", "repeat", "reference", "anchor")
_EXPECTED = re.compile(r"^(<=|>=|<|>|=)\s*(-?\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Rating:
    listener: str
    test: str
    item: str
    system: str
    score: float
    plays: int
    listening_time_s: float
    timestamp: str
    other: str = ""
    kind: str = "normal"
    expected: str = ""
    position: int = 0
    source: str = ""
    """``file:line`` (CSV) or ``file:row N`` (JSON) of the rating, for messages."""

    @property
    def key(self) -> tuple[str, ...]:
        """What makes a rating unique: a re-export of the same answer has the same key."""
        return (self.listener, self.test, self.item, self.system, self.other, self.kind)

    def meets_expectation(self) -> bool:
        """Whether a gold item's score satisfies ``expected`` (True when nothing is expected)."""
        m = _EXPECTED.match(self.expected.strip())
        if not m:
            return True
        op, v = m.group(1), float(m.group(2))
        return {"<=": self.score <= v, ">=": self.score >= v, "<": self.score < v,
                ">": self.score > v, "=": self.score == v}[op]


def _check_score(test: str, score: float) -> str | None:
    """None when ``score`` is valid for ``test``, else what is wrong."""
    if test == "mos":
        return None if score in (1, 2, 3, 4, 5) else "MOS scores are integers 1..5"
    if test == "cmos":
        return None if score in (-3, -2, -1, 0, 1, 2, 3) else "CMOS scores are integers -3..+3"
    if test == "ab":
        return None if score in (0, 0.5, 1) else "AB scores are 1, 0 or 0.5 (no preference)"
    if test == "abx":
        return None if score in (0, 1) else "ABX scores are 1 (correct) or 0"
    if test == "mushra":
        return None if 0 <= score <= 100 else "MUSHRA scores are 0..100"
    return f"unknown test {test!r} (mos, cmos, ab, abx, mushra)"


def parse_row(rec: dict, where: str, path: str) -> Rating:
    """One rating from a mapping of strings (CSV) or JSON values."""
    def err(msg: str, fld: str | None = None) -> SpeechkdError:
        return SpeechkdError(f"{where}: {msg}", path=path, field=fld,
                             hint="re-export the answers from the listening page")

    for f in REQUIRED:
        if f not in rec or rec[f] is None or (isinstance(rec[f], str) and rec[f].strip() == ""):
            raise err("missing value", f)
    vals = {f: rec.get(f, d) for f, d in OPTIONAL.items()}
    vals = {f: ("" if v is None else v) for f, v in vals.items()}

    def num(f: str, v: object) -> float:
        try:
            x = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise err(f"not a number: {v!r}", f) from None
        if not math.isfinite(x):
            raise err(f"not a finite number: {v!r}", f)
        return x

    score = num("score", rec["score"])
    test = str(rec["test"]).strip().lower()
    bad = _check_score(test, score)
    if bad:
        raise err(f"score {rec['score']!r} invalid for test {test!r}: {bad}", "score" if test in
                  ("mos", "cmos", "ab", "abx", "mushra") else "test")
    kind = str(vals["kind"] or "normal")
    if kind not in KINDS:
        raise err(f"unknown kind {kind!r} (one of {', '.join(KINDS)})", "kind")
    expected = str(vals["expected"])
    if expected and not _EXPECTED.match(expected.strip()):
        raise err(f"cannot parse expectation {expected!r} (e.g. '<=2')", "expected")
    plays = int(num("plays", rec["plays"]))
    ltime = num("listening_time_s", rec["listening_time_s"])
    if plays < 0 or ltime < 0:
        raise err("plays and listening_time_s must be >= 0", "plays")
    return Rating(listener=str(rec["listener"]).strip(), test=test, item=str(rec["item"]),
                  system=str(rec["system"]), score=score, plays=plays, listening_time_s=ltime,
                  timestamp=str(rec["timestamp"]), other=str(vals["other"]), kind=kind, expected=expected,
                  position=int(num("position", vals["position"] or 0)), source=where)


def _unescape_cell(v: str) -> str:
    """Undo the apostrophe that exports put before text starting with = + - @ (formula guard)."""
    return v[1:] if len(v) > 1 and v[0] == "'" and v[1] in "=+-@\t\r" else v


def read_csv(path: Path) -> list[Rating]:
    out: list[Rating] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, strict=True)
            header = next(reader, None)
            if not header:
                raise SpeechkdError("empty file: no header line", path=str(path),
                                    hint=f"expected columns {', '.join(REQUIRED)}")
            header = [h.strip() for h in header]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise SpeechkdError(f"line 1: header lacks column(s) {', '.join(missing)}", path=str(path),
                                    hint="is this an answers file exported by the listening page?")
            for fields in reader:
                if not fields or fields == [""]:
                    continue
                if len(fields) != len(header):
                    what = "truncated file?" if len(fields) < len(header) else "unquoted comma?"
                    raise SpeechkdError(f"line {reader.line_num}: {len(fields)} fields, expected "
                                        f"{len(header)} ({what})", path=str(path))
                fields = [_unescape_cell(v) for v in fields]
                out.append(parse_row(dict(zip(header, fields)), f"line {reader.line_num}", str(path)))
    except csv.Error as e:
        line = reader.line_num if "reader" in locals() else 0
        raise SpeechkdError(f"line {line}: malformed CSV ({e}; truncated file?)", path=str(path)) from None
    except UnicodeDecodeError as e:
        raise SpeechkdError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=str(path)) from None
    return out


def read_json(path: Path) -> list[Rating]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise SpeechkdError(f"malformed or truncated JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                            path=str(path)) from None
    except UnicodeDecodeError as e:
        raise SpeechkdError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=str(path)) from None
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise SpeechkdError("expected a list of rows or an object with a list 'rows'", path=str(path))
    out = []
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict):
            raise SpeechkdError(f"row {i}: expected an object, got {type(r).__name__}", path=str(path))
        out.append(parse_row(r, f"row {i}", str(path)))
    return out


def read_results(paths: list[str | os.PathLike]) -> list[Rating]:
    """All ratings of the given CSV/JSON files; a rating exported twice counts once (the last)."""
    merged: dict[tuple[str, ...], Rating] = {}
    dups = 0
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise SpeechkdError("results file does not exist", path=str(path))
        rows = read_json(path) if path.suffix.lower() == ".json" else read_csv(path)
        if not rows:
            logger.warning("%s: no ratings", path)
        for r in rows:
            r = Rating(**{**r.__dict__, "source": f"{path}:{r.source}"})
            dups += r.key in merged
            merged[r.key] = r
    if dups:
        logger.warning("%d ratings appear more than once (e.g. exported as CSV and JSON); counted once", dups)
    if not merged:
        raise SpeechkdError("no ratings in the results file(s)", path=", ".join(map(str, paths)))
    return list(merged.values())

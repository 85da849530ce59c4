"""Systems manifests: a TSV file with a header row, one system a row (``speechkd synth --systems``,
``speechkd enhance --systems``). The shared reading and writing; each manifest kind checks its
own fields (:mod:`speechkd.infer.systems`, :mod:`speechkd.enhance.systems`)."""

from __future__ import annotations

import csv
import io
import os
import re
from typing import Any, Sequence

from speechkd.errors import SpeechkdError
from speechkd.utils.io import atomic_write_text

# a system name becomes one directory name: exp/<name>/...
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def write_rows(path: str, columns: Sequence[str], systems: Sequence[Any]) -> None:
    """The header ``columns``, then each system's attributes of those names (atomically)."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(columns)
    for s in systems:
        w.writerow([getattr(s, c) for c in columns])
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_text(path, buf.getvalue())


def read_rows(path: str, columns: Sequence[str], what: str, writer: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, row as a dict) of each row under the header ``columns``, with the system name
    checked; one error line for a missing or unreadable file, another header, a short or long row,
    or a name that is not one file name. ``what`` names the manifest, ``writer`` the command that
    writes it (for the hint)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))
    except FileNotFoundError:
        raise SpeechkdError(f"{what} does not exist", path=path, hint=f"{writer} writes it") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SpeechkdError(f"cannot read the {what} ({e})", path=path) from None
    if not rows or tuple(rows[0]) != tuple(columns):
        raise SpeechkdError(f"not a {what}: the header must be {' '.join(columns)}", path=path)
    out = []
    for n, row in enumerate(rows[1:], 2):
        if len(row) != len(columns):
            raise SpeechkdError(f"line {n}: {len(row)} fields, {len(columns)} expected", path=path)
        d = dict(zip(columns, row))
        if not NAME.match(d["name"]):
            raise SpeechkdError(f"line {n}: system name {d['name']!r} is not one file name", path=path, field="name")
        out.append((n, d))
    return out

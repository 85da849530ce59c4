"""Output paths built from untrusted names (utterance ids, scp keys).

Every writer that turns an id into a file name goes through :func:`safe_child`, so a
hand-edited ``wav.scp``/``feats.scp``/``--list`` key such as ``../../x`` or ``/abs/x`` can
neither write outside the output dir nor make a later run count a file outside it as
"already there". Kaldi ids are whitespace-free tokens; we additionally refuse anything a
file system would read as more than one path component.
"""

from __future__ import annotations

import os
import unicodedata

from speechkd.errors import SpeechkdError

MAX_ID_BYTES = 200  # below NAME_MAX (255) with room for a suffix and atomic_open's temp prefix


def id_problem(name: str) -> str | None:
    """Why ``name`` cannot name a file inside a directory, or None when it can."""
    if not isinstance(name, str) or not name:
        return "empty id"
    if name in (".", ".."):
        return "'.' and '..' are not file names"
    if name.startswith("."):
        return "a leading '.' (hidden file, or a path like ../x)"
    if "/" in name or "\\" in name:
        return "a path separator ('/' or '\\')"
    if "\x00" in name:
        return "a NUL character"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") or c.isspace() for c in name):
        return "whitespace or a control character"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        return f"longer than {MAX_ID_BYTES} bytes"
    return None


def check_id(name: str, *, source: str | None = None) -> str:
    """``name`` if it can name a file, else a :class:`SpeechkdError` naming it and ``source``."""
    why = id_problem(name)
    if why is not None:
        raise SpeechkdError(f"id {name!r} cannot name an output file: {why}", path=source,
                            hint="rename it (Kaldi ids are plain tokens such as spk1_utt0001)")
    return name


def safe_child(out_dir: str | os.PathLike, name: str, suffix: str = "", *, source: str | None = None) -> str:
    """``out_dir/<name><suffix>``, refusing ids that would leave ``out_dir`` (``/``, ``\\``, ``..``,
    absolute paths, NUL, control characters, empty). ``source`` (the file the id came from) is named
    in the error."""
    check_id(name, source=source)
    path = os.path.join(os.fspath(out_dir), f"{name}{suffix}")
    # Belt and braces: the joined path must still lie directly in out_dir.
    if os.path.dirname(os.path.normpath(path)) != os.path.normpath(os.fspath(out_dir)):
        raise SpeechkdError(f"id {name!r} would write outside {os.fspath(out_dir)}", path=source)
    return path

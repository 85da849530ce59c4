"""Nothing is overwritten silently.

Three guards every writer of a user-named output uses:

- :func:`refuse_same_file`: an output that is its own input (``enhance -i x.wav -o x.wav``).
- :func:`claim_output_dir`: an output dir records the settings that made it
  (``.speechkd_settings.json``); a rerun with the same settings resumes, one with other settings,
  or a non-empty dir that some other command made, is refused unless ``overwrite``, which moves
  the old contents into ``<dir>/.backup/<n>/`` (the convention ``speechkd data fix`` uses).
- :func:`backup_dir_contents`: that move, for callers with their own notion of "existing".
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from speechkd.errors import SpeechkdError
from speechkd.utils.io import atomic_write_json

logger = logging.getLogger(__name__)

SETTINGS_FILE = ".speechkd_settings.json"
BACKUP_DIR = ".backup"


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file or dir (hard links and symlinks included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(os.fspath(a)) == os.path.abspath(os.fspath(b))


def refuse_same_file(src: str | os.PathLike, dst: str | os.PathLike, *, field: str | None = None) -> None:
    """A SpeechkdError when ``dst`` is ``src``: writing would destroy the input."""
    if same_path(src, dst):
        raise SpeechkdError("the output is the input: writing it would destroy the input", path=os.fspath(dst),
                            field=field, hint="choose another output path")


def backup_dir_contents(out: str | os.PathLike, names: list[str] | None = None) -> str:
    """Move ``names`` (default: everything but ``.backup``) of ``out`` into ``out/.backup/<n>/``,
    n the first free number; returns that dir."""
    p = Path(out)
    names = names if names is not None else sorted(e.name for e in p.iterdir() if e.name != BACKUP_DIR)
    n = 1
    while (p / BACKUP_DIR / str(n)).exists():
        n += 1
    dest = p / BACKUP_DIR / str(n)
    dest.mkdir(parents=True)
    for name in names:
        if (p / name).exists() or (p / name).is_symlink():
            shutil.move(str(p / name), str(dest / name))
    logger.warning("moved the earlier contents of %s into %s", out, dest)
    return str(dest)


def read_settings(out: str | os.PathLike) -> dict | None:
    """The settings recorded in ``out``; None when absent or unreadable."""
    try:
        data = json.loads((Path(out) / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _normal(settings: dict) -> dict:
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def claim_output_dir(out: str | os.PathLike, settings: dict, *, verb: str, overwrite: bool = False,
                     ignore: tuple[str, ...] = ()) -> str | None:
    """Make ``out`` the output dir of ``speechkd <verb>`` with ``settings`` (a JSON-able dict).

    An empty or absent dir, or one whose recorded settings equal ``settings`` (a rerun, which
    resumes), is accepted. Anything else (other settings, or a non-empty dir with no record: a
    data dir, another command's output) is refused naming the difference and ``--overwrite``;
    with ``overwrite`` the old contents move into ``out/.backup/<n>/`` first. ``ignore``: names
    that may exist beside the output without making the dir "someone else's". Returns the backup
    dir when one was made.
    """
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise SpeechkdError("exists and is not a directory", path=os.fspath(out), hint="give a directory path")
    want = _normal(settings)
    backup = None
    present = sorted(e.name for e in p.iterdir() if e.name not in (BACKUP_DIR, *ignore)) if p.is_dir() else []
    if present and present != [SETTINGS_FILE]:  # a run that failed before writing anything counts as empty
        old = read_settings(p)
        if old == want:
            return None
        if old is None:
            shown = ", ".join(present[:3]) + (" ..." if len(present) > 3 else "")
            why = f"is not empty ({shown}) and is not the output of an earlier `speechkd {verb}`"
        else:
            keys = sorted(set(old) | set(want))
            diff = "; ".join(f"{k}: {old.get(k, '<unset>')!r} -> {want.get(k, '<unset>')!r}"
                             for k in keys if old.get(k) != want.get(k))
            why = f"holds `speechkd {verb}` output made with other settings ({diff})"
        if not overwrite:
            raise SpeechkdError(why, path=os.fspath(out),
                                hint=f"pass --overwrite to move its contents into {os.path.join(os.fspath(out), BACKUP_DIR)}"
                                     "/<n>/ and start over, or choose another output dir")
        backup = backup_dir_contents(p, present)
    p.mkdir(parents=True, exist_ok=True)
    atomic_write_json(p / SETTINGS_FILE, want)
    return backup

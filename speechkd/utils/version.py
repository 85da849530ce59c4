"""The code version recorded in every checkpoint and dump (so a figure can name the code that made it)."""

from __future__ import annotations

import os
import subprocess

import speechkd


def code_version() -> dict[str, str]:
    """speechkd's version and, in a git checkout, the commit (with ``-dirty`` for local changes)."""
    out = {"speechkd": speechkd.__version__, "git_commit": ""}
    root = os.path.dirname(os.path.dirname(os.path.abspath(speechkd.__file__)))
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        if commit:
            dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            out["git_commit"] = commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out

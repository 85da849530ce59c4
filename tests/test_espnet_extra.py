"""The ESPnet extra is optional: the base package imports and works with ESPnet absent.

`tools/install_espnet.sh` installs ESPnet2 (and pysptk, fastdtw) without ESPnet's pins; the
interop tests skip, naming the script, where it was not run. Here every module of the package is
imported in a fresh interpreter whose import system refuses those packages, so a module-level
import of any of them anywhere in speechkd fails the test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import speechkd

ROOT = Path(speechkd.__file__).parent
OPTIONAL = ("espnet", "espnet2", "espnetez", "pysptk", "fastdtw", "torchaudio", "typeguard")

BLOCKER = """
import importlib.abc, pkgutil, sys
BLOCKED = set(sys.argv[1].split(","))
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: the ESPnet extra is absent)")
        return None
sys.meta_path.insert(0, Absent())
import speechkd
names = [m.name for m in pkgutil.walk_packages(speechkd.__path__, "speechkd.")]
for name in names:
    __import__(name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(len(names), ",".join(loaded))
"""


def _run(blocked: tuple[str, ...]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", BLOCKER, ",".join(blocked)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_every_module_imports_without_the_espnet_extra():
    res = _run(OPTIONAL)
    assert res.returncode == 0, res.stderr[-3000:]
    n, loaded = res.stdout.split(" ", 1) if " " in res.stdout else (res.stdout, "")
    assert int(n) > 50, res.stdout  # the walk really covered the package
    assert loaded.strip() == "", f"imported with the extra absent: {loaded}"


def test_the_blocker_catches_a_module_level_import():
    """The check itself can fail: blocking a package speechkd does import (numpy) is reported."""
    res = _run(("numpy",))
    assert res.returncode != 0
    assert "blocked: the ESPnet extra is absent" in res.stderr

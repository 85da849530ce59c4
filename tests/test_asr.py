"""The offline recogniser on real synthetic speech, through the `eval asr` verb."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from speechkd.cli import main
from speechkd.data.kaldi import DataDir, write_datadir

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed (tools/install_system.sh)")

SENTENCES = {
    "slt_a": "The quick brown fox jumped over the lazy dog.",
    "slt_b": "She sells sea shells by the sea shore.",
}


def test_eval_asr_on_flite_speech(tmp_path):
    wav_scp = {}
    for utt, text in SENTENCES.items():
        wav = tmp_path / f"{utt}.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True)
        wav_scp[utt] = str(wav)
    write_datadir(tmp_path / "data", DataDir(wav_scp=wav_scp, text=dict(SENTENCES),
                                             utt2spk={u: "slt" for u in SENTENCES}))
    out = tmp_path / "eval"
    assert main(["eval", "asr", "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["num_utts"] == 2 and len(res["utts"]) == 2
    # flite slt is intelligible to pocketsphinx: well under 50% WER on easy sentences
    assert res["wer"] < 0.5
    assert res["wer_ci95"][0] <= res["wer"] <= res["wer_ci95"][1]
    assert "| utt |" in (out / "results.md").read_text()
    # a wav dir with one file missing is a clear error naming the utterance
    (tmp_path / "synth").mkdir()
    shutil.copy(wav_scp["slt_a"], tmp_path / "synth" / "slt_a.wav")
    rc = main(["eval", "asr", "--data-dir", str(tmp_path / "data"), "--wav-dir", str(tmp_path / "synth"),
               "--out", str(tmp_path / "e2")])
    assert rc == 2

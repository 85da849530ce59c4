"""Untrusted checkpoints never run code: a pickle whose ``__reduce__`` would create a marker file,
saved as ``evil.ckpt`` and as an exp dir's ``checkpoints/last.ckpt``, is refused by every loader
(acoustic model, vocoder, SE model, and the CLI's synth / enhance / vocode) with one line and exit
status 2, and the marker never appears. Also: synthesis never imports Lightning."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechkd.checkpoints import load_model, load_vocoder, read_checkpoint, resolve_checkpoint
from speechkd.cli import main
from speechkd.enhance.exp import load_se_model
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig

from test_synth import make_exp  # a tiny exp dir written the way `speechkd train` writes one


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears if the pickle runs."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def evil(tmp_path: Path) -> dict[str, Path]:
    marker = tmp_path / "PWNED"
    ckpt = {"state_dict": {}, "global_step": 0, "speechkd": {"kind": None, "x": Payload(str(marker))}}
    single = tmp_path / "evil.ckpt"
    torch.save(ckpt, single)
    exp = tmp_path / "exp" / "evil"
    (exp / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, exp / "checkpoints" / "last.ckpt")
    return {"marker": marker, "ckpt": single, "exp": exp}


def _refused(fn, evil) -> None:
    for target in (evil["ckpt"], evil["exp"]):
        with pytest.raises(SpeechkdError, match="refused: the file pickles objects other than tensors"):
            fn(str(target))
        assert not evil["marker"].exists(), f"loading {target} ran the pickled payload"


def test_the_payload_does_run_under_a_plain_pickle_load(evil):
    """The fixture is a real attack: a plain unpickling (what torch.load does without
    weights_only) runs it."""
    with zipfile.ZipFile(evil["ckpt"]) as z:  # torch.save's zip: the pickle is <name>/data.pkl
        pickle.loads(z.read(next(n for n in z.namelist() if n.endswith("data.pkl"))))
    assert evil["marker"].exists()


def test_library_loaders_refuse_it(evil):
    fc = FeatureConfig()
    _refused(lambda p: read_checkpoint(resolve_checkpoint(p)), evil)
    _refused(load_model, evil)
    _refused(lambda p: load_vocoder(p, fc), evil)
    _refused(load_se_model, evil)


def _one_line_exit_2(argv: list[str], capsys, evil) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused" in err and "Traceback" not in err, err
    assert not evil["marker"].exists()


@pytest.mark.parametrize("which", ["ckpt", "exp"])
def test_cli_refuses_it(evil, which, tmp_path, tiny_datadir, capsys):
    target = str(evil[which])
    _one_line_exit_2(["synth", "--model", target, "Hello there.", "-o", str(tmp_path / "x.wav")], capsys, evil)
    wav = tmp_path / "in.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(8000) / 5.0)).astype(np.float32), 16000)
    _one_line_exit_2(["enhance", "--model", target, "-i", str(wav), "-o", str(tmp_path / "out.wav")], capsys, evil)
    dump = tmp_path / "dump"
    assert main(["features", "--data-dir", str(tiny_datadir), "--out", str(dump)]) == 0
    capsys.readouterr()
    _one_line_exit_2(["vocode", "--feats", str(dump), "--vocoder", target, "--out", str(tmp_path / "voc")],
                     capsys, evil)


def test_synth_never_imports_lightning(tmp_path):
    """``speechkd synth`` end to end in a fresh interpreter: Lightning never enters sys.modules."""
    exp = make_exp(tmp_path, "fastspeech2")
    out = tmp_path / "x.wav"
    code = ("import sys\n"
            "from speechkd.cli import main\n"
            f"rc = main(['synth', '--model', {str(exp)!r}, 'the quick brown fox.', '-o', {str(out)!r}])\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning'))\n"
            "print('RC', rc, 'LIGHTNING', ','.join(bad))\n")
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "RC 0 LIGHTNING", res.stdout + res.stderr[-2000:]
    assert sf.info(str(out)).frames > 0

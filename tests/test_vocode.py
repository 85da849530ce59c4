"""Griffin-Lim copy synthesis, the vocode verb, the eval summary and the listening manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from speechkd.cli import main
from speechkd.errors import SpeechkdError
from speechkd.eval.summary import summarize_systems
from speechkd.features.config import FeatureConfig
from speechkd.features.mel import log_mel
from speechkd.listen.manifest import build_manifest, load_manifest
from speechkd.models.vocoders.griffin_lim import GriffinLim, GriffinLimConfig


def _harmonic(seconds=0.6, f0=150.0, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    wav = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 8))
    return torch.from_numpy(wav.astype(np.float32))


def test_griffin_lim_inverts_the_log_mel():
    cfg = FeatureConfig()
    wav = _harmonic()
    mel = log_mel(wav, cfg)
    out = GriffinLim(cfg, GriffinLimConfig(n_iter=32))(mel[None])
    assert out.shape == (1, (mel.shape[0] - 1) * cfg.hop_length)
    err = (log_mel(out[0], cfg)[: mel.shape[0]] - mel).abs().mean().item()
    # more iterations -> closer; momentum beats the plain algorithm at equal iterations
    plain = GriffinLim(cfg, GriffinLimConfig(n_iter=32, momentum=0.0))(mel[None])
    err_plain = (log_mel(plain[0], cfg)[: mel.shape[0]] - mel).abs().mean().item()
    assert err < 0.5 and err <= err_plain


def test_griffin_lim_batch_with_lengths_matches_single():
    cfg = FeatureConfig()
    a, b = log_mel(_harmonic(0.6), cfg), log_mel(_harmonic(0.4, 200.0), cfg)
    batch = torch.full((2, a.shape[0], cfg.n_mels), float(np.log(cfg.log_floor)))
    batch[0], batch[1, : b.shape[0]] = a, b
    gl = GriffinLim(cfg)
    out = gl(batch, lengths=torch.tensor([a.shape[0], b.shape[0]]))
    n = (b.shape[0] - 1) * cfg.hop_length
    # the padded frames are silent, the real ones invert as well as alone
    assert out[1, n + cfg.n_fft:].abs().max() < 1e-4
    err = (log_mel(out[1, :n], cfg)[: b.shape[0] - 1] - b[: b.shape[0] - 1]).abs().mean().item()
    alone = gl(b[None])[0]
    err_alone = (log_mel(alone, cfg)[: b.shape[0] - 1] - b[: b.shape[0] - 1]).abs().mean().item()
    assert abs(err - err_alone) < 0.1


def _dump(tmp_path, tiny_datadir):
    assert main(["features", "--data-dir", str(tiny_datadir), "--out", str(tmp_path / "dump")]) == 0
    return tmp_path / "dump"


def test_vocode_cli_resumes_and_names_missing_dump(tmp_path, tiny_datadir):
    dump = _dump(tmp_path, tiny_datadir)
    out = tmp_path / "synth"
    assert main(["vocode", "--feats", str(dump), "--out", str(out), "--num-utts", "3", "n_iter=4"]) == 0
    wavs = sorted(out.glob("*.wav"))
    assert len(wavs) == 3
    mtime = wavs[0].stat().st_mtime_ns
    assert main(["vocode", "--feats", str(dump), "--out", str(out), "n_iter=4"]) == 0
    assert len(list(out.glob("*.wav"))) == 6 and wavs[0].stat().st_mtime_ns == mtime
    info = json.loads((out / "vocode_info.json").read_text())
    assert info["vocoder"] == "griffin_lim" and info["options"] == {"n_iter": 4}
    assert main(["vocode", "--feats", str(tmp_path / "nodump"), "--out", str(out)]) == 2
    assert main(["vocode", "--feats", str(dump), "--out", str(out), "n_iterations=4"]) == 2


def test_eval_summary_table(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt/results.json").write_text(json.dumps(
        {"num_utts": 2, "wer": 0.25, "wer_ci95": [0.1, 0.4], "cer": 0.1, "cer_ci95": [0.05, 0.2]}))
    (tmp_path / "sys").mkdir()
    (tmp_path / "sys/results.json").write_text(json.dumps(
        {"summary": {"mcd": {"mean": 4.5, "ci95": [4.0, 5.0], "n": 2}},
         "asr": {"num_utts": 2, "wer": 0.5, "wer_ci95": [0.3, 0.7], "cer": 0.2, "cer_ci95": [0.1, 0.3]}}))
    md = summarize_systems([str(tmp_path / "gt/results.json"), str(tmp_path / "sys/results.json")],
                           str(tmp_path / "out"))
    text = open(md).read()
    assert "| gt | 2 | – | – | – | 25.0 [10.0, 40.0] |" in text
    assert "| sys | 2 | 4.50 [4.00, 5.00] |" in text and "50.0 [30.0, 70.0]" in text
    # named ground_truth / resynth_*: listed first whatever the order given, with WER minus ground truth
    for name, wer in (("teacher", 0.9), ("resynth_x", 0.3), ("ground_truth", 0.25)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(
            {"num_utts": 2, "wer": wer, "wer_ci95": [0, 1], "cer": 0.1, "cer_ci95": [0, 1]}))
    md = summarize_systems([str(tmp_path / n / "results.json") for n in ("teacher", "resynth_x", "ground_truth")],
                           str(tmp_path / "out3"))
    rows = [ln.split(" | ")[0] for ln in open(md).read().splitlines() if ln.startswith("| ") and "---" not in ln]
    assert rows == ["| system", "| ground_truth", "| resynth_x", "| teacher"]
    assert "| teacher | 2 |" in open(md).read() and open(md).read().count("+65.0") == 1
    (tmp_path / "bad.json").write_text('{"summary": ')
    with pytest.raises(SpeechkdError, match="malformed JSON"):
        summarize_systems([str(tmp_path / "bad.json")], str(tmp_path / "out2"))


def test_eval_summary_paired_differences(tmp_path):
    # two systems on the same 3 utterances (+ one only A evaluated): A - B by hand
    a = [{"utt": "u1", "mcd": 4.0, "word_errors": 1, "words": 5}, {"utt": "u2", "mcd": 5.0, "word_errors": 0, "words": 5},
         {"utt": "u3", "mcd": 6.0, "word_errors": 2, "words": 10}, {"utt": "u4", "mcd": 9.0, "word_errors": 9, "words": 9}]
    b = [{"utt": "u1", "mcd": 4.5, "word_errors": 2, "words": 5}, {"utt": "u2", "mcd": 5.2, "word_errors": 1, "words": 5},
         {"utt": "u3", "mcd": 6.7, "word_errors": 2, "words": 10}]
    for name, utts in (("student", a), ("teacher_k", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"summary": {}, "utts": utts}))
    paths = [str(tmp_path / n / "results.json") for n in ("student", "teacher_k")]
    md = summarize_systems(paths, str(tmp_path / "out"), pairs=["student:teacher_k"])
    row = json.load(open(tmp_path / "out/results.json"))["pairs"][0]
    assert row["num_utts"] == 3 and row["a"] == "student"
    assert row["mcd"]["mean"] == pytest.approx((-0.5 - 0.2 - 0.7) / 3)
    assert row["wer"]["mean"] == pytest.approx((-1 - 1 + 0) / 20)  # corpus level: error differences / words
    lo, hi = row["wer"]["ci95"]
    assert -0.2 <= lo <= row["wer"]["mean"] <= hi <= 0.0  # a resample lies in [-1/5 (u1 or u2 only), 0]
    assert "| student − teacher_k | 3 | -0.47 [" in open(md).read()
    with pytest.raises(SpeechkdError, match="no results file: nobody"):
        summarize_systems(paths, str(tmp_path / "out2"), pairs=["student:nobody"])
    with pytest.raises(SpeechkdError, match="SYSTEM_A:SYSTEM_B"):
        summarize_systems(paths, str(tmp_path / "out2"), pairs=["student"])


def test_eval_summary_pools_runs_paired_run_by_run(tmp_path):
    """A1+A2:B1+B2 (e.g. two sampling seeds): run j of A against run j of B, each utterance's
    differences summed over the runs, utterances (not runs) resampled by the bootstrap."""
    runs = {"s_0": [(1, 4.0), (0, 5.0)], "s_1": [(3, 4.2), (1, 5.4)],      # student, seeds 0 and 1
            "t_0": [(2, 4.5), (1, 5.2)], "t_1": [(2, 4.4), (2, 5.6)]}      # teacher@k, seeds 0 and 1
    for name, rows in runs.items():
        (tmp_path / name).mkdir()
        utts = [{"utt": f"u{i}", "mcd": m, "word_errors": e, "words": 5} for i, (e, m) in enumerate(rows)]
        (tmp_path / name / "results.json").write_text(json.dumps({"summary": {}, "utts": utts}))
    paths = [str(tmp_path / n / "results.json") for n in runs]
    md = summarize_systems(paths, str(tmp_path / "out"), pairs=["s_0+s_1:t_0+t_1", "s_0:t_0"])
    pooled, single = json.load(open(tmp_path / "out/results.json"))["pairs"]
    assert pooled["a"] == "s_0+s_1" and pooled["num_utts"] == 2 and pooled["runs"] == 2 and "runs" not in single
    # u0: (1-2) + (3-2) = 0, u1: (0-1) + (1-2) = -2, over 2 x (5 + 5) words
    assert pooled["wer"]["mean"] == pytest.approx(-2 / 20)
    lo, hi = pooled["wer"]["ci95"]
    assert lo == pytest.approx(-0.2) and hi == pytest.approx(0.0)  # resamples: u0 twice 0, u1 twice -0.2
    assert pooled["mcd"]["mean"] == pytest.approx(((-0.5 - 0.2) / 2 + (-0.2 - 0.2) / 2) / 2)
    assert single["wer"]["mean"] == pytest.approx(-2 / 10)
    assert "| s_0+s_1 − t_0+t_1 | 2 x 2 | " in open(md).read()
    with pytest.raises(SpeechkdError, match="2 runs against 1"):
        summarize_systems(paths, str(tmp_path / "out2"), pairs=["s_0+s_1:t_0"])
    with pytest.raises(SpeechkdError, match="SYSTEM_A:SYSTEM_B"):
        summarize_systems(paths, str(tmp_path / "out2"), pairs=["s_0+:t_0+t_1"])


def test_listen_manifest_from_data_dir(tmp_path, tiny_datadir):
    dump = _dump(tmp_path, tiny_datadir)
    synth = tmp_path / "synth"
    assert main(["vocode", "--feats", str(dump), "--out", str(synth), "--num-utts", "4", "n_iter=2"]) == 0
    out = build_manifest(str(tiny_datadir), {"gt": str(tiny_datadir), "gl": str(synth)},
                         tmp_path / "m.json", reference_system="gt")
    m = load_manifest(out)  # the page builder's own checks pass
    assert m.reference == "gt" and m.systems == ["gt", "gl"]
    assert len(m.utts) == 4  # the two utterances without synthesized audio are left out
    with pytest.raises(SpeechkdError, match="reference system"):
        build_manifest(str(tiny_datadir), {"gl": str(synth)}, tmp_path / "m2.json", reference_system="gt")


def test_bench_vocoder_json(tmp_path):
    out = tmp_path / "b.json"
    assert main(["bench", "vocoder", "--seconds", "0.5", "--n-iter", "2", "--repeats", "1", "--warmup", "0",
                 "--threads", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())["benches"][0]
    names = [r["name"] for r in res["results"]]
    assert names[:4] == ["torch fast GL (momentum 0.99)", "torch GL (no momentum)", "librosa griffinlim",
                         "GL phase update alone (sgn, sub)"]
    assert names[4].startswith("Vocos-like") and "WORLD synthesis: pyworld" in names
    assert "harmonic sum: numba CPU twin" in names and "harmonic sum: torch, [N, K] materialised" in names
    assert all(r["median_s"] > 0 for r in res["results"]) and res["baseline"] == "librosa griffinlim"
    assert "real-time factors" in res["extra"] and float(res["extra"]["harmonic sum torch vs numba, max |diff|"]) < 1e-3
    if not torch.cuda.is_available():
        assert res["extra"]["CUDA"].startswith("not measured")
    assert main(["bench", "vocoder", "--cases", "gl,hifigan"]) == 2

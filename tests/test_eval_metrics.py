"""Objective metrics: DTW, mel-cepstrum, MCD, F0 errors, SI-SDR, PESQ/STOI, CIs, and the eval CLIs."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from speechkd.cli import main
from speechkd.data.kaldi import DataDir, write_datadir
from speechkd.eval.dtw import dtw
from speechkd.eval.f0 import f0_metrics
from speechkd.eval.mcd import mc2logamp, mcd_dtw, sp2mc, world_features
from speechkd.eval.se_metrics import SI_SDR_MAX, pesq_wb, si_sdr, stoi_scores
from speechkd.eval.stats import bootstrap_ci, json_safe, mean_ci
from speechkd.eval.tts_eval import TtsEvalConfig, evaluate_pair

SR = 16000


def speechlike(seconds: float = 1.0, f0: tuple[float, float] = (110.0, 160.0), seed: int = 0,
               sr: int = SR) -> np.ndarray:
    """A voiced pulse train with a gliding F0 through two formant resonators, then a noise burst."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    phase = np.cumsum(np.linspace(*f0, n) / sr)
    src = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
    src[int(0.75 * n):] = 0.3 * rng.standard_normal(n - int(0.75 * n))   # unvoiced tail
    y = src
    for fc, bw in ((700.0, 130.0), (1200.0, 150.0)):
        r, th = math.exp(-math.pi * bw / sr), 2 * math.pi * fc / sr
        y = lfilter([1.0], [1.0, -2 * r * math.cos(th), r * r], y)
    y *= np.hanning(n) ** 0.25
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def flite(text: str, path, stretch: float = 1.0) -> np.ndarray:
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed")
    subprocess.run(["flite", "-voice", "slt", "--setf", f"duration_stretch={stretch}", "-t", text,
                    "-o", str(path)], check=True, capture_output=True)
    wav, sr = sf.read(path, dtype="float32")
    assert sr == SR
    return wav


def brute_dtw_cost(c: np.ndarray) -> float:
    n, m = c.shape
    d = np.full((n + 1, m + 1), np.inf)
    d[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = c[i - 1, j - 1] + min(d[i - 1, j - 1], d[i - 1, j], d[i, j - 1])
    return float(d[n, m])


# --- DTW ---------------------------------------------------------------------------------------

def test_dtw_known_path():
    c = np.array([[0, 5, 5, 5],
                  [5, 0, 5, 5],
                  [5, 0, 5, 5],
                  [5, 5, 0, 0]], dtype=float)
    path, total = dtw(c)
    assert path.tolist() == [[0, 0], [1, 1], [2, 1], [3, 2], [3, 3]]
    assert total == 0.0
    path, total = dtw(np.array([[1.0, 2.0, 3.0]]))
    assert path.tolist() == [[0, 0], [0, 1], [0, 2]] and total == 6.0


def test_dtw_matches_brute_force_and_is_monotonic():
    rng = np.random.default_rng(1)
    for n, m in ((5, 9), (9, 5), (7, 7)):
        c = rng.random((n, m))
        path, total = dtw(c)
        assert math.isclose(total, brute_dtw_cost(c), rel_tol=1e-12)
        assert math.isclose(total, c[path[:, 0], path[:, 1]].sum(), rel_tol=1e-12)
        steps = np.diff(path, axis=0)
        assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)
        assert np.all((steps >= 0) & (steps <= 1)) and np.all(steps.sum(1) >= 1)


# --- mel-cepstrum and MCD ----------------------------------------------------------------------

def test_sp2mc_is_sptk_warped_cepstrum():
    rng = np.random.default_rng(0)
    nfft = 512
    omega = np.pi * np.arange(nfft // 2 + 1) / (nfft // 2)
    c = np.zeros(30)
    c[0], c[1:] = -3.0, rng.normal(0, 1, 29) / np.arange(1, 30) ** 1.5
    logamp = np.cos(np.outer(omega, np.arange(30))) @ c        # log|H(w)| = sum c_m cos(m w)
    sp = np.exp(2 * logamp)[None]                             # power envelope
    assert np.allclose(sp2mc(sp, order=29, alpha=0.0)[0], c, atol=1e-10)   # alpha 0: plain cepstrum
    mc = sp2mc(sp, order=250, alpha=0.42)                     # warped axis, high order: exact
    assert np.allclose(mc2logamp(mc, 0.42, omega)[0], logamp, atol=1e-4)
    mc24 = sp2mc(sp, order=24, alpha=0.42)
    assert np.allclose(mc24[0], mc[0, :25])                   # orders are truncations of one series


def test_identical_signals_score_perfectly():
    x = speechlike(1.0)
    r = evaluate_pair(x, x, TtsEvalConfig(f0_method="dio"))
    assert r["mcd"] == 0.0 and r["f0_rmse_cents"] == 0.0 and r["vuv_error"] == 0.0
    assert r["voiced_both"] > 50 and r["path_len"] == r["frames_ref"]


def test_mcd_is_loudness_independent_and_grows_with_distortion():
    x = speechlike(1.0, seed=3)
    fa = world_features(x, SR, f0_method="dio")
    fb = world_features(0.3 * x, SR, f0_method="dio")
    assert mcd_dtw(fa.mcep, fb.mcep)[0] < 0.05                   # c0 excluded
    noisy = x + 0.02 * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    assert mcd_dtw(fa.mcep, world_features(noisy, SR, f0_method="dio").mcep)[0] > 1.0


def test_mcd_ignores_inaudible_band_edge_loss():
    import librosa

    x = speechlike(1.0)
    y = librosa.resample(librosa.resample(x, orig_sr=SR, target_sr=22050, res_type="soxr_hq"),
                         orig_sr=22050, target_sr=SR, res_type="soxr_hq")
    a, b = world_features(x, SR), world_features(y, SR)
    assert mcd_dtw(a.mcep, b.mcep)[0] < 0.2        # > 3 dB with a 130 dB envelope range
    a, b = world_features(x, SR, floor_db=130), world_features(y, SR, floor_db=130)
    assert mcd_dtw(a.mcep, b.mcep)[0] > 1.0


def test_mcd_time_stretch_much_smaller_than_other_sentence(tmp_path):
    a = flite("The quick brown fox jumps over the lazy dog.", tmp_path / "a.wav")
    a_slow = flite("The quick brown fox jumps over the lazy dog.", tmp_path / "b.wav", stretch=1.15)
    other = flite("Seven stormy nights passed before the ship returned.", tmp_path / "c.wav")
    fa, fs, fo = (world_features(w, SR, f0_method="dio") for w in (a, a_slow, other))
    same, path = mcd_dtw(fa.mcep, fs.mcep)
    diff, _ = mcd_dtw(fa.mcep, fo.mcep)
    assert same < 0.6 * diff, (same, diff)
    assert f0_metrics(fa.f0, fs.f0, path)["vuv_error"] < 0.2


def test_f0_metrics_known_values():
    path = np.stack([np.arange(6), np.arange(6)], 1)
    ref = np.array([100.0, 100, 200, 0, 0, 150])
    syn = np.array([200.0, 100, 200, 0, 120, 150])          # one octave off, one V/UV error
    m = f0_metrics(ref, syn, path)
    assert math.isclose(m["f0_rmse_cents"], math.sqrt(1200 ** 2 / 4))
    assert math.isclose(m["vuv_error"], 1 / 6) and m["voiced_both"] == 4


# --- speech enhancement metrics ------------------------------------------------------------------

def test_si_sdr_of_constructed_mixture():
    rng = np.random.default_rng(0)
    ref = speechlike(1.0).astype(np.float64)
    ref -= ref.mean()
    for target in (-5.0, 0.0, 7.5, 20.0):
        n = rng.standard_normal(len(ref))
        n -= n.mean()
        n -= (n @ ref) / (ref @ ref) * ref                      # orthogonal to the reference
        n *= math.sqrt((ref @ ref) / (n @ n) / 10 ** (target / 10))
        assert abs(si_sdr(ref + n, ref) - target) < 0.1
        assert abs(si_sdr(0.2 * (ref + n) + 0.1, ref) - target) < 0.1   # scale and offset invariant
    assert si_sdr(ref, ref) == SI_SDR_MAX
    assert math.isnan(si_sdr(ref, np.zeros_like(ref)))


def test_pesq_and_stoi_of_identical_and_silent_clips(tmp_path):
    x = speechlike(2.0)
    p, err = pesq_wb(x, x, SR)
    assert 4.5 < p < 4.7 and err is None
    p, err = pesq_wb(x, np.zeros_like(x), SR)
    assert math.isnan(p) and "silent" in err
    p, err = pesq_wb(x[:1000], x[:1000], SR)
    assert math.isnan(p) and "BufferTooShort" in err
    st, est, err = stoi_scores(x, x, SR)
    assert st > 0.99 and est > 0.99 and err is None
    st, est, err = stoi_scores(x[:3000], x[:3000], SR)      # < 30 frames: pystoi gives up
    assert math.isnan(st) and math.isnan(est) and "Not enough" in err


# --- statistics -------------------------------------------------------------------------------

def test_confidence_intervals():
    s = mean_ci([2.5] * 10)
    assert (s.mean, s.lo, s.hi) == (2.5, 2.5, 2.5)
    s = mean_ci([1.0, 2.0, 3.0, float("nan")])
    assert s.n == 3 and s.n_nan == 1 and s.mean == 2.0
    assert math.isclose(s.hi - s.mean, 4.302652729911275 * 1.0 / math.sqrt(3))   # t_{.975, 2}
    assert math.isnan(mean_ci([1.0]).lo)
    x = np.random.default_rng(0).normal(5, 1, 50)
    b1, b2 = bootstrap_ci(x, seed=3), bootstrap_ci(x, seed=3)
    assert b1 == b2 and b1.lo < x.mean() < b1.hi and b1.n == 50
    t = mean_ci(x)
    assert abs((b1.hi - b1.lo) - (t.hi - t.lo)) < 0.25 * (t.hi - t.lo)
    assert json_safe({"a": [float("nan"), np.float64(1.5)]}) == {"a": [None, 1.5]}


# --- CLI end to end --------------------------------------------------------------------------

def _datadir(root, wavs: dict[str, np.ndarray]) -> str:
    d = root / "data"
    (root / "audio").mkdir()
    scp = {}
    for utt, w in wavs.items():
        scp[utt] = str(root / "audio" / f"{utt}.wav")
        sf.write(scp[utt], w, SR)
    write_datadir(d, DataDir(wav_scp=scp, text={u: "hello world" for u in wavs},
                             utt2spk={u: "spk1" for u in wavs}))
    return str(d)


def test_cli_eval_tts(tmp_path, capsys):
    wavs = {f"spk1_u{i}": speechlike(0.6, seed=i) for i in range(3)}
    data = _datadir(tmp_path, wavs)
    syn = tmp_path / "synth"
    syn.mkdir()
    for utt, w in wavs.items():
        sf.write(syn / f"{utt}.wav", w, SR)
    out = tmp_path / "eval"
    args = ["eval", "tts", "--data-dir", data, "--wav-dir", str(syn), "--out", str(out), "--no-asr",
            "--f0-method", "dio"]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["summary"]["mcd"]["mean"] == 0.0 and res["summary"]["mcd"]["ci95"] == [0.0, 0.0]
    assert len(res["utts"]) == 3 and "MCD dB" in (out / "results.md").read_text()
    assert "MCD 0.00 dB" in capsys.readouterr().out

    (syn / "spk1_u1.wav").unlink()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "spk1_u1" in err and str(syn / "spk1_u1.wav") in err and "missing" in err
    assert main(args + ["--allow-missing"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert [m["utt"] for m in res["missing"]] == ["spk1_u1"] and len(res["utts"]) == 2

    sf.write(syn / "spk1_u1.wav", np.full(8000, np.nan, np.float32), SR, subtype="FLOAT")
    assert main(args) == 2
    assert "NaN" in capsys.readouterr().err
    sf.write(syn / "spk1_u1.wav", np.zeros(0, np.float32), SR)
    assert main(args) == 2
    assert "spk1_u1" in capsys.readouterr().err


def test_cli_eval_se(tmp_path, capsys):
    rng = np.random.default_rng(0)
    clean = {f"spk1_u{i}": speechlike(1.0, seed=i) for i in range(3)}
    data = _datadir(tmp_path, clean)
    noisy_dir, enh_dir = tmp_path / "noisy", tmp_path / "enh"
    noisy_dir.mkdir()
    enh_dir.mkdir()
    for utt, x in clean.items():
        n = rng.standard_normal(len(x)).astype(np.float32)
        n *= np.sqrt(np.sum(x ** 2) / np.sum(n ** 2))            # 0 dB
        sf.write(noisy_dir / f"{utt}.wav", x + n, SR, subtype="FLOAT")
        sf.write(enh_dir / f"{utt}.wav", x + 0.1 * n, SR, subtype="FLOAT")   # 20 dB
    out = tmp_path / "eval_se"
    args = ["eval", "se", "--ref-dir", data, "--enh-dir", str(enh_dir), "--noisy-dir", str(noisy_dir),
            "--out", str(out), "--dnsmos", "off"]  # DNSMOS has its own tests (test_se_peers.py)
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    s = res["summary"]
    assert abs(s["si_sdr"]["mean"] - 20) < 0.5 and abs(s["si_sdr_noisy"]["mean"]) < 0.5
    assert abs(s["si_sdr_delta"]["mean"] - 20) < 0.5
    assert s["pesq_delta"]["mean"] > 0 and s["stoi"]["mean"] > s["stoi_noisy"]["mean"]
    assert "SI-SDRi" in capsys.readouterr().out and "improvement" in (out / "results.md").read_text()

    sf.write(enh_dir / "spk1_u0.wav", np.zeros(SR, np.float32), SR)   # silent estimate: NaN PESQ, no crash
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["utts"][0]["pesq"] is None and "silent" in res["utts"][0]["pesq_error"]
    assert res["summary"]["pesq"]["n_nan"] == 1

    sf.write(enh_dir / "spk1_u2.wav", speechlike(1.0, sr=8000), 8000)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "8000 Hz" in err and str(enh_dir / "spk1_u2.wav") in err

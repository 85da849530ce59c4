"""Features: the one log-mel, F0, energy, token averages, statistics, parallel resumable dumps."""

from __future__ import annotations

import os

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from speechkd.cli import main as cli_main
from speechkd.data.kaldi import DataDir, write_datadir
from speechkd.errors import AudioError, FeatureMismatchError, SpeechkdError
from speechkd.features.average import token_average, token_energy, token_pitch
from speechkd.features.config import MEL_FIELDS, FeatureConfig, check_compatible
from speechkd.features.dump import dump_features, load_utterance, read_feats_scp
from speechkd.features.energy import frame_energy, frame_energy_numpy
from speechkd.features.mel import _mel_basis_np, log_mel, log_mel_numpy, mel_basis
from speechkd.features.pitch import extract_pitch
from speechkd.features.stats import Stats, compute_stats

RUN_PL = os.path.join(os.path.dirname(__file__), "..", "recipes", "utils", "run.pl")
SR = 16000
CFG = FeatureConfig()


def harmonic(f0: float, seconds: float, sr: int = SR, n: int = 5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, n + 1)).astype(np.float32)


def test_mel_shape_and_frames():
    for n in (8000, 8001, 12345):
        mel = log_mel_numpy(np.zeros(n, np.float32) + 1e-3, SR, CFG)
        assert mel.shape == (1 + n // CFG.hop_length, CFG.n_mels) == (CFG.num_frames(n), 80)
        assert mel.dtype == np.float32
    nc = FeatureConfig(center=False)
    assert log_mel_numpy(np.ones(5000, np.float32), SR, nc).shape[0] == nc.num_frames(5000) == 16


def test_mel_of_sine_peaks_at_right_bin():
    freqs = librosa.mel_frequencies(n_mels=CFG.n_mels, fmin=CFG.fmin, fmax=CFG.fmax, htk=False)
    for f in (300.0, 1000.0, 4000.0):
        t = np.arange(SR) / SR
        mel = log_mel_numpy(np.sin(2 * np.pi * f * t).astype(np.float32), SR, CFG)
        peak = int(np.argmax(mel[10:-10].mean(0)))
        assert abs(peak - int(np.argmin(np.abs(freqs - f)))) <= 1
    # natural log of the floor on silence; log10 variant
    assert np.allclose(log_mel_numpy(np.zeros(4000, np.float32), SR, CFG), np.log(1e-5))
    assert np.allclose(log_mel_numpy(np.zeros(4000, np.float32), SR, FeatureConfig(log_base="10")), -5)


def test_mel_matches_librosa_reference():
    x = harmonic(150, 0.5)
    ref = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=1024, hop_length=256, win_length=1024, power=1.0,
                                         n_mels=80, fmin=0, fmax=8000, center=True, pad_mode="reflect")
    ours = log_mel_numpy(x, SR, CFG)
    # compared linearly: near the floor float32 rounding moves the log by ~1e-3
    assert np.allclose(np.exp(ours), np.maximum(ref, 1e-5).T, rtol=1e-4, atol=1e-6)


def test_torch_batch_equals_single_and_is_differentiable():
    x = torch.from_numpy(np.stack([harmonic(120, 0.4), harmonic(220, 0.4) * 0.5]))
    batch = log_mel(x, CFG)
    for i in range(2):
        assert torch.allclose(batch[i], log_mel(x[i], CFG), atol=1e-5)
    e = frame_energy(x, CFG)
    assert e.shape == batch.shape[:2] and torch.allclose(e[1], frame_energy(x[1], CFG), rtol=1e-5)
    y = x.clone().requires_grad_(True)
    log_mel(y, CFG).mean().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_wrong_sample_rate_is_an_error():
    with pytest.raises(AudioError, match="22050 Hz but the feature config says 16000"):
        log_mel_numpy(np.zeros(4000, np.float32), 22050, CFG)
    with pytest.raises(AudioError, match="sample_rate"):
        log_mel(torch.zeros(4000), CFG, sample_rate=8000)


def test_f0_of_200hz_harmonic_signal():
    x = harmonic(200, 1.0)
    lf0, vuv = extract_pitch(x, SR, CFG)
    assert lf0.shape == vuv.shape == (CFG.num_frames(len(x)),)
    voiced = vuv > 0
    assert voiced[5:-5].all()
    assert np.allclose(np.exp(lf0[voiced][5:-5]), 200, rtol=0.02)
    assert np.allclose(np.exp(extract_pitch(x, SR, FeatureConfig(f0_method="harvest"))[0][5:-5]), 200, rtol=0.02)


def test_f0_unvoiced_and_interpolation():
    lf0, vuv = extract_pitch(np.zeros(8000, np.float32), SR, CFG)
    assert not vuv.any() and not lf0.any() and np.isfinite(lf0).all()
    noise = np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32)
    lf0, vuv = extract_pitch(noise, SR, CFG)
    assert np.isfinite(lf0).all() and vuv.mean() < 0.5
    # a voiced - silent - voiced signal: the gap is bridged within the voiced range
    x = np.concatenate([harmonic(150, 0.4), np.zeros(4800, np.float32), harmonic(250, 0.4)])
    lf0, vuv = extract_pitch(x, SR, CFG)
    gap = vuv == 0
    assert gap[28:42].all()  # silence spans samples 6400-11200 = frames 25-43
    assert (lf0[gap][5:-5] >= np.log(145)).all() and (lf0[gap][5:-5] <= np.log(255)).all()


def test_energy_matches_manual_stft():
    x = harmonic(180, 0.3)
    e = frame_energy_numpy(x, SR, CFG)
    S = np.abs(librosa.stft(x, n_fft=1024, hop_length=256, win_length=1024, center=True, pad_mode="reflect"))
    assert np.allclose(e, np.sqrt((S ** 2).sum(0)), rtol=1e-4)


def test_feature_config_mismatch_names_fields(tmp_path):
    a, b = FeatureConfig(), FeatureConfig(hop_length=200, n_mels=64, f0_method="harvest")
    with pytest.raises(FeatureMismatchError) as e:
        check_compatible(a, b, "teacher", "vocoder")
    msg = str(e.value)
    assert "hop_length: 256 (teacher) vs 200 (vocoder)" in msg and "n_mels: 80 (teacher) vs 64 (vocoder)" in msg
    assert "f0_method" in msg and "fmax" not in msg
    with pytest.raises(FeatureMismatchError) as e:
        check_compatible(a, b, "teacher", "vocoder", only=MEL_FIELDS)
    assert "f0_method" not in str(e.value)
    check_compatible(a, FeatureConfig(f0_method="harvest"), only=MEL_FIELDS)
    a.save(tmp_path / "f.yaml")
    assert FeatureConfig.load(tmp_path / "f.yaml") == a
    assert "# FFT size" in (tmp_path / "f.yaml").read_text()


def test_token_averages():
    values = np.array([1, 2, 3, 4, 5, 6], np.float32)
    dur = np.array([2, 0, 3, 1])
    assert np.allclose(token_average(values, dur), [1.5, 0, 4, 6])
    assert np.allclose(token_energy(values, dur), [1.5, 0, 4, 6])
    vuv = np.array([0, 1, 1, 0, 0, 0], np.float32)
    # token 0: voiced frame 2 only; token 2: voiced 3 (frame 3); token 3 no voiced frame -> its contour mean
    assert np.allclose(token_pitch(values, vuv, dur), [2, 0, 3, 6])
    with pytest.raises(SpeechkdError, match="utterance 'u1'.*sum to 5 frames but the features have 6"):
        token_average(values, np.array([2, 3]), utt="u1")
    with pytest.raises(SpeechkdError, match="negative"):
        token_average(values, np.array([7, -1]))


def _make_datadir(root, n=5, bad=None) -> str:
    dd = DataDir()
    for i in range(n):
        u = f"spk1-{i:03d}"
        path = root / f"{u}.wav"
        sr = 22050 if bad == u else SR
        sf.write(path, harmonic(120 + 20 * i, 0.3 + 0.05 * i, sr=sr), sr)
        dd.wav_scp[u], dd.text[u], dd.utt2spk[u] = str(path), "hello", "spk1"
    write_datadir(root / "data", dd)
    return str(root / "data")


def test_dump_serial_parallel_resume_stats(tmp_path):
    data = _make_datadir(tmp_path)
    s1 = dump_features(data, str(tmp_path / "d1"), CFG)
    assert cli_main(["features", "--data-dir", data, "--out", str(tmp_path / "d2"), "--nj", "2",
                     "--cmd", RUN_PL]) == 0
    assert (tmp_path / "d2" / "log" / "features.2.log").exists()
    f1, f2 = read_feats_scp(str(tmp_path / "d1")), read_feats_scp(str(tmp_path / "d2"))
    assert list(f1) == list(f2) and len(f1) == 5
    for utt, (p, T) in f1.items():
        a, b = load_utterance(p), load_utterance(f2[utt][0])
        assert a["mel"].shape == (T, 80) and a["lf0"].shape == a["vuv"].shape == a["energy"].shape == (T,)
        for k in a:
            assert np.array_equal(a[k], b[k]), (utt, k)
    # statistics: mean log-F0 of 120..200 Hz voices, mel stats of the concatenation
    mels = np.concatenate([load_utterance(p)["mel"] for p, _ in f1.values()])
    assert np.allclose(s1.mel_mean, mels.mean(0), atol=1e-4) and np.allclose(s1.mel_std, mels.std(0), atol=1e-3)
    assert np.log(115) < s1.lf0_mean < np.log(205) and s1.num_frames == len(mels)
    st = Stats.load(tmp_path / "d1" / "stats.npz")
    assert np.allclose(st.mel_mean, compute_stats([p for p, _ in f1.values()]).mel_mean)
    assert (tmp_path / "d1" / "stats.json").exists()
    # resume: only the deleted utterance is recomputed
    victim = f1["spk1-002"][0]
    os.unlink(victim)
    mtimes = {u: os.stat(p).st_mtime_ns for u, (p, _) in f1.items() if u != "spk1-002"}
    broken = f1["spk1-004"][0]
    with open(broken, "wb") as f:  # a file truncated by a kill (the atomic writes prevent it) is redone too
        f.write(b"PK\x03\x04garbage")
    mtimes.pop("spk1-004")
    dump_features(data, str(tmp_path / "d1"), CFG)
    assert os.path.exists(victim) and np.array_equal(load_utterance(broken)["mel"], load_utterance(f2["spk1-004"][0])["mel"])
    assert mtimes == {u: os.stat(f1[u][0]).st_mtime_ns for u in mtimes} and len(mtimes) == 3
    # dev-style dump with the training statistics
    dump_features(data, str(tmp_path / "d3"), CFG, stats_from=str(tmp_path / "d1" / "stats.npz"))
    assert np.array_equal(Stats.load(tmp_path / "d3" / "stats.npz").mel_std, st.mel_std)
    # a changed config is refused, naming the field; --overwrite recomputes
    with pytest.raises(FeatureMismatchError, match="hop_length: 256.*vs 200.*--overwrite"):
        dump_features(data, str(tmp_path / "d1"), FeatureConfig(hop_length=200))
    dump_features(data, str(tmp_path / "d1"), FeatureConfig(hop_length=200), overwrite=True)
    assert read_feats_scp(str(tmp_path / "d1"))["spk1-000"][1] == 1 + int(0.3 * SR) // 200


def test_dump_wrong_rate_names_utterance(tmp_path, capsys):
    data = _make_datadir(tmp_path, n=3, bad="spk1-001")
    with pytest.raises(AudioError, match="spk1-001.wav.*utterance 'spk1-001'.*22050 Hz, expected 16000"):
        dump_features(data, str(tmp_path / "d1"), CFG)
    # in parallel jobs the parent's error shows the failing job's log
    assert cli_main(["features", "--data-dir", data, "--out", str(tmp_path / "d2"), "--nj", "3",
                     "--cmd", RUN_PL]) == 2
    err = capsys.readouterr().err
    assert "1 of 3 feature jobs failed" in err and "features.2.log" in err
    assert "utterance 'spk1-001'" in err and "22050 Hz" in err


def test_print_config(capsys):
    assert cli_main(["features", "--print-config", "n_mels=64", "f0_method=harvest"]) == 0
    out = capsys.readouterr().out
    assert "n_mels: 64" in out and "f0_method: harvest" in out and "# number of mel bands" in out
    assert FeatureConfig.from_dict(__import__("yaml").safe_load(out)).n_mels == 64
    assert cli_main(["features", "--print-config", "hop=3"]) == 2
    assert "unknown key(s) hop" in capsys.readouterr().err


def test_mel_basis_cached_and_readonly():
    b = mel_basis(CFG)
    assert b is mel_basis(FeatureConfig()) and b.shape == (80, 513) and not b.flags.writeable


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [(16000, 512, 80, 0.0, 8000.0), (22050, 1024, 80, 40.0, 7600.0),
                                                       (24000, 256, 20, 80.0, 4000.0)])
@pytest.mark.parametrize("scale", ["slaney", "htk"])
def test_mel_basis_equals_librosa(sr, n_fft, n_mels, fmin, fmax, scale):
    """The filter bank written out in numpy is librosa's, bit for bit (the feature definition)."""
    ours = _mel_basis_np.__wrapped__(sr, n_fft, n_mels, fmin, fmax, scale)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=scale == "htk",
                              norm="slaney" if scale == "slaney" else None)
    assert ours.dtype == ref.dtype and np.array_equal(ours, ref)

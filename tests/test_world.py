"""WORLD resynthesis (pyworld) and the batched harmonic-plus-noise synthesis (numba CPU twin)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from speechkd.cli import main
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.features.mel import log_mel_numpy
from speechkd.checkpoints import load_vocoder
from speechkd.models.vocoders import source_filter as sfm
from speechkd.models.vocoders.world import World, WorldConfig, WorldParams

SR = 16000


def _voice(seconds=0.5, f0=140.0, noise=0.0, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.1 * np.sin(2 * np.pi * 2 * t))
    ph = 2 * np.pi * np.cumsum(f) / SR
    x = sum(0.3 / k * np.cos(k * ph) for k in range(1, 20))
    return (x + noise * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("synthesis", ["world", "harmonic"])
def test_world_resynthesis_keeps_the_spectrum(synthesis):
    fc = FeatureConfig()
    wav = _voice()
    voc = World(fc, WorldConfig(f0_method="dio", synthesis=synthesis))
    out = voc.resynthesize([wav, wav[:4000]], SR)
    assert [len(o) for o in out] == [len(wav), 4000]
    ref = log_mel_numpy(wav, SR, fc)
    err = np.abs(log_mel_numpy(out[0], SR, fc) - ref)[3:-3].mean()
    assert err < 0.6, err  # a different waveform with the same short-time spectrum
    assert 0.5 < out[0].std() / wav.std() < 2.0


def test_harmonic_level_and_noise_level_follow_cheaptrick():
    """A flat envelope sp with ap=0 gives harmonics of amplitude 2 sqrt(sp f0/fs); with ap=1,
    noise of variance sp."""
    T, F, f0 = 201, 513, 200.0
    sp = np.full((T, F), 1e-3)
    per = WorldParams(np.full(T, f0), sp, np.zeros((T, F)), SR, 5.0)
    x = sfm.synthesize_batch([per])[0]
    amp = 2 * np.sqrt(1e-3 * f0 / SR)
    spec = np.abs(np.fft.rfft(x[4000:12000])) / 4000  # 8000 samples: 2 Hz bins
    assert abs(spec[int(f0 / 2)] / amp - 1) < 0.05 and abs(spec[int(3 * f0 / 2)] / amp - 1) < 0.05
    noi = WorldParams(np.zeros(T), sp, np.ones((T, F)), SR, 5.0)
    y = sfm.synthesize_batch([noi], seed=3)[0]
    assert abs(y[1000:-1000].var() / 1e-3 - 1) < 0.1


def test_cpu_twin_matches_float64_reference_and_batches():
    rng = np.random.default_rng(0)
    params = []
    for T in (40, 25):
        f0 = np.where(rng.random(T) < 0.7, rng.uniform(90, 300, T), 0.0)
        params.append(WorldParams(f0, rng.uniform(1e-5, 1e-2, (T, 513)), rng.uniform(0, 1, (T, 513)), SR, 5.0))
    a = sfm.prepare(params)
    got = sfm.harmonics(a)
    ref = sfm.harmonics_reference(a["phase"], a["amp"], a["kcount"], a["n_samples"], a["period"])
    assert np.abs(got - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
    assert np.all(got[1, a["n_samples"][1]:] == 0)
    from speechkd.models.vocoders.source_filter_cuda import cuda_available

    if not cuda_available():
        with pytest.raises(SpeechkdError, match="needs a GPU"):
            sfm.harmonics(a, "cuda")
    alone = sfm.harmonics(sfm.prepare(params[1:], max_harmonics=a["amp"].shape[2]))
    n = a["n_samples"][1]
    assert np.allclose(alone[0, :n], got[1, :n], atol=1e-6)


def test_vocode_world_on_a_data_dir(tmp_path, tiny_datadir):
    out = tmp_path / "world"
    assert main(["vocode", "--vocoder", "world", "--data-dir", str(tiny_datadir), "--out", str(out),
                 "--num-utts", "2", "f0_method=dio", "synthesis=harmonic"]) == 0
    assert len(list(out.glob("*.wav"))) == 2
    info = json.loads((out / "vocode_info.json").read_text())
    assert info["vocoder"] == "world" and info["options"]["synthesis"] == "harmonic"
    # WORLD needs the audio: without --data-dir, and given mels, it says so
    assert main(["vocode", "--vocoder", "world", "--feats", str(tmp_path), "--out", str(out)]) == 2
    with pytest.raises(SpeechkdError, match="cannot vocode a log-mel"):
        load_vocoder("world", FeatureConfig())(torch.zeros(1, 10, 80))


def test_vocode_world_in_parallel_matches_one_process(tmp_path, tiny_datadir):
    """nj=2 shares whole batches between two processes: the same wavs as one process."""
    from speechkd.audio import load_audio
    from speechkd.infer.vocode import resynthesize_datadir

    opts = {"f0_method": "dio", "synthesis": "harmonic"}
    infos = {nj: resynthesize_datadir(str(tiny_datadir), str(tmp_path / f"nj{nj}"), "world", opts, device="cpu",
                                      batch_size=2, nj=nj) for nj in (1, 2)}
    assert infos[1]["jobs"] == 1 and infos[2]["jobs"] == 2 and infos[2]["vocoded_now"] == 6
    names = sorted(p.name for p in (tmp_path / "nj1").glob("*.wav"))
    assert len(names) == 6 and names == sorted(p.name for p in (tmp_path / "nj2").glob("*.wav"))
    for name in names:
        a, b = load_audio(str(tmp_path / "nj1" / name))[0], load_audio(str(tmp_path / "nj2" / name))[0]
        assert np.array_equal(a, b), name
    with pytest.raises(SpeechkdError, match="nj must be >= 1"):
        resynthesize_datadir(str(tiny_datadir), str(tmp_path / "x"), "world", opts, device="cpu", nj=0)

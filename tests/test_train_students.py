"""Training the FastSpeech students through `speechkd train`: teacher-dump data (durations,
free-running mels, filtered utterances, token pitch/energy), exp dirs, load_model + inference, errors."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from fake_dump import make_fake_dump, tiny_overrides
from speechkd.checkpoints import load_model
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.features.average import token_energy, token_pitch
from speechkd.features.config import FeatureConfig
from speechkd.features.stats import Stats
from speechkd.train.config import load_train_config
from speechkd.train.datamodule import TTSDataModule
from speechkd.train.config import loaded_train_config
from speechkd.train.trainer import run_training

CONF = Path(__file__).resolve().parents[1] / "recipes/conf"


def make_teacher_dump(paths: dict[str, Path], filtered: dict[str, str] | None = None, seed: int = 0) -> Path:
    """``<dump>/teacher/<split>/<mode>`` in speechkd.distill.teacher_dump's layout: random durations
    (>= 1 per token) over the ground-truth frames (teacher_forced) or over a generated mel 10% longer
    (free_running, random mel)."""
    rng = np.random.default_rng(seed)
    root = paths["dump"] / "teacher"
    for split in ("train", "dev"):
        tokens = dict(line.split(maxsplit=1) for line in (paths["dump"] / "tokens" / split / "tokens").read_text()
                      .splitlines())
        frames = {u: int(t) for u, _, t in (line.split() for line in
                                             (paths["dump"] / "feats" / split / "feats.scp").read_text().splitlines())}
        for mode in ("teacher_forced", "free_running"):
            d = root / split / mode
            (d / "data").mkdir(parents=True)
            FeatureConfig(n_mels=80).save(d / "feature_config.yaml")
            index = []
            for utt, text in sorted(tokens.items()):
                s = len(text.split())
                t = frames[utt] if mode == "teacher_forced" else int(frames[utt] * 1.1)
                cuts = np.sort(rng.choice(np.arange(1, t), size=s - 1, replace=False))
                dur = np.diff(np.concatenate([[0], cuts, [t]])).astype(np.int32)
                arrays = {"durations": dur, "focus_rate": np.float32(0.7), "num_frames": np.int32(t)}
                if mode == "free_running":
                    arrays.update(mel=(rng.standard_normal((t, 80)) - 4).astype(np.float32), stopped=np.bool_(True))
                np.savez(d / "data" / f"{utt}.npz", **arrays)
                index.append(f"{utt} data/{utt}.npz {t}\n")
            (d / "index.scp").write_text("".join(index))
            (d / "filtered").write_text("".join(f"{u} {r}\n" for u, r in sorted((filtered or {}).items())
                                                if u.startswith(f"utt_{split}")))
    return root


def _rows(exp: Path) -> list[dict]:
    with open(exp / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def dump(tmp_path):
    paths = make_fake_dump(tmp_path, n_train=6, n_dev=3)
    make_teacher_dump(paths, filtered={"utt_train_01": "low_focus_rate", "utt_dev_02": "never_stopped"})
    return paths


def student_cfg(name: str, paths, **extra):
    return load_train_config(CONF / f"{name}_tiny.yaml", tiny_overrides(paths, **{"data.keep_filtered": False,
                                                                                  **extra}))


def test_fastspeech_trains_on_free_running_mels_and_round_trips(dump, tmp_path):
    exp = tmp_path / "exp_fs"
    last = run_training(student_cfg("fastspeech", dump), str(exp), progress_bar=False)
    assert torch.load(last, weights_only=True)["global_step"] == 4
    rows = _rows(exp)
    assert any(r.get("val/mel_l1") for r in rows) and any(r.get("val/dur_mae") for r in rows)
    assert list((exp / "plots").glob("step*.png"))
    log = (exp / "train.log").read_text()
    assert "left out 1 utterance(s) the teacher dump filtered" in log and "utt_train_01 (low_focus_rate)" in log
    lm = load_model(str(exp))
    assert lm.name == "fastspeech" and loaded_train_config(lm).data.kd_mode == "free_running"
    tokens = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    out = lm.model.inference(tokens, torch.tensor([4, 2]), speed=1.5)
    assert out["mel"].shape == (2, int(out["mel_lens"].max()), 80)
    assert out["mel_lens"].tolist() == out["durations"].sum(1).tolist() and out["durations"][1, 2:].sum() == 0


def test_fastspeech2_trains_and_keeps_its_statistics(dump, tmp_path):
    exp = tmp_path / "exp_fs2"
    run_training(student_cfg("fastspeech2", dump), str(exp), progress_bar=False)
    lm = load_model(str(exp))
    st = Stats.load(dump["dump"] / "feats/train/stats.npz")
    assert float(lm.model.energy_stats[0]) == pytest.approx(st.energy_mean)
    assert any(r.get("val/pitch") for r in _rows(exp)) and any(r.get("val/lf0_rmse") for r in _rows(exp))
    out = lm.model.inference(torch.tensor([[3, 4, 5]]), torch.tensor([3]), pitch_scale=1.2, energy_scale=0.8)
    assert out["mel"].shape[0] == 1 and out["pitch_used"].shape == (1, 3)


def _dm(paths, name, **extra) -> TTSDataModule:
    from speechkd.models import get_model_class

    cfg = student_cfg(name, paths, **extra)
    dm = TTSDataModule(cfg.data, needs=get_model_class(cfg.model).batch_needs)
    dm.setup()
    return dm


def test_batches_carry_durations_and_the_right_targets(dump):
    teacher = dump["dump"] / "teacher/train"
    dm = _dm(dump, "fastspeech")  # free_running: the teacher's mels
    assert [u.utt for u in dm.train_utts] == [f"utt_train_{i:02d}" for i in (0, 2, 3, 4, 5)]
    batch = next(iter(dm.train_dataloader()))
    for b, utt in enumerate(batch["utts"]):
        z = np.load(teacher / "free_running/data" / f"{utt}.npz")
        t, s = int(batch["mel_lens"][b]), int(batch["token_lens"][b])
        assert np.array_equal(batch["mels"][b, :t].numpy(), z["mel"])
        assert batch["durations"][b, :s].tolist() == z["durations"].tolist() and int(batch["durations"][b].sum()) == t
    dm2 = _dm(dump, "fastspeech2", **{"data.keep_filtered": True})  # teacher_forced: ground truth + token pitch
    assert len(dm2.train_utts) == 6
    batch = next(iter(dm2.train_dataloader()))
    utt = batch["utts"][0]
    f = np.load(dump["dump"] / "feats/train/data" / f"{utt}.npz")
    d = np.load(teacher / "teacher_forced/data" / f"{utt}.npz")["durations"]
    s = len(d)
    assert np.array_equal(batch["mels"][0, : int(batch["mel_lens"][0])].numpy(), f["mel"])
    assert np.allclose(batch["pitch"][0, :s].numpy(), token_pitch(f["lf0"], f["vuv"], d))
    assert np.allclose(batch["energy"][0, :s].numpy(), token_energy(f["energy"], d))


def test_teacher_dump_errors(dump, tmp_path, caplog):
    with pytest.raises(ConfigError, match="data.kd_mode.*--kd-mode free_running"):
        _dm(dump, "fastspeech", **{"data.kd_mode": "none"})
    with pytest.raises(ConfigError, match="kd-mode teacher_forced"):
        _dm(dump, "fastspeech2", **{"data.kd_mode": "free_running"})
    with pytest.raises(SpeechkdError, match="no free_running teacher dump of split 'train'.*teacher-dump"):
        _dm(dump, "fastspeech", **{"data.teacher_dump_dir": str(tmp_path / "nowhere")})
    # an utterance the dump neither indexes nor filters, and one it has that the features lack
    index = dump["dump"] / "teacher/train/free_running/index.scp"
    lines = index.read_text().splitlines(keepends=True)
    index.write_text("".join(lines[1:]) + "utt_train_99 data/utt_train_99.npz 10\n")
    with pytest.raises(SpeechkdError) as e:
        _dm(dump, "fastspeech")
    msg = str(e.value)
    assert "utt_train_99" in msg and "utt_train_00" in msg and "free_running/index.scp" in msg
    # stale durations: an error naming the utterance and the npz when the batch is loaded
    npz = dump["dump"] / "teacher/train/teacher_forced/data/utt_train_03.npz"
    z = dict(np.load(npz))
    z["durations"] = z["durations"] + 1
    np.savez(npz, **z)
    dm = _dm(dump, "fastspeech2")
    with pytest.raises(SpeechkdError, match="utt_train_03.*durations summing to"):
        for _ in dm.train_dataloader():
            pass


def test_transformer_tts_ignores_kd_mode(dump, caplog):
    cfg = load_train_config(Path(__file__).resolve().parents[1] / "recipes/conf/teacher_ar_tiny.yaml",
                            tiny_overrides(dump, **{"data.kd_mode": "teacher_forced"}))
    with caplog.at_level(logging.WARNING):
        dm = TTSDataModule(cfg.data)
    dm.setup()
    assert "ignored" in caplog.text and len(dm.train_utts) == 6
    assert set(next(iter(dm.train_dataloader()))) == {"utts", "tokens", "token_lens", "mels", "mel_lens"}


def test_cli_flags(dump, capsys):
    import argparse

    from speechkd.train import cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    args = p.parse_args(["--config", str(CONF / "fastspeech_tiny.yaml"), "--kd-mode", "teacher_forced",
                         "--teacher-dump", str(dump["dump"]), "--print-config"])
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "kd_mode: teacher_forced" in out and f"teacher_dump_dir: {dump['dump']}" in out and "model: fastspeech" in out

"""ESPnet2 data dirs, token lists, teacher decodes in; speechkd durations out in ESPnet's format.

The ESPnet side is written here in ESPnet's own layouts (tts_inference's ``durations`` with the
extra ``<sos/eos>`` entry, ``focus_rates``, ``denorm/feats.scp`` of ``.npy`` files; tts.sh's merged
decode dir; ``dump/raw/<set>``), so these tests need no ESPnet install."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from fake_dump import make_fake_dump
from speechkd.data.kaldi import read_datadir, read_table
from speechkd.distill.espnet_io import (durations_from_espnet, durations_to_espnet, export_espnet_durations,
                                        feature_config_from_espnet, import_espnet_datadir, import_espnet_teacher,
                                        read_espnet_token_list, token_list_from_espnet, utt2num_frames)
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.text.tokens import TokenList, read_tokens
from speechkd.train.data import attach_teacher_dump, read_split


def espnet_decode(dirpath: Path, rows: dict[str, np.ndarray], mels: dict[str, np.ndarray],
                  focus: dict[str, float], merged: bool = True) -> Path:
    """A decode dir as tts.sh leaves it (merged=True) or as one tts_inference job writes it."""
    (dirpath / "denorm").mkdir(parents=True)
    dur = "".join(f"{u} {' '.join(map(str, rows[u]))}\n" for u in sorted(rows))
    foc = "".join(f"{u} {focus[u]:.5f}\n" for u in sorted(rows))
    if merged:
        (dirpath / "durations").write_text(dur)
        (dirpath / "focus_rates").write_text(foc)
    else:
        (dirpath / "durations").mkdir()
        (dirpath / "durations" / "durations").write_text(dur)
        (dirpath / "focus_rates").mkdir()
        (dirpath / "focus_rates" / "focus_rates").write_text(foc)
    lines = []
    for u in sorted(mels):
        np.save(dirpath / "denorm" / f"{u}.npy", mels[u])
        lines.append(f"{u} {dirpath / 'denorm' / f'{u}.npy'}\n")
    (dirpath / "denorm" / "feats.scp").write_text("".join(lines))
    return dirpath


@pytest.fixture
def fake(tmp_path):
    paths = make_fake_dump(tmp_path, n_train=5, n_dev=2, n_mels=80)
    tl = TokenList.load(tmp_path / "tokens.txt")
    utts = read_split(str(tmp_path / "dump"), "train", tl)
    return tmp_path, paths, tl, utts


def _espnet_rows(utts, seed=0, zeros=True):
    """ESPnet-style rows: S token durations (some 0, as argmax counting gives) + an <eos> duration."""
    rng = np.random.default_rng(seed)
    rows, mels = {}, {}
    for u in utts:
        S, T = len(u.token_ids), u.frames
        cut = np.sort(rng.choice(np.arange(1, T), size=S, replace=False))
        d = np.diff(np.concatenate([[0], cut, [T]]))  # S + 1 positive parts
        if zeros and S > 2:
            d[1] += d[2]
            d[2] = 0
        rows[u.utt] = d
        mels[u.utt] = rng.standard_normal((T, 80)).astype(np.float32)
    return rows, mels


def test_espnet_teacher_decode_becomes_a_dump_students_read(fake):
    root, paths, tl, utts = fake
    rows, mels = _espnet_rows(utts)
    focus = {u.utt: 0.9 for u in utts}
    focus[utts[0].utt] = 0.3
    dec = espnet_decode(root / "espnet_decode" / "train", rows, mels, focus, merged=False)
    out = root / "dump" / "teacher" / "train" / "teacher_forced"
    rep = import_espnet_teacher(str(dec), str(out), "teacher_forced", FeatureConfig(),
                                gt_frames=utt2num_frames(str(root / "dump/feats/train")))
    assert rep["num_utts"] == 5 and abs(rep["focus_rate"]["mean"] - (0.3 + 4 * 0.9) / 5) < 1e-6
    assert (out / "report.md").exists() and (out / "feature_config.yaml").exists()
    assert read_table(out / "filtered", allow_empty_value=True) == {utts[0].utt: "low_focus_rate"}
    joined = attach_teacher_dump(utts, str(root / "dump" / "teacher"), "train", "teacher_forced")
    assert len(joined) == 4  # the low-focus utterance is left out
    for u in joined:
        with np.load(u.teacher_npz) as z:
            d, raw = z["durations"], z["durations_espnet"]
        assert len(d) == len(u.token_ids) and len(raw) == len(u.token_ids) + 1
        assert int(d.sum()) == u.frames and d.min() >= 1
        assert int(raw.sum()) == u.frames and raw.min() == 0  # the zero ESPnet gave, repaired above


def test_durations_round_trip_speechkd_espnet_speechkd(fake):
    root, paths, tl, utts = fake
    rows, mels = _espnet_rows(utts, seed=3)
    focus = {u.utt: 0.8 for u in utts}
    first = root / "t1"
    import_espnet_teacher(str(espnet_decode(root / "dec1", rows, mels, focus)), str(first), "teacher_forced",
                          FeatureConfig())
    # speechkd -> ESPnet: the --teacher_dumpdir layout
    n = export_espnet_durations(str(first), str(root / "teacher_dumpdir" / "train"))
    assert n == 5
    exported = read_table(root / "teacher_dumpdir" / "train" / "durations")
    for u in utts:
        e = np.array(exported[u.utt].split(), dtype=int)
        assert len(e) == len(u.token_ids) + 1 and e[-1] == 0 and e.sum() == u.frames
    # ESPnet -> speechkd: the exported rows read back give the same durations
    back = {u: np.array(v.split(), dtype=np.int64) for u, v in exported.items()}
    second = root / "t2"
    import_espnet_teacher(str(espnet_decode(root / "dec2", back, mels, focus)), str(second), "teacher_forced",
                          FeatureConfig())
    for u in utts:
        with np.load(first / "data" / f"{u.utt}.npz") as a, np.load(second / "data" / f"{u.utt}.npz") as b:
            assert np.array_equal(a["durations"], b["durations"])
    assert read_table(first / "index.scp") == read_table(second / "index.scp")


def test_eos_frames_go_to_the_last_token_and_zeros_are_repaired():
    # <eos> (5) joins the last token (2); the zero borrows from the longer neighbour (fix_durations)
    assert durations_from_espnet(np.array([3, 0, 4, 2, 5]), 14).tolist() == [3, 1, 3, 7]
    assert durations_to_espnet(np.array([2, 1, 4, 7])).tolist() == [2, 1, 4, 7, 0]
    assert durations_from_espnet(durations_to_espnet(np.array([2, 1, 4, 7])), 14).tolist() == [2, 1, 4, 7]


def test_bad_decodes_are_one_clear_error(fake):
    root, paths, tl, utts = fake
    rows, mels = _espnet_rows(utts[:2])
    rows[utts[0].utt] = rows[utts[0].utt] * 2  # e.g. an r = 2 teacher's steps against frames: sums differ
    dec = espnet_decode(root / "bad", rows, mels, {u.utt: 0.9 for u in utts[:2]})
    with pytest.raises(SpeechkdError, match="durations sum to"):
        import_espnet_teacher(str(dec), str(root / "o1"), "teacher_forced", FeatureConfig())
    rows, mels = _espnet_rows(utts[:2])
    dec = espnet_decode(root / "ok", rows, mels, {u.utt: 0.9 for u in utts[:2]})
    with pytest.raises(SpeechkdError, match="ground truth"):
        import_espnet_teacher(str(dec), str(root / "o2"), "teacher_forced", FeatureConfig(),
                              gt_frames={utts[0].utt: utts[0].frames + 1})
    with pytest.raises(SpeechkdError, match="ground-truth frames"):
        import_espnet_teacher(str(dec), str(root / "o3"), "free_running", FeatureConfig())
    rep = import_espnet_teacher(str(dec), str(root / "o4"), "free_running", FeatureConfig(),
                                gt_frames={u.utt: u.frames for u in utts})
    assert rep["free_running"]["never_stopped"] == 0
    with np.load(root / "o4" / "data" / f"{utts[0].utt}.npz") as z:
        assert np.array_equal(z["mel"], mels[utts[0].utt]) and bool(z["stopped"])
    with pytest.raises(SpeechkdError, match="exists already"):
        import_espnet_teacher(str(dec), str(root / "o4"), "free_running", FeatureConfig(),
                              gt_frames={u.utt: u.frames for u in utts})


def test_espnet_dump_raw_and_token_list(tmp_path):
    rec = tmp_path / "egs2" / "x" / "tts1"
    raw = rec / "dump" / "raw" / "tr_no_dev"
    raw.mkdir(parents=True)
    (rec / "downloads").mkdir()
    (rec / "downloads" / "a.wav").write_bytes(b"")
    (raw / "wav.scp").write_text("spk1_a downloads/a.wav\nspk1_b sox x.flac -t wav - |\n")
    (raw / "text").write_text("spk1_a HH AH0 L OW1\nspk1_b W ER1 L D\n")
    (raw / "utt2spk").write_text("spk1_a spk1\nspk1_b spk1\n")
    (raw / "spk2utt").write_text("spk1 spk1_a spk1_b\n")
    tok_file = rec / "data" / "token_list" / "phn_none" / "tokens.txt"
    tok_file.parent.mkdir(parents=True)
    etoks = ["<blank>", "<unk>", "L", "HH", "AH0", "OW1", "W", "ER1", "D", "<sos/eos>"]
    tok_file.write_text("\n".join(etoks) + "\n")
    tl = token_list_from_espnet(read_espnet_token_list(str(tok_file)))
    assert tl.tokens[:3] == ["<pad>", "<unk>", "<eos>"]
    assert all(tl.ids[t] == etoks.index(t) + 1 for t in etoks[2:-1])  # ESPnet's order kept (offset 1)
    dd = import_espnet_datadir(str(raw), str(tmp_path / "data"), espnet_root=str(rec), token_list=tl,
                               tokens_out=str(tmp_path / "tokens" / "tokens"))
    back = read_datadir(tmp_path / "data")
    assert back.wav_scp["spk1_a"] == str(rec / "downloads" / "a.wav")
    assert back.wav_scp["spk1_b"].endswith("|") and back.text == dd.text
    assert read_tokens(str(tmp_path / "tokens" / "tokens"))["spk1_b"] == ["W", "ER1", "L", "D"]
    (raw / "text").write_text("spk1_a Hello world.\nspk1_b W ER1 L D\n")
    with pytest.raises(SpeechkdError, match="not in the ESPnet token list"):
        import_espnet_datadir(str(raw), str(tmp_path / "data2"), espnet_root=str(rec), token_list=tl,
                              tokens_out=str(tmp_path / "tokens2" / "tokens"))
    with pytest.raises(SpeechkdError, match="exists already"):
        import_espnet_datadir(str(raw), str(tmp_path / "data"), espnet_root=str(rec))


def test_feature_config_from_an_espnet_config(tmp_path):
    cfg = {"feats_extract": "fbank", "feats_extract_conf": {"n_fft": 1024, "hop_length": 256, "win_length": None,
                                                             "fs": 22050, "fmin": 80, "fmax": 7600, "n_mels": 80},
           "tts": "transformer", "tts_conf": {"reduction_factor": 1},
           "token_list": ["<blank>", "<unk>", "a", "<sos/eos>"]}
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(cfg))
    fc = feature_config_from_espnet(str(p))
    assert (fc.sample_rate, fc.n_fft, fc.win_length, fc.hop_length, fc.fmin, fc.fmax) == (22050, 1024, 1024, 256, 80, 7600)
    assert (fc.log_base, fc.log_floor, fc.power, fc.mel_scale, fc.center) == ("10", 1e-10, 1.0, "slaney", True)
    assert read_espnet_token_list(str(p)) == cfg["token_list"]
    cfg["tts_conf"]["reduction_factor"] = 2
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(SpeechkdError, match="reduction_factor"):
        feature_config_from_espnet(str(p))


def test_the_espnet_verb_runs_each_step(fake, tmp_path):
    from speechkd.cli import main

    root, paths, tl, utts = fake
    rows, mels = _espnet_rows(utts, seed=5)
    dec = espnet_decode(root / "cli_dec", rows, mels, {u.utt: 0.9 for u in utts})
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump({"feats_extract": "fbank", "tts_conf": {"reduction_factor": 1},
                                   "feats_extract_conf": {"fs": 16000, "fmin": 0, "fmax": 8000, "n_mels": 80}}))
    out = root / "cli_dump"
    assert main(["espnet", "import-teacher", "--decode-dir", str(dec), "--espnet-config", str(cfg),
                 "--kd-mode", "free_running", "--out", str(out), "--feats", str(root / "dump/feats/train")]) == 0
    assert FeatureConfig.load(out / "feature_config.yaml").log_base == "10"
    assert main(["espnet", "export-durations", "--teacher-dump", str(out), "--out", str(root / "tdd")]) == 0
    assert len(read_table(root / "tdd" / "durations")) == 5
    # a second export into the same place is refused, not overwritten
    assert main(["espnet", "export-durations", "--teacher-dump", str(out), "--out", str(root / "tdd")]) == 2
    assert main(["espnet", "import-teacher", "--decode-dir", str(dec), "--espnet-config", str(cfg),
                 "--kd-mode", "free_running", "--out", str(root / "x")]) == 2  # no --feats: one clear error


def test_espnet_teacher_without_the_extra_is_one_clear_error(tmp_path, monkeypatch):
    import sys

    import torch

    from speechkd.distill.espnet_teacher import load_espnet_tts

    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"tts": "transformer", "token_list": ["<blank>", "<unk>", "a", "<sos/eos>"]}))
    monkeypatch.setitem(sys.modules, "espnet2.tasks.tts", None)  # what an install without the extra sees
    with pytest.raises(SpeechkdError, match="ESPnet is not installed.*install_espnet.sh"):
        load_espnet_tts(str(cfg), str(tmp_path / "m.pth"), torch.device("cpu"))
    cfg.write_text(yaml.safe_dump({"tts": "fastspeech2", "token_list": ["<blank>", "<unk>", "a", "<sos/eos>"]}))
    with pytest.raises(SpeechkdError, match="AR teacher.*transformer or tacotron2"):
        load_espnet_tts(str(cfg), str(tmp_path / "m.pth"), torch.device("cpu"))

"""A teacher dump moved onto another frame grid (speechkd.distill.regrid, teacher-dump --from-dump)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from speechkd.cli import main
from speechkd.data.kaldi import read_table
from speechkd.distill.regrid import NO_DURATIONS, regrid_durations, regrid_teacher_dump
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig

FC16 = FeatureConfig()  # 16 kHz, hop 256, centred: 16 ms frames
FC22 = FeatureConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, center=False, pad=384)


def _edges_s(d: np.ndarray, fc: FeatureConfig) -> np.ndarray:
    return fc.frame_edge_seconds(np.cumsum(d)[:-1].astype(np.float64))


def test_frame_edges_invert_and_follow_the_framing():
    assert FC16.frame_edge_seconds(1.0) == pytest.approx(0.5 * 256 / 16000)  # half a hop after frame 0's centre
    assert FC22.frame_edge_seconds(1.0) == pytest.approx(256 / 22050)  # HiFi-GAN framing: centre t*hop + hop/2
    for fc in (FC16, FC22):
        assert fc.frames_at_seconds(fc.frame_edge_seconds(37.0)) == pytest.approx(37.0)


def test_every_boundary_keeps_its_time_within_half_a_new_frame():
    rng = np.random.default_rng(0)
    d = rng.integers(1, 12, size=40)
    seconds = FC16.frame_edge_seconds(float(d.sum()))
    frames22 = int(round(FC22.frames_at_seconds(seconds)))
    nd = regrid_durations(d, FC16, FC22, frames22)
    assert nd.sum() == frames22 and nd.min() >= 1 and len(nd) == len(d)
    shift = np.abs(_edges_s(d, FC16) - _edges_s(nd, FC22))
    assert shift.max() <= 0.5 * FC22.frame_shift_s + 1e-9
    assert regrid_durations(d, FC16, FC16, int(d.sum())).tolist() == d.tolist()  # same grid: unchanged


def test_a_coarser_grid_gives_every_token_a_frame():
    d = np.array([1, 1, 1, 1, 20, 1, 1, 30])  # four 16 ms tokens inside one 64 ms frame
    coarse = FeatureConfig(hop_length=1024, n_fft=2048, win_length=2048)
    nd = regrid_durations(d, FC16, coarse, 15)
    assert nd.sum() == 15 and nd.min() >= 1


def _write_feats(root, utts: dict[str, int], fc: FeatureConfig) -> str:
    d = root / "feats" / "train"
    (d / "data").mkdir(parents=True)
    fc.save(d / "feature_config.yaml")
    (d / "feats.scp").write_text("".join(f"{u} data/{u}.npz {n}\n" for u, n in sorted(utts.items())))
    return str(d)


def _write_dump(path, durs: dict[str, np.ndarray], fc: FeatureConfig, filtered: dict[str, str] | None = None,
                kd_mode: str = "teacher_forced") -> str:
    (path / "data").mkdir(parents=True)
    fc.save(path / "feature_config.yaml")
    (path / "dump_info.json").write_text(json.dumps({"kd_mode": kd_mode, "step": 7}))
    lines = []
    for u, d in sorted(durs.items()):
        np.savez(path / "data" / f"{u}.npz", durations=d.astype(np.int32), focus_rate=np.float32(0.8),
                 layer=np.int32(1), head=np.int32(0), attn=np.zeros((len(d), 3), np.float16))
        lines.append(f"{u} data/{u}.npz {int(d.sum())}\n")
    (path / "index.scp").write_text("".join(lines))
    (path / "filtered").write_text("".join(f"{u} {r}\n" for u, r in (filtered or {}).items()))
    return str(path)


def _case(tmp_path, n: int = 5):
    rng = np.random.default_rng(1)
    durs = {f"u{i}": rng.integers(1, 9, size=12) for i in range(n)}
    frames22 = {u: int(round(FC22.frames_at_seconds(FC16.frame_edge_seconds(float(d.sum()))))) for u, d in durs.items()}
    return durs, frames22


def test_regrid_dump_feeds_students_on_the_new_frames(tmp_path):
    durs, frames22 = _case(tmp_path)
    src = _write_dump(tmp_path / "src", {u: d for u, d in durs.items() if u != "u4"}, FC16, {"u3": "focus_rate"})
    frames22["extra"] = 40  # only in the 22 kHz dump: no durations -> filtered
    feats = _write_feats(tmp_path / "d22", {u: n for u, n in frames22.items() if u != "u0"}, FC22)
    out = str(tmp_path / "out")
    rep = regrid_teacher_dump(src, feats, out)
    assert rep["num_utts"] == 3 and rep["missing"] == 2  # u1..u3 (u0 not in the features); u4, extra missing
    index = read_table(os.path.join(out, "index.scp"))
    assert sorted(index) == ["u1", "u2", "u3"]
    for u, v in index.items():
        rel, n = v.split()
        with np.load(os.path.join(out, rel)) as z:
            assert int(z["durations"].sum()) == int(n) == frames22[u] and z["durations"].min() >= 1
            assert "attn" not in z.files and float(z["focus_rate"]) == pytest.approx(0.8)
    assert read_table(os.path.join(out, "filtered")) == {"u3": "focus_rate", "u4": NO_DURATIONS,
                                                          "extra": NO_DURATIONS}
    assert FeatureConfig.load(os.path.join(out, "feature_config.yaml")) == FC22
    info = json.load(open(os.path.join(out, "dump_info.json")))
    assert info["kd_mode"] == "teacher_forced" and info["regridded_from"]["info"]["step"] == 7
    assert info["max_boundary_shift_ms"] <= 1000 * 0.5 * FC22.frame_shift_s + 1e-6
    regrid_teacher_dump(src, feats, out)  # a rerun with the same source is accepted
    other = _write_dump(tmp_path / "src2", durs, FC16)
    with pytest.raises(SpeechkdError, match="other settings"):
        regrid_teacher_dump(other, feats, out)


def test_regrid_refuses_the_wrong_dump(tmp_path):
    durs, frames22 = _case(tmp_path)
    feats = _write_feats(tmp_path / "d22", frames22, FC22)
    few = _write_dump(tmp_path / "few", {"u0": durs["u0"]}, FC16)
    with pytest.raises(SpeechkdError, match="4 of the 5 utterances of the features are not in the teacher dump"):
        regrid_teacher_dump(few, feats, str(tmp_path / "o1"))
    free = _write_dump(tmp_path / "free", durs, FC16, kd_mode="free_running")
    with pytest.raises(SpeechkdError, match="only teacher-forced durations"):
        regrid_teacher_dump(free, feats, str(tmp_path / "o2"))


def test_teacher_dump_from_dump_cli(tmp_path, capsys):
    durs, frames22 = _case(tmp_path)
    src = _write_dump(tmp_path / "src", durs, FC16)
    _write_feats(tmp_path / "d22", frames22, FC22)
    args = ["teacher-dump", "--from-dump", src, "--data", str(tmp_path / "d22"), "--split", "train",
            "--out", str(tmp_path / "t22")]
    assert main([*args, "--kd-mode", "both"]) == 2
    assert "--from-dump writes teacher_forced durations" in capsys.readouterr().err
    assert main([*args, "--kd-mode", "teacher_forced"]) == 0
    assert "5 utterances" in capsys.readouterr().out
    assert len(read_table(str(tmp_path / "t22" / "teacher_forced" / "index.scp"))) == 5

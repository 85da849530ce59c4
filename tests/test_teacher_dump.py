"""Teacher dump: durations sum to the target length with >= 1 frame per token, both KD modes,
report, resume, and the FeatureConfig check between checkpoint and dump."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from fake_dump import TINY, make_fake_dump, tiny_overrides
from speechkd.distill.teacher_dump import DumpOptions, teacher_dump
from speechkd.errors import FeatureMismatchError, SpeechkdError
from speechkd.train.config import load_train_config
from speechkd.train.trainer import run_training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    paths = make_fake_dump(root, n_train=6, n_dev=2)
    cfg = load_train_config(TINY, tiny_overrides(paths, **{"trainer.max_steps": 2}))
    run_training(cfg, str(root / "exp"), progress_bar=False)
    return root, paths


def _frames(scp) -> dict[str, int]:
    return {ln.split()[0]: int(ln.split()[2]) for ln in open(scp) if ln.strip()}


def test_dump_both_modes(trained, tmp_path):
    root, paths = trained
    out = tmp_path / "teacher/train"
    reports = teacher_dump(str(root / "exp"), str(paths["dump"]), "train", str(out), "both", DumpOptions(),
                           device="cpu")
    assert set(reports) == {"teacher_forced", "free_running"}
    gt = _frames(paths["dump"] / "feats/train/feats.scp")
    tokens = {ln.split()[0]: len(ln.split()) - 1 for ln in open(paths["dump"] / "tokens/train/tokens")}
    for mode in reports:
        d = out / mode
        info = json.loads((d / "dump_info.json").read_text())
        assert info["kd_mode"] == mode and info["reduction_factor"] == 3 and info["step"] == 2
        index = _frames(d / "index.scp")
        assert set(index) == set(gt)  # the tiny teacher's free-running output is long enough for every token
        for utt, n in index.items():
            z = np.load(d / "data" / f"{utt}.npz")
            dur = z["durations"]
            assert len(dur) == tokens[utt] and dur.sum() == n == int(z["num_frames"]) and dur.min() >= 1
            assert 0.0 < float(z["focus_rate"]) <= 1.0 and 0 <= int(z["layer"]) < 1 and 0 <= int(z["head"]) < 2
            if mode == "teacher_forced":
                assert n == gt[utt]
            else:
                assert z["mel"].shape == (n, 80) and z["mel"].dtype == np.float32 and "stopped" in z
        rep = json.loads((d / "report.json").read_text())
        assert rep["num_utts"] == len(gt) and rep["threshold"] == 0.5
        # utterances below the focus-rate threshold are listed, with the reason (most of an untrained teacher's)
        low = {u for u in index if float(np.load(d / "data" / f"{u}.npz")["focus_rate"]) < 0.5}
        assert low and low <= {f["utt"] for f in rep["filtered"] if "low_focus_rate" in f["reason"]}
        assert {f["utt"] for f in rep["filtered"] if "low_focus_rate" in f["reason"]} == low
        assert set((d / "filtered").read_text().split()[::2]) == {f["utt"] for f in rep["filtered"]}
        assert (d / "focus_rate_hist.png").stat().st_size > 0 and (d / "report.md").exists()
        assert list((d / "plots").glob("*.png"))
    fr = json.loads((out / "free_running/report.json").read_text())["free_running"]
    assert fr["never_stopped"] >= 0 and fr["length_ratio_to_ground_truth"]["mean"] > 0

    # rerun: nothing recomputed; other settings in the same dir are refused
    npz = out / "teacher_forced/data" / f"{sorted(gt)[0]}.npz"
    mtime = npz.stat().st_mtime_ns
    teacher_dump(str(root / "exp"), str(paths["dump"]), "train", str(out), "teacher_forced", DumpOptions(),
                 device="cpu")
    assert npz.stat().st_mtime_ns == mtime
    with pytest.raises(SpeechkdError, match="duration_method"):
        teacher_dump(str(root / "exp"), str(paths["dump"]), "train", str(out), "teacher_forced",
                     DumpOptions(method="argmax"), device="cpu")


def test_argmax_durations_are_fixed(trained, tmp_path):
    root, paths = trained
    out = tmp_path / "t"
    teacher_dump(str(root / "exp"), str(paths["dump"]), "dev", str(out), "teacher_forced",
                 DumpOptions(method="argmax"), device="cpu")
    for line in open(out / "teacher_forced/index.scp"):
        utt, rel, n = line.split()
        dur = np.load(out / "teacher_forced" / rel)["durations"]
        assert dur.sum() == int(n) and dur.min() >= 1


def test_shift_and_mean_attention(trained, tmp_path):
    from speechkd.align.durations import shift_durations

    root, paths = trained

    def dump(name: str, **kw) -> dict[str, np.ndarray]:
        out = tmp_path / name
        teacher_dump(str(root / "exp"), str(paths["dump"]), "dev", str(out), "teacher_forced", DumpOptions(**kw),
                     device="cpu")
        info = json.loads((out / "teacher_forced/dump_info.json").read_text())
        assert info["attention"] == kw.get("attention", "head") and info["shift_frames"] == kw.get("shift_frames", 0)
        zs = {u: np.load(out / "teacher_forced" / rel)
              for u, rel, _ in (ln.split() for ln in open(out / "teacher_forced/index.scp"))}
        return {u: z["durations_attn"] if "durations_attn" in z.files else z["durations"] for u, z in zs.items()}

    base, late, mean = dump("base"), dump("late", shift_frames=2), dump("mean", attention="mean")
    assert base.keys() == late.keys() == mean.keys()
    for u, d in base.items():
        assert late[u].tolist() == shift_durations(d, 2).tolist()
        assert mean[u].sum() == d.sum() and mean[u].min() >= 1
    with pytest.raises(SpeechkdError, match="shift_frames"):  # another setting in the same dir is refused
        dump("base", shift_frames=1)
    with pytest.raises(SpeechkdError, match="unknown attention source 'best'"):
        dump("x", attention="best")


def test_feature_config_mismatch_names_fields(trained, tmp_path):
    root, paths = trained
    fc = paths["dump"] / "feats/dev/feature_config.yaml"
    text = fc.read_text()
    try:
        fc.write_text(text.replace("hop_length: 256", "hop_length: 200").replace("fmax: 8000.0", "fmax: 7600.0"))
        with pytest.raises(FeatureMismatchError) as e:
            teacher_dump(str(root / "exp"), str(paths["dump"]), "dev", str(tmp_path / "x"), "teacher_forced",
                         DumpOptions(), device="cpu")
        assert "hop_length: 256" in str(e.value) and "fmax" in str(e.value) and "200" in str(e.value)
        assert not os.path.exists(tmp_path / "x")
    finally:
        fc.write_text(text)


def test_cli_teacher_dump(trained, tmp_path, capsys):
    from speechkd.cli import main

    root, paths = trained
    rc = main(["teacher-dump", "--exp", str(root / "exp"), "--data", str(paths["dump"]), "--split", "dev",
               "--out", str(tmp_path / "d"), "--kd-mode", "teacher_forced", "--device", "cpu"])
    assert rc == 0 and "focus rate mean" in capsys.readouterr().out
    assert main(["teacher-dump", "--exp", str(tmp_path / "none"), "--data", str(paths["dump"]),
                 "--out", str(tmp_path / "e"), "--kd-mode", "both"]) == 2


def test_refinement_in_the_dump(trained, tmp_path):
    """Refined durations replace the attention ones (kept as durations_attn); --refine-iters 0
    on the same dir restores the attention durations; the settings are in dump_info.json."""
    from speechkd.align.refine import RefineConfig

    root, paths = trained
    out = tmp_path / "r"
    run = lambda iters: teacher_dump(str(root / "exp"), str(paths["dump"]), "train", str(out), "teacher_forced",  # noqa: E731
                                     DumpOptions(refine=RefineConfig(iters=iters)), device="cpu")
    run(3)
    d = out / "teacher_forced"
    info = json.loads((d / "dump_info.json").read_text())
    assert info["refine"]["iters"] == 3 and 1 <= len(info["refine"]["history"]) <= 3
    zs = {u: np.load(d / rel) for u, rel, _ in (ln.split() for ln in open(d / "index.scp"))}
    for z in zs.values():
        assert z["durations"].sum() == z["durations_attn"].sum() == int(z["num_frames"])
        assert z["durations"].min() >= 1 and len(z["durations"]) == len(z["durations_attn"])
    attn = {u: z["durations_attn"].copy() for u, z in zs.items()}
    run(0)
    for u, rel, _ in (ln.split() for ln in open(d / "index.scp")):
        z = np.load(d / rel)
        assert "durations_attn" not in z.files and z["durations"].tolist() == attn[u].tolist()
    assert json.loads((d / "dump_info.json").read_text())["refine"]["history"] == []


def _report(share: float, n: int = 20) -> dict:
    return {"kd_mode": "teacher_forced", "num_utts": n, "threshold": 0.5, "focus_rate": {"above_threshold": share}}


def test_check_aligned_floor_on_a_fake_dump(tmp_path):
    """The floor is a share of all utterances: at the floor passes, below stops with the share and the
    remedy and marks the dump rejected; a later passing check lifts the mark."""
    from speechkd.distill.teacher_dump import check_aligned

    info = tmp_path / "dump_info.json"
    info.write_text(json.dumps({"kd_mode": "teacher_forced", "step": 493}))
    check_aligned(str(tmp_path), _report(0.9), 0.9)
    assert "rejected" not in json.loads(info.read_text())
    with pytest.raises(SpeechkdError) as e:
        check_aligned(str(tmp_path), _report(0.396, 520), 0.9, teacher_minutes=17)
    msg = str(e.value)
    assert "39.6% of 520 utterances have a focus rate >= 0.5, below the floor of 90.0%" in msg and "step 493" in msg
    assert "./run.sh --stage 3 --force true --teacher_opts trainer.max_minutes=34" in msg and "\n" not in msg
    assert "39.6%" in json.loads(info.read_text())["rejected"]
    check_aligned(str(tmp_path), _report(0.396), 0.0)  # floor 0: no check, and the mark goes
    assert json.loads(info.read_text()) == {"kd_mode": "teacher_forced", "step": 493}
    with pytest.raises(SpeechkdError, match="share in"):
        check_aligned(str(tmp_path), _report(0.5), 1.5)


def test_cli_alignment_floor_stops_and_a_new_teacher_replaces_the_rejected_dump(trained, tmp_path, capsys):
    from speechkd.cli import main

    root, paths = trained
    out = tmp_path / "d"
    args = ["teacher-dump", "--exp", str(root / "exp"), "--data", str(paths["dump"]), "--split", "train",
            "--out", str(out), "--kd-mode", "both", "--device", "cpu", "--refine-iters", "0"]
    # the 2-step teacher aligns some utterances, not all (test_dump_both_modes): a floor of 1 is above it
    assert main(args + ["--min-aligned", "1.0"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if " INFO " not in ln and " WARNING " not in ln]
    assert len(err) == 1 and err[0].startswith("speechkd teacher-dump: error: ")
    assert "the teacher does not align" in err[0] and "below the floor of 100.0%" in err[0]
    assert "--teacher_opts trainer.max_minutes=" in err[0] and "Traceback" not in err[0]
    d = out / "teacher_forced"
    info = json.loads((d / "dump_info.json").read_text())
    assert info["rejected"] and not (out / "free_running").exists()  # stopped before the free-running pass
    # a retrained teacher (another step) redoes the rejected dump instead of refusing the dir
    info["step"] = 1
    (d / "dump_info.json").write_text(json.dumps(info))
    stale = d / "data" / "stale.npz"
    stale.write_bytes(b"x")
    assert main(args + ["--min-aligned", "0"]) == 0
    assert not stale.exists() and "rejected" not in json.loads((d / "dump_info.json").read_text())
    assert (out / "free_running/index.scp").exists()
    # a floor outside [0, 1] is refused before any work
    assert main(args[:-4] + ["--out", str(tmp_path / "e"), "--min-aligned", "1.5"]) == 2
    assert not (tmp_path / "e").exists()

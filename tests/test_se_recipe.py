"""Smoke run of the whole mini_en/se1 recipe with the tiny preset (slow: ~5 minutes on 2 idle cores, 15-20 on a loaded machine):
data (every built-in voice, speaker-disjoint splits), mixing (the seen/unseen voice x seen/unseen noise
grid), NyTT teacher, upper bound, estimates, remix students, control, enhancement, evaluation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from speechkd.enhance import rnnoise
from speechkd.enhance.prepare import check_speaker_disjoint

ROOT = Path(__file__).resolve().parents[1]
GRID = ("test_in_domain", "test_unseen_noise", "test_unseen_voice", "test_unseen_voice_noise")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("flite") is None, reason="flite missing (tools/install_system.sh)")]


def test_se_recipe_tiny(tmp_path):
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    (tmp_path / "tools").symlink_to(ROOT / "tools")
    d = tmp_path / "egs/mini_en/se1"
    shutil.copytree(ROOT / "egs/mini_en/se1", d, ignore=shutil.ignore_patterns("data", "exp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    peers = rnnoise.available()  # without the se-peers extra: the high-pass baseline alone
    # 3 mixtures of each test set enhanced and evaluated: every cell and system; DNSMOS (seconds per
    # clip and system) is off here and tested in tests/test_se_peers.py
    r = subprocess.run(["./run.sh", "--preset", "tiny", "--nj", "1", "--num_eval_utts", "3", "--dnsmos", "off"]
                       + ([] if peers else ["--baselines", "hpf80"]),
                       cwd=d, capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    systems = ["noisy", "hpf80"] + (["rnnoise"] if peers else []) + [
        "teacher_nytt", "teacher_nytt_more", "clean_upper", "student_remix", "student_small",
        "student_remix_st", "student_small_st"]
    table = json.loads((d / "exp/eval/results.json").read_text())["systems"]
    for test in GRID + ("test_mismatched",):
        assert [row["system"] for row in table if row["test_set"] == test] == systems
        assert len(list((d / "exp/student_small_st/enhanced" / test).glob("*.wav"))) == 3
    # speaker-disjoint: the unseen voices are in no training data dir, every other voice is
    speakers = check_speaker_disjoint(str(d / "data/se"))
    training = set(speakers["train_noisy"]) | set(speakers["dev_noisy"])
    assert training == {"allison", "awb", "kal16", "slt"}
    assert set(speakers["test_unseen_voice"]) <= {"rms", "ked"} and speakers["test_unseen_voice"]
    assert set(speakers["test_in_domain"]) <= training
    hpf = [row for row in table if row["system"] == "hpf80"]
    assert all(abs(row["si_sdr_delta"]["mean"]) < 0.5 for row in hpf)
    md = (d / "exp/eval/results.md").read_text()
    assert all(f"## {t}" in md for t in GRID + ("test_mismatched",))
    assert "DNSMOS" not in md
    # tiny preset: --spread 1, each trained model's last checkpoint alone beside its averaged weights
    spread = {row["system"]: row.get("single_checkpoints") for row in table if row["test_set"] == "test_in_domain"}
    assert all(spread[s]["n"] == 1 for s in ("teacher_nytt", "teacher_nytt_more", "student_remix", "student_small"))
    assert spread["hpf80"] is None and spread["student_remix_st"] is None and spread["clean_upper"] is None
    assert (d / "exp/eval/test_in_domain/teacher_nytt@ckpt1/results.json").exists()
    for n in ("1.mix", "2.teacher", "3.estimates", "4.students", "5.enhance", "6.eval"):
        assert (d / f"exp/.done/{n}.done").exists()

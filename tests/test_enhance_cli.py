"""SE training runs and inference: enhance CLI (file, wrong rate, batch --nj, S(T(y)), averaging),
resume after a simulated kill, the same-compute control, remix training and the SE summary."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from se_fixtures import make_corpora
from speechkd.cli import main as cli
from speechkd.enhance.config import load_se_config
from speechkd.enhance.exp import read_checkpoint
from speechkd.enhance.prepare import MixPlan, prepare_se_data
from speechkd.enhance.train import run_se_training

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def _overrides(se: Path, method: str = "nytt", model: str = "subband_gru", steps: int = 4) -> list[str]:
    conf = {"crn": "model_conf.channels=[4,8] model_conf.rnn_hidden=16",
            "subband_gru": "model_conf.bands=24 model_conf.full_bins=8 model_conf.hidden=16"}[model]
    return [f"method={method}", f"model={model}", *conf.split(), f"data.train_dir={se}/train_noisy",
            f"data.dev_dir={se}/dev_noisy", f"data.extra_noise_dir={se}/extra_noise", "data.segment_seconds=0.5",
            "data.batch_size=2", f"trainer.max_steps={steps}", "trainer.val_every_steps=2",
            "trainer.ckpt_every_steps=2", "trainer.log_every_steps=1", "trainer.accelerator=cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny SE data and a teacher trained 4 steps in exp/teacher."""
    tmp = tmp_path_factory.mktemp("se_cli")
    speech, noise = make_corpora(tmp, n_train=6, n_dev=2, n_test=2)
    prepare_se_data(str(speech), str(noise), str(tmp / "se"), MixPlan(seed=1))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    run_se_training(load_se_config(None, _overrides(tmp / "se", model="crn")), str(tmp / "exp" / "teacher"),
                    progress_bar=False)
    torch.set_num_threads(n)
    return tmp


def test_exp_dir_contents(trained):
    exp = trained / "exp" / "teacher"
    assert {"config.yaml", "train.log", "metrics.csv", "checkpoints"} <= set(os.listdir(exp))
    ck = read_checkpoint(str(exp / "checkpoints" / "last.ckpt"))
    assert ck["global_step"] == 4 and ck["speechkd"]["config"]["method"] == "nytt"
    assert ck["speechkd"]["version"]["speechkd"] and ck["speechkd"]["sample_rate"] == 16000
    assert sorted(os.listdir(exp / "checkpoints")) == ["last.ckpt", "step2.ckpt", "step4.ckpt"]
    rows = list(csv.DictReader(open(exp / "metrics.csv")))
    assert any(r.get("val/nytt_si_sdri") for r in rows) and any(r.get("train/loss") for r in rows)


def test_enhance_file_and_wrong_rate(trained, tmp_path, capsys):
    exp = str(trained / "exp" / "teacher")
    wav = next((trained / "se" / "test_in_domain" / "wav").glob("*.wav"))
    x, sr = sf.read(wav, dtype="float32")
    out = tmp_path / "out.wav"
    assert cli(["enhance", "-i", str(wav), "-o", str(out), "--model", exp]) == 0
    y, sr2 = sf.read(out, dtype="float32")
    assert sr2 == sr and y.shape == x.shape and np.all(np.isfinite(y))
    # another rate: refused with a message naming both rates and --resample ...
    low = tmp_path / "low.wav"
    sf.write(low, x[::2], 8000)
    assert cli(["enhance", "-i", str(low), "-o", str(tmp_path / "low_out.wav"), "--model", exp]) == 2
    err = capsys.readouterr().err
    assert "8000 Hz" in err and "16000 Hz" in err and "--resample" in err
    assert not (tmp_path / "low_out.wav").exists()
    # ... or resampled explicitly: output at the input's rate and length
    assert cli(["enhance", "-i", str(low), "-o", str(tmp_path / "low_out.wav"), "--model", exp, "--resample"]) == 0
    z, sr3 = sf.read(tmp_path / "low_out.wav")
    assert sr3 == 8000 and len(z) == len(x[::2])
    # the built-in high-pass baseline works at any rate
    assert cli(["enhance", "-i", str(low), "-o", str(tmp_path / "hpf.wav"), "--model", "builtin:highpass80"]) == 0


def test_batch_teacher_student_and_average(trained, tmp_path):
    exp = str(trained / "exp" / "teacher")
    data = str(trained / "se" / "test_in_domain")
    n_utts = len((trained / "se" / "test_in_domain" / "utt2spk").read_text().splitlines())
    out = tmp_path / "enh"
    assert cli(["enhance", "--data-dir", data, "--out-dir", str(out), "--model", exp, "--nj", "2",
                "--average", "2"]) == 0
    assert len(list(out.glob("*.wav"))) == n_utts
    info = json.loads((out / "enhance.json").read_text())
    assert info["enhanced"] == n_utts and info["average"] == 2
    mtimes = {p: p.stat().st_mtime for p in out.glob("*.wav")}
    assert cli(["enhance", "--data-dir", data, "--out-dir", str(out), "--model", exp, "--average", "2"]) == 0  # rerun: skips
    assert {p: p.stat().st_mtime for p in out.glob("*.wav")} == mtimes
    # S(T(y)) equals the student applied to the teacher's output
    st = tmp_path / "st"
    assert cli(["enhance", "--data-dir", data, "--out-dir", str(st), "--model", exp, "--teacher", exp,
                "--subtype", "FLOAT", "--num-utts", "1"]) == 0
    from speechkd.enhance.infer import Enhancer

    one = Enhancer(exp)
    utt = sorted(p.name for p in st.glob("*.wav"))[0]
    y, sr = sf.read(trained / "se" / "test_in_domain" / "wav" / utt, dtype="float32")
    np.testing.assert_allclose(sf.read(st / utt, dtype="float32")[0], one(one(y, sr), sr), atol=1e-5)


def test_resume_after_kill(trained, tmp_path):
    """A training process killed (os._exit) after its step-4 checkpoint resumes there and finishes."""
    exp = tmp_path / "exp_kill"
    over = _overrides(trained / "se", steps=8)
    script = textwrap.dedent(f"""
        import os, torch
        from lightning.pytorch.callbacks import Callback
        from speechkd.enhance.config import load_se_config
        from speechkd.enhance.train import run_se_training
        torch.set_num_threads(1)

        class Kill(Callback):
            def on_train_batch_end(self, trainer, *args):
                if trainer.global_step == 5:
                    os._exit(137)

        run_se_training(load_se_config(None, {over!r}), {str(exp)!r}, callbacks=[Kill()], progress_bar=False)
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 137, r.stderr[-2000:]
    assert read_checkpoint(str(exp / "checkpoints" / "last.ckpt"))["global_step"] == 4
    run_se_training(load_se_config(None, over), str(exp), progress_bar=False)
    assert read_checkpoint(str(exp / "checkpoints" / "last.ckpt"))["global_step"] == 8
    log = (exp / "train.log").read_text()
    assert "resuming from" in log and "(step 4)" in log
    steps = [int(r["step"]) for r in csv.DictReader(open(exp / "metrics.csv"))]
    assert steps == sorted(steps) and len(steps) == len(set(steps))
    # a changed setting that is not resumable is refused
    from speechkd.errors import ConfigError

    with pytest.raises(ConfigError, match="optim.lr"):
        run_se_training(load_se_config(None, over + ["optim.lr=0.1"]), str(exp), progress_bar=False)


def test_sigterm_saves_a_checkpoint_and_fails(trained, tmp_path):
    """SIGTERM (`kill`, preemption) leaves last.ckpt at the step reached and raises: Lightning alone
    exits 0, and the recipe would mark the stage done and train the next model on an unfinished one."""
    import os
    import signal

    from lightning.pytorch.callbacks import Callback

    from speechkd.errors import SpeechkdError

    class KillAt(Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    exp = tmp_path / "exp_term"
    with pytest.raises(SpeechkdError, match="SIGTERM at step"):
        run_se_training(load_se_config(None, _overrides(trained / "se", steps=50)), str(exp), callbacks=[KillAt()],
                        progress_bar=False)
    assert read_checkpoint(str(exp / "checkpoints" / "last.ckpt"))["global_step"] in (3, 4)


def test_control_and_remix_students(trained, tmp_path):
    se, teacher = trained / "se", trained / "exp" / "teacher"
    # the same-compute control: a copy of the teacher's checkpoint trained on
    ctrl = tmp_path / "ctrl"
    args = ["se-train", "--exp", str(ctrl), "--continue-from", str(teacher), "--extra-minutes", "0.001",
            *_overrides(se, model="crn")]
    assert cli(args) == 0
    ck = read_checkpoint(str(ctrl / "checkpoints" / "last.ckpt"))
    assert ck["global_step"] > 4 and ck["speechkd"]["config"]["trainer"]["max_minutes"] > 0
    # a step budget instead (machine-independent): exactly the teacher's steps plus these
    t_step = read_checkpoint(str(teacher / "checkpoints" / "last.ckpt"))["global_step"]
    assert cli(["se-train", "--exp", str(tmp_path / "ctrl_steps"), "--continue-from", str(teacher),
                "--extra-steps", "2", *_overrides(se, model="crn")]) == 0
    assert read_checkpoint(str(tmp_path / "ctrl_steps" / "checkpoints" / "last.ckpt"))["global_step"] == t_step + 2
    assert cli(["se-train", "--exp", str(tmp_path / "ctrl_both"), "--continue-from", str(teacher),
                "--extra-steps", "2", "--extra-minutes", "1", *_overrides(se, model="crn")]) == 2
    # teacher estimates of the training set, then each remix method (offline) and RemixIT online + EMA
    est = tmp_path / "est"
    assert cli(["enhance", "--model", str(teacher), "--data-dir", str(se / "train_noisy"), "--out-dir", str(est),
                "--subtype", "FLOAT"]) == 0
    for method in ("remix_noisy", "remix_enhanced", "remixit"):
        cfg = load_se_config(None, _overrides(se, method, steps=2) + [f"data.estimates_dir={est}"])
        run_se_training(cfg, str(tmp_path / method), progress_bar=False)
        assert read_checkpoint(str(tmp_path / method / "checkpoints" / "last.ckpt"))["global_step"] == 2
    over = _overrides(se, "remixit", model="crn", steps=2) + [f"remix.teacher={teacher}", "remix.ema_decay=0.9",
                                                              f"init_from={teacher}"]
    run_se_training(load_se_config(None, over), str(tmp_path / "ema"), progress_bar=False)
    ck = torch.load(tmp_path / "ema" / "checkpoints" / "last.ckpt", weights_only=True)
    t0 = read_checkpoint(str(teacher / "checkpoints" / "last.ckpt"))["state_dict"]
    key = "model.rnn.weight_hh_l0"
    assert not torch.equal(ck["state_dict"]["teacher.rnn.weight_hh_l0"], t0[key])  # the EMA teacher moved


def test_se_summary(trained, tmp_path):
    se = trained / "se"
    ev = tmp_path / "eval"
    for name, enh in (("noisy", se / "test_in_domain"), ("hpf80", tmp_path / "hpf")):
        if name == "hpf80":
            assert cli(["enhance", "--model", "builtin:highpass80", "--data-dir", str(se / "test_in_domain"),
                        "--out-dir", str(enh)]) == 0
        assert cli(["eval", "se", "--ref-dir", str(se / "test_in_domain" / "ref"), "--enh-dir", str(enh),
                    "--noisy-dir", str(se / "test_in_domain"), "--out", str(ev / "test_in_domain" / name),
                    "--dnsmos", "off"]) == 0  # DNSMOS: tests/test_se_peers.py
    assert cli(["eval", "se-summary", "--results", *map(str, sorted(ev.glob("*/*/results.json"))),
                "--out", str(ev), "--paired-against", "noisy"]) == 0
    md = (ev / "results.md").read_text()
    assert "## test_in_domain" in md and "| hpf80 |" in md and "SI-SDRi @5 dB" in md and "ΔSI-SDR vs noisy" in md
    rows = json.loads((ev / "results.json").read_text())["systems"]
    noisy = next(r for r in rows if r["system"] == "noisy")
    assert abs(noisy["si_sdr_delta"]["mean"]) < 1e-9 and set(noisy["si_sdri_by_snr"]) == {"0", "5", "10"}
    hpf = next(r for r in rows if r["system"] == "hpf80")  # paired difference to noisy == its SI-SDRi
    assert abs(hpf["paired"]["si_sdr"]["mean"] - hpf["si_sdr_delta"]["mean"]) < 1e-6
    # by noise type: se-data's utt2noise_type, split here into two made-up types to have several
    from speechkd.data.kaldi import read_table
    from speechkd.eval.se_summary import summarize_se

    utts = sorted(read_table(se / "test_in_domain" / "utt2noise_type"))
    types = {u: ("odd" if i % 2 else "even") for i, u in enumerate(utts)}
    summarize_se([str(ev / "test_in_domain" / n / "results.json") for n in ("noisy", "hpf80")], str(tmp_path / "t"),
                 noise_types={"test_in_domain": types})
    hpf = next(r for r in json.loads((tmp_path / "t" / "results.json").read_text())["systems"]
               if r["system"] == "hpf80")
    per_utt = {r["utt"]: r["si_sdr_delta"] for r in json.loads(
        (ev / "test_in_domain" / "hpf80" / "results.json").read_text())["utts"]}
    for kind in ("odd", "even"):
        mine = [v for u, v in per_utt.items() if types[u] == kind]
        assert hpf["si_sdri_by_noise_type"][kind] == {"mean": pytest.approx(sum(mine) / len(mine)), "n": len(mine)}
    assert "SI-SDRi dB by noise type" in (tmp_path / "t" / "results.md").read_text()


def test_single_checkpoints_and_their_spread_in_the_summary(trained, tmp_path, capsys):
    from speechkd.enhance.exp import last_checkpoints, load_se_model, model_state
    from speechkd.errors import SpeechkdError

    exp = str(trained / "exp" / "teacher")
    ck = trained / "exp" / "teacher" / "checkpoints"
    assert last_checkpoints(exp, 3) == [str(ck / "step2.ckpt"), str(ck / "last.ckpt")]  # step4 == last: once
    for k, path in ((1, "last.ckpt"), (2, "step2.ckpt")):
        m = load_se_model(exp, checkpoint=k)
        assert m.paths == [str(ck / path)]
        want = model_state(read_checkpoint(str(ck / path)))
        assert all(torch.equal(v, want[n]) for n, v in m.model.state_dict().items())
    with pytest.raises(SpeechkdError, match="no 3-th newest"):
        load_se_model(exp, checkpoint=3)
    with pytest.raises(SpeechkdError, match="needs an exp dir"):
        load_se_model(str(ck / "last.ckpt"), checkpoint=1)
    sf.write(tmp_path / "x.wav", np.zeros(1600, np.float32), 16000)
    assert cli(["enhance", "-i", str(tmp_path / "x.wav"), "-o", str(tmp_path / "y.wav"), "--model", exp,
                "--average", "2", "--checkpoint", "1"]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    # evaluate the averaged weights and each checkpoint alone; the summary folds <system>@<tag> into a spread
    se, ev = trained / "se", tmp_path / "eval"
    test = se / "test_in_domain"
    runs = [("teacher", ["--average", "2"]), ("teacher@ckpt1", ["--checkpoint", "1"]),
            ("teacher@ckpt2", ["--checkpoint", "2"])]
    for name, opts in runs:
        out = tmp_path / name
        assert cli(["enhance", "--model", exp, *opts, "--data-dir", str(test), "--out-dir", str(out)]) == 0
        assert cli(["eval", "se", "--ref-dir", str(test / "ref"), "--enh-dir", str(out), "--noisy-dir", str(test),
                    "--out", str(ev / "test_in_domain" / name), "--dnsmos", "off"]) == 0  # DNSMOS: test_se_peers.py
    single = [json.loads((ev / "test_in_domain" / n / "results.json").read_text())["summary"]["si_sdr_delta"]["mean"]
              for n in ("teacher@ckpt1", "teacher@ckpt2")]
    assert cli(["eval", "se-summary", "--results", *map(str, sorted(ev.glob("*/*/results.json"))),
                "--out", str(ev)]) == 0
    rows = json.loads((ev / "results.json").read_text())["systems"]
    assert [r["system"] for r in rows] == ["teacher"]
    sc = rows[0]["single_checkpoints"]
    assert sc["n"] == 2 and sorted(sc["tags"]) == ["ckpt1", "ckpt2"]
    assert sc["si_sdr_delta"]["min"] == min(single) and sc["si_sdr_delta"]["max"] == max(single)
    assert abs(sc["si_sdr_delta"]["mean"] - np.mean(single)) < 1e-9
    assert "SI-SDRi single ckpts: mean [min, max]" in (ev / "results.md").read_text()
    # a single checkpoint without its system's row is refused, naming the file
    with pytest.raises(SpeechkdError, match="no results of system 'teacher'"):
        from speechkd.eval.se_summary import summarize_se

        summarize_se([str(ev / "test_in_domain" / "teacher@ckpt1" / "results.json")], str(tmp_path / "x"))


def test_resume_falls_back_past_damaged_checkpoints(trained, tmp_path):
    """An evil last.ckpt and a truncated step4.ckpt: the rerun resumes from step2.ckpt, running nothing."""
    import shutil

    from damaged_checkpoints import assert_fell_back, truncate, write_evil_checkpoint

    exp = tmp_path / "exp"
    shutil.copytree(trained / "exp" / "teacher", exp)
    marker = tmp_path / "pwned"
    write_evil_checkpoint(exp / "checkpoints/last.ckpt", marker)
    truncate(exp / "checkpoints/step4.ckpt")
    run_se_training(load_se_config(None, _overrides(trained / "se", model="crn", steps=6)), str(exp),
                    progress_bar=False)
    assert_fell_back(exp, marker)
    assert "step2.ckpt (step 2)" in (exp / "train.log").read_text()
    assert torch.load(exp / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 6

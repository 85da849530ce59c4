"""Progressive distillation: the loss pass against the defining identity, a tiny chain end to end
(loadable exp dirs, sampling with their own steps), resume and skip of done rounds, bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from damaged_checkpoints import assert_fell_back, truncate
from diffusion_fixtures import StandInCondition, make_dump_with_durations
from speechkd.distill.progressive import ProgressiveConfig, distillation_loss, round_steps, run_progressive
from speechkd.models.diffusion_sampling import ddim_step
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.models.diffusion import DenoiserConfig, DiffusionConfig, DiffusionTTS, masked_l1
from speechkd.train.config import load_train_config
from speechkd.checkpoints import load_model
from speechkd.train.trainer import run_training

CONF = Path(__file__).resolve().parents[1] / "recipes/conf"


def _pair(k: int = 2):
    cfg = DiffusionConfig(steps=2 * k, denoiser=DenoiserConfig(residual_layers=2, residual_channels=8))
    torch.manual_seed(0)
    teacher = DiffusionTTS(cfg, 10, 4, condition=StandInCondition()).double()
    with torch.no_grad():
        teacher.denoiser.out_proj.weight.normal_(0, 0.5)
    student = DiffusionTTS(dataclasses.replace(cfg, steps=k), 10, 4, condition=StandInCondition()).double()
    student.load_state_dict(teacher.state_dict())
    return teacher.eval(), student.eval()


def test_round_steps():
    assert round_steps(8, 3) == [4, 2, 1]
    with pytest.raises(ConfigError, match="cannot halve 1 steps"):
        round_steps(4, 3)


@pytest.mark.parametrize("j", [1, 2])
def test_distillation_loss_target_is_two_teacher_steps(j):
    """The pass's target makes one student DDIM step from x_t land where the teacher's two steps do,
    at the student's own time labels (j = 1 ends on the teacher's x0^)."""
    teacher, student = _pair(k=2)
    tokens, token_lens = torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([3, 2])
    mels = torch.randn(2, 9, 4, dtype=torch.float64)
    mel_lens = torch.tensor([9, 6])
    jj = torch.tensor([j, j])
    out = distillation_loss(student, teacher, tokens, token_lens, mels, mel_lens, {}, j=jj)
    x_t, mask = out["x_t"], out["mask"]
    sched, m = teacher.schedule, mask[..., None].double()
    cond = out["cond"]
    a = [sched.a_sigma(torch.full((2,), (2 * j - i) / 4, dtype=torch.float64), x_t) for i in range(3)]
    x1 = ddim_step(x_t, teacher.denoise(x_t, torch.full((2,), 2 * j / 4.0, dtype=torch.float64), cond, mask), *a[0],
                   *a[1]) * m
    x0_1 = teacher.denoise(x1, torch.full((2,), (2 * j - 1) / 4.0, dtype=torch.float64), cond, mask)
    x2 = x0_1 if j == 1 else ddim_step(x1, x0_1, *a[1], *a[2])
    torch.testing.assert_close(ddim_step(x_t, out["target"], *a[0], *a[2]) * m, x2 * m)
    # the student (a copy of the teacher) at its own label tau = j/2 gives the teacher's x0^ at t = 2j
    torch.testing.assert_close(out["x0_hat"], teacher.denoise(x_t, torch.full((2,), j / 2.0, dtype=torch.float64),
                                                               cond, mask))
    assert float((out["target"] * (1 - m)).abs().max()) == 0.0  # padding carries no target


def test_distillation_l1_is_the_rounds_loss_and_zero_gap_at_the_start():
    """The compare tool's per-step objective: a student that is still its teacher's copy scores exactly
    the round start; its values are the training loss's (masked L1 of x0^ to the target)."""
    from speechkd.distill.compare import distillation_l1

    teacher, student = _pair(k=2)
    batch = {"tokens": torch.tensor([[1, 2, 3], [4, 5, 0]]), "token_lens": torch.tensor([3, 2]),
             "mels": torch.randn(2, 9, 4, dtype=torch.float64), "mel_lens": torch.tensor([9, 6]),
             "durations": torch.tensor([[3, 3, 3], [3, 3, 0]]), "pitch": None, "energy": None}
    res = distillation_l1([("student@2", student, teacher)], [batch], seed=0)["student@2"]
    assert sorted(res) == ["start j=1", "start j=2", "trained j=1", "trained j=2"]
    for j in (1, 2):
        assert res[f"start j={j}"] == res[f"trained j={j}"] and len(res[f"start j={j}"]) == 2
    # the same number as the loss of one training pass with the same noise, per utterance
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(batch["mels"].shape, generator=g)
    out = distillation_loss(student, teacher, batch["tokens"], batch["token_lens"], batch["mels"], batch["mel_lens"],
                            {"durations": batch["durations"]}, j=torch.tensor([1, 1]), noise=noise)
    assert res["start j=1"][1] == pytest.approx(float(masked_l1(out["x0_hat"][1:], out["target"][1:],
                                                                 out["mask"][1:])))
    with torch.no_grad():  # a student that moved scores differently from its start
        student.denoiser.out_proj.bias.add_(0.1)
    moved = distillation_l1([("student@2", student, teacher)], [batch], seed=0)["student@2"]
    assert moved["start j=1"] == res["start j=1"] and moved["trained j=1"] != res["trained j=1"]


@pytest.fixture
def teacher_exp(tmp_path):
    paths = make_dump_with_durations(tmp_path)
    cfg = load_train_config(CONF / "diffusion_tiny.yaml", [
        f"data.dump_dir={paths['dump']}", f"data.token_list={paths['token_list']}", "trainer.accelerator=cpu",
        "trainer.devices=1"])
    exp = tmp_path / "exp" / "diffusion_8"
    run_training(cfg, str(exp), progress_bar=False)
    return exp


def test_progressive_chain_end_to_end_and_resume(teacher_exp, tmp_path):
    from speechkd.config import load_config

    pcfg = load_config(ProgressiveConfig, CONF / "progressive_tiny.yaml")
    pcfg.trainer.accelerator, pcfg.trainer.devices = "cpu", "1"
    outs = run_progressive(str(teacher_exp), pcfg, progress_bar=False)
    assert [Path(o).name for o in outs] == ["diffusion_4", "diffusion_2"]
    for k, o in zip((4, 2), outs):
        lm = load_model(o)
        assert lm.model.cfg.steps == k and lm.step == 3
        info = json.loads((Path(o) / "round.json").read_text())
        assert info["student_steps"] == k and info["teacher_steps"] == 2 * k and info["steps_trained"] == 3
        assert (Path(o) / "config.yaml").exists() and (Path(o) / "progressive.yaml").exists()
        r = lm.model.inference(torch.tensor([[3, 4, 5]]), torch.tensor([3]), generator=torch.Generator().manual_seed(0))
        assert r["mel"].shape[-1] == 16 and torch.isfinite(r["mel"]).all()
    # speechkd synth's Synthesizer samples the teacher on a sub-grid (--steps) like the students
    from speechkd.infer.synthesize import Synthesizer
    from speechkd.models.vocoders.griffin_lim import GriffinLim, GriffinLimConfig
    from speechkd.text.frontend import Frontend

    lm = load_model(str(teacher_exp))
    syn = Synthesizer(lm, GriffinLim(lm.feature_config, GriffinLimConfig(n_iter=2)), Frontend())
    syn.set_steps(2)
    assert syn.model_options == {"steps": 2}
    (wav, frames, _), = syn.synthesize_ids([[3, 4, 5] * 8], seed=0)  # >= 24 frames: enough for an STFT
    assert frames >= 24 and len(wav) > 0
    with pytest.raises(ConfigError, match="must divide 8"):
        syn.set_steps(3)
    # the paired comparison on mels: teacher@k vs student@k from the same noise
    from speechkd.cli import main

    assert main(["distill", "compare", "--exps", str(teacher_exp), *outs, "--out", str(tmp_path / "cmp")]) == 0
    res = json.loads((tmp_path / "cmp/results.json").read_text())
    assert list(res["systems"]) == ["teacher@8", "teacher@4", "student@4", "teacher@2", "student@2", "teacher@1"]
    assert res["systems"]["teacher@8"]["l1_teacher"] == 0.0 and len(res["utts"]) == 2
    assert all(0 < s["gv_ratio"] < 100 and s["l1_gt"] > 0 for s in res["systems"].values())
    assert res["systems"]["teacher@1"]["l1_teacher"] > 0
    # each round's objective: student@4 against the teacher, student@2 against student@4, every step j
    obj = res["distillation_l1"]
    assert sorted(obj) == ["student@2", "student@4"] and "trained j=4" in obj["student@4"]
    assert all(v > 0 for s in obj.values() for v in s.values())
    assert "Each round's objective" in (tmp_path / "cmp/results.md").read_text()
    # round 1 started from the teacher, then trained: the denoiser moved, the (frozen) condition did not
    t, s = load_model(str(teacher_exp)).model, load_model(outs[0]).model
    moved = [n for n, p in s.state_dict().items() if not torch.equal(p, t.state_dict()[n])]
    assert any(n.startswith("denoiser.") for n in moved)
    assert not any(n.startswith("condition.") for n in moved)
    # a rerun skips the done rounds; halving a 1-step model is an error (before any training)
    mtime = (Path(outs[1]) / "checkpoints/last.ckpt").stat().st_mtime
    assert run_progressive(str(teacher_exp), pcfg, progress_bar=False) == outs
    assert (Path(outs[1]) / "checkpoints/last.ckpt").stat().st_mtime == mtime
    with pytest.raises(ConfigError, match="cannot halve 1 steps"):
        run_progressive(str(teacher_exp), dataclasses.replace(pcfg, rounds=4), progress_bar=False)


def test_progressive_resumes_an_interrupted_round(teacher_exp):
    pcfg = ProgressiveConfig(rounds=1, optim=ProgressiveConfig().optim, freeze_condition=False)
    pcfg.trainer = dataclasses.replace(pcfg.trainer, max_steps=2, ckpt_every_steps=1, val_every_steps=2,
                                       accelerator="cpu", devices="1")
    [out] = run_progressive(str(teacher_exp), pcfg, progress_bar=False)
    (Path(out) / "round.json").unlink()  # as if killed after its last checkpoint
    pcfg.trainer.max_steps = 4
    run_progressive(str(teacher_exp), pcfg, progress_bar=False)
    assert load_model(out).step == 4
    rows = (Path(out) / "metrics.csv").read_text().splitlines()
    steps = [int(float(r.split(",")[0])) for r in rows[1:]]
    assert steps == sorted(steps) and max(steps) == 4  # one history, continued
    # freeze_condition: false trains the condition on with its variance losses
    t, s = load_model(str(teacher_exp)).model, load_model(out).model
    assert any(not torch.equal(p, t.state_dict()[n]) for n, p in s.state_dict().items() if n.startswith("condition."))
    assert "val/pitch" in rows[0]
    # killed again, its last.ckpt damaged: the round resumes from the newest intact step checkpoint
    (Path(out) / "round.json").unlink()
    truncate(Path(out) / "checkpoints" / "last.ckpt")
    pcfg.trainer.max_steps = 5
    run_progressive(str(teacher_exp), pcfg, progress_bar=False)
    assert_fell_back(Path(out))
    assert load_model(out).step == 5 and json.loads((Path(out) / "round.json").read_text())["steps_trained"] == 5


def test_teacher_must_be_a_diffusion_model(tmp_path):
    with pytest.raises(SpeechkdError, match="has no checkpoint"):
        run_progressive(str(tmp_path), ProgressiveConfig())


def test_cli_print_config_and_errors(tmp_path, capsys):
    from speechkd.cli import main

    assert main(["distill", "progressive", "--config", str(CONF / "progressive_demo.yaml"), "--rounds", "3",
                 "optim.lr=1e-4", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "rounds: 3" in out and "lr: 0.0001" in out and "max_minutes: 5" in out
    assert main(["distill", "progressive", "--config", str(CONF / "progressive_demo.yaml")]) == 2
    assert "--teacher is required" in capsys.readouterr().err
    assert main(["distill", "progressive", "--teacher", str(tmp_path), "weighting=snr"]) == 2
    assert "must be one of" in capsys.readouterr().err

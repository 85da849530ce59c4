"""EMA-teacher rounds (RemixIT, offline): the round schedule, the teacher's estimates regenerated at
each round from the EMA teacher, the student and its optimizer kept across rounds, resume, bad configs."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from se_fixtures import make_corpora
from speechkd.enhance.remix import current_round, ema_update, teacher_estimates
from speechkd.enhance.config import load_se_config
from speechkd.enhance.data import load_datadir_audio
from speechkd.enhance.exp import load_se_model, read_checkpoint
from speechkd.enhance.prepare import MixPlan, prepare_se_data
from speechkd.enhance.train import run_se_training
from speechkd.errors import ConfigError

TINY = "model=crn model_conf.channels=[4,8] model_conf.rnn_hidden=16".split()


def _over(se: Path, *extra: str) -> list[str]:
    return [*TINY, f"data.train_dir={se}/train_noisy", f"data.dev_dir={se}/dev_noisy",
            f"data.extra_noise_dir={se}/extra_noise", "data.segment_seconds=0.5", "data.batch_size=2",
            "trainer.val_every_steps=100", "trainer.ckpt_every_steps=2", "trainer.log_every_steps=1",
            "trainer.accelerator=cpu", *extra]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rounds")
    speech, noise = make_corpora(tmp, n_train=4, n_dev=2, n_test=1)
    prepare_se_data(str(speech), str(noise), str(tmp / "se"), MixPlan(seed=1))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    run_se_training(load_se_config(None, _over(tmp / "se", "trainer.max_steps=2")), str(tmp / "teacher"),
                    progress_bar=False)
    torch.set_num_threads(n)
    return tmp


def test_round_schedule():
    # by steps: 6 steps in 3 rounds -> rounds start at steps 0, 2, 4; past the budget stays in the last
    assert [current_round(3, s, 0.0, 6, 0.0) for s in range(8)] == [0, 0, 1, 1, 2, 2, 2, 2]
    # by minutes when there is no step budget
    assert [current_round(2, 99, m, -1, 8.0) for m in (0.0, 3.9, 4.0, 7.9, 9.0)] == [0, 0, 1, 1, 1]
    assert current_round(1, 5, 5.0, 6, 0.0) == 0


def test_teacher_estimates_match_enhancement(teacher):
    loaded = load_se_model(str(teacher / "teacher"))
    y = {"a": np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1}
    est = teacher_estimates(loaded.model, y)
    with torch.no_grad():
        ref = loaded.model(torch.from_numpy(y["a"])).numpy()
    np.testing.assert_allclose(est["a"], ref, rtol=0, atol=1e-6)
    assert est["a"].shape == y["a"].shape


class Recorder(L.Callback):
    """Per step: the estimates the step crops from, a copy of the teacher, the student's weights."""

    def __init__(self):
        self.starts, self.ends = {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts[trainer.global_step] = {
            "estimates": {u: v.copy() for u, v in pl_module.estimates.items()},
            "teacher": copy.deepcopy(pl_module.teacher), "round": pl_module.round,
            "student": {k: v.clone() for k, v in pl_module.model.state_dict().items()}}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # callbacks run before the module's hook: the student after this step, before any regeneration
        self.ends[trainer.global_step] = {k: v.clone() for k, v in pl_module.model.state_dict().items()}


def test_rounds_regenerate_estimates_and_keep_the_student(teacher, tmp_path):
    se, t = teacher / "se", teacher / "teacher"
    cfg = load_se_config(None, _over(se, "method=remix_noisy", f"remix.teacher={t}", f"init_from={t}",
                                     "remix.ema_decay=0.5", "remix.rounds=2", "trainer.max_steps=4"))
    rec = Recorder()
    run_se_training(cfg, str(tmp_path / "ema"), callbacks=[rec], progress_bar=False)
    assert [rec.starts[s]["round"] for s in range(4)] == [0, 0, 1, 1]
    # round 0: the teacher's own estimates; round 1: those of the EMA teacher as it was at the boundary
    t0 = load_se_model(str(t)).model
    noisy = load_datadir_audio(str(se / "train_noisy"), 16000)
    assert set(rec.starts[0]["estimates"]) == set(noisy)
    for u, est in teacher_estimates(t0, noisy).items():
        np.testing.assert_allclose(rec.starts[0]["estimates"][u], est, atol=1e-5)
    for u, est in teacher_estimates(rec.starts[2]["teacher"], noisy).items():
        np.testing.assert_allclose(rec.starts[2]["estimates"][u], est, atol=1e-5)
        assert not np.allclose(est, rec.starts[0]["estimates"][u], atol=1e-4)  # the teacher moved
    # the student carries on across the boundary: not reset, not re-initialised from the teacher
    for k, v in rec.ends[2].items():
        torch.testing.assert_close(rec.starts[2]["student"][k], v)
    ck = read_checkpoint(str(tmp_path / "ema" / "checkpoints" / "last.ckpt"))
    assert [r["step"] for r in ck["speechkd"]["rounds"]] == [0, 2]
    adam_steps = {int(s["step"]) for s in ck["optimizer_states"][0]["state"].values()}
    assert adam_steps == {4}  # one optimizer over both rounds
    # the checkpointed EMA teacher is the running one: θ_T(4) from θ_T(2) and the student's last two steps
    th = copy.deepcopy(rec.starts[2]["teacher"])
    student = copy.deepcopy(t0)
    for step in (3, 4):
        student.load_state_dict(rec.ends[step])
        ema_update(th, student, 0.5)
    for k, v in th.state_dict().items():
        torch.testing.assert_close(ck["state_dict"][f"teacher.{k}"], v)


def test_rounds_resume_regenerates_from_the_checkpointed_teacher(teacher, tmp_path):
    se, t = teacher / "se", teacher / "teacher"
    over = _over(se, "method=remix_enhanced", f"remix.teacher={t}", f"init_from={t}", "remix.ema_decay=0.5",
                 "remix.rounds=2")
    run_se_training(load_se_config(None, over + ["trainer.max_steps=2"]), str(tmp_path / "r"), progress_bar=False)
    rec = Recorder()
    run_se_training(load_se_config(None, over + ["trainer.max_steps=4"]), str(tmp_path / "r"), callbacks=[rec],
                    progress_bar=False)
    assert sorted(rec.starts) == [2, 3] and rec.starts[2]["round"] == 1
    ck = read_checkpoint(str(tmp_path / "r" / "checkpoints" / "last.ckpt"))
    # run 1 (budget 2 steps): rounds at steps 0 and 1; run 2 (budget 4) resumed at step 2, in its round 1
    assert [(r["round"], r["step"]) for r in ck["speechkd"]["rounds"]] == [(0, 0), (1, 1), (1, 2)]


@pytest.mark.parametrize("extra,match", [
    (["remix.rounds=0"], "must be >= 1"),
    (["remix.rounds=2", "trainer.max_steps=4"], "needs remix.teacher"),
    (["remix.rounds=2", "remix.teacher=T", "trainer.max_steps=4"], "needs remix.ema_decay"),
    (["remix.rounds=2", "remix.teacher=T", "remix.ema_decay=0.995", "trainer.max_steps=4",
      "data.estimates_dir=E"], "estimates_dir empty"),
    (["remix.rounds=2", "remix.teacher=T", "remix.ema_decay=0.995"], "max_steps or trainer.max_minutes"),
])
def test_bad_round_configs(extra, match):
    with pytest.raises(ConfigError, match=match) as e:
        load_se_config(None, ["method=remix_noisy", *extra])
    assert "remix.rounds" in str(e.value)


SE_CONFS = sorted(p for p in (Path(__file__).resolve().parents[1] / "recipes/conf").glob("*.yaml")
                  if p.name.startswith(("teacher_nytt_", "clean_upper_", "student_remix", "student_small_")))


@pytest.mark.parametrize("path", SE_CONFS, ids=lambda p: p.name)
def test_shared_se_configs_load(path):
    cfg = load_se_config(str(path))
    if "student_remix_ema" in path.name:
        assert cfg.remix.rounds > 1 and cfg.remix.ema_decay == 0.995 and cfg.init_from == cfg.remix.teacher


def test_every_preset_has_every_se_config():
    names = {p.name for p in SE_CONFS}
    for kind in ("teacher_nytt", "clean_upper", "student_remix", "student_small", "student_remix_ema"):
        assert {f"{kind}_{preset}.yaml" for preset in ("tiny", "demo", "quality")} <= names

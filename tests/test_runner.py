"""The shared training runner's config layer and budget: every trainer family's config refuses
out-of-range values with one line naming the field, the value and the range; the time budget
and the thread choice do their arithmetic (no timing assertions)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fake_dump import TINY
from speechkd.config import field, from_dict, load_typed
from speechkd.distill.progressive import ProgressiveConfig
from speechkd.enhance.config import SETrainConfig, load_se_config
from speechkd.errors import ConfigError
from speechkd.train.config import TrainConfig, TrainerConfig, load_train_config
from speechkd.train.vocoder import VocoderTrainConfig, load_vocoder_config
from speechkd.utils.threads import training_threads

CONF = Path(__file__).resolve().parents[1] / "recipes" / "conf"
FAMILIES = {  # (loader, a tiny config of the family)
    "acoustic": (load_train_config, TINY),
    "diffusion": (load_train_config, CONF / "diffusion_tiny.yaml"),
    "vocoder": (load_vocoder_config, CONF / "vocoder_vocos_tiny.yaml"),
    "se": (load_se_config, CONF / "teacher_nytt_tiny.yaml"),
    "progressive": (lambda path, over: load_typed(ProgressiveConfig, path, over), CONF / "progressive_tiny.yaml"),
}
TRAINER_BAD = ["trainer.max_steps=-5", "trainer.max_minutes=-1", "trainer.max_minutes=inf", "trainer.max_minutes=nan",
               "trainer.min_steps=-1", "trainer.val_every_steps=0", "trainer.ckpt_every_steps=-3",
               "trainer.keep_checkpoints=0", "trainer.seed=-1", "trainer.num_threads=-2",
               "trainer.accumulate_grad_batches=0", "optim.lr=nan", "optim.lr=0", "optim.lr=-1e-3",
               "optim.lr=.inf", "optim.betas=[0.9, nan]", "optim.weight_decay=-0.1", "optim.grad_clip=-1"]
FAMILY_BAD = {
    "acoustic": ["model_conf.d_model=0", "model_conf.n_heads=0", "model_conf.enc_layers=-1",
                 "model_conf.dropout=-0.5", "model_conf.reduction_factor=0", "data.batch_frames=0",
                 "data.max_frames=-10", "optim.warmup_steps=-1", "model_conf.guided_attn_fade_start=-2"],
    "diffusion": ["model_conf.steps=0", "model_conf.beta_max=nan", "model_conf.denoiser.residual_channels=0"],
    "vocoder": ["generator_conf.dim=0", "data.segment_frames=0", "data.batch_size=-8", "loss.mel_weight=inf"],
    "se": ["data.batch_size=0", "data.segment_seconds=-2", "model_conf.rnn_hidden=0", "loss.wave_l1=nan"],
    "progressive": ["rounds=0", "batch_frames=-1"],
}
CASES = [(fam, bad) for fam in FAMILIES for bad in TRAINER_BAD if fam != "progressive" or bad.startswith(
    ("trainer.", "optim."))] + [(fam, bad) for fam, bads in FAMILY_BAD.items() for bad in bads]


@pytest.mark.parametrize("family,bad", CASES, ids=[f"{f}:{b}" for f, b in CASES])
def test_out_of_range_values_are_one_clear_error(family, bad):
    load, conf = FAMILIES[family]
    key, value = bad.split("=", 1)
    with pytest.raises(ConfigError) as e:
        load(conf, [bad])
    msg = str(e.value)
    assert f"field '{key}'" in msg or f"field '{key.rsplit('.', 1)[0]}" in msg, msg
    assert "\n" not in msg and ("out of range" in msg or "finite" in msg), msg


@pytest.mark.parametrize("family,good", [
    ("acoustic", "trainer.max_steps=-1"), ("acoustic", "trainer.seed=0"), ("acoustic", "model_conf.postnet_layers=0"),
    ("acoustic", "optim.warmup_steps=0"), ("acoustic", "trainer.max_minutes=0.5"), ("diffusion", "trainer.min_steps=3"),
    ("vocoder", "data.max_dev_utts=0"), ("se", "trainer.num_threads=0"), ("progressive", "batch_frames=0")])
def test_documented_sentinels_stay_valid(family, good):
    load, conf = FAMILIES[family]
    load(conf, [good])


def test_the_cli_says_it_in_one_line(capsys):
    from speechkd.cli import main

    assert main(["train", "--config", str(TINY), "--print-config", "trainer.max_minutes=-1"]) == 2
    err = capsys.readouterr().err
    assert "trainer.max_minutes" in err and "-1" in err and ">= 0" in err and "Traceback" not in err
    assert main(["train", "--config", str(TINY), "--print-config", "--max-minutes", "-1"]) == 2  # the parser
    assert "--max-minutes" in capsys.readouterr().err
    assert main(["se-train", "--print-config", "optim.lr=nan"]) == 2
    assert "optim.lr" in capsys.readouterr().err


def test_declared_bounds_and_every_family_shares_one_trainer_config():
    @dataclasses.dataclass
    class C:
        p: float = field(0.5, ge=0.0, lt=1.0, help="a probability")

    assert from_dict(C, {"p": 0.0}).p == 0.0
    with pytest.raises(ConfigError, match=r"field 'p': 1 is out of range: must be >= 0 and < 1"):
        from_dict(C, {"p": 1.0})
    for cls in (TrainConfig, VocoderTrainConfig, SETrainConfig, ProgressiveConfig):
        assert {f.name: f.type for f in dataclasses.fields(cls)}["trainer"] in ("TrainerConfig", TrainerConfig)
    # a YAML that sets some trainer keys keeps SE's own defaults for the others
    se = load_se_config(CONF / "teacher_nytt_tiny.yaml")
    assert se.trainer.num_threads == 1 and se.trainer.max_steps == 4 and se.trainer.keep_checkpoints == 3
    with pytest.raises(ConfigError, match="min_steps 9 exceeds max_steps 4"):
        load_train_config(TINY, ["trainer.min_steps=9"])


def test_training_threads_follow_the_free_cores(monkeypatch):
    import speechkd.utils.threads as th

    monkeypatch.setattr(th, "usable_cores", lambda: [0, 1, 2, 3])
    assert training_threads(0, free=3.9)[0] == 4
    assert training_threads(0, free=2.6)[0] == 3  # a busy neighbour takes a core
    assert training_threads(0, free=0.2)[0] == 1  # never fewer than one
    assert training_threads(2, free=0.2) == (2, "trainer.num_threads")  # asked for: taken as is


class _Stub:
    """What TimeBudget touches of the trainer and the module."""

    def __init__(self):
        self.global_step, self.should_stop, self.train_minutes, self.logged = 0, False, 0.0, {}
        self.strategy = self  # one process: a decision reduced over the ranks is this one's

    def reduce_boolean_decision(self, decision, all=True):
        return decision

    def log(self, name, value, **kw):
        self.logged[name] = value


def test_time_budget_stops_at_max_minutes_after_min_steps():
    from speechkd.train.runner import TimeBudget

    clock = [0.0]
    budget = TimeBudget(max_minutes=1.0, min_steps=5, threads=1, clock=lambda: clock[0])
    trainer = module = _Stub()
    module.train_minutes = 0.5 / 60  # resumed: 0.5 s trained before
    for step in range(1, 10):
        budget.on_train_batch_start(trainer, module, None, 0)
        clock[0] += 20.0  # a 20-second step
        trainer.global_step = step
        budget.on_train_batch_end(trainer, module, None, None, 0)
        if trainer.should_stop:
            break
        if step == 2:  # validation between steps is not training time
            budget.on_validation_start(trainer, module)
            clock[0] += 100.0
    # the minute is spent at step 3; the floor of 5 steps holds training on
    assert trainer.global_step == 5 and module.train_minutes == pytest.approx((0.5 + 5 * 20) / 60)
    assert module.logged["minutes"] == module.train_minutes
    budget = TimeBudget(max_minutes=1.0, threads=1, clock=lambda: clock[0])
    trainer = module = _Stub()
    for step in range(1, 10):
        budget.on_train_batch_start(trainer, module, None, 0)
        clock[0] += 20.0
        trainer.global_step = step
        budget.on_train_batch_end(trainer, module, None, None, 0)
        if trainer.should_stop:
            break
    assert trainer.global_step == 3


def test_starved_run_is_said_once(caplog):
    import speechkd.train.runner as runner

    wall, cpu = [0.0], [0.0]
    budget = runner.TimeBudget(threads=2, check_after_s=60.0, clock=lambda: wall[0], cpu_clock=lambda: cpu[0])
    budget._wall0, budget._cpu0 = 0.0, 0.0
    wall[0], cpu[0] = 120.0, 200.0  # 200 of 240 CPU seconds: fine
    assert budget.check_starved(10) == pytest.approx(200 / 240) and not budget._warned
    wall[0], cpu[0] = 240.0, 200.0  # 200 of 480: starved
    with caplog.at_level("WARNING"):
        assert budget.check_starved(20) < runner.STARVED
    assert budget._warned and "training looks starved" in caplog.text and "trainer.min_steps" in caplog.text

"""Training infrastructure: data joining and batching, exp dir contents, checkpoints, resume."""

from __future__ import annotations

import csv

import pytest
import torch

from fake_dump import TINY, make_fake_dump, tiny_overrides
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.text.tokens import TokenList
from speechkd.train.config import load_train_config
from speechkd.train.data import FrameBatchSampler, read_split
from speechkd.checkpoints import load_model
from speechkd.train.trainer import run_training


def _rows(exp):
    with open(exp / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_exp_dir_and_resumes(tmp_path):
    paths = make_fake_dump(tmp_path)
    exp = tmp_path / "exp"
    cfg = load_train_config(TINY, tiny_overrides(paths, **{"trainer.max_steps": 2, "trainer.val_every_steps": 2}))
    last = run_training(cfg, str(exp), progress_bar=False)
    for name in ("config.yaml", "metrics.csv", "train.log", "checkpoints/last.ckpt"):
        assert (exp / name).exists(), name
    assert "reduction_factor: 3" in (exp / "config.yaml").read_text()
    assert list((exp / "plots").glob("step*.png")) and (exp / "plots/curves.png").exists()
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 2
    meta = ckpt["speechkd"]
    dump_fc = (paths["dump"] / "feats/train/feature_config.yaml").read_text()
    assert f"hop_length: {meta['feature_config']['hop_length']}" in dump_fc
    assert meta["tokens"] == TokenList.load(paths["token_list"]).tokens
    assert meta["version"]["speechkd"] and meta["config"]["model_conf"]["d_model"] == 32
    rows = _rows(exp)
    assert "val/focus_rate" in rows[0] and any(r["val/focus_rate"] for r in rows)
    steps_first = [int(r["step"]) for r in rows]

    # a "killed" run resumes: the same command with a larger budget continues from step 2
    cfg = load_train_config(TINY, tiny_overrides(paths, **{"trainer.max_steps": 4, "trainer.val_every_steps": 2}))
    run_training(cfg, str(exp), progress_bar=False)
    assert torch.load(last, weights_only=True)["global_step"] == 4
    assert "resuming from" in (exp / "train.log").read_text()
    steps = [int(r["step"]) for r in _rows(exp)]
    assert steps[: len(steps_first)] == steps_first and max(steps) >= 3 and len(steps) > len(steps_first)
    lm = load_model(str(exp))
    assert lm.step == 4 and lm.feature_config.hop_length == 256 and not lm.model.training

    # a different model cannot resume in the same exp dir
    cfg = load_train_config(TINY, tiny_overrides(paths, **{"trainer.max_steps": 5, "model_conf.d_model": 64}))
    with pytest.raises(ConfigError, match="model_conf.d_model"):
        run_training(cfg, str(exp), progress_bar=False)


def test_load_model_averages_the_last_checkpoints(tmp_path, caplog):
    from speechkd.checkpoints import last_checkpoints, model_state, read_checkpoint

    paths = make_fake_dump(tmp_path)
    exp = tmp_path / "exp"
    cfg = load_train_config(TINY, tiny_overrides(paths, **{"trainer.max_steps": 6, "trainer.val_every_steps": 6,
                                                          "trainer.ckpt_every_steps": 2,
                                                          "trainer.keep_checkpoints": 3}))
    run_training(cfg, str(exp), progress_bar=False)
    ck = exp / "checkpoints"
    # one batch an epoch here: every step checkpoint falls on an epoch's last batch, which Lightning
    # would defer to the next validation without save_on_train_epoch_end (step2/step4 never written)
    # step6.ckpt and last.ckpt hold the same step: it counts once
    assert last_checkpoints(str(exp), 3) == [str(ck / "step2.ckpt"), str(ck / "step4.ckpt"), str(ck / "last.ckpt")]
    states = [model_state(read_checkpoint(str(ck / n))) for n in ("step2.ckpt", "step4.ckpt", "last.ckpt")]
    name = next(k for k, v in states[0].items() if v.is_floating_point() and not torch.equal(v, states[2][k]))
    lm = load_model(str(exp), average=3)
    got = lm.model.state_dict()[name]
    assert torch.allclose(got, sum(s[name] for s in states) / 3, atol=1e-6)
    assert not torch.allclose(got, states[2][name]) and lm.step == 6
    with caplog.at_level("WARNING"):
        load_model(str(exp), average=10)  # asks for more than there are: the ones there are, and says so
    assert "averaging the 3 checkpoints there are (asked for 10" in caplog.text
    with pytest.raises(SpeechkdError, match="needs an exp dir"):
        load_model(str(ck / "last.ckpt"), average=2)
    with pytest.raises(SpeechkdError, match="--average must be >= 1"):
        load_model(str(exp), average=0)


def test_mismatched_utterance_ids_name_both_files(tmp_path):
    paths = make_fake_dump(tmp_path, n_train=4)
    scp = paths["dump"] / "feats/train/feats.scp"
    lines = scp.read_text().splitlines(keepends=True)
    scp.write_text("".join(lines[1:]))
    with pytest.raises(SpeechkdError) as e:
        read_split(str(paths["dump"]), "train", TokenList.load(paths["token_list"]))
    msg = str(e.value)
    assert "utt_train_00" in msg and "tokens/train/tokens" in msg and "feats/train/feats.scp" in msg


def test_unknown_token_names_utterance(tmp_path):
    paths = make_fake_dump(tmp_path, n_train=3)
    tok = paths["dump"] / "tokens/train/tokens"
    tok.write_text(tok.read_text().replace("utt_train_01 ", "utt_train_01 zz "))
    with pytest.raises(SpeechkdError, match="utt_train_01.*'zz'"):
        read_split(str(paths["dump"]), "train", TokenList.load(paths["token_list"]))


def test_frame_batches_cover_everything_once(monkeypatch):
    frames = [30, 200, 45, 120, 80, 80, 10, 300, 150, 60]
    s = FrameBatchSampler(frames, batch_frames=310, shuffle=True, seed=3)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(len(frames)))
    assert all(len(b) * max(frames[i] for i in b) <= 310 for b in batches)
    s.set_epoch(1)
    assert list(s) != batches and sorted(map(sorted, s)) == sorted(map(sorted, batches))
    # DDP: each rank takes every world-th batch, with equal counts
    monkeypatch.setattr(FrameBatchSampler, "_rank_world", staticmethod(lambda: (1, 2)))
    assert len(list(s)) == len(s) == -(-len(batches) // 2)


def test_config_errors_and_print_config(tmp_path, capsys):
    with pytest.raises(ConfigError, match="model_conf.d_modle"):
        load_train_config(TINY, ["model_conf.d_modle=3"])
    from speechkd.cli import main

    assert main(["train", "--config", str(TINY), "--print-config", "--max-minutes", "3"]) == 0
    out = capsys.readouterr().out
    assert "max_minutes: 3.0" in out and "# frames per decoder step r" in out
    assert main(["train", "--config", str(TINY)]) == 2  # no --exp


def test_sigterm_saves_a_checkpoint_and_fails(tmp_path, monkeypatch):
    """A SIGTERM'd training (cluster preemption, `kill`) leaves last.ckpt at the step it reached
    and raises (Lightning would exit with status 0, and a recipe would mark the stage done)."""
    import os
    import signal

    from lightning.pytorch.callbacks import Callback

    class KillAt(Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    paths = make_fake_dump(tmp_path, n_train=6, n_dev=2)
    exp = tmp_path / "exp"
    cfg = load_train_config(TINY, tiny_overrides(paths, **{"trainer.max_steps": 50, "trainer.ckpt_every_steps": 100,
                                                           "trainer.val_every_steps": 100}))
    with pytest.raises(SpeechkdError, match="SIGTERM at step"):
        run_training(cfg, str(exp), progress_bar=False, callbacks=[KillAt()])
    assert torch.load(exp / "checkpoints/last.ckpt", weights_only=True)["global_step"] in (3, 4)


def test_resume_skips_a_damaged_last_ckpt_and_never_runs_its_pickle(tmp_path, capsys):
    """last.ckpt holding a pickle that runs code: the rerun refuses to unpickle it, says so in one
    line and resumes from the newest intact step<N>.ckpt; with nothing intact it exits 2."""
    from damaged_checkpoints import assert_fell_back, truncate, write_evil_checkpoint

    from speechkd.cli import main

    paths = make_fake_dump(tmp_path, n_train=6, n_dev=2)
    exp = tmp_path / "exp"
    over = tiny_overrides(paths, **{"trainer.val_every_steps": 100})
    run_training(load_train_config(TINY, over + ["trainer.max_steps=4"]), str(exp), progress_bar=False)
    marker = tmp_path / "pwned"
    write_evil_checkpoint(exp / "checkpoints/last.ckpt", marker)
    run_training(load_train_config(TINY, over + ["trainer.max_steps=6"]), str(exp), progress_bar=False)
    assert_fell_back(exp, marker)
    assert torch.load(exp / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 6
    for p in (exp / "checkpoints").glob("*.ckpt"):
        truncate(p)
    capsys.readouterr()
    assert main(["train", "--config", str(TINY), "--exp", str(exp), *over]) == 2
    err = capsys.readouterr().err
    assert "no intact checkpoint" in err and "Traceback" not in err


def test_min_loss_drop_stops_a_run_whose_loss_did_not_fall(tmp_path, capsys):
    """trainer.min_loss_drop: the run checks its own training loss after it stops. A floor the
    loss meets passes and logs the drop; a floor above it is one error line and exit 2."""
    from speechkd.cli import main

    paths = make_fake_dump(tmp_path, n_train=6, n_dev=2)
    over = tiny_overrides(paths, **{"trainer.val_every_steps": 100, "trainer.log_every_steps": 1,
                                    "trainer.max_steps": 6})
    assert main(["train", "--config", str(TINY), "--exp", str(tmp_path / "a"), *over,
                 "trainer.min_loss_drop=0"]) == 0
    assert "train/loss fell by" in (tmp_path / "a" / "train.log").read_text()
    capsys.readouterr()
    assert main(["train", "--config", str(TINY), "--exp", str(tmp_path / "b"), *over,
                 "trainer.min_loss_drop=0.99"]) == 2
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if "speechkd train: error:" in ln]
    assert "train/loss did not fall" in line and "at least 99.0% wanted" in line and "Traceback" not in err

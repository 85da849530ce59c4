"""Progressive distillation of a diffusion acoustic model (Salimans & Ho 2022; ProDiff, Huang et al.
2022): N steps -> N/2 -> ... , each round a student that takes ONE step where its teacher takes TWO.

Round r (teacher with 2k steps, student with k):

1. the student starts as a copy of its teacher (same weights, ``steps = k``), with a fresh
   optimiser and learning-rate schedule (the learning rate is reset every round);
2. for a training mel x0 it draws a student step j in 1..k, i.e. teacher indices t = 2j, t' = 2j - 1,
   t'' = 2j - 2 (noise levels tau = t/2k), and x_t = a_t x0 + sigma_t eps;
3. the teacher (frozen, eval mode: deterministic) takes two DDIM steps t -> t' -> t'' (the step to
   t'' = 0 returns its x0^);
4. the target x~ = (x_t'' - (sigma_t''/sigma_t) x_t) / (a_t'' - (sigma_t''/sigma_t) a_t) is the x0 for
   which one DDIM step t -> t'' lands on x_t'' (:func:`speechkd.models.diffusion_sampling.distill_target`);
5. the student's x0^(x_t, tau_t) is trained on x~ with a masked L1 (ProDiff eq. 9), optionally
   weighted by the truncated SNR max(a_t^2/sigma_t^2, 1) (Salimans & Ho sec. 4).

The condition (FastSpeech 2 encoder + variance adaptor) is frozen by default: the student keeps its
teacher's and only the denoiser learns, so teacher@k and student@k share durations, pitch and energy
and differ only in the denoiser. ``freeze_condition: false`` trains the condition on with its
duration/pitch/energy losses, as the teacher was trained. ``speechkd distill compare`` gives each
round's objective at its start and end: a round that trained the condition at a large noam learning
rate ended FURTHER from its targets than the copy of the teacher it started as, and freezing the
condition and lowering the rate fixed it (egs/mini_en/tts1/RESULTS.md, "Diffusion and progressive distillation").
The student starts close to its target, so
the learning rate is small and constant (Adam's step-size noise otherwise swamps the residual).

Time labels: the student sees x_t at noise level tau_t = j/k and is told tau_t, exactly what its
sampler gives it at that step. (ProDiff's released code labels the student's input with t - 2 of
the teacher's grid while it sits at noise level t: training and sampling then disagree by one
student step. We do not copy that.)

Every round is its own exp dir ``<exp_root>/<prefix>_<k>`` (checkpoints loadable with
:func:`speechkd.checkpoints.load_model`, with config, tokens, FeatureConfig and statistics inside; the
teacher's path and the round's settings in ``progressive.yaml`` and ``round.json``). Training a
round resumes after a kill (the shared runner, :mod:`speechkd.train.runner`); a round whose
``round.json`` exists is done and is skipped, so rerunning with more rounds continues the chain.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Literal

import torch

from speechkd.checkpoints import load_model, read_checkpoint
from speechkd.config import dump_config, field, to_dict
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.models.diffusion import DiffusionTTS, _fit_frames, masked_l1
from speechkd.models.diffusion_sampling import ddim_step, distill_target, q_sample
from speechkd.models.layers import length_mask
from speechkd.train.config import OptimConfig, TrainConfig, TrainerConfig
from speechkd.train.config import loaded_train_config
from speechkd.train.module import TTSTask
from speechkd.train.trainer import run_training
from speechkd.utils.io import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)


@dataclass
class ProgressiveConfig:
    """Settings of every round of progressive distillation (each round gets the same budget)."""

    rounds: int = field(2, help="rounds K: N -> N/2 -> ... -> N/2^K steps (`--rounds` overrides)")
    weighting: Literal["none", "truncated_snr"] = field(
        "none", help="per-utterance weight of the x0 L1: none (ProDiff) or max(a_t^2/sigma_t^2, 1) "
                     "(Salimans & Ho's truncated SNR)")
    exp_prefix: str = field("diffusion", help="round k is written to <exp root>/<exp_prefix>_<k>")
    batch_frames: int = field(0, help="mel frames per batch; 0: the teacher's data.batch_frames")
    freeze_condition: bool = field(True, help="keep the teacher's condition (encoder + variance adaptor) and "
                                              "train only the denoiser; false: train it on with its variance losses")
    val_sample_steps: bool = field(True, help="validate each student by sampling the dev mels with its own "
                                              "k steps (val/sample_l1_<k>steps)")
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, warmup_steps=0, schedule="constant"),
                               help="optimiser of each round, created afresh (learning rate reset); small and "
                                    "constant: the student starts at its teacher, close to its target")
    trainer: TrainerConfig = field(default_factory=TrainerConfig, help="length and devices of each round")


def round_steps(teacher_steps: int, rounds: int) -> list[int]:
    """Student step counts of the chain: N/2, N/4, ..., N/2^rounds (each must be a whole number)."""
    out, n = [], teacher_steps
    for r in range(rounds):
        if n % 2:
            raise ConfigError(f"cannot halve {n} steps (round {r + 1} of {rounds} from a {teacher_steps}-step "
                              "teacher)", field="rounds", hint=f"use at most {len(out)} rounds, or a teacher with "
                                                               "a power-of-two step count")
        n //= 2
        out.append(n)
    return out


def distillation_loss(student: DiffusionTTS, teacher: DiffusionTTS, tokens: torch.Tensor, token_lens: torch.Tensor,
                      mels: torch.Tensor, mel_lens: torch.Tensor, condition_inputs: dict,
                      weighting: str = "none", j: torch.Tensor | None = None,
                      noise: torch.Tensor | None = None, shared_condition: bool = False) -> dict:
    """One progressive-distillation pass (module docstring, steps 2-5). ``mels`` as TTSTask gives
    them; ``j [B]`` (student steps, 1..k) and ``noise`` may be given (tests); ``shared_condition``:
    the student's condition is the teacher's (frozen), computed once. Returns the model outputs
    (``x0``, ``x0_hat``, ``x0_teacher`` -- the teacher's x0^ at t, which is the round start's --, ``target``,
    ``mask``, ``cond``, ``t``, ``pred``, ``weight``)."""
    k = student.cfg.steps
    if teacher.cfg.steps != 2 * k:
        raise ConfigError(f"a {k}-step student needs a {2 * k}-step teacher, got {teacher.cfg.steps}",
                          field="model_conf.steps")
    t_max = mels.size(1)
    with torch.no_grad():
        cond_t = _fit_frames(teacher.encode(tokens, token_lens, **condition_inputs)[0], t_max)
    if shared_condition:
        cond, pred = cond_t, {}
    else:
        cond, _, pred = student.encode(tokens, token_lens, **condition_inputs)
        cond = _fit_frames(cond, t_max)
    mask = length_mask(mel_lens, t_max)
    m = mask[..., None].to(mels.dtype)
    x0 = student.normalize(mels) * m
    b = mels.size(0)
    j = student.draw_steps(b, mels.device) if j is None else j
    n_t = 2 * k  # the teacher's grid: t = 2j, t' = 2j - 1, t'' = 2j - 2
    tau = [(2 * j - i).double() / n_t for i in range(3)]
    (a0, s0), (a1, s1), (a2, s2) = (student.schedule.a_sigma(x, x0) for x in tau)
    noise = torch.randn_like(x0) if noise is None else noise
    x_t = q_sample(x0, a0, s0, noise) * m
    with torch.no_grad():
        x0_teacher = teacher.denoise(x_t, tau[0].to(x0.dtype), cond_t, mask)  # also the round start's x0^
        x_t1 = ddim_step(x_t, x0_teacher, a0, s0, a1, s1) * m
        x0_t1 = teacher.denoise(x_t1, tau[1].to(x0.dtype), cond_t, mask)
        last = (j == 1).view(-1, 1, 1)  # t'' = 0: the second DDIM step returns x0^ itself
        x_t2 = torch.where(last, x0_t1, ddim_step(x_t1, x0_t1, a1, s1, a2, s2)) * m
        target = distill_target(x_t, x_t2, a0, s0, a2, s2) * m
    # the student's input sits at noise level tau_t and is labelled tau_t (see the module docstring)
    x0_hat = student.denoise(x_t, tau[0].to(x0.dtype), cond, mask)
    weight = None
    if weighting == "truncated_snr":
        weight = ((a0 / s0) ** 2).clamp_min(1.0).view(-1)
    elif weighting != "none":
        raise ConfigError(f"unknown weighting {weighting!r}; known: none, truncated_snr", field="weighting")
    return {"x0": x0, "x0_hat": x0_hat, "x0_teacher": x0_teacher, "target": target, "x_t": x_t, "mask": mask,
            "cond": cond, "t": j, "pred": pred, "weight": weight}


class ProgressiveTask(TTSTask):
    """TTSTask whose model is the student and whose loss is :func:`distillation_loss`; the teacher is
    held outside the module tree (never trained, never saved in the student's checkpoints)."""

    def __init__(self, cfg: TrainConfig, token_list, feature_config, stats, exp_dir: str | None = None, *,
                 teacher: DiffusionTTS, weighting: str = "none", freeze_condition: bool = True,
                 meta: dict | None = None, speakers=None):
        super().__init__(cfg, token_list, feature_config, stats, exp_dir=exp_dir, speakers=speakers)
        self.__dict__["teacher"] = teacher.eval().requires_grad_(False)  # not a submodule
        self.weighting, self.freeze_condition = weighting, freeze_condition
        # the student starts as its teacher (on resume Lightning then loads the checkpoint over it)
        self.model.load_state_dict(teacher.state_dict())
        if freeze_condition:  # the teacher's condition (eval mode) is used; the saved weights stay the teacher's
            self.model.condition.requires_grad_(False)
        self.meta["progressive"] = meta or {}

    def on_fit_start(self) -> None:
        self.teacher.to(self.device).eval()

    def _run(self, batch: dict):
        batch = dict(batch, mels=(batch["mels"] - self.mel_mean) / self.mel_std)
        extra = self.model_inputs(batch)
        out = distillation_loss(self.model, self.teacher, batch["tokens"], batch["token_lens"], batch["mels"],
                                batch["mel_lens"], extra, self.weighting, shared_condition=self.freeze_condition)
        l1 = masked_l1(out["x0_hat"], out["target"], out["mask"], out["weight"])
        logs = {"distill_l1": l1}
        loss = l1
        model = self.model
        if model.cfg.variance_loss_weight > 0 and not self.freeze_condition:
            v_logs = model.condition.variance_losses(batch, out["pred"])
            loss = loss + model.cfg.variance_loss_weight * sum(model.condition.loss_weight(k) * v
                                                               for k, v in v_logs.items())
            logs.update(v_logs)
        logs["loss"] = loss
        return batch, loss, {**logs, "out": out}


def student_config(teacher_cfg: TrainConfig, pcfg: ProgressiveConfig, steps: int) -> TrainConfig:
    """The student's TrainConfig: the teacher's model and data with ``steps`` halved, the round's
    optimiser and trainer settings."""
    mc = teacher_cfg.model_conf
    model_conf = dataclasses.replace(mc, steps=steps,
                                     val_sample_steps=steps if (pcfg.val_sample_steps or mc.val_sample_steps) else 0)
    data = dataclasses.replace(teacher_cfg.data, **({"batch_frames": pcfg.batch_frames} if pcfg.batch_frames else {}))
    return dataclasses.replace(teacher_cfg, model_conf=model_conf, data=data,
                               optim=dataclasses.replace(pcfg.optim), trainer=dataclasses.replace(pcfg.trainer))


def run_progressive(teacher_exp: str, pcfg: ProgressiveConfig, *, exp_root: str | None = None,
                    data_overrides: dict | None = None, progress_bar: bool | None = None) -> list[str]:
    """Run the chain of ``pcfg.rounds`` rounds from ``teacher_exp``; returns the student exp dirs.
    ``data_overrides``: ``DataConfig`` fields replacing the teacher's (e.g. dump_dir when the
    recipe moved)."""
    teacher = load_model(teacher_exp)
    if not isinstance(teacher.model, DiffusionTTS):
        raise SpeechkdError(f"the teacher is a {teacher.name!r} model, not a diffusion model",
                            path=teacher.path, hint="train one with model: diffusion (recipe stage 7)")
    exp_root = exp_root or os.path.dirname(os.path.abspath(teacher_exp.rstrip("/")))
    outs, prev_dir = [], teacher_exp
    for r, k in enumerate(round_steps(teacher.model.cfg.steps, pcfg.rounds), start=1):
        exp_dir = os.path.join(exp_root, f"{pcfg.exp_prefix}_{k}")
        done = os.path.join(exp_dir, "round.json")
        outs.append(exp_dir)
        if os.path.exists(done):
            logger.info("round %d (%d -> %d steps): %s is done (%s exists); skipping", r, 2 * k, k, exp_dir, done)
            prev_dir = exp_dir
            continue
        if prev_dir != teacher_exp:  # the previous round's student teaches this round
            teacher = load_model(prev_dir)
        cfg = student_config(loaded_train_config(teacher), pcfg, k)
        if data_overrides:
            cfg.data = dataclasses.replace(cfg.data, **data_overrides)
        meta = {"round": r, "teacher": os.path.abspath(prev_dir), "teacher_steps": 2 * k, "student_steps": k,
                "teacher_step": teacher.step, "config": to_dict(pcfg)}
        os.makedirs(exp_dir, exist_ok=True)
        atomic_write_text(os.path.join(exp_dir, "progressive.yaml"),
                          f"# round {r}: {2 * k} -> {k} steps, teacher {meta['teacher']}\n" + dump_config(pcfg))
        logger.info("round %d: %d -> %d steps, teacher %s -> %s", r, 2 * k, k, prev_dir, exp_dir)
        t0 = time.perf_counter()

        def make_task(cfg_, tl, fc, stats, exp_dir=None, speakers=None, _t=teacher.model, _m=meta):
            return ProgressiveTask(cfg_, tl, fc, stats, exp_dir, teacher=_t, weighting=pcfg.weighting,
                                   freeze_condition=pcfg.freeze_condition, meta=_m, speakers=speakers)

        last = run_training(cfg, exp_dir, progress_bar=progress_bar, make_task=make_task)
        ckpt = read_checkpoint(last)
        atomic_write_json(done, {**meta, "steps_trained": int(ckpt.get("global_step", 0)),
                                 "train_minutes": float(ckpt["speechkd"].get("train_minutes", 0.0)),
                                 "wall_minutes_this_run": (time.perf_counter() - t0) / 60.0, "checkpoint": last})
        logger.info("round %d done: %s", r, json.dumps({"exp": exp_dir, "steps": int(ckpt.get("global_step", 0))}))
        prev_dir = exp_dir
    return outs

"""Diffusion: schedules, DDIM/DDPM samplers, the distillation identity, the denoiser and masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion_fixtures import StandInCondition
from speechkd.models.diffusion_sampling import (NoiseSchedule, ddim_step, ddpm_step, distill_target, q_sample, sample,
                                       sampling_grid)
from speechkd.errors import ConfigError
from speechkd.models.diffusion import DenoiserConfig, DiffusionConfig, DiffusionTTS

SCHEDULES = [NoiseSchedule("vpsde", 0.1, 40.0), NoiseSchedule("cosine")]


def _a_sigma(sched, t: int, n: int, like: torch.Tensor, b: int = 2):
    return sched.a_sigma(torch.full((b,), t / n, dtype=torch.float64), like)


@pytest.mark.parametrize("sched", SCHEDULES, ids=lambda s: s.kind)
@pytest.mark.parametrize("n", [1, 4, 8, 64])
def test_schedule_properties(sched, n):
    tau = torch.arange(n + 1, dtype=torch.float64) / n
    ab = sched.alpha_bar(tau)
    assert ab[0] == pytest.approx(1.0)
    assert torch.all(ab[1:] < ab[:-1])  # strictly decreasing: every step adds noise
    a, s = sched.a_sigma(tau, torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(a ** 2 + s ** 2, torch.ones_like(a))
    assert float(s[-1]) > 0.999  # the last step is (nearly) pure noise
    betas = sched.discrete_betas(n)
    assert torch.all((betas > 0) & (betas <= 1))


def test_vpsde_matches_prodiff_discretisation():
    """ProDiff's vpsde_beta_t(t, T) = 1 - exp(-b_min/T - (b_max - b_min)(2t - 1)/(2T^2)); its cumulative
    product of (1 - beta) on T steps is our alpha_bar(t/T)."""
    for n in (4, 8, 100):
        t = np.arange(1, n + 1)
        betas = 1.0 - np.exp(-0.1 / n - 0.5 * (40.0 - 0.1) * (2 * t - 1) / n ** 2)
        ours = SCHEDULES[0].alpha_bar(torch.arange(1, n + 1, dtype=torch.float64) / n).numpy()
        np.testing.assert_allclose(np.cumprod(1.0 - betas), ours, rtol=1e-10)
        np.testing.assert_allclose(SCHEDULES[0].discrete_betas(n).numpy(), betas, rtol=1e-10)


def test_sampling_grid():
    assert sampling_grid(8, 8) == list(range(8, -1, -1))
    assert sampling_grid(8, 2) == [8, 4, 0]
    assert sampling_grid(8, 1) == [8, 0]
    with pytest.raises(ConfigError, match="must divide 8"):
        sampling_grid(8, 3)


@pytest.mark.parametrize("sched", SCHEDULES, ids=lambda s: s.kind)
@pytest.mark.parametrize("n,k", [(8, 8), (8, 4), (8, 2), (4, 1), (16, 4)])
def test_ddim_with_perfect_predictor_recovers_x0(sched, n, k):
    """With x0^ = x0, DDIM keeps x_s = a_s x0 + sigma_s eps for the same eps at every step and ends
    exactly on x0, from any start t of the grid."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 7, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 7, 3, generator=g, dtype=torch.float64)
    grid = sampling_grid(n, k)
    for start in range(len(grid) - 1):
        sub = grid[start:]
        a, s = _a_sigma(sched, sub[0], n, x0)
        x = q_sample(x0, a, s, eps)
        for t, u in zip(sub[:-1], sub[1:]):
            x = ddim_step(x, x0, *_a_sigma(sched, t, n, x0), *_a_sigma(sched, u, n, x0))
            a_u, s_u = _a_sigma(sched, u, n, x0)
            torch.testing.assert_close(x, a_u * x0 + s_u * eps)
        torch.testing.assert_close(x, x0)
        # the sampler loop does the same
        out = sample(lambda xt, tau: x0, sched, q_sample(x0, a, s, eps), sub, n)
        torch.testing.assert_close(out, x0)


def _teacher(x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """An arbitrary, non-linear, time-dependent x0 predictor (a stand-in for a trained teacher)."""
    return torch.tanh(1.3 * x + 0.7 * tau.view(-1, 1, 1)) - 0.2 * x.roll(1, dims=1)


@pytest.mark.parametrize("sched", SCHEDULES, ids=lambda s: s.kind)
@pytest.mark.parametrize("n", [2, 8, 64])
def test_distillation_target_makes_one_step_equal_two(sched, n):
    """The defining identity: one student DDIM step t -> t'' with x0^ = x~ lands exactly where two
    teacher DDIM steps t -> t' -> t'' land, for every student step, t'' = 0 included."""
    g = torch.Generator().manual_seed(1)
    for j in range(1, n // 2 + 1):  # student step j on the n/2 grid = teacher indices 2j -> 2j-1 -> 2j-2
        t, t1, t2 = 2 * j, 2 * j - 1, 2 * j - 2
        x_t = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
        tau = lambda i: torch.full((3,), i / n, dtype=torch.float64)  # noqa: E731
        x_t1 = ddim_step(x_t, _teacher(x_t, tau(t)), *_a_sigma(sched, t, n, x_t, 3), *_a_sigma(sched, t1, n, x_t, 3))
        if t2 == 0:
            x_t2 = _teacher(x_t1, tau(t1))  # the last DDIM step returns x0^
        else:
            x_t2 = ddim_step(x_t1, _teacher(x_t1, tau(t1)), *_a_sigma(sched, t1, n, x_t, 3),
                             *_a_sigma(sched, t2, n, x_t, 3))
        a_t, s_t = _a_sigma(sched, t, n, x_t, 3)
        a_2, s_2 = _a_sigma(sched, t2, n, x_t, 3)
        target = distill_target(x_t, x_t2, a_t, s_t, a_2, s_2)
        assert torch.isfinite(target).all()
        torch.testing.assert_close(ddim_step(x_t, target, a_t, s_t, a_2, s_2), x_t2, rtol=1e-9, atol=1e-9)
        # and not trivially: the target differs from the teacher's own x0^ at t
        assert (target - _teacher(x_t, tau(t))).abs().max() > 1e-3


def test_ddpm_posterior_matches_ho_et_al_on_adjacent_steps():
    """Between adjacent steps the posterior is Ho et al. 2020 eq. 7: mean coefficients
    sqrt(ab_{t-1}) beta_t / (1 - ab_t) and sqrt(alpha_t)(1 - ab_{t-1}) / (1 - ab_t), variance
    beta_t (1 - ab_{t-1}) / (1 - ab_t)."""
    sched, n, t = SCHEDULES[0], 8, 5
    ab = sched.alpha_bar(torch.arange(n + 1, dtype=torch.float64) / n)
    beta = 1 - ab[t] / ab[t - 1]
    x_t = torch.randn(4000, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x0 = torch.full_like(x_t, 0.5)
    draws = ddpm_step(x_t, x0, *_a_sigma(sched, t, n, x_t, 4000), *_a_sigma(sched, t - 1, n, x_t, 4000),
                       generator=torch.Generator().manual_seed(3))
    mean = (ab[t - 1].sqrt() * beta / (1 - ab[t])) * x0 + ((1 - beta).sqrt() * (1 - ab[t - 1]) / (1 - ab[t])) * x_t
    var = beta * (1 - ab[t - 1]) / (1 - ab[t])
    resid = (draws - mean) / var.sqrt()
    assert abs(float(resid.mean())) < 0.06 and abs(float(resid.std()) - 1) < 0.05


TINY = DiffusionConfig(steps=4, denoiser=DenoiserConfig(residual_layers=3, residual_channels=16, dilation_cycle=2))


def _model(seed: int = 0, cfg: DiffusionConfig = TINY) -> DiffusionTTS:
    torch.manual_seed(seed)
    m = DiffusionTTS(cfg, n_vocab=10, n_mels=6, condition=StandInCondition())
    with torch.no_grad():  # a non-zero output layer, so that masking is actually exercised
        m.denoiser.out_proj.weight.normal_(0, 0.3)
    return m


def _batch():
    tokens = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    token_lens = torch.tensor([4, 2])
    durations = torch.tensor([[2, 1, 3, 2], [3, 2, 0, 0]])
    mel_lens = durations.sum(1)
    mels = torch.randn(2, int(mel_lens.max()), 6) * (torch.arange(8)[None, :, None] < mel_lens[:, None, None])
    return tokens, token_lens, durations, mels, mel_lens


def test_model_forward_losses_backward():
    m = _model()
    tokens, token_lens, durations, mels, mel_lens = _batch()
    out = m(tokens, token_lens, mels, mel_lens, durations=durations)
    loss, logs = m.losses({}, out)
    assert set(logs) >= {"loss", "diff_l1"} and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in m.denoiser.parameters())


def test_padding_never_reaches_real_frames():
    """Utterance 1 alone and padded in a batch (with garbage in its padding) gives the same x0^ and
    the same sampled mel on its real frames."""
    m = _model().eval()
    tokens, token_lens, durations, mels, mel_lens = _batch()
    cond, lens, _ = m.encode(tokens, token_lens, durations=durations)
    mask = torch.arange(cond.size(1))[None] < lens[:, None]
    x = torch.randn(2, cond.size(1), 6)
    x[1, lens[1]:] = 100.0  # padding garbage
    cond = cond.clone()
    cond[1, lens[1]:] = -50.0
    tau = torch.tensor([0.5, 0.5])
    both = m.denoise(x, tau, cond, mask)
    n1 = int(lens[1])
    alone = m.denoise(x[1:, :n1], tau[1:], cond[1:, :n1], mask[1:, :n1])
    torch.testing.assert_close(both[1, :n1], alone[0], rtol=1e-5, atol=1e-6)
    assert both[1, n1:].abs().max() == 0
    s_both = m.sample_mel(cond, mask, x_T=x)
    s_alone = m.sample_mel(cond[1:, :n1], mask[1:, :n1], x_T=x[1:, :n1])
    torch.testing.assert_close(s_both[1, :n1], s_alone[0], rtol=1e-5, atol=1e-6)
    assert s_both[1, n1:].abs().max() == 0


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_inference_steps_and_determinism(sampler):
    m = _model().eval()
    tokens, token_lens, *_ = _batch()
    outs = {}
    for k in (4, 2, 1):
        r1 = m.inference(tokens, token_lens, steps=k, sampler=sampler, generator=torch.Generator().manual_seed(5))
        r2 = m.inference(tokens, token_lens, steps=k, sampler=sampler, generator=torch.Generator().manual_seed(5))
        assert r1["mel"].shape == (2, 12, 6) and r1["mel_lens"].tolist() == [12, 6]
        torch.testing.assert_close(r1["mel"], r2["mel"])  # a seeded generator makes it repeatable
        assert r1["mel"][1, 6:].abs().max() == 0
        outs[k] = r1["mel"]
    assert (outs[4] - outs[1]).abs().max() > 1e-4  # the step count matters
    with pytest.raises(ConfigError, match="must divide"):
        m.inference(tokens, token_lens, steps=3)


def test_set_stats_standardises_and_round_trips():
    m = _model()

    class S:
        mel_mean = np.arange(6, dtype=np.float32)
        mel_std = np.full(6, 2.0, dtype=np.float32)

    m.set_stats(S())
    mel = torch.randn(1, 5, 6) * 2 + torch.arange(6.0)
    torch.testing.assert_close(m.denormalize(m.normalize(mel)), mel)
    m2 = _model(seed=1)
    m2.load_state_dict(m.state_dict())  # the statistics travel in the state dict
    torch.testing.assert_close(m2.mel_loc, torch.arange(6.0))


def _fs2_model(steps: int = 4) -> DiffusionTTS:
    from speechkd.models import get_model_class
    from speechkd.train.config import train_config_from_dict

    cfg = train_config_from_dict({"model": "diffusion", "model_conf": {
        "steps": steps, "denoiser": {"residual_layers": 2, "residual_channels": 8},
        "condition": {"d_model": 16, "n_heads": 2, "enc_layers": 1, "conv_filter": 32, "predictor_channels": 16,
                      "n_bins": 8}}})
    torch.manual_seed(0)
    return get_model_class("diffusion")(cfg.model_conf, n_vocab=10, n_mels=6)


def test_fastspeech2_condition_joint_losses_and_inference():
    """The registered model: FastSpeech 2 condition (no mel decoder), teacher-forced durations/pitch/
    energy in training with its variance losses, predicted ones at inference."""
    m = _fs2_model()
    assert m.condition.decoder is None and m.condition.mel_out is None
    assert m.batch_needs == ("durations", "pitch", "energy")
    tokens, token_lens, durations, mels, mel_lens = _batch()
    batch = {"durations": durations, "pitch": torch.full((2, 4), 5.0), "energy": torch.ones(2, 4),
             "tokens": tokens, "token_lens": token_lens}
    out = m(tokens, token_lens, mels, mel_lens, durations=durations, pitch=batch["pitch"], energy=batch["energy"])
    assert out["cond"].shape == (2, 8, 16)
    loss, logs = m.losses(batch, out)
    assert set(logs) == {"loss", "diff_l1", "duration", "pitch", "energy"}
    loss.backward()
    assert m.condition.encoder.blocks[0].attn.q.weight.grad is not None  # joint training reaches the encoder
    m.eval()
    r = m.inference(tokens, token_lens, steps=2, generator=torch.Generator().manual_seed(0))
    assert r["mel"].shape[0] == 2 and torch.all(r["mel_lens"] >= token_lens)
    fast = m.inference(tokens, token_lens, steps=2, speed=2.0, generator=torch.Generator().manual_seed(0))
    assert torch.all(fast["mel_lens"] <= r["mel_lens"])


def test_global_variance_and_systems_of_the_step_comparison():
    from speechkd.distill.compare import global_variance, systems_of

    x = torch.randn(2, 7, 3, dtype=torch.float64)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    x[1, 4:] = 1e3  # padding ignored
    gv = global_variance(x, mask)
    np.testing.assert_allclose(gv[0].numpy(), x[0].numpy().var(0), rtol=1e-10)
    np.testing.assert_allclose(gv[1].numpy(), x[1, :4].numpy().var(0), rtol=1e-10)
    names = [(s.name, s.steps) for s in systems_of({8: "T", 4: "S4", 2: "S2"})]
    assert names == [("teacher@8", 8), ("teacher@4", 4), ("student@4", 4), ("teacher@2", 2), ("student@2", 2),
                     ("teacher@1", 1)]

"""SE models (every registered one), losses, NyTT pairs, remix targets and the EMA teacher."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from speechkd.enhance.remix import derangement, ema_update, noise_estimate, remix_pairs, remixit_loss
from speechkd.enhance.losses import LossConfig, neg_si_sdr, se_loss
from speechkd.enhance.models import SE_MODELS, build_se_model, num_parameters
from speechkd.enhance.nytt import noisy_target_pair
from speechkd.enhance.subband_gru import band_edges
from speechkd.errors import ConfigError
from speechkd.eval.se_metrics import si_sdr

TINY = {"crn": {"channels": [4, 8], "rnn_hidden": 16}, "subband_gru": {"bands": 24, "full_bins": 8, "hidden": 16}}


pytestmark = pytest.mark.usefixtures("one_thread")


def _snr(s: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(s.pow(2).sum(-1) / n.pow(2).sum(-1))


def test_every_registered_model_has_a_tiny_config():
    assert set(TINY) == set(SE_MODELS)


@pytest.mark.parametrize("name", sorted(SE_MODELS))
def test_forward_backward_save_load(name):
    torch.manual_seed(0)
    model = build_se_model(name, TINY[name])
    y = torch.randn(3, 4000) * 0.1
    out = model(y)
    assert out.shape == y.shape and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    other = build_se_model(name, TINY[name])
    other.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    other.eval()
    with torch.no_grad():
        a, b = model(y), other(y)
        assert torch.equal(a, b)
        # level-equivariant (input normalised inside): f(c·y) = c·f(y)
        torch.testing.assert_close(model(3.0 * y), 3.0 * a, rtol=1e-3, atol=1e-4)
        assert model(y[0]).shape == y[0].shape  # a single waveform works too


def test_default_sizes():
    assert 0.3e6 <= num_parameters(build_se_model("crn")) <= 2e6
    assert 30e3 <= num_parameters(build_se_model("subband_gru")) <= 70e3


def test_unknown_model_and_key():
    with pytest.raises(ConfigError, match="unknown SE model"):
        build_se_model("nope")
    with pytest.raises(ConfigError, match="model_conf.nope"):
        build_se_model("crn", {"nope": 1})


@pytest.mark.parametrize("bands,full", [(64, 32), (24, 8), (100, 90)])
def test_band_edges_cover_every_bin_once(bands, full):
    e = band_edges(257, bands, full)
    assert e[0] == 0 and e[-1] == 257 and len(e) == bands + 1 and np.all(np.diff(e) >= 1)


def test_neg_si_sdr_matches_metric():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 1000))
    est = ref + 0.3 * rng.standard_normal((2, 1000))
    want = -np.mean([si_sdr(e, r) for e, r in zip(est, ref)])
    assert abs(float(neg_si_sdr(torch.from_numpy(est), torch.from_numpy(ref))) - want) < 1e-3


def test_noisy_target_pair_snr():
    y, n = torch.randn(4, 2000), torch.randn(4, 2000) * 5
    snr = torch.tensor([-5.0, 0.0, 2.5, 5.0])
    x, t = noisy_target_pair(y, n, snr)
    assert torch.equal(t, y)
    torch.testing.assert_close(_snr(y, x - y), snr, atol=1e-3, rtol=0)


def test_remix_targets_and_mixture_consistency():
    torch.manual_seed(1)
    y = torch.randn(4, 1000)
    s_hat = 0.7 * y + 0.1 * torch.randn(4, 1000)
    n_hat = noise_estimate(y, s_hat)
    torch.testing.assert_close(s_hat + n_hat, y, rtol=0, atol=1e-6)  # s^ + n^ == y
    perm = torch.from_numpy(derangement(4, np.random.default_rng(0)))
    snr = torch.tensor([-5.0, 0.0, 5.0, 10.0])
    p = remix_pairs("remix_noisy", y, s_hat, perm, snr)
    assert torch.equal(p["target"], y)
    torch.testing.assert_close(p["input"], y + p["noise_target"])
    torch.testing.assert_close(_snr(y, p["noise_target"]), snr, atol=1e-3, rtol=0)
    # the added noise is another utterance's estimate, rescaled
    for i in range(4):
        ratio = p["noise_target"][i] / n_hat[perm[i]]
        assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-4)
    p = remix_pairs("remix_enhanced", y, s_hat, perm, snr)
    assert torch.equal(p["target"], s_hat)
    torch.testing.assert_close(_snr(s_hat, p["input"] - s_hat), snr, atol=1e-3, rtol=0)
    p = remix_pairs("remixit", y, s_hat, perm, None)
    torch.testing.assert_close(p["input"], s_hat + n_hat[perm])  # g = 1
    loss = remixit_loss(p["target"], p["input"], p["target"], p["noise_target"])
    assert loss["loss"] < -100  # a perfect student: both SI-SDRs huge


def test_rehearsal_rows_take_the_extra_noise():
    torch.manual_seed(2)
    y, extra = torch.randn(4, 800), torch.randn(4, 800)
    s_hat = 0.5 * y
    perm = torch.from_numpy(derangement(4, np.random.default_rng(1)))
    snr = torch.tensor([0.0, 3.0, -2.0, 8.0])
    use = torch.tensor([True, False, True, False])
    for mode, base in (("remix_noisy", y), ("remix_enhanced", s_hat)):
        p = remix_pairs(mode, y, s_hat, perm, snr, extra, use)
        torch.testing.assert_close(_snr(base, p["noise_target"]), snr, atol=1e-3, rtol=0)
        for i in range(4):  # rehearsal rows: a rescaled n'; the others: another utterance's n^
            src = extra[i] if use[i] else noise_estimate(y, s_hat)[perm[i]]
            ratio = p["noise_target"][i] / src
            assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-4)
        torch.testing.assert_close(p["input"], base + p["noise_target"])
    with pytest.raises(ValueError, match="rehearsal"):
        remix_pairs("remixit", y, s_hat, perm, None, extra, use)


@pytest.mark.parametrize("n", [2, 3, 8, 17])
def test_derangement(n):
    for seed in range(20):
        perm = derangement(n, np.random.default_rng(seed))
        assert sorted(perm) == list(range(n)) and all(perm[i] != i for i in range(n))


def test_ema_update():
    a, b = build_se_model("subband_gru", TINY["subband_gru"]), build_se_model("subband_gru", TINY["subband_gru"])
    pa = [p.detach().clone() for p in a.parameters()]
    ema_update(a, b, 0.995)
    for old, new, s in zip(pa, a.parameters(), b.parameters()):
        torch.testing.assert_close(new, 0.995 * old + 0.005 * s)


@pytest.mark.parametrize("name", sorted(SE_MODELS))
def test_a_few_steps_reduce_the_loss(name):
    """Noisy-target pairs of a fixed tiny batch: 30 Adam steps lower the loss."""
    torch.manual_seed(0)
    t = torch.arange(4000) / 16000
    y = (0.3 * torch.sin(2 * torch.pi * 220 * t) * torch.sin(2 * torch.pi * 3 * t).clamp(min=0))[None].repeat(2, 1)
    y = y + 0.01 * torch.randn_like(y)
    x, target = noisy_target_pair(y, torch.randn_like(y), torch.tensor([0.0, 3.0]))
    model = build_se_model(name, TINY[name])
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    cfg = LossConfig()
    losses = []
    for _ in range(30):
        loss = se_loss(model(x), target, cfg)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-3:]) < 0.8 * losses[0]

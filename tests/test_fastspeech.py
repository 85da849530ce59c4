"""FastSpeech / FastSpeech 2 students: shapes and masks, length regulator, log-domain durations,
speed/pitch/energy controls, a tiny run that lowers the loss, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speechkd.config import from_dict
from speechkd.errors import ConfigError
from speechkd.features.stats import Stats
from speechkd.models import MODELS, get_model_class
from speechkd.models.fastspeech import FastSpeech, FastSpeechConfig, durations_from_log, length_regulate
from speechkd.models.fastspeech2 import FastSpeech2, FastSpeech2Config

N_VOCAB, N_MELS = 12, 16
TINY = dict(d_model=32, n_heads=2, enc_layers=1, dec_layers=2, conv_filter=64, predictor_channels=32,
            dropout=0.0, predictor_dropout=0.0)


def tiny(name: str = "fastspeech", **kw) -> FastSpeech:
    cls = get_model_class(name)
    torch.manual_seed(0)
    m = cls(cls.Config(**{**TINY, **kw}), N_VOCAB, N_MELS)
    if isinstance(m, FastSpeech2):
        m.set_stats(stats())
    return m


def stats() -> Stats:
    return Stats(mel_mean=np.zeros(N_MELS, np.float32), mel_std=np.ones(N_MELS, np.float32), lf0_mean=5.2,
                 lf0_std=0.1, lf0_min=4.3, lf0_max=5.7, energy_mean=60.0, energy_std=45.0, energy_min=0.0,
                 energy_max=270.0, num_utts=1, num_frames=1, num_voiced=1)


def batch(durs=((2, 1, 3, 1, 2, 1, 1), (3, 3, 1, 2), (1, 1, 4, 2, 2))) -> dict:
    g = torch.Generator().manual_seed(1)
    s = max(len(d) for d in durs)
    lens = [sum(d) for d in durs]
    tokens = torch.zeros(len(durs), s, dtype=torch.long)
    d = torch.zeros(len(durs), s, dtype=torch.long)
    mels = torch.zeros(len(durs), max(lens), N_MELS)
    pitch, energy = torch.zeros(len(durs), s), torch.zeros(len(durs), s)
    for b, db in enumerate(durs):
        tokens[b, :len(db)] = torch.randint(3, N_VOCAB, (len(db),), generator=g)
        d[b, :len(db)] = torch.tensor(db)
        mels[b, :lens[b]] = torch.randn(lens[b], N_MELS, generator=g)
        pitch[b, :len(db)] = 5.2 + 0.1 * torch.randn(len(db), generator=g)
        energy[b, :len(db)] = 60 + 40 * torch.rand(len(db), generator=g)
    return {"utts": [f"u{b}" for b in range(len(durs))], "tokens": tokens,
            "token_lens": torch.tensor([len(x) for x in durs]), "mels": mels, "mel_lens": torch.tensor(lens),
            "durations": d, "pitch": pitch, "energy": energy}


def run(m: FastSpeech, b: dict) -> dict:
    return m(b["tokens"], b["token_lens"], b["mels"], b["mel_lens"], **{k: b[k] for k in m.batch_needs})


def test_registry():
    assert MODELS["fastspeech"] is FastSpeech and MODELS["fastspeech2"] is FastSpeech2
    assert FastSpeech2.batch_needs == ("durations", "pitch", "energy") and FastSpeech.batch_needs == ("durations",)


@pytest.mark.parametrize("name", ["fastspeech", "fastspeech2"])
def test_forward_backward_shapes_and_masks(name):
    m, b = tiny(name, postnet_layers=2, postnet_channels=16), batch()
    out = run(m, b)
    assert out["mel_after"].shape == (3, 11, N_MELS) and out["log_durations"].shape == (3, 7)
    assert out["frame_mask"].sum(1).tolist() == [11, 9, 10]
    assert float(out["mel_after"][1, 9:].detach().abs().max()) == 0.0  # zero past each length
    assert float(out["log_durations"][1, 4:].detach().abs().max()) == 0.0
    loss, logs = m.losses(b, out)
    want = {"mel", "duration", "loss"} | ({"pitch", "energy"} if name == "fastspeech2" else set())
    assert set(logs) == want and torch.isfinite(loss)
    loss.backward()
    assert not [n for n, p in m.named_parameters() if p.grad is None]


@pytest.mark.parametrize("name", ["fastspeech", "fastspeech2"])
def test_padding_does_not_change_an_utterance(name):
    m, b = tiny(name, postnet_layers=2, postnet_channels=16).eval(), batch()
    full = run(m, b)["mel_after"]
    one = {k: (v[1:2] if torch.is_tensor(v) else v[1:2]) for k, v in b.items()}
    one.update(tokens=one["tokens"][:, :4], durations=one["durations"][:, :4], pitch=one["pitch"][:, :4],
               energy=one["energy"][:, :4], mels=one["mels"][:, :9])
    alone = run(m, one)["mel_after"]
    assert torch.allclose(full[1:2, :9], alone, atol=1e-5)


def test_length_regulator_properties():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        b, s, dim = 3, int(torch.randint(1, 9, (1,), generator=g)), 4
        d = torch.randint(0, 5, (b, s), generator=g)
        h = torch.randn(b, s, dim, generator=g)
        out, lens = length_regulate(h, d)
        assert lens.tolist() == d.sum(1).tolist() and out.size(1) == int(d.sum(1).max())
        for i in range(b):  # frame t is a copy of the token whose cumulative duration first exceeds t
            ref = torch.repeat_interleave(h[i], d[i], dim=0)
            assert torch.equal(out[i, : lens[i]], ref)
            assert float(out[i, lens[i]:].abs().sum()) == 0.0


def test_durations_log_domain_and_speed():
    d = torch.tensor([[1, 4, 9, 20, 0]])
    mask = torch.tensor([[True, True, True, True, False]])
    log_d = torch.log(d.float() + 1.0) * mask
    assert durations_from_log(log_d, mask).tolist() == [[1, 4, 9, 20, 0]]  # exp(log(d+1)) - 1 = d
    assert durations_from_log(log_d, mask, speed=2.0).tolist() == [[1, 2, 4, 10, 0]]  # round(d/2), >= 1
    assert durations_from_log(log_d, mask, speed=0.5).tolist() == [[2, 8, 18, 40, 0]]
    assert durations_from_log(log_d - 10, mask).tolist() == [[1, 1, 1, 1, 0]]  # every token >= 1 frame
    assert durations_from_log(log_d + 10, mask, max_frames=50).max() == 50
    with pytest.raises(ValueError, match="speed"):
        durations_from_log(log_d, mask, speed=0.0)


def test_duration_loss_is_mse_on_log_d_plus_one():
    m, b = tiny(), batch()
    out = run(m, b)
    _, logs = m.losses(b, out)
    tm = b["durations"] > 0
    ref = ((out["log_durations"] - torch.log(b["durations"].float() + 1))[tm] ** 2).mean()
    assert torch.allclose(logs["duration"], ref)


@pytest.mark.parametrize("name", ["fastspeech", "fastspeech2"])
def test_inference_speed(name):
    m, b = tiny(name).eval(), batch()
    with torch.no_grad():  # bias the duration predictor to ~6 frames per token so that speed is visible
        m.duration_predictor.out.bias.fill_(math.log(7.0))
    r1 = m.inference(b["tokens"], b["token_lens"])
    r2 = m.inference(b["tokens"], b["token_lens"], speed=2.0)
    assert r1["mel"].shape[:2] == (3, int(r1["mel_lens"].max())) and r1["mel"].shape[2] == N_MELS
    assert r1["mel_lens"].tolist() == r1["durations"].sum(1).tolist()
    assert (r1["durations"][1, 4:] == 0).all() and (r1["durations"][1, :4] >= 1).all()
    ratio = r2["mel_lens"].float() / r1["mel_lens"].float()
    assert ((ratio > 0.4) & (ratio < 0.6)).all(), ratio
    fixed = m.inference(b["tokens"], b["token_lens"], durations=b["durations"], speed=2.0)
    assert fixed["mel_lens"].tolist() == b["mel_lens"].tolist()  # given durations are used as is


def test_fastspeech_has_no_pitch_control():
    m, b = tiny().eval(), batch()
    with pytest.raises(ValueError, match="pitch_scale"):
        m.inference(b["tokens"], b["token_lens"], pitch_scale=1.5)


def test_fastspeech2_pitch_and_energy_scales():
    m, b = tiny("fastspeech2").eval(), batch()
    base = m.inference(b["tokens"], b["token_lens"])
    up = m.inference(b["tokens"], b["token_lens"], pitch_scale=2.0)
    loud = m.inference(b["tokens"], b["token_lens"], energy_scale=1.5)
    tm = b["durations"] > 0
    # pitch: F0 x 2 in Hz = + log 2 in log-F0; energy x 1.5 (denormalised, linear, >= 0)
    assert torch.allclose((up["pitch_used"] - base["pitch_used"])[tm], torch.full((int(tm.sum()),), math.log(2.0)),
                          atol=1e-4)
    assert torch.allclose(loud["energy_used"][tm], 1.5 * base["energy_used"][tm], rtol=1e-4)
    assert (base["energy_used"][tm] >= 0).all() and torch.equal(loud["pitch_used"], base["pitch_used"])
    down = m.inference(b["tokens"], b["token_lens"], pitch_scale=0.5)
    assert (down["pitch_used"][tm] < base["pitch_used"][tm]).all()
    assert not torch.allclose(up["mel"], base["mel"])  # the embeddings reach the decoder
    # given targets replace the predictions
    given = m.inference(b["tokens"], b["token_lens"], durations=b["durations"], pitch=b["pitch"])
    assert torch.allclose(given["pitch_used"][tm], b["pitch"][tm], atol=1e-5)


def test_encode_condition_interface():
    m, b = tiny("fastspeech2"), batch()
    h, lens, pred = m.encode_condition(b["tokens"], b["token_lens"], b["durations"], b["pitch"], b["energy"])
    assert h.shape == (3, 11, 32) and lens.tolist() == [11, 9, 10]
    assert {"log_durations", "durations", "token_mask", "pitch", "energy"} <= set(pred)
    h2, lens2, pred2 = m.encode_condition(b["tokens"], b["token_lens"])  # predicted durations
    assert h2.shape == (3, int(lens2.max()), 32) and lens2.tolist() == pred2["durations"].sum(1).tolist()
    assert (lens2 >= b["token_lens"]).all()


@pytest.mark.parametrize("name", ["fastspeech", "fastspeech2"])
def test_tiny_training_lowers_the_loss(name):
    m, b = tiny(name), batch()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss, _ = m.losses(b, run(m, b))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_bad_inputs():
    m, b = tiny(), batch()
    bad = dict(b, mel_lens=b["mel_lens"] + 1)
    with pytest.raises(ValueError, match="durations sum to"):
        run(m, bad)
    with pytest.raises(ConfigError, match="divisible"):
        from_dict(FastSpeechConfig, {"d_model": 30, "n_heads": 4})
    with pytest.raises(ConfigError, match="odd"):
        from_dict(FastSpeechConfig, {"conv_kernel": 4})
    with pytest.raises(ConfigError, match="n_bins"):
        from_dict(FastSpeech2Config, {"n_bins": 1})
    with pytest.raises(ValueError, match="pitch_scale"):
        tiny("fastspeech2").eval().inference(b["tokens"], b["token_lens"], pitch_scale=0.0)

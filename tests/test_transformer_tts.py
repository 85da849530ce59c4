"""Transformer-TTS teacher: shapes, losses, guided attention, cached == uncached decoding, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speechkd.models import MODELS, get_model_class
from speechkd.models.transformer_tts import (TransformerTTS, TransformerTTSConfig, expand_to_frames,
                                             guided_attention_weights)
from speechkd.train.module import noam_factor

N_VOCAB, N_MELS = 12, 16


def tiny(**kw) -> TransformerTTS:
    cfg = TransformerTTSConfig(**{**dict(d_model=32, n_heads=2, enc_layers=1, dec_layers=2, d_ff=64,
                                         enc_prenet_layers=1, dec_prenet_dim=32, postnet_layers=2,
                                         postnet_channels=32, reduction_factor=3), **kw})
    torch.manual_seed(0)
    return TransformerTTS(cfg, N_VOCAB, N_MELS)


def batch(lens=((7, 20), (4, 11), (5, 13))) -> dict:
    g = torch.Generator().manual_seed(1)
    s, t = max(x for x, _ in lens), max(y for _, y in lens)
    tokens = torch.zeros(len(lens), s, dtype=torch.long)
    mels = torch.zeros(len(lens), t, N_MELS)
    for b, (sb, tb) in enumerate(lens):
        tokens[b, :sb] = torch.randint(3, N_VOCAB, (sb,), generator=g)
        mels[b, :tb] = torch.randn(tb, N_MELS, generator=g)
    return {"utts": [f"u{b}" for b in range(len(lens))], "tokens": tokens,
            "token_lens": torch.tensor([x for x, _ in lens]), "mels": mels,
            "mel_lens": torch.tensor([y for _, y in lens])}


def test_registry():
    assert MODELS["transformer_tts"] is TransformerTTS and get_model_class("transformer_tts").Config
    with pytest.raises(Exception, match="unknown model 'nope'"):
        get_model_class("nope")


def test_forward_backward_shapes_and_losses():
    m, b = tiny(), batch()
    out = m(b["tokens"], b["token_lens"], b["mels"], b["mel_lens"])
    steps = math.ceil(20 / 3)
    assert out["mel_after"].shape == (3, steps * 3, N_MELS) and out["stop_logits"].shape == (3, steps * 3)
    assert len(out["attns"]) == 2 and out["attns"][0].shape == (3, 2, steps, 7)
    assert out["reduced_lens"].tolist() == [7, 4, 5]
    # attention rows are distributions over the real tokens only
    a = out["attns"][1]
    assert torch.allclose(a.sum(-1), torch.ones_like(a.sum(-1)), atol=1e-5)
    assert float(a[1, :, :, 4:].detach().abs().max()) == 0.0
    loss, logs = m.losses(b, out, step=0)
    assert set(logs) >= {"l1", "l2", "stop_bce", "guided_attn", "loss"} and torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize("ff_kernel", [1, 3])
def test_padding_does_not_change_an_utterance(ff_kernel):
    m = tiny(dec_prenet_dropout=0.0, ff_kernel=ff_kernel).eval()
    b = batch()
    full = m(b["tokens"], b["token_lens"], b["mels"], b["mel_lens"])
    one = m(b["tokens"][1:2, :4], b["token_lens"][1:2], b["mels"][1:2, :11], b["mel_lens"][1:2])
    assert torch.allclose(full["mel_after"][1, :11], one["mel_after"][0, :11], atol=1e-5)
    assert torch.allclose(full["attns"][0][1, :, :4, :4], one["attns"][0][0, :, :4, :4], atol=1e-6)


def test_guided_attention_weight_matrix():
    w = guided_attention_weights(torch.tensor([4]), torch.tensor([8]), sigma=0.2, max_text=5, max_frames=10)[0]
    assert w.shape == (10, 5)  # frames x tokens
    # W[n, t] = 1 - exp(-(n/N - t/T)^2 / (2 g^2)), 0-based n, t (Tachibana et al. 2018, eq. 8)
    for t, n in ((0, 0), (4, 2), (7, 0), (2, 3)):
        expect = 1 - math.exp(-((n / 4 - t / 8) ** 2) / (2 * 0.2 ** 2))
        assert float(w[t, n]) == pytest.approx(expect, abs=1e-6)
    assert float(w[0, 0]) == 0.0 and float(w[4, 2]) == 0.0  # on the diagonal
    assert float(w[7, 0]) > 0.99  # far from it
    assert float(w[8:].abs().sum()) == 0.0 and float(w[:, 4].abs().sum()) == 0.0  # padding


def test_guided_attention_loss_prefers_the_diagonal():
    m = tiny(dec_layers=1)
    s, t = 6, 12
    diag = torch.zeros(1, 2, t, s)
    anti = torch.zeros(1, 2, t, s)
    for j in range(t):
        diag[0, :, j, j * s // t] = 1.0
        anti[0, :, j, s - 1 - j * s // t] = 1.0
    lens, steps = torch.tensor([s]), torch.tensor([t])
    assert float(m.guided_attention_loss([diag], lens, steps)) < 0.05
    assert float(m.guided_attention_loss([anti], lens, steps)) > 0.5
    uniform = torch.full((1, 2, t, s), 1.0 / s)
    w = guided_attention_weights(lens, steps, 0.2)
    assert float(m.guided_attention_loss([uniform], lens, steps)) == pytest.approx(float(w.sum()) / (s * t), rel=1e-5)


def test_guided_attention_fades():
    m = tiny(guided_attn_weight=2.0, guided_attn_fade_start=100, guided_attn_fade_half_life=50)
    assert m.guided_attn_scale(0) == 2.0 and m.guided_attn_scale(100) == 2.0
    assert m.guided_attn_scale(150) == pytest.approx(1.0) and m.guided_attn_scale(200) == pytest.approx(0.5)


@pytest.mark.parametrize("r,ff_kernel", [(1, 1), (3, 1), (1, 3), (3, 5)])
def test_cached_and_uncached_decoding_agree(r, ff_kernel):
    """ff_kernel > 1 (FastSpeech's teacher): the cache keeps each layer's last k FFN inputs."""
    m = tiny(stop_threshold=1.1, reduction_factor=r, ff_kernel=ff_kernel).eval()  # never stops: decode to the maximum length
    b = batch()  # ragged: 7, 4, 5 tokens (the padding mask matters)
    outs = []
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(123)  # same prenet dropout masks in both
        outs.append(m.inference(b["tokens"], b["token_lens"], use_cache=use_cache, generator=g,
                                max_frames_per_token=3.0))
    a, u = outs
    assert a["mel_lens"].tolist() == [21, 12, 15] and not a["stopped"].any()
    assert torch.equal(a["mel_lens"], u["mel_lens"])
    assert torch.allclose(a["mel"], u["mel"], atol=1e-5), float((a["mel"] - u["mel"]).abs().max())
    assert a["attns"][0].shape == (3, 2, math.ceil(21 / r), 7)
    for x, y in zip(a["attns"], u["attns"]):
        assert torch.allclose(x, y, atol=1e-6)
        assert float(x[1, :, :, 4:].abs().max()) == 0.0  # no weight on padding tokens
    # another seed gives other dropout masks, hence another output (the test can fail)
    g = torch.Generator().manual_seed(7)
    c = m.inference(b["tokens"], b["token_lens"], generator=g, max_frames_per_token=3.0)
    assert not torch.allclose(a["mel"], c["mel"], atol=1e-3)


@pytest.mark.parametrize("r", [1, 3])
def test_cached_and_uncached_stop_at_the_same_frames(r):
    """Utterances stop at different steps: both modes agree on every length and frame."""
    m = tiny(reduction_factor=r).eval()
    b = batch()
    with torch.no_grad():  # stop logit grows with the frame's first mel value: stops vary per utterance
        m.stop_out.bias.fill_(-1.0)
        m.stop_out.weight.normal_(0, 1.0)
    outs = [m.inference(b["tokens"], b["token_lens"], use_cache=uc, generator=torch.Generator().manual_seed(3),
                        max_frames_per_token=6.0) for uc in (True, False)]
    a, u = outs
    assert torch.equal(a["mel_lens"], u["mel_lens"]) and torch.equal(a["stopped"], u["stopped"])
    assert a["stopped"].any() and len(set(a["mel_lens"].tolist())) > 1, a["mel_lens"]
    assert torch.allclose(a["mel"], u["mel"], atol=1e-5)
    assert (a["mel_lens"] <= torch.tensor([42, 24, 30])).all()


def test_cached_decoding_needs_eval_mode():
    m = tiny()
    b = batch()
    with pytest.raises(RuntimeError, match="eval"):
        m.inference(b["tokens"], b["token_lens"])


def test_inference_stop_token_and_length_limits():
    m = tiny().eval()
    b = batch()
    with torch.no_grad():
        m.stop_out.bias.fill_(20.0)  # stops as soon as allowed: min_frames_per_token=1 -> S frames
    out = m.inference(b["tokens"], b["token_lens"], max_frames_per_token=4.0)
    assert out["mel_lens"].tolist() == [7, 4, 5] and out["stopped"].all()
    assert float(out["mel"][1, 4:].abs().sum()) == 0.0  # zero past each length
    with torch.no_grad():
        m.stop_out.bias.fill_(-20.0)  # never stops: flagged, cut at the maximum
    out = m.inference(b["tokens"], b["token_lens"], max_frames_per_token=2.0)
    assert out["mel_lens"].tolist() == [14, 8, 10] and not out["stopped"].any()
    assert out["attns"][0].shape[2] == math.ceil(14 / 3)


def test_save_load_roundtrip(tmp_path):
    m = tiny()
    torch.save(m.state_dict(), tmp_path / "m.pt")
    m2 = tiny(dec_prenet_dropout=0.5)
    torch.manual_seed(99)
    for p in m2.parameters():
        p.data.normal_()
    m2.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    b = batch()
    m.eval(), m2.eval()
    o1 = m(b["tokens"], b["token_lens"], b["mels"], b["mel_lens"], generator=torch.Generator().manual_seed(0))
    o2 = m2(b["tokens"], b["token_lens"], b["mels"], b["mel_lens"], generator=torch.Generator().manual_seed(0))
    assert torch.equal(o1["mel_after"], o2["mel_after"])


def test_expand_to_frames_and_noam():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)  # 2 tokens x 3 decoder steps
    e = expand_to_frames(a, 3, 8)
    assert e.shape == (2, 8) and e[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert noam_factor(0, 10) == pytest.approx(0.1) and noam_factor(9, 10) == 1.0
    assert noam_factor(39, 10) == pytest.approx(0.5) and noam_factor(39, 10, "constant") == 1.0


def test_conv_ffn_decoder_is_causal():
    """With ff_kernel 3 a decoder frame depends on no later frame (teacher forcing = free running)."""
    m = tiny(ff_kernel=3, dec_prenet_dropout=0.0, reduction_factor=1).eval()
    b = batch()
    mels = b["mels"].clone()
    out = m(b["tokens"], b["token_lens"], mels, b["mel_lens"])["mel_before"]
    mels[:, 10:] += 5.0  # frames >= 10 feed decoder steps >= 11
    out2 = m(b["tokens"], b["token_lens"], mels, b["mel_lens"])["mel_before"]
    assert torch.allclose(out[:, :11], out2[:, :11], atol=1e-6)
    assert not torch.allclose(out[:, 11:], out2[:, 11:], atol=1e-3)


def test_ff_kernel_must_be_odd():
    with pytest.raises(ValueError, match="ff_kernel"):
        TransformerTTSConfig(ff_kernel=2)

"""Focus rate, head selection, durations from attention (MAS and ESPnet argmax), and duration repair."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speechkd.align import (durations_from_attention, durations_to_path, fix_durations, focus_rate,
                            path_to_durations, select_head)
from speechkd.align.durations import shift_durations
from speechkd.errors import SpeechkdError


def soft_diagonal(d, sharpness: float = 4.0, seed: int = 0) -> np.ndarray:
    """Attention [S, T] (softmax over tokens per frame) peaked on the alignment of durations d."""
    d = np.asarray(d)
    tokens = np.repeat(np.arange(len(d)), d)
    logits = np.random.default_rng(seed).standard_normal((len(d), d.sum()))
    logits[tokens, np.arange(d.sum())] += sharpness
    e = np.exp(logits - logits.max(0))
    return e / e.sum(0)


def test_focus_rate_definition():
    hard = durations_to_path([2, 3, 1]).astype(float)
    assert focus_rate(hard) == 1.0
    assert focus_rate(np.full((4, 10), 0.25)) == pytest.approx(0.25)   # uniform over S tokens: 1/S
    a = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.5]])
    assert focus_rate(a) == pytest.approx((0.9 + 0.8 + 0.5) / 3)       # mean over frames of max over tokens
    padded = np.zeros((3, 5))
    padded[:2, :3] = a
    assert focus_rate(padded, text_len=2, frame_len=3) == pytest.approx(focus_rate(a))
    stack = np.stack([np.stack([a, hard[:2, :3]])] * 3)                 # [L=3, H=2, S, T]
    assert focus_rate(stack).shape == (3, 2)
    assert focus_rate(torch.tensor(a)) == pytest.approx(focus_rate(a))


def test_select_head_over_layers_and_heads():
    d = [3, 2, 4]
    blurry, sharp = soft_diagonal(d, 0.5), soft_diagonal(d, 6.0)
    layers = [np.stack([blurry, blurry]), np.stack([blurry, sharp, blurry])]
    layer, head, rate = select_head(layers)
    assert (layer, head) == (1, 1) and rate == pytest.approx(focus_rate(sharp))
    assert select_head(np.stack([np.stack([sharp, sharp])] * 2))[:2] == (0, 0)   # ties: lowest index
    with pytest.raises(SpeechkdError):
        select_head([])


@pytest.mark.parametrize("method", ["mas", "argmax"])
def test_durations_recovered_from_sharp_attention(method):
    d = [3, 1, 4, 2, 5]
    assert durations_from_attention(soft_diagonal(d, 8.0), method=method).tolist() == d


def test_argmax_gives_zeros_mas_does_not():
    a = soft_diagonal([3, 3, 3], 8.0)
    a[1] = 0.0            # token 1 never attended: argmax skips it (ESPnet behaviour)
    a /= a.sum(0)
    assert durations_from_attention(a, method="argmax").tolist()[1] == 0
    fixed = durations_from_attention(a, method="argmax", fix_zeros=True)
    assert fixed.sum() == 9 and (fixed >= 1).all()
    mas = durations_from_attention(a, method="mas")
    assert mas.sum() == 9 and (mas >= 1).all()


def test_durations_use_lengths_and_reject_impossible_cases():
    a = np.zeros((6, 12))
    a[:4, :10] = soft_diagonal([2, 3, 1, 4])
    assert durations_from_attention(a, text_len=4, frame_len=10).tolist() == [2, 3, 1, 4]
    with pytest.raises(SpeechkdError, match="5 tokens but only 3 frames"):
        durations_from_attention(np.full((5, 3), 0.2))
    with pytest.raises(SpeechkdError, match="unknown duration method"):
        durations_from_attention(a, method="viterbi")
    with pytest.raises(SpeechkdError, match="outside the attention matrix"):
        durations_from_attention(a, text_len=7)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-3, 40), min_size=1, max_size=30), st.integers(0, 600))
def test_fix_durations_properties(d, extra):
    target = len(d) + extra
    fixed = fix_durations(d, target)
    assert fixed.sum() == target and (fixed >= 1).all() and len(fixed) == len(d)
    assert fix_durations(fixed, target).tolist() == fixed.tolist()     # valid input is left alone


def test_fix_durations_examples():
    assert fix_durations([2, 0, 3], 5).tolist() == [2, 1, 2]     # nearest donor with >= 2; tie: the longer one
    assert fix_durations([3, 0, 0, 2], 5).tolist() == [2, 1, 1, 1]
    assert fix_durations([3, 3, 3], 10).tolist() == [4, 3, 3]    # largest remainder, ties to lower index
    assert fix_durations([1, 5], 4).tolist() == [1, 3]
    assert fix_durations([0, 0, 0], 4).tolist() == [2, 1, 1]
    with pytest.raises(SpeechkdError, match="4 tokens cannot each get >= 1 of 3 frames"):
        fix_durations([1, 1, 1, 1], 3)


def test_path_duration_round_trip():
    d = np.array([1, 4, 2])
    p = durations_to_path(d, frame_len=9)
    assert p.shape == (3, 9) and p[:, 7:].sum() == 0
    assert path_to_durations(p).tolist() == d.tolist()
    assert path_to_durations(np.stack([p, p])).shape == (2, 3)
    with pytest.raises(SpeechkdError):
        durations_to_path(d, frame_len=5)


@pytest.mark.parametrize("k", [-7, -2, -1, 0, 1, 3, 50])
def test_shift_durations_properties(k):
    rng = np.random.default_rng(abs(k))
    for _ in range(20):
        d = rng.integers(1, 9, size=rng.integers(1, 12))
        s = shift_durations(d, k)
        assert s.sum() == d.sum() and s.min() >= 1 and len(s) == len(d)
        c, cs = np.cumsum(d)[:-1], np.cumsum(s)[:-1]
        # each boundary moves by k, or less where the edge of the utterance leaves no room
        room = (c + k >= np.arange(1, len(d))) & (c + k <= d.sum() - len(d) + np.arange(1, len(d)))
        assert (cs[room] == c[room] + k).all() and (np.abs(cs - c) <= abs(k)).all()
    assert shift_durations([3, 4, 5], 0).tolist() == [3, 4, 5]
    assert shift_durations([3, 4, 5], -1).tolist() == [2, 4, 6] and shift_durations([3, 4, 5], 2).tolist() == [5, 4, 3]
    assert shift_durations([1, 1, 10], -3).tolist() == [1, 1, 10]
    assert shift_durations([2, 2, 2], 9).tolist() == [4, 1, 1]
    with pytest.raises(SpeechkdError, match=">= 1 frame per token"):
        shift_durations([2, 0, 3], 1)

"""Acoustic refinement of attention durations (speechkd.align.refine): on synthetic utterances
whose frames are noisy copies of a per-phone spectrum, a blurred, shifted attention is pulled back
to the true boundaries, durations stay valid, and 0 iterations change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from speechkd.align.durations import durations_to_path
from speechkd.align.refine import RefineConfig, RefineItem, log_likelihood, refine_durations, type_means


def _corpus(n_utts: int = 12, seed: int = 0, shift: int = 3):
    rng = np.random.default_rng(seed)
    spectra = rng.normal(size=(6, 20)) * 2.0  # 6 phone types, 20 "mel bands"
    items, truth = [], []
    for u in range(n_utts):
        ids = rng.integers(0, 6, size=8)
        d = rng.integers(3, 10, size=8)
        t = int(d.sum())
        x = spectra[np.repeat(ids, d)] + rng.normal(size=(t, 20)) * 0.5
        # the "teacher": the true path moved by `shift` frames and blurred over 5 frames
        c = np.cumsum(d)[:-1]
        wrong = np.diff(np.concatenate([[0], np.clip(c + shift, 1, t - 1), [t]]))
        wrong = np.maximum(wrong, 1)
        wrong[-1] = t - wrong[:-1].sum()
        attn = durations_to_path(wrong, t).astype(np.float32)
        attn = np.stack([np.convolve(a, np.ones(5) / 5, mode="same") for a in attn])
        attn /= attn.sum(0, keepdims=True)
        items.append(RefineItem(f"u{u}", ids, attn, x.astype(np.float32), wrong))
        truth.append(d)
    return items, truth


def _err(durs, truth):
    return np.mean(np.concatenate([np.abs(np.cumsum(a) - np.cumsum(b))[:-1] for a, b in zip(durs, truth)]))


def test_refinement_recovers_boundaries():
    items, truth = _corpus()
    before = _err([it.durations for it in items], truth)
    durs, hist = refine_durations(items, RefineConfig(iters=8))
    after = _err(durs, truth)
    assert before >= 2.5 and after < 0.5 * before, (before, after)
    for it, d in zip(items, durs):
        assert d.sum() == it.mel.shape[0] and d.min() >= 1 and len(d) == len(it.token_ids)
    assert hist and hist[0]["tokens_changed"] > 0
    assert all(0.0 <= h["tokens_changed"] <= 1.0 for h in hist)


def test_zero_iterations_and_bad_items():
    items, _ = _corpus(n_utts=2)
    durs, hist = refine_durations(items, RefineConfig(iters=0))
    assert hist == [] and all((a == it.durations).all() for a, it in zip(durs, items))
    bad = RefineItem("bad", items[0].token_ids, items[0].attn, items[0].mel[:-1], items[0].durations)
    with pytest.raises(ValueError, match="bad"):
        refine_durations([bad], RefineConfig(iters=1))


def test_likelihood_and_means():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0]], dtype=np.float32)
    mu = type_means([np.array([0, 1])], [x], [np.array([1, 2])], 3)
    assert mu[0].tolist() == [0.0, 0.0] and mu[1].tolist() == [2.0, 1.0] and mu[2].tolist() == [0.0, 0.0]
    ll = log_likelihood(x, mu[:2])
    assert ll.shape == (2, 3) and np.allclose(ll[0], [0.0, -1.0, -2.0]) and np.isclose(ll[1, 1], -0.25)

"""Acoustic refinement of attention durations: Viterbi re-estimation anchored by the attention.

A teacher's encoder-decoder attention places each token roughly (``speechkd eval durations``
against flite's own timings) but not at the frame where the spectrum
changes. The refinement treats each token *type* k (a phone, ``<space>``, ...) as one Gaussian
over standardised mel frames with mean mu_k and unit variance, and alternates over the whole
corpus (segmental k-means, i.e. the hard-EM training of a one-state-per-phone HMM, as in the
monophone pass of a forced aligner):

    M-step: mu_k = mean of the frames currently assigned to tokens of type k (all utterances)
    E-step: d = MAS( alpha * log a[n, t]  +  beta * log N(x_t; mu_{k(n)}, I) / D )       (per utterance)

with a[n, t] the attention expanded to frames (the prior that keeps each token near where the
teacher put it), x_t the standardised log-mel of frame t, D the number of mel bands and MAS the
monotonic alignment search of :mod:`speechkd.align.mas` (every token >= 1 frame, durations sum
to T). Initialised with the attention-only durations. The per-utterance means of a single
utterance are not enough (a segmentation is always its own local optimum); the corpus-level type
means are what move the boundaries. The boundary errors before and after refinement are
measured in egs/mini_en/tts1/RESULTS.md, "Alignment and duration accuracy".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from speechkd.align.mas import maximum_path
from speechkd.config import field

logger = logging.getLogger(__name__)


@dataclass
class RefineConfig:
    """Weights and iterations of the refinement (defaults: tuned on the demo teacher's dump)."""

    iters: int = field(20, help="M/E iterations (0: attention durations unchanged)")
    attn_weight: float = field(0.1, help="alpha: weight of log attention (the teacher's prior)")
    acoustic_weight: float = field(10.0, help="beta: weight of the per-frame Gaussian log-likelihood / n_mels")
    attn_floor: float = field(1e-4, help="added to the attention before the log")


@dataclass
class RefineItem:
    """One utterance: token type ids [S], attention over frames [S, T], mel [T, D], initial durations [S]."""

    utt: str
    token_ids: np.ndarray
    attn: np.ndarray
    mel: np.ndarray
    durations: np.ndarray


def _standardise(items: list[RefineItem]) -> list[np.ndarray]:
    allx = np.concatenate([it.mel for it in items]).astype(np.float64)
    mean, std = allx.mean(0), allx.std(0) + 1e-3
    return [((it.mel - mean) / std).astype(np.float32) for it in items]


def type_means(token_ids: list[np.ndarray], xs: list[np.ndarray], durations: list[np.ndarray],
               n_types: int) -> np.ndarray:
    """M-step: mean standardised frame of every token type under the current durations ``[K, D]``
    (types never seen: 0, the global mean)."""
    d_dim = xs[0].shape[1]
    sums, counts = np.zeros((n_types, d_dim)), np.zeros(n_types)
    for ids, x, d in zip(token_ids, xs, durations):
        seg = np.repeat(np.arange(len(d)), d)  # token index of every frame
        np.add.at(sums, ids[seg], x)
        np.add.at(counts, ids, d)
    return sums / np.maximum(counts, 1.0)[:, None]


def log_likelihood(x: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``[S, T]``: log N(x_t; mu_n, I) / D up to a constant, = -||x_t - mu_n||^2 / (2 D)."""
    d2 = (mu ** 2).sum(1)[:, None] - 2.0 * mu @ x.T + (x ** 2).sum(1)[None, :]
    return -0.5 * d2 / x.shape[1]


def refine_durations(items: list[RefineItem], cfg: RefineConfig, backend: str = "auto"
                     ) -> tuple[list[np.ndarray], list[dict]]:
    """Refined durations of every item (same order) and per-iteration statistics
    (mean absolute change of the boundaries in frames, fraction of tokens changed)."""
    durations = [np.asarray(it.durations, dtype=np.int64) for it in items]
    if cfg.iters <= 0 or not items:
        return durations, []
    for it, d in zip(items, durations):
        s, t = it.attn.shape
        if len(it.token_ids) != s or it.mel.shape[0] != t or int(d.sum()) != t or s > t:
            raise ValueError(f"{it.utt}: {len(it.token_ids)} tokens, attention {it.attn.shape}, "
                             f"mel {it.mel.shape}, durations sum {int(d.sum())}")
    xs = _standardise(items)
    ids = [np.asarray(it.token_ids, dtype=np.int64) for it in items]
    n_types = int(max(int(i.max()) for i in ids)) + 1
    log_attn = [np.log(it.attn.astype(np.float32) + cfg.attn_floor) for it in items]
    history = []
    for k in range(cfg.iters):
        mu = type_means(ids, xs, durations, n_types)
        new = []
        for i, x, la in zip(ids, xs, log_attn):
            score = cfg.attn_weight * la + cfg.acoustic_weight * log_likelihood(x, mu[i])
            path = maximum_path(score[None].astype(np.float32), np.array([len(i)]), np.array([len(x)]),
                                backend=backend)[0]
            new.append(np.asarray(path).sum(1).astype(np.int64))
        moved = np.concatenate([np.abs(np.cumsum(a) - np.cumsum(b))[:-1] for a, b in zip(new, durations)])
        changed = np.mean(np.concatenate([a != b for a, b in zip(new, durations)]))
        history.append({"iteration": k + 1, "mean_boundary_move_frames": float(moved.mean()) if len(moved) else 0.0,
                        "tokens_changed": float(changed)})
        logger.info("duration refinement %d/%d: boundaries moved %.2f frames on average, %.1f%% of tokens changed",
                    k + 1, cfg.iters, history[-1]["mean_boundary_move_frames"], 100 * changed)
        durations = new
        if changed == 0:
            break
    return durations, history

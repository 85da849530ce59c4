"""Attention -> phoneme durations: focus rate, head selection, MAS or argmax counting.

Layout: every attention matrix here is **tokens x frames**, ``attn[s, t]`` the
weight of token s at decoder frame t (the layout of speechkd.align.mas). An
autoregressive decoder's encoder-decoder attention comes out frames x tokens
([..., T, S], softmax over tokens): transpose the last two axes first.

Focus rate (FastSpeech, Ren et al. 2019, Sec. 3.3): F = (1/S) Σ_s max_t a_{s,t},
where the paper's s runs over the S *spectrogram frames* and t over the
phonemes. In this module's layout that is the mean over frames of the largest
weight any token gets: ``attn[:, :T].max(axis=-2).mean()``. It is 1 for a hard
alignment and 1/S for uniform attention; ESPnet's DurationCalculator computes
the same number. The teacher's most diagonal layer/head is the one with the
highest F.

Durations:

- ``mas`` (default): monotonic alignment search on log(attn + eps): every token
  gets >= 1 frame and durations sum to the frame count (needs S <= T);
- ``argmax``: ESPnet-compatible counting, d[s] = #{t : argmax_s' attn[s', t] = s}
  (first index on ties, like numpy/torch argmax). Not monotonic; skipped tokens
  get 0 frames. ``fix_zeros=True`` repairs them with :func:`fix_durations`.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from speechkd.align.mas import maximum_path
from speechkd.errors import SpeechkdError

logger = logging.getLogger(__name__)


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _crop(attn: np.ndarray, text_len: int | None, frame_len: int | None) -> np.ndarray:
    s = attn.shape[-2] if text_len is None else int(text_len)
    t = attn.shape[-1] if frame_len is None else int(frame_len)
    if not (1 <= s <= attn.shape[-2] and 1 <= t <= attn.shape[-1]):
        raise SpeechkdError(f"lengths (text {s}, frames {t}) outside the attention matrix "
                            f"{tuple(attn.shape[-2:])} (tokens x frames)", field="text_len/frame_len")
    return attn[..., :s, :t]


def focus_rate(attn: Any, text_len: int | None = None, frame_len: int | None = None) -> Any:
    """Focus rate of attention ``[S, T]`` (a float) or ``[..., S, T]`` (an array over the
    leading axes, e.g. [L, H]): the mean over valid frames of the largest weight over
    valid tokens (FastSpeech Sec. 3.3). Layout tokens x frames; padding is cropped
    with ``text_len``/``frame_len``."""
    a = _crop(_np(attn).astype(np.float64, copy=False), text_len, frame_len)
    rate = a.max(axis=-2).mean(axis=-1)
    return float(rate) if rate.ndim == 0 else rate


def select_head(attns: Sequence[Any] | Any, text_len: int | None = None,
                frame_len: int | None = None) -> tuple[int, int, float]:
    """(layer, head, focus rate) of the most diagonal head over all layers and heads.

    ``attns``: one [H, S, T] array per layer, or one [L, H, S, T] array (tokens x
    frames). Ties go to the lowest layer, then the lowest head."""
    layers = list(attns) if isinstance(attns, (list, tuple)) else list(_np(attns))
    if not layers:
        raise SpeechkdError("no attention layers given to select a head from", field="attns")
    best = (-1, -1, -np.inf)
    for li, layer in enumerate(layers):
        a = _np(layer)
        rates = np.atleast_1d(focus_rate(a[None] if a.ndim == 2 else a, text_len, frame_len))
        h = int(np.argmax(rates))
        if rates[h] > best[2]:
            best = (li, h, float(rates[h]))
    return best


def durations_from_attention(attn: Any, text_len: int | None = None, frame_len: int | None = None,
                             method: str = "mas", eps: float = 1e-8, fix_zeros: bool = False) -> np.ndarray:
    """Integer durations [text_len] from one head's attention [S, T] (tokens x frames).

    ``mas``: monotonic alignment search on log(attn + eps); sums to ``frame_len``,
    every token >= 1 frame. ``argmax``: ESPnet counting (may give zeros; with
    ``fix_zeros`` they are repaired by :func:`fix_durations`)."""
    a = _crop(_np(attn), text_len, frame_len)
    if a.ndim != 2:
        raise SpeechkdError(f"attention of one head must be [S, T], got shape {a.shape}", field="attn")
    n_tok, n_frames = a.shape
    if method == "mas":
        if n_tok > n_frames:
            raise SpeechkdError(f"{n_tok} tokens but only {n_frames} frames: no alignment gives every token "
                                "a frame", field="text_len/frame_len",
                                hint="drop the utterance, or use method='argmax' (zeros allowed)")
        log_a = np.log(np.maximum(a.astype(np.float32), 0) + np.float32(eps))
        return path_to_durations(maximum_path(log_a, backend="numba"))
    if method == "argmax":
        d = np.bincount(a.argmax(axis=0), minlength=n_tok).astype(np.int64)
        if fix_zeros and (d == 0).any():
            logger.debug("argmax durations: %d zero-duration tokens repaired", int((d == 0).sum()))
            d = fix_durations(d, n_frames)
        return d
    raise SpeechkdError(f"unknown duration method '{method}'", field="method", hint="use 'mas' or 'argmax'")


def fix_durations(d: Any, target_len: int) -> np.ndarray:
    """Durations that sum exactly to ``target_len`` with every token >= 1 frame.

    Valid input (sum right, no zeros) comes back unchanged. Otherwise:
    1. negative values count as 0; a sum that differs from the target is rescaled
       proportionally with largest-remainder rounding (Hamilton's method, ties to
       the lower index): frames are added to or taken from the longest tokens first;
    2. each zero-duration token, left to right, borrows one frame from the nearest
       token that has >= 2 (on equal distance the longer, then the left one).
    Raises SpeechkdError when ``len(d) > target_len``."""
    d = np.maximum(np.asarray(d).astype(np.int64).reshape(-1), 0)
    n, target = len(d), int(target_len)
    if n > target or (n == 0 and target != 0):
        raise SpeechkdError(f"{n} tokens cannot each get >= 1 of {target} frames", field="durations",
                            hint="drop the utterance (more tokens than frames) or use a smaller reduction factor")
    total = int(d.sum())
    if total != target:
        if total == 0:
            d = np.ones(n, dtype=np.int64)
            total = n
        exact = d * (target / total)
        d = np.floor(exact).astype(np.int64)
        rest = target - int(d.sum())
        if rest > 0:
            order = np.argsort(-(exact - d), kind="stable")  # largest remainder first, ties: lower index
            d[order[:rest]] += 1
    for i in np.flatnonzero(d == 0):
        donors = np.flatnonzero(d >= 2)  # exists: sum == target >= n and token i has 0
        dist = np.abs(donors - i)
        j = donors[np.lexsort((donors, -d[donors], dist))[0]]
        d[j] -= 1
        d[i] += 1
    return d


def durations_to_path(d: Any, frame_len: int | None = None) -> np.ndarray:
    """Hard alignment [S, frame_len] int32 (tokens x frames) of durations ``d``; frame_len
    defaults to sum(d) and must be >= it (trailing frames stay unassigned)."""
    d = np.asarray(d).astype(np.int64).reshape(-1)
    if (d < 0).any():
        raise SpeechkdError("negative duration", field="durations")
    total = int(d.sum())
    frames = total if frame_len is None else int(frame_len)
    if frames < total:
        raise SpeechkdError(f"durations sum to {total} > frame_len {frames}", field="durations")
    path = np.zeros((len(d), frames), dtype=np.int32)
    path[np.repeat(np.arange(len(d)), d), np.arange(total)] = 1
    return path


def path_to_durations(path: Any) -> np.ndarray:
    """Frames per token, int64 [..., S], of a hard alignment [..., S, T] (tokens x frames)."""
    return _np(path).sum(axis=-1, dtype=np.int64)


def shift_durations(d: Any, k: int) -> np.ndarray:
    """Durations whose internal boundaries all move by ``k`` frames (k > 0: later), clipped so
    that the sum is unchanged and every token keeps >= 1 frame.

    The boundaries are the cumulative sums c_i (i = 1..S-1); the result has
    c'_i = min(max(c_i + k, i), T - S + i): a constant shift where there is room, tokens
    squeezed to one frame at the utterance edges. It removes a measured systematic lag of the
    alignment (``speechkd eval durations`` reports the best k in its lag scan)."""
    d = np.asarray(d).astype(np.int64).reshape(-1)
    n, total = len(d), int(d.sum())
    if n == 0 or (d < 1).any():
        raise SpeechkdError("shift_durations needs at least one token and >= 1 frame per token", field="durations")
    i = np.arange(1, n)
    c = np.minimum(np.maximum(np.cumsum(d)[:-1] + int(k), i), total - n + i)
    return np.diff(np.concatenate([[0], c, [total]]))

"""Frame-level features averaged over each token's frames (FastSpeech 2 phoneme-level pitch/energy,
as in its public implementations: a token's value is the mean over the frames its duration covers).

Durations must be non-negative integers that sum exactly to the number of
frames; anything else is an error naming the utterance, because a silent
off-by-some shifts every later token's target.
"""

from __future__ import annotations

import numpy as np

from speechkd.errors import SpeechkdError


def check_durations(durations: np.ndarray, num_frames: int, utt: str | None = None) -> np.ndarray:
    """Durations as int64, after checking they are >= 0 and sum to ``num_frames``."""
    d = np.asarray(durations)
    if d.ndim != 1:
        raise SpeechkdError(f"durations must be 1-D, got shape {d.shape}", utt=utt, field="durations")
    if d.size and not np.issubdtype(d.dtype, np.integer):
        if not np.all(d == np.round(d)):
            raise SpeechkdError("durations must be whole frame counts", utt=utt, field="durations")
    d = d.astype(np.int64)
    if d.size and d.min() < 0:
        raise SpeechkdError(f"negative duration {int(d.min())} at token {int(d.argmin())}", utt=utt,
                            field="durations")
    if int(d.sum()) != num_frames:
        raise SpeechkdError(f"durations sum to {int(d.sum())} frames but the features have {num_frames}",
                            utt=utt, field="durations",
                            hint="durations and features must come from the same FeatureConfig and audio")
    return d


def token_average(values: np.ndarray, durations: np.ndarray, weights: np.ndarray | None = None,
                  utt: str | None = None, empty: float = 0.0) -> np.ndarray:
    """Per-token weighted mean of ``values`` [T] over the frames of each token.

    ``weights`` [T] (e.g. the voiced flag) selects frames; a token with no
    weight (zero duration, or no selected frame) gets ``empty``.
    """
    values = np.asarray(values, dtype=np.float64)
    d = check_durations(durations, len(values), utt)
    w = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != values.shape:
        raise SpeechkdError(f"weights shape {w.shape} differs from values shape {values.shape}", utt=utt)
    tok = np.repeat(np.arange(len(d)), d)
    num = np.bincount(tok, weights=values * w, minlength=len(d))
    den = np.bincount(tok, weights=w, minlength=len(d))
    out = np.full(len(d), empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out.astype(np.float32)


def token_pitch(lf0: np.ndarray, vuv: np.ndarray, durations: np.ndarray, utt: str | None = None) -> np.ndarray:
    """Token log-F0: mean over the token's voiced frames; a token without voiced frames
    (consonants, pauses) takes the mean of the interpolated contour over its frames,
    so the token-level contour stays continuous."""
    voiced = token_average(lf0, durations, weights=vuv, utt=utt, empty=np.nan)
    contour = token_average(lf0, durations, utt=utt)
    return np.where(np.isnan(voiced), contour, voiced).astype(np.float32)


def token_energy(energy: np.ndarray, durations: np.ndarray, utt: str | None = None) -> np.ndarray:
    """Token energy: mean over the token's frames."""
    return token_average(energy, durations, utt=utt)

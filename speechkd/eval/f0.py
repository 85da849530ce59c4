"""F0 errors between two utterances on DTW-aligned frames.

The path comes from aligning the mel-cepstra (:func:`speechkd.eval.mcd.mcd_dtw`);
both F0 tracks are on the same frame grid as their mel-cepstra.

- log-F0 RMSE in cents, 1200 · sqrt(mean(log2(f0_syn / f0_ref)²)), over path
  frames voiced in both (100 cents = one semitone; multiply by ln 2 / 1200 for
  log-Hz units).
- V/UV error: the fraction of path frames whose voicing decisions disagree.
- F0 correlation: Pearson's r of the F0 (Hz) over frames voiced in both.
"""

from __future__ import annotations

import numpy as np


def f0_metrics(f0_ref: np.ndarray, f0_syn: np.ndarray, path: np.ndarray) -> dict[str, float]:
    """{'f0_rmse_cents', 'vuv_error', 'f0_corr', 'voiced_both'} over the aligned ``path``
    ((K, 2) pairs of ref, syn frame indices). Values undefined for lack of voiced
    frames are NaN."""
    a = np.asarray(f0_ref, np.float64)[path[:, 0]]
    b = np.asarray(f0_syn, np.float64)[path[:, 1]]
    va, vb = a > 0, b > 0
    both = va & vb
    out = {"vuv_error": float(np.mean(va != vb)), "voiced_both": int(both.sum()),
           "f0_rmse_cents": float("nan"), "f0_corr": float("nan")}
    if both.any():
        cents = 1200.0 * np.log2(b[both] / a[both])
        out["f0_rmse_cents"] = float(np.sqrt(np.mean(cents ** 2)))
        if both.sum() > 2 and np.std(a[both]) > 0 and np.std(b[both]) > 0:
            out["f0_corr"] = float(np.corrcoef(a[both], b[both])[0, 1])
    return out

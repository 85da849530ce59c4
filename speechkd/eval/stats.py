"""Summary statistics of per-utterance metrics: mean with a 95% confidence interval.

``mean_ci`` is the Student-t interval mean ± t_{(1+level)/2, n-1} · s / sqrt(n),
with s the sample standard deviation (ddof=1): the usual interval for the mean
of per-utterance scores (MCD, PESQ, SI-SDR), assuming utterances are
independent. ``bootstrap_ci`` is the percentile bootstrap (Efron & Tibshirani
1993, ch. 13), seeded so that a rerun gives the same interval. Non-finite
values (a PESQ that could not be computed) are left out and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Mean of the finite values with its CI; ``n`` finite values, ``n_nan`` left out."""

    mean: float
    lo: float
    hi: float
    n: int
    n_nan: int = 0
    std: float = float("nan")

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci95": [self.lo, self.hi], "std": self.std,
                "n": self.n, "n_nan": self.n_nan}


def _finite(values: Iterable[float]) -> tuple[np.ndarray, int]:
    x = np.asarray([float("nan") if v is None else v for v in values], dtype=np.float64).ravel()
    ok = np.isfinite(x)
    return x[ok], int((~ok).sum())


def mean_ci(values: Iterable[float], level: float = 0.95) -> Summary:
    """Mean and Student-t CI of the finite values. Fewer than 2 values: CI is NaN;
    identical values: a zero-width CI."""
    from scipy.stats import t

    x, n_nan = _finite(values)
    n = len(x)
    if n == 0:
        return Summary(float("nan"), float("nan"), float("nan"), 0, n_nan)
    m = float(x.mean())
    if n < 2:
        return Summary(m, float("nan"), float("nan"), 1, n_nan)
    s = float(x.std(ddof=1)) if np.ptp(x) > 0 else 0.0  # exact zero width for a constant
    half = float(t.ppf((1 + level) / 2, n - 1)) * s / math.sqrt(n)
    return Summary(m, m - half, m + half, n, n_nan, s)


def paired_mean_ci(a: Mapping[str, float | None], b: Mapping[str, float | None], level: float = 0.95) -> Summary:
    """Mean of the per-key differences a[k] − b[k] over the keys both hold (utterances), Student-t
    CI; a missing (None) or non-finite value on either side leaves its key out (counted in n_nan)."""
    return mean_ci([None if a[k] is None or b[k] is None else a[k] - b[k] for k in a if k in b], level)


def bootstrap_ci(values: Iterable[float], stat: Callable[[np.ndarray], np.ndarray] = np.mean,
                 n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Summary:
    """Statistic of the finite values with a percentile-bootstrap CI (resampling values).

    ``stat`` must reduce along the last axis (``np.mean``, ``np.median``)."""
    x, n_nan = _finite(values)
    n = len(x)
    if n == 0:
        return Summary(float("nan"), float("nan"), float("nan"), 0, n_nan)
    est = float(stat(x))
    rng = np.random.default_rng(seed)
    boots = stat(x[rng.integers(0, n, size=(n_boot, n))], axis=-1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return Summary(est, float(lo), float(hi), n, n_nan, float(x.std(ddof=1)) if n > 1 else float("nan"))


def summarize(rows: list[dict], keys: Iterable[str], level: float = 0.95) -> dict[str, dict]:
    """{key: mean_ci(...).as_dict()} over the rows that have the key."""
    return {k: mean_ci([r[k] for r in rows if k in r], level).as_dict() for k in keys}


def fmt_ci(s: dict, digits: int = 2, scale: float = 1.0) -> str:
    """'m [lo, hi]' for a ``Summary.as_dict()``; '–' when nothing was measured."""
    if not s["n"]:
        return "–"
    m, (lo, hi) = s["mean"] * scale, s["ci95"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"


def json_safe(obj):
    """``obj`` with NaN and infinities replaced by None, so the JSON is standard
    (``json.dumps`` would write the non-standard tokens NaN and Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj

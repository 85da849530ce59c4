"""Statistics of listening tests: intervals, paired tests, Holm correction, listener screening."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
from scipy import stats

from speechkd.listen.results import Rating


def t_interval(x: list[float] | np.ndarray, conf: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): mean +- t_{(1+conf)/2, n-1} * s / sqrt(n); NaN bounds for n < 2."""
    x = np.asarray(x, dtype=float)
    mean = float(x.mean()) if len(x) else math.nan
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + conf / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def bootstrap_interval(scores: list[float], clusters: list[str], conf: float = 0.95, n_boot: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap of the mean, resampling listeners (clusters) with replacement.

    Ratings of one listener are correlated, so resampling whole listeners gives
    an honest interval; with a single listener the ratings themselves are resampled.
    """
    x = np.asarray(scores, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    groups = defaultdict(list)
    for s, c in zip(x, clusters):
        groups[c].append(s)
    if len(groups) < 2:
        means = rng.choice(x, size=(n_boot, len(x)), replace=True).mean(axis=1)
    else:
        sums = np.array([sum(v) for v in groups.values()])
        counts = np.array([len(v) for v in groups.values()])
        pick = rng.integers(0, len(groups), size=(n_boot, len(groups)))
        means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    lo, hi = np.quantile(means, [0.5 - conf / 2, 0.5 + conf / 2])
    return float(lo), float(hi)


def holm(pvalues: list[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values: p_(k) * (m - k + 1), made monotone, capped at 1.
    NaN p-values are kept as NaN and do not count in m."""
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    m = len(idx)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def cell_means(ratings: list[Rating]) -> dict[str, dict[tuple[str, str], float]]:
    """system -> {(listener, item): mean score}: the unit of pairing between systems."""
    acc: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in ratings:
        acc[r.system][(r.listener, r.item)].append(r.score)
    return {s: {c: float(np.mean(v)) for c, v in cells.items()} for s, cells in acc.items()}


def wilcoxon_pairs(ratings: list[Rating], systems: list[str]) -> list[dict]:
    """Paired Wilcoxon signed-rank test of every pair of systems on listener x item means,
    two-sided, with Holm-corrected p-values over all pairs."""
    cells = cell_means(ratings)
    out = []
    for a, b in itertools.combinations(systems, 2):
        common = sorted(set(cells.get(a, {})) & set(cells.get(b, {})))
        x = np.array([cells[a][c] for c in common])
        y = np.array([cells[b][c] for c in common])
        p = math.nan
        if len(common) >= 1:
            p = 1.0 if np.all(x == y) else float(stats.wilcoxon(x, y).pvalue)
        out.append({"a": a, "b": b, "n": len(common), "mean_diff": float(np.mean(x - y)) if len(common) else
                    math.nan, "p": p})
    for row, ph in zip(out, holm([r["p"] for r in out])):
        row["p_holm"] = ph
    return out


def wilcoxon_vs_zero(ratings: list[Rating], systems: list[str]) -> list[dict]:
    """One-sample Wilcoxon signed-rank test of CMOS listener x item means against 0, Holm-corrected."""
    cells = cell_means(ratings)
    out = []
    for s in systems:
        x = np.array(list(cells.get(s, {}).values()))
        p = math.nan if len(x) == 0 else (1.0 if np.all(x == 0) else float(stats.wilcoxon(x).pvalue))
        out.append({"system": s, "n": len(x), "p": p})
    for row, ph in zip(out, holm([r["p"] for r in out])):
        row["p_holm"] = ph
    return out


def binomial(k: int, n: int, alternative: str = "two-sided") -> float:
    """Exact binomial test of k successes in n trials against p = 0.5."""
    return float(stats.binomtest(k, n, 0.5, alternative=alternative).pvalue) if n > 0 else math.nan


def mushra_screening(ratings: list[Rating], ref_below: float = 90.0, anchor_above: float = 90.0,
                     max_fraction: float = 0.15, mid_anchor: str = "anchor_7k") -> dict[str, str]:
    """Listeners to exclude per ITU-R BS.1534-3, 4.1.2 (post-screening): those who rate the hidden
    reference below 90 for more than 15% of the items, or the mid-range anchor above 90 for more
    than 15% of the items. Returns listener -> reason."""
    per: dict[str, dict[str, list[bool]]] = defaultdict(lambda: {"ref": [], "anchor": []})
    for r in ratings:
        if r.test != "mushra":
            continue
        if r.kind == "reference":
            per[r.listener]["ref"].append(r.score < ref_below)
        elif r.kind == "anchor" and r.system == mid_anchor:
            per[r.listener]["anchor"].append(r.score > anchor_above)
    out = {}
    for listener, d in sorted(per.items()):
        ref_frac = sum(d["ref"]) / len(d["ref"]) if d["ref"] else 0.0
        anc_frac = sum(d["anchor"]) / len(d["anchor"]) if d["anchor"] else 0.0
        if ref_frac > max_fraction:
            out[listener] = (f"hidden reference rated below {ref_below:g} on {sum(d['ref'])}/{len(d['ref'])} "
                             f"items ({100 * ref_frac:.0f}% > {100 * max_fraction:.0f}%)")
        elif anc_frac > max_fraction:
            out[listener] = (f"mid anchor rated above {anchor_above:g} on {sum(d['anchor'])}/{len(d['anchor'])} "
                             f"items ({100 * anc_frac:.0f}% > {100 * max_fraction:.0f}%)")
    return out


# A repeated rating disagrees when it differs by more than this (AB: any change of preference).
REPEAT_TOLERANCE = {"mos": 1.0, "cmos": 1.0, "ab": 0.5}


def attention_checks(ratings: list[Rating], max_inconsistent: float = 0.5) -> dict[str, dict]:
    """Per listener: gold items failed, repeated items that disagree, and whether the listener fails
    (any gold item failed, or more than ``max_inconsistent`` of the repeats disagree)."""
    first = {(r.listener, r.test, r.item, r.system, r.other): r.score for r in ratings if r.kind == "normal"}
    out: dict[str, dict] = defaultdict(lambda: {"gold": 0, "gold_failed": [], "repeats": 0,
                                                "inconsistent": []})
    for r in ratings:
        if r.kind == "gold":
            out[r.listener]["gold"] += 1
            if not r.meets_expectation():
                out[r.listener]["gold_failed"].append(f"{r.test}:{r.item} scored {r.score:g}, expected {r.expected}")
        elif r.kind == "repeat":
            before = first.get((r.listener, r.test, r.item, r.system, r.other))
            if before is None:
                continue
            out[r.listener]["repeats"] += 1
            if abs(before - r.score) > REPEAT_TOLERANCE.get(r.test, 1.0):
                out[r.listener]["inconsistent"].append(f"{r.test}:{r.item}:{r.system} {before:g} then {r.score:g}")
    for d in out.values():
        d["failed"] = bool(d["gold_failed"]) or (d["repeats"] > 0 and
                                                 len(d["inconsistent"]) / d["repeats"] > max_inconsistent)
    return dict(out)

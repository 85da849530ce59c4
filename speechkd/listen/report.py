"""Aggregate listening-test answers into a Markdown report, a JSON summary and bar plots.

MOS and CMOS (ITU-T P.800) and MUSHRA (ITU-R BS.1534-3): per-system means with
95% t-intervals and listener-bootstrap intervals; paired Wilcoxon signed-rank
tests on listener x item means, Holm-corrected. AB: two-sided binomial test of
the preferences (no-preference answers left out); ABX: one-sided binomial test
of the correct identifications. MUSHRA listeners are post-screened per
BS.1534-3; listeners failing attention checks are reported, and excluded on request.

Given the manifest's speakers (``utt2spk``: each item is an utterance of the
manifest) and several of them, every test also gets a system x speaker table of
mean scores with their numbers of ratings (AB: the share preferring the system,
ABX: the share of correct answers).
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from speechkd.data.kaldi import sort_key
from speechkd.errors import SpeechkdError
from speechkd.listen import stats
from speechkd.listen.results import Rating
from speechkd.utils.io import atomic_open, atomic_write_text

logger = logging.getLogger(__name__)


def _systems(rows: list[Rating]) -> list[str]:
    return list(dict.fromkeys(r.system for r in rows))


# Bounds of each rating scale: a t-interval of a few ratings can reach past them (e.g. MOS
# 4.8 +- 0.5), which no rating can; intervals are clipped to the scale.
SCALE_BOUNDS = {"mos": (1.0, 5.0), "cmos": (-3.0, 3.0), "mushra": (0.0, 100.0)}


def _score_table(rows: list[Rating], seed: int, n_boot: int) -> list[dict]:
    by: dict[str, list[Rating]] = defaultdict(list)
    for r in rows:
        by[r.system].append(r)
    out = []
    for s, rs in by.items():
        x = [r.score for r in rs]
        mean, lo, hi = stats.t_interval(x)
        if rs[0].test in SCALE_BOUNDS and not math.isnan(lo):
            lo_b, hi_b = SCALE_BOUNDS[rs[0].test]
            lo, hi = max(lo, lo_b), min(hi, hi_b)
        blo, bhi = stats.bootstrap_interval(x, [r.listener for r in rs], n_boot=n_boot, seed=seed)
        out.append({"system": s, "other": rs[0].other, "n": len(x), "listeners": len({r.listener for r in rs}),
                    "mean": mean, "ci_t": [lo, hi], "ci_boot": [blo, bhi]})
    return sorted(out, key=lambda d: -d["mean"])


def _binomial_table(rows: list[Rating], abx: bool) -> list[dict]:
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        by[(r.system, r.other)].append(r.score)
    out = []
    for (s, o), sc in by.items():
        win, lose, tie = sum(v == 1 for v in sc), sum(v == 0 for v in sc), sum(v == 0.5 for v in sc)
        d = {"system": s, "other": o, "n": len(sc), "system_wins": win, "other_wins": lose, "ties": tie}
        if abx:
            d.update(correct=win, p=stats.binomial(win, win + lose, "greater"))
        else:
            d.update(p=stats.binomial(win, win + lose, "two-sided"))
        out.append(d)
    return out


def _speaker_table(rows: list[Rating], keys: list[tuple[str, str]], utt2spk: dict[str, str],
                   speakers: list[str]) -> list[dict]:
    """Per (system, other) in ``keys`` order: speaker -> {"n": ratings, "mean": score} of its rated
    items. The mean is the MOS/CMOS/MUSHRA score, AB's share preferring the system (no preference
    counting 1/2), ABX's share of correct answers."""
    acc: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in rows:
        acc[(r.system, r.other, utt2spk[r.item])].append(r.score)
    return [{"system": s, "other": o, "speakers": {spk: {"n": len(acc[(s, o, spk)]),
                                                         "mean": float(np.mean(acc[(s, o, spk)]))}
                                                   for spk in speakers if acc.get((s, o, spk))}}
            for s, o in keys]


def _check_items(ratings: list[Rating], utt2spk: dict[str, str]) -> None:
    """Every rated item must be an utterance of the manifest (else it is another site's manifest)."""
    for r in ratings:
        if r.item not in utt2spk:
            raise SpeechkdError(f"{r.source}: item {r.item!r} is not an utterance of the manifest", field="item",
                                hint="give --manifest the manifest the listening site was built from")


def aggregate(ratings: list[Rating], *, exclude_attention: bool = False, seed: int = 0,
              n_boot: int = 2000, utt2spk: dict[str, str] | None = None) -> dict:
    """Summary of all tests in ``ratings`` (JSON-serialisable; NaN where undefined).

    ``utt2spk`` (the manifest's, every item an utterance of it) adds per-speaker score tables
    (``by_speaker``) to every test when it names several speakers."""
    if utt2spk is not None:
        _check_items(ratings, utt2spk)
    speakers = sorted({s for s in (utt2spk or {}).values() if s}, key=sort_key)
    attention = stats.attention_checks(ratings)
    failed = sorted(l for l, d in attention.items() if d["failed"])
    excluded = set(failed) if exclude_attention else set()
    screened = stats.mushra_screening(ratings)
    listeners = sorted({r.listener for r in ratings})
    summary: dict = {"num_ratings": len(ratings), "listeners": listeners, "attention": attention,
                     "attention_failed": failed, "attention_excluded": sorted(excluded),
                     "mushra_excluded": screened, "tests": {}}
    if len(speakers) > 1:
        summary["speakers"] = speakers
    for test in ("mos", "cmos", "ab", "abx", "mushra"):
        rows = [r for r in ratings if r.test == test and r.listener not in excluded]
        if test == "mushra":
            rows = [r for r in rows if r.listener not in screened]
        else:
            rows = [r for r in rows if r.kind == "normal"]
        if not rows:
            continue
        res: dict = {"listeners": len({r.listener for r in rows}), "ratings": len(rows)}
        if test in ("mos", "mushra"):
            res["systems"] = _score_table(rows, seed, n_boot)
            compared = [d["system"] for d in res["systems"]
                        if not (test == "mushra" and d["system"].startswith("anchor_"))]
            res["pairs"] = stats.wilcoxon_pairs(rows, compared)
        elif test == "cmos":
            res["systems"] = _score_table(rows, seed, n_boot)
            for d, w in zip(res["systems"], stats.wilcoxon_vs_zero(rows, [d["system"] for d in res["systems"]])):
                d["p"], d["p_holm"] = w["p"], w["p_holm"]
        else:
            res["pairs"] = _binomial_table(rows, abx=test == "abx")
        if len(speakers) > 1:
            res["by_speaker"] = _speaker_table(rows, [(d["system"], d["other"]) for d in
                                                      res.get("systems") or res["pairs"]], utt2spk or {}, speakers)
        summary["tests"][test] = res
    return summary


_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")  # code spans, emphasis, links/images, table cells


def _md(s: object) -> str:
    """Text copied from an answers file, inert in Markdown and in the HTML it renders to: HTML
    escaped (no tags or entities), Markdown punctuation backslash-escaped (no links, images, code
    or table cells), control characters and line breaks turned into spaces."""
    text = "".join(" " if (ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029") else c for c in str(s))
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=True))


def _f(x: float, nd: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _p(x: float) -> str:
    return "–" if x is None or math.isnan(x) else (f"{x:.2g}" if x < 0.001 else f"{x:.3f}")


def _ci(ci: list[float], nd: int = 2) -> str:
    return f"[{_f(ci[0], nd)}, {_f(ci[1], nd)}]"


def _by_speaker_md(summary: dict, test: str, nd: int) -> list[str]:
    """The system x speaker table of a test: mean score (n ratings) per cell; [] without speakers."""
    rows = summary["tests"][test].get("by_speaker")
    if not rows:
        return []
    spks = summary["speakers"]
    what = {"ab": "share of answers preferring the system, no preference counting 1/2",
            "abx": "share of correct answers"}.get(test, "mean score")
    pair = test in ("ab", "abx")
    L = ["", f"Per speaker: {what} (n ratings):", "",
         f"| system | {'other | ' if pair else ''}" + " | ".join(_md(s) for s in spks) + " |",
         "|---" * (len(spks) + 1 + pair) + "|"]
    for d in rows:
        cells = [f"{_f(d['speakers'][s]['mean'], nd)} (n={d['speakers'][s]['n']})" if s in d["speakers"] else "–"
                 for s in spks]
        L.append(f"| {_md(d['system'])} | {_md(d['other']) + ' | ' if pair else ''}" + " | ".join(cells) + " |")
    return L


def markdown(summary: dict, title: str = "Listening test results", sources: list[str] | None = None) -> str:
    """The report as Markdown."""
    L = [f"# {title}", ""]
    if sources:
        L += [f"Results: {', '.join(_md(s) for s in sources)}", ""]
    L += [f"{summary['num_ratings']} ratings from {len(summary['listeners'])} listeners.", "", "## Listeners", "",
          "| listener | gold items failed | repeats inconsistent | status |", "|---|---|---|---|"]
    for l in summary["listeners"]:
        a = summary["attention"].get(l, {"gold": 0, "gold_failed": [], "repeats": 0, "inconsistent": []})
        status = ("excluded (attention)" if l in summary["attention_excluded"] else
                  "FLAGGED (attention)" if l in summary["attention_failed"] else "ok")
        if l in summary["mushra_excluded"]:
            status += "; MUSHRA: excluded (BS.1534-3 post-screening)"
        L.append(f"| {_md(l)} | {len(a['gold_failed'])}/{a['gold']} | {len(a['inconsistent'])}/{a['repeats']} | {status} |")
    for l, why in summary["mushra_excluded"].items():
        L.append(f"\n- MUSHRA excludes {_md(l)}: {_md(why)}")
    for l in summary["attention_failed"]:
        details = summary["attention"][l]["gold_failed"] + summary["attention"][l]["inconsistent"]
        L.append(f"- attention check failed by {_md(l)}: {_md('; '.join(details))}")
    if summary["attention_failed"] and not summary["attention_excluded"]:
        L.append("\nFlagged listeners are still counted; rerun with `--exclude-failed-attention` to drop them.")
    T = summary["tests"]
    for test, name, nd in (("mos", "MOS (ITU-T P.800 ACR, 1-5)", 2), ("mushra", "MUSHRA (ITU-R BS.1534-3, 0-100)", 1)):
        if test not in T:
            continue
        L += ["", f"## {name}", "", f"{T[test]['ratings']} ratings, {T[test]['listeners']} listeners.", "",
              "| system | n | listeners | mean | 95% t-CI | 95% bootstrap CI |", "|---|---|---|---|---|---|"]
        for d in T[test]["systems"]:
            L.append(f"| {_md(d['system'])} | {d['n']} | {d['listeners']} | {_f(d['mean'], nd)} | {_ci(d['ci_t'], nd)} | "
                     f"{_ci(d['ci_boot'], nd)} |")
        L += _by_speaker_md(summary, test, nd)
        L += ["", "Paired Wilcoxon signed-rank tests (listener x item means), Holm-corrected:", "",
              "| A | B | pairs | mean A-B | p | p (Holm) |", "|---|---|---|---|---|---|"]
        for d in T[test]["pairs"]:
            L.append(f"| {_md(d['a'])} | {_md(d['b'])} | {d['n']} | {_f(d['mean_diff'], nd)} | {_p(d['p'])} | {_p(d['p_holm'])} |")
    if "cmos" in T:
        L += ["", "## CMOS (ITU-T P.800 CCR, -3..+3; positive: system better than the baseline)", "",
              "| system | baseline | n | CMOS | 95% t-CI | 95% bootstrap CI | p (Wilcoxon vs 0) | p (Holm) |",
              "|---|---|---|---|---|---|---|---|"]
        for d in T["cmos"]["systems"]:
            L.append(f"| {_md(d['system'])} | {_md(d['other'])} | {d['n']} | {_f(d['mean'])} | {_ci(d['ci_t'])} | "
                     f"{_ci(d['ci_boot'])} | {_p(d['p'])} | {_p(d['p_holm'])} |")
        L += _by_speaker_md(summary, "cmos", 2)
    if "ab" in T:
        L += ["", "## AB preference (binomial test, two-sided, no-preference answers left out)", "",
              "| system | other | system preferred | other preferred | no preference | p |", "|---|---|---|---|---|---|"]
        for d in T["ab"]["pairs"]:
            L.append(f"| {_md(d['system'])} | {_md(d['other'])} | {d['system_wins']} | {d['other_wins']} | {d['ties']} | {_p(d['p'])} |")
        L += _by_speaker_md(summary, "ab", 2)
    if "abx" in T:
        L += ["", "## ABX (binomial test, one-sided: better than chance)", "",
              "| A | B | correct | n | p |", "|---|---|---|---|---|"]
        for d in T["abx"]["pairs"]:
            L.append(f"| {_md(d['system'])} | {_md(d['other'])} | {d['correct']} | {d['n']} | {_p(d['p'])} |")
        L += _by_speaker_md(summary, "abx", 2)
    return "\n".join(L) + "\n"


def plot(summary: dict, out: Path) -> list[Path]:
    """Bar charts with 95% t-intervals (MOS, CMOS, MUSHRA) and stacked AB preferences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    T = summary["tests"]
    limits = {"mos": (1, 5), "cmos": (-3, 3), "mushra": (0, 100)}
    for test, (lo_lim, hi_lim) in limits.items():
        if test not in T:
            continue
        d = T[test]["systems"]
        names = [x["system"] for x in d]
        means = np.array([x["mean"] for x in d])
        err = np.array([[m - x["ci_t"][0], x["ci_t"][1] - m] if not math.isnan(x["ci_t"][0]) else [0, 0]
                        for m, x in zip(means, d)]).T
        fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(names), 3.4), dpi=110)
        bottom = 0 if test == "cmos" else lo_lim
        ax.bar(names, means - bottom, bottom=bottom, yerr=err, capsize=5, color="#4c78a8")
        ax.set_ylim(lo_lim, hi_lim)
        ax.set_ylabel(test.upper())
        if test == "cmos":
            ax.axhline(0, color="k", lw=0.8)
        ax.set_title(f"{test.upper()} with 95% t-intervals")
        ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        written.append(_save(fig, out / f"{test}.png"))
        plt.close(fig)
    if "ab" in T:
        pairs = T["ab"]["pairs"]
        fig, ax = plt.subplots(figsize=(6.5, 0.8 + 0.5 * len(pairs)), dpi=110)
        for i, d in enumerate(pairs):
            n = max(d["n"], 1)
            parts = [d["system_wins"] / n, d["ties"] / n, d["other_wins"] / n]
            left = 0.0
            for frac, color in zip(parts, ("#4c78a8", "#bbbbbb", "#f58518")):
                ax.barh(i, frac, left=left, color=color)
                left += frac
        ax.set_yticks(range(len(pairs)), [f"{d['system']} vs {d['other']}" for d in pairs])
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of answers (left: first system preferred, grey: no preference)")
        fig.tight_layout()
        written.append(_save(fig, out / "ab.png"))
        plt.close(fig)
    return written


def _save(fig, path: Path) -> Path:
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    return path


def _json_safe(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def write_report(summary: dict, out: str | os.PathLike, title: str, sources: list[str]) -> Path:
    """``report.md``, ``summary.json`` and PNG plots in ``out``; returns the report path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pngs = plot(summary, out)
    md = markdown(summary, title, sources)
    if pngs:
        md += "\n## Plots\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n"
    atomic_write_text(out / "report.md", md)
    atomic_write_text(out / "summary.json", json.dumps(_json_safe(summary), indent=2) + "\n")
    return out / "report.md"

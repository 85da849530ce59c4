"""One table over systems: the ``results.json`` of ``eval tts`` / ``eval asr`` runs side by side.

Each results file is one system (named by its directory, e.g. exp/eval/<system>/);
missing metrics (ASR-only ground truth has no MCD) are shown as "–". ``pairs`` add a table of
utterance-paired differences A − B (e.g. a k-step distilled student against its teacher sampled
with k steps): a difference of means whose CI excludes 0 is read there, not from overlapping
per-system intervals.
"""

from __future__ import annotations

import json
import os

from speechkd.errors import SpeechkdError
from speechkd.eval.stats import paired_mean_ci
from speechkd.eval.wer import bootstrap_ratio_ci
from speechkd.utils.io import atomic_write_json, atomic_write_text

# (key in the summary, column title, scale, format)
TTS_COLUMNS = [("mcd", "MCD dB", 1.0, "{:.2f}"), ("f0_rmse_cents", "log-F0 RMSE cents", 1.0, "{:.0f}"),
               ("vuv_error", "V/UV error %", 100.0, "{:.1f}")]


def read_results(path: str) -> dict:
    """A results.json, with clear errors for a missing or malformed file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise SpeechkdError("results file does not exist", path=path) from None
    except json.JSONDecodeError as e:
        raise SpeechkdError(f"malformed JSON at line {e.lineno}: {e.msg}", path=path,
                            hint="rerun the evaluation that wrote it") from None


def system_row(path: str, res: dict | None = None) -> dict:
    """Name, utterance count, metrics with CIs, WER/CER of one results.json (``res``: its content,
    when already read)."""
    res = read_results(path) if res is None else res
    row: dict = {"system": os.path.basename(os.path.dirname(os.path.abspath(path))), "results": path}
    summ = res.get("summary") or {}
    for key, *_ in TTS_COLUMNS:
        if key in summ:
            row[key] = {"mean": summ[key]["mean"], "ci95": summ[key]["ci95"]}
    asr = res.get("asr") or (res if "wer" in res else None)
    if asr:
        row["wer"] = {"mean": asr["wer"], "ci95": asr["wer_ci95"]}
        row["cer"] = {"mean": asr["cer"], "ci95": asr["cer_ci95"]}
        row["num_utts"] = asr["num_utts"]
    if "num_utts" not in row:
        row["num_utts"] = next((v.get("n") for v in summ.values() if isinstance(v, dict) and "n" in v), None)
    return row


def paired_difference(res_a: dict | list[dict], res_b: dict | list[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """A − B over the utterances both evaluated: MCD in dB (mean of per-utterance differences,
    Student-t CI) and corpus-level WER in points (sum of word-error differences over the words,
    paired percentile bootstrap over utterances).

    A side may be a list of results of the same system run several times (e.g. diffusion sampling
    seeds), paired member by member with the other side's list (seed j with seed j): each
    utterance then contributes its differences summed over the members (WER; its MCD difference
    averaged), and the bootstrap resamples utterances, not runs, since one utterance's runs are
    not independent."""
    runs_a, runs_b = (r if isinstance(r, list) else [r] for r in (res_a, res_b))
    if len(runs_a) != len(runs_b) or not runs_a:
        raise SpeechkdError(f"pooled pair sides need the same number of runs, got {len(runs_a)} and {len(runs_b)}",
                            field="--pairs")
    a = [{r["utt"]: r for r in res.get("utts", []) if "utt" in r} for res in runs_a]
    b = [{r["utt"]: r for r in res.get("utts", []) if "utt" in r} for res in runs_b]
    shared = [u for u in a[0] if all(u in m for m in a + b)]
    out: dict = {"num_utts": len(shared)}
    if len(runs_a) > 1:
        out["runs"] = len(runs_a)

    def mean_over_runs(side: list[dict], key: str) -> dict:
        vals = {u: [m[u].get(key) for m in side] for u in shared}
        return {u: None if any(x is None for x in v) else sum(v) / len(v) for u, v in vals.items()}

    mcd = paired_mean_ci(mean_over_runs(a, "mcd"), mean_over_runs(b, "mcd"))
    if mcd.n:
        out["mcd"] = mcd.as_dict()
    asr = [u for u in shared if all("word_errors" in m[u] for m in a + b) and a[0][u].get("words")]
    if asr:
        d = [sum(x[u]["word_errors"] - y[u]["word_errors"] for x, y in zip(a, b)) for u in asr]
        w = [len(a) * a[0][u]["words"] for u in asr]
        out["wer"] = {"mean": sum(d) / sum(w), "ci95": list(bootstrap_ratio_ci(d, w, n_boot, seed)), "n": len(asr)}
    return out


def _paired_table(pairs: list[str], results: dict[str, dict]) -> tuple[list[str], list[dict]]:
    """Markdown lines and JSON rows of the ``A:B`` pairs (system names as in the main table;
    ``results``: each system's results.json content). A side ``X1+X2+...`` pools runs of one
    system (:func:`paired_difference`)."""
    lines = ["## Paired differences (A − B, same utterances)", "",
             "| A − B | utts | ΔMCD dB [95% CI] | ΔWER points [95% CI] |", "|---|---:|---:|---:|"]
    rows = []
    for pair in pairs:
        sides = pair.split(":")
        if len(sides) != 2 or not all(sides) or not all(all(side.split("+")) for side in sides):
            raise SpeechkdError(f"pair {pair!r} is not SYSTEM_A:SYSTEM_B (a side may pool runs: A1+A2)",
                                field="--pairs")
        names = [side.split("+") for side in sides]
        missing = [n for side in names for n in side if n not in results]
        if missing:
            raise SpeechkdError(f"pair {pair!r} names a system with no results file: {', '.join(missing)}",
                                field="--pairs", hint="systems: " + ", ".join(sorted(results)))
        if len(names[0]) != len(names[1]):
            raise SpeechkdError(f"pair {pair!r}: {len(names[0])} runs against {len(names[1])}; pooled sides are "
                                "paired run by run", field="--pairs")
        d = paired_difference([results[n] for n in names[0]], [results[n] for n in names[1]])
        rows.append({"a": sides[0], "b": sides[1], **d})
        utts = f"{d['num_utts']} x {d['runs']}" if "runs" in d else str(d["num_utts"])
        lines.append(f"| {sides[0]} − {sides[1]} | {utts} | {_cell(d.get('mcd'), 1.0, '{:+.2f}')} | "
                     f"{_cell(d.get('wer'), 100.0, '{:+.1f}')} |")
    lines += ["", "Negative = A better. ΔMCD: Student t over per-utterance differences; ΔWER: corpus-level, "
              "paired bootstrap over utterances (2000 resamples); pooled runs (A1+A2): each utterance's "
              "differences summed over the runs, utterances resampled.", ""]
    return lines, rows


def _cell(m: dict | None, scale: float, fmt: str) -> str:
    if not m or m.get("mean") is None:
        return "–"
    lo, hi = m["ci95"]
    if lo is None or hi is None:
        return fmt.format(scale * m["mean"])
    return f"{fmt.format(scale * m['mean'])} [{fmt.format(scale * lo)}, {fmt.format(scale * hi)}]"


def _reference_rank(row: dict) -> int:
    name = row["system"]
    return 0 if name == "ground_truth" else 1 if name.startswith("resynth") else 2


def summarize_systems(paths: list[str], out_dir: str, title: str = "Objective evaluation",
                      pairs: list[str] | None = None) -> str:
    """Write ``out_dir/results.{json,md}``; returns the Markdown path. ``pairs``: ``A:B`` system
    names whose utterance-paired differences get a second table."""
    if not paths:
        raise SpeechkdError("no results files given", field="--results")
    # references first (ground truth, then resyntheses), then the systems in the order given
    loaded = {p: read_results(p) for p in paths}
    # MCD definitions (speechkd eval tts --mcd) differ by several dB: one table holds one of them
    defs = {p: (r.get("settings") or {}).get("mcd", "world") for p, r in loaded.items() if "summary" in r
            and "mcd" in (r.get("summary") or {})}
    if len(set(defs.values())) > 1:
        raise SpeechkdError("results use different MCD definitions: " + ", ".join(f"{p} ({d})" for p, d in defs.items()),
                            field="--results", hint="evaluate every system with the same --mcd")
    mcd_def = next(iter(defs.values()), "world")
    rows = sorted((system_row(p, loaded[p]) for p in paths), key=_reference_rank)
    gt = next((r for r in rows if r["system"] == "ground_truth" and "wer" in r), None)
    cols = TTS_COLUMNS + [("wer", "WER %", 100.0, "{:.1f}"), ("cer", "CER %", 100.0, "{:.1f}")]
    for r in rows:
        if gt is not None and "wer" in r:
            r["wer_minus_ground_truth"] = r["wer"]["mean"] - gt["wer"]["mean"]
    head = [c[1] for c in cols] + (["WER - ground truth, points"] if gt else [])
    lines = [f"# {title}", "", "| system | utts | " + " | ".join(head) + " |",
             "|---|---:|" + "---:|" * len(head)]
    for r in rows:
        cells = [_cell(r.get(k), s, f) for k, _, s, f in cols]
        if gt:
            d = r.get("wer_minus_ground_truth")
            cells.append("–" if d is None else f"{100 * d:+.1f}")
        lines.append(f"| {r['system']} | {r.get('num_utts') or '–'} | " + " | ".join(cells) + " |")
    lines += ["", "Means with 95% CIs over utterances (MCD/F0: Student t; WER/CER: bootstrap, corpus-level). "
              + ("MCD: ESPnet2's evaluate_mcd.py definition (SPTK mcep with c0, FastDTW); " if mcd_def == "espnet" else
                 "MCD: WORLD mel-cepstrum c1..c24 on an exact DTW path; ") + "WER: pocketsphinx en-us, "
              "to be compared with the ground truth's, not read as absolute.", ""]
    paired_rows: list[dict] = []
    if pairs:
        more, paired_rows = _paired_table(pairs, {r["system"]: loaded[r["results"]] for r in rows})
        lines += more
    md = "\n".join(lines)
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_json(os.path.join(out_dir, "results.json"), {"title": title, "systems": rows, "pairs": paired_rows})
    path = os.path.join(out_dir, "results.md")
    atomic_write_text(path, md)
    return path

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


def paired_difference(res_a: dict, res_b: dict, n_boot: int = 2000, seed: int = 0) -> dict:
    """A − B over the utterances both evaluated: MCD in dB (mean of per-utterance differences,
    Student-t CI) and corpus-level WER in points (sum of word-error differences over the words,
    paired percentile bootstrap over utterances)."""
    from speechkd.eval.stats import paired_mean_ci
    from speechkd.eval.wer import bootstrap_ratio_ci

    a = {r["utt"]: r for r in res_a.get("utts", []) if "utt" in r}
    b = {r["utt"]: r for r in res_b.get("utts", []) if "utt" in r}
    shared = [u for u in a if u in b]
    out: dict = {"num_utts": len(shared)}
    mcd = paired_mean_ci({u: r.get("mcd") for u, r in a.items()}, {u: r.get("mcd") for u, r in b.items()})
    if mcd.n:
        out["mcd"] = mcd.as_dict()
    asr = [u for u in shared if "word_errors" in a[u] and "word_errors" in b[u] and a[u].get("words")]
    if asr:
        d = [a[u]["word_errors"] - b[u]["word_errors"] for u in asr]
        w = [a[u]["words"] for u in asr]
        out["wer"] = {"mean": sum(d) / sum(w), "ci95": list(bootstrap_ratio_ci(d, w, n_boot, seed)), "n": len(asr)}
    return out


def _paired_table(pairs: list[str], results: dict[str, dict]) -> tuple[list[str], list[dict]]:
    """Markdown lines and JSON rows of the ``A:B`` pairs (system names as in the main table;
    ``results``: each system's results.json content)."""
    lines = ["## Paired differences (A − B, same utterances)", "",
             "| A − B | utts | ΔMCD dB [95% CI] | ΔWER points [95% CI] |", "|---|---:|---:|---:|"]
    rows = []
    for pair in pairs:
        names = pair.split(":")
        if len(names) != 2 or not all(names):
            raise SpeechkdError(f"pair {pair!r} is not SYSTEM_A:SYSTEM_B", field="--pairs")
        missing = [n for n in names if n not in results]
        if missing:
            raise SpeechkdError(f"pair {pair!r} names a system with no results file: {', '.join(missing)}",
                                field="--pairs", hint="systems: " + ", ".join(sorted(results)))
        d = paired_difference(results[names[0]], results[names[1]])
        rows.append({"a": names[0], "b": names[1], **d})
        lines.append(f"| {names[0]} − {names[1]} | {d['num_utts']} | {_cell(d.get('mcd'), 1.0, '{:+.2f}')} | "
                     f"{_cell(d.get('wer'), 100.0, '{:+.1f}')} |")
    lines += ["", "Negative = A better. ΔMCD: Student t over per-utterance differences; ΔWER: corpus-level, "
              "paired bootstrap over utterances (2000 resamples).", ""]
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
              "MCD: WORLD mel-cepstrum c1..c24 on an exact DTW path; WER: pocketsphinx en-us, "
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

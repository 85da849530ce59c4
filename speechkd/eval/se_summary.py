"""One table per test set over SE systems: the ``results.json`` of ``eval se`` runs side by side.

Results live at ``<eval dir>/<test set>/<system>/results.json`` (the layout of
recipes/se.sh stage 6); other paths are named by their directory. Besides the
means over all utterances, the SI-SDR improvement is broken down by input SNR
when utterance ids end in ``_snrNN`` (``speechkd se-data`` test sets), and by noise type when the
test set's ``utt2noise_type`` is given (``speechkd se-data`` writes it; ``eval se-systems`` reads it).

Systems named ``<system>@<tag>`` (e.g. ``teacher_nytt@ckpt2``: one single checkpoint of a model
whose row shows its averaged weights) are not rows of their own: their SI-SDRi and PESQ means
become the spread columns of ``<system>``'s row (mean [min, max] over the single checkpoints).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict

import numpy as np

from speechkd.errors import SpeechkdError
from speechkd.eval.stats import json_safe, paired_mean_ci
from speechkd.eval.summary import read_results
from speechkd.utils.io import atomic_write_json, atomic_write_text

SNR_RE = re.compile(r"_snr(m?)(\d+)(?:p(\d+))?$")
# (summary key, column title, format)
COLUMNS = [("pesq", "PESQ-wb", "{:.2f}"), ("stoi", "STOI", "{:.3f}"), ("estoi", "ESTOI", "{:.3f}"),
           ("si_sdr", "SI-SDR dB", "{:.2f}")]
# reference-free DNSMOS P.835 (speechkd.eval.dnsmos), columns only when some result has them
DNSMOS_COLUMNS = [("dnsmos_sig", "DNSMOS SIG", "{:.2f}"), ("dnsmos_bak", "DNSMOS BAK", "{:.2f}"),
                  ("dnsmos_ovrl", "DNSMOS OVRL", "{:.2f}")]


def utt_snr(utt: str) -> float | None:
    m = SNR_RE.search(utt)
    if not m:
        return None
    v = float(m.group(2) + (f".{m.group(3)}" if m.group(3) else ""))
    return -v if m.group(1) else v


def _si_sdri_by(res: dict, key) -> dict:
    """The finite per-utterance SI-SDRi values of a results.json, grouped by ``key(utt)`` (None: left out)."""
    groups: dict = defaultdict(list)
    for r in res.get("utts", []):
        k, v = key(str(r.get("utt", ""))), r.get("si_sdr_delta")
        if k is not None and v is not None and np.isfinite(v):
            groups[k].append(float(v))
    return groups


def system_row(path: str, noise_types: dict[str, dict[str, str]] | None = None) -> dict:
    """Test set, system, means (and CIs) and per-SNR SI-SDRi of one ``eval se`` results.json; with
    ``noise_types`` ({test set: {utt: noise type}}), the SI-SDRi mean per noise type of its test set too."""
    res = read_results(path)
    summ = res.get("summary") or {}
    if "si_sdr" not in summ:
        raise SpeechkdError("not a `speechkd eval se` results file (no si_sdr)", path=path)
    d = os.path.dirname(os.path.abspath(path))
    row: dict = {"system": os.path.basename(d), "test_set": os.path.basename(os.path.dirname(d)), "results": path,
                 "num_utts": summ["si_sdr"].get("n")}
    for key in [c[0] for c in COLUMNS + DNSMOS_COLUMNS] + ["si_sdr_delta", "pesq_delta", "stoi_delta",
                                                           "dnsmos_ovrl_delta"]:
        if key in summ:
            row[key] = {"mean": summ[key]["mean"], "ci95": summ[key].get("ci95")}
    if "dnsmos_ovrl" in summ:
        row["dnsmos_n"] = summ["dnsmos_ovrl"].get("n")  # DNSMOS may score a subset (eval se --dnsmos-utts)
    by_snr = _si_sdri_by(res, utt_snr)
    row["si_sdri_by_snr"] = {f"{k:g}": float(np.mean(v)) for k, v in sorted(by_snr.items())}
    types = (noise_types or {}).get(row["test_set"], {})
    by_type = _si_sdri_by(res, types.get)
    row["si_sdri_by_noise_type"] = {k: {"mean": float(np.mean(v)), "n": len(v)} for k, v in sorted(by_type.items())}
    row["_per_utt"] = {str(r["utt"]): (r.get("si_sdr"), r.get("pesq")) for r in res.get("utts", []) if "utt" in r}
    return row


def paired(row: dict, base: dict) -> dict:
    """Per-utterance differences row − base (SI-SDR dB, PESQ) over shared utterances, mean with t CI."""
    return {key: paired_mean_ci({u: v[i] for u, v in row["_per_utt"].items()},
                                {u: v[i] for u, v in base["_per_utt"].items()}).as_dict()
            for i, key in enumerate(("si_sdr", "pesq"))}


def _cell(m: dict | None, fmt: str, ci: bool = False) -> str:
    if not m or m.get("mean") is None:
        return "–"
    text = fmt.format(m["mean"])
    lo, hi = (m.get("ci95") or [None, None])
    if ci and lo is not None and hi is not None:
        text += f" [{fmt.format(lo)}, {fmt.format(hi)}]"
    return text


SPREAD = (("si_sdr_delta", "SI-SDRi", "{:+.2f}"), ("pesq", "PESQ", "{:.2f}"))


def fold_single_checkpoints(rows: list[dict]) -> list[dict]:
    """Rows without the ``<system>@<tag>`` ones, which become ``single_checkpoints`` of their system:
    {"n", "tags", and per SPREAD key {"mean", "min", "max"} over the single checkpoints' means}."""
    singles = [r for r in rows if "@" in r["system"]]
    rows = [r for r in rows if "@" not in r["system"]]
    for s in singles:
        base, tag = s["system"].split("@", 1)
        row = next((r for r in rows if r["system"] == base and r["test_set"] == s["test_set"]), None)
        if row is None:
            raise SpeechkdError(f"single-checkpoint results {s['system']!r} but no results of system {base!r} "
                                f"for test set {s['test_set']!r}", path=s["results"], field="--results")
        sc = row.setdefault("single_checkpoints", {"n": 0, "tags": [], "_values": {k: [] for k, _, _ in SPREAD}})
        sc["n"] += 1
        sc["tags"].append(tag)
        for k, _, _ in SPREAD:
            if (s.get(k) or {}).get("mean") is not None:
                sc["_values"][k].append(float(s[k]["mean"]))
    for r in rows:
        sc = r.get("single_checkpoints")
        if sc:
            for k, v in sc.pop("_values").items():
                sc[k] = {"mean": float(np.mean(v)), "min": min(v), "max": max(v)} if v else None
    return rows


def _spread_cell(m: dict | None, fmt: str) -> str:
    if not m:
        return "–"
    return f"{fmt.format(m['mean'])} [{fmt.format(m['min'])}, {fmt.format(m['max'])}]"


# (key, what): the measures of the overview, one table each when some result has them
OVERVIEW = (("si_sdr_delta", "SI-SDRi dB", "{:+.2f}"), ("pesq", "PESQ-wb", "{:.2f}"), ("stoi", "STOI", "{:.3f}"),
            ("dnsmos_ovrl", "DNSMOS OVRL", "{:.2f}"), ("dnsmos_ovrl_delta", "DNSMOS OVRL − noisy input", "{:+.2f}"))


def overview(rows: list[dict], tests: list[str]) -> list[str]:
    """With more than one test set: per measure, one table of systems x test sets (the cells of the
    generalisation grid side by side), means over utterances."""
    if len(tests) < 2:
        return []
    systems = list(dict.fromkeys(r["system"] for r in rows))
    at = {(r["system"], r["test_set"]): r for r in rows}
    out = []
    for key, what, fmt in OVERVIEW:
        if not any((r.get(key) or {}).get("mean") is not None for r in rows):
            continue
        ns = sorted({r["dnsmos_n"] for r in rows if r.get("dnsmos_n")}) if key.startswith("dnsmos") else []
        on = f" ({'/'.join(map(str, ns))} utterances of each set)" if ns else ""
        out += [f"### {what} by test set{on}", "", "| system | " + " | ".join(tests) + " |",
                "|---|" + "---:|" * len(tests)]
        for name in systems:
            out.append(f"| {name} | " + " | ".join(_cell((at.get((name, t)) or {}).get(key), fmt) for t in tests)
                       + " |")
        out.append("")
    return ["## All test sets", ""] + out


def by_noise_type(trows: list[dict]) -> list[str]:
    """SI-SDRi per noise type of one test set's rows (systems x types), when it mixes several types."""
    kinds = list(dict.fromkeys(k for r in trows for k in r.get("si_sdri_by_noise_type", {})))
    if len(kinds) < 2:
        return []
    n = {k: next(r["si_sdri_by_noise_type"][k]["n"] for r in trows if k in r.get("si_sdri_by_noise_type", {}))
         for k in kinds}
    out = ["SI-SDRi dB by noise type (mixtures):", "", "| system | " + " | ".join(f"{k} ({n[k]})" for k in kinds)
           + " |", "|---|" + "---:|" * len(kinds)]
    for r in trows:
        t = r.get("si_sdri_by_noise_type", {})
        out.append(f"| {r['system']} | " + " | ".join(f"{t[k]['mean']:+.2f}" if k in t else "–" for k in kinds)
                   + " |")
    return out + [""]


def summarize_se(paths: list[str], out_dir: str, title: str = "Speech enhancement",
                 paired_against: str | None = None, noise_types: dict[str, dict[str, str]] | None = None) -> str:
    """Write ``out_dir/results.{json,md}``: one table per test set, systems in the given order;
    with ``paired_against``, per-utterance paired differences to that system as two more columns;
    ``<system>@<tag>`` results as the spread of ``<system>``'s single checkpoints; with
    ``noise_types`` ({test set: {utt: noise type}}), SI-SDRi per noise type of each test set."""
    if not paths:
        raise SpeechkdError("no results files given", field="--results")
    rows = fold_single_checkpoints([system_row(p, noise_types) for p in paths])
    if paired_against:
        for r in rows:
            base = next((b for b in rows if b["system"] == paired_against and b["test_set"] == r["test_set"]), None)
            if base is None:
                raise SpeechkdError(f"no results of system {paired_against!r} for test set {r['test_set']!r}",
                                    field="--paired-against")
            r["paired"] = paired(r, base)
    tests = list(dict.fromkeys(r["test_set"] for r in rows))
    lines = [f"# {title}", ""] + overview(rows, tests)
    for t in tests:
        trows = [r for r in rows if r["test_set"] == t]
        snrs = list(dict.fromkeys(k for r in trows for k in r["si_sdri_by_snr"]))
        cols = COLUMNS + (DNSMOS_COLUMNS if any(r.get("dnsmos_ovrl") for r in trows) else [])
        head = ["system", "utts"] + [c[1] for c in cols] + ["SI-SDRi dB [95% CI]"] + \
            [f"SI-SDRi @{s} dB" for s in snrs]
        if paired_against:
            head += [f"ΔSI-SDR vs {paired_against} [95% CI]", f"ΔPESQ vs {paired_against}"]
        spread = any(r.get("single_checkpoints") for r in trows)
        if spread:
            head += [f"{name} single ckpts: mean [min, max]" for _, name, _ in SPREAD]
        lines += [f"## {t}", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for r in trows:
            cells = [r["system"], str(r["num_utts"] or "–")] + [_cell(r.get(k), f) for k, _, f in cols]
            cells.append(_cell(r.get("si_sdr_delta"), "{:+.2f}", ci=True))
            cells += [f"{r['si_sdri_by_snr'][s]:+.2f}" if s in r["si_sdri_by_snr"] else "–" for s in snrs]
            if paired_against:
                cells += [_cell({"mean": r["paired"]["si_sdr"]["mean"], "ci95": r["paired"]["si_sdr"]["ci95"]},
                                "{:+.2f}", ci=r["system"] != paired_against),
                          _cell(r["paired"]["pesq"], "{:+.2f}")]
            if spread:
                sc = r.get("single_checkpoints") or {}
                cells += [_spread_cell(sc.get(k), f) + (f" ({sc['n']})" if sc.get(k) else "") for k, _, f in SPREAD]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += by_noise_type(trows)
    lines += ["Means over utterances; SI-SDRi = SI-SDR(enhanced) − SI-SDR(noisy input) per utterance "
              "(Le Roux et al. 2019), with a Student-t 95% CI; PESQ wide band (P.862.2); STOI/ESTOI "
              "(pystoi). `hpf80` is the trivial 80 Hz high-pass baseline; `rnnoise` is RNNoise (Valin 2018), "
              "the deployed peer, its lag removed; `*_st` is teacher/student inference S(T(y))."
              + (" DNSMOS P.835 (Reddy et al. 2022): reference-free SIG/BAK/OVRL ratings, 1-5."
                 if any(r.get("dnsmos_ovrl") for r in rows) else "")
              + (f" Δ vs {paired_against}: mean of per-utterance differences (paired), Student-t 95% CI."
                 if paired_against else "")
              + (" Single ckpts: the means of each of the model's last checkpoints alone (the rows use their "
                 "averaged weights), mean [min, max] over them, (n) checkpoints." if any(
                  r.get("single_checkpoints") for r in rows) else ""), ""]
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_json(os.path.join(out_dir, "results.json"),
                      json_safe({"title": title, "paired_against": paired_against,
                                 "systems": [{k: v for k, v in r.items() if k != "_per_utt"} for r in rows]}))
    path = os.path.join(out_dir, "results.md")
    atomic_write_text(path, "\n".join(lines))
    return path

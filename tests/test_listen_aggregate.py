"""Aggregation of listening-test answers against hand-computed values, and malformed answer files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from speechkd.cli import main as cli_main
from speechkd.errors import SpeechkdError
from speechkd.listen.report import aggregate
from speechkd.listen.results import read_results
from speechkd.listen.stats import holm, t_interval

FIELDS = ["listener", "test", "item", "system", "other", "score", "plays", "listening_time_s", "timestamp",
          "kind", "expected", "position"]
# MOS of 4 listeners on one item: pairwise differences have magnitudes {1, 2, 3, 4} (no ties, no zeros),
# so the exact Wilcoxon p-values are counts of sign patterns out of 2^4 = 16 (see test_mos_and_wilcoxon_holm).
MOS = {"sysA": [1, 1, 1, 2], "sysB": [2, 3, 5, 5], "sysC": [5, 4, 3, 1]}
LISTENERS = ["L1", "L2", "L3", "L4"]


def _row(listener: str, test: str, item: str, system: str, score: float, other: str = "", kind: str = "normal",
         expected: str = "", position: int = 1) -> dict:
    return {"listener": listener, "test": test, "item": item, "system": system, "other": other, "score": score,
            "plays": 1, "listening_time_s": 2.5, "timestamp": "2024-01-01T00:00:00Z", "kind": kind,
            "expected": expected, "position": position}


def _fixture() -> list[dict]:
    rows = [_row(l, "mos", "u1", s, v[i]) for s, v in MOS.items() for i, l in enumerate(LISTENERS)]
    rows += [_row(l, "mos", "u2", "_degraded", 1, kind="gold", expected="<=2") for l in LISTENERS[:3]]
    rows.append(_row("L4", "mos", "u2", "_degraded", 4, kind="gold", expected="<=2"))  # L4 fails the gold item
    rows.append(_row("L1", "mos", "u1", "sysA", 2, kind="repeat"))  # repeats are not counted in the MOS;
    rows.append(_row("L2", "mos", "u1", "sysA", 5, kind="repeat"))  # L2 was 1, now 5: inconsistent
    # AB: sysA preferred 8 times, sysB twice, 3 x no preference.
    rows += [_row(f"L{i % 4 + 1}", "ab", f"a{i}", "sysA", s, other="sysB")
             for i, s in enumerate([1] * 8 + [0] * 2 + [0.5] * 3)]
    # ABX: 9 of 10 correct.
    rows += [_row(f"L{i % 4 + 1}", "abx", f"x{i}", "sysA", s, other="sysB") for i, s in enumerate([1] * 9 + [0])]
    # MUSHRA: L3 rates the hidden reference below 90 on 1 of 4 items (25% > 15%): excluded.
    refs = {"L1": [100, 100, 100, 100], "L2": [95, 92, 100, 100], "L3": [100, 100, 85, 100]}
    for l, rs in refs.items():
        for i, r in enumerate(rs):
            rows.append(_row(l, "mushra", f"m{i}", "gt", r, kind="reference"))
            rows.append(_row(l, "mushra", f"m{i}", "sysA", 60 + 10 * i if l != "L3" else 0))
            rows.append(_row(l, "mushra", f"m{i}", "anchor_7k", 50, kind="anchor"))
            rows.append(_row(l, "mushra", f"m{i}", "anchor_3.5k", 20, kind="anchor"))
    return rows


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS, lineterminator="\r\n")
        w.writeheader()
        w.writerows(rows)
    return path


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3*0.01 = 0.03, 2*0.03 = 0.06, max(0.06, 1*0.04) = 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert math.isnan(holm([math.nan, 0.2])[0]) and holm([math.nan, 0.2])[1] == pytest.approx(0.2)


def test_mos_and_wilcoxon_holm(tmp_path: Path) -> None:
    s = aggregate(read_results([_write_csv(tmp_path / "a.csv", _fixture())]), n_boot=200)
    mos = {d["system"]: d for d in s["tests"]["mos"]["systems"]}
    # sysA: 1,1,1,2 -> mean 1.25, sd 0.5, se 0.25, t_{0.975,3} = 3.182446305284263
    assert mos["sysA"]["n"] == 4 and mos["sysA"]["mean"] == pytest.approx(1.25)
    # The t-interval's low end, 1.25 - 0.796 = 0.454, lies below the lowest MOS: clipped to 1.
    assert mos["sysA"]["ci_t"] == pytest.approx([1.0, 1.25 + 3.182446305284263 * 0.25])
    assert t_interval([1, 1, 1, 2])[1] == pytest.approx(0.4543884, abs=1e-6)
    lo, hi = mos["sysA"]["ci_boot"]
    assert 1.0 <= lo <= 1.25 <= hi <= 2.0
    pairs = {(d["a"], d["b"]): d for d in s["tests"]["mos"]["pairs"]}
    p = {frozenset(k): (d["p"], d["p_holm"]) for k, d in pairs.items()}
    # A-B = -1,-2,-4,-3: all one sign -> 2/16; A-C = -4,-3,-2,+1: W+ = 1 -> 2*2/16;
    # B-C = -3,-1,+2,+4: min(W+, W-) = 4 -> 2*7/16. Holm: 3*0.125, 2*0.25, 1*0.875.
    assert p[frozenset({"sysA", "sysB"})] == pytest.approx((0.125, 0.375))
    assert p[frozenset({"sysA", "sysC"})] == pytest.approx((0.25, 0.5))
    assert p[frozenset({"sysB", "sysC"})] == pytest.approx((0.875, 0.875))


def test_binomial_and_attention(tmp_path: Path) -> None:
    s = aggregate(read_results([_write_csv(tmp_path / "a.csv", _fixture())]), n_boot=50)
    ab = s["tests"]["ab"]["pairs"][0]
    assert (ab["system_wins"], ab["other_wins"], ab["ties"]) == (8, 2, 3)
    assert ab["p"] == pytest.approx(2 * (45 + 10 + 1) / 1024)  # two-sided, ties left out
    abx = s["tests"]["abx"]["pairs"][0]
    assert abx["correct"] == 9 and abx["p"] == pytest.approx(11 / 1024)  # P(X >= 9 | n = 10)
    att = s["attention"]
    assert (att["L1"]["repeats"], att["L1"]["inconsistent"], att["L1"]["failed"]) == (1, [], False)
    assert att["L2"]["repeats"] == 1 and len(att["L2"]["inconsistent"]) == 1  # 1 then 5
    assert len(att["L4"]["gold_failed"]) == 1 and att["L3"]["failed"] is False
    assert s["attention_failed"] == ["L2", "L4"] and s["attention_excluded"] == []
    excl = aggregate(read_results([tmp_path / "a.csv"]), exclude_attention=True, n_boot=50)
    assert excl["attention_excluded"] == ["L2", "L4"]
    assert {d["system"]: d["n"] for d in excl["tests"]["mos"]["systems"]} == {"sysA": 2, "sysB": 2, "sysC": 2}


def test_mushra_screening(tmp_path: Path) -> None:
    s = aggregate(read_results([_write_csv(tmp_path / "a.csv", _fixture())]), n_boot=50)
    assert list(s["mushra_excluded"]) == ["L3"] and "1/4" in s["mushra_excluded"]["L3"]
    m = {d["system"]: d for d in s["tests"]["mushra"]["systems"]}
    assert m["sysA"]["listeners"] == 2 and m["sysA"]["mean"] == pytest.approx(75.0)  # L3's zeros dropped
    assert m["gt"]["mean"] == pytest.approx((400 + 387) / 8)


def test_cli_report_and_json_input(tmp_path: Path, capsys) -> None:
    rows = _fixture()
    _write_csv(tmp_path / "a.csv", rows[: len(rows) // 2])
    (tmp_path / "b.json").write_text(json.dumps({"rows": rows[len(rows) // 2:]}))
    out = tmp_path / "report"
    assert cli_main(["listen", "aggregate", "--results", str(tmp_path / "a.csv"), str(tmp_path / "b.json"),
                     "--out", str(out), "--bootstrap", "50"]) == 0
    md = (out / "report.md").read_text()
    assert "FLAGGED" in md and "MUSHRA excludes L3" in md and "0.375" in md
    for png in ("mos.png", "mushra.png", "ab.png"):
        assert (out / png).stat().st_size > 1000
    assert json.loads((out / "summary.json").read_text())["attention_failed"] == ["L2", "L4"]


def test_malformed_files(tmp_path: Path, capsys) -> None:
    good = _write_csv(tmp_path / "good.csv", _fixture()[:5])
    text = good.read_text()
    truncated = tmp_path / "truncated.csv"
    truncated.write_text(text[: text.rindex(",mos,") + 3])  # the 6th line cut in the middle
    with pytest.raises(SpeechkdError, match=r"truncated\.csv.*line 6.*expected 12.*truncated"):
        read_results([truncated])
    quoted = tmp_path / "quoted.csv"
    quoted.write_text(text + 'L9,mos,"u1\n')  # EOF inside a quoted field
    with pytest.raises(SpeechkdError, match=r"quoted\.csv.*line 7.*truncated"):
        read_results([quoted])
    bad = tmp_path / "bad.csv"
    bad.write_text(text.replace("L1,mos,u1,sysA,,1,", "L1,mos,u1,sysA,,7,", 1))
    with pytest.raises(SpeechkdError, match=r"bad\.csv.*line 2.*score.*1\.\.5"):
        read_results([bad])
    header = tmp_path / "header.csv"
    header.write_text("listener,test,score\nL1,mos,3\n")
    with pytest.raises(SpeechkdError, match=r"header\.csv.*line 1.*lacks"):
        read_results([header])
    js = tmp_path / "cut.json"
    js.write_text(json.dumps({"rows": _fixture()[:3]}, indent=1)[:-40])
    with pytest.raises(SpeechkdError, match=r"cut\.json.*truncated JSON at line \d+"):
        read_results([js])
    # The CLI prints one line naming the file and exits with status 2.
    assert cli_main(["listen", "aggregate", "--results", str(truncated), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truncated.csv" in err[0] and "line 6" in err[0]


# Two speakers; the second name is untrusted text with Markdown and HTML in it (no whitespace).
SPK = {"u1": "spkA", "u2": "spkA", "u3": "spk|<b>"}


def _speaker_rows() -> list[dict]:
    """MOS of L1, L2 per item; by hand: sysA spkA (5+4+3+4)/4 = 4.0, spk|<b> (1+2)/2 = 1.5;
    sysB spkA (2+2+2+3)/4 = 2.25, spk|<b> 5.0. CMOS (L1 only): sysB vs sysA u1 +1, u2 +2, u3 -3."""
    mos = {"sysA": {"u1": [5, 4], "u2": [3, 4], "u3": [1, 2]}, "sysB": {"u1": [2, 2], "u2": [2, 3], "u3": [5, 5]}}
    rows = [_row(l, "mos", u, s, v[i]) for s, items in mos.items() for u, v in items.items()
            for i, l in enumerate(["L1", "L2"])]
    rows.append(_row("L1", "mos", "u3", "_degraded", 1, kind="gold", expected="<=2"))  # not in the tables
    rows.append(_row("L1", "mos", "u3", "sysA", 5, kind="repeat"))
    rows += [_row("L1", "cmos", u, "sysB", v, other="sysA") for u, v in (("u1", 1), ("u2", 2), ("u3", -3))]
    # AB (L2): sysA preferred on u1, no preference on u2, sysB preferred on u3.
    rows += [_row("L2", "ab", u, "sysA", v, other="sysB") for u, v in (("u1", 1), ("u2", 0.5), ("u3", 0))]
    return rows


def _speaker_manifest(path: Path, utt2spk: dict[str, str]) -> Path:
    """A manifest whose audio need not exist (aggregation reads utterances and speakers only)."""
    utts = [{"id": u, "text": "", "systems": {"sysA": f"a/{u}.wav", "sysB": f"b/{u}.wav"},
             **({"speaker": s} if s else {})} for u, s in utt2spk.items()]
    path.write_text(json.dumps({"systems": ["sysA", "sysB"], "utts": utts}))
    return path


def test_scores_per_speaker(tmp_path: Path, capsys) -> None:
    ratings = read_results([_write_csv(tmp_path / "a.csv", _speaker_rows())])
    s = aggregate(ratings, n_boot=20, utt2spk=SPK)
    assert s["speakers"] == ["spkA", "spk|<b>"]  # C order
    by = {d["system"]: d["speakers"] for d in s["tests"]["mos"]["by_speaker"]}
    assert by["sysA"] == {"spkA": {"n": 4, "mean": pytest.approx(4.0)}, "spk|<b>": {"n": 2, "mean": pytest.approx(1.5)}}
    assert by["sysB"] == {"spkA": {"n": 4, "mean": pytest.approx(2.25)}, "spk|<b>": {"n": 2, "mean": pytest.approx(5.0)}}
    assert s["tests"]["cmos"]["by_speaker"] == [{"system": "sysB", "other": "sysA", "speakers": {
        "spkA": {"n": 2, "mean": pytest.approx(1.5)}, "spk|<b>": {"n": 1, "mean": pytest.approx(-3.0)}}}]
    assert s["tests"]["ab"]["by_speaker"] == [{"system": "sysA", "other": "sysB", "speakers": {
        "spkA": {"n": 2, "mean": pytest.approx(0.75)}, "spk|<b>": {"n": 1, "mean": pytest.approx(0.0)}}}]
    # One speaker, or a manifest without speakers: no per-speaker tables.
    for one in ({u: "spkA" for u in SPK}, {u: "" for u in SPK}):
        single = aggregate(ratings, n_boot=20, utt2spk=one)
        assert "speakers" not in single and "by_speaker" not in single["tests"]["mos"]

    out = tmp_path / "report"
    m = _speaker_manifest(tmp_path / "m.json", SPK)
    assert cli_main(["listen", "aggregate", "--results", str(tmp_path / "a.csv"), "--manifest", str(m),
                     "--out", str(out), "--bootstrap", "20"]) == 0
    md = (out / "report.md").read_text()
    assert "| system | spkA | spk\\|&lt;b&gt; |" in md  # the speaker's name is inert in Markdown and HTML
    assert "| sysB | 2.25 (n=4) | 5.00 (n=2) |" in md and "| sysB | 1.50 (n=2) | -3.00 (n=1) |" in md
    assert "| sysA | sysB | 0.75 (n=2) | 0.00 (n=1) |" in md
    assert "<b>" not in md
    # An item that is not an utterance of the manifest: another site's manifest, one line, status 2.
    _speaker_manifest(m, {"u1": "spkA", "u2": "spkB"})
    capsys.readouterr()
    assert cli_main(["listen", "aggregate", "--results", str(tmp_path / "a.csv"), "--manifest", str(m),
                     "--out", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]  # not the log lines
    assert len(err) == 1 and "'u3' is not an utterance of the manifest" in err[0] and "a.csv:line" in err[0]

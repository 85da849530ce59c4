"""`speechkd eval durations`: phone alignment, boundary errors with a known answer, the even-split
baseline, the lag scan, and one-line errors for bad inputs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from speechkd.cli import main
from speechkd.errors import SpeechkdError
from speechkd.eval.durations import align_phones, evaluate_dump, evaluate_utterance, even_split, is_joiner
from speechkd.features.config import FeatureConfig

HOP, SR = 160, 16000  # 10 ms frames, centred: the edge before frame c lies at (c - 0.5) * 10 ms
FC = FeatureConfig(sample_rate=SR, hop_length=HOP, n_fft=320, win_length=320)
TOKENS = ["h", "ə", "<space>", "l", "ˈ", "oʊ", "."]
# flite: internal boundaries hh|ax at 155 ms, ax|l at 205 ms, l|ow at 285 ms; 0.5 s -> 51 frames
PHONES = [("pau", 0.105), ("hh", 0.05), ("ax", 0.05), ("l", 0.08), ("ow", 0.12), ("pau", 0.095)]
EXACT = [16, 4, 2, 6, 2, 11, 10]  # h ends at edge 155; <space> spans 195-215 (mid 205); ˈ spans 275-295 (mid 285)


def test_joiners_and_phone_alignment():
    assert all(is_joiner(t) for t in ("<space>", "ˈ", "ˌ", ".", ",", "?", "<unk>"))
    assert not any(is_joiner(t) for t in ("ə", "ɑːɹ", "n̩", "dʒ"))
    # a two-phone token (ɑːɹ = aa r), a flap (ɾ = t) and an extra flite phone (the second "k")
    ours, flite = ["k", "ɑːɹ", "ɾ", "ə"], ["k", "k", "aa", "r", "t", "ax"]
    assert align_phones(ours, flite) == [(0, 1, 1), (1, 2, 2), (2, 4, 1), (3, 5, 1)]
    assert align_phones([], ["ax"]) == [] and align_phones(["ə"], []) == []


def test_known_answer_lag_and_even_split():
    r = evaluate_utterance(TOKENS, np.array(EXACT), PHONES, FC)
    assert r["teacher"].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    late = np.array(EXACT) + np.array([1, 0, 0, 0, 0, 0, -1])  # every internal boundary one frame later
    assert evaluate_utterance(TOKENS, late, PHONES, FC)["teacher"].tolist() == pytest.approx([10.0] * 3)
    # even split of 51 frames over 7 tokens: 8 8 7 7 7 7 7 (largest remainder, ties to the lower index)
    assert even_split(7, 51).tolist() == [8, 8, 7, 7, 7, 7, 7]
    assert r["even_split"].tolist() == pytest.approx([-80.0, -15.0, 45.0])
    assert r["joiner_ms"] == [20.0, 20.0, 100.0] and len(r["phone_ms"]) == 4
    # without centring the frame edges move by n_fft / 2 - pad
    off = evaluate_utterance(TOKENS, np.array(EXACT), PHONES, dataclasses.replace(FC, center=False))["teacher"]
    assert off.tolist() == pytest.approx([10.0] * 3)
    padded = dataclasses.replace(FC, center=False, n_fft=480, win_length=480, pad=80)  # HiFi-GAN-style framing
    assert evaluate_utterance(TOKENS, np.array(EXACT), PHONES, padded)["teacher"].tolist() == pytest.approx([10.0] * 3)


def write_dump(root, durations: dict[str, list[int]], phones: dict[str, list], tokens: dict[str, list[str]],
               kd_mode: str = "teacher_forced"):
    dump, data = root / "dump", root / "data"
    (dump / "data").mkdir(parents=True)
    data.mkdir()
    FeatureConfig(hop_length=HOP, n_fft=320, win_length=320, sample_rate=SR, fmax=8000.0).save(
        dump / "feature_config.yaml")
    (dump / "dump_info.json").write_text(json.dumps({"kd_mode": kd_mode, "step": 7, "reduction_factor": 3,
                                                     "source": str(root / "feats" / "train")}))
    for u, d in durations.items():
        np.savez(dump / "data" / f"{u}.npz", durations=np.asarray(d, np.int32), focus_rate=np.float32(0.8),
                 num_frames=np.int32(sum(d)))
    (dump / "index.scp").write_text("".join(f"{u} data/{u}.npz {sum(d)}\n" for u, d in sorted(durations.items())))
    def fmt(ph: list) -> str:
        return " ".join(f"{p}:{s}" if isinstance(s, str) else f"{p}:{s:.3f}" for p, s in ph)

    (data / "phone_durations").write_text("".join(f"{u} {fmt(ph)}\n" for u, ph in sorted(phones.items())))
    (root / "tokens").write_text("".join(f"{u} {' '.join(t)}\n" for u, t in sorted(tokens.items())))
    return dump, data, root / "tokens"


def test_evaluate_dump_and_cli(tmp_path, capsys):
    late = [17, 4, 2, 6, 2, 11, 9]
    dump, data, tok = write_dump(tmp_path, {"u1": EXACT, "u2": late}, {"u1": PHONES, "u2": PHONES},
                                 {"u1": TOKENS, "u2": TOKENS})
    res = evaluate_dump(str(dump), str(data), str(tok))
    t = res["summary"]["teacher"]
    assert t["num_boundaries"] == 6
    assert t["mean_abs_ms"] == pytest.approx(5.0) and t["mean_signed_ms"] == pytest.approx(5.0)
    assert res["lag_scan"]["shift_frames_to_mean_abs_ms"]["-1"] == pytest.approx(5.0)
    assert res["summary"]["even_split"]["mean_abs_ms"] > 30
    out = tmp_path / "eval"
    assert main(["eval", "durations", "--teacher-dump", str(dump), "--data-dir", str(data), "--tokens", str(tok),
                 "--out", str(out)]) == 0
    assert "teacher 5.0 ms mean abs error (lag +5.0 ms)" in capsys.readouterr().out
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"]["teacher"]["num_boundaries"] == 6 and len(saved["utts"]) == 2
    assert "| even split (baseline) | 6 |" in (out / "results.md").read_text()


def test_bad_inputs(tmp_path, capsys):
    dump, data, tok = write_dump(tmp_path / "a", {"u1": EXACT, "u2": EXACT}, {"u1": PHONES},
                                 {"u1": TOKENS, "u2": TOKENS})
    with pytest.raises(SpeechkdError, match="1 utterance.*no entry in .*phone_durations: u2"):
        evaluate_dump(str(dump), str(data), str(tok))
    (data / "phone_durations").unlink()
    assert main(["eval", "durations", "--teacher-dump", str(dump), "--data-dir", str(data), "--tokens", str(tok),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no phone_durations file" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    dump, data, tok = write_dump(tmp_path / "b", {"u1": EXACT}, {"u1": PHONES}, {"u1": TOKENS[:-1]})
    with pytest.raises(SpeechkdError, match="utterance 'u1'.*7 durations in the dump but 6 tokens"):
        evaluate_dump(str(dump), str(data), str(tok))
    dump, data, tok = write_dump(tmp_path / "c", {"u1": EXACT + [20]}, {"u1": PHONES}, {"u1": TOKENS + ["ə"]})
    with pytest.raises(SpeechkdError, match="durations cover 71 frames but flite's phones last 0.500 s"):
        evaluate_dump(str(dump), str(data), str(tok))
    dump, data, tok = write_dump(tmp_path / "d", {"u1": EXACT}, {"u1": PHONES}, {"u1": TOKENS},
                                 kd_mode="free_running")
    with pytest.raises(SpeechkdError, match="free_running"):
        evaluate_dump(str(dump), str(data), str(tok))
    with pytest.raises(SpeechkdError, match="not a teacher dump"):
        evaluate_dump(str(tmp_path), str(data), str(tok))
    dump, data, tok = write_dump(tmp_path / "e", {"u1": EXACT}, {"u1": [("pau", "x")]}, {"u1": TOKENS})
    with pytest.raises(SpeechkdError, match="bad phone duration 'pau:x'"):
        evaluate_dump(str(dump), str(data), str(tok))


def test_attached_stress_tokens_map_to_their_phones():
    """Frontend ``stress_tokens: false`` gives ``ˈoʊ``: a phone, aligned like ``oʊ``."""
    from speechkd.eval.durations import align_phones, is_joiner, phone_of

    assert phone_of("ˈoʊ") == "oʊ" and phone_of("ˌaɪ") == "aɪ" and phone_of("ˈ") == "ˈ"
    assert not is_joiner("ˈoʊ") and is_joiner("ˈ") and is_joiner("<space>")
    attached = align_phones(["h", "ə", "l", "ˈoʊ"], ["hh", "ax", "l", "ow"])
    separate = align_phones(["h", "ə", "l", "oʊ"], ["hh", "ax", "l", "ow"])
    assert attached == separate == [(0, 0, 1), (1, 1, 1), (2, 2, 1), (3, 3, 1)]


def test_refined_dump_reports_attention_durations_too(tmp_path):
    """A refined dump (durations_attn in each npz): both rows, the refined one first."""
    from speechkd.eval.durations import durations_markdown

    late = [17, 4, 2, 6, 2, 11, 9]
    dump, data, tok = write_dump(tmp_path, {"u1": EXACT}, {"u1": PHONES}, {"u1": TOKENS})
    np.savez(dump / "data" / "u1.npz", durations=np.asarray(EXACT, np.int32), durations_attn=np.asarray(late, np.int32),
             focus_rate=np.float32(0.8), num_frames=np.int32(sum(EXACT)))
    info = json.loads((dump / "dump_info.json").read_text())
    info["refine"] = {"iters": 5, "attn_weight": 0.1, "acoustic_weight": 10.0, "history": []}
    (dump / "dump_info.json").write_text(json.dumps(info))
    res = evaluate_dump(str(dump), str(data), str(tok))
    assert res["summary"]["teacher"]["mean_abs_ms"] == pytest.approx(0.0, abs=1e-9)
    assert res["summary"]["teacher_attention"]["mean_abs_ms"] == pytest.approx(10.0)
    md = durations_markdown(res, "t")
    assert md.index("teacher, refined (5 iterations") < md.index("teacher, attention only")

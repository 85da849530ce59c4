"""speechkd bench synth (--quick: tiny models, a few frames) and the harness's timed_first."""

from __future__ import annotations

import importlib.util
import json

import pytest

from speechkd.bench import espnet_tts
from speechkd.bench.harness import Bench
from speechkd.cli import main

HAVE_ESPNET = importlib.util.find_spec("espnet2") is not None


def test_timed_first_runs_the_case_exactly_repeats_times():
    calls = {"slow": 0, "fast": 0}

    def count(name):
        calls[name] += 1

    b = Bench("t", repeats=3, warmup=2, baseline="slow")
    b.add("slow", lambda: count("slow"), repeats=1, timed_first=True)
    b.add("fast", lambda: count("fast"))
    b.run()
    assert calls == {"slow": 1, "fast": 2 + 3}  # no untimed call for the slow case
    slow = b.result("slow")
    assert slow.repeats == 1 and slow.first_call_s == slow.times_s[0] and slow.warmup == 0


def test_bench_synth_quick_json(tmp_path, capsys):
    out, md = tmp_path / "s.json", tmp_path / "s.md"
    assert main(["bench", "synth", "--quick", "--repeats", "1", "--warmup", "0", "--threads", "1",
                 "--json", str(out), "--markdown", str(md)]) == 0
    data = json.loads(out.read_text())
    mel, wav = data["benches"]
    names = [r["name"] for r in mel["results"]]
    assert names == ["teacher r=1, no cache", "teacher r=1, KV cache"] + ([espnet_tts.ROW] if HAVE_ESPNET else []) + [
        "teacher r=3, no cache", "teacher r=3, KV cache", "FastSpeech", "FastSpeech 2"]
    # headline ratios against the teachers one would run, not the uncached reference
    assert mel["baseline"] == "teacher r=1, KV cache" and all(r["median_s"] > 0 for r in mel["results"])
    assert mel["extra"]["headline"].startswith("best student mel vs KV-cached r=1 teacher")
    for key in ("fastspeech_mel_vs_uncached_r1", "fastspeech_mel_vs_cached_r1", "fastspeech2_mel_vs_uncached_r1",
                "fastspeech2_mel_vs_cached_r1", "fastspeech2_mel_vs_cached_r3", "kv_cache_speedup_r1"):
        assert mel["extra"]["ratios"][key] > 0
    for key in ("fastspeech_e2e_vs_uncached_r1", "fastspeech2_e2e_vs_uncached_r1", "fastspeech2_e2e_vs_cached_r1",
                "fastspeech2_e2e_rtf", "teacher_r1_uncached_e2e_rtf"):
        assert wav["extra"]["ratios"][key] > 0
    # a ratio is what the table's medians say
    med = {r["name"]: r["median_s"] for r in mel["results"]}
    assert mel["extra"]["ratios"]["fastspeech2_mel_vs_uncached_r1"] == pytest.approx(
        med["teacher r=1, no cache"] / med["FastSpeech 2"], rel=0.01)
    if HAVE_ESPNET:  # ESPnet's decoding at the r=1 teacher's size, its frames checked like every row's
        assert mel["extra"]["ratios"]["fastspeech2_mel_vs_espnet_r1"] == pytest.approx(
            med[espnet_tts.ROW] / med["FastSpeech 2"], rel=0.01)
        assert mel["extra"]["ratios"]["espnet_r1_vs_cached_r1"] > 0 and "vs ESPnet2" in mel["extra"]["headline"]
        assert mel["extra"][espnet_tts.ROW].startswith("ESPnet2 1+1 layers adim 16")
    else:
        assert mel["extra"][espnet_tts.ROW].startswith("skipped: the ESPnet extra is absent")
    wav_names = [r["name"] for r in wav["results"]]
    voc = wav["extra"]["end-to-end vocoder"].split(" (")[0]
    assert {f"FastSpeech 2 + {voc}", f"teacher r=1 (KV cache) + {voc}", "griffin_lim (32 it)"} <= set(wav_names)
    assert "real-time factors" in wav["extra"] and "Mel generation" in md.read_text()
    assert "| teacher r=1, no cache |" in capsys.readouterr().out


def test_bench_synth_bad_options(capsys):
    assert main(["bench", "synth", "--presets", "huge", "--tokens", "5", "--frames", "10"]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert main(["bench", "synth", "--tokens", "50", "--frames", "10"]) == 2
    assert "--tokens" in capsys.readouterr().err


def test_bench_synth_without_the_extra_skips_the_espnet_row_with_the_reason(tmp_path, monkeypatch):
    real = espnet_tts.importlib.util.find_spec
    monkeypatch.setattr(espnet_tts.importlib.util, "find_spec",
                        lambda name, *a: None if name == "espnet2" else real(name, *a))
    out = tmp_path / "s.json"
    assert main(["bench", "synth", "--quick", "--repeats", "1", "--warmup", "0", "--threads", "1",
                 "--json", str(out)]) == 0
    mel = json.loads(out.read_text())["benches"][0]
    assert espnet_tts.ROW not in [r["name"] for r in mel["results"]]
    assert "install_espnet.sh" in mel["extra"][espnet_tts.ROW] and "vs ESPnet2" not in mel["extra"]["headline"]
    assert not any("espnet" in k for k in mel["extra"]["ratios"])

"""`speechkd bench teacher`: the timing function and the suite end to end at toy sizes."""

from __future__ import annotations

import json

import pytest
import torch

from speechkd.bench.teacher import build_model, time_teacher_decoding
from speechkd.cli import main
from speechkd.errors import SpeechkdError


def test_time_teacher_decoding_decodes_exactly_the_frames():
    m = build_model("tiny", 3)
    tokens = torch.randint(4, 80, (1, 5))
    for use_cache in (True, False):
        assert time_teacher_decoding(m, tokens, 23, use_cache) > 0
    with pytest.raises(SpeechkdError, match="unknown model size"):
        build_model("huge", 3)


def test_bench_teacher_cli(tmp_path, capsys):
    out = tmp_path / "teacher.json"
    threads = torch.get_num_threads()
    try:
        assert main(["bench", "teacher", "--sizes", "tiny", "--reduction-factors", "3,1", "--frames", "12",
                     "--tokens", "4", "--repeats", "2", "--warmup", "0", "--threads", "1", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    text = capsys.readouterr().out
    assert "tiny (1+2 layers, d_model 32, r=3)" in text and "| cached |" in text and "speed-up vs uncached" in text and "(12 decoder steps)" in text
    benches = json.loads(out.read_text())["benches"]
    assert len(benches) == 2
    for b in benches:
        assert [r["name"] for r in b["results"]] == ["uncached", "cached"]
        assert float(b["extra"]["cached vs uncached mel, max abs difference"]) < 1e-4
    assert main(["bench", "teacher", "--reduction-factors", "0"]) == 2
    assert main(["bench", "teacher", "--frames", "3", "--tokens", "9"]) == 2
    assert "need 1 <= --tokens <= --frames" in capsys.readouterr().err

"""speechkd bench diffusion on a tiny model: every student case, speed-ups and the target check."""

from __future__ import annotations

import json
from pathlib import Path

from speechkd.cli import main

CONF = Path(__file__).resolve().parents[1] / "recipes/conf/diffusion_tiny.yaml"


def test_bench_diffusion_tiny(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "diffusion", "--config", str(CONF), "--steps", "8", "--tokens", "10",
                 "--frames-per-token", "3.5", "--repeats", "2", "--warmup", "1", "--device", "cpu",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "teacher (8 steps)" in text and "student (2 steps)" in text and "35 frames" in text
    [bench] = json.loads(out.read_text())["benches"]
    names = [r["name"] for r in bench["results"]]
    assert names == ["teacher (8 steps)", "student (4 steps)", "student (2 steps)"]
    assert all(r["speedup"] > 0 for r in bench["results"])
    assert "target >= 3.20x" in bench["extra"]["speed-up of each student over the teacher"]

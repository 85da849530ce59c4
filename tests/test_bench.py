"""The benchmark harness on trivial callables, and `speechkd bench align` end to end with tiny shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from speechkd.bench.harness import SCHEMA, Bench
from speechkd.cli import main
from speechkd.errors import SpeechkdError


class FakeClock:
    """Wall and CPU clocks that only move when a benchmarked callable says so: the harness's
    arithmetic is tested, not the machine's speed (a loaded machine cannot fail it)."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def spend(self, wall: float, cpu: float | None = None) -> None:
        self.wall += wall
        self.cpu += wall if cpu is None else cpu

    @property
    def clock(self):
        return (lambda: self.wall, lambda: self.cpu)


def test_ratios_order_and_statistics():
    calls, fake = [], FakeClock()
    slow_times = iter([0.5, 0.5, 0.004, 0.005, 0.004, 0.003, 0.004])  # first call, warm-up, then 5 timed
    fast_times = iter([0.2, 0.1, 0.001, 0.002, 0.001])
    bench = Bench("sleeps", repeats=5, warmup=2, baseline="slow", clock=fake.clock)
    bench.add("slow", lambda: (calls.append("slow"), fake.spend(next(slow_times))))
    bench.add("fast", lambda: (calls.append("fast"), fake.spend(next(fast_times), cpu=0.0)), repeats=3, note="n")
    bench.run()
    slow, fast = bench.result("slow"), bench.result("fast")
    assert calls.count("slow") == 2 + 5 and calls.count("fast") == 2 + 3      # warm-up includes the first call
    assert calls[4:8] == ["slow", "fast", "slow", "fast"]                    # timed rounds are interleaved
    assert slow.times_s == pytest.approx([0.004, 0.005, 0.004, 0.003, 0.004])
    assert slow.first_call_s == pytest.approx(0.5) and fast.first_call_s == pytest.approx(0.2)
    assert slow.median_s == pytest.approx(0.004) and fast.median_s == pytest.approx(0.001)
    assert slow.speedup == 1.0 and fast.speedup == pytest.approx(4.0)
    assert fast.cpu_median_s == 0.0 and slow.cpu_median_s == pytest.approx(0.004)
    assert fast.repeats == 3 and fast.min_s <= fast.median_s <= max(fast.times_s)
    assert fast.q1_s <= fast.median_s <= fast.q3_s and fast.iqr_s == pytest.approx(fast.q3_s - fast.q1_s)
    md = bench.markdown()
    assert "| slow |" in md and "speed-up vs slow" in md and "1.0x" in md and "4.0x" in md


def test_blocked_order():
    calls, fake = [], FakeClock()
    bench = Bench("blocked", repeats=2, warmup=0, interleave=False, clock=fake.clock)
    bench.add("a", lambda: (calls.append("a"), fake.spend(0.01)))
    bench.add("b", lambda: (calls.append("b"), fake.spend(0.02)))
    bench.run()
    assert calls == ["a", "b", "a", "a", "b", "b"]  # first calls, then each case back to back
    assert bench.result("b").median_s == pytest.approx(0.02)


def test_json_schema_and_environment():
    bench = Bench("noop", repeats=2, warmup=0).add("noop", lambda: None).run()
    d = json.loads(json.dumps(bench.to_dict()))
    assert d["schema"] == SCHEMA and d["baseline"] is None and d["unit"] == "s"
    for key in ("cpu", "cpu_count", "numba_threads", "torch_threads", "device", "load_avg_1m", "numpy"):
        assert key in d["env"], key
    (r,) = d["results"]
    for key in ("name", "median_s", "min_s", "mean_s", "q1_s", "q3_s", "iqr_s", "cpu_median_s", "repeats", "warmup",
                "first_call_s", "times_s", "cpu_times_s", "speedup", "note"):
        assert key in r, key
    assert r["repeats"] == 2 and len(r["times_s"]) == 2 and r["speedup"] is None


def test_sync_is_timed_and_errors():
    fake = FakeClock()
    bench = Bench("sync", repeats=2, warmup=0, clock=fake.clock)
    bench.add("a", lambda: None, sync=lambda: fake.spend(0.002)).run()
    assert bench.result("a").min_s == pytest.approx(0.002)
    with pytest.raises(SpeechkdError, match="added twice"):
        bench.add("a", lambda: None)
    with pytest.raises(SpeechkdError, match="baseline 'zzz' is not a case"):
        Bench("x", baseline="zzz").add("a", lambda: None).run()
    with pytest.raises(SpeechkdError, match="nothing to benchmark"):
        Bench("x").run()


def test_bench_align_cli(tmp_path, capsys):
    out = tmp_path / "align.json"
    rc = main(["bench", "align", "--batch", "3", "--text", "4", "--frames", "12", "--repeats", "2",
               "--warmup", "1", "--backends", "numba,numpy,python", "--blocked", "--json", str(out),
               "--markdown", str(tmp_path / "align.md")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| numba |" in text and "| python |" in text and "speed-up vs numpy" in text
    assert "identical paths: yes (numba, numba parallel, numpy, python)" in text
    d = json.loads(out.read_text())
    assert d["schema"] == SCHEMA and d["suite"] == "align"
    (bench,) = d["benches"]
    assert bench["order"] == "blocked"
    names = [r["name"] for r in bench["results"]]
    assert names == ["numba", "numba, out=", "numba parallel", "numpy", "python"]
    assert (tmp_path / "align.md").read_text() == text


def test_bench_align_bad_options(capsys):
    assert main(["bench", "align", "--backends", "numba,cython"]) == 2
    assert "unknown MAS backend(s) cython" in capsys.readouterr().err
    assert main(["bench", "align", "--text", "9", "--frames", "4", "--backends", "numpy"]) == 2


def test_bench_align_cuda_under_simulator(tmp_path):
    """The GPU table's code path, run by numba's CUDA simulator with tiny shapes."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    out = tmp_path / "cuda.json"
    cmd = [sys.executable, "-m", "speechkd.cli", "bench", "align", "--backends", "cuda", "--cuda-batch", "2",
           "--cuda-text", "3", "--cuda-frames", "7", "--repeats", "1", "--warmup", "0", "--json", str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (bench,) = json.loads(out.read_text())["benches"]
    assert [x["name"] for x in bench["results"]] == ["numba (CPU)", "cuda thread", "cuda block"]
    assert bench["extra"]["identical paths"].startswith("yes")


def test_blocked_order_warmup_first():
    calls = []
    bench = Bench("blocked", repeats=2, warmup=1, interleave=False)
    bench.add("a", lambda: calls.append("a")).add("b", lambda: calls.append("b")).run()
    assert calls == ["a", "b", "a", "a", "b", "b"]          # first calls, then each case back to back
    assert bench.to_dict()["order"] == "blocked" and "each case back to back" in bench.markdown()

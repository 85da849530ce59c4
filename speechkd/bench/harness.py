"""Speed benchmarks side by side in one process: warm-up, repeats, robust statistics, environment.

``Bench`` times named callables on the same inputs in the same process, so
that their ratios are comparable even on a shared machine: cases are run in
interleaved rounds (round r times every case that still needs an r-th repeat),
which spreads background load over all of them instead of penalising
whichever ran during a burst. The price: each case runs right after the
others, whose memory traffic and allocations it inherits (a kernel that takes
is slower between numpy calls than alone). ``interleave=False`` (the
CLI's ``--blocked``) runs each case's repeats back to back instead, in its
steady state, like ``timeit``. Each case reports its first call separately
(JIT compilation, cache loading, CUDA context: excluded from the statistics),
the median wall time (the headline number), the minimum, the interquartile
range and the mean, and the median CPU time of the process (all its threads);
``speedup`` is baseline median / case median (> 1: faster than the baseline).
On a shared machine, wall time well above CPU time for a single-threaded case
means the process waited for a core: rerun when the load average is low. The
environment (CPU model, cores, load average before and after, torch/numba
threads, device, library versions) is recorded with the results.

A callable must finish its work before it returns: GPU cases pass ``sync`` (e.g.
``torch.cuda.synchronize``), called inside the timed region.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from speechkd.errors import SpeechkdError

logger = logging.getLogger(__name__)

SCHEMA = "speechkd.bench/1"


@dataclass
class Case:
    """One named callable and how to time it."""

    name: str
    fn: Callable[[], Any]
    repeats: int
    warmup: int
    sync: Callable[[], Any] | None = None
    note: str = ""
    timed_first: bool = False  # the first call is the first timed repeat (too slow to run twice)


@dataclass
class Result:
    """Timings of one case, in seconds."""

    name: str
    times_s: list[float]
    cpu_times_s: list[float]
    first_call_s: float
    warmup: int
    note: str = ""
    median_s: float = field(init=False)
    cpu_median_s: float = field(init=False)
    min_s: float = field(init=False)
    mean_s: float = field(init=False)
    q1_s: float = field(init=False)
    q3_s: float = field(init=False)
    iqr_s: float = field(init=False)
    repeats: int = field(init=False)
    speedup: float | None = None

    def __post_init__(self) -> None:
        t = np.asarray(self.times_s, dtype=np.float64)
        self.repeats = len(t)
        self.median_s, self.min_s, self.mean_s = float(np.median(t)), float(t.min()), float(t.mean())
        self.q1_s, self.q3_s = (float(q) for q in np.percentile(t, [25, 75]))
        self.iqr_s = self.q3_s - self.q1_s
        self.cpu_median_s = float(np.median(self.cpu_times_s))


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo; platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str = "cpu") -> dict[str, Any]:
    """What the timings depend on: CPU, cores, load, thread settings, device, versions."""
    env: dict[str, Any] = {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(), "numpy": np.__version__, "device": device,
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    try:
        import numba

        from numba.np.ufunc import parallel

        env["numba"] = numba.__version__
        # Asking numba for its thread count launches its threading layer, whose OpenMP
        # threads then compete with torch's (torch Griffin-Lim ran much slower after it).
        # Report the configured count unless a suite has launched the layer already.
        env["numba_threads"] = (numba.get_num_threads() if parallel._is_initialized
                                else numba.config.NUMBA_NUM_THREADS)
        env["numba_threading_layer"] = numba.config.THREADING_LAYER
    except ImportError:
        env["numba"] = None
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        if device.startswith("cuda") and torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        env["torch"] = None
    return env


class Bench:
    """Named callables timed side by side; see the module docstring."""

    default_interleave = True  # what interleave=None means; the CLI's --blocked sets it to False

    def __init__(self, title: str, *, repeats: int = 10, warmup: int = 1, baseline: str | None = None,
                 device: str = "cpu", unit: str = "ms", interleave: bool | None = None,
                 clock: tuple[Callable[[], float], Callable[[], float]] = (time.perf_counter, time.process_time)):
        """``clock``: (wall, process CPU) time sources; tests pass a fake one to check the arithmetic."""
        if unit not in _UNITS:
            raise SpeechkdError(f"unknown time unit '{unit}'", field="unit", hint=f"one of {', '.join(_UNITS)}")
        self.title, self.repeats, self.warmup, self.baseline = title, repeats, warmup, baseline
        self.device, self.unit = device, unit
        self.interleave = Bench.default_interleave if interleave is None else interleave
        self.cases: list[Case] = []
        self.results: list[Result] = []
        self.env: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}  # free-form facts a suite wants in the report (shapes, checks)
        self.clock = clock

    def add(self, name: str, fn: Callable[[], Any], *, repeats: int | None = None, warmup: int | None = None,
            sync: Callable[[], Any] | None = None, note: str = "", timed_first: bool = False) -> "Bench":
        """``timed_first``: no untimed call; the first call is the first timed repeat (and
        ``first_call_s``), for cases too slow to run twice (e.g. uncached autoregressive decoding)."""
        if any(c.name == name for c in self.cases):
            raise SpeechkdError(f"benchmark case '{name}' added twice", field="name")
        r = self.repeats if repeats is None else repeats
        w = self.warmup if warmup is None else warmup
        if r < 1 or w < 0:
            raise SpeechkdError(f"case '{name}': repeats must be >= 1 and warmup >= 0 (got {r}, {w})")
        self.cases.append(Case(name, fn, r, 0 if timed_first else w, sync, note, timed_first))
        return self

    def run(self) -> "Bench":
        """Time every case: first call and warm-up per case, then interleaved timed rounds
        (or, with ``interleave=False``, each case's repeats back to back)."""
        if not self.cases:
            raise SpeechkdError("nothing to benchmark: no cases added")
        if self.baseline is not None and self.baseline not in {c.name for c in self.cases}:
            raise SpeechkdError(f"baseline '{self.baseline}' is not a case "
                                f"({', '.join(c.name for c in self.cases)})", field="baseline")
        self.env = environment(self.device)
        first: dict[str, float] = {}
        times: dict[str, list[tuple[float, float]]] = {c.name: [] for c in self.cases}
        for c in self.cases:
            if c.timed_first:
                continue
            first[c.name] = self._timed(c)[0]
            for _ in range(max(c.warmup - 1, 0)):  # the first call counts as one warm-up run
                self._timed(c)
            logger.debug("%s: first call %.4f s", c.name, first[c.name])
        if self.interleave:
            for r in range(max(c.repeats for c in self.cases)):
                for c in self.cases:
                    if r < c.repeats:
                        times[c.name].append(self._timed(c))
        else:
            for c in self.cases:
                times[c.name] = [self._timed(c) for _ in range(c.repeats)]
        for c in self.cases:
            if c.timed_first:
                first[c.name] = times[c.name][0][0]
        self.results = [Result(c.name, [w for w, _ in times[c.name]], [p for _, p in times[c.name]],
                               first[c.name], c.warmup, c.note) for c in self.cases]
        if self.baseline is not None:
            base = self.result(self.baseline).median_s
            for res in self.results:
                res.speedup = base / res.median_s if res.median_s > 0 else float("inf")
        if hasattr(os, "getloadavg"):
            self.env["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
        return self

    def _timed(self, c: Case) -> tuple[float, float]:
        """(wall, process CPU) seconds of one call, ``sync`` included."""
        wall, cpu = self.clock
        p0, t0 = cpu(), wall()
        c.fn()
        if c.sync is not None:
            c.sync()
        return wall() - t0, cpu() - p0

    def result(self, name: str) -> Result:
        for res in self.results:
            if res.name == name:
                return res
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "title": self.title, "baseline": self.baseline, "unit": "s",
                "order": "interleaved" if self.interleave else "blocked",
                "env": self.env, "extra": self.extra, "results": [asdict(r) for r in self.results]}

    def markdown(self) -> str:
        """A Markdown table of the results with the environment above it."""
        scale = _UNITS[self.unit]
        vs = f"speed-up vs {self.baseline}" if self.baseline else None
        head = ["case", f"median {self.unit}", f"min {self.unit}", f"IQR {self.unit}", f"CPU {self.unit}",
                "repeats", "first call s"] + ([vs] if vs else []) + ["note"]
        rows = []
        for r in self.results:
            row = [r.name, _num(r.median_s * scale), _num(r.min_s * scale), _num(r.iqr_s * scale),
                   _num(r.cpu_median_s * scale), str(r.repeats), f"{r.first_call_s:.3f}"]
            if vs:
                row.append(f"{r.speedup:.1f}x" if r.speedup is not None else "")
            rows.append(row + [r.note])
        e = self.env
        threads = f"numba threads {e.get('numba_threads')}, torch threads {e.get('torch_threads')}"
        load = f"load {e.get('load_avg_1m')} -> {e.get('load_avg_1m_after')}"
        lines = [f"### {self.title}", "",
                 f"{e.get('cpu')} ({e.get('cpu_count')} cores), device {e.get('gpu', e.get('device'))}; "
                 f"{threads}; {load}; numpy {e.get('numpy')}, numba {e.get('numba')}, torch {e.get('torch')}; "
                 f"{'interleaved rounds' if self.interleave else 'each case back to back'}", ""]
        lines += [f"- {k}: {v}" for k, v in self.extra.items()]
        if self.extra:
            lines.append("")
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(head) - 1)) + "|---|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines) + "\n"


_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}


def _num(x: float) -> str:
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


"""CPU threads for training beside other work.

Two things make a budget in minutes buy far fewer steps on a busy machine than the share of CPU
the run actually gets:

- torch's intra-op pool has one thread per core. Every parallel op ends at a barrier, so when a
  neighbour takes one core, each op waits for the thread that sits descheduled behind it;
- while they wait, GNU OpenMP threads spin (``GOMP_SPINCOUNT``, ~300k iterations) before they
  sleep, burning the CPU time the descheduled thread (or the neighbour) needs.

So training takes as many threads as cores are free when it starts (:func:`training_threads`):
beside a busy neighbour it runs one thread and meets no barrier. ``OMP_WAIT_POLICY=PASSIVE`` (sleep
at once) would also cure the spinning, but slows every quiet run; ``speechkd bench contention``
measures each choice quiet and beside busy processes (egs/mini_en/tts1/RESULTS.md).
"""

from __future__ import annotations

import os
import time


def usable_cores() -> list[int]:
    """The CPUs this process may run on (its affinity mask; all CPUs where there is none)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _cpu_times(cpus: list[int]) -> tuple[float, float] | None:
    """(idle, total) jiffies summed over ``cpus`` from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    want = {f"cpu{i}" for i in cpus}
    idle = total = 0.0
    for line in lines:
        parts = line.split()
        if parts and parts[0] in want:
            vals = [float(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
            idle += vals[3] + vals[4]
            total += sum(vals)
    return (idle, total) if total > 0 else None


def free_cores(sample_s: float = 0.25) -> float:
    """How many of :func:`usable_cores` are idle now: the idle share of their time over
    ``sample_s`` seconds (/proc/stat), else the cores minus the 1-minute load average."""
    cpus = usable_cores()
    a = _cpu_times(cpus)
    if a is not None:
        time.sleep(sample_s)
        b = _cpu_times(cpus)
        if b is not None and b[1] > a[1]:
            return len(cpus) * (b[0] - a[0]) / (b[1] - a[1])
    try:
        return max(0.0, len(cpus) - os.getloadavg()[0])
    except OSError:
        return float(len(cpus))


def training_threads(requested: int = 0, free: float | None = None) -> tuple[int, str]:
    """(threads, why): ``requested`` when > 0, else the free cores rounded (at least 1, at most the
    usable cores)."""
    n = len(usable_cores())
    if requested > 0:
        return requested, "trainer.num_threads"
    free = free_cores() if free is None else free
    return max(1, min(n, int(free + 0.5))), f"{free:.1f} of {n} cores free"

"""``speechkd bench serve``: a load test of ``speechkd serve`` on an exported dir.

    speechkd bench serve --model exported/fs2 --clients 8 --duration 120 [--workers 2] [--threads 1]
    speechkd bench serve --model exported/fs2 --clients 2 --requests 5

The server runs in its own process (``python -m speechkd.cli serve --port 0``), as deployed; the
clients are threads of this process, each with its own ``httpx`` connection, posting the same
sentence (``--text``, default ten words) back to back. In order:

1. warm-up and the single-client baseline: ``--baseline`` requests one after the other (their
   median latency is what the p95 under load is compared with);
2. warm time to first audio byte: ``--baseline`` streamed requests, timed from sending to the first
   byte past the 44-byte wav header (the header is sent before any synthesis);
3. the load: ``--clients`` clients for ``--requests`` requests each, or for ``--duration`` seconds;
   latency p50/p95/max of the successful ones, throughput (requests and audio seconds per second),
   errors (a status other than 200, or a transport error) by kind;
4. the server's resident memory (``/proc/PID/status`` VmRSS) after the warm-up and after the load,
   and its growth in percent. The warm-up ends with a few rounds of min(clients, workers) requests
   at once, so that memory each concurrent request needs once (onnxruntime's arena) is in the start
   figure and the growth measures what the load adds.

``--repeats``/``--warmup`` of ``speechkd bench`` do not apply. Run it on an otherwise quiet machine:
the clients share the cores with the server.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import numpy as np

import speechkd
from speechkd.bench.harness import environment
from speechkd.errors import SpeechkdError
from speechkd.utils import args as av

TEXT = "The quick brown fox jumps over the lazy sleeping dog."  # ten words
WAV_HEADER = 44  # bytes of the streamed wav header, sent before any synthesis


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=av.existing_dir, required=True, help="an exported dir (speechkd export)")
    p.add_argument("--clients", type=av.int_range(1, 256), default=8, help="concurrent clients (default %(default)s)")
    p.add_argument("--requests", type=av.int_range(1, 1_000_000), default=20,
                   help="requests per client, when --duration is 0 (default %(default)s)")
    p.add_argument("--duration", type=av.nonneg_float, default=0.0,
                   help="seconds of load instead of a request count (0: --requests; default %(default)s)")
    p.add_argument("--baseline", type=av.int_range(1, 10_000), default=10,
                   help="single-client requests (warm-up and baseline median), and streamed requests for the "
                        "time to first audio byte (default %(default)s)")
    p.add_argument("--text", type=av.nonempty_str, default=TEXT, help="the sentence every request speaks")
    p.add_argument("--speaker", type=av.nonempty_str, default=None, help="multi-speaker exports: the voice")
    p.add_argument("--workers", type=av.int_range(1, 256), default=min(4, os.cpu_count() or 1),
                   help="the server's --workers (default %(default)s)")
    p.add_argument("--threads", type=av.int_range(1, 256), default=1, help="the server's --threads (default %(default)s)")
    p.add_argument("--timeout", type=av.positive_float, default=60.0,
                   help="seconds a request may take before it counts as an error (default %(default)s)")


class LoadTable:
    """The measurements of one run as tables (the interface of :class:`speechkd.bench.harness.Bench`)."""

    def __init__(self, title: str, facts: dict[str, Any], env: dict[str, Any]):
        self.title, self.facts, self.env = title, facts, env

    def markdown(self) -> str:
        f = self.facts
        e = self.env
        lines = [f"### {self.title}", "",
                 f"{e.get('cpu')} ({e.get('cpu_count')} cores); load {e.get('load_avg_1m')} -> "
                 f"{e.get('load_avg_1m_after')}; server: --workers {f['workers']} --threads {f['threads']}", "",
                 "| clients | requests | errors | p50 ms | p95 ms | max ms | req/s | audio s/s | "
                 "p95 / single-client p50 | RSS start MiB | RSS end MiB | RSS growth |",
                 "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                 f"| {f['clients']} | {f['requests']} | {f['errors']} | {f['p50_ms']:.1f} | {f['p95_ms']:.1f} | "
                 f"{f['max_ms']:.1f} | {f['requests_per_s']:.2f} | {f['audio_s_per_s']:.2f} | "
                 f"{f['p95_over_single_p50']:.2f} | {f['rss_start_mib']:.1f} | {f['rss_end_mib']:.1f} | "
                 f"{f['rss_growth_pct']:+.1f}% |", "",
                 f"- single client, {f['baseline_requests']} requests one after the other: p50 "
                 f"{f['single_p50_ms']:.1f} ms ({f['audio_s']:.2f} s of audio per request)",
                 f"- warm time to first audio byte (streamed, first byte past the wav header), median of "
                 f"{f['baseline_requests']}: {f['ttfb_ms']:.1f} ms (min {f['ttfb_min_ms']:.1f})",
                 f"- mean latency {f['mean_ms']:.1f} ms = {f['mean_over_single_p50']:.2f} x the single-client p50; "
                 f"queueing floor of that ratio {f['queueing_floor']:.2f} (clients / requests served at once: "
                 "without batching no server gets below it, and its p95 sits above its mean)",
                 f"- load: {f['load_seconds']:.1f} s" + (f"; errors by kind: {f['error_kinds']}" if f["errors"] else ""),
                 ""]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "facts": self.facts, "environment": self.env}


def queueing_floor(clients: int, workers: int, threads: int, cores: int) -> float:
    """The least mean latency under load, in units of one request's latency alone. C closed-loop
    clients (no pause between requests) keep C requests in the system, so by Little's law the mean
    latency is C / throughput; with at most m = min(C, workers, cores // threads) requests served at
    once, each as fast as alone, throughput is at most m / latency-alone, hence the floor C / m. Only
    a server that does less work per request under load (batching) beats it."""
    served = max(1, min(clients, workers, max(1, cores // max(1, threads))))
    return clients / served


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (Linux /proc), 0 where unknown."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def start_server(args: argparse.Namespace, httpx: Any) -> tuple[subprocess.Popen, str]:
    """``speechkd serve`` on a free loopback port; (process, base url) once /health answers."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(speechkd.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root] + [p for p in os.environ.get("PYTHONPATH", "")
                                                                 .split(os.pathsep) if p])}
    cmd = [sys.executable, "-m", "speechkd.cli", "serve", "--model", args.model, "--port", "0",
           "--workers", str(args.workers), "--threads", str(args.threads),
           "--max-pending", str(max(16, 2 * args.clients)), "--max-chars", str(max(1000, len(args.text)))]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, url = [], None
    for line in proc.stdout:  # type: ignore[union-attr]
        lines.append(line)
        m = re.search(r"on (http://[^\s/]+)/", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.wait(timeout=30)
        raise SpeechkdError("the server did not start: " + " ".join("".join(lines).split())[-300:],
                            path=args.model, field="--model")
    # drain its output so that a chatty server never blocks on a full pipe
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise SpeechkdError("the server did not answer /health within 60 s", path=args.model)
        time.sleep(0.05)


def warm_concurrent(httpx: Any, url: str, body: dict, n: int, timeout: float, rounds: int = 3) -> None:
    """``rounds`` times, ``n`` requests at once (one connection each), so that every worker has run;
    a failed one stops the run with one line (the single-client requests before it succeeded)."""
    failed: list[str] = []

    def one() -> None:
        try:
            with httpx.Client(timeout=timeout) as c:
                r = c.post(url + "/synthesize", json=body)
            if r.status_code != 200:
                failed.append(f"status {r.status_code}: {r.text[:200]}")
        except httpx.HTTPError as e:
            failed.append(f"{type(e).__name__}: {e}")

    for _ in range(rounds if n > 1 else 0):
        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed:
            raise SpeechkdError(f"{n} requests at once failed during the warm-up ({failed[0]})",
                                hint="check the server's --max-pending and its log")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # graceful: requests in flight finish
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(args: argparse.Namespace) -> list[LoadTable]:
    try:
        import httpx  # why: the serve extra; only this suite needs a client
        import soundfile as sf
    except ImportError:
        raise SpeechkdError("httpx is not installed", hint="pip install 'speechkd[serve]'") from None
    body = {"text": args.text, **({"speaker": args.speaker} if args.speaker else {})}
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    env = environment()
    proc, url = start_server(args, httpx)
    try:
        with httpx.Client(timeout=args.timeout) as c:
            single, audio_s = [], 0.0
            for _ in range(args.baseline):  # warm-up and single-client baseline
                t0 = time.perf_counter()
                r = c.post(url + "/synthesize", json=body)
                single.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise SpeechkdError(f"the server answered {r.status_code}: {r.text[:200]}", path=args.model,
                                        field="--text" if r.status_code in (400, 413) else "--model")
                audio_s = sf.info(io.BytesIO(r.content)).duration
            ttfb = []
            for _ in range(args.baseline):
                t0 = time.perf_counter()
                with c.stream("POST", url + "/synthesize", json={**body, "stream": True}) as r:
                    got, first = 0, None
                    for chunk in r.iter_raw():  # all of it: the next request starts on a quiet server
                        got += len(chunk)
                        if first is None and got > WAV_HEADER:
                            first = time.perf_counter() - t0
                    if r.status_code == 200 and first is not None:
                        ttfb.append(first)
        # warm at the load's concurrency: each request in flight at once holds its own buffers (onnxruntime's
        # arena grows to fit them once), so memory measured after single requests would count that as growth
        warm_concurrent(httpx, url, body, min(args.clients, args.workers), args.timeout)
        rss_start = rss_bytes(proc.pid)
        latencies: list[float] = []
        errors: Counter = Counter()
        lock = threading.Lock()
        deadline = time.perf_counter() + args.duration if args.duration > 0 else None

        def client() -> None:
            with httpx.Client(timeout=args.timeout) as c:
                n = 0
                while (time.perf_counter() < deadline) if deadline else (n < args.requests):
                    n += 1
                    t0 = time.perf_counter()
                    try:
                        r = c.post(url + "/synthesize", json=body)
                        kind = None if r.status_code == 200 else f"HTTP {r.status_code}"
                    except httpx.HTTPError as e:
                        kind = type(e).__name__
                    dt = time.perf_counter() - t0
                    with lock:
                        if kind:
                            errors[kind] += 1
                        else:
                            latencies.append(dt)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rss_end = rss_bytes(proc.pid)
    finally:
        stop_server(proc)
    if hasattr(os, "getloadavg"):
        env["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    lat = np.asarray(latencies or [float("nan")]) * 1e3
    single_p50 = float(np.median(single)) * 1e3
    facts = {"model": os.path.abspath(args.model), "text": args.text, "clients": args.clients,
             "workers": args.workers, "threads": args.threads, "requests": len(latencies) + sum(errors.values()),
             "errors": sum(errors.values()), "error_kinds": dict(errors),
             "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
             "max_ms": float(lat.max()), "load_seconds": wall, "requests_per_s": len(latencies) / wall,
             "audio_s": audio_s, "audio_s_per_s": len(latencies) * audio_s / wall,
             "baseline_requests": args.baseline, "single_p50_ms": single_p50,
             "p95_over_single_p50": float(np.percentile(lat, 95)) / single_p50,
             "mean_ms": float(np.mean(lat)), "mean_over_single_p50": float(np.mean(lat)) / single_p50,
             "queueing_floor": queueing_floor(args.clients, args.workers, args.threads, os.cpu_count() or 1),
             "ttfb_ms": float(np.median(ttfb)) * 1e3 if ttfb else float("nan"),
             "ttfb_min_ms": float(np.min(ttfb)) * 1e3 if ttfb else float("nan"),
             "rss_start_mib": rss_start / 2 ** 20, "rss_end_mib": rss_end / 2 ** 20,
             "rss_growth_pct": 100.0 * (rss_end - rss_start) / rss_start if rss_start else float("nan")}
    load = f"{args.duration:g} s" if args.duration > 0 else f"{args.requests} requests each"
    title = (f"speechkd serve {os.path.basename(os.path.normpath(args.model))}: {args.clients} client(s), {load}, "
             f"{len(args.text.split())}-word sentence")
    return [LoadTable(title, facts, env)]

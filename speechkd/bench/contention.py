"""``speechkd bench contention``: optimizer steps per minute of a training config, quiet vs beside
busy processes, with the old and the new CPU thread settings, side by side in one run.

A time budget (``trainer.max_minutes``) buys steps at the rate measured here, so a run beside
other work gets fewer steps; how many fewer depends on the thread settings
(:mod:`speechkd.utils.threads`):

- ``old``: torch's default, one intra-op thread per core, and OpenMP's default wait policy
  (threads spin at every barrier before they sleep);
- ``new``: what the training runner does: threads from the cores free when training starts
  (OpenMP's wait policy left alone);
- ``passive`` (``--modes old,passive,new``): the other remedy, ``OMP_WAIT_POLICY=PASSIVE`` with
  the default threads (threads sleep at once at a barrier). It was measured against ``new`` and not
  kept: it costs quiet runs a share of their steps (egs/mini_en/tts1/RESULTS.md, "Training beside
  other work").

Each cell is a fresh subprocess (thread settings apply when torch loads), timing full training
steps (forward, losses, backward, gradient clipping, Adam) on a synthetic batch of the config's
shapes (``data.batch_frames`` frames in utterances of ``--frames`` frames), so no data is needed.
A ``busy`` cell first starts ``--busy`` processes spinning ``while 1: pass`` and always kills them
afterwards. The table gives steps per minute and the busy / quiet ratio of each setting.
Measure on an otherwise quiet machine: anything else running is one more neighbour.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from speechkd.bench.harness import environment
from speechkd.errors import SpeechkdError
from speechkd.models import get_model_class
from speechkd.train.config import load_train_config
from speechkd.utils import args as av
from speechkd.utils.threads import training_threads

logger = logging.getLogger(__name__)

MODES = {"old": "torch default threads (one per core), OpenMP wait policy unset",
         "new": "threads = free cores at start, OpenMP wait policy unset (the training runner)",
         # the other remedy, measured beside it
         "passive": "torch default threads, OMP_WAIT_POLICY=PASSIVE"}
FREE_THREADS = ("new",)  # modes that choose threads from the free cores
PASSIVE = ("passive",)  # modes that run with OMP_WAIT_POLICY=PASSIVE
BUSY_CODE = "while 1: pass"
# OpenMP reads its wait policy once, when torch loads it: the cell's environment sets it
WORKER_CODE = ("import os, sys; policy = os.environ.get('OMP_WAIT_POLICY', 'unset'); import torch; "
               "from speechkd.bench.contention import worker; worker(sys.argv[1], policy)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=av.text_file, required=True, help="training YAML whose model and batch size are timed "
                                                   "(e.g. recipes/conf/teacher_ar_demo.yaml)")
    p.add_argument("--busy", type=av.int_range(0, 64), default=1, help="competing busy processes in the busy cells")
    p.add_argument("--seconds", type=av.positive_float, default=30.0, help="timed seconds per cell (after the warm-up steps)")
    p.add_argument("--warmup-steps", type=av.nonneg_int, default=2, help="untimed steps at the start of each cell")
    p.add_argument("--frames", type=av.int_range(8, 100000), default=300, help="mel frames per synthetic utterance "
                                                          "(utterances per batch: data.batch_frames / frames)")
    p.add_argument("--frames-per-token", type=av.positive_int, default=6, help="synthetic tokens = frames / this")
    p.add_argument("--modes", type=av.nonempty_str, default="old,new", help="comma list of thread settings: " +
                   "; ".join(f"{k}: {v}" for k, v in MODES.items()))


@dataclass
class Cell:
    """One measurement: ``mode`` thread settings beside ``busy`` busy processes."""

    mode: str
    busy: int
    steps: int
    seconds: float
    cpu_seconds: float
    threads: int
    omp_wait_policy: str

    @property
    def steps_per_minute(self) -> float:
        return 60.0 * self.steps / self.seconds if self.seconds > 0 else 0.0


class ContentionTable:
    """The cells of one run as a table (the interface of :class:`speechkd.bench.harness.Bench`)."""

    def __init__(self, title: str, cells: list[Cell], env: dict[str, Any] | None = None):
        self.title, self.cells, self.env = title, cells, env or {}

    def rows(self) -> list[dict[str, Any]]:
        """Per mode: quiet and busy steps/min, busy / quiet, and the threads each cell used."""
        out = []
        for mode in dict.fromkeys(c.mode for c in self.cells):
            quiet = [c for c in self.cells if c.mode == mode and c.busy == 0]
            busy = [c for c in self.cells if c.mode == mode and c.busy > 0]
            q = quiet[0].steps_per_minute if quiet else float("nan")
            b = busy[0].steps_per_minute if busy else float("nan")
            out.append({"mode": mode, "quiet_steps_per_min": q, "busy_steps_per_min": b,
                        "busy_over_quiet": b / q if q > 0 else float("nan"),
                        "threads_quiet": quiet[0].threads if quiet else None,
                        "threads_busy": busy[0].threads if busy else None,
                        "busy_processes": busy[0].busy if busy else 0})
        return out

    def markdown(self) -> str:
        n = max((c.busy for c in self.cells), default=0)
        lines = [f"### {self.title}", "",
                 f"| threads | quiet steps/min | beside {n} busy steps/min | busy / quiet | threads quiet, busy |",
                 "|---|---:|---:|---:|---|"]
        for r in self.rows():
            lines.append(f"| {r['mode']}: {MODES.get(r['mode'], '')} | {r['quiet_steps_per_min']:.1f} | "
                         f"{r['busy_steps_per_min']:.1f} | {r['busy_over_quiet']:.2f} | "
                         f"{r['threads_quiet']}, {r['threads_busy']} |")
        return "\n".join(lines) + "\n\n"

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "cells": [{**asdict(c), "steps_per_minute": c.steps_per_minute}
                                               for c in self.cells],
                "rows": self.rows(), "environment": self.env}


# ---- the parent: busy neighbours and one subprocess per cell ---------------------------------------
@contextlib.contextmanager
def busy_processes(n: int) -> Iterator[list[subprocess.Popen]]:
    """``n`` children spinning ``while 1: pass``, killed on the way out whatever happens."""
    procs: list[subprocess.Popen] = []
    old_term = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a SIGTERM'd bench still runs the finally
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", BUSY_CODE], stdin=subprocess.DEVNULL))
        if procs:
            time.sleep(1.0)  # let the scheduler see them before the cell measures the free cores
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        signal.signal(signal.SIGTERM, old_term)


def cell_env(mode: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # both settings choose their own thread counts
        env.pop(k, None)
    if mode in PASSIVE:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def measure(mode: str, busy: int, args: argparse.Namespace) -> Cell:
    """One cell in a fresh interpreter."""
    spec = {"config": args.config, "mode": mode, "seconds": args.seconds, "warmup_steps": args.warmup_steps,
            "frames": args.frames, "frames_per_token": args.frames_per_token}
    with busy_processes(busy):
        try:
            res = subprocess.run([sys.executable, "-c", WORKER_CODE, json.dumps(spec)], env=cell_env(mode),
                                 capture_output=True, text=True, timeout=20 * args.seconds + 300)
        except subprocess.TimeoutExpired:
            raise SpeechkdError(f"the {mode} cell beside {busy} busy processes did not finish") from None
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise SpeechkdError(f"the {mode} cell failed (exit {res.returncode}): {tail}", path=args.config)
    out = json.loads(lines[-1])
    return Cell(mode=mode, busy=busy, **out)


def run(args: argparse.Namespace) -> list[ContentionTable]:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise SpeechkdError(f"unknown mode(s) {', '.join(bad) or '(none)'}", field="--modes",
                            hint=f"choose from {', '.join(MODES)}")
    if args.busy < 1 or not args.seconds > 0 or args.warmup_steps < 0 or args.frames < 2 or args.frames_per_token < 1:
        raise SpeechkdError("need --busy >= 1, --seconds > 0, --warmup-steps >= 0, --frames >= 2, "
                            "--frames-per-token >= 1", field="--busy/--seconds/--warmup-steps/--frames")
    cfg = load_train_config(args.config)  # refuse a bad config here, not in every cell
    env = environment()
    cells = []
    for mode in modes:
        for busy in (0, args.busy):
            logger.info("contention: %s threads, %d busy process(es), %.0f s", mode, busy, args.seconds)
            cells.append(measure(mode, busy, args))
    title = (f"{cfg.model} ({os.path.basename(args.config)}): optimizer steps per minute, quiet vs beside "
             f"{args.busy} busy process(es); {args.seconds:g} s per cell")
    return [ContentionTable(title, cells, env)]


# ---- the child: time training steps ----------------------------------------------------------------
def synthetic_batch(cfg, frames: int, frames_per_token: int, n_vocab: int, n_mels: int, needs: tuple[str, ...]):
    """A batch of the config's shape: data.batch_frames // frames utterances of ``frames`` frames."""
    import torch

    b = max(1, cfg.data.batch_frames // frames)
    n_tok = max(1, frames // frames_per_token)
    g = torch.Generator().manual_seed(0)
    batch = {"utts": [f"u{i}" for i in range(b)], "tokens": torch.randint(4, n_vocab, (b, n_tok), generator=g),
             "token_lens": torch.full((b,), n_tok), "mels": torch.randn(b, frames, n_mels, generator=g) - 4.0,
             "mel_lens": torch.full((b,), frames)}
    dur = torch.full((b, n_tok), frames // n_tok)
    dur[:, -1] += frames - int(dur[0].sum())
    extra = {"durations": dur, "pitch": torch.zeros(b, n_tok), "energy": torch.zeros(b, n_tok)}
    unknown = [k for k in needs if k not in extra]
    if unknown:
        raise SpeechkdError(f"the model needs {', '.join(unknown)}, which the synthetic batch does not make",
                            field="--config")
    batch.update({k: extra[k] for k in needs})
    return batch


def worker(spec_json: str, omp_wait_policy: str) -> None:
    """Time training steps for ``spec["seconds"]``; print one JSON line. ``omp_wait_policy``: the
    policy OpenMP saw when torch loaded it."""
    import torch

    spec = json.loads(spec_json)
    if spec["mode"] in FREE_THREADS:
        torch.set_num_threads(training_threads(0)[0])
    cfg = load_train_config(spec["config"])
    cls = get_model_class(cfg.model)
    n_vocab, n_mels = 80, 80
    torch.manual_seed(0)
    model = cls(cfg.model_conf, n_vocab=n_vocab, n_mels=n_mels).train()
    needs = tuple(cls.batch_needs)
    batch = synthetic_batch(cfg, spec["frames"], spec["frames_per_token"], n_vocab, n_mels, needs)
    o = cfg.optim
    opt = torch.optim.Adam(model.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps)

    def step(i: int) -> None:
        out = model(batch["tokens"], batch["token_lens"], batch["mels"], batch["mel_lens"],
                    **{k: batch[k] for k in needs})
        loss, _ = model.losses(batch, out, step=i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if o.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        opt.step()

    for i in range(spec["warmup_steps"]):
        step(i)
    t0, c0, n = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - t0 < spec["seconds"]:
        step(spec["warmup_steps"] + n)
        n += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"steps": n, "seconds": wall, "cpu_seconds": cpu, "threads": torch.get_num_threads(),
                      "omp_wait_policy": omp_wait_policy}), flush=True)

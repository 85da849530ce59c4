"""``speechkd bench <suite>``: speed benchmarks side by side in one process.

Suites (explicit registry, imported only when run):
  align    monotonic alignment search: numba vs numpy vs pure Python (and CUDA when a GPU is usable)
  diffusion  N-step diffusion teacher vs k-step distilled students: mel generation time, speed-up vs 0.8 N/k
  vocoder  vocoders on the same ~10 s of audio: Griffin-Lim (torch, librosa), Vocos-like, WORLD synthesis
           (pyworld, harmonic kernel: numba CPU twin, CUDA when present)
  synth    mel generation and end to end, batch 1, ~10 s: AR teacher (r=1/r=3, KV cache or not),
           FastSpeech, FastSpeech 2, each vocoder; paper and demo sizes; ratios and RTFs
  teacher  autoregressive Transformer-TTS decoding with vs without the KV cache (r=3 and r=1, ~800 frames)
  serve    load test of `speechkd serve` on an exported dir: N concurrent clients, latency p50/p95,
           throughput, errors, server RSS growth, warm time to first audio byte (--repeats/--warmup
           do not apply)
  contention  training steps per minute quiet vs beside busy processes, old vs new thread settings
           (one subprocess per cell; --repeats/--warmup do not apply)

Every suite prints Markdown tables (statistics from speechkd.bench.harness)
and, with ``--json``, writes them with the environment to a JSON file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from speechkd.bench.harness import SCHEMA, Bench
from speechkd.errors import SpeechkdError
from speechkd.utils import args as av
from speechkd.utils.io import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

# suite -> (module with add_arguments(p) and run(args) -> list[Bench], help)
SUITES: dict[str, tuple[str, str]] = {
    "align": ("speechkd.bench.align", "monotonic alignment search backends (numba, numpy, python, cuda)"),
    "vocoder": ("speechkd.bench.vocoder", "vocoders on the same ~10 s of audio (Griffin-Lim, Vocos-like, WORLD; CUDA when present)"),
    "synth": ("speechkd.bench.synth", "teacher (cached, uncached) vs FastSpeech / FastSpeech 2, vocoders, end to end"),
    "diffusion": ("speechkd.bench.diffusion", "N-step diffusion teacher vs its k-step distilled students (ProDiff)"),
    "export": ("speechkd.bench.export", "a student on PyTorch vs its exported ONNX dirs (fp32, int8): RTF, MCD"),
    "serve": ("speechkd.bench.serve", "load test of speechkd serve: N concurrent clients, p50/p95 latency, "
                                      "throughput, errors, RSS growth, warm time to first audio byte"),
    "teacher": ("speechkd.bench.teacher", "AR Transformer-TTS decoding with vs without the KV cache"),
    "contention": ("speechkd.bench.contention", "training steps/min quiet vs beside busy processes, old vs new "
                                                "thread settings"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="suite", metavar="SUITE")
    sub.required = True
    for name, (module, help_) in SUITES.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--repeats", type=av.positive_int, default=20, help="timed runs per case")
        p.add_argument("--warmup", type=av.nonneg_int, default=2,
                       help="untimed runs per case, the first call included (which is always excluded)")
        p.add_argument("--json", type=av.output_file,
                       default=None, help="write the results (with the environment) to this JSON file")
        p.add_argument("--markdown", type=av.output_file,
                       default=None, help="also write the Markdown tables to this file")
        p.add_argument("--blocked", action="store_true",
                       help="run each case's repeats back to back (steady state, like timeit) instead of "
                            "interleaved rounds (robust to load bursts, but each case inherits the others' "
                            "cache and allocator state)")
        p.set_defaults(_suite_module=module)
        importlib.import_module(module).add_arguments(p)


def main(args: argparse.Namespace) -> int:
    if args.repeats < 1 or args.warmup < 0:
        raise SpeechkdError(f"--repeats must be >= 1 and --warmup >= 0 (got {args.repeats}, {args.warmup})")
    Bench.default_interleave = not args.blocked
    try:
        benches = importlib.import_module(args._suite_module).run(args)
    finally:
        Bench.default_interleave = True
    text = "\n".join(b.markdown() for b in benches)
    print(text, end="")
    if args.markdown:
        atomic_write_text(args.markdown, text)
    if args.json:
        atomic_write_json(args.json, {"schema": SCHEMA, "suite": args.suite, "argv": sys.argv[1:],
                                      "benches": [b.to_dict() for b in benches]})
        logger.info("wrote %s", args.json)
    return 0

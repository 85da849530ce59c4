"""``speechkd bench align``: monotonic alignment search backends side by side.

CPU table (default B=16, 100 tokens x 800 frames, the shape of the reference
table in egs/mini_en/tts1/RESULTS.md): the numba kernel (serial, the default; with a reused
output array; parallel over numba's threads), the numpy-vectorised version (the baseline of the speed-up column) and the
pure-Python reference (fewer repeats: it is slow). GPU table, when numba can
use a GPU (default B=64, 200 x 1600): the numba CPU kernel (baseline) against
both CUDA kernels on device-resident input. Every table also checks that all
its backends returned identical paths. Inputs are seeded standard-normal
float32 scores at full length (no padding).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from speechkd.align.mas import maximum_path_numpy, maximum_path_python
from speechkd.bench.harness import Bench
from speechkd.errors import SpeechkdError
from speechkd.utils import args as av

logger = logging.getLogger(__name__)

CPU_BACKENDS = ("numba", "numpy", "python")
ALL_BACKENDS = CPU_BACKENDS + ("cuda",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=av.positive_int, default=16, help="CPU table: batch size B")
    p.add_argument("--text", type=av.positive_int, default=100, help="CPU table: tokens S")
    p.add_argument("--frames", type=av.positive_int, default=800, help="CPU table: frames T")
    p.add_argument("--backends", default="auto",
                   help="comma list of numba,numpy,python,cuda; 'auto': the CPU ones, plus cuda when a GPU is usable")
    p.add_argument("--python-repeats", type=av.positive_int, default=3, help="repeats of the pure-Python reference")
    p.add_argument("--threads", type=av.int_range(1, av.MAX_JOBS),
                   default=None, help="numba threads (default: numba's default)")
    p.add_argument("--cuda-batch", type=av.positive_int, default=64, help="GPU table: batch size")
    p.add_argument("--cuda-text", type=av.positive_int, default=200, help="GPU table: tokens")
    p.add_argument("--cuda-frames", type=av.positive_int, default=1600, help="GPU table: frames")
    p.add_argument("--seed", type=av.seed, default=0)


def _backends(spec: str) -> tuple[list[str], bool]:
    """(backends, cuda explicitly asked for)."""
    if spec == "auto":
        return list(CPU_BACKENDS) + ["cuda"], False
    names = [b.strip() for b in spec.split(",") if b.strip()]
    bad = [b for b in names if b not in ALL_BACKENDS]
    if bad or not names:
        raise SpeechkdError(f"unknown MAS backend(s) {', '.join(bad) or '(none given)'}", field="--backends",
                            hint=f"choose from {', '.join(ALL_BACKENDS)}")
    return names, "cuda" in names


def _scores(batch: int, text: int, frames: int, seed: int) -> np.ndarray:
    if not (batch >= 1 and 1 <= text <= frames):
        raise SpeechkdError(f"bad shape B={batch}, S={text}, T={frames}", field="--batch/--text/--frames",
                            hint="need B >= 1 and 1 <= S <= T")
    return np.random.default_rng(seed).standard_normal((batch, text, frames), dtype=np.float32)


def _identical(paths: dict[str, np.ndarray]) -> str:
    names = list(paths)
    ref = paths[names[0]]
    diff = [n for n in names[1:] if not np.array_equal(paths[n], ref)]
    return f"DIFFER: {', '.join(diff)} vs {names[0]}" if diff else f"yes ({', '.join(names)})"


def run(args: argparse.Namespace) -> list[Bench]:
    import numba

    from speechkd.align.mas_cuda import cuda_available  # why: numba.cuda, optional
    from speechkd.align.mas_numba import maximum_path_numba  # why: numba JIT, optional

    names, cuda_asked = _backends(args.backends)
    if args.threads is not None:
        numba.set_num_threads(args.threads)
    benches = []
    cpu = [b for b in names if b != "cuda"]
    if cpu:
        v = _scores(args.batch, args.text, args.frames, args.seed)
        s_len = np.full(args.batch, args.text, np.int64)
        t_len = np.full(args.batch, args.frames, np.int64)
        bench = Bench(f"MAS, B={args.batch}, {args.text} tokens x {args.frames} frames (CPU)",
                      repeats=args.repeats, warmup=args.warmup,
                      baseline="numpy" if "numpy" in cpu else None)
        out = np.empty(v.shape, np.int32)
        if "numba" in cpu:
            bench.add("numba", lambda: maximum_path_numba(v, s_len, t_len), note="serial (the default)")
            bench.add("numba, out=", lambda: maximum_path_numba(v, s_len, t_len, out=out),
                      note="serial, output array reused")
            bench.add("numba parallel", lambda: maximum_path_numba(v, s_len, t_len, parallel=True),
                      note=f"prange over items, {numba.get_num_threads()} threads")
        if "numpy" in cpu:
            bench.add("numpy", lambda: maximum_path_numpy(v, s_len, t_len), note="loop over frames")
        if "python" in cpu:
            bench.add("python", lambda: maximum_path_python(v, s_len, t_len),
                      repeats=min(args.python_repeats, args.repeats), warmup=min(args.warmup, 1),
                      note="pure-Python reference")
        bench.extra["first call"] = "JIT compilation or loading numba's on-disk cache; not in the statistics"
        bench.run()
        # Checked after timing, so that the first timed call is the one that compiles.
        bench.extra["identical paths"] = _identical({c.name: c.fn() for c in bench.cases if c.name != "numba, out="})
        benches.append(bench)
    if "cuda" in names:
        from numba import config

        usable = cuda_available() and (not config.ENABLE_CUDASIM or cuda_asked)
        if usable:
            benches.append(_cuda_bench(args))
        elif cuda_asked:
            raise SpeechkdError("no usable CUDA device for --backends cuda (numba.cuda.is_available() is False)",
                                field="--backends", hint="drop cuda, or run on a machine with a GPU")
        else:
            logger.info("no GPU usable by numba: CUDA timings skipped")
    return benches


def _cuda_bench(args: argparse.Namespace) -> Bench:
    from numba import cuda

    from speechkd.align.mas_cuda import block_tile, maximum_path_cuda  # why: numba.cuda, optional
    from speechkd.align.mas_numba import maximum_path_numba  # why: numba JIT, optional

    B, S, T = args.cuda_batch, args.cuda_text, args.cuda_frames
    v = _scores(B, S, T, args.seed + 1)
    s_len, t_len = np.full(B, S, np.int64), np.full(B, T, np.int64)
    try:
        import torch

        use_torch = torch.cuda.is_available()
    except ImportError:
        use_torch = False
    if use_torch:
        dev_v = torch.from_numpy(v).cuda()
        sync, to_host, device = torch.cuda.synchronize, (lambda p: p.cpu().numpy()), "cuda"
    else:  # numba device arrays (also what the CUDA simulator runs)
        dev_v = cuda.to_device(v)
        sync, to_host, device = cuda.synchronize, (lambda p: p.copy_to_host()), "cuda (numba)"
    bench = Bench(f"MAS, B={B}, {S} tokens x {T} frames (GPU vs CPU)", repeats=args.repeats,
                  warmup=args.warmup, baseline="numba (CPU)", device=device)
    bench.add("numba (CPU)", lambda: maximum_path_numba(v, s_len, t_len), note="host input and output")
    variants = ["thread"] + (["block"] if block_tile(S) else [])
    for variant in variants:
        name = f"cuda {variant}"
        bench.add(name, (lambda var=variant: maximum_path_cuda(dev_v, s_len, t_len, variant=var)), sync=sync,
                  note="device input and output" + (", one thread per utterance" if variant == "thread"
                                                    else ", one block per utterance"))
    bench.extra["input"] = "torch CUDA tensor" if use_torch else "numba device array"
    bench.run()
    paths = {c.name: c.fn() for c in bench.cases}
    bench.extra["identical paths"] = _identical({n: p if n == "numba (CPU)" else to_host(p) for n, p in paths.items()})
    return bench

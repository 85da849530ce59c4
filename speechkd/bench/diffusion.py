"""``speechkd bench diffusion``: mel generation time of an N-step diffusion teacher against its
k-step distilled students, side by side in one process.

Every case runs the whole ``inference`` (FastSpeech 2 condition once, then k denoiser passes) on
the same token sequence with the same fixed durations (``--tokens`` tokens x ``--frames-per-token``:
100 x 8.6 = 860 frames, ~14 s at a 16 ms hop), batch 1. The speed-up of a k-step student over the
N-step teacher is at most N/k (the condition is a fixed cost); the target of the ProDiff issue
is >= 0.8 N/k, checked in ``extra``.

Models: exp dirs of the chain (``--exps exp/diffusion_8 exp/diffusion_4 exp/diffusion_2``: the one
with the most steps is the teacher), or, without ``--exps``, one randomly initialised model of a
training YAML (``--config``, default the ProDiff-sized DiffusionConfig) sampled with N, N/2, ...,
2 steps -- a student is the same network with fewer steps, so its timing does not depend on the
weights.
"""

from __future__ import annotations

import argparse

from speechkd.bench.harness import Bench
from speechkd.checkpoints import load_model
from speechkd.errors import SpeechkdError
from speechkd.utils import args as av
from speechkd.features.config import FeatureConfig
from speechkd.infer.vocode import resolve_device
from speechkd.models.diffusion import DiffusionTTS
from speechkd.train.config import load_train_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exps", type=av.existing_path,
                   nargs="*", default=[], help="exp dirs of the teacher and its students")
    p.add_argument("--config", type=av.text_file,
                   default=None, help="without --exps: training YAML of the model to time "
                                                  "(e.g. recipes/conf/diffusion_demo.yaml)")
    p.add_argument("--steps", type=av.nonneg_int,
                   default=0, help="without --exps: teacher steps N (default: the config's)")
    p.add_argument("--tokens", type=av.positive_int, default=100, help="input tokens")
    p.add_argument("--frames-per-token", type=av.finite_float(0, 1000, lo_open=True),
                   default=8.6, help="fixed duration of every token")
    p.add_argument("--device", type=av.device, default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--threads", type=av.int_range(1, av.MAX_JOBS),
                   default=None, help="torch intra-op threads (default: torch's)")


def _models(args: argparse.Namespace) -> tuple[list[tuple[str, object, int]], float]:
    """(case name, model, steps) from the teacher down (the first is the baseline), frame shift in s."""
    import dataclasses


    if args.exps:
        lms = [(e, load_model(e)) for e in args.exps]
        loaded = [(e, lm.model) for e, lm in lms]
        for e, m in loaded:
            if not isinstance(m, DiffusionTTS):
                raise SpeechkdError("not a diffusion model", path=e, hint="pass exp dirs of stages 7-8")
        loaded.sort(key=lambda em: -em[1].cfg.steps)
        return ([(f"{'teacher' if i == 0 else 'student'} {e} ({m.cfg.steps} steps)", m, m.cfg.steps)
                 for i, (e, m) in enumerate(loaded)], lms[0][1].feature_config.frame_shift_s)
    cfg = load_train_config(args.config, ["model=diffusion"] if not args.config else None)
    if cfg.model != "diffusion":
        raise SpeechkdError(f"model is {cfg.model!r}, not diffusion", path=args.config)
    mc = cfg.model_conf if not args.steps else dataclasses.replace(cfg.model_conf, steps=args.steps,
                                                                    val_sample_steps=0)
    model = DiffusionTTS(mc, n_vocab=80, n_mels=80).eval()
    out, k = [], mc.steps
    while k >= 2 or not out:
        out.append((f"{'teacher' if not out else 'student'} ({k} steps)", model, k))
        if k % 2:
            break
        k //= 2
    return out, FeatureConfig().frame_shift_s


def run(args: argparse.Namespace) -> list[Bench]:
    import torch


    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cases, shift = _models(args)
    g = torch.Generator().manual_seed(0)
    s = args.tokens
    tokens = torch.randint(3, 40, (1, s), generator=g).to(device)
    lens = torch.tensor([s], device=device)
    d = torch.full((1, s), int(args.frames_per_token), dtype=torch.long)
    d[0, : round((args.frames_per_token % 1) * s)] += 1  # spread the fraction: exactly round(s * fpt) frames
    d = d.to(device)
    frames = int(d.sum())
    sync = torch.cuda.synchronize if device == "cuda" else None
    n = cases[0][2]
    bench = Bench(f"Diffusion mel generation, {s} tokens -> {frames} frames, batch 1: {n}-step teacher vs "
                  "distilled students", repeats=args.repeats, warmup=args.warmup, baseline=cases[0][0],
                  device=device, unit="ms")
    for name, model, k in cases:
        model.to(device).eval()
        gen = torch.Generator(device=device).manual_seed(0)

        def fn(model=model, k=k, gen=gen):
            with torch.no_grad():
                return model.inference(tokens, lens, steps=k, durations=d, generator=gen)

        bench.add(name, fn, sync=sync, note=f"{k} denoiser passes")
    bench.run()
    bench.extra["frames"] = frames
    bench.extra["parameters (teacher)"] = f"{sum(p.numel() for p in cases[0][1].parameters()) / 1e6:.2f} M"
    checks = []
    for (name, _, k), r in zip(cases[1:], bench.results[1:]):
        target = 0.8 * n / k
        checks.append(f"{k} steps: {r.speedup:.2f}x (ideal {n / k:g}x, target >= {target:.2f}x: "
                      f"{'met' if r.speedup >= target else 'NOT met'})")
    if checks:
        bench.extra["speed-up of each student over the teacher"] = "; ".join(checks)
    bench.extra["real-time factors (mel generation)"] = ", ".join(
        f"{k} steps: {r.median_s / (frames * shift):.4f}" for (_, _, k), r in zip(cases, bench.results))
    return [bench]

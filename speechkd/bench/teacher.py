"""``speechkd bench teacher``: autoregressive Transformer-TTS decoding with and without the KV cache.

For each model size (``demo``: the demo teacher's 3+3 layers, d_model 256; ``large``: 6+6
layers, d_model 384, the Transformer-TTS/FastSpeech teacher scale) and each reduction factor
r, one table times greedy decoding of exactly ``--frames`` mel frames (the stop token is
disabled, so both modes run the same number of steps) from ``--tokens`` tokens at batch 1:

- ``cached``: :class:`speechkd.models.layers.DecoderKVCache` (preallocated keys/values,
  encoder memory projected once, fused q/k/v), the default of ``TransformerTTS.inference``;
- ``uncached``: the reference, every step reruns the decoder over the whole prefix.

Cached does O(1) work per step and uncached O(step), so the ratio grows with the number of
decoder steps ``frames / r``: at r=3 there are 3x fewer steps than at r=1. Weights are
random (seeded); decoding cost does not depend on their values. ``--exp`` times a trained
teacher instead. Both modes are checked to give the same mel (max abs difference reported).
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Callable

import torch

from speechkd.bench.harness import Bench
from speechkd.checkpoints import load_model
from speechkd.errors import SpeechkdError
from speechkd.utils import args as av
from speechkd.models.transformer_tts import TransformerTTS, TransformerTTSConfig

logger = logging.getLogger(__name__)

# name -> TransformerTTSConfig overrides
SIZES: dict[str, dict] = {
    "demo": dict(d_model=256, n_heads=2, enc_layers=3, dec_layers=3, d_ff=1024),
    "large": dict(d_model=384, n_heads=2, enc_layers=6, dec_layers=6, d_ff=1536),
    "tiny": dict(d_model=32, n_heads=2, enc_layers=1, dec_layers=2, d_ff=64, dec_prenet_dim=32, postnet_layers=2,
                 postnet_channels=32),  # tests
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="demo,large", help=f"comma list of {', '.join(SIZES)}")
    p.add_argument("--reduction-factors", default="3,1", help="comma list of r")
    p.add_argument("--frames", type=av.positive_int, default=800, help="mel frames decoded per call")
    p.add_argument("--tokens", type=av.positive_int, default=100, help="input tokens (batch 1)")
    p.add_argument("--uncached-repeats", type=av.positive_int,
                   default=3, help="timed runs of the (slow) uncached reference")
    p.add_argument("--threads", type=av.threads, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--exp", type=av.existing_path,
                   default=None, help="time this trained teacher (exp dir or .ckpt) instead of --sizes")
    p.add_argument("--device", type=av.device, default="cpu", help="cpu, cuda, ...")
    p.add_argument("--seed", type=av.seed, default=0)


def build_model(size: str, r: int, n_vocab: int = 80, n_mels: int = 80, seed: int = 0):
    """A randomly initialised TransformerTTS of a named size, in eval mode."""
    if size not in SIZES:
        raise SpeechkdError(f"unknown model size '{size}'", field="--sizes", hint=f"choose from {', '.join(SIZES)}")
    torch.manual_seed(seed)
    return TransformerTTS(TransformerTTSConfig(**SIZES[size], reduction_factor=r), n_vocab, n_mels).eval()


def decode_fn(model, tokens: torch.Tensor, frames: int, use_cache: bool, seed: int = 0) -> Callable[[], dict]:
    """A callable that decodes exactly ``frames`` frames from ``tokens [1, S]`` (stop disabled)."""
    lens = torch.tensor([tokens.size(1)], device=tokens.device)
    ratio = frames / tokens.size(1)

    def run() -> dict:
        g = torch.Generator(device=tokens.device).manual_seed(seed)
        out = model.inference(tokens, lens, use_cache=use_cache, generator=g, max_frames_per_token=ratio,
                              stop_threshold=2.0)
        if tokens.is_cuda:
            torch.cuda.synchronize()
        return out

    return run


def time_teacher_decoding(model, tokens: torch.Tensor, frames: int, use_cache: bool, seed: int = 0) -> float:
    """Wall seconds of one greedy decoding of exactly ``frames`` frames from ``tokens [1, S]``."""
    run = decode_fn(model, tokens, frames, use_cache, seed)
    t0 = time.perf_counter()
    out = run()
    dt = time.perf_counter() - t0
    if int(out["mel_lens"][0]) != frames:
        raise SpeechkdError(f"decoded {int(out['mel_lens'][0])} frames, not {frames}", field="frames")
    return dt


def run(args: argparse.Namespace) -> list[Bench]:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.frames < 1 or args.tokens < 1 or args.frames < args.tokens:
        raise SpeechkdError(f"need 1 <= --tokens <= --frames (got {args.tokens}, {args.frames})",
                            field="--tokens/--frames")
    device = torch.device(args.device)
    cases = []
    if args.exp:
        lm = load_model(args.exp, device=device)
        cases.append((f"{args.exp} (trained, r={lm.model.r})", lm.model.eval(), len(lm.token_list)))
    else:
        try:
            rs = [int(x) for x in args.reduction_factors.split(",") if x.strip()]
        except ValueError:
            rs = []
        if not rs or min(rs) < 1:
            raise SpeechkdError(f"bad --reduction-factors '{args.reduction_factors}'", field="--reduction-factors",
                                hint="a comma list of integers >= 1, e.g. 3,1")
        for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
            for r in rs:
                m = build_model(size, r, seed=args.seed).to(device)
                c = m.cfg
                cases.append((f"{size} ({c.enc_layers}+{c.dec_layers} layers, d_model {c.d_model}, r={r})", m, 80))
    benches = []
    for title, model, n_vocab in cases:
        g = torch.Generator().manual_seed(args.seed)
        tokens = torch.randint(4, n_vocab, (1, args.tokens), generator=g).to(device)
        steps = -(-args.frames // model.r)
        bench = Bench(f"Teacher decoding, {title}: {args.tokens} tokens -> {args.frames} frames "
                      f"({steps} decoder steps), batch 1", repeats=args.repeats, warmup=args.warmup,
                      baseline="uncached", device=str(device))
        sync = torch.cuda.synchronize if device.type == "cuda" else None
        bench.add("uncached", decode_fn(model, tokens, args.frames, False, args.seed), sync=sync,
                  repeats=min(args.uncached_repeats, args.repeats), warmup=min(args.warmup, 1),
                  note="reference: decoder rerun over the whole prefix each step")
        bench.add("cached", decode_fn(model, tokens, args.frames, True, args.seed), sync=sync,
                  note="preallocated KV cache, memory K/V once, fused qkv")
        bench.run()
        a, u = (bench.cases[i].fn() for i in (1, 0))
        diff = float((a["mel"] - u["mel"]).abs().max())
        bench.extra["cached vs uncached mel, max abs difference"] = f"{diff:.2e}"
        bench.extra["ms per decoder step"] = ", ".join(f"{res.name} {1000 * res.median_s / steps:.2f}"
                                                      for res in bench.results)
        benches.append(bench)
    return benches

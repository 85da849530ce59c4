"""``speechkd enhance`` on an exported SE dir (onnxruntime, torch never imported) and
``speechkd enhance --stream`` (frame by frame, exported dir or trained exp dir).

    speechkd export --model exp/student_remix --format onnx --out exported/se_student
    speechkd enhance --model exported/se_student -i noisy.wav -o clean.wav
    speechkd enhance --model exported/se_student -i noisy.wav -o clean.wav --stream   # one hop at a time
    speechkd enhance --model exp/student_remix -i noisy.wav -o clean.wav --stream      # the same in PyTorch
    arecord -q -f S16_LE -r 16000 -c 1 | speechkd enhance --model exported/se_student --stream -i - -o - | aplay -q

``--stream`` feeds the input one STFT hop at a time and prints the algorithmic latency (one STFT
window) and the real-time factor of the processing. With ``-i -`` the input is a 16-bit PCM wav
read from standard input as it arrives; with ``-o -`` the enhanced audio is written to standard
output as each hop is final (a wav header whose sizes are 0xFFFFFFFF, then 16-bit samples). A model
with ``level: running`` streams exactly its offline output; one with the utterance level sees the
RMS of the input received so far instead of the whole file's (speechkd.enhance.stft).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import wave
from typing import BinaryIO, Iterator

import numpy as np

from speechkd.audio import load_audio
from speechkd.errors import AudioError, SpeechkdError
from speechkd.runtime.se import FrameStream, OnnxEnhancer, is_se_dir
from speechkd.runtime.serve import pcm16, streamed_wav_header
from speechkd.utils.io import atomic_write_wav
from speechkd.utils.outputs import refuse_same_file

PIPE = "-"


def handles(args: argparse.Namespace) -> bool:
    """Whether this module runs the command: --stream, standard input/output, or one file through
    an exported dir (batch mode, --teacher and --resample on an exported dir go through
    speechkd.enhance.infer)."""
    if args.stream or PIPE in (args.input, args.output):
        return True
    return is_se_dir(args.model) and not (args.teacher or args.resample or args.data_dir or args.out_dir)


def write(path: str, wav: np.ndarray, sr: int, subtype: str) -> None:
    if subtype == "PCM_16" and len(wav) and float(np.max(np.abs(wav))) >= 1.0:
        subtype = "FLOAT"  # as speechkd.enhance.infer.write_output: not clipped
    atomic_write_wav(path, wav, sr, subtype=subtype)


def pipe_blocks(src: BinaryIO, rate: int, hop: int) -> Iterator[np.ndarray]:
    """Float samples of a 16-bit mono PCM wav read from a pipe, ``hop`` at a time as they arrive."""
    try:
        w = wave.open(src, "rb")
    except (wave.Error, EOFError) as e:
        raise AudioError(f"standard input is not a PCM wav stream ({e or 'no wav header'})", path="-",
                         hint="send a 16-bit mono PCM wav, e.g. `arecord -f S16_LE -r 16000 -c 1`") from None
    if w.getnchannels() != 1 or w.getsampwidth() != 2:
        raise AudioError(f"standard input has {w.getnchannels()} channel(s) of {8 * w.getsampwidth()} bits, "
                         "expected mono 16-bit PCM", path="-", field="channels")
    if w.getframerate() != rate:
        raise AudioError(f"sample rate is {w.getframerate()} Hz but the model works at {rate} Hz", path="-",
                         field="sample_rate", hint="resample it before the pipe")
    while True:
        try:
            data = w.readframes(hop)
        except EOFError:  # a stream cut mid-chunk ends it
            return
        if not data:
            return
        yield np.frombuffer(data[:len(data) // 2 * 2], "<i2").astype(np.float32) / 32768.0


def run_stream(stream: FrameStream, blocks: Iterator[np.ndarray], sink: BinaryIO | None, rate: int
               ) -> tuple[np.ndarray, int]:
    """Push every block; write each final piece to ``sink`` as it comes (or keep them); the output
    kept (empty when written to ``sink``) and the number of input samples."""
    kept, n = [], 0
    if sink is not None:
        sink.write(streamed_wav_header(rate))
        sink.flush()
    for x in itertools.chain(blocks, [None]):  # lazily: each block is enhanced as it arrives
        if x is None:
            y = stream.flush()  # one error line for an input shorter than half a window
        else:
            n += len(x)
            y = stream.push(x)
        if sink is None:
            kept.append(y)
        elif len(y):
            sink.write(pcm16(y))
            sink.flush()
    return (np.concatenate(kept) if kept else np.zeros(0, np.float32)), n


def main(args: argparse.Namespace) -> int:
    if args.data_dir or args.out_dir:
        raise SpeechkdError("--stream enhances one file: give -i and -o", field="--stream")
    if not (args.input and args.output):
        raise SpeechkdError("single-file mode needs both -i and -o")
    pipe_in, pipe_out = args.input == PIPE, args.output == PIPE
    if (pipe_in or pipe_out) and not args.stream:
        raise SpeechkdError("standard input/output (-) needs --stream", field="-i" if pipe_in else "-o")
    if not (pipe_in or pipe_out):
        refuse_same_file(args.input, args.output, field="-o")
    if args.stream and args.teacher:
        raise SpeechkdError("--stream runs one model; S(T(y)) (--teacher) is offline only", field="--teacher")
    if args.stream and args.resample:
        raise SpeechkdError("--stream does not resample: give audio at the model's rate", field="--resample")
    if args.model.startswith("builtin:"):
        raise SpeechkdError(f"{args.model} does not run frame by frame here (not a speechkd model)",
                            field="--stream", hint="enhance the whole file (without --stream)")
    wav, sr = (None, None) if pipe_in else load_audio(args.input, mono="error")
    if is_se_dir(args.model):
        if args.average != 1 or args.checkpoint:
            raise SpeechkdError("an exported dir holds fixed weights: --average/--checkpoint apply at export",
                                field="--average", hint="speechkd export --model exp/<se model> --average N ...")
        enh = OnnxEnhancer(args.model, threads=args.threads)
        if sr is not None:
            enh.check_rate(sr, args.input)
        if not args.stream:
            write(args.output, enh(wav, sr, name=args.input), sr, args.subtype)
            print(f"{args.input} -> {args.output}")
            return 0
        stream, rate, name = enh.stream(), enh.sample_rate, enh.name
    else:
        import torch  # why: torch only for a trained exp dir streamed in PyTorch

        from speechkd.enhance.exp import load_se_model  # why: imports torch
        from speechkd.enhance.stream import torch_stream  # why: imports torch

        torch.set_num_threads(args.threads)
        loaded = load_se_model(args.model, average=args.average, checkpoint=args.checkpoint)
        if sr is not None and sr != loaded.sample_rate:
            raise SpeechkdError(f"sample rate is {sr} Hz but the model works at {loaded.sample_rate} Hz",
                                path=args.input, field="sample_rate", hint="resample it first")
        stream = torch_stream(loaded.model, name=args.model)
        rate, name = loaded.sample_rate, loaded.name
    hop = stream.h
    if pipe_in:
        blocks = pipe_blocks(sys.stdin.buffer, rate, hop)
    else:
        blocks = (wav[i:i + hop] for i in range(0, len(wav), hop))
    t0 = time.perf_counter()
    out, n = run_stream(stream, blocks, sys.stdout.buffer if pipe_out else None, rate)
    wall = time.perf_counter() - t0
    if not pipe_out:
        write(args.output, out, rate, args.subtype)
    rtf = f"RTF {stream.seconds * rate / n:.4f}" if pipe_in else f"RTF {wall * rate / n:.4f}"
    print(f"{args.input} -> {args.output} (streamed {name}: {stream.frames} frames of {hop} samples; algorithmic "
          f"latency {1000 * stream.n / rate:.1f} ms (one STFT window); {rtf} on {args.threads} thread(s))",
          file=sys.stderr if pipe_out else sys.stdout)
    return 0

"""``speechkd eval``: objective evaluation.

    speechkd eval asr --data-dir data/test --out exp/eval/asr_gt [--num-utts 50] [--nj 2]
    speechkd eval asr --data-dir data/test --wav-dir exp/fastspeech/synth/test --out exp/eval/asr_fs

Writes ``results.json`` (summary and per-utterance rows) and ``results.md``.
"""

from __future__ import annotations

import argparse
import os

from speechkd.data.kaldi import read_datadir
from speechkd.utils.io import atomic_write_json, atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True
    p = sub.add_parser("asr", help="WER/CER of ground-truth or synthesized audio with the offline recogniser")
    p.add_argument("--data-dir", required=True, help="reference Kaldi data dir (text, and audio when --wav-dir is absent)")
    p.add_argument("--wav-dir", default=None, help="directory of <utt>.wav to evaluate instead of the data dir's audio")
    p.add_argument("--out", required=True, help="output dir for results.json and results.md")
    p.add_argument("--num-utts", type=int, default=0, help="evaluate the first N utterances (C order); 0 = all")
    p.add_argument("--nj", type=int, default=1, help="parallel recogniser processes")
    p.add_argument("--title", default=None)


def main(args: argparse.Namespace) -> int:
    from speechkd.eval.intelligibility import asr_markdown, evaluate_asr

    dd = read_datadir(args.data_dir)
    utts = dd.utts[: args.num_utts] if args.num_utts > 0 else dd.utts
    res = evaluate_asr(dd, utts, wav_dir=args.wav_dir, nj=args.nj)
    os.makedirs(args.out, exist_ok=True)
    source = args.wav_dir or f"{args.data_dir} (ground truth)"
    atomic_write_json(os.path.join(args.out, "results.json"),
                      {"source": source, "reference": args.data_dir, **res.summary(), "utts": res.utts})
    md = asr_markdown(res, args.title or f"ASR intelligibility: {source}")
    atomic_write_text(os.path.join(args.out, "results.md"), md)
    s = res.summary()
    print(f"{source}: {s['num_utts']} utts, WER {100 * s['wer']:.1f}% "
          f"(95% CI {100 * s['wer_ci95'][0]:.1f}-{100 * s['wer_ci95'][1]:.1f}), CER {100 * s['cer']:.1f}% "
          f"-> {os.path.join(args.out, 'results.md')}")
    return 0

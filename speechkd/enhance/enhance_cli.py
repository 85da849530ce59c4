"""``speechkd enhance``: enhance a wav or every utterance of a data dir.

    speechkd enhance -i noisy.wav -o clean.wav --model exp/teacher_nytt
    speechkd enhance -i noisy.wav -o clean.wav --model exp/student_remix --teacher exp/teacher_nytt   # S(T(y))
    speechkd enhance --data-dir data/se/test_in_domain --out-dir exp/teacher_nytt/enhanced/test_in_domain \
        --model exp/teacher_nytt [--average 3 | --checkpoint 2] [--nj 2]
    speechkd enhance --data-dir data/se/test_in_domain --out-dir exp/hpf80/enhanced/test_in_domain \
        --model builtin:highpass80
    speechkd enhance -i noisy.wav -o clean.wav --model exported/se_student [--stream]   # ONNX (speechkd export)
    speechkd enhance -i noisy.wav -o clean.wav --model exp/student_remix --stream       # frame by frame
    speechkd enhance --systems exp/systems.tsv --systems-from exp --students student_remix \
        --test-sets test_in_domain --data-root data/se --average 3 --spread 1   # recipe stage 5

Audio at another rate than the model's is refused unless --resample is given
(then it is resampled to the model's rate and the output back, logged).
Batch mode skips utterances already enhanced (rerun after a kill) unless --overwrite; an
--out-dir enhanced with another model or settings is refused (``--overwrite`` moves it into
``.backup/<n>/``). ``-o`` may not name the input.
"""

from __future__ import annotations

import argparse

from speechkd.enhance import deploy_cli, systems_cli
from speechkd.errors import SpeechkdError
from speechkd.utils import args as av
from speechkd.utils.outputs import refuse_same_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = av.RUNS_PIPES
    parser.add_argument("-i", "--input", type=av.existing_file_or_stdin, default=None,
                        help="noisy wav (single-file mode); - with --stream: a 16-bit PCM wav on standard input")
    parser.add_argument("-o", "--output", type=av.output_file, default=None,
                        help="enhanced wav to write (single-file mode); - with --stream: standard output, as it is made")
    parser.add_argument("--data-dir", type=av.existing_dir, default=None, help="Kaldi data dir to enhance (batch mode)")
    parser.add_argument("--out-dir", type=av.output_dir,
                        default=None, help="batch mode: directory of <utt>.wav to write")
    parser.add_argument("--model", type=av.model_ref, default=None,
                        help="exp dir or .ckpt of speechkd se-train, or builtin:highpass80 / builtin:rnnoise / "
                             "builtin:identity")
    parser.add_argument("--teacher", type=av.existing_path,
                        default=None, help="teacher exp dir: output S(T(y)) (teacher first)")
    parser.add_argument("--average", type=av.positive_int, default=1,
                        help="average the weights of the last N step checkpoints of each exp dir")
    parser.add_argument("--checkpoint", type=av.nonneg_int, default=0,
                        help="use only the K-th newest of the last checkpoints of --model (1: last.ckpt), to "
                             "measure the spread of single checkpoints; 0: --average")
    parser.add_argument("--resample", action="store_true",
                        help="resample input at another rate to the model's (and the output back) instead of refusing")
    parser.add_argument("--nj", type=av.jobs, default=1, help="batch mode: parallel processes")
    parser.add_argument("--subtype", choices=["PCM_16", "FLOAT"], default="PCM_16",
                        help="output sample format (FLOAT for teacher estimates used in training)")
    parser.add_argument("--overwrite", action="store_true", help="batch mode: redo utterances already written; an --out-dir made with other "
                             "settings is moved into <out-dir>/.backup/<n>/ first")
    parser.add_argument("--num-utts", type=av.nonneg_int,
                        default=0, help="batch mode: first N utterances only; 0 = all")
    parser.add_argument("--stream", action="store_true",
                        help="single-file mode: enhance frame by frame, one STFT hop at a time (causal models: "
                             "crn, subband_gru; an exp dir or an exported dir); prints latency and RTF")
    parser.add_argument("--threads", type=av.int_range(1, 256), default=1,
                        help="an exported dir: onnxruntime threads; --stream in PyTorch: torch threads "
                             "(default %(default)s)")
    systems_cli.add_arguments(parser)


def main(args: argparse.Namespace) -> int:
    if args.systems:
        return systems_cli.main(args)
    systems_cli.refuse_without_systems(args)
    if not args.model:
        raise SpeechkdError("no model given", field="--model",
                            hint="--model exp/<model> (a trained exp dir), or --systems FILE for a manifest")
    single = args.input is not None or args.output is not None
    batch = args.data_dir is not None or args.out_dir is not None
    if single == batch:
        raise SpeechkdError("give either -i/-o (one file) or --data-dir/--out-dir (batch)")
    if args.average < 1 or args.nj < 1:
        raise SpeechkdError("--average and --nj must be at least 1")
    if args.checkpoint < 0:
        raise SpeechkdError(f"must be >= 0, got {args.checkpoint}", field="--checkpoint")
    if args.checkpoint and args.average > 1:
        raise SpeechkdError("give either --average N or --checkpoint K, not both", field="--checkpoint")
    if deploy_cli.handles(args):  # an exported dir (no torch) or --stream
        return deploy_cli.main(args)
    # why: torch is imported only on the PyTorch path (an exported dir runs without it)
    from speechkd.enhance.infer import Enhancer, enhance_datadir, enhance_file
    if single:
        if not (args.input and args.output):
            raise SpeechkdError("single-file mode needs both -i and -o")
        refuse_same_file(args.input, args.output, field="-o")
        enh = Enhancer(args.model, args.teacher, average=args.average, checkpoint=args.checkpoint,
                       resample=args.resample)
        enhance_file(enh, args.input, args.output, args.subtype)
        print(f"{args.input} -> {args.output}")
        return 0
    if not (args.data_dir and args.out_dir):
        raise SpeechkdError("batch mode needs both --data-dir and --out-dir")
    info = enhance_datadir(args.data_dir, args.out_dir, model=args.model, teacher=args.teacher,
                           average=args.average, checkpoint=args.checkpoint, resample=args.resample, nj=args.nj,
                           subtype=args.subtype,
                           overwrite=args.overwrite, num_utts=args.num_utts)
    print(f"{args.data_dir}: {info['enhanced']} enhanced, {info['skipped_existing']} already there -> {args.out_dir}")
    return 0

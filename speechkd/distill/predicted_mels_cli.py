"""``speechkd predict-mels``: an acoustic model's teacher-forced mels of a split as a feature dump,
the input of vocoder distillation on predicted mels (:mod:`speechkd.distill.predicted_mels`)::

    speechkd predict-mels --model exp/fastspeech2 --split train --out dump/pred_fastspeech2/train
    speechkd vocode --feats dump/pred_fastspeech2/train --vocoder hifigan_universal \\
        --out dump/vocoder_teacher/hifigan_universal_pred_fastspeech2/train

The data dump, teacher dump and KD mode are the model's training settings unless given.
Rerunning resumes; an --out made with other settings is refused unless --overwrite.
"""

from __future__ import annotations

import argparse

from speechkd.distill.predicted_mels import dump_predicted_mels
from speechkd.utils import args as av


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=av.existing_path, required=True,
                   help="acoustic model exp dir or .ckpt (Transformer-TTS, FastSpeech, FastSpeech 2)")
    p.add_argument("--split", type=av.name, required=True, help="split of the dump to predict (e.g. train)")
    p.add_argument("--out", type=av.output_dir, required=True, help="output feature dump dir (e.g. "
                   "dump/pred_fastspeech2/train)")
    p.add_argument("--data", type=av.existing_dir, metavar="DUMP",
                   help="dump root with tokens/<split> and feats/<split> (default: the model's training dump)")
    p.add_argument("--teacher-dump", type=av.existing_dir,
                   help="teacher dump root of the students' durations (default: the model's)")
    p.add_argument("--kd-mode", choices=["teacher_forced", "free_running"],
                   help="students: whose durations expand the tokens (default: the model's training KD mode; "
                        "teacher_forced gives the recordings' frame counts)")
    p.add_argument("--device", type=av.device, default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--overwrite", action="store_true",
                   help="an --out made with other settings is moved into <out>/.backup/<n>/ first")


def main(args: argparse.Namespace) -> int:
    info = dump_predicted_mels(args.model, args.split, args.out, dump_dir=args.data or "",
                               teacher_dump_dir=args.teacher_dump or "", kd_mode=args.kd_mode or "",
                               device=args.device, overwrite=args.overwrite)
    print(f"{args.out}: {info['utterances']} utterances ({info['predicted_now']} predicted now)")
    return 0

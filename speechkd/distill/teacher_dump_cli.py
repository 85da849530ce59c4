"""``speechkd teacher-dump``: durations, focus rates and free-running mels of a trained AR teacher.

Recipe stage 4 (one call per split)::

    speechkd teacher-dump --exp exp/teacher_ar --data dump --split train \\
        --out dump/teacher/train --kd-mode both

``--kd-mode`` is explicit: ``teacher_forced`` (durations of the ground-truth mels),
``free_running`` (the teacher's own mels for sequence-level KD, with durations against them)
or ``both`` (one sub-dir each). ``--min-aligned 0.9`` stops (exit 2) when fewer than 90% of
the utterances reach the focus threshold, naming the share and the remedy. Durations are refined acoustically by default
(``--refine-iters``, :mod:`speechkd.align.refine`); the attention-only ones stay in each npz
as ``durations_attn``. Rerunning on a finished dump redoes only the refinement. The output format is described in
:mod:`speechkd.distill.teacher_dump`. Rerunning resumes; ``--overwrite`` starts over.

A dump made on other features (another sample rate or hop) moves onto ``--data``'s frames without
running a teacher (:mod:`speechkd.distill.regrid`)::

    speechkd teacher-dump --from-dump dump/teacher/train/teacher_forced --data dump22 --split train \
        --out dump22/teacher/train --kd-mode teacher_forced

An ESPnet2 Transformer-TTS or Tacotron 2 is the teacher instead of ``--exp`` with (needs the
ESPnet extra; :mod:`speechkd.distill.espnet_teacher`)::

    speechkd teacher-dump --espnet-config EXP/config.yaml --espnet-model EXP/valid.loss.ave.pth \
        --data dump --split train --out dump/teacher/train --kd-mode both
"""

from __future__ import annotations

import argparse
import os

from speechkd.align.refine import RefineConfig
from speechkd.distill.regrid import regrid_teacher_dump
from speechkd.distill.teacher_dump import DEFAULT_THRESHOLD, DumpOptions, _fmt, teacher_dump
from speechkd.errors import SpeechkdError
from speechkd.train.data import split_paths
from speechkd.utils import args as av


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exp", type=av.existing_path,
                   help="teacher exp dir (uses checkpoints/last.ckpt) or a .ckpt path (or --espnet-model)")
    p.add_argument("--espnet-model", type=av.existing_file,
                   help="an ESPnet2 Transformer-TTS / Tacotron 2 state dict (e.g. exp/tts_x/valid.loss.ave.pth) "
                        "as the teacher, instead of --exp; needs --espnet-config and the ESPnet extra")
    p.add_argument("--espnet-config", type=av.text_file,
                   help="that model's ESPnet config.yaml (model, token list, feature settings)")
    p.add_argument("--from-dump", type=av.existing_dir, metavar="DIR",
                   help="no teacher run: move this teacher_forced dump (e.g. dump/teacher/train/teacher_forced, made "
                        "on other features) onto the frames of --data's features (another sample rate or hop; "
                        "speechkd.distill.regrid); instead of --exp")
    p.add_argument("--data", type=av.existing_dir,
                   required=True, metavar="DUMP", help="dump root with tokens/<split> and feats/<split>")
    p.add_argument("--split", type=av.name, default="train", help="split to dump (default train)")
    p.add_argument("--out", type=av.output_dir,
                   required=True, help="output dir (e.g. dump/teacher/train); one sub-dir per KD mode")
    p.add_argument("--kd-mode", required=True, choices=["teacher_forced", "free_running", "both"],
                   help="teacher-forced durations, free-running mels + durations, or both")
    p.add_argument("--method", choices=["mas", "argmax"], default="mas",
                   help="durations by monotonic alignment search (default) or argmax counting (ESPnet compatible)")
    p.add_argument("--attention", choices=["head", "mean"], default="head",
                   help="MAS on the focus-rate-chosen head (FastSpeech, default) or on the mean of all layers/heads")
    p.add_argument("--shift-frames", type=av.int_range(-50, 50), default=0,
                   help="move every duration boundary by this many frames (> 0: later) to remove a lag measured "
                        "by `speechkd eval durations` (default 0)")
    p.add_argument("--refine-iters", type=av.int_range(0, 10000), default=20,
                   help="iterations of acoustic refinement of the attention durations (speechkd.align.refine: "
                        "Viterbi re-estimation of one Gaussian per token type, anchored by the attention); "
                        "0: attention durations only, as in the FastSpeech paper (default %(default)s)")
    p.add_argument("--refine-attn-weight", type=av.nonneg_float, default=0.1,
                   help="refinement: weight of the log attention (default %(default)s)")
    p.add_argument("--refine-acoustic-weight", type=av.nonneg_float, default=10.0,
                   help="refinement: weight of the acoustic log-likelihood per mel band (default %(default)s)")
    p.add_argument("--focus-threshold", type=av.probability, default=DEFAULT_THRESHOLD,
                   help="utterances whose focus rate is below are listed in `filtered` (default %(default)s)")
    p.add_argument("--min-aligned", type=av.probability, default=0.0,
                   help="stop with an error (exit 2) when fewer than this share of the utterances reach the focus "
                        "threshold: the teacher has not learnt to align (0 = no check; the recipes use 0.9 on "
                        "the training set)")
    p.add_argument("--batch-frames", type=av.positive_int, default=6000, help="mel frames per batch")
    p.add_argument("--max-frames-per-token", type=av.positive_float,
                   help="free-running length limit (default: the model's max_frames_per_token; ESPnet: its "
                        "maxlenratio, default 10)")
    p.add_argument("--seed", type=av.seed, default=0, help="seed of the always-on prenet dropout")
    p.add_argument("--average", type=av.positive_int,
                   default=1, help="teacher weights: average of the exp dir's last N "
                                                          "checkpoints (keep them: trainer.keep_checkpoints)")
    p.add_argument("--device", type=av.device, default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--overwrite", action="store_true", help="discard an earlier dump in --out")


def from_dump(args: argparse.Namespace) -> int:
    """``--from-dump``: the source dump's durations on the frames of ``--data``'s features."""
    if args.exp or args.espnet_model:
        raise SpeechkdError("--from-dump moves an existing dump; it runs no teacher (leave out --exp and "
                            "--espnet-model)", field="--from-dump")
    if args.kd_mode != "teacher_forced":
        raise SpeechkdError(f"--from-dump writes teacher_forced durations, not {args.kd_mode}: free-running mels "
                            "lie on the old features", field="--kd-mode", hint="--kd-mode teacher_forced")
    out = os.path.join(args.out, "teacher_forced")
    rep = regrid_teacher_dump(args.from_dump, split_paths(args.data, args.split)[1], out, overwrite=args.overwrite)
    print(f"{out}: {rep['num_utts']} utterances from {args.from_dump} ({rep['filtered']} filtered, "
          f"{rep['missing']} of them without durations there), boundaries moved by at most "
          f"{rep['max_shift_ms']:.1f} ms")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.from_dump:
        return from_dump(args)
    if (args.exp is None) == (args.espnet_model is None):
        raise SpeechkdError("give the teacher as --exp (speechkd) or as --espnet-model (ESPnet2), one of them",
                            field="--exp")
    if (args.espnet_model is None) != (args.espnet_config is None):
        raise SpeechkdError("--espnet-model and --espnet-config go together", field="--espnet-config")
    opts = DumpOptions(method=args.method, focus_threshold=args.focus_threshold, batch_frames=args.batch_frames,
                       seed=args.seed, max_frames_per_token=args.max_frames_per_token, attention=args.attention,
                       shift_frames=args.shift_frames, average=args.average, min_aligned=args.min_aligned,
                       refine=RefineConfig(iters=args.refine_iters, attn_weight=args.refine_attn_weight,
                                           acoustic_weight=args.refine_acoustic_weight))
    if args.espnet_model:
        # why: ESPnet is an optional extra
        from speechkd.distill.espnet_teacher import espnet_teacher_dump

        reports = espnet_teacher_dump(args.espnet_config, args.espnet_model, args.data, args.split, args.out,
                                      args.kd_mode, opts, device=args.device, overwrite=args.overwrite)
    else:
        reports = teacher_dump(args.exp, args.data, args.split, args.out, args.kd_mode, opts, device=args.device,
                               overwrite=args.overwrite)
    for mode, rep in reports.items():
        f = rep["focus_rate"]
        print(f"{args.out}/{mode}: {rep['num_utts']} utterances, focus rate mean {_fmt(f['mean'])} "
              f"({100 * f['above_threshold']:.1f}% >= {rep['threshold']:g}), {len(rep['filtered'])} filtered")
    return 0

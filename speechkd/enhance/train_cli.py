"""``speechkd se-train``: train an SE model in an exp dir (Lightning; resumes after a kill).

    speechkd se-train --config conf/teacher_nytt.yaml --exp exp/teacher_nytt [key.sub=value ...]
    speechkd se-train --config conf/student_remix.yaml --exp exp/student_remix \
        data.estimates_dir=exp/teacher_nytt/estimates/train_noisy
    speechkd se-train --config conf/teacher_nytt.yaml --exp exp/teacher_nytt_more \
        --continue-from exp/teacher_nytt --extra-steps 600       # same-compute control
    speechkd se-train --config conf/teacher_nytt.yaml --exp exp/teacher_nytt --devices 2 --strategy ddp
    speechkd se-train --config conf/teacher_nytt.yaml --print-config

``method`` in the config picks the pairs: nytt | clean | remix_noisy | remix_enhanced | remixit
(:mod:`speechkd.enhance.config`). Rerunning the same command resumes from
``exp/<tag>/checkpoints/last.ckpt``; a longer ``trainer.max_minutes`` trains on.
"""

from __future__ import annotations

import argparse
import math

from speechkd.config import dump_config
from speechkd.enhance.config import load_se_config
from speechkd.errors import SpeechkdError
from speechkd.utils import args as av


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = av.RUNS_PIPES
    parser.add_argument("--config", type=av.text_file,
                        default=None, help="YAML config (SETrainConfig); defaults when absent")
    parser.add_argument("--exp", type=av.output_dir, default=None, help="experiment dir (exp/<tag>)")
    parser.add_argument("--continue-from", type=av.existing_path, default=None,
                        help="exp dir or .ckpt to copy as this exp's starting checkpoint (optimizer state "
                             "included) when the exp has none: train a model on, e.g. the same-compute control")
    parser.add_argument("--extra-minutes", type=av.positive_float, default=None,
                        help="with --continue-from: train until the starting checkpoint's minutes plus these "
                             "(sets trainer.max_minutes)")
    parser.add_argument("--extra-steps", type=av.positive_int, default=None,
                        help="with --continue-from: train until the starting checkpoint's step plus these "
                             "(sets trainer.max_steps; a budget that does not depend on how busy the machine is)")
    parser.add_argument("--devices", type=av.devices, help="devices per node: auto, N, or a list 0,1 "
                                                           "(sets trainer.devices)")
    parser.add_argument("--num-nodes", type=av.positive_int, help="machines for multi-node DDP (trainer.num_nodes)")
    parser.add_argument("--strategy", type=av.nonempty_str, help="Lightning strategy: auto, ddp, ... "
                                                                 "(trainer.strategy)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_minutes=15")


def main(args: argparse.Namespace) -> int:
    flags = [f"trainer.{key}={getattr(args, key)}" for key in ("devices", "num_nodes", "strategy")
             if getattr(args, key) is not None]
    cfg = load_se_config(args.config, list(args.overrides) + flags)
    if args.extra_minutes is not None and args.extra_steps is not None:
        raise SpeechkdError("give --extra-minutes or --extra-steps, not both", field="--extra-steps")
    if args.extra_minutes is not None or args.extra_steps is not None:
        flag = "--extra-minutes" if args.extra_minutes is not None else "--extra-steps"
        if not args.continue_from:
            raise SpeechkdError(f"{flag} counts from the --continue-from checkpoint: give both", field=flag)
        from speechkd.checkpoints import read_checkpoint  # why: torch; --print-config (recipes) stays light
        from speechkd.enhance.exp import resolve_checkpoint  # why: the same

        ckpt = read_checkpoint(resolve_checkpoint(args.continue_from), "se")
        if args.extra_steps is not None:
            cfg.trainer.max_steps = int(ckpt.get("global_step", 0)) + args.extra_steps
            cfg.trainer.max_minutes = 0.0
        else:
            if not (math.isfinite(args.extra_minutes) and args.extra_minutes > 0):
                raise SpeechkdError(f"must be a positive number of minutes, got {args.extra_minutes}",
                                    field="--extra-minutes")
            try:
                start = float(ckpt["speechkd"]["train_minutes"])
            except (KeyError, TypeError, ValueError):
                raise SpeechkdError("the checkpoint records no training minutes",
                                    path=resolve_checkpoint(args.continue_from),
                                    field="--continue-from") from None
            cfg.trainer.max_minutes = start + args.extra_minutes
            cfg.trainer.max_steps = -1
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    if not args.exp:
        raise SpeechkdError("--exp is required to train", field="--exp")
    from speechkd.enhance.train import run_se_training  # why: torch and Lightning, not needed to print a config

    last = run_se_training(cfg, args.exp, continue_from=args.continue_from or "")
    print(f"-> {last}")
    return 0

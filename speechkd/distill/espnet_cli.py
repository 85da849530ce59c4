"""``speechkd espnet``: ESPnet2 data and teacher decodes in, speechkd durations out
(:mod:`speechkd.distill.espnet_io`; no ESPnet install needed)::

    speechkd espnet import-data --espnet-dir ESPNET/egs2/x/tts1/dump/raw/tr_no_dev --espnet-root ESPNET/egs2/x/tts1 \
        --out data/train [--token-list ESPNET/egs2/x/tts1/data/token_list/phn_none/tokens.txt \
        --tokens-out dump/tokens/train/tokens --token-list-out data/token_list/espnet/tokens.txt]
    speechkd espnet import-teacher --decode-dir EXP/decode_use_teacher_forcingtrue_train.loss.ave/tr_no_dev \
        --espnet-config EXP/config.yaml --kd-mode teacher_forced --out dump/teacher/train/teacher_forced \
        [--feats dump/feats/train] [--espnet-root ESPNET/egs2/x/tts1] [--focus-threshold 0.5]
    speechkd espnet export-durations --teacher-dump dump/teacher/train/teacher_forced \
        --out ESPNET/egs2/x/tts1/teacher_dumpdir/tr_no_dev
    speechkd espnet feature-config --espnet-config EXP/config.yaml --out conf/feats_espnet.yaml

``feature-config`` writes the FeatureConfig of an ESPnet config, for ``speechkd features --config``:
the features an ESPnet teacher is run on (``speechkd teacher-dump --espnet-model``) or a student
of its dump is trained on.
"""

from __future__ import annotations

import argparse
import os

from speechkd.distill import espnet_io as eio
from speechkd.distill.teacher_dump import DEFAULT_THRESHOLD, KD_MODES
from speechkd.errors import SpeechkdError
from speechkd.utils import args as av


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True
    p = sub.add_parser("import-data", help="an ESPnet2 dump/raw/<set> -> a speechkd data dir (and token dump)")
    p.add_argument("--espnet-dir", type=av.existing_dir, required=True, help="ESPnet2 dump/raw/<set>")
    p.add_argument("--espnet-root", type=av.existing_dir, default=None,
                   help="the ESPnet recipe dir its relative wav paths start from (default: the current dir)")
    p.add_argument("--out", type=av.output_dir, required=True, help="speechkd data dir to write (must not exist)")
    p.add_argument("--token-list", type=av.text_file, default=None,
                   help="ESPnet token list (tokens.txt or config.yaml): also write a token dump of the "
                        "(pre-tokenised) text and speechkd's token list")
    p.add_argument("--tokens-out", type=av.output_file, default=None, help="token dump file (with --token-list)")
    p.add_argument("--token-list-out", type=av.output_file, default=None,
                   help="speechkd tokens.txt to write (with --token-list)")

    p = sub.add_parser("import-teacher", help="an ESPnet2 teacher decode -> a speechkd teacher dump")
    p.add_argument("--decode-dir", type=av.existing_dir, required=True,
                   help="tts_inference output of one set (durations, focus_rates, denorm/feats.scp)")
    p.add_argument("--espnet-config", type=av.text_file, required=True,
                   help="the teacher's ESPnet config.yaml (feature settings, reduction factor)")
    p.add_argument("--kd-mode", choices=list(KD_MODES), required=True,
                   help="teacher_forced (decoded with --use_teacher_forcing true) or free_running")
    p.add_argument("--out", type=av.output_dir, required=True, help="dump dir, e.g. dump/teacher/train/teacher_forced")
    p.add_argument("--feats", type=av.existing_dir, default=None,
                   help="the split's speechkd feature dump: ground-truth frames to check against "
                        "(needed for free_running)")
    p.add_argument("--espnet-root", type=av.existing_dir, default=None,
                   help="the dir the decode ran in (its feats.scp paths are relative to it; default: current dir)")
    p.add_argument("--focus-threshold", type=av.finite_float(0, 1), default=DEFAULT_THRESHOLD,
                   help="utterances below this focus rate are listed in filtered (default %(default)s)")
    p.add_argument("--maxlenratio", type=av.finite_float(0, 1000, lo_open=True), default=10.0,
                   help="the decode's maxlenratio: outputs that long never stopped (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dump")

    p = sub.add_parser("export-durations", help="a speechkd teacher dump -> ESPnet's durations and focus_rates")
    p.add_argument("--teacher-dump", type=av.existing_dir, required=True,
                   help="dump/teacher/<split>/<kd_mode>")
    p.add_argument("--out", type=av.output_dir, required=True,
                   help="<teacher_dumpdir>/<set> of an ESPnet FastSpeech recipe (--teacher_dumpdir)")
    p.add_argument("--include-filtered", action="store_true", help="also the utterances the dump filtered")

    p = sub.add_parser("feature-config", help="an ESPnet config's feature settings -> a speechkd FeatureConfig YAML")
    p.add_argument("--espnet-config", type=av.text_file, required=True, help="ESPnet2 TTS config.yaml")
    p.add_argument("--out", type=av.output_file, required=True,
                   help="FeatureConfig YAML to write (for speechkd features --config)")


def main(args: argparse.Namespace) -> int:
    if args.what == "import-data":
        tl = None
        if args.token_list:
            if not (args.tokens_out and args.token_list_out):
                raise SpeechkdError("--token-list needs --tokens-out and --token-list-out", field="--token-list")
            tl = eio.token_list_from_espnet(eio.read_espnet_token_list(args.token_list))
        eio.import_espnet_datadir(args.espnet_dir, args.out, espnet_root=args.espnet_root, token_list=tl,
                                  tokens_out=args.tokens_out)
        if tl is not None:
            tl.save(args.token_list_out)
        return 0
    if args.what == "import-teacher":
        fc = eio.feature_config_from_espnet(args.espnet_config)
        gt = eio.utt2num_frames(args.feats) if args.feats else None
        rep = eio.import_espnet_teacher(args.decode_dir, args.out, args.kd_mode, fc, espnet_root=args.espnet_root,
                                        threshold=args.focus_threshold, gt_frames=gt, maxlenratio=args.maxlenratio,
                                        overwrite=args.overwrite)
        print(f"{args.out}: {rep['num_utts']} utterances, focus rate mean {rep['focus_rate']['mean']}, "
              f"{len(rep['filtered'])} filtered")
        return 0
    if args.what == "feature-config":
        if os.path.exists(args.out):
            raise SpeechkdError("exists already", path=args.out, hint="choose a new --out")
        eio.feature_config_from_espnet(args.espnet_config).save(args.out)
        print(f"{args.out}: FeatureConfig of {args.espnet_config}")
        return 0
    n = eio.export_espnet_durations(args.teacher_dump, args.out, include_filtered=args.include_filtered)
    print(f"{args.out}: durations and focus_rates of {n} utterances")
    return 0

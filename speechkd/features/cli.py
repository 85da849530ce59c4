"""``speechkd features``: dump log-mel, F0 and energy of a data dir (parallel, resumable).

Recipe stage 2::

    speechkd features --data-dir data/train --out dump/train --config conf/feats.yaml \\
        --nj 4 --cmd "recipes/utils/run.pl"
    speechkd features --data-dir data/dev --out dump/dev --config conf/feats.yaml \\
        --nj 4 --cmd "recipes/utils/run.pl" --stats-from dump/train/stats.npz

Settings: FeatureConfig defaults <- ``--config`` YAML <- ``key=value`` overrides
(e.g. ``n_mels=80 f0_method=harvest``). ``--print-config`` prints the resolved
config with its help comments. The dump format is described in
:mod:`speechkd.features.dump`.
"""

from __future__ import annotations

import argparse

from speechkd.config import dump_config, load_config
from speechkd.data.kaldi import read_datadir
from speechkd.errors import ConfigError
from speechkd.features import dump
from speechkd.features.config import FeatureConfig
from speechkd.utils import args as av


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = av.RUNS_PIPES
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="FeatureConfig overrides")
    p.add_argument("--data-dir", type=av.existing_dir, help="Kaldi data dir to dump")
    p.add_argument("--out", type=av.output_dir, help="dump dir (e.g. dump/train)")
    p.add_argument("--config", type=av.text_file, help="FeatureConfig YAML (e.g. conf/feats.yaml)")
    p.add_argument("--nj", type=av.jobs, default=1, help="number of parallel jobs (needs --cmd)")
    p.add_argument("--cmd", help='job runner, Kaldi style (e.g. "recipes/utils/run.pl", "slurm.pl ...")')
    p.add_argument("--stats-from", type=av.existing_file,
                   metavar="NPZ", help="copy these statistics (the training dump's "
                   "stats.npz) instead of computing this dump's own")
    p.add_argument("--overwrite", action="store_true", help="discard an existing dump in --out")
    p.add_argument("--job", type=av.nonneg_int, help=argparse.SUPPRESS)  # one parallel job (run by the parent)
    p.add_argument("--print-config", action="store_true", help="print the resolved FeatureConfig and exit")


def main(args: argparse.Namespace) -> int:
    cfg = load_config(FeatureConfig, args.config, args.overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    if not args.data_dir or not args.out:
        raise ConfigError("--data-dir and --out are required", hint="or use --print-config")
    if args.nj < 1:
        raise ConfigError(f"--nj must be >= 1, got {args.nj}", field="--nj")
    if args.job is not None:
        dump.prepare_out(args.out, cfg)
        dump.run_job(read_datadir(args.data_dir), args.out, cfg, args.job, args.nj)
        return 0
    dump.dump_features(args.data_dir, args.out, cfg, nj=args.nj, cmd=args.cmd,
                       stats_from=args.stats_from, overwrite=args.overwrite)
    # Count this dump's own index (with --stats-from, the statistics are the training set's).
    frames = [T for _, T in dump.read_feats_scp(args.out).values()]
    print(f"{args.out}: {len(frames)} utterances, {sum(frames)} frames")
    return 0

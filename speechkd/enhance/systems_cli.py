"""``speechkd enhance --systems``: every system of an SE systems manifest on every test set, in one
process (recipe stage 5; the systems and their rules: :mod:`speechkd.enhance.systems`).

    speechkd enhance --systems exp/systems.tsv --systems-from exp --students student_remix student_small \
        --test-sets test_in_domain test_mismatched --data-root data/se --average 3 --spread 1 [--nj 2]

With ``--systems-from EXP`` the manifest is first written from what EXP holds; without it, the
manifest is read as it is. A test set's output dir that holds ``enhance.json`` is skipped.
"""

from __future__ import annotations

import argparse

from speechkd.enhance.systems import enhance_systems, list_systems, read_manifest, write_manifest
from speechkd.errors import SpeechkdError
from speechkd.utils import args as av

_ONLY_SINGLE = ("input", "output", "data_dir", "out_dir", "model", "teacher", "resample", "overwrite")


def _words(values: list[str] | None) -> list[str]:
    """Names given as separate arguments or as one quoted, space-separated argument."""
    return [w for v in values or [] for w in v.split()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("every system of an SE systems manifest (instead of --model; recipe stage 5)")
    g.add_argument("--systems", type=av.nonempty_str, metavar="FILE", help="SE systems manifest (TSV, speechkd.enhance.systems) to enhance")
    g.add_argument("--systems-from", type=av.existing_dir, metavar="EXP", help="first write --systems from the models trained in this "
                                                         "exp dir")
    g.add_argument("--students", type=av.nonempty_str, nargs="*", default=[], metavar="NAME",
                   help="with --systems-from: the students' exp dir names (each also as <name>_st: S(T(y)))")
    g.add_argument("--spread", type=av.nonneg_int, default=0, metavar="K",
                   help="with --systems-from: also each of the last K checkpoints of every trained model alone")
    g.add_argument("--spread-only", type=av.nonempty_str, nargs="*", default=[], metavar="NAME",
                   help="with --systems-from: the spread of these systems only (default: all eligible)")
    g.add_argument("--baselines", type=av.name, nargs="*", default=["hpf80", "rnnoise"], metavar="NAME",
                   help="with --systems-from: the untrained baselines, of hpf80 (80 Hz high-pass) and rnnoise "
                        "(RNNoise; the pyrnnoise wheel) (default: both)")
    g.add_argument("--test-sets", type=av.nonempty_str, nargs="*", default=[], metavar="NAME", help="test sets: <data-root>/<name> each")
    g.add_argument("--data-root", type=av.nonempty_str, default="data/se", help="directory of the test sets (default %(default)s)")


def refuse_without_systems(args: argparse.Namespace) -> None:
    """One model's run: the flags of this group would be ignored, so they are refused."""
    for flag in ("systems_from", "students", "spread", "spread_only", "test_sets"):
        if getattr(args, flag):
            raise SpeechkdError(f"--{flag.replace('_', '-')} goes with --systems FILE", field="--systems")


def main(args: argparse.Namespace) -> int:
    given = [f"--{a.replace('_', '-')}" for a in _ONLY_SINGLE if getattr(args, a)]
    if given:
        raise SpeechkdError(f"--systems enhances the manifest's systems; {' '.join(given)} do not go with it",
                            field="--systems", hint="leave them out, or drop --systems for one model")
    if args.average < 1 or args.nj < 1:
        raise SpeechkdError("--average and --nj must be at least 1")
    if args.checkpoint:
        raise SpeechkdError("--systems takes the single checkpoints from the manifest's spread", field="--checkpoint",
                            hint="--spread K with --systems-from")
    if args.num_utts < 0:
        raise SpeechkdError(f"must be >= 0, got {args.num_utts}", field="--num-utts")
    test_sets = _words(args.test_sets)
    if not test_sets:
        raise SpeechkdError("no test set given", field="--test-sets", hint="e.g. --test-sets test_in_domain")
    if args.systems_from:
        write_manifest(args.systems, list_systems(args.systems_from, _words(args.students), args.spread,
                                                  _words(args.spread_only), _words(args.baselines)))
    elif args.students or args.spread or args.spread_only:
        raise SpeechkdError("--students, --spread and --spread-only go with --systems-from EXP", field="--systems")
    systems = read_manifest(args.systems)
    print(f"{len(systems)} systems in {args.systems}: {' '.join(s.name for s in systems)}")
    enhance_systems(systems, test_sets, args.data_root, average=args.average, nj=args.nj, num_utts=args.num_utts)
    return 0

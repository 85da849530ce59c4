"""``speechkd data``: validate, fix, split, subset and describe Kaldi data dirs.

    speechkd data validate DIR [--sample-rate 16000] [--no-audio] [--max-shown 20]
    speechkd data fix DIR [--sample-rate 16000] [--out OUT]
    speechkd data split DIR --num N [--out ROOT]                 # ROOT/1..N, default DIR/splitN
    speechkd data split DIR --ratio train=0.9 dev=0.1 --out ROOT [--seed 0]
    speechkd data subset DIR OUT (--first K | --last K | --utt-list FILE)
    speechkd data info DIR [--no-audio]
    speechkd data resample DIR OUT --rate 22050 [--nj N]          # audio to another rate, OUT/wav/

validate exits 1 when the dir has errors; user errors (e.g. no such dir) exit 2.
Pipes: ``validate`` and ``info`` never run the ``cmd |`` entries of wav.scp unless given
``--read-pipes``; ``fix`` runs them (it must read every utterance's audio to decide what to
drop), and so does ``resample``; ``split`` and ``subset`` read no audio. Outputs are never written over the input
dir or over another data dir without ``--overwrite``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speechkd.data.resample import resample_datadir
from speechkd.data.split import split_by_ratio, split_datadir, subset_datadir
from speechkd.data.validate import fix_datadir, validate_datadir
from speechkd.errors import DataDirError
from speechkd.utils import args as av


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    p = sub.add_parser("validate", help="check a data dir; exit 1 and list the problems if invalid",
                       epilog="Runs no 'cmd |' entry of wav.scp unless --read-pipes (they are listed as a warning).")
    p.add_argument("dir", type=av.existing_dir)
    p.add_argument("--sample-rate", type=av.sample_rate, default=None, help="expected sample rate of all audio")
    p.add_argument("--no-audio", action="store_true", help="do not read audio headers")
    p.add_argument("--read-pipes", action="store_true",
                   help="also run the commands of 'cmd |' entries of wav.scp to check their audio (off by "
                        "default: checking a data dir from elsewhere runs no code)")
    p.add_argument("--max-shown", type=av.nonneg_int, default=20, help="errors/warnings listed before counts")

    p = sub.add_parser("fix", help="drop unusable utterances, sort, regenerate spk2utt",
                       epilog="fix runs the 'cmd |' entries of wav.scp to check their audio: only fix data dirs "
                              "you trust (`speechkd data validate` runs none unless --read-pipes)")
    p.add_argument("dir", type=av.existing_dir)
    p.add_argument("--sample-rate", type=av.sample_rate, default=None, help="drop audio at another rate")
    p.add_argument("--out", type=av.output_dir,
                   default=None, help="write here instead of in place (in place keeps .backup/)")
    p.add_argument("--overwrite", action="store_true", help="replace another data dir at --out (its files "
                                                            "are copied into --out/.backup/ first)")

    p = sub.add_parser("split", help="split into N parts (DIR/splitN/1..N) or by ratio")
    p.add_argument("dir", type=av.existing_dir)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--num", type=av.positive_int, help="number of contiguous, balanced parts")
    how.add_argument("--ratio", nargs="+", metavar="NAME=R", help="named parts of shuffled utterances")
    p.add_argument("--out", type=av.output_dir,
                   default=None, help="output root (default DIR/splitN; required with --ratio)")
    p.add_argument("--seed", type=av.seed, default=0, help="shuffle seed for --ratio")
    p.add_argument("--overwrite", action="store_true", help="replace other data dirs at the output paths "
                                                            "(their files are copied into .backup/ first)")

    p = sub.add_parser("subset", help="write a subset of the utterances to OUT")
    p.add_argument("dir", type=av.existing_dir)
    p.add_argument("out", type=av.output_dir)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--first", type=av.positive_int, help="the first K utterances in C order")
    which.add_argument("--last", type=av.positive_int, help="the last K utterances in C order")
    which.add_argument("--utt-list", type=av.text_file, help="file whose lines start with the utterance ids to keep")
    p.add_argument("--overwrite", action="store_true", help="replace another data dir at OUT (its files are "
                                                            "copied into OUT/.backup/ first); OUT = DIR is "
                                                            "always refused")

    p = sub.add_parser("resample", help="write a copy with every recording at another sample rate",
                       epilog="Feature extraction refuses audio at another rate than its config's; this is the "
                              "explicit step. It runs the 'cmd |' entries of wav.scp to read their audio: only "
                              "resample data dirs you trust.")
    p.add_argument("dir", type=av.existing_dir)
    p.add_argument("out", type=av.output_dir, help="output data dir; the wavs go to OUT/wav/")
    p.add_argument("--rate", type=av.sample_rate, required=True, help="new sample rate in Hz (e.g. 22050)")
    p.add_argument("--nj", type=av.jobs, default=1, help="parallel processes")
    p.add_argument("--overwrite", action="store_true", help="replace another data dir at OUT (its files are "
                                                            "copied into OUT/.backup/ first)")

    p = sub.add_parser("info", help="print counts: utterances, speakers, minutes")
    p.add_argument("dir", type=av.existing_dir)
    p.add_argument("--no-audio", action="store_true", help="skip minutes (no audio headers read)")
    p.add_argument("--read-pipes", action="store_true", help="run 'cmd |' entries of wav.scp to count their minutes")


def main(args: argparse.Namespace) -> int:
    if not Path(args.dir).is_dir():
        raise DataDirError("data dir does not exist", path=args.dir)
    return {"validate": _validate, "fix": _fix, "split": _split, "subset": _subset,
            "resample": _resample, "info": _info}[args.action](args)


def _validate(args: argparse.Namespace) -> int:
    report = validate_datadir(args.dir, sample_rate=args.sample_rate, check_audio=not args.no_audio,
                              read_pipes=args.read_pipes)
    print(report.format(limit=args.max_shown))
    return 0 if report.ok else 1


def _fix(args: argparse.Namespace) -> int:
    res = fix_datadir(args.dir, sample_rate=args.sample_rate, out=args.out, overwrite=args.overwrite)
    print(f"{res.path}: kept {res.kept} utterances, dropped {len(res.dropped)}"
          + (f", repaired {len(res.repaired)} file problem(s)" if res.repaired else "")
          + (f"; originals in {res.backup}" if res.backup else ""))
    for utt, issue in sorted(res.dropped.items()):
        print(f"  dropped {utt}: {issue}")
    return 0


def _split(args: argparse.Namespace) -> int:
    if args.num is not None:
        dirs = split_datadir(args.dir, args.num, args.out, overwrite=args.overwrite)
    else:
        if args.out is None:
            raise DataDirError("--ratio needs --out", path=args.dir)
        parts = {}
        for item in args.ratio:
            name, _, value = item.partition("=")
            try:
                parts[name] = float(value)
            except ValueError:
                raise DataDirError(f"--ratio expects NAME=NUMBER, got '{item}'", path=args.dir) from None
        dirs = list(split_by_ratio(args.dir, parts, args.out, seed=args.seed, overwrite=args.overwrite).values())
    print("\n".join(dirs))
    return 0


def _subset(args: argparse.Namespace) -> int:
    utts = None
    if args.utt_list is not None:
        try:
            lines = Path(args.utt_list).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise DataDirError(f"cannot read utterance list ({e.strerror})", path=args.utt_list) from None
        utts = [line.split()[0] for line in lines if line.strip()]
    n = subset_datadir(args.dir, args.out, first=args.first, last=args.last, utts=utts, overwrite=args.overwrite)
    print(f"{args.out}: {n} utterances")
    return 0


def _resample(args: argparse.Namespace) -> int:
    ran, kept = resample_datadir(args.dir, args.out, args.rate, nj=args.nj, overwrite=args.overwrite)
    print(f"{args.out}: {ran + kept} recordings at {args.rate} Hz ({ran} resampled now, {kept} kept)")
    return 0


def _info(args: argparse.Namespace) -> int:
    report = validate_datadir(args.dir, check_audio=not args.no_audio, read_pipes=args.read_pipes)
    print(f"utterances: {report.num_utts}")
    print(f"speakers: {report.num_speakers}")
    if report.minutes is not None:
        print(f"minutes: {report.minutes:.2f}")
    if report.errors or report.warnings:
        print(f"problems: {len(report.errors)} errors, {len(report.warnings)} warnings "
              f"(see `speechkd data validate {args.dir}`)")
    return 0

"""``speechkd listen``: listening-test pages and the aggregation of their answers.

    speechkd listen page --manifest manifest.json --out exp/listen [--tests mos,cmos,ab,abx,mushra] [--seed 0]
    speechkd listen aggregate --results answers1.csv answers2.json --out exp/listen/report [--manifest manifest.json]
    speechkd listen serve --dir exp/listen --port 8000      # 127.0.0.1 only; stores answers in SQLite

Manifest: {"systems": [...], "reference_system": "gt" (optional),
           "utts": [{"id": ..., "text": ..., "ref": "ref.wav" (optional), "speaker": ... (optional),
                     "systems": {"sys": "x.wav", ...}}]}
With several speakers the samples are shown per speaker, and `aggregate --manifest` adds
per-speaker scores.
"""

from __future__ import annotations

import argparse
import os

from speechkd.enhance import systems as se_systems
from speechkd.errors import SpeechkdError
from speechkd.infer.systems import read_manifest
from speechkd.listen.manifest import build_manifest, load_manifest
from speechkd.listen.report import aggregate, write_report
from speechkd.listen.results import read_results
from speechkd.listen.serve import make_server
from speechkd.listen.site import PageOptions, build_site
from speechkd.utils import args as av


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__
    sub = parser.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True
    p = sub.add_parser("page", help="build the static listening-test site (works from file://)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--manifest", type=av.text_file,
                   required=True, help="JSON manifest of utterances x systems (format below)")
    p.add_argument("--out", type=av.output_dir,
                   required=True, help="output dir (index.html, <test>.html, audio/, spec/)")
    p.add_argument("--tests", default=None,
                   help="comma-separated subset of mos,cmos,ab,abx,mushra (default: all the manifest allows)")
    p.add_argument("--seed", type=av.seed, default=0, help="seed of the per-listener orders and gold items")
    p.add_argument("--title", type=av.nonempty_str, default="Listening test")
    p.add_argument("--gold", type=av.nonneg_int, default=2, help="degraded attention-check items per MOS/CMOS/AB test")
    p.add_argument("--repeats", type=av.nonneg_int, default=2, help="repeated items per MOS/CMOS/AB test (consistency)")
    p.add_argument("--ab-forced-choice", action="store_true", help="AB without a 'no preference' answer")
    p.add_argument("--play-fraction", type=av.probability, default=0.8,
                   help="fraction of a sample that must be played before it can be rated")
    p.add_argument("--copy", action="store_true", help="copy audio into the site instead of hard-linking it")

    m = sub.add_parser("manifest", help="write a manifest from a data dir and systems' <utt>.wav dirs")
    m.add_argument("--data-dir", type=av.existing_dir,
                   required=True, help="Kaldi data dir (ids, transcripts, ground-truth audio)")
    m.add_argument("--system", action="append", default=[], metavar="NAME=DIR",
                   help="a system and its dir of <utt>.wav (DIR = the data dir itself: ground truth); repeatable")
    m.add_argument("--systems", type=av.text_file, metavar="FILE",
                   help="also every system of a systems manifest (speechkd synth --systems, or speechkd enhance "
                        "--systems: the output of the data dir's test set), after the --system ones, in its order")
    m.add_argument("--reference", default=None, help="system used as the reference (MUSHRA, CMOS)")
    m.add_argument("--num-utts", type=av.nonneg_int, default=0, help="N utterances (several speakers: the first of each in turn); 0 = all")
    m.add_argument("--out", type=av.output_file, required=True, help="manifest JSON to write")

    a = sub.add_parser("aggregate", help="statistics, Markdown report and plots from exported answers")
    a.add_argument("--results", type=av.text_file,
                   nargs="+", required=True, help="answers files (.csv or .json) from the pages")
    a.add_argument("--out", type=av.output_dir,
                   required=True, help="output dir for report.md, summary.json and PNG plots")
    a.add_argument("--manifest", type=av.text_file, default=None,
                   help="the site's manifest: with several speakers, scores per speaker too (audio not needed)")
    a.add_argument("--exclude-failed-attention", action="store_true",
                   help="drop listeners who fail attention checks (default: flag them only)")
    a.add_argument("--seed", type=av.seed, default=0, help="bootstrap seed")
    a.add_argument("--bootstrap", type=av.int_range(1, 1000000), default=2000, help="bootstrap resamples")
    a.add_argument("--title", type=av.nonempty_str, default="Listening test results")

    s = sub.add_parser("serve", help="serve a site on 127.0.0.1 and store POSTed answers in SQLite")
    s.add_argument("--dir", type=av.existing_dir, required=True, help="site dir built by `speechkd listen page`")
    s.add_argument("--port", type=av.port, default=8000)
    s.add_argument("--db", type=av.output_file, default=None, help="SQLite file (default: <dir>/answers.sqlite)")


def main(args: argparse.Namespace) -> int:
    if args.what == "page":
        tests = tuple(t.strip().lower() for t in args.tests.split(",") if t.strip()) if args.tests else None
        opts = PageOptions(tests=tests, seed=args.seed, title=args.title, gold=args.gold, repeats=args.repeats,
                           ab_no_preference=not args.ab_forced_choice, play_fraction=args.play_fraction,
                           link=not args.copy)
        print(build_site(args.manifest, args.out, opts))
        return 0
    if args.what == "manifest":
        systems = {}
        for item in args.system:
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                raise SpeechkdError(f"--system {item!r} is not NAME=DIR", field="--system")
            systems[name] = path
        if args.systems:
            if se_systems.is_manifest(args.systems):  # SE: each system's output of the data dir's test set
                test_set = os.path.basename(os.path.normpath(args.data_dir))
                systems.update((s.name, s.enhanced_dir(test_set)) for s in se_systems.read_manifest(args.systems))
            else:
                systems.update((s.name, s.wav_dir) for s in read_manifest(args.systems))
        if not systems:
            raise SpeechkdError("no system given", field="--system", hint="--system NAME=DIR or --systems FILE")
        print(build_manifest(args.data_dir, systems, args.out, num_utts=args.num_utts,
                             reference_system=args.reference))
        return 0
    if args.what == "aggregate":
        ratings = read_results(args.results)
        utt2spk = load_manifest(args.manifest, check_audio=False).utt2spk if args.manifest else None
        summary = aggregate(ratings, exclude_attention=args.exclude_failed_attention, seed=args.seed,
                            n_boot=args.bootstrap, utt2spk=utt2spk)
        print(write_report(summary, args.out, args.title, [str(p) for p in args.results]))
        return 0
    server = make_server(args.dir, args.port, args.db)
    host, port = server.server_address[:2]
    print(f"serving {args.dir} on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0

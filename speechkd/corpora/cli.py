"""``speechkd corpus NAME --out DIR``: generate a built-in corpus (resumable, deterministic).

Rerunning the same command skips audio already on disk. The settings are recorded in
``DIR/.speechkd_settings.json``: another corpus or other settings into an existing DIR, or a
non-empty DIR that no corpus run made, is refused unless ``--overwrite`` (which moves the old
contents into ``DIR/.backup/<n>/``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os

from speechkd.corpora import CORPORA
from speechkd.corpora.common import _PARAMS
from speechkd.errors import SpeechkdError
from speechkd.utils import args as av
from speechkd.utils.io import atomic_write_json
from speechkd.utils.outputs import SETTINGS_FILE, claim_output_dir

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(CORPORA), help="corpus to generate")
    parser.add_argument("--out", type=av.output_dir, required=True, help="output dir: data dirs, wav/ and corpus.json")
    parser.add_argument("--num-utts", type=av.positive_int, default=None,
                        help="utterances (mini_en 600, mini_multi 400, asterisk_en all); "
                             "noise: clips per generated noise type (20)")
    parser.add_argument("--seed", type=av.seed, default=1, help="seed of prompt choice, splits and noise")
    parser.add_argument("--nj", type=av.jobs, default=1, help="parallel worker processes")
    parser.add_argument("--num-dev", type=av.positive_int, default=None, help="dev utterances (default 5%%, >= 1)")
    parser.add_argument("--num-test", type=av.positive_int, default=None, help="test utterances (default 5%%, >= 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="an --out holding another corpus, other settings or other files is moved into "
                             "<out>/.backup/<n>/ (without it such an --out is refused; the same command resumes)")


def main(args: argparse.Namespace) -> int:
    if args.num_utts is not None and args.num_utts < 1:
        raise SpeechkdError(f"--num-utts must be at least 1, got {args.num_utts}")
    if args.nj < 1:
        raise SpeechkdError(f"--nj must be at least 1, got {args.nj}")
    settings = {"corpus": args.name, "num_utts": args.num_utts, "seed": args.seed, "num_dev": args.num_dev,
                "num_test": args.num_test}
    _adopt_legacy(args.out, args.name, args.seed, settings)
    claim_output_dir(args.out, settings, verb="corpus", overwrite=args.overwrite)
    CORPORA[args.name](args.out, num_utts=args.num_utts, seed=args.seed, nj=args.nj,
                       num_dev=args.num_dev, num_test=args.num_test)
    return 0


def _adopt_legacy(out: str, name: str, seed: int, settings: dict) -> None:
    """A corpus dir written before settings were recorded (only its name and seed): rerunning the
    same corpus and seed into it resumes as it did then."""
    legacy = os.path.join(out, _PARAMS)
    if os.path.exists(os.path.join(out, SETTINGS_FILE)) or not os.path.isfile(legacy):
        return
    try:
        old = json.loads(open(legacy, encoding="utf-8").read())
    except (OSError, ValueError):
        return
    if old == {"name": name, "seed": seed}:
        atomic_write_json(os.path.join(out, SETTINGS_FILE), settings)

"""``speechkd download NAME --dest DIR``: fetch, check and unpack a published corpus's archive.

    speechkd download ljspeech --dest downloads          # -> downloads/LJSpeech-1.1/
    speechkd download vctk --dest downloads              # -> downloads/VCTK-Corpus-0.92/
    speechkd download libritts_r --dest downloads --url URL --sha256 HEX

Resumes an interrupted download; see :mod:`speechkd.corpora.download`.
"""

from __future__ import annotations

import argparse

from speechkd.corpora import PUBLIC
from speechkd.corpora.download import download
from speechkd.utils import args as av


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(PUBLIC), help="published corpus")
    parser.add_argument("--dest", type=av.output_dir, required=True, help="directory the archive is downloaded to and unpacked in")
    parser.add_argument("--url", type=av.nonempty_str, default=None, help="another URL of the archive (a mirror); needs --sha256 "
                        "unless the corpus's archive is pinned")
    parser.add_argument("--sha256", type=av.nonempty_str, default=None, help="the archive's SHA-256 (default: the pinned one)")


def main(args: argparse.Namespace) -> int:
    print(download(args.name, args.dest, url=args.url, sha256=args.sha256))
    return 0

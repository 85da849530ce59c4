"""``speechkd text``: show what a model sees for a sentence; tokenise data dirs; build token lists.

One sentence (prints the tokens; with ``--token-list`` also their ids)::

    speechkd text "Hello, world!"                      # phonemes (espeak-ng, en-us)
    speechkd text --kind char "Hello, world!"
    speechkd text --token-list data/token_list/phn/tokens.txt "Hello, world!"

A data dir (recipe stage 1). The training split builds the token list; every
other split is tokenised with the frontend saved beside that list and checked
against it::

    speechkd text --data-dir data/train --out dump/tokens/train \\
        --build-token-list data/token_list/phn/tokens.txt [--kind phoneme|char] [--language en-us]
    speechkd text --data-dir data/dev --out dump/tokens/dev \\
        --token-list data/token_list/phn/tokens.txt [--on-unknown error|map]

Writes (atomically):

- ``<out>/tokens``: ``<utt> tok tok ...`` per utterance, C-sorted (Kaldi style);
- ``<out>/utt2spk``: the data dir's speakers of those utterances (multi-speaker training);
- ``<out>/frontend.yaml``: the frontend settings used;
- with ``--build-token-list PATH``: ``PATH`` (see :mod:`speechkd.text.tokens`) and
  ``frontend.yaml`` beside it.

A token list always travels with the ``frontend.yaml`` beside it: ``--token-list``
reads the frontend from there (``--kind``/``--language``/``--config`` that
disagree with it are an error). Symbols missing from the list are an error
listing each utterance and symbol (also written to ``<out>/unknown_symbols.txt``);
``--on-unknown map`` writes ``<unk>`` for them instead.
"""

from __future__ import annotations

import argparse
import logging
import os

from speechkd.config import dump_config, load_config, save_config, to_dict
from speechkd.data.kaldi import read_datadir, write_table
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.text.frontend import Frontend
from speechkd.text.tokens import UNK, TokenList, UnknownSymbolError, build_token_list, write_tokens
from speechkd.utils import args as av
from speechkd.utils.io import atomic_write_text

logger = logging.getLogger(__name__)

FRONTEND_FILE = "frontend.yaml"
_SHOWN = 10  # utterances named in an unknown-symbol error


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sentence", nargs="?", help="a sentence to tokenise (omit with --data-dir)")
    p.add_argument("--data-dir", type=av.existing_dir, help="Kaldi data dir whose `text` to tokenise")
    p.add_argument("--out", type=av.output_dir, help="output dir for `tokens` and `frontend.yaml` (with --data-dir)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--build-token-list", type=av.output_file,
                   metavar="PATH", help="build a token list from this data dir "
                   "and write it to PATH (frontend.yaml beside it)")
    g.add_argument("--token-list", type=av.text_file,
                   metavar="PATH", help="existing token list (frontend.yaml beside it): "
                   "encode against it")
    p.add_argument("--config", type=av.text_file,
                   help="frontend YAML (default: the one beside --token-list, else built-in)")
    p.add_argument("--kind", choices=["phoneme", "char"], help="token kind (overrides the config)")
    p.add_argument("--language", type=av.nonempty_str, help="espeak-ng language (overrides the config)")
    p.add_argument("--on-unknown", choices=["error", "map"], default="error",
                   help=f"symbols missing from --token-list: error, or map to {UNK}")
    p.add_argument("--print-config", action="store_true", help="print the resolved frontend YAML and exit")


def resolve_frontend(args: argparse.Namespace) -> Frontend:
    """Built-in defaults <- --config (or frontend.yaml beside --token-list) <- --kind/--language."""
    overrides = [f"{k}={v}" for k, v in (("kind", args.kind), ("language", args.language)) if v]
    beside = (os.path.join(os.path.dirname(os.path.abspath(args.token_list)), FRONTEND_FILE)
              if args.token_list else None)
    if beside and os.path.exists(beside):
        fe = load_config(Frontend, beside)
        if args.config or overrides:
            asked = load_config(Frontend, args.config, overrides)
            diff = frontend_diff(fe, asked)
            if diff:
                raise ConfigError(f"the frontend asked for differs from the token list's: {diff}",
                                  path=beside, hint="drop --kind/--language/--config, or build a new "
                                                    "token list with --build-token-list")
        return fe
    if beside:
        logger.warning("%s not found beside the token list; using the default/given frontend", beside)
    return load_config(Frontend, args.config, overrides)


def frontend_diff(a: Frontend, b: Frontend) -> str:
    da, db = to_dict(a), to_dict(b)
    return "; ".join(f"{k}: {da[k]!r} vs {db[k]!r}" for k in da if da[k] != db[k])


def main(args: argparse.Namespace) -> int:
    fe = resolve_frontend(args)
    if args.print_config:
        print(dump_config(fe), end="")
        return 0
    if args.data_dir:
        if args.sentence:
            raise ConfigError("give either a sentence or --data-dir, not both")
        if not args.out:
            raise ConfigError("--data-dir needs --out", field="--out")
        tokenize_datadir(args.data_dir, args.out, fe, build_token_list_to=args.build_token_list,
                         token_list=args.token_list, on_unknown=args.on_unknown)
        return 0
    if not args.sentence:
        raise ConfigError("give a sentence, or --data-dir with --out",
                          hint='e.g. speechkd text "Hello, world!"')
    if args.build_token_list:
        raise ConfigError("--build-token-list needs --data-dir")
    tokens = fe.text_to_tokens(args.sentence)
    print(" ".join(tokens))
    if args.token_list:
        tl = TokenList.load(args.token_list)
        print(" ".join(map(str, tl.encode(tokens, on_unknown=args.on_unknown))))
    return 0


def tokenize_datadir(data_dir: str, out: str, fe: Frontend, *, build_token_list_to: str | None = None,
                     token_list: str | None = None, on_unknown: str = "error") -> dict[str, list[str]]:
    """Tokenise a data dir's ``text`` into ``<out>/tokens``; build or check a token list."""
    dd = read_datadir(data_dir)
    utts = [u for u in dd.utts if u in dd.text]
    missing = [u for u in dd.utts if u not in dd.text]
    if missing:
        raise SpeechkdError(f"{len(missing)} utterance(s) have no transcript, e.g. {missing[0]}",
                            path=os.path.join(data_dir, "text"), hint="run `speechkd data fix`")
    logger.info("tokenising %d utterances of %s (%s)", len(utts), data_dir, fe.kind)
    seqs = dict(zip(utts, fe.batch([dd.text[u] for u in utts], utts)))
    if build_token_list_to:
        extra = list("abcdefghijklmnopqrstuvwxyz'") if fe.kind == "char" else []
        tl = build_token_list(seqs.values(), extra=extra)
        tl.save(build_token_list_to)
        save_config(fe, os.path.join(os.path.dirname(os.path.abspath(build_token_list_to)), FRONTEND_FILE))
        logger.info("wrote token list %s (%d tokens)", build_token_list_to, len(tl))
    elif token_list:
        tl = TokenList.load(token_list)
        bad = {u: tl.unknown(s) for u, s in seqs.items() if tl.unknown(s)}
        if bad:
            report = "".join(f"{u} {' '.join(syms)}\n" for u, syms in bad.items())
            atomic_write_text(os.path.join(out, "unknown_symbols.txt"), report)
            shown = "; ".join(f"{u}: {', '.join(repr(s) for s in syms)}" for u, syms in list(bad.items())[:_SHOWN])
            more = f" (and {len(bad) - _SHOWN} more)" if len(bad) > _SHOWN else ""
            if on_unknown == "error":
                raise UnknownSymbolError(
                    f"{len(bad)} utterance(s) hold symbols not in the token list: {shown}{more}; "
                    f"all listed in {os.path.join(out, 'unknown_symbols.txt')}", path=token_list,
                    hint=f"fix those transcripts, rebuild the token list, or pass --on-unknown map ({UNK})")
            logger.warning("mapping unknown symbols to %s in %d utterance(s): %s%s", UNK, len(bad), shown, more)
            seqs = {u: [t if t in tl else UNK for t in s] for u, s in seqs.items()}
    write_tokens(os.path.join(out, "tokens"), seqs)
    # who speaks each utterance travels with its tokens: training builds its speaker table from it
    write_table(os.path.join(out, "utt2spk"), {u: dd.utt2spk[u] for u in seqs})
    save_config(fe, os.path.join(out, FRONTEND_FILE))
    n = sum(len(s) for s in seqs.values())
    logger.info("wrote %s (%d utterances, %d tokens)", os.path.join(out, "tokens"), len(seqs), n)
    return seqs


"""``speechkd vocode``: dumped log-mels -> wavs through a vocoder (copy synthesis).

    speechkd vocode --feats dump/feats/test --out exp/resynth_griffin_lim/synth/test \\
        [--vocoder griffin_lim] [--num-utts 20] [--device auto] [n_iter=64 ...]
"""

from __future__ import annotations

import argparse

from speechkd.config import parse_overrides
from speechkd.models.vocoders import VOCODERS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("options", nargs="*", metavar="KEY=VALUE", help="vocoder config overrides (e.g. n_iter=64)")
    p.add_argument("--feats", required=True, help="feature dump dir (feats.scp, feature_config.yaml)")
    p.add_argument("--out", required=True, help="output dir for <utt>.wav")
    p.add_argument("--vocoder", default="griffin_lim", choices=sorted(VOCODERS))
    p.add_argument("--num-utts", type=int, default=0, help="first N utterances of the dump; 0 = all")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")


def main(args: argparse.Namespace) -> int:
    from speechkd.infer.vocode import vocode_dump

    info = vocode_dump(args.feats, args.out, args.vocoder, parse_overrides(args.options),
                       num_utts=args.num_utts, device=args.device)
    print(f"{args.out}: {info['utterances']} utterances ({info['vocoded_now']} vocoded now, RTF {info['rtf']})")
    return 0

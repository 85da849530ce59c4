"""``speechkd prepare NAME --db-root DIR --out data``: Kaldi data dirs of a published corpus on disk.

    speechkd prepare ljspeech --db-root downloads/LJSpeech-1.1 --out data --rate 22050
    speechkd prepare vctk --db-root downloads/VCTK-Corpus-0.92 --out data --mic mic2
    speechkd prepare libritts_r --db-root downloads/LibriTTS_R --out data --subsets train-clean-100 train-clean-360
    speechkd prepare voicebank_demand --db-root downloads/vbd --out data/se --noise-dir data/noise/in_domain

Files at the output rate are read in place; the others are resampled once into OUT/wav/<split>/.
A missing or incomplete corpus is one error naming the missing files, the expected layout and
where the corpus is published.
"""

from __future__ import annotations

import argparse

from speechkd.corpora import PUBLIC
from speechkd.errors import SpeechkdError
from speechkd.utils import args as av


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(PUBLIC), help="published corpus")
    parser.add_argument("--db-root", type=av.nonempty_str, required=True, help="the unpacked corpus (or the directory holding it)")
    parser.add_argument("--out", type=av.output_dir, required=True, help="output: data dirs and prepare.json")
    parser.add_argument("--rate", type=av.sample_rate, default=None,
                        help="sample rate of wav.scp (default: ljspeech, vctk 22050; libritts_r 24000; "
                             "voicebank_demand 16000); files at another rate are resampled once into OUT/wav/")
    parser.add_argument("--nj", type=av.jobs, default=1, help="parallel processes resampling files")
    parser.add_argument("--num-dev", type=av.nonneg_int, default=None, help="ljspeech, vctk: held-out dev utterances "
                        "(vctk: sentences) (ljspeech 250, vctk 100)")
    parser.add_argument("--num-test", type=av.nonneg_int, default=None, help="ljspeech, vctk: held-out test utterances "
                        "(vctk: sentences) (ljspeech 250, vctk 100)")
    parser.add_argument("--seed", type=av.seed, default=1, help="vctk: seed of the utterance split")
    parser.add_argument("--mic", choices=["mic1", "mic2"], default="mic1", help="vctk: microphone")
    parser.add_argument("--speakers", type=av.name, nargs="+", default=[], help="vctk: only these speakers (default: all)")
    parser.add_argument("--subsets", type=av.name, nargs="+", default=["train-clean-100"],
                        help="libritts_r: training subsets (dev-clean and test-clean are dev and test)")
    parser.add_argument("--variant", choices=["28spk", "56spk"], default="28spk",
                        help="voicebank_demand: training set")
    parser.add_argument("--dev-speakers", type=av.name, nargs="+", default=["p226", "p287"],
                        help="voicebank_demand: training speakers held out as the dev set")
    parser.add_argument("--noise-dir", type=av.existing_path, default=None,
                        help="voicebank_demand: extra noise for noisy-target training (a Kaldi data dir "
                             "or a directory of sound files) -> OUT/extra_noise")


def main(args: argparse.Namespace) -> int:
    if args.nj < 1:
        raise SpeechkdError(f"must be at least 1, got {args.nj}", field="--nj")
    if args.rate is not None and args.rate < 1000:
        raise SpeechkdError(f"--rate must be a sample rate in Hz, got {args.rate}", field="--rate")
    for name in ("num_dev", "num_test"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            raise SpeechkdError(f"must be >= 0, got {getattr(args, name)}", field="--" + name.replace("_", "-"))
    kw = {k: v for k, v in dict(rate=args.rate, num_dev=args.num_dev, num_test=args.num_test).items()
          if v is not None}
    m = PUBLIC[args.name](args.db_root, args.out, seed=args.seed, mic=args.mic, subsets=tuple(args.subsets), speakers=tuple(args.speakers),
                          variant=args.variant, dev_speakers=tuple(args.dev_speakers), noise_dir=args.noise_dir, nj=args.nj,
                          **kw)
    for split, c in m["splits"].items():
        print(f"{split}: {c['utterances']} utterances" + (f", {c['minutes']} min" if "minutes" in c else ""))
    if any(m["skipped"].values()):
        print(f"skipped: {m['skipped']}")
    return 0

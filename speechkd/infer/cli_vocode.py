"""``speechkd vocode``: copy synthesis through a vocoder.

    speechkd vocode --feats dump/feats/test --out exp/resynth_griffin_lim/synth/test \\
        [--vocoder griffin_lim] [--num-utts 20] [--device auto] [n_iter=64 ...]
    speechkd vocode --feats dump/feats/test --vocoder exp/vocoder_vocos --out exp/resynth_vocos/synth/test
    speechkd vocode --data-dir data/test --vocoder world --out exp/resynth_world/synth/test [--nj 2] [synthesis=harmonic]

Mel vocoders (griffin_lim, a trained vocoder's exp dir) read a feature dump's log-mels;
WORLD analyses the waveforms of a data dir (it needs the audio, not the mel). Rerunning resumes;
an --out vocoded with another vocoder, options, input or checkpoint of a trained vocoder is refused
unless --overwrite.
"""

from __future__ import annotations

import argparse

from speechkd.config import parse_overrides
from speechkd.utils import args as av
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.infer.vocode import resynthesize_datadir, vocode_dump


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = av.RUNS_PIPES
    p.add_argument("options", nargs="*", metavar="KEY=VALUE",
                   help="config overrides of an untrained vocoder (e.g. n_iter=64; world: f0_method=dio, "
                        "synthesis=harmonic)")
    p.add_argument("--feats", type=av.existing_dir,
                   help="feature dump dir (feats.scp, feature_config.yaml): the input of mel vocoders")
    p.add_argument("--data-dir", type=av.existing_dir,
                   help="Kaldi data dir: the input of --vocoder world, which resynthesises the "
                                      "waveforms (WORLD cannot vocode a mel)")
    p.add_argument("--out", type=av.output_dir, required=True, help="output dir for <utt>.wav")
    p.add_argument("--vocoder", type=av.nonempty_str, default="griffin_lim",
                   help="griffin_lim | world | hifigan_universal | hifigan_ljspeech (22.05 kHz, speechkd[hifigan]) | "
                        "the exp dir of a trained vocoder (speechkd train-vocoder)")
    p.add_argument("--num-utts", type=av.nonneg_int, default=0, help="first N utterances; 0 = all")
    p.add_argument("--device", type=av.device, default="auto",
                   help="auto (CUDA when present), cpu, cuda (world synthesis=harmonic: the CUDA kernel)")
    p.add_argument("--overwrite", action="store_true",
                   help="an --out made with another vocoder, options, input or vocoder checkpoint is moved "
                        "into <out>/.backup/<n>/ (without it such an --out is refused; the same command resumes)")
    p.add_argument("--nj", type=av.jobs, default=1,
                   help="world on the CPU: processes sharing the utterances (whole batches each)")


def main(args: argparse.Namespace) -> int:
    import os


    opts = parse_overrides(args.options)
    if args.vocoder == "world":
        if not args.data_dir:
            raise SpeechkdError("WORLD resynthesises waveforms: give --data-dir", field="--data-dir",
                                hint="e.g. speechkd vocode --vocoder world --data-dir data/test --out DIR")
        fc = FeatureConfig.load(os.path.join(args.feats, "feature_config.yaml")) if args.feats else None
        info = resynthesize_datadir(args.data_dir, args.out, args.vocoder, opts, feats=fc,
                                    num_utts=args.num_utts, device=args.device, nj=args.nj,
                                    overwrite=args.overwrite)
    else:
        if not args.feats:
            raise SpeechkdError(f"vocoder {args.vocoder} vocodes log-mels: give --feats (a feature dump)",
                                field="--feats")
        info = vocode_dump(args.feats, args.out, args.vocoder, opts, num_utts=args.num_utts, device=args.device,
                           overwrite=args.overwrite)
    print(f"{args.out}: {info['utterances']} utterances ({info['vocoded_now']} vocoded now, RTF {info['rtf']})")
    return 0

"""``speechkd se-data``: noisy training speech (clean kept for evaluation only), extra noise, test sets.

    speechkd se-data --speech data/speech --noise data/noise --out data/se [--seed 1] \
        [--train-snr -5 10] [--test-snrs 0 5 10]
    speechkd se-data --speech data/speech_multi data/speech_asterisk --noise data/noise --out data/se \
        --unseen-speakers rms ked --unseen-noise-types pink lmms   # the generalisation test sets

See :mod:`speechkd.enhance.prepare` for what it writes. Deterministic: the same
inputs and seed give byte-identical audio. An --out made with other inputs or settings
(recorded in ``.speechkd_settings.json``) is refused unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import os

from speechkd.enhance.prepare import MixPlan, prepare_se_data
from speechkd.errors import SpeechkdError
from speechkd.utils import args as av
from speechkd.utils.outputs import claim_output_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = av.RUNS_PIPES
    parser.add_argument("--speech", type=av.existing_dir, nargs="+",
                        required=True, help="speech corpus roots, each holding train/, dev/, test/ data dirs (merged)")
    parser.add_argument("--noise", type=av.existing_dir,
                        required=True, help="noise corpus root holding in_domain/ and extraneous/")
    parser.add_argument("--out", type=av.output_dir, required=True, help="output root (data/se)")
    parser.add_argument("--seed", type=av.seed, default=1, help="seed of the noise split, clips, crops and SNRs")
    parser.add_argument("--train-snr", type=av.finite_float(-100, 100),
                        nargs=2, default=[-5.0, 10.0], metavar=("LOW", "HIGH"),
                        help="SNR range (dB) of the noisy training and dev mixtures, drawn uniformly")
    parser.add_argument("--test-snrs", type=av.finite_float(-100, 100), nargs="+", default=[0.0, 5.0, 10.0],
                        help="SNRs (dB) of the test sets: every test utterance at each")
    parser.add_argument("--extra-fraction", type=av.finite_float(0, 0.5, lo_open=True, hi_open=True), default=0.2,
                        help="fraction of each in-domain noise type held out as extra noise (NyTT's n')")
    parser.add_argument("--test-fraction", type=av.finite_float(0, 0.5, lo_open=True, hi_open=True), default=0.2,
                        help="fraction of each in-domain noise type held out for test_in_domain")
    parser.add_argument("--unseen-speakers", type=av.name, nargs="*", default=[], metavar="SPK",
                        help="voices (utt2spk speakers) left out of training and dev: test_unseen_voice(_noise)")
    parser.add_argument("--unseen-noise-types", type=av.name, nargs="*", default=[], metavar="TYPE",
                        help="in-domain noise types (the noise corpus's utt2spk) left out of training, extra and "
                             "test_in_domain noise: test_unseen_noise, test_unseen_voice_noise")
    parser.add_argument("--sample-rate", type=av.sample_rate,
                        default=16000, help="rate every input must have (no resampling)")
    parser.add_argument("--overwrite", action="store_true",
                        help="an --out made with other inputs or settings is moved into <out>/.backup/<n>/ "
                             "(without it such an --out is refused)")


def main(args: argparse.Namespace) -> int:
    for name in ("extra_fraction", "test_fraction"):
        if not 0.0 < getattr(args, name) < 0.5:
            raise SpeechkdError(f"must lie in (0, 0.5), got {getattr(args, name)}", field="--" + name.replace("_", "-"))
    if args.train_snr[0] > args.train_snr[1]:
        raise SpeechkdError(f"training SNR range {args.train_snr[0]}..{args.train_snr[1]} is empty",
                            field="--train-snr")
    speech = [os.path.abspath(p) for p in args.speech]
    claim_output_dir(args.out, {"speech": speech[0] if len(speech) == 1 else speech,
                                "noise": os.path.abspath(args.noise),
                                "seed": args.seed, "train_snr": list(args.train_snr),
                                "test_snrs": list(args.test_snrs), "extra_fraction": args.extra_fraction,
                                "test_fraction": args.test_fraction, "sample_rate": args.sample_rate,
                                **({"unseen_speakers": sorted(args.unseen_speakers)} if args.unseen_speakers else {}),
                                **({"unseen_noise_types": sorted(args.unseen_noise_types)}
                                   if args.unseen_noise_types else {})},
                     verb="se-data", overwrite=args.overwrite)
    plan = MixPlan(seed=args.seed, train_snr=tuple(args.train_snr), test_snrs=tuple(args.test_snrs),
                   extra_fraction=args.extra_fraction, test_fraction=args.test_fraction,
                   unseen_speakers=tuple(args.unseen_speakers), unseen_noise_types=tuple(args.unseen_noise_types))
    m = prepare_se_data(args.speech, args.noise, args.out, plan, sample_rate=args.sample_rate)
    for name, s in m["sets"].items():
        print(f"{name}: {s['utterances']} mixtures, SNR {s['snr_min']:.1f}..{s['snr_max']:.1f} dB")
    print(f"noise clips: {m['noise_clips']} -> {args.out}")
    return 0

"""``speechkd <verb>``: one verb per stage kind.

Each verb lives in the library package that owns it, as a module with
``add_arguments(parser)`` and ``main(args) -> int``. The table below is the
explicit registry; modules are imported only when their verb runs, so that
``speechkd data validate`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from speechkd import __version__
from speechkd.errors import SpeechkdError

# verb -> (module implementing it, one-line help). Explicit, greppable, no plugins.
VERBS: dict[str, tuple[str, str]] = {
    "data": ("speechkd.data.cli", "Kaldi data dirs: validate, fix, split, info"),
    "corpus": ("speechkd.corpora.cli", "generate a built-in corpus (mini_en, mini_multi, asterisk_en, noise)"),
    "prepare": ("speechkd.corpora.prepare_cli",
                "Kaldi data dirs of a published corpus on disk (ljspeech, vctk, libritts_r, voicebank_demand)"),
    "download": ("speechkd.corpora.download_cli",
                 "fetch a published corpus's archive: resumable, SHA-256 checked, unpacked safely"),
    "text": ("speechkd.text.cli", "show what a model sees for a sentence; build token lists"),
    "features": ("speechkd.features.cli", "dump log-mel, F0 and energy of a data dir (parallel, resumable)"),
    "train": ("speechkd.train.cli", "train an acoustic model in an exp dir (Lightning; resumes after a kill)"),
    "teacher-dump": ("speechkd.distill.teacher_dump_cli",
                     "durations, focus rates and free-running mels of a trained AR teacher (KD targets)"),
    "distill": ("speechkd.distill.cli", "distillation algorithms on a trained teacher: progressive (diffusion step halving)"),
    "se-data": ("speechkd.enhance.data_cli", "SE data: noisy training speech (clean for evaluation only), noise sets"),
    "se-train": ("speechkd.enhance.train_cli", "train an SE model: noisy-target teacher, remix students, upper bound"),
    "enhance": ("speechkd.enhance.enhance_cli", "enhance a wav or a data dir (--nj); S(T(y)) with --teacher"),
    "eval": ("speechkd.eval.cli", "objective evaluation: tts (MCD, F0, WER), se (PESQ, STOI, SI-SDR), asr, summary"),
    "train-vocoder": ("speechkd.train.vocoder_cli", "train a neural vocoder (Vocos-like; GAN + mel losses) in an exp dir"),
    "vocode": ("speechkd.infer.cli_vocode", "dumped log-mels -> wavs through a vocoder (copy synthesis)"),
    "synth": ("speechkd.infer.cli_synth", "text -> wav with a trained acoustic model and a vocoder (-o or -d DIR)"),
    "bench": ("speechkd.bench.cli", "speed benchmarks side by side in one process (align: MAS backends)"),
    "listen": ("speechkd.listen.cli", "listening-test pages (MOS, CMOS, AB, ABX, MUSHRA); aggregate answers; serve"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechkd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"speechkd {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb, (module, help_) in VERBS.items():
        p = sub.add_parser(verb, help=help_, description=help_)
        p.set_defaults(_module=module)
        # Import lazily: only the chosen verb's module (and its argument definitions).
        if verb in argv:
            importlib.import_module(module).add_arguments(p)
    return parser


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S", force=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    setup_logging(args.log_level)
    module = importlib.import_module(args._module)
    try:
        return int(module.main(args) or 0)
    except SpeechkdError as e:
        print(f"speechkd {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"speechkd {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

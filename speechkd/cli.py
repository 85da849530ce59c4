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
    "predict-mels": ("speechkd.distill.predicted_mels_cli",
                     "an acoustic model's teacher-forced mels of a split as a feature dump (vocoder distillation)"),
    "espnet": ("speechkd.distill.espnet_cli",
               "ESPnet2 interop: import dump/raw data dirs and teacher decodes, export durations"),
    "distill": ("speechkd.distill.cli", "distillation algorithms on a trained teacher: progressive (diffusion step halving)"),
    "se-data": ("speechkd.enhance.data_cli", "SE data: noisy training speech (clean for evaluation only), noise sets"),
    "se-train": ("speechkd.enhance.train_cli", "train an SE model: noisy-target teacher, remix students, upper bound"),
    "enhance": ("speechkd.enhance.enhance_cli", "enhance a wav or a data dir (--nj); S(T(y)) with --teacher"),
    "eval": ("speechkd.eval.cli", "objective evaluation: tts (MCD, F0, WER), se (PESQ, STOI, SI-SDR), asr, summary"),
    "train-vocoder": ("speechkd.train.vocoder_cli", "train a neural vocoder (Vocos-like; GAN + mel losses) in an exp dir"),
    "vocode": ("speechkd.infer.cli_vocode", "dumped log-mels -> wavs through a vocoder (copy synthesis)"),
    "synth": ("speechkd.infer.cli_synth", "text -> wav with a trained acoustic model and a vocoder (-o or -d DIR)"),
    "export": ("speechkd.export.cli", "export a trained student and vocoder to ONNX (runs without torch)"),
    "serve": ("speechkd.runtime.serve_cli", "serve an exported model over HTTP (POST text -> wav; loopback default)"),
    "bench": ("speechkd.bench.cli", "speed benchmarks side by side in one process (align: MAS backends)"),
    "listen": ("speechkd.listen.cli", "listening-test pages (MOS, CMOS, AB, ABX, MUSHRA); aggregate answers; serve"),
}


class Parser(argparse.ArgumentParser):
    """Usage errors as one line (which option, which value, why) and exit status 2; the full
    usage stays behind --help. Sub-parsers inherit the class."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = Parser(prog="speechkd", description=__doc__.splitlines()[0])
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
    try:
        args = build_parser(argv).parse_args(argv)
    except SystemExit as e:
        if e.code in (0, None):  # --help, --version
            raise
        return 2  # a usage error: argparse has printed its one line
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
    except Exception as e:  # the safety net: input errors a reader did not turn into a SpeechkdError
        line = input_error_line(e)
        if line is None:
            raise
        print(f"speechkd {args.verb}: error: {line}", file=sys.stderr)
        return 2


def input_error_line(e: BaseException) -> str | None:
    """One line for an exception that bad input causes (a file of the wrong kind, undecodable or
    malformed text, pathologically nested data), else None (a bug: let its traceback show)."""
    import json

    import yaml

    if isinstance(e, UnicodeDecodeError):
        return f"a file is not UTF-8 text (byte {e.start}: {e.reason}); convert it to UTF-8"
    if isinstance(e, (IsADirectoryError, NotADirectoryError, FileNotFoundError, PermissionError)):
        what = {IsADirectoryError: "is a directory, expected a file",
                NotADirectoryError: "is not a directory (or a path component is a file)",
                FileNotFoundError: "does not exist", PermissionError: "permission denied"}[type(e)]
        return f"{e.filename or '?'}: {what}"
    if isinstance(e, json.JSONDecodeError):
        return f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}"
    if isinstance(e, yaml.YAMLError):
        return "malformed YAML: " + " ".join(str(e).split())[:300]
    if isinstance(e, RecursionError):
        return "input nested too deeply (JSON/YAML structure); flatten it"
    return None


if __name__ == "__main__":
    sys.exit(main())

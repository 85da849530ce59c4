"""``speechkd export``: a trained student and its vocoder -> an ONNX dir that ``speechkd synth``
runs on onnxruntime without torch.

    speechkd export --model exp/fastspeech2 --vocoder exp/vocoder_vocos --format onnx --out exported/fs2
    speechkd export --model exp/fastspeech --vocoder griffin_lim --format onnx --out exported/fs --quantize int8
    speechkd synth --model exported/fs2 "The goat butted the hiker." -o goat.wav

The dir holds the graphs, the token list, the frontend settings, the FeatureConfig, the mel
statistics and ``manifest.json`` (:mod:`speechkd.runtime.bundle`). Before returning, the export
runs itself on onnxruntime against the PyTorch model and prints the difference (max |mel
difference|, vocoder waveform SNR); an fp32 export beyond 1e-3 is refused. An existing dir made
with other settings is refused unless ``--overwrite`` (its contents move to ``DIR/.backup/<n>/``).
"""

from __future__ import annotations

import argparse
import json

from speechkd.errors import SpeechkdError
from speechkd.utils import args as av


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=av.existing_path, required=True,
                   help="a trained FastSpeech / FastSpeech 2 / diffusion student exp dir (or .ckpt)")
    p.add_argument("--vocoder", type=av.nonempty_str, default="griffin_lim",
                   help="griffin_lim (numpy at run time) or a trained Vocos-like vocoder's exp dir (default %(default)s)")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default %(default)s)")
    p.add_argument("--out", type=av.output_dir, required=True, help="the exported dir to write")
    p.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="dynamic int8 quantisation of the MatMul weights (onnxruntime.quantization)")
    p.add_argument("--frontend", type=av.text_file, default=None,
                   help="frontend.yaml to use when the checkpoint holds none")
    p.add_argument("--average", type=av.positive_int, default=1,
                   help="SE models: average the weights of the last N step checkpoints (as speechkd enhance --average)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing dir made with other settings (its contents move to DIR/.backup/<n>/)")


def main(args: argparse.Namespace) -> int:
    from speechkd.export.se_onnx import is_se_model  # why: torch only once the arguments are valid

    if is_se_model(args.model):
        return main_se(args)
    if args.average != 1:
        raise SpeechkdError("--average is for SE models (TTS students export their last checkpoint)",
                            field="--average")
    from speechkd.export.onnx import export_onnx  # why: torch and the exporter only once the arguments are valid

    man = export_onnx(args.model, args.out, vocoder=args.vocoder, quantize=args.quantize, overwrite=args.overwrite,
                      frontend=args.frontend)
    print(f"{args.out}: {man['model']} + {man['vocoder']['kind']} ({args.quantize}); check against PyTorch: "
          + json.dumps(man.get("check", {})))
    return 0


def main_se(args: argparse.Namespace) -> int:
    """An SE model (``speechkd se-train``): one mask graph, STFT in the runtime (speechkd.export.se_onnx)."""
    from speechkd.export.se_onnx import export_se_onnx  # why: torch and the exporter only for an export

    for flag, value, default in (("--vocoder", args.vocoder, "griffin_lim"), ("--quantize", args.quantize, "none"),
                                 ("--frontend", args.frontend, None)):
        if value != default:
            raise SpeechkdError(f"{flag} does not apply to an SE model", field=flag)
    man = export_se_onnx(args.model, args.out, average=args.average, overwrite=args.overwrite)
    print(f"{args.out}: {man['model']} (SE, {man['sample_rate']} Hz, n_fft {man['stft']['n_fft']}, hop "
          f"{man['stft']['hop']}); check against PyTorch: " + json.dumps(man.get("check", {})))
    return 0

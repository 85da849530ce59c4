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
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing dir made with other settings (its contents move to DIR/.backup/<n>/)")


def main(args: argparse.Namespace) -> int:
    from speechkd.export.onnx import export_onnx  # why: torch and the exporter only once the arguments are valid

    man = export_onnx(args.model, args.out, vocoder=args.vocoder, quantize=args.quantize, overwrite=args.overwrite,
                      frontend=args.frontend)
    print(f"{args.out}: {man['model']} + {man['vocoder']['kind']} ({args.quantize}); check against PyTorch: "
          + json.dumps(man.get("check", {})))
    return 0

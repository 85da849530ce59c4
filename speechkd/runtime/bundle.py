"""The exported-model directory (``speechkd export --format onnx``): its files and its manifest.

    DIR/manifest.json        format name and version, what each file is, the model, speakers, limits
    DIR/encoder.onnx         tokens [B, S] int64, token_lens [B] int64 [, spk [B] int64]
                             [, spk_emb [B, D] float32] -> h [B, S, d] (after the variance adaptor),
                             log_durations [B, S] (log(d + 1), FastSpeech sec. 3.3)
    DIR/decoder.onnx         frames [B, T, d], mel_lens [B] int64 [, noise [B, T, n_mels]: a diffusion
                             student's x_T, its k-step sampler unrolled] -> mel [B, T, n_mels] (normalised)
    DIR/vocoder.onnx         (Vocos-like vocoder) log_mel [B, T, n_mels] -> spec [B, n_fft/2+1, T, 2]
                             (real, imaginary); the inverse STFT runs in numpy (runtime/dsp.py)
    DIR/griffin_lim.npz      (Griffin-Lim) the pseudo-inverse of the mel filter bank
    DIR/tokens.txt           the token list (id = line number)
    DIR/frontend.yaml        the text frontend settings the model was trained with
    DIR/feature_config.yaml  the FeatureConfig of its mels
    DIR/mel_stats.npz        mel_mean, mel_std (the models' normalisation; used when it is global)

A multi-speaker export (format version 2) lists its voices in ``speakers`` and, under
``speaker_inputs``, what the encoder takes: ``table`` (``spk``: the row of each voice, ``rows``)
and ``embed_dim`` (``spk_emb``: each voice's mean training embedding, ``embeddings``), with
FastSpeech 2's per-speaker pitch/energy statistics (``variance_stats``, inside the graph).
A diffusion student (version 2) has ``diffusion: {steps, sampler, schedule}``. Other exports are
written as version 1.

The length regulator runs between the two acoustic graphs (in numpy, :mod:`speechkd.runtime.synth`),
because its output length is data-dependent. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
from typing import Any

from speechkd.errors import SpeechkdError

FORMAT = "speechkd-onnx"
FORMAT_VERSION = 2  # 2: speaker inputs
MANIFEST = "manifest.json"
ENCODER, DECODER, VOCODER = "encoder.onnx", "decoder.onnx", "vocoder.onnx"
GRIFFIN_LIM = "griffin_lim.npz"
TOKENS, FRONTEND, FEATURES, MEL_STATS = "tokens.txt", "frontend.yaml", "feature_config.yaml", "mel_stats.npz"

# what each file is (written into the manifest)
DESCRIPTIONS = {
    ENCODER: "ONNX: tokens [B,S] int64, token_lens [B] int64 [, spk [B] int64, spk_emb [B,D] float32: "
             "multi-speaker, see speaker_inputs] -> h [B,S,d] (encoder + variance adaptor), log_durations [B,S] "
             "(log(d+1))",
    DECODER: "ONNX: frames [B,T,d] float32 (h repeated d times per token), mel_lens [B] int64 [, noise [B,T,n_mels] "
             "float32: a diffusion student's x_T, see diffusion] -> mel [B,T,n_mels] (normalised log-mel)",
    VOCODER: "ONNX: log_mel [B,T,n_mels] float32 (raw) -> spec [B,n_fft/2+1,T,2] (real, imag); inverse STFT "
             "outside the graph",
    GRIFFIN_LIM: "numpy: inv_basis [n_fft/2+1, n_mels], pseudo-inverse of the mel filter bank",
    TOKENS: "token list, one per line (id = line number - 1)",
    FRONTEND: "text frontend settings (speechkd.text.frontend.Frontend)",
    FEATURES: "FeatureConfig of the mels (speechkd.features.config)",
    MEL_STATS: "numpy: mel_mean, mel_std [n_mels] (denormalise the decoder's mel when normalization is global)",
}


def is_exported_dir(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` is a directory holding an export manifest (cheap: no file is parsed)."""
    return bool(path) and os.path.isfile(os.path.join(os.fspath(path), MANIFEST))  # type: ignore[arg-type]


def load_manifest_json(root: str, model: str) -> tuple[Any, str]:
    """The parsed ``manifest.json`` of an exported dir and its path, or one clear line when it is
    absent or not JSON (``model``: what to export, in the hint)."""
    mpath = os.path.join(root, MANIFEST)
    try:
        with open(mpath, encoding="utf-8") as f:
            return json.load(f), mpath
    except FileNotFoundError:
        raise SpeechkdError("not an exported model dir (no manifest.json)", path=root,
                            hint=f"make one with `speechkd export --model {model} --format onnx --out DIR`") from None
    except (ValueError, RecursionError) as e:
        raise SpeechkdError(f"manifest is not valid JSON ({e})", path=mpath, hint="export the model again") from None


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The checked manifest of an exported dir: right format, a version this code reads, every file
    it names present and inside the dir."""
    root = os.fspath(path)
    man, mpath = load_manifest_json(root, "exp/<model>")
    if isinstance(man, dict) and man.get("format") == "speechkd-se-onnx":  # speechkd.runtime.se.FORMAT
        raise SpeechkdError("this exported dir is a speech enhancement model, not a TTS one", path=root,
                            field="--model", hint=f"speechkd enhance --model {root} -i noisy.wav -o enhanced.wav")
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise SpeechkdError(f"manifest format is not {FORMAT!r}", path=mpath, field="format")
    version = man.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise SpeechkdError(f"format_version {version!r} is not one this speechkd reads (1..{FORMAT_VERSION})",
                            path=mpath, field="format_version", hint="export the model with this speechkd version")
    files = man.get("files")
    if not isinstance(files, dict) or not files:
        raise SpeechkdError("manifest lists no files", path=mpath, field="files")
    for name in files:
        if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
            raise SpeechkdError(f"file name {name!r} is not a plain name inside the dir", path=mpath, field="files")
        if not os.path.isfile(os.path.join(root, name)):
            raise SpeechkdError(f"{name} is missing", path=root, hint="the export is incomplete: export again")
    for key in ("model", "vocoder", "speakers", "max_tokens", "max_frames", "max_token_frames"):
        if key not in man:
            raise SpeechkdError(f"manifest has no {key!r}", path=mpath, field=key)
    if man["speakers"]:
        si = man.get("speaker_inputs")
        if not isinstance(si, dict) or not (si.get("table") or si.get("embed_dim")):
            raise SpeechkdError("a multi-speaker manifest without speaker_inputs", path=mpath, field="speaker_inputs",
                                hint="export the model again")
        for s in man["speakers"]:
            if (si.get("table") and s not in si.get("rows", {})) or (si.get("embed_dim")
                                                                     and s not in si.get("embeddings", {})):
                raise SpeechkdError(f"speaker {s!r} has no row or embedding", path=mpath, field="speaker_inputs")
    return man

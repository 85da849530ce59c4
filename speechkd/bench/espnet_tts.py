"""ESPnet2's own Transformer-TTS decoding as a row of ``speechkd bench synth`` (the ESPnet extra).

The model is ``espnet2.tts.transformer.Transformer`` at the size of speechkd's r=1 teacher in the
same table (random weights: decoding cost does not depend on their values): d_model -> ``adim``
and ``embed_dim`` (and the encoder prenet's channels), heads, layers, ``d_ff`` -> ``eunits`` and
``dunits``, the prenets and the post-net. speechkd's convolutional feed-forward (``ff_kernel`` > 1)
maps to ESPnet's encoder ``positionwise_conv_kernel_size``; ESPnet's decoder feed-forward is always
dense. ``Transformer.inference`` runs unchanged, forced to exactly ``frames`` frames like
speechkd's teacher: stop threshold above any probability, ``maxlenratio`` such that ESPnet's cap
``int((S + 1) * maxlenratio)`` (its input carries ``<sos/eos>``) is ``frames``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
from typing import Callable

import torch

ROW = "ESPnet2 Transformer.inference r=1"


def available() -> str | None:
    """None when ESPnet2 is importable, else why the row is skipped."""
    if importlib.util.find_spec("espnet2") is None:
        return "skipped: the ESPnet extra is absent (bash tools/install_espnet.sh)"
    return None


def espnet_transformer(conf, n_vocab: int, n_mels: int, device: str) -> torch.nn.Module:
    """ESPnet2's Transformer-TTS (r=1) of a speechkd ``TransformerTTSConfig``'s sizes, in eval mode."""
    with contextlib.redirect_stdout(io.StringIO()):  # ESPnet prints its attention fallback on import
        from espnet2.tts.transformer.transformer import Transformer

    torch.manual_seed(0)
    before = logging.root.manager.disable
    logging.disable(logging.INFO)  # ESPnet logs every parameter it initialises, at INFO on the root logger
    try:
        return _build(Transformer, conf, n_vocab, n_mels, device)
    finally:
        logging.disable(before)


def _build(Transformer, conf, n_vocab: int, n_mels: int, device: str) -> torch.nn.Module:
    return Transformer(
        idim=n_vocab, odim=n_mels, embed_dim=conf.d_model, eprenet_conv_layers=conf.enc_prenet_layers,
        eprenet_conv_chans=conf.d_model, eprenet_conv_filts=conf.enc_prenet_kernel, dprenet_layers=2,
        dprenet_units=conf.dec_prenet_dim, elayers=conf.enc_layers, eunits=conf.d_ff, adim=conf.d_model,
        aheads=conf.n_heads, dlayers=conf.dec_layers, dunits=conf.d_ff, postnet_layers=conf.postnet_layers,
        postnet_chans=conf.postnet_channels, postnet_filts=conf.postnet_kernel,
        positionwise_layer_type="conv1d" if conf.ff_kernel > 1 else "linear",
        positionwise_conv_kernel_size=conf.ff_kernel, reduction_factor=1, use_guided_attn_loss=False,
    ).to(device).eval()


def espnet_fn(model: torch.nn.Module, tokens: torch.Tensor, frames: int) -> Callable[[], dict]:
    """ESPnet's greedy decoding of exactly ``frames`` frames from ``tokens`` [1, S]."""
    text = tokens[0]
    ratio = (frames + 0.5) / (text.numel() + 1)  # int((S + 1) * ratio) == frames

    @torch.inference_mode()
    def run() -> dict:
        out = model.inference(text, threshold=2.0, maxlenratio=ratio)
        mel = out["feat_gen"][None]
        return {"mel": mel, "mel_lens": torch.tensor([mel.size(1)], device=mel.device)}
    return run


def size_note(conf) -> str:
    return (f"ESPnet2 {conf.enc_layers}+{conf.dec_layers} layers adim {conf.d_model} units {conf.d_ff} "
            f"(encoder FFN {'dense' if conf.ff_kernel == 1 else f'conv k={conf.ff_kernel}'}, decoder FFN dense)")

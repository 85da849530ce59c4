"""Acoustic models, one per file, and the explicit name -> class registry.

Every registered class has a ``Config`` dataclass attribute and is built as
``cls(cfg, n_vocab=..., n_mels=...)``; the training task relies on
``forward``/``losses``/``validation_metrics``/``plot_arrays`` (see
:mod:`speechkd.train.module`). Add a model by importing it here: no plugin
mechanism, no import strings.
"""

from __future__ import annotations

from torch import nn

from speechkd.errors import ConfigError
from speechkd.models.diffusion import DiffusionTTS
from speechkd.models.fastspeech import FastSpeech
from speechkd.models.fastspeech2 import FastSpeech2
from speechkd.models.transformer_tts import TransformerTTS

MODELS: dict[str, type[nn.Module]] = {
    "transformer_tts": TransformerTTS,
    "fastspeech": FastSpeech,
    "fastspeech2": FastSpeech2,
    "diffusion": DiffusionTTS,
}


def get_model_class(name: str) -> type[nn.Module]:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}",
                          field="model") from None

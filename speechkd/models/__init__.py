"""Acoustic models, one per file, and the explicit name -> class registry.

Every registered class is built as ``cls(cfg, n_vocab=..., n_mels=..., n_speakers=0, spk_embed_dim=0)``
(speakers: :mod:`speechkd.models.speaker`) and satisfies
:class:`AcousticModel`, the contract the training task (:mod:`speechkd.train.module`) and
inference (:mod:`speechkd.infer.synthesize`) rely on. Add a model by importing it here: no
plugin mechanism, no import strings.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from speechkd.errors import ConfigError
from speechkd.models.diffusion import DiffusionTTS
from speechkd.models.fastspeech import FastSpeech
from speechkd.models.fastspeech2 import FastSpeech2
from speechkd.models.transformer_tts import TransformerTTS

@runtime_checkable
class AcousticModel(Protocol):
    """Tokens -> normalised log-mel. ``batch_needs``: extra batch keys training feeds ``forward``
    (durations, pitch, energy); ``has_variances``: pitch/energy predictors (pitch_scale and
    energy_scale apply)."""

    Config: ClassVar[type]
    batch_needs: tuple[str, ...]
    has_variances: bool

    def set_stats(self, stats: Any) -> None:
        """Take the training dump's feature statistics (before training; kept in the weights)."""

    def forward(self, tokens: torch.Tensor, token_lens: torch.Tensor, mels: torch.Tensor, mel_lens: torch.Tensor,
                **batch: Any) -> dict:
        """Teacher-forced outputs; ``batch``: the ``batch_needs`` entries and, for a multi-speaker
        model, ``spk [B]`` (speaker rows) and/or ``spk_emb [B, D]`` (external embeddings)."""

    def losses(self, batch: dict, out: dict, step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def validation_metrics(self, batch: dict, out: dict) -> dict[str, list[float]]: ...

    def plot_arrays(self, batch: dict, out: dict, b: int) -> dict[str, np.ndarray]: ...

    def inference(self, tokens: torch.Tensor, token_lens: torch.Tensor, **options: Any) -> dict:
        """Free-running outputs (``mel``, ``mel_lens``); ``options`` include ``spk``/``spk_emb``."""


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

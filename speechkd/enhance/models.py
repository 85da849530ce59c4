"""The explicit name -> class registry of SE models (waveform in, waveform out).

Each class is built as ``cls(cfg)`` and satisfies :class:`SEModel`. Add a model by
importing it here: no plugin mechanism, no import strings.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from speechkd.config import from_dict
from speechkd.enhance.crn import CRN
from speechkd.enhance.subband_gru import SubbandGRU
from speechkd.errors import ConfigError

@runtime_checkable
class SEModel(Protocol):
    """Noisy waveform ``[B, N]`` -> enhanced waveform ``[B, N]`` (same rate and length); an
    ``nn.Module`` whose ``Config`` dataclass builds it."""

    Config: ClassVar[type]

    def forward(self, wav: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, wav: torch.Tensor) -> torch.Tensor: ...


SE_MODELS: dict[str, type[nn.Module]] = {
    "crn": CRN,                  # ~0.94 M parameters: the teacher
    "subband_gru": SubbandGRU,   # ~50 K parameters: the student
}


def build_se_model(name: str, conf: dict[str, Any] | None = None, *, source: str = "<config>") -> nn.Module:
    """The model ``name`` with its Config built from ``conf`` (unknown keys and wrong types refused)."""
    try:
        cls = SE_MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown SE model {name!r}; registered: {', '.join(sorted(SE_MODELS))}",
                          path=source, field="model") from None
    cfg = from_dict(cls.Config, dict(conf or {}), source=source, prefix="model_conf.")
    return cls(cfg)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""Vocoders: log-mel -> waveform. Explicit registry, name -> (class, config class)."""

from __future__ import annotations

from speechkd.models.vocoders.griffin_lim import GriffinLim, GriffinLimConfig

VOCODERS: dict[str, tuple[type, type]] = {
    "griffin_lim": (GriffinLim, GriffinLimConfig),
}

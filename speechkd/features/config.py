"""FeatureConfig: THE one definition of the acoustic features of this toolkit.

Every dump saves it as ``feature_config.yaml`` and every checkpoint embeds it;
teacher, student and vocoder refuse to work together when theirs differ
(:func:`check_compatible`), with an error naming each differing field and both
values. A mel computed with other settings than a vocoder was trained on gives
plausible-looking but wrong audio, the most common silent failure in TTS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Iterable, Literal

from speechkd.config import field, from_dict, load_config, save_config, to_dict
from speechkd.errors import FeatureMismatchError

# The fields that define the mel itself (what a vocoder and an acoustic model must share).
MEL_FIELDS = ("sample_rate", "n_fft", "hop_length", "win_length", "window", "n_mels", "fmin", "fmax",
              "mel_scale", "power", "center", "pad", "log_base", "log_floor", "normalization")
PITCH_FIELDS = ("f0_method", "f0_floor", "f0_ceil")


@dataclass
class FeatureConfig:
    """Log-mel, F0 and energy settings; see :mod:`speechkd.features.mel` for the exact formula."""

    sample_rate: int = field(16000, help="audio sample rate in Hz; audio at another rate is an error "
                                         "(resample the corpus explicitly)")
    n_fft: int = field(1024, help="FFT size in samples")
    hop_length: int = field(256, help="frame shift in samples (256 at 16 kHz = 16 ms)")
    win_length: int = field(1024, help="analysis window length in samples (<= n_fft)")
    window: Literal["hann", "hamming"] = field("hann", help="analysis window (periodic)")
    n_mels: int = field(80, help="number of mel bands")
    fmin: float = field(0.0, help="lowest mel filter frequency in Hz")
    fmax: float = field(8000.0, help="highest mel filter frequency in Hz (<= sample_rate / 2)")
    mel_scale: Literal["slaney", "htk"] = field(
        "slaney", help="mel scale and filter normalisation: slaney (librosa default, area-normalised, "
                       "as HiFi-GAN/ESPnet) or htk (unnormalised triangles)")
    power: float = field(1.0, help="spectrogram exponent before the mel filters: 1 magnitude, 2 power")
    center: bool = field(True, help="pad the signal by n_fft/2 (reflect) so frame t is centred on sample "
                                    "t*hop; frames = 1 + samples // hop")
    pad: int = field(0, help="with center false: reflect-pad the signal by this many samples on each side "
                              "before framing (HiFi-GAN: (n_fft - hop_length) / 2 = 384, so frame t is centred "
                              "on sample t*hop + hop/2 and frames = samples // hop); 0 with center true")
    log_base: Literal["e", "10"] = field("e", help="logarithm of the mel: natural (e) or base 10")
    log_floor: float = field(1e-5, help="mel values are clamped to >= this before the log")
    normalization: Literal["none", "global"] = field(
        "none", help="none: models see raw log-mel; global: models standardise features with the "
                     "per-bin mean/std in the dump's stats.npz (dumps always hold raw values)")
    f0_method: Literal["dio", "harvest"] = field(
        "dio", help="pyworld F0 estimator: dio + stonemask (fast) or harvest (~10x slower, fewer errors)")
    f0_floor: float = field(71.0, help="lowest F0 searched, Hz")
    f0_ceil: float = field(800.0, help="highest F0 searched, Hz")

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError("sample_rate, n_fft, hop_length and n_mels must be positive")
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be in 1..n_fft ({self.n_fft})")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin ({self.fmin}) < fmax ({self.fmax}) <= sample_rate/2 "
                             f"({self.sample_rate / 2})")
        if self.pad < 0 or (self.center and self.pad):
            raise ValueError(f"pad ({self.pad}) must be >= 0, and 0 when center is true (centring pads n_fft/2)")
        if self.log_floor <= 0 or self.power <= 0:
            raise ValueError("log_floor and power must be positive")
        if not 0 < self.f0_floor < self.f0_ceil:
            raise ValueError(f"need 0 < f0_floor ({self.f0_floor}) < f0_ceil ({self.f0_ceil})")

    @property
    def frame_shift_s(self) -> float:
        return self.hop_length / self.sample_rate

    def frame_edge_seconds(self, frames: float) -> float:
        """Time (s) of the edge before frame ``frames``, half a hop before its centre; frame t is
        centred on sample ``t * hop`` (centred STFT) or ``t * hop + n_fft/2 - pad``."""
        offset = 0.0 if self.center else self.n_fft / 2 - self.pad
        return ((frames - 0.5) * self.hop_length + offset) / self.sample_rate

    def frames_at_seconds(self, seconds: float) -> float:
        """The inverse of :meth:`frame_edge_seconds`: the (fractional) frame edge at ``seconds``."""
        offset = 0.0 if self.center else self.n_fft / 2 - self.pad
        return (seconds * self.sample_rate - offset) / self.hop_length + 0.5

    def num_frames(self, num_samples: int) -> int:
        """Frames of a signal of ``num_samples`` samples (as torch.stft gives)."""
        if self.center:
            return 1 + num_samples // self.hop_length
        return max(0, 1 + (num_samples + 2 * self.pad - self.n_fft) // self.hop_length)

    def save(self, path: str | os.PathLike) -> None:
        save_config(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, overrides: list[str] | None = None) -> "FeatureConfig":
        return load_config(cls, path, overrides)

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> "FeatureConfig":
        return from_dict(cls, data, source=source)


def config_diff(a: FeatureConfig, b: FeatureConfig, only: Iterable[str] | None = None) -> list[tuple[str, object, object]]:
    """(field, value in a, value in b) for each differing field (of ``only``, if given)."""
    da, db = to_dict(a), to_dict(b)
    names = list(only) if only is not None else [f.name for f in fields(FeatureConfig)]
    return [(n, da[n], db[n]) for n in names if da[n] != db[n]]


def check_compatible(a: FeatureConfig, b: FeatureConfig, what_a: str = "a", what_b: str = "b",
                     only: Iterable[str] | None = None, hint: str | None = None) -> None:
    """Raise :class:`FeatureMismatchError` naming every differing field with both values.

    ``only``: compare just these fields, e.g. :data:`MEL_FIELDS` for an acoustic
    model and a vocoder (which does not care how F0 was estimated).
    """
    diff = config_diff(a, b, only)
    if diff:
        detail = "; ".join(f"{n}: {va!r} ({what_a}) vs {vb!r} ({what_b})" for n, va, vb in diff)
        raise FeatureMismatchError(
            f"feature configs of {what_a} and {what_b} differ in {len(diff)} field(s): {detail}",
            field=",".join(n for n, _, _ in diff),
            hint=hint or "both must use the same FeatureConfig; re-extract features or retrain with matching "
                         "settings")

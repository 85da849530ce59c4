"""A stand-in for the FastSpeech 2 condition, for the diffusion tests only: token embeddings
repeated by the given (or a fixed) duration. The library always uses FastSpeech 2."""

from __future__ import annotations

import torch
from torch import nn


class StandInCondition(nn.Module):
    d_condition = 8

    def __init__(self, n_vocab: int = 10, frames_per_token: int = 3):
        super().__init__()
        self.emb = nn.Embedding(n_vocab, self.d_condition)
        self.frames_per_token = frames_per_token

    def encode_condition(self, tokens, token_lens, durations=None, speed=1.0, **_):
        if durations is None:
            durations = (token_lens.new_ones(tokens.shape) * self.frames_per_token
                         * (torch.arange(tokens.size(1))[None] < token_lens[:, None]))
        h = self.emb(tokens)
        rows = [torch.repeat_interleave(h[b], durations[b], dim=0) for b in range(tokens.size(0))]
        lens = torch.tensor([len(r) for r in rows])
        out = torch.zeros(len(rows), int(lens.max()), self.d_condition)
        for b, r in enumerate(rows):
            out[b, : len(r)] = r
        return out, lens, {}

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
        out = h.new_zeros(len(rows), int(lens.max()), self.d_condition)
        for b, r in enumerate(rows):
            out[b, : len(r)] = r
        return out, lens, {}


def make_dump_with_durations(root, n_train: int = 6, n_dev: int = 2, n_mels: int = 16) -> dict:
    """:func:`fake_dump.make_fake_dump` plus a teacher-forced teacher dump of durations (the frames
    split evenly over the tokens) in ``dump/teacher/<split>/teacher_forced``, as stage 4 writes it."""
    import numpy as np

    from fake_dump import make_fake_dump
    from speechkd.features.dump import read_feats_scp
    from speechkd.text.tokens import read_tokens

    paths = make_fake_dump(root, n_train=n_train, n_dev=n_dev, n_mels=n_mels)
    for split in ("train", "dev"):
        feats = read_feats_scp(str(paths["dump"] / "feats" / split))
        tokens = read_tokens(str(paths["dump"] / "tokens" / split / "tokens"))
        out = paths["dump"] / "teacher" / split / "teacher_forced"
        (out / "data").mkdir(parents=True)
        lines = []
        for utt in sorted(feats):
            n_tok, frames = len(tokens[utt]), feats[utt][1]
            d = np.full(n_tok, frames // n_tok, np.int32)
            d[: frames - int(d.sum())] += 1
            np.savez(out / "data" / f"{utt}.npz", durations=d, num_frames=np.asarray(frames, np.int32))
            lines.append(f"{utt} data/{utt}.npz {frames}\n")
        (out / "index.scp").write_text("".join(lines))
    return paths

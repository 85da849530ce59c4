"""Epochs over utterances for the trainers that draw random segments (vocoders, SE): which
utterance each drawn segment comes from, so that every utterance is used once per epoch across
the DDP ranks (what a distributed sampler gives a map-style dataset).

The stream of one rank is endless: epoch e is a permutation of the n utterances seeded by
(seed, e), the same on every rank; rank r of W takes its positions r, r + W, r + 2W, ... Each
rank takes ceil(n / W) per epoch (equal step counts: DDP would hang otherwise); when W does
not divide n, the last positions wrap around to the epoch's first ones, so at most W - 1
utterances are used twice in that epoch and none is left out. Position k of the stream is
``take(k, 1)``, so a run resumed at step s with batches of b continues at k = s * b.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochShards:
    """Utterance indices of one rank's endless stream (module docstring)."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        if n < 1 or not 0 <= rank < world:
            raise ValueError(f"need n >= 1 and 0 <= rank < world, got n={n}, rank={rank}, world={world}")
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.per_epoch = math.ceil(n / world)
        self._perm: tuple[int, np.ndarray] | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return self._perm[1]

    def take(self, start: int, count: int) -> np.ndarray:
        """Positions ``start .. start + count - 1`` of this rank's stream."""
        out = np.empty(count, np.int64)
        for i, k in enumerate(range(start, start + count)):
            epoch, j = divmod(k, self.per_epoch)
            out[i] = self.permutation(epoch)[(j * self.world + self.rank) % self.n]
        return out

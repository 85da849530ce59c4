"""Global feature statistics of a dump, for ``normalization: global`` and variance-predictor bins.

``stats.npz`` (read by models) and ``stats.json`` (for people) hold:

- ``mel_mean``, ``mel_std`` [n_mels]: per-bin over all frames;
- ``lf0_mean``, ``lf0_std``, ``lf0_min``, ``lf0_max``: over voiced frames only;
- ``energy_mean``, ``energy_std``, ``energy_min``, ``energy_max``: over all frames;
- ``num_utts``, ``num_frames``, ``num_voiced``.

Statistics always come from the training dump; dev/test dumps carry a copy of
the training ones (``speechkd features --stats-from``), never their own.
Standard deviations are floored at 1e-5 so that normalising never divides by 0.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np

from speechkd.errors import SpeechkdError
from speechkd.utils.io import atomic_open, atomic_write_json

_STD_FLOOR = 1e-5


@dataclass
class Stats:
    mel_mean: np.ndarray
    mel_std: np.ndarray
    lf0_mean: float
    lf0_std: float
    lf0_min: float
    lf0_max: float
    energy_mean: float
    energy_std: float
    energy_min: float
    energy_max: float
    num_utts: int
    num_frames: int
    num_voiced: int

    def normalize_mel(self, mel):
        """(mel - mean) / std per bin; works on numpy arrays and torch tensors [..., n_mels]."""
        return (mel - _like(self.mel_mean, mel)) / _like(self.mel_std, mel)

    def denormalize_mel(self, mel):
        return mel * _like(self.mel_std, mel) + _like(self.mel_mean, mel)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``path`` (.npz) and the same numbers as JSON beside it (``.json``)."""
        d = asdict(self)
        with atomic_open(path, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in d.items()})
        atomic_write_json(os.path.splitext(str(path))[0] + ".json",
                          {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Stats":
        path = str(path)
        try:
            with np.load(path) as z:
                d = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise SpeechkdError("statistics file does not exist", path=path,
                                hint="compute them by dumping the training set first") from None
        except (ValueError, OSError) as e:
            raise SpeechkdError(f"cannot read statistics ({e})", path=path) from None
        out = {}
        for k, tp in cls.__annotations__.items():
            if k not in d:
                raise SpeechkdError(f"statistics lack '{k}'", path=path, hint="recompute them")
            out[k] = d[k].astype(np.float32) if tp == "np.ndarray" else (
                int(d[k]) if tp == "int" else float(d[k]))
        return cls(**out)


def _like(a: np.ndarray, x):
    if isinstance(x, np.ndarray):
        return a.astype(x.dtype, copy=False)
    import torch

    return torch.as_tensor(a, dtype=x.dtype, device=x.device)


class StatsAccumulator:
    """Sums in float64, one utterance at a time."""

    def __init__(self) -> None:
        self.n_utts = self.n = self.nv = 0
        self.mel_sum = self.mel_sq = None
        self.lf0 = np.zeros(2)
        self.en = np.zeros(2)
        self.lf0_range = [np.inf, -np.inf]
        self.en_range = [np.inf, -np.inf]

    def add(self, mel: np.ndarray, lf0: np.ndarray, vuv: np.ndarray, energy: np.ndarray) -> None:
        m = mel.astype(np.float64)
        if self.mel_sum is None:
            self.mel_sum, self.mel_sq = np.zeros(m.shape[1]), np.zeros(m.shape[1])
        self.mel_sum += m.sum(0)
        self.mel_sq += (m * m).sum(0)
        v = lf0[vuv > 0].astype(np.float64)
        e = energy.astype(np.float64)
        self.lf0 += (v.sum(), (v * v).sum())
        self.en += (e.sum(), (e * e).sum())
        if v.size:
            self.lf0_range = [min(self.lf0_range[0], v.min()), max(self.lf0_range[1], v.max())]
        self.en_range = [min(self.en_range[0], e.min()), max(self.en_range[1], e.max())]
        self.n_utts += 1
        self.n += len(m)
        self.nv += v.size

    def result(self) -> Stats:
        if not self.n:
            raise SpeechkdError("no frames to compute statistics from")

        def ms(s: np.ndarray | float, sq, n: int):
            if n == 0:
                return 0.0, 1.0
            mean = s / n
            return mean, np.sqrt(np.maximum(sq / n - mean * mean, 0.0)).clip(_STD_FLOOR)

        mm, msd = ms(self.mel_sum, self.mel_sq, self.n)
        lm, lsd = ms(self.lf0[0], self.lf0[1], self.nv)
        em, esd = ms(self.en[0], self.en[1], self.n)
        lr = self.lf0_range if self.nv else [0.0, 0.0]
        return Stats(mel_mean=mm.astype(np.float32), mel_std=msd.astype(np.float32),
                     lf0_mean=float(lm), lf0_std=float(lsd), lf0_min=float(lr[0]), lf0_max=float(lr[1]),
                     energy_mean=float(em), energy_std=float(esd), energy_min=float(self.en_range[0]),
                     energy_max=float(self.en_range[1]), num_utts=self.n_utts, num_frames=self.n,
                     num_voiced=self.nv)


def compute_stats(npz_paths: list[str]) -> Stats:
    """Statistics of the per-utterance ``.npz`` files of a dump."""
    acc = StatsAccumulator()
    for p in npz_paths:
        with np.load(p) as z:
            acc.add(z["mel"], z["lf0"], z["vuv"], z["energy"])
    return acc.result()


def stats_summary(stats: Stats) -> str:
    return json.dumps({"utts": stats.num_utts, "frames": stats.num_frames,
                       "voiced": round(stats.num_voiced / max(stats.num_frames, 1), 3),
                       "lf0_mean": round(stats.lf0_mean, 3), "energy_mean": round(stats.energy_mean, 3)})

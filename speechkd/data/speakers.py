"""Who is speaking: the speaker table of a multi-speaker model and external speaker embeddings.

A model trained on several voices looks each voice up in a table whose rows are the training
speakers in C sort order (``spk2id``: ``<speaker> <row>``, written to the exp dir and kept in every
checkpoint). The speakers come from the training split's ``utt2spk`` (copied into the dump by
``speechkd text``, stage 1). A corpus with one speaker (every ``utt2spk`` of a single-speaker
recipe) gives no table, so single-speaker models are what they always were.

External embeddings (x-vectors, d-vectors from another tool) are read from a text table, one
vector per line, keyed by utterance or by speaker::

    <utt-or-speaker> <v1> <v2> ... <vD>          (plain)
    <utt-or-speaker>  [ <v1> <v2> ... <vD> ]     (Kaldi text ark, as copy-vector ark,t: writes)

An utterance takes its own line when there is one, else its speaker's; every vector has the same
D. Synthesis asks for a speaker, so a checkpoint keeps the mean embedding of each training
speaker (ESPnet's speaker-averaged x-vector at inference does the same).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from speechkd.data.kaldi import read_lines, sort_key, write_table
from speechkd.errors import SpeechkdError

SPK2ID = "spk2id"


@dataclass
class Speakers:
    """The speaker side of a model: table rows (``ids``) and the external embedding size.

    ``embeddings``: mean external embedding per training speaker (synthesis by speaker id);
    ``variance_stats``: per speaker ``[lf0 mean, lf0 std, lf0 min, lf0 max, energy mean, energy std,
    energy min, energy max]`` of the training frames (FastSpeech 2 normalises pitch and energy per
    speaker with them)."""

    ids: list[str] = field(default_factory=list)
    embed_dim: int = 0
    embeddings: dict[str, list[float]] = field(default_factory=dict)
    variance_stats: dict[str, list[float]] = field(default_factory=dict)

    @property
    def n_table(self) -> int:
        """Rows of the learned table: 0 for one speaker (no table)."""
        return len(self.ids) if len(self.ids) > 1 else 0

    @property
    def conditioned(self) -> bool:
        return self.n_table > 0 or self.embed_dim > 0

    @property
    def known(self) -> list[str]:
        """The speakers synthesis may ask for: the table rows, else those with a mean embedding."""
        return list(self.ids) if self.ids else sorted(self.embeddings)

    def to_meta(self) -> dict:
        """Plain values for the checkpoint's metadata."""
        return {"ids": list(self.ids), "embed_dim": self.embed_dim, "embeddings": self.embeddings,
                "variance_stats": self.variance_stats}

    @classmethod
    def from_meta(cls, meta: dict | None) -> "Speakers":
        """From a checkpoint's ``meta["speakers"]``; absent (older checkpoints): single-speaker."""
        if not meta:
            return cls()
        if not isinstance(meta, dict) or not isinstance(meta.get("ids", []), list):
            raise SpeechkdError("checkpoint speakers are not a mapping with an 'ids' list", field="speakers",
                                hint="the file was not written by speechkd's trainer")
        return cls(ids=[str(s) for s in meta.get("ids", [])], embed_dim=int(meta.get("embed_dim", 0)),
                   embeddings={str(k): [float(x) for x in v] for k, v in (meta.get("embeddings") or {}).items()},
                   variance_stats={str(k): [float(x) for x in v]
                                   for k, v in (meta.get("variance_stats") or {}).items()})

    def write_spk2id(self, path: str) -> None:
        write_table(path, {s: str(i) for i, s in enumerate(self.ids)})


def unknown_speaker(spk: str, known: list[str], *, utt: str | None = None, path: str | None = None) -> SpeechkdError:
    shown = ", ".join(known[:20]) + (f" (and {len(known) - 20} more)" if len(known) > 20 else "")
    return SpeechkdError(f"unknown speaker '{spk}'; the model knows: {shown or 'no speakers (single-speaker)'}",
                         utt=utt, path=path, field="speaker",
                         hint="pick one of those (`speechkd synth --model M --list-speakers`)")


def check_speaker_names(names: Sequence[str | None], known: list[str], *, utts: Sequence[str] | None = None,
                        path: str | None = None) -> None:
    """Refuse, before any work, a missing speaker (for a multi-speaker model) or an unknown one: the
    one message of every synthesis path (PyTorch and exported)."""
    for i, name in enumerate(names):
        utt = utts[i] if utts else None
        if name is None or name == "":
            raise SpeechkdError(f"a multi-speaker model needs a speaker; it knows: {', '.join(known[:20])}"
                                + (" ..." if len(known) > 20 else ""), utt=utt, path=path, field="speaker",
                                hint="speechkd synth --speaker ID (or --utt2spk FILE); Python: speaker=ID")
        if name not in known:
            raise unknown_speaker(name, known, utt=utt, path=path)


def speaker_list(utt2spk: dict[str, str]) -> list[str]:
    """The distinct speakers of an ``utt2spk`` map, C-sorted (table order)."""
    return sorted(set(utt2spk.values()), key=sort_key)


def read_embeddings(path: str) -> dict[str, np.ndarray]:
    """External embeddings (module docstring format): key -> float32 vector, all of one size."""
    if not os.path.exists(path):
        raise SpeechkdError("speaker embedding file does not exist", path=path, field="data.spk_embed")
    out: dict[str, np.ndarray] = {}
    dim = None
    for n, key, value in read_lines(path):
        v = value.replace("[", " ").replace("]", " ").split()
        try:
            vec = np.asarray([float(x) for x in v], dtype=np.float32)
        except ValueError:
            raise SpeechkdError(f"line {n}: values are not numbers", path=path, utt=key,
                                hint="one '<id> v1 v2 ... vD' line per utterance or speaker") from None
        if vec.size == 0 or not np.isfinite(vec).all():
            raise SpeechkdError(f"line {n}: empty or non-finite vector", path=path, utt=key)
        if dim is None:
            dim = vec.size
        elif vec.size != dim:
            raise SpeechkdError(f"line {n}: {vec.size} values, the first line has {dim}", path=path, utt=key,
                                hint="every embedding must have the same size")
        if key in out:
            raise SpeechkdError(f"line {n}: duplicate key", path=path, utt=key)
        out[key] = vec
    if not out:
        raise SpeechkdError("speaker embedding file is empty", path=path, field="data.spk_embed")
    return out


def embedding_for(table: dict[str, np.ndarray], utt: str, spk: str, path: str) -> np.ndarray:
    """The utterance's own vector, else its speaker's."""
    v = table.get(utt, table.get(spk))
    if v is None:
        raise SpeechkdError(f"no embedding for the utterance or its speaker '{spk}'", path=path, utt=utt,
                            field="data.spk_embed", hint="add a line for the utterance or its speaker")
    return v


def speaker_means(vectors: dict[str, np.ndarray], utt2spk: dict[str, str]) -> dict[str, list[float]]:
    """Mean embedding per speaker of the utterances given."""
    acc: dict[str, list[np.ndarray]] = {}
    for utt, v in vectors.items():
        acc.setdefault(utt2spk[utt], []).append(v)
    return {s: np.mean(vs, axis=0).astype(np.float32).tolist() for s, vs in acc.items()}


class VarianceAccumulator:
    """Per-speaker log-F0 (voiced frames) and energy moments, in float64."""

    def __init__(self) -> None:
        self.acc: dict[str, np.ndarray] = {}

    def add(self, spk: str, lf0: np.ndarray, vuv: np.ndarray, energy: np.ndarray) -> None:
        a = self.acc.setdefault(spk, np.array([0, 0, 0, math.inf, -math.inf, 0, 0, 0, math.inf, -math.inf],
                                              dtype=np.float64))
        v, e = lf0[vuv > 0].astype(np.float64), energy.astype(np.float64)
        a[0:3] += (v.size, v.sum(), (v * v).sum())
        if v.size:
            a[3], a[4] = min(a[3], v.min()), max(a[4], v.max())
        a[5:8] += (e.size, e.sum(), (e * e).sum())
        if e.size:
            a[8], a[9] = min(a[8], e.min()), max(a[9], e.max())

    def result(self, floor: float = 1e-5) -> dict[str, list[float]]:
        out = {}
        for spk, a in self.acc.items():
            row = []
            for n, s, sq, lo, hi in ((a[0], a[1], a[2], a[3], a[4]), (a[5], a[6], a[7], a[8], a[9])):
                if n == 0:  # a speaker without voiced frames: neutral statistics
                    row += [0.0, 1.0, 0.0, 0.0]
                    continue
                mean = s / n
                row += [mean, max(math.sqrt(max(sq / n - mean * mean, 0.0)), floor), lo, hi]
            out[spk] = [float(x) for x in row]
        return out

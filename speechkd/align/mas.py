"""Monotonic alignment search (MAS): the most likely monotonic text-to-frame alignment.

Glow-TTS (Kim et al. 2020), Algorithm 1; the same search as VITS' ``maximum_path``.
Given log-likelihoods ``log_p[s, t]`` of token s (of S) emitting frame t (of T),
with S <= T, find the hard alignment A (every frame to exactly one token, tokens
in order, each token a contiguous run of >= 1 frames) maximising Σ_t log_p[A(t), t]:

    Q[s, t] = log_p[s, t] + max(Q[s-1, t-1], Q[s, t-1]),   Q[0, 0] = log_p[0, 0],

over the band max(0, S-T+t) <= s <= min(S-1, t) (cells outside it cannot reach
(S-1, T-1)), then backtrack from (S-1, T-1): frame t-1 belongs to token s-1
when s == t (forced) or Q[s-1, t-1] > Q[s, t-1], otherwise to token s.

**Tie rule**: the comparison is strict, so on a tie the earlier frame stays with
the current, later token: ambiguous frames go to the later token and
boundaries fall as early as possible (uniform scores give durations [1, 1, …,
T-S+1]). This is the VITS/Glow-TTS rule. Every backend computes the DP in
float32 (one IEEE addition per cell, no FMA, no fast-math) and takes the max as
the select ``a if a > c else c``, so all backends return identical paths for
any input, NaN and ±inf included (NaN input gives a valid but meaningless path).

Backends: ``numba`` (CPU kernel, speechkd.align.mas_numba), ``cuda``
(numba.cuda kernels, speechkd.align.mas_cuda), ``numpy`` (loop over frames,
vectorised over batch and tokens), ``python`` (pure-Python reference), ``torch``
(the numpy algorithm in torch ops; runs on any device, slow on GPUs because of
one small kernel launch per frame).
"""

from __future__ import annotations

import logging
from array import array
from typing import Any, Sequence

import numpy as np

from speechkd.errors import SpeechkdError

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "numba", "cuda", "numpy", "python", "torch")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _is_numba_device_array(x: Any) -> bool:
    return type(x).__module__.startswith("numba.cuda") and hasattr(x, "copy_to_host")


def _lengths(lens: Any, batch: int, full: int, name: str) -> np.ndarray:
    if lens is None:
        return np.full(batch, full, dtype=np.int64)
    if _is_torch(lens):
        lens = lens.detach().cpu().numpy()
    arr = np.asarray(lens).reshape(-1)
    if arr.shape != (batch,) or not np.issubdtype(arr.dtype, np.integer):
        raise SpeechkdError(f"{name} must hold one integer length per batch item ({batch}), "
                            f"got shape {tuple(np.shape(lens))} dtype {arr.dtype}", field=name)
    return arr.astype(np.int64)


def check_lengths(shape: Sequence[int], text_lens: Any, frame_lens: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate ragged lengths against ``shape`` = (B, S_max, T_max); return int64 arrays.

    Each item needs 1 <= text_len <= frame_len (every token gets >= 1 frame),
    text_len <= S_max and frame_len <= T_max."""
    batch, s_max, t_max = shape
    s_len = _lengths(text_lens, batch, s_max, "text_lens")
    t_len = _lengths(frame_lens, batch, t_max, "frame_lens")
    bad = (s_len < 1) | (s_len > s_max) | (t_len > t_max) | (s_len > t_len)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise SpeechkdError(
            f"batch item {b}: text length {s_len[b]}, frame length {t_len[b]} do not fit a monotonic "
            f"alignment of a [{s_max} x {t_max}] matrix", field="text_lens/frame_lens",
            hint="need 1 <= text_len <= frame_len (each token >= 1 frame) and lengths within the padded "
                 "shape; drop utterances with more tokens than frames or lower the reduction factor")
    return s_len, t_len


def _resolve_backend(backend: str, on_gpu: bool) -> str:
    if backend not in BACKENDS:
        raise SpeechkdError(f"unknown MAS backend '{backend}'", field="backend",
                            hint=f"choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if on_gpu:
        from speechkd.align.mas_cuda import cuda_available  # why: numba.cuda, only when asked for

        return "cuda" if cuda_available() else "numba"
    return "numba"


def maximum_path(log_p: Any, text_lens: Any = None, frame_lens: Any = None, backend: str = "auto") -> Any:
    """Monotonic alignment search over a batch; returns the int32 path [B, S_max, T_max].

    ``log_p``: float scores [B, S_max, T_max] (tokens x frames; a 2-D [S, T] matrix
    is a batch of one and gives a 2-D path), numpy or torch (any device); computed
    in float32. ``text_lens``/``frame_lens``: [B] integer lengths (None: full).
    ``path[b, s, t] == 1`` iff frame t is aligned to token s; zero outside each
    item's [text_len, frame_len] block. Returns the input's kind (numpy array,
    torch tensor on the input's device, numba device array).
    ``backend``: ``auto`` (cuda for GPU inputs when numba.cuda works, else numba),
    ``numba``, ``cuda``, ``numpy``, ``python``, ``torch``."""
    squeeze = len(log_p.shape) == 2
    if squeeze:
        log_p = log_p.reshape((1,) + tuple(log_p.shape))
    if len(log_p.shape) != 3:
        raise SpeechkdError(f"log_p must be [B, S, T] or [S, T], got shape {tuple(log_p.shape)}", field="log_p")
    s_len, t_len = check_lengths(tuple(log_p.shape), text_lens, frame_lens)
    torch_in = _is_torch(log_p)
    on_gpu = (torch_in and log_p.device.type != "cpu") or _is_numba_device_array(log_p)
    name = _resolve_backend(backend, on_gpu)
    logger.debug("maximum_path %s with backend %s", tuple(log_p.shape), name)

    if name == "cuda":
        from speechkd.align.mas_cuda import maximum_path_cuda  # why: numba.cuda, only on a GPU

        if torch_in and not on_gpu:  # a CPU tensor: through the host path
            path = _like(maximum_path_cuda(_host(log_p), s_len, t_len), log_p)
        else:
            path = maximum_path_cuda(log_p, s_len, t_len)  # already the input's kind
    elif name == "torch":
        path = _maximum_path_torch(log_p if torch_in else _torch().from_numpy(_host(log_p)), s_len, t_len)
        path = path if torch_in else _like(path.numpy(), log_p)
    else:
        impl = {"numba": _numba_impl, "numpy": maximum_path_numpy, "python": maximum_path_python}[name]
        path = _like(impl(_host(log_p), s_len, t_len), log_p)
    return path[0] if squeeze else path


def _torch():
    import torch

    return torch


def _host(x: Any) -> np.ndarray:
    """float32 C-contiguous numpy copy (or view) of a numpy/torch/numba-device array."""
    if _is_torch(x):
        x = x.detach().to("cpu", dtype=_torch().float32).numpy()
    elif _is_numba_device_array(x):
        x = x.copy_to_host()
    return np.ascontiguousarray(x, dtype=np.float32)


def _like(path: np.ndarray, ref: Any) -> Any:
    """``path`` as the kind of ``ref``: numpy, a torch tensor on ref's device, or a numba device array."""
    if _is_torch(ref):
        return _torch().from_numpy(path).to(ref.device)
    if _is_numba_device_array(ref):
        from numba import cuda

        return cuda.to_device(path)
    return path


def _numba_impl(v: np.ndarray, s_len: np.ndarray, t_len: np.ndarray) -> np.ndarray:
    from speechkd.align.mas_numba import maximum_path_numba  # why: numba JIT, only for that backend

    return maximum_path_numba(v, s_len, t_len)


def maximum_path_python(v: np.ndarray, s_len: np.ndarray, t_len: np.ndarray) -> np.ndarray:
    """Pure-Python reference (Glow-TTS Alg. 1 / VITS ``maximum_path_each``), one item at a time.

    Q is stored in an ``array('f')``: each Python (double) sum is rounded to
    float32 on store, which equals a float32 addition (double rounding is exact
    for + with 53 >= 2·24 + 2 bits), so this matches the float32 kernels bit for bit."""
    batch, s_max, t_max = v.shape
    path = np.zeros((batch, s_max, t_max), dtype=np.int32)
    neg = float("-inf")
    for b in range(batch):
        S, T = int(s_len[b]), int(t_len[b])
        x = v[b, :S, :T].tolist()
        q = [array("f", [neg]) * T for _ in range(S)]
        q[0][0] = x[0][0]
        for t in range(1, T):
            for s in range(max(0, S - T + t), min(S, t + 1)):
                a = q[s - 1][t - 1] if s > 0 else neg  # from the previous token
                c = q[s][t - 1] if s < t else neg      # staying on this token
                q[s][t] = x[s][t] + (a if a > c else c)
        s = S - 1
        for t in range(T - 1, -1, -1):
            path[b, s, t] = 1
            if s != 0 and (s == t or q[s][t - 1] < q[s - 1][t - 1]):
                s -= 1
    return path


def maximum_path_numpy(v: np.ndarray, s_len: np.ndarray, t_len: np.ndarray) -> np.ndarray:
    """Loop over frames, vectorised over batch and tokens.

    All S_max rows are computed every frame: cells below the band or past an
    item's text length never feed the cells the backtrack reads, and cells above
    the band are reset to -inf, so the in-band values equal the banded DP's."""
    batch, s_max, t_max = v.shape
    vt = np.ascontiguousarray(v.transpose(2, 0, 1))  # [T, B, S]: one contiguous slab per frame
    q = np.full((batch, s_max + 1), -np.inf, dtype=np.float32)  # q[:, s+1] = Q[s]; q[:, 0] = Q[-1] = -inf
    q[:, 1] = vt[0, :, 0]
    came_from_prev = np.zeros((t_max, batch, s_max), dtype=bool)  # Q[s-1, t-1] > Q[s, t-1]
    best = np.empty((batch, s_max), dtype=np.float32)
    for t in range(1, t_max):
        a, c = q[:, :-1], q[:, 1:]
        gt = came_from_prev[t]
        np.greater(a, c, out=gt)
        np.copyto(best, c)
        np.copyto(best, a, where=gt)  # the select a if a > c else c (NaN-consistent with the kernels)
        np.add(vt[t], best, out=q[:, 1:])
        q[:, t + 2:] = -np.inf  # above the band (s > t): -inf even when log_p holds NaN or +inf
    # Backtrack all items at once; an item joins when t reaches its last frame.
    idx = s_len - 1
    rows = np.arange(batch)
    tokens = np.zeros((t_max, batch), dtype=np.int64)
    for t in range(t_max - 1, 0, -1):
        tokens[t] = idx
        move = (idx != 0) & ((idx == t) | came_from_prev[t, rows, idx]) & (t < t_len)
        idx = idx - move
    tokens[0] = idx
    path = np.zeros((batch, s_max, t_max), dtype=np.int32)
    tt, bb = np.nonzero(np.arange(t_max)[:, None] < t_len[None, :])
    path[bb, tokens[tt, bb], tt] = 1
    return path


def _maximum_path_torch(v: Any, s_len: np.ndarray, t_len: np.ndarray) -> Any:
    """The numpy algorithm in torch ops, on the tensor's device (float32)."""
    torch = _torch()
    with torch.no_grad():
        dev = v.device
        v = v.detach().to(torch.float32)
        batch, s_max, t_max = v.shape
        q = torch.full((batch, s_max + 1), float("-inf"), dtype=torch.float32, device=dev)
        q[:, 1] = v[:, 0, 0]
        came_from_prev = torch.zeros((t_max, batch, s_max), dtype=torch.bool, device=dev)
        for t in range(1, t_max):
            a, c = q[:, :-1], q[:, 1:]
            gt = a > c
            came_from_prev[t] = gt
            q = torch.cat([q[:, :1], v[:, :, t] + torch.where(gt, a, c)], dim=1)
            q[:, t + 2:] = float("-inf")
        s_len_t = torch.as_tensor(s_len, device=dev)
        t_len_t = torch.as_tensor(t_len, device=dev)
        idx = s_len_t - 1
        rows = torch.arange(batch, device=dev)
        tokens = torch.zeros((t_max, batch), dtype=torch.long, device=dev)
        for t in range(t_max - 1, 0, -1):
            tokens[t] = idx
            move = (idx != 0) & ((idx == t) | came_from_prev[t, rows, idx]) & (t < t_len_t)
            idx = idx - move.long()
        tokens[0] = idx
        valid = torch.arange(t_max, device=dev)[:, None] < t_len_t[None, :]
        tt, bb = torch.nonzero(valid, as_tuple=True)
        path = torch.zeros((batch, s_max, t_max), dtype=torch.int32, device=dev)
        path[bb, tokens[tt, bb], tt] = 1
    return path

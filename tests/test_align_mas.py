"""Monotonic alignment search: path invariants, optimality, the tie rule, and identical paths on every CPU backend."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speechkd.align.mas import maximum_path
from speechkd.align.mas_numba import maximum_path_numba
from speechkd.errors import SpeechkdError

CPU_BACKENDS = ("numba", "numpy", "python", "torch")


def assert_valid_path(path: np.ndarray, s_len, t_len) -> None:
    """Monotonic, contiguous, each valid frame on exactly one token, every token >= 1 frame, zero padding."""
    for b in range(path.shape[0]):
        S, T = int(s_len[b]), int(t_len[b])
        p = path[b]
        assert p[S:].sum() == 0 and p[:, T:].sum() == 0
        assert (p[:S, :T].sum(axis=0) == 1).all()            # each frame exactly once
        tokens = p[:S, :T].argmax(axis=0)
        assert tokens[0] == 0 and tokens[-1] == S - 1
        assert set(np.diff(tokens).tolist()) <= {0, 1}        # monotonic, no token skipped
        d = p[:S, :T].sum(axis=1)
        assert (d >= 1).all() and d.sum() == T


@st.composite
def ragged_batches(draw):
    batch = draw(st.integers(1, 4))
    s_max = draw(st.integers(1, 10))
    t_max = draw(st.integers(s_max, 30))
    s_len = np.array([draw(st.integers(1, s_max)) for _ in range(batch)])
    t_len = np.array([draw(st.integers(int(s), t_max)) for s in s_len])
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["normal", "ties", "zeros", "inf", "nan"]))
    if kind == "normal":
        v = rng.standard_normal((batch, s_max, t_max))
    elif kind == "ties":  # few distinct small integers: sums tie exactly in float32
        v = rng.integers(-2, 1, (batch, s_max, t_max)).astype(float)
    elif kind == "zeros":
        v = np.zeros((batch, s_max, t_max))
    else:
        v = rng.standard_normal((batch, s_max, t_max))
        v[rng.random(v.shape) < 0.2] = -np.inf if kind == "inf" else np.nan
    return v.astype(np.float32), s_len, t_len


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ragged_batches())
def test_all_cpu_backends_identical_and_valid(case):
    v, s_len, t_len = case
    ref = maximum_path(v, s_len, t_len, backend="python")
    assert ref.dtype == np.int32 and ref.shape == v.shape
    assert_valid_path(ref, s_len, t_len)
    for backend in ("numba", "numpy"):
        np.testing.assert_array_equal(maximum_path(v, s_len, t_len, backend=backend), ref, err_msg=backend)
    for parallel in (False, True):
        np.testing.assert_array_equal(maximum_path_numba(v, s_len, t_len, parallel=parallel), ref)
    np.testing.assert_array_equal(maximum_path(torch.from_numpy(v), s_len, t_len, backend="torch").numpy(), ref)


def vits_maximum_path_each(value: np.ndarray, t_x: int, t_y: int, max_neg_val: float = -1e9) -> np.ndarray:
    """VITS monotonic_align/core.pyx ``maximum_path_each`` (value: frames x tokens), transcribed."""
    value = value.astype(np.float32).copy()
    path = np.zeros(value.shape, np.int32)
    index = t_x - 1
    for y in range(t_y):
        for x in range(max(0, t_x + y - t_y), min(t_x, y + 1)):
            v_cur = max_neg_val if x == y else value[y - 1, x]
            v_prev = (0.0 if y == 0 else max_neg_val) if x == 0 else value[y - 1, x - 1]
            value[y, x] = np.float32(max(v_cur, v_prev)) + value[y, x]
    for y in range(t_y - 1, -1, -1):
        path[y, index] = 1
        if index != 0 and (index == y or value[y - 1, index] < value[y - 1, index - 1]):
            index = index - 1
    return path


@pytest.mark.parametrize("seed", range(4))
def test_same_paths_as_vits(seed):
    rng = np.random.default_rng(seed)
    S, T = 7, 23
    v = (rng.integers(-3, 1, (S, T)) if seed % 2 else rng.standard_normal((S, T))).astype(np.float32)
    ours = maximum_path(v)
    np.testing.assert_array_equal(ours, vits_maximum_path_each(v.T, S, T).T)


def test_maximises_the_score_over_all_monotonic_paths():
    rng = np.random.default_rng(0)
    S, T = 4, 9
    for _ in range(20):
        v = rng.standard_normal((S, T)).astype(np.float32)
        best = -np.inf
        for cuts in itertools.combinations(range(1, T), S - 1):  # every split of T frames into S runs
            bounds = (0, *cuts, T)
            best = max(best, sum(v[s, bounds[s]:bounds[s + 1]].sum(dtype=np.float64) for s in range(S)))
        path = maximum_path(v)
        assert (v * path).sum(dtype=np.float64) == pytest.approx(best, abs=1e-4)


def test_tie_rule_later_tokens_take_ambiguous_frames():
    path = maximum_path(np.zeros((3, 7), np.float32))
    assert path.sum(axis=1).tolist() == [1, 1, 5]


def test_obvious_alignment():
    d = np.array([2, 5, 1, 3])
    tokens = np.repeat(np.arange(4), d)
    v = np.full((4, d.sum()), -5.0, np.float32)
    v[tokens, np.arange(d.sum())] = 0.0
    for backend in CPU_BACKENDS:
        assert maximum_path(v, backend=backend).sum(axis=1).tolist() == d.tolist()


def test_kinds_in_kinds_out():
    v = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)
    p = maximum_path(torch.from_numpy(v), torch.tensor([3, 2]), torch.tensor([8, 5]))
    assert isinstance(p, torch.Tensor) and p.dtype == torch.int32
    np.testing.assert_array_equal(p.numpy(), maximum_path(v, [3, 2], [8, 5]))
    assert maximum_path(v[0].astype(np.float64)).shape == (3, 8)     # 2-D in, 2-D out; float64 accepted
    assert maximum_path(v.transpose(0, 2, 1).copy().transpose(0, 2, 1)).shape == v.shape  # non-contiguous


def test_buffers_reused_across_shapes_and_threads():
    rng = np.random.default_rng(1)
    shapes = [(3, 5, 40), (2, 9, 12), (4, 5, 40), (1, 2, 3)]
    inputs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    refs = [maximum_path(v, backend="numpy") for v in inputs]
    for v, ref in zip(inputs, refs):
        np.testing.assert_array_equal(maximum_path(v), ref)
    out = np.full(shapes[0], 7, np.int32)
    maximum_path_numba(inputs[0], np.full(3, 5), np.full(3, 40), out=out)
    np.testing.assert_array_equal(out, refs[0])
    errors = []

    def worker(k):
        for _ in range(20):
            if not np.array_equal(maximum_path(inputs[k]), refs[k]):
                errors.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("s_len,t_len,msg", [([4], [3], "text length 4, frame length 3"),
                                             ([0], [3], "text length 0"),
                                             ([2], [9], "frame length 9"),
                                             ([2, 2], [3, 3], "one integer length per batch item")])
def test_bad_lengths_are_user_errors(s_len, t_len, msg):
    with pytest.raises(SpeechkdError, match=msg):
        maximum_path(np.zeros((1, 4, 8), np.float32), s_len, t_len)


def test_bad_backend_and_shape():
    with pytest.raises(SpeechkdError, match="unknown MAS backend"):
        maximum_path(np.zeros((2, 3), np.float32), backend="cython")
    with pytest.raises(SpeechkdError, match=r"\[B, S, T\]"):
        maximum_path(np.zeros((1, 2, 3, 4), np.float32))

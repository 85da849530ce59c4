"""WER/CER against hand-computed values."""

from __future__ import annotations

import math

from speechkd.eval.wer import EditCounts, bootstrap_rate_ci, cer_counts, edit_counts, normalize_for_wer, wer_counts


def test_normalisation():
    assert normalize_for_wer("Hello, World! It's a long-term plan.") == "hello world it's a long term plan"
    assert normalize_for_wer("  'Quoted'  café ") == "quoted cafe"


def test_edit_counts_known_cases():
    assert edit_counts("a b c".split(), "a b c".split()) == EditCounts(0, 0, 0, 3)
    c = edit_counts("a b c d".split(), "a x c d e".split())   # one substitution, one insertion
    assert (c.sub, c.dele, c.ins, c.ref_len) == (1, 0, 1, 4)
    assert math.isclose(c.rate, 2 / 4)
    c = edit_counts("a b c d e".split(), "a c d e".split())   # one deletion
    assert (c.sub, c.dele, c.ins) == (0, 1, 0)
    # equal-cost alignments: 3 substitutions rather than S + D + I
    c = edit_counts("the cat sat on mat".split(), "the bat sat mat down".split())
    assert (c.sub, c.dele, c.ins, c.ref_len) == (3, 0, 0, 5)
    assert edit_counts([], "x y".split()) == EditCounts(0, 0, 2, 0)
    assert edit_counts("x y".split(), []) == EditCounts(0, 2, 0, 2)
    # substitutions preferred to deletion + insertion at equal cost
    assert edit_counts(["a"], ["b"]) == EditCounts(1, 0, 0, 1)


def test_wer_and_cer_on_text():
    w = wer_counts("The quick brown fox.", "the quick brown box")
    assert (w.errors, w.ref_len) == (1, 4)
    c = cer_counts("abc", "abd")
    assert (c.errors, c.ref_len) == (1, 3)


def test_bootstrap_ci_brackets_rate():
    counts = [EditCounts(i % 3, 0, 0, 10) for i in range(40)]
    total = sum(counts, EditCounts())
    lo, hi = bootstrap_rate_ci(counts, seed=1)
    assert lo <= total.rate <= hi and hi - lo < 0.1
    assert bootstrap_rate_ci([EditCounts(0, 0, 0, 5)] * 5) == (0.0, 0.0)

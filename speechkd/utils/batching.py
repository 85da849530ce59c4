"""Length-sorted synthesis batches shared by the PyTorch :class:`speechkd.infer.synthesize.Synthesizer`
and the torch-free runtime (:mod:`speechkd.runtime.synth`)."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from speechkd.errors import SpeechkdError


def length_sorted_batches(results: Sequence[Any], ids: Sequence[list[int] | SpeechkdError], batch_size: int,
                          on_done: Callable[[Any], None] | None = None) -> Iterator[list[tuple[Any, list[int]]]]:
    """Chunks of ``(result, ids)`` of at most ``batch_size``, shortest first (less padding). A text
    whose ids are an error gets it in ``result.error`` and goes to ``on_done`` at once: a bad text
    never stops the others."""
    good = []
    for r, x in zip(results, ids):
        if isinstance(x, SpeechkdError):
            r.error = str(x)
            if on_done:
                on_done(r)
        else:
            good.append((r, x))
    good.sort(key=lambda p: len(p[1]))
    for start in range(0, len(good), batch_size):
        yield good[start:start + batch_size]

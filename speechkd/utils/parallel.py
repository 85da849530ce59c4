"""Map a picklable function over items in ``nj`` worker processes (in order), or in this one."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def process_map(fn: Callable[[T], R], items: Sequence[T], nj: int = 1) -> list[R]:
    """``[fn(x) for x in items]``, spread over ``nj`` processes when ``nj > 1``."""
    if nj <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ProcessPoolExecutor(max_workers=nj) as ex:
        return list(ex.map(fn, items, chunksize=max(1, len(items) // (4 * nj))))

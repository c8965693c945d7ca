"""Batching for the store and Salesforce: IN lists, executemany batches, streamed chunks,
the garbage collector paused for bulk work."""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

IN_LIST_SIZE = 500  # values per IN (...) of a store query


def chunked(items: Iterable[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive batches of at most `size` items, in order.

    A sequence is sliced (a list gives lists); any other iterable is consumed lazily, a batch
    at a time, so a stream is never read ahead by more than one batch.
    """
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    if isinstance(items, Sequence):
        for start in range(0, len(items), size):
            yield items[start : start + size]
        return
    stream = iter(items)
    while batch := list(itertools.islice(stream, size)):
        yield batch


@contextlib.contextmanager
def collector_paused() -> Generator[None]:
    """Pause Python's cyclic garbage collector for one bulk job (a window, an import).

    Such a job allocates millions of short-lived, acyclic tuples (message rows, lines,
    claims); each automatic collection walks every live one again, which cost about a fifth
    of a million-message window. Reference counting still frees them; cycles wait until the
    end.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()

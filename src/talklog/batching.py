"""Batching for the store and Salesforce: IN lists, executemany batches, streamed chunks."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
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

"""Fan CPU-bound work out to worker processes while keeping results in submission order."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers(requested: int = 0) -> int:
    return requested if requested > 0 else max(1, len(os.sched_getaffinity(0)))


def ordered_chunked_map(
    fn: Callable[[list[T]], list[R]],
    items: Iterable[T],
    *,
    workers: int,
    chunk_size: int = 16,
    max_chunks_in_flight: int = 64,
) -> Iterator[tuple[T, R]]:
    """Yield ``(item, result)`` in input order; ``fn`` maps a chunk of items to their results.

    At most ``max_chunks_in_flight`` chunks are queued, so a million-image catalog is
    streamed rather than held in memory. With one worker everything runs in-process.
    """

    def chunks() -> Iterator[list[T]]:
        chunk: list[T] = []
        for item in items:
            chunk.append(item)
            if len(chunk) == chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    if workers <= 1:
        for chunk in chunks():
            yield from zip(chunk, fn(chunk), strict=True)
        return

    context = multiprocessing.get_context("spawn")
    pending: deque[tuple[list[T], Future]] = deque()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for chunk in chunks():
            pending.append((chunk, pool.submit(fn, chunk)))
            if len(pending) >= max_chunks_in_flight:
                done_chunk, future = pending.popleft()
                yield from zip(done_chunk, future.result(), strict=True)
        while pending:
            done_chunk, future = pending.popleft()
            yield from zip(done_chunk, future.result(), strict=True)

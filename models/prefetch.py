"""Ordered prefetching: run a preparation step (decode, resize, ...) in threads ahead of the
consumer (the network), keeping the input order."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetch(items: Iterable[T], fn: Callable[[T], R], workers: int = 2) -> Iterator[tuple[T, Future]]:
    """Yield `(item, future of fn(item))` in input order while up to `2 * workers` later calls
    run in `workers` threads. `future.result()` re-raises what `fn` raised for that item."""
    workers = max(1, workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="da2k-prefetch") as pool:
        queue: deque[tuple[T, Future]] = deque()
        for item in items:
            queue.append((item, pool.submit(fn, item)))
            if len(queue) > 2 * workers:
                yield queue.popleft()
        while queue:
            yield queue.popleft()

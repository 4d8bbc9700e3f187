"""Spreading independent pieces of work across devices while the output stays in input order.

`score-variants --device cuda:0,cuda:1` holds one model per device and scores whole chunks of records on each;
the chunks' results must still be written (and committed, for resuming) in file order, and only a few chunks may
be held at once so memory stays constant in the size of the input. Threads suffice: the work is torch calls,
which release the interpreter lock, and each device's model is used by one thread at a time."""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Resource = TypeVar("Resource")
Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_map(work: Callable[[Resource, Item], Result], resources: Sequence[Resource], items: Iterable[Item],
                ahead: int = 2) -> Iterator[Result]:
    """`work(resource, item)` for every item, each call on whichever resource is free, yielded in the order of
    `items`. At most `ahead` items per resource are read ahead of the one being yielded. One resource: plain calls
    in this thread, so a single device runs exactly as it would without this function."""
    if not resources:
        raise ValueError("ordered_map needs at least one resource")
    if len(resources) == 1:
        yield from (work(resources[0], item) for item in items)
        return
    free: queue.SimpleQueue[Resource] = queue.SimpleQueue()
    for resource in resources:
        free.put(resource)

    def on_free_resource(item: Item) -> Result:
        resource = free.get()
        try:
            return work(resource, item)
        finally:
            free.put(resource)

    pool = ThreadPoolExecutor(len(resources), thread_name_prefix="mdlm-bio-worker")
    pending: deque[Future[Result]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(on_free_resource, item))
            if len(pending) >= ahead * len(resources):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # a failure or a consumer that stops early: drop what has not started, wait for what has
        pool.shutdown(wait=True, cancel_futures=True)

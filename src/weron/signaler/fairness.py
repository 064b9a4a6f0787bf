"""A queue that serves its sources in turn: the bcrypt work of a flooding source waits behind
one job of every other source, not the other way round."""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueFullError(RuntimeError):
    """The source, or the queue as a whole, already holds as much as it may."""


class FairQueue(Generic[T]):
    """Jobs per source, served round-robin. A source holds at most ``per_source`` jobs (queued
    or running, until :meth:`done`), the queue at most ``total``; beyond, :meth:`push` refuses."""

    def __init__(self, per_source: int, total: int) -> None:
        self._per_source = per_source
        self._total = total
        self._queues: OrderedDict[str, deque[T]] = OrderedDict()  # in serving order
        self._held: Counter[str] = Counter()

    def push(self, source: str, job: T) -> None:
        if self._held[source] >= self._per_source or self.held >= self._total:
            raise QueueFullError(source)
        self._held[source] += 1
        self._queues.setdefault(source, deque()).append(job)

    def pop(self) -> tuple[str, T] | None:
        """The next job, from the source whose turn it is; that source goes to the back."""
        if not self._queues:
            return None
        source, queue = next(iter(self._queues.items()))
        job = queue.popleft()
        if queue:
            self._queues.move_to_end(source)
        else:
            del self._queues[source]
        return source, job

    def done(self, source: str) -> None:
        """A job of ``source`` (popped earlier) finished: it no longer counts against it."""
        self._held[source] -= 1
        if self._held[source] <= 0:
            del self._held[source]

    @property
    def held(self) -> int:
        return self._held.total()

"""Counters of one signaler instance (exposed through :mod:`weron.prometheus`; no I/O here)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Metrics:
    """What the connection layer counts; gauges are read from their owners at scrape time."""

    joins: int = 0
    joins_rejected: Counter[int] = field(default_factory=Counter)  # by HTTP status
    dropped: Counter[str] = field(default_factory=Counter)  # connections, by limit

    def reject(self, status: int) -> None:
        self.joins_rejected[status] += 1

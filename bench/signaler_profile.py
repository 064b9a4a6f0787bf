"""What the figures of bench/signaler.py share: how much to measure, message shapes, statistics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from common import percentile

SEQ_DIGITS: Final = 8
JOIN_GATE: Final = 64  # receivers joining at once: a burst, without flooding the listen backlog
PAD: Final = b" " + b"x" * 40  # the rest of a ~70-byte message, about a small ICE candidate


@dataclass(frozen=True, slots=True)
class Profile:
    """How much to measure: --quick is a CI smoke run (< 60 s), the default a real run."""

    join_concurrency: tuple[int, ...]
    join_seconds: float  # per round
    join_rounds: int  # rounds alternate ours/reference so drift hits both alike
    first_join_count: int
    first_join_concurrency: int
    relay_sizes: tuple[int, ...]
    relay_messages: int
    relay_warmup: int
    relay_pause_s: tuple[float, float]  # random pause after a fan-out completes, min and max
    relay_timeout_s: float  # give up waiting for one message's fan-out after this


FULL: Final = Profile(
    join_concurrency=(20, 200),
    join_seconds=6.0,
    join_rounds=2,
    first_join_count=200,
    first_join_concurrency=20,
    relay_sizes=(10, 100, 1000),
    relay_messages=400,
    relay_warmup=30,
    relay_pause_s=(0.010, 0.015),
    relay_timeout_s=2.0,
)


QUICK: Final = replace(  # FULL's scenarios, shorter
    FULL,
    join_seconds=1.5,
    join_rounds=1,
    first_join_count=40,
    first_join_concurrency=8,
    relay_messages=60,
    relay_warmup=10,
    relay_pause_s=(0.005, 0.010),
)


SCALE: Final = Profile(
    join_concurrency=(100,),
    join_seconds=6.0,
    join_rounds=1,
    first_join_count=0,
    first_join_concurrency=1,
    relay_sizes=(100, 1000, 5000),
    relay_messages=200,
    relay_warmup=20,
    relay_pause_s=(0.010, 0.015),
    relay_timeout_s=3.0,
)


SCALE_QUICK: Final = replace(  # SCALE, smaller and shorter
    SCALE,
    join_concurrency=(50,),
    join_seconds=1.5,
    relay_sizes=(100, 500),
    relay_messages=40,
    relay_warmup=5,
    relay_pause_s=(0.005, 0.010),
)


def summarize_ns(values: Sequence[int]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds of nanosecond samples."""
    ordered = sorted(values)
    ms = 1e-6
    return {
        "count": len(ordered),
        "p50_ms": percentile(ordered, 50) * ms,
        "p90_ms": percentile(ordered, 90) * ms,
        "p99_ms": percentile(ordered, 99) * ms,
        "max_ms": (ordered[-1] * ms) if ordered else math.nan,
        "mean_ms": (sum(ordered) / len(ordered) * ms) if ordered else math.nan,
    }

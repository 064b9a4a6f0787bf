"""Numbers as the original prints them (Go durations) and summaries of measurements."""

from __future__ import annotations

import math
from collections.abc import Sequence


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()``: ``110.111µs``, ``510.690403ms``, ``3.364971672s``."""
    nanoseconds = round(seconds * 1e9)
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    nanoseconds = abs(nanoseconds)
    if nanoseconds < 1_000:
        return f"{sign}{nanoseconds}ns"
    if nanoseconds < 1_000_000:
        return f"{sign}{_decimal(nanoseconds, 1_000)}µs"
    if nanoseconds < 1_000_000_000:
        return f"{sign}{_decimal(nanoseconds, 1_000_000)}ms"
    hours, rest = divmod(nanoseconds, 3_600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{_decimal(rest, 10**9)}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    digits = str(fraction).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]

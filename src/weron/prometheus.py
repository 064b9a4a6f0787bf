"""The Prometheus text exposition format (version 0.0.4), shared by the signaler's metrics and
the peer commands' (no I/O here)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Family:
    """One metric: name, type, help and its samples as ``(labels, value)``."""

    name: str
    kind: str  # "counter" or "gauge"
    help: str
    samples: tuple[tuple[dict[str, str], float], ...]


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    escaped = (
        f'{key}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for key, value in labels.items()
    )
    return "{" + ",".join(escaped) + "}"


def render(families: Iterable[Family]) -> bytes:
    """The Prometheus text format (version 0.0.4)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            number = str(int(value)) if float(value).is_integer() else repr(float(value))
            lines.append(f"{family.name}{_labels(labels)} {number}")
    return ("\n".join(lines) + "\n").encode("utf-8")

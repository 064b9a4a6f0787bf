"""`weron status`'s output: a table for people, JSON for scripts (no I/O here; ``now`` is
passed in)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from weron.status.model import PeerStatus, ProcessStatus, to_json

_HEADERS = ("PEER", "STATE", "PATH", "LOCAL", "REMOTE", "RTT", "SENT", "RECEIVED", "SINCE")


def as_json(processes: Sequence[ProcessStatus]) -> str:
    return json.dumps({"processes": [to_json(process) for process in processes]})


def as_table(processes: Sequence[ProcessStatus], now: float) -> str:
    """One block per process: a heading line, then a row per peer (or "no peers")."""
    blocks = []
    for process in processes:
        me = process.name or process.id or "(joining)"
        heading = f"{process.command} (pid {process.pid}) in {process.community!r} as {me}"
        if not process.peers:
            blocks.append(f"{heading}\n  no peers")
            continue
        rows = [_HEADERS, *(_row(peer, now) for peer in process.peers)]
        widths = [max(len(row[column]) for row in rows) for column in range(len(_HEADERS))]
        lines = [
            "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            for row in rows
        ]
        blocks.append("\n".join([heading, *(line.rstrip() for line in lines)]))
    return "\n\n".join(blocks)


def _row(peer: PeerStatus, now: float) -> tuple[str, ...]:
    path = peer.path or "-"
    if peer.path == "relay":
        path = "relay (TURN)"
    elif peer.path is not None:
        path = f"direct ({peer.path})"
    return (
        peer.name or peer.id,
        peer.state,
        path,
        peer.local_address or "-",
        peer.remote_address or "-",
        "-" if peer.rtt is None else f"{peer.rtt * 1000:.1f} ms",
        size(peer.bytes_sent),
        size(peer.bytes_received),
        "-" if peer.connected_since is None else f"{elapsed(now - peer.connected_since)} ago",
    )


def size(count: int | None) -> str:
    """Bytes for people: 512 B, 1.5 kB, 12.3 MB (powers of 1,000)."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def elapsed(seconds: float) -> str:
    """2h3m, 4m5s, 6s: the two largest units."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"

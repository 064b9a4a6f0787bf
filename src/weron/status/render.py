"""`weron status`'s output: a table for people, JSON for scripts (no I/O here; ``now`` is
passed in)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from weron.status.model import PeerStatus, ProcessStatus, to_json
from weron.text import printable

MAX_CELL: Final = 48  # characters of a name or address in the table: a peer chooses its name

_HEADERS = ("PEER", "STATE", "PATH", "LOCAL", "REMOTE", "RTT", "SENT", "RECEIVED", "SINCE")


def as_json(processes: Sequence[ProcessStatus]) -> str:
    return json.dumps({"processes": [to_json(process) for process in processes]})


def as_table(processes: Sequence[ProcessStatus], now: float) -> str:
    """One block per process: a heading line, then a row per peer (or "no peers")."""
    blocks = []
    for process in processes:
        me = cell(who(process.name) or process.id) or "(joining)"
        community = cell(process.community)
        heading = f"{cell(process.command)} (pid {process.pid}) in '{community}' as {me}"
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
        cell(who(peer.name) or peer.id),
        cell(peer.state),
        cell(path),
        cell(peer.local_address or "-"),
        cell(peer.remote_address or "-"),
        "-" if peer.rtt is None else f"{peer.rtt * 1000:.1f} ms",
        size(peer.bytes_sent),
        size(peer.bytes_received),
        "-" if peer.connected_since is None else f"{elapsed(now - peer.connected_since)} ago",
    )


def who(name: str) -> str:
    """A peer's name as people read it: `vpn ip` members are named by their claims (a JSON
    list of addresses), shown as ``10.0.0.2/24,fd00::2/64``."""
    if name.startswith("["):
        try:
            claims = json.loads(name)
        except ValueError:
            return name
        if isinstance(claims, list) and all(isinstance(claim, str) for claim in claims):
            return ",".join(claims)
    return name


def cell(text: str) -> str:
    """Safe on a terminal (a hostile peer's name may hold escape sequences) and short."""
    text = printable(text)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


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

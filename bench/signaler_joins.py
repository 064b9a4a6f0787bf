"""The join figures of bench/signaler.py: joins per second, handshake times and server CPU per
join, with concurrent clients."""

from __future__ import annotations

import asyncio
import math
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from signaler_client import JoinError, connect, join_path
from signaler_profile import summarize_ns
from signaler_servers import Target


@dataclass(slots=True)
class JoinRun:
    """Completed join cycles (open, 101, close handshake) of one scenario against one server."""

    joins: int = 0
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    harness_cpu_s: float = 0.0
    handshake_ns: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, other: JoinRun) -> None:
        self.joins += other.joins
        self.seconds += other.seconds
        self.server_cpu_s += other.server_cpu_s
        self.harness_cpu_s += other.harness_cpu_s
        self.handshake_ns += other.handshake_ns
        self.errors += other.errors

    def summary(self) -> dict[str, Any]:
        per_join = 1e6 / self.joins if self.joins else math.nan
        return {
            "joins": self.joins,
            "seconds": round(self.seconds, 3),
            "joins_per_s": self.joins / self.seconds if self.seconds else math.nan,
            "handshake": summarize_ns(self.handshake_ns),
            "server_cpu_us_per_join": self.server_cpu_s * per_join,
            "harness_cpu_us_per_join": self.harness_cpu_s * per_join,
            "errors": dict(self.errors),
        }


def _harness_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _join_cycle(port: int, path: str) -> int:
    """One join and leave; returns the time from connect to the 101 response."""
    started = time.monotonic_ns()
    client = await connect(port, path)
    opened = time.monotonic_ns()
    client.close()
    try:
        async with asyncio.timeout(5):
            await client.closed
    finally:
        client.abort()
    return opened - started


async def measure_joins(
    server: Target,
    concurrency: int,
    *,
    seconds: float | None = None,
    new_communities: int | None = None,
    tag: str,
) -> JoinRun:
    """``concurrency`` clients joining in a loop, either one community kept alive by an anchor
    member for ``seconds``, or ``new_communities`` distinct fresh ones (a bcrypt hash each)."""
    run = JoinRun()
    anchor = None if new_communities else await connect(server.port, join_path(f"join-{tag}"))
    names = iter(range(new_communities or 0))
    deadline = time.monotonic() + (seconds or 0)

    async def client(port: int) -> None:
        while True:
            if new_communities:
                index = next(names, None)
                if index is None:
                    return
                path = join_path(f"first-{tag}-{index}")
            elif time.monotonic() >= deadline:
                return
            else:
                path = join_path(f"join-{tag}")
            try:
                async with asyncio.timeout(30):
                    run.handshake_ns.append(await _join_cycle(port, path))
                run.joins += 1
            except (OSError, JoinError, TimeoutError) as exc:
                run.errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                await asyncio.sleep(0.01)

    cpu_before, harness_before = server.cpu_seconds(), _harness_cpu()
    started = time.monotonic()
    try:
        ports = server.ports
        await asyncio.gather(*(client(ports[n % len(ports)]) for n in range(concurrency)))
    finally:
        if anchor is not None:
            anchor.abort()
    run.seconds = time.monotonic() - started
    run.server_cpu_s = server.cpu_seconds() - cpu_before
    run.harness_cpu_s = _harness_cpu() - harness_before
    server.check_alive()
    return run

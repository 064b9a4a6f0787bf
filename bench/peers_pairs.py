"""Pairs of processes for bench/peers.py and bench/paced.py: a weron server and client
(``weron utility`` through a local signaler), or the loopback reference's; what they share."""

from __future__ import annotations

import math
import os
import socket
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from common import free_port, log
from processes import Child, Harness

HERE: Final = Path(__file__).resolve().parent
WERON: Final = (sys.executable, "-m", "weron")
REFERENCE: Final = (sys.executable, str(HERE / "reference_loopback.py"))
HOST: Final = "127.0.0.1"
PASSWORD: Final = "bench-password"
KEY: Final = "bench-key"
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
# (message bytes, messages per batch): a few MB per batch whatever the size.
THROUGHPUT_SIZES: Final = ((50_000, 100), (16_384, 256), (1_200, 2_500))
LATENCY_BYTES: Final = 128
CONNECTED: Final = "Connected to peer"


@dataclass(frozen=True, slots=True)
class Profile:
    """How much to measure: --quick is a CI smoke run (about a minute), the default a real run."""

    throughput_seconds: float  # per size, after the warm-up batch
    throughput_min_batches: int  # measured batches, even if that takes longer
    throughput_max_seconds: float  # ... but no longer than this
    reference_throughput_seconds: float
    latency_seconds: float  # after the client connected
    latency_warmup: int  # round trips discarded
    reference_latency_seconds: float
    connect_runs: int
    connect_timeout_s: float  # one client: spawn to first round trip


FULL: Final = Profile(
    throughput_seconds=10.0,
    throughput_min_batches=8,
    throughput_max_seconds=30.0,
    reference_throughput_seconds=3.0,
    latency_seconds=10.0,
    latency_warmup=50,
    reference_latency_seconds=3.0,
    connect_runs=7,
    connect_timeout_s=30.0,
)


QUICK: Final = Profile(
    throughput_seconds=1.5,
    throughput_min_batches=2,
    throughput_max_seconds=8.0,
    reference_throughput_seconds=0.7,
    latency_seconds=1.5,
    latency_warmup=20,
    reference_latency_seconds=0.7,
    connect_runs=3,
    connect_timeout_s=30.0,
)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


@dataclass(frozen=True, slots=True)
class PairSpec:
    """How to start a server, know it is ready, and start a client for it."""

    label: str  # a backend name, or "reference"
    server_argv: tuple[str, ...]
    server_ready: str  # the log message that says the server can take a client
    client_argv: Callable[[Child], list[str]]  # given the ready server


def utility_argv(
    app: str, url: str, community: str, backend: str, options: Sequence[str] = ()
) -> list[str]:
    """`weron utility APP` as the benchmarks run it: JSON output, no STUN server."""
    return [
        *WERON,
        "utility",
        app,
        "--raddr",
        url,
        "--community",
        community,
        "--password",
        PASSWORD,
        "--key",
        KEY,
        "--ice=",
        "--backend",
        backend,
        "--json",
        *options,
    ]


def weron_pair(
    backend: str, url: str, app: str, community: str, options: Sequence[str]
) -> PairSpec:
    common = utility_argv(app, url, community, backend, options)
    return PairSpec(
        label=backend,
        server_argv=(*common, "--server"),
        server_ready="Connected to signaler",
        client_argv=lambda _server: list(common),
    )


def reference_pair(server_mode: str, client_mode: str, options: Sequence[str]) -> PairSpec:
    def client(server: Child) -> list[str]:
        listening = server.logs("Listening")
        assert listening and listening[0].data is not None
        port = str(listening[0].data["port"])
        return [*REFERENCE, client_mode, "--port", port, *options]

    return PairSpec(
        label="reference",
        server_argv=(*REFERENCE, server_mode, *options),
        server_ready="Listening",
        client_argv=client,
    )


def start_server(h: Harness, spec: PairSpec, what: str) -> Child:
    server = h.spawn(f"{spec.label} {what} server", "server", spec.server_argv)
    h.wait_for(
        lambda: bool(server.logs(spec.server_ready)),
        30.0,
        f"{spec.server_ready!r} from {server.name}",
        [server],
    )
    return server


def stop_pair(h: Harness, *children: Child | None) -> None:
    for child in children:
        if child is not None:
            h.stop(child)


def start_signaler(h: Harness) -> tuple[Child, str]:
    port = free_port(HOST)
    # --verbose 3: errors only, so that logging costs nothing here
    argv = [*WERON, "signaler", "--laddr", f"{HOST}:{port}", "--verbose", "3"]
    signaler = h.spawn("signaler", "signaler", argv)

    def listening() -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            return False

    h.wait_for(listening, 30.0, f"signaler listening on {port}", [signaler])
    log(f"signaler listening on {HOST}:{port} (pid {signaler.pid})")
    return signaler, f"ws://{HOST}:{port}/"

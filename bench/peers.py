"""Benchmark of weron's WebRTC peers: throughput, round trips, start-up and CPU, next to loopback.

For each backend, two peers in separate processes run the real CLI (``weron utility
throughput|latency``) through a local signaler, and this script reads their ``--json`` lines:

* throughput with 50,000, 16,384 and 1,200-byte messages: median MB/s of the batches after the
  first (a warm-up), and CPU seconds per GB (utime+stime of both peers from /proc, over the
  same batches);
* round trips of 128-byte messages sent back to back (``--pause 0s``): p50, p99 and mean after
  a warm-up;
* process start to connected peer: a fresh server, already connected to the signaler, then a
  client, timed from its spawn to its "Connected to peer" log line and to its first round trip
  (median of a few runs; the JSON also has the time to its first log line, i.e. imports).

Every backend runs with its defaults: those are what the targets are checked against. The
throughput of libdatachannel is also measured with ``--webrtc-mtu 4096`` (``--mtu-variant``),
in rows of its own without targets: loopback carries 4 KB datagrams, real paths mostly do not (they
fragment or drop them), so it shows what the option gives where it applies, not a default.

The machines this runs on are shared and noisy, so the yardstick is measured in the same run:
plain loopback between two Python processes (bench/reference_loopback.py: TCP throughput with
the same message sizes and batches, UDP round trips, measured right before each backend's, and
process start to first UDP round trip), driven by the same code, and every figure is reported
as ours/reference. The original Go weron's figures (measured earlier, not in this run) and the
issue's targets for the default backend (met or missed) are reported next to them.

Usage: ``.venv/bin/python bench/peers.py [--quick] [--json-out PATH]
[--backends libdatachannel,aiortc] [--mtu-variant 4096]``. Progress goes to stderr; stdout
gets a table, then one JSON document. ``--quick`` (a CI smoke run) takes about a minute and a
half, a full run about three.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import platform
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO

from common import free_port, json_safe, log, number, percentile, source_revision
from processes import Child, Harness, Line, MeasurementError, Terminated, harness
from weron.webrtc.backends import BACKEND_NAMES, default_backend_name

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

# Measured earlier on this machine with the original Go weron, not in this run: context only.
GO_ORIGINAL: Final[dict[str, float]] = {
    "throughput_50000_mb_per_s": 20.0,
    "round_trip_128_mean_us": 580.0,
    "start_to_connected_s": 0.15,
}
GO_ORIGINAL_NOTE: Final = "original Go weron, measured earlier on this machine, not in this run"


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the issue for the default backend."""

    key: str  # a Figure key
    better: str  # "higher": ours >= value meets it; "lower": ours <= value
    value: float
    unit: str

    def met(self, ours: float) -> bool | None:
        if math.isnan(ours):
            return None
        return ours >= self.value if self.better == "higher" else ours <= self.value

    def text(self) -> str:
        return f"{'>=' if self.better == 'higher' else '<='} {self.value:g}"


TARGETS: Final = (
    Target("throughput_50000_mb_per_s", "higher", 60.0, "MB/s"),
    Target("throughput_1200_mb_per_s", "higher", 25.0, "MB/s"),
    Target("round_trip_128_p50_us", "lower", 250.0, "us"),
    Target("start_to_connected_s", "lower", 0.5, "s"),
)


@dataclass(frozen=True, slots=True)
class Setup:
    """What is measured: a backend, with extra peer flags for a variant (e.g. ``--webrtc-mtu``)."""

    label: str  # its name in the table and the JSON
    backend: str
    flags: tuple[str, ...] = ()
    throughput_only: bool = False  # for flags that change nothing for 128-byte round trips


def setups(backends: Sequence[str], mtu_variant: int) -> list[Setup]:
    chosen = [Setup(backend, backend) for backend in backends]
    if mtu_variant and "libdatachannel" in backends:
        flags = ("--webrtc-mtu", str(mtu_variant))
        chosen.append(Setup(f"libdatachannel {' '.join(flags)}", "libdatachannel", flags, True))
    return chosen


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


# Statistics


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


# Pairs of processes: a weron server and client, or the loopback reference's


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


# Measurements


def measure_throughput(
    h: Harness, spec: PairSpec, size: int, count: int, profile: Profile
) -> dict[str, Any]:
    """Batches of ``count`` messages of ``size`` bytes for ``seconds`` after a warm-up batch;
    CPU of both processes from the end of the warm-up batch to the end of the last one."""
    reference = spec.label == "reference"
    seconds = profile.reference_throughput_seconds if reference else profile.throughput_seconds
    server = client = None
    # (batch lines seen, CPU seconds of client + server) at the end of the warm-up batch and at
    # the arrival of the last batch line
    first = last = (0, 0.0)
    elapsed = 0.0
    try:
        server = start_server(h, spec, f"throughput {size} B")
        client = h.spawn(
            f"{spec.label} throughput {size} B client", "client", spec.client_argv(server)
        )
        pair = (server, client)
        h.wait_for(lambda: bool(client.logs(CONNECTED)), 30.0, "connected peer", pair)
        h.wait_for(
            lambda: bool(client.records("batch")),
            profile.throughput_max_seconds,
            "first batch",
            pair,
        )
        first = last = (1, client.cpu_seconds() + server.cpu_seconds())
        started = time.monotonic()
        while True:
            h.check_alive(*pair)
            h.pump(0.05)
            seen = len(client.records("batch"))
            if seen > last[0]:
                last = (seen, client.cpu_seconds() + server.cpu_seconds())
            elapsed = time.monotonic() - started
            measured = last[0] - first[0]
            if elapsed >= profile.throughput_max_seconds or (
                elapsed >= seconds and measured >= profile.throughput_min_batches
            ):
                break
    finally:
        stop_pair(h, client, server)
    lines = client.records("batch")
    kept = [line.data for line in lines[first[0] : last[0]] if line.data is not None]
    if not kept:
        raise MeasurementError(f"no batch after the warm-up one within {elapsed:.1f} s")
    total_bytes = sum(int(batch["bytes"]) for batch in kept)
    batch_seconds = sum(float(batch["seconds"]) for batch in kept)
    speeds = sorted(float(batch["mb_per_s"]) for batch in kept)
    cpu = last[1] - first[1]
    wall = lines[last[0] - 1].at - lines[first[0] - 1].at
    totals = client.records("totals")
    return {
        "message_bytes": size,
        "messages_per_batch": count,
        "batches": len(kept),
        "bytes": total_bytes,
        "median_mb_per_s": median(speeds),
        "mean_mb_per_s": total_bytes / batch_seconds / 1e6,
        "min_mb_per_s": speeds[0],
        "max_mb_per_s": speeds[-1],
        "wall_seconds": wall,
        "cpu_seconds_both_peers": cpu,
        "cpu_s_per_gb": cpu / (total_bytes / 1e9),
        "cpu_cores_busy": cpu / wall if wall > 0 else math.nan,
        "client_totals": totals[-1].data if totals else None,
    }


def measure_latency(h: Harness, spec: PairSpec, profile: Profile) -> dict[str, Any]:
    """Back-to-back round trips for ``seconds``; the first ``latency_warmup`` are discarded.
    The client's stdout goes to a file: a pipe would make the bench wake for every line."""
    reference = spec.label == "reference"
    seconds = profile.reference_latency_seconds if reference else profile.latency_seconds
    server = client = None
    try:
        server = start_server(h, spec, "latency")
        client = h.spawn(
            f"{spec.label} latency client",
            "client",
            spec.client_argv(server),
            stdout_to_file=True,
        )
        h.wait_for(lambda: bool(client.logs(CONNECTED)), 30.0, "connected peer", (server, client))
        h.sleep(seconds, (server, client))
    finally:
        stop_pair(h, client, server)
    packets = [line.data for line in client.records("packet") if line.data is not None]
    kept = sorted(float(packet["round_trip_us"]) for packet in packets[profile.latency_warmup :])
    if len(kept) < 10:
        raise MeasurementError(f"only {len(packets)} round trips in {seconds:g} s")
    return {
        "message_bytes": LATENCY_BYTES,
        "round_trips": len(kept),
        "warmup_discarded": profile.latency_warmup,
        "seconds": seconds,
        "p50_us": percentile(kept, 50),
        "p90_us": percentile(kept, 90),
        "p99_us": percentile(kept, 99),
        "mean_us": statistics.fmean(kept),
        "min_us": kept[0],
        "max_us": kept[-1],
    }


def _has_records(child: Child, kind: str) -> bool:
    return bool(child.records(kind))


def measure_connect(
    h: Harness, make_spec: Callable[[int], PairSpec], profile: Profile
) -> dict[str, Any]:
    """``connect_runs`` times: a fresh server, ready, then a client, timed from its spawn to its
    log lines and its first round trip. A fresh pair each time measures the first connection
    of two peers, independently of how a server copes with the clients before."""
    runs: list[dict[str, float | None]] = []
    for run in range(profile.connect_runs):
        spec = make_spec(run)
        server = client = None
        try:
            server = start_server(h, spec, f"connect {run + 1}")
            client = h.spawn(
                f"{spec.label} connect client {run + 1}", "client", spec.client_argv(server)
            )
            h.wait_for(
                functools.partial(_has_records, client, "packet"),
                profile.connect_timeout_s,
                "first round trip",
                (server, client),
            )
        finally:
            stop_pair(h, client, server)

        def since_spawn(lines: list[Line], client: Child = client) -> float | None:
            return lines[0].at - client.spawned_at if lines else None

        runs.append(
            {
                "connecting_to_signaler_s": since_spawn(client.logs("Connecting to signaler")),
                "connected_to_signaler_s": since_spawn(client.logs("Connected to signaler")),
                "connected_peer_s": since_spawn(client.logs(CONNECTED)),
                "server_connected_peer_s": since_spawn(server.logs(CONNECTED)),
                "first_round_trip_s": since_spawn(client.records("packet")),
            }
        )

    def median_of(key: str) -> float:
        values = [value for run in runs if (value := run[key]) is not None]
        return median(values)

    return {
        "runs": runs,
        **{f"median_{key}": median_of(key) for key in runs[0]},
    }


def _attempt(
    results: dict[str, Any], key: str, what: str, measure: Callable[[], dict[str, Any]]
) -> None:
    """Run one measurement; a failure is recorded under ``key`` and the run goes on."""
    log(what)
    try:
        results[key] = measure()
    except MeasurementError as exc:
        log(f"FAILED: {what}: {exc}")
        results[key] = {"error": str(exc)[:2000]}


def measure_reference(h: Harness, profile: Profile) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size, count in THROUGHPUT_SIZES:
        spec = reference_pair(
            "tcp-sink",
            "tcp-source",
            ["--packet-length", str(size), "--packet-count", str(count)],
        )
        _attempt(
            results,
            f"throughput_{size}",
            f"reference: TCP throughput, {size} B messages",
            functools.partial(measure_throughput, h, spec, size, count, profile),
        )
    udp = reference_pair("udp-echo", "udp-ping", ["--packet-length", str(LATENCY_BYTES)])
    _attempt(
        results,
        "connect",
        "reference: process start to first UDP round trip",
        lambda: measure_connect(h, lambda _run: udp, profile),
    )
    return results


def measure_setup(h: Harness, setup: Setup, url: str, profile: Profile) -> dict[str, Any]:
    results: dict[str, Any] = {}
    backend, label = setup.backend, setup.label
    tag = os.urandom(3).hex()
    for size, count in THROUGHPUT_SIZES:
        spec = weron_pair(
            backend,
            url,
            "throughput",
            f"thr-{backend}-{size}-{tag}",
            [*setup.flags, "--packet-length", str(size), "--packet-count", str(count)],
        )
        _attempt(
            results,
            f"throughput_{size}",
            f"{label}: throughput, {size} B messages, {count} per batch",
            functools.partial(measure_throughput, h, spec, size, count, profile),
        )
    if setup.throughput_only:
        return results
    # Loopback round trips swing by x3 within minutes here (CPU wake-ups): the reference is
    # measured right before each backend's, so that each ratio compares like with like.
    udp = reference_pair("udp-echo", "udp-ping", ["--packet-length", str(LATENCY_BYTES)])
    _attempt(
        results,
        "reference_latency",
        f"reference for {label}: UDP round trips, {LATENCY_BYTES} B",
        lambda: measure_latency(h, udp, profile),
    )
    latency_options = [*setup.flags, "--packet-length", str(LATENCY_BYTES), "--pause", "0s"]
    spec = weron_pair(backend, url, "latency", f"ltc-{backend}-{tag}", latency_options)
    _attempt(
        results,
        "latency",
        f"{label}: round trips, {LATENCY_BYTES} B back to back",
        lambda: measure_latency(h, spec, profile),
    )
    _attempt(
        results,
        "connect",
        f"{label}: process start to connected peer, {profile.connect_runs} runs",
        lambda: measure_connect(
            h,
            lambda run: weron_pair(
                backend, url, "latency", f"con-{backend}-{tag}-{run}", latency_options
            ),
            profile,
        ),
    )
    return results


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


# Report


@dataclass(frozen=True, slots=True)
class Figure:
    """One headline number for one backend, ours and the reference's."""

    key: str
    name: str
    backend: str
    unit: str
    better: str  # "higher" or "lower"
    ours: float
    reference: float
    go_original: float | None = None
    target: str | None = None  # e.g. ">= 60", for the default backend
    target_met: bool | None = None

    @property
    def ratio(self) -> float:
        return self.ours / self.reference if self.reference else math.nan

    @property
    def status(self) -> str:
        if self.target is None:
            return ""
        return {True: "met", False: "MISSED", None: "not measured"}[self.target_met]


def _value(results: dict[str, Any], scenario: str, key: str) -> float:
    value = results.get(scenario, {}).get(key)
    return float(value) if isinstance(value, int | float) else math.nan


def headline(
    details: dict[str, dict[str, Any]], labels: Sequence[str], default_backend: str
) -> list[Figure]:
    """The table's figures for each measured setup (by label); targets for the default
    backend's own row only."""
    reference = details["reference"]
    rows: list[tuple[str, str, str, str, str, str, str | None]] = []
    # (key, name, unit, better, scenario, field, go original key)
    for size, _ in THROUGHPUT_SIZES:
        rows.append(
            (
                f"throughput_{size}_mb_per_s",
                f"throughput {size:,} B messages (median batch)",
                "MB/s",
                "higher",
                f"throughput_{size}",
                "median_mb_per_s",
                f"throughput_{size}_mb_per_s",
            )
        )
    for size, _ in THROUGHPUT_SIZES:
        rows.append(
            (
                f"cpu_{size}_s_per_gb",
                f"CPU of both peers per GB, {size:,} B messages",
                "s/GB",
                "lower",
                f"throughput_{size}",
                "cpu_s_per_gb",
                None,
            )
        )
    for stat, label in (("p50", "p50"), ("p99", "p99"), ("mean", "mean")):
        rows.append(
            (
                f"round_trip_{LATENCY_BYTES}_{stat}_us",
                f"round trip {LATENCY_BYTES} B back to back, {label}",
                "us",
                "lower",
                "latency",
                f"{stat}_us",
                f"round_trip_{LATENCY_BYTES}_{stat}_us",
            )
        )
    rows.append(
        (
            "start_to_connected_s",
            "process start to connected peer (median)",
            "s",
            "lower",
            "connect",
            "median_connected_peer_s",
            "start_to_connected_s",
        )
    )
    rows.append(
        (
            "start_to_first_round_trip_s",
            "process start to first round trip (median)",
            "s",
            "lower",
            "connect",
            "median_first_round_trip_s",
            None,
        )
    )
    targets = {target.key: target for target in TARGETS}
    figures: list[Figure] = []
    for label in labels:
        ours = details.get(label, {})
        for key, name, unit, better, scenario, value_key, go_key in rows:
            if ours and scenario not in ours:
                continue  # not measured for this setup (e.g. round trips with --webrtc-mtu)
            value = _value(ours, scenario, value_key)
            target = targets.get(key) if label == default_backend else None
            figures.append(
                Figure(
                    key=key,
                    name=name,
                    backend=label,
                    unit=unit,
                    better=better,
                    ours=value,
                    reference=(
                        _value(ours, "reference_latency", value_key)
                        if scenario == "latency"
                        else _value(reference, scenario, value_key)
                    ),
                    # Go's figures were measured with its defaults: not next to a variant's.
                    go_original=GO_ORIGINAL.get(go_key)
                    if go_key and label in BACKEND_NAMES
                    else None,
                    target=target.text() if target else None,
                    target_met=target.met(value) if target else None,
                )
            )
    return figures


def target_report(figures: list[Figure], default_backend: str) -> list[dict[str, Any]]:
    by_key = {f.key: f for f in figures if f.backend == default_backend}
    report = []
    for target in TARGETS:
        figure = by_key.get(target.key)
        ours = figure.ours if figure is not None else math.nan
        met = target.met(ours)
        report.append(
            {
                "figure": target.key,
                "backend": default_backend,
                "target": f"{target.text()} {target.unit}",
                "ours": ours,
                "status": {True: "met", False: "missed", None: "not measured"}[met],
            }
        )
    return report


def problems(details: dict[str, dict[str, Any]], outcomes: list[dict[str, Any]]) -> list[str]:
    """Anything that makes figures suspect: failed scenarios, unclean exits, error logs."""
    found: list[str] = []
    for name, scenarios in details.items():
        for scenario, result in scenarios.items():
            if "error" in result:
                found.append(f"{name} {scenario}: {result['error'].splitlines()[0]}")
    for outcome in outcomes:
        if outcome["exit_code"] not in (0, 130):
            found.append(f"{outcome['name']} exited with status {outcome['exit_code']}")
        if outcome["errors"]:
            found.append(f"{outcome['name']} logged errors: {outcome['errors'][0][:200]}")
    return found


def print_table(figures: list[Figure], out: TextIO) -> None:
    header = (
        "figure",
        "unit",
        "backend",
        "weron",
        "reference",
        "ours/ref",
        "better",
        "Go original",
        "target",
        "status",
    )
    rows = [header]
    rows += [
        (
            figure.name,
            figure.unit,
            figure.backend,
            number(figure.ours),
            number(figure.reference),
            number(figure.ratio),
            figure.better,
            number(figure.go_original),
            figure.target or "",
            figure.status,
        )
        for figure in figures
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(width) if column in (0, 1, 2, 6, 8, 9) else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)
        if index == 0:
            print("  ".join("-" * width for width in widths), file=out)


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _raise_terminated(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated


def parse_backends(text: str) -> list[str]:
    backends = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in backends if name not in BACKEND_NAMES]
    if unknown or not backends:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(BACKEND_NAMES)} (got {text!r})")
    return list(dict.fromkeys(backends))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, for a CI smoke test")
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    parser.add_argument(
        "--backends",
        type=parse_backends,
        default=list(BACKEND_NAMES),
        help=f"comma-separated WebRTC backends to measure (default: {','.join(BACKEND_NAMES)})",
    )
    parser.add_argument(
        "--mtu-variant",
        type=int,
        default=4096,
        help="also measure libdatachannel's throughput with this --webrtc-mtu (0: don't)",
    )
    args = parser.parse_args()
    profile = QUICK if args.quick else FULL
    backends: list[str] = args.backends
    chosen = setups(backends, args.mtu_variant)
    default_backend = default_backend_name()
    signal.signal(signal.SIGTERM, _raise_terminated)
    started_at = datetime.datetime.now(datetime.UTC)
    started = time.monotonic()
    load_before = os.getloadavg()
    revision = source_revision()
    details: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="weron-bench-peers-") as log_dir:
        try:
            with harness(Path(log_dir)) as h:
                try:
                    _signaler, url = start_signaler(h)
                except MeasurementError as exc:
                    log(f"the signaler did not start: {exc}")
                    return 1
                details["reference"] = measure_reference(h, profile)
                for setup in chosen:
                    details[setup.label] = measure_setup(h, setup, url, profile)
            outcomes = h.outcomes  # after the cleanup: with the signaler's
        except KeyboardInterrupt:
            log("interrupted (SIGINT); every process stopped")
            return 130
        except Terminated:
            log("terminated (SIGTERM); every process stopped")
            return 143
    figures = headline(details, [setup.label for setup in chosen], default_backend)
    warnings = problems(details, outcomes)
    report = {
        "benchmark": "weron WebRTC peers (weron utility throughput/latency) vs plain loopback "
        "between two Python processes (bench/reference_loopback.py)",
        "mode": "quick" if args.quick else "full",
        "started": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "backends": backends,
        "setups": [asdict(setup) for setup in chosen],
        "default_backend": default_backend,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "python": platform.python_version(),
            "libdatachannel-py": _package_version("libdatachannel-py"),
            "aiortc": _package_version("aiortc"),
            "uvloop": _package_version("uvloop"),
        },
        "source": revision,
        "profile": asdict(profile),
        "figures": [
            {
                **asdict(figure),
                "ratio_ours_over_reference": figure.ratio,
                "status": figure.status or None,
            }
            for figure in figures
        ],
        "targets": target_report(figures, default_backend),
        "go_original": {"note": GO_ORIGINAL_NOTE, **GO_ORIGINAL},
        "problems": warnings,
        "details": details,
        "processes": outcomes,
    }
    document = json.dumps(json_safe(report), indent=2)
    print_table(figures, sys.stdout)
    for warning in warnings:
        print(f"WARNING: {warning}")
    print(document)
    if args.json_out is not None:
        try:
            args.json_out.write_text(document + "\n")
        except OSError as exc:
            log(f"cannot write {args.json_out}: {exc}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import functools
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from common import RunStart, bench_parser, emit, exit_on_signals, log
from peers_connect import measure_connect
from peers_latency import measure_latency
from peers_pairs import (
    FULL,
    LATENCY_BYTES,
    QUICK,
    THROUGHPUT_SIZES,
    Profile,
    reference_pair,
    start_signaler,
    weron_pair,
)
from peers_report import (
    GO_ORIGINAL,
    GO_ORIGINAL_NOTE,
    headline,
    print_table,
    problems,
    target_report,
)
from peers_throughput import measure_throughput
from processes import (
    Harness,
    MeasurementError,
    Terminated,
    harness,
    raise_terminated_on_sigterm,
)
from weron.webrtc.backends import BACKEND_NAMES, default_backend_name


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


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def parse_backends(text: str) -> list[str]:
    backends = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in backends if name not in BACKEND_NAMES]
    if unknown or not backends:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(BACKEND_NAMES)} (got {text!r})")
    return list(dict.fromkeys(backends))


def main() -> int:
    parser = bench_parser(__doc__, quick="short runs, for a CI smoke test")
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
    raise_terminated_on_sigterm()
    run = RunStart.now()
    details: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="weron-bench-peers-") as log_dir:
        with exit_on_signals("every process", Terminated), harness(Path(log_dir)) as h:
            try:
                _signaler, url = start_signaler(h)
            except MeasurementError as exc:
                log(f"the signaler did not start: {exc}")
                return 1
            details["reference"] = measure_reference(h, profile)
            for setup in chosen:
                details[setup.label] = measure_setup(h, setup, url, profile)
        outcomes = h.outcomes  # after the cleanup: with the signaler's
    figures = headline(details, [setup.label for setup in chosen], default_backend)
    warnings = problems(details, outcomes)
    report = {
        **run.head(
            "weron WebRTC peers (weron utility throughput/latency) vs plain loopback between two "
            "Python processes (bench/reference_loopback.py)",
            "quick" if args.quick else "full",
            **{name: _package_version(name) for name in ("libdatachannel-py", "aiortc", "uvloop")},
        ),
        "backends": backends,
        "setups": [asdict(setup) for setup in chosen],
        "default_backend": default_backend,
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
    print_table(figures, sys.stdout)
    return emit(report, args.json_out, warnings)


if __name__ == "__main__":
    sys.exit(main())

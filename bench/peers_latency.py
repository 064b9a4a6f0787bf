"""The round-trip figure of bench/peers.py: 128-byte messages back to back."""

from __future__ import annotations

import statistics
from typing import Any

from common import percentile
from peers_pairs import CONNECTED, LATENCY_BYTES, PairSpec, Profile, start_server, stop_pair
from processes import Harness, MeasurementError


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

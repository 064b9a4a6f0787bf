"""The throughput figure of bench/peers.py: batches of messages of one size, MB/s and CPU per GB."""

from __future__ import annotations

import math
import time
from typing import Any

from peers_pairs import CONNECTED, PairSpec, Profile, median, start_server, stop_pair
from processes import Harness, MeasurementError


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

"""The start-up figure of bench/peers.py: process start to connected peer and first round trip."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from peers_pairs import CONNECTED, PairSpec, Profile, median, start_server, stop_pair
from processes import Child, Harness, Line


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

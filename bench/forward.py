"""Benchmark of `weron forward`: the throughput of one TCP connection through it, next to
`weron vpn ip` and the direct path, between the same two network namespaces in one run.

The lab (netlab/lab.py) joins two host namespaces through a bridge in a hub namespace,
where the signaler listens. One iperf3 server (in the second host) is reached three ways from
the first: directly over the veths and the bridge, through `weron vpn ip` at the second
host's overlay address, and through `weron forward` (the first host listens on 127.0.0.1,
the second exposes iperf3's port). Each way runs iperf3 with a single TCP stream; the three
alternate in rounds (the machine is shared and noisy) and the medians are reported, each with
its ratio to the direct path. With ``--before REV``, a second pair of forwarders runs weron's
src at REV beside them (``forward_before``), for A/B of a change in one run.

Usage (root): ``.venv/bin/python bench/forward.py [--quick] [--json-out PATH] [--backend NAME]
[--before REV]``.
Progress goes to stderr; stdout gets a table, then one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from common import (
    HERE,
    bench_parser,
    emit,
    log,
    number,
    print_rows,
    source_at,
    source_revision,
)
from vpn import PORT, WERON, start_signaler, wait_connected, weron_vpn

sys.path.insert(0, str(HERE.parent))
from netlab.lab import Host, Lab, lab_unavailable

IPERF_PORT: Final = 5201
LISTEN_PORT: Final = 15201
WAYS: Final = ("direct", "vpn_ip", "forward")


def iperf3(lab: Lab, client: Host, server: Host, address: str, port: int, seconds: float) -> float:
    """Mbit/s received by the server of one single-stream iperf3 TCP run to address:port."""
    server_process = lab.start(server.namespace, ["iperf3", "-s", "-1", "-p", str(IPERF_PORT)])
    try:
        deadline = time.monotonic() + 10
        while not lab.listening(server.namespace, IPERF_PORT):
            if time.monotonic() > deadline:
                raise RuntimeError("iperf3 server did not start")
            time.sleep(0.05)
        argv = ["iperf3", "-c", address, "-p", str(port), "-P", "1", "-t", str(seconds), "-J"]
        result = lab.run(client.namespace, argv, timeout=seconds + 60)
        report = json.loads(result.stdout)
        if "error" in report:
            raise RuntimeError(f"iperf3 to {address}:{port}: {report['error']}")
        return float(report["end"]["sum_received"]["bits_per_second"]) / 1e6
    finally:
        lab.stop(server_process)


def start_forward(
    lab: Lab,
    host: Host,
    log_dir: Path,
    backend: str,
    *args: str,
    tag: str = "",
    env: dict[str, str] | None = None,
) -> Path:
    log_path = log_dir / f"forward{tag}-{host.namespace}.log"
    argv = [
        *WERON, "forward", "--raddr", f"ws://{lab.hub_address}:{PORT}/",
        "--community", "bench-forward", "--password", "bench", "--key", "bench", "--ice", "",
        "--kicks", "1s", "--backend", backend, *args,
    ]  # fmt: skip
    with log_path.open("wb") as out:
        lab.start(host.namespace, argv, log=out, env=env)
    return log_path


def main() -> int:
    parser = bench_parser(__doc__, quick="short runs, for a CI smoke test", before=True)
    parser.add_argument("--backend", default="libdatachannel", help="WebRTC backend of both")
    args = parser.parse_args()
    reason = lab_unavailable()
    if reason is not None:
        print(f"bench/forward.py {reason}", file=sys.stderr)
        return 2
    rounds, seconds = (1, 2.0) if args.quick else (3, 5.0)
    log_dir = Path(f"/tmp/weron-bench-forward-{time.monotonic_ns()}")
    log_dir.mkdir(parents=True)
    lab = Lab()
    ways = (*WAYS, "forward_before") if args.before else WAYS
    runs: dict[str, list[float]] = {way: [] for way in ways}
    hung = dict.fromkeys(ways, 0)  # iperf3 runs that did not end
    try:
        first, second = lab.add_host(), lab.add_host()
        start_signaler(lab, log_dir)
        log(f"starting vpn ip and forward ({args.backend}) in two namespaces")
        vpn = weron_vpn(
            lab,
            (first, second),
            log_dir,
            argparse.Namespace(vpn="ip", backend=args.backend, mtu=1420, profile=None),
            "vpn_ip",
            dict(os.environ),
            [],
        )
        forwards = [
            start_forward(
                lab, first, log_dir, args.backend, "--names", "client",
                "--listen", f"127.0.0.1:{LISTEN_PORT}", "--to", f"server:{IPERF_PORT}",
            ),
            start_forward(
                lab, second, log_dir, args.backend, "--names", "server",
                "--expose", str(IPERF_PORT),
            ),
        ]  # fmt: skip
        if args.before:
            env = {**os.environ, "PYTHONPATH": str(source_at(args.before, log_dir / "before"))}
            forwards += [
                start_forward(
                    lab, first, log_dir, args.backend, "--names", "client-before",
                    "--listen", f"127.0.0.1:{LISTEN_PORT + 1}",
                    "--to", f"server-before:{IPERF_PORT}", tag="-before", env=env,
                ),
                start_forward(
                    lab, second, log_dir, args.backend, "--names", "server-before",
                    "--expose", str(IPERF_PORT), tag="-before", env=env,
                ),
            ]  # fmt: skip
        wait_connected(forwards)
        targets = {
            "direct": (second.address, IPERF_PORT),
            "vpn_ip": (vpn.address, IPERF_PORT),
            "forward": ("127.0.0.1", LISTEN_PORT),
            "forward_before": ("127.0.0.1", LISTEN_PORT + 1),
        }
        for round_number in range(1, rounds + 1):
            # Every other round backwards: a way measured right after another fares better
            # or worse (an A/A run, --before HEAD, gave 0.90 with the order fixed).
            for way in ways if round_number % 2 else reversed(ways):
                log(f"round {round_number}/{rounds}: {way} iperf3 {seconds:g} s, one stream")
                address, port = targets[way]
                try:
                    runs[way].append(iperf3(lab, first, second, address, port, seconds))
                except subprocess.TimeoutExpired:  # the next rounds still tell the others
                    log(f"{way}: iperf3 hung")
                    hung[way] += 1
    finally:
        lab.close()
    figures = {way: statistics.median(values) if values else 0.0 for way, values in runs.items()}
    document = {
        "benchmark": "forward",
        "backend": args.backend,
        "quick": args.quick,
        "rounds": rounds,
        "seconds": seconds,
        "source": source_revision(),
        "before": args.before,
        "iperf3_mbits": figures,
        "runs_mbits": runs,
        "hung": hung,
        "ratios_to_direct": {way: figures[way] / figures["direct"] for way in ways},
        "logs": str(log_dir),
    }
    rows = [("one TCP connection", "Mbit/s", "ratio", "hung")]
    rows += [
        (way, number(figures[way]), number(document["ratios_to_direct"][way]), str(hung[way]))
        for way in ways
    ]
    print_rows(rows, (0,), sys.stdout)
    return emit(document, args.json_out)


if __name__ == "__main__":
    sys.exit(main())

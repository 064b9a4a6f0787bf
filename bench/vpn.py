"""Benchmark of `weron vpn ip` (or, with ``--vpn ethernet``, `weron vpn ethernet`, its TAPs
given 10.66.0.1-2/24 by hand): iperf3 TCP throughput and ping round trips across the overlay
between two network namespaces, next to the plain veth path between the same namespaces.

The lab (netlab/lab.py) joins two host namespaces through a bridge in a hub namespace,
where the signaler listens. Measured over the same path, in alternating rounds of one run (the
machine is shared and noisy), each figure of the overlay reported as a ratio to the others:

* ``overlay``: `weron vpn ip` (ethernet) in both hosts;
* ``before`` (with ``--before REV``): the same with weron's src at REV, for A/B of a change;
* ``variant`` (with ``--variant ARGS``): the same with more arguments, for A/B of flags;
* ``pinned`` (with ``--pin FIRST/SECOND``): the same with each host's process pinned to a CPU
  list, for A/B of CPU affinity;
* ``wireguard_go``: wireguard-go in both hosts (the mature user-space VPN; skipped when it is
  not installed);
* ``reference``: the bare path (host to host over the veths and the bridge).

Each VPN is started for its turn and stopped after it, so that no VPN's addresses become
another's ICE candidates. Pings run at two paces: 20 ms apart, where every thread on the path
sleeps between round trips and each one pays the wake-ups, and 1 ms apart, a link in use. The
CPU seconds the two VPN processes use per GB iperf3 moved are reported next to the figures,
and the Mbit/s a UDP_SEGMENT sender (QUIC's way: 16 datagrams of 1,200 bytes a send) gets
through flat out (UDP offloads).
Targets of the issue: >= 200 Mbit/s iperf3 TCP, <= 0.5 ms median ping through `vpn ip` (Go
weron measured here: ~50 Mbit/s, ~0.9 ms).

Usage (root): ``.venv/bin/python bench/vpn.py [--quick] [--rounds N] [--vpn ip|ethernet]
[--before REV] [--variant ARGS] [--pin FIRST/SECOND] [--json-out PATH] [--backend NAME] [--mtu N]
[--profile DIR]``
(``--profile`` runs the overlay's members under py-spy, which `.venv/bin/pip install py-spy`
provides). Progress goes to stderr; stdout gets a table, then one JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from common import (
    HERE,
    bench_parser,
    cpu_seconds,
    emit,
    log,
    number,
    percentile,
    print_rows,
    source_at,
    source_revision,
)

sys.path.insert(0, str(HERE.parent))
from netlab.lab import Host, Lab, lab_unavailable
from netlab.wglab import key_text, start_wireguard_go
from weron.wireguard.crypto import PrivateKey

WERON: Final = [sys.executable, "-m", "weron"]
PORT: Final = 1337
WG_PORT: Final = 51820
WG_SUBNET: Final = "10.67.0."
TARGET_MBITS: Final = 200.0
TARGET_PING_MS: Final = 0.5
# Pings 20 ms apart let every thread on the path fall asleep in between: each round trip pays
# the wake-ups (the figure the target is judged on). 1 ms apart is a link in use.
IDLE_INTERVAL: Final = 0.02
BUSY_INTERVAL: Final = 0.001
_RTT = re.compile(r"time=([0-9.]+) ms")
# UDP the way QUIC stacks send it: UDP_SEGMENT, 16 datagrams of 1,200 bytes per send, as fast
# as the path takes them; the receiver counts from the first datagram to 1 s after the last.
_UDP_PORT: Final = 5997
_UDP_RECEIVER = f"""
import socket, sys, time
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind((sys.argv[1], {_UDP_PORT}))
print("bound", flush=True)
total, first, last = 0, None, None
server.settimeout(10)
try:
    while True:
        total += len(server.recv(65536))
        last = time.monotonic()
        first = first or last
        server.settimeout(1)
except TimeoutError:
    pass
print(total, (last or 0) - (first or 0))
"""
_UDP_SENDER = f"""
import socket, sys, time
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client.setsockopt(socket.SOL_UDP, 103, 1200)  # UDP_SEGMENT
payload, end = bytes(16 * 1200), time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        client.sendto(payload, (sys.argv[1], {_UDP_PORT}))
    except OSError:  # ENOBUFS: the device's queue is full
        time.sleep(0.0005)
"""


def iperf3(
    lab: Lab, client: Host, server: Host, address: str, seconds: float, pids: list[int]
) -> tuple[float, float]:
    """Mbit/s received by the server of one iperf3 TCP run, and the CPU seconds ``pids`` used
    per GB received."""
    server_process = lab.start(server.namespace, ["iperf3", "-s", "-1", "-B", address])
    try:
        deadline = time.monotonic() + 10
        while not lab.listening(server.namespace, 5201):
            if time.monotonic() > deadline:
                raise RuntimeError("iperf3 server did not start")
            time.sleep(0.05)
        cpu = sum(cpu_seconds(pid) for pid in pids)
        result = lab.run(
            client.namespace,
            ["iperf3", "-c", address, "-t", str(seconds), "-J"],
            timeout=seconds + 30,
        )
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu
        report = json.loads(result.stdout)
        if "error" in report:
            raise RuntimeError(f"iperf3: {report['error']}")
        received = report["end"]["sum_received"]
        gigabytes = float(received["bytes"]) / 1e9
        cpu_per_gb = cpu / gigabytes if pids and gigabytes else float("nan")
        return float(received["bits_per_second"]) / 1e6, cpu_per_gb
    finally:
        lab.stop(server_process)


def udp_gso(lab: Lab, client: Host, server: Host, address: str, seconds: float) -> float:
    """Mbit/s the server received of ``seconds`` of UDP_SEGMENT datagrams sent flat out."""
    receiver = lab.start(
        server.namespace,
        [sys.executable, "-u", "-c", _UDP_RECEIVER, address],
        log=subprocess.PIPE,
    )
    try:
        assert receiver.stdout is not None
        receiver.stdout.readline()  # bound
        argv = [sys.executable, "-c", _UDP_SENDER, address, str(seconds)]
        lab.run(client.namespace, argv, timeout=seconds + 30)
        output, _ = receiver.communicate(timeout=30)
    finally:
        lab.stop(receiver)
    received, duration = output.split()
    return int(received) * 8 / float(duration) / 1e6 if float(duration) else 0.0


def pings(lab: Lab, client: Host, address: str, count: int, interval: float) -> list[float]:
    """Round trips in ms of ``count`` pings ``interval`` s apart (lost ones are missing)."""
    argv = ["ping", "-c", str(count), "-i", str(interval), "-W", "2", address]
    result = lab.run(client.namespace, argv)
    return [float(value) for value in _RTT.findall(result.stdout)]


def overlay_address(lab: Lab, host: Host, dev: str, timeout: float = 10.0) -> str:
    """The member's claimed address, once on its device: "Connected to peer" can be logged
    just before the member gives its device the address it claimed."""
    deadline = time.monotonic() + timeout
    while True:
        output = lab.run(host.namespace, ["ip", "-4", "addr", "show", dev]).stdout
        match = re.search(r"inet ([0-9.]+)/", output)
        if match is not None:
            return match.group(1)
        if time.monotonic() > deadline:
            raise RuntimeError(f"no address on {dev} in {host.namespace}")
        time.sleep(0.1)


@dataclass
class Running:
    """One contender, up in both hosts: the address the first host measures, the pids whose
    CPU time counts, and how to take it down again."""

    address: str
    pids: list[int]
    stop: Callable[[], None]


@dataclass
class Contender:
    name: str
    start: Callable[[], Running]


def weron_vpn(
    lab: Lab,
    hosts: tuple[Host, Host],
    log_dir: Path,
    args: argparse.Namespace,
    name: str,
    env: dict[str, str],
    extra: list[str],
    cpus: tuple[str, str] | None = None,
) -> Running:
    """`weron vpn ip` (``args.vpn``) in both hosts, connected to each other; with ``cpus``,
    each pinned to its CPU list (taskset)."""
    processes: list[subprocess.Popen[bytes]] = []
    log_paths = []
    for index, host in enumerate(hosts, start=1):
        log_path = log_dir / f"{name}-{host.namespace}-{time.monotonic_ns()}.log"
        if args.vpn == "ip":
            vpn = [
                "ip", "--ips", "10.66.0.1/24", "--kicks", "1s",
                "--state-file", str(log_dir / f"state-{host.namespace}.json"),
            ]  # fmt: skip
        else:
            vpn = ["ethernet", "--mac", f"02:00:00:00:66:{index:02x}"]
        argv = [
            *WERON, "vpn", *vpn, "--raddr", f"ws://{lab.hub_address}:{PORT}/",
            "--community", f"bench-{name}", "--password", "bench", "--key", "bench",
            "--ice", "", "--dev", "weron0", "--backend", args.backend, "--mtu", str(args.mtu),
            *extra,
        ]  # fmt: skip
        if cpus is not None:
            argv = ["taskset", "-c", cpus[index - 1], *argv]
        if args.profile is not None and name == "overlay":
            profile = args.profile / f"{host.namespace}-{time.monotonic_ns()}.txt"
            py_spy = Path(sys.executable).parent / "py-spy"
            argv = [
                str(py_spy),
                "record",
                "--format",
                "raw",
                "--native",
                "-o",
                str(profile),
                "--",
                *argv,
            ]
        with log_path.open("wb") as out:
            processes.append(lab.start(host.namespace, argv, log=out, env=env))
        log_paths.append(log_path)

    def stop() -> None:
        for process in processes:
            if args.profile is not None:  # py-spy writes its profile once its child ended
                children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
                for child in children.read_text().split() if children.exists() else ():
                    os.kill(int(child), signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(30)
            lab.stop(process)

    try:
        wait_connected(log_paths)
        if args.vpn == "ethernet":  # a TAP gets its addresses by hand
            for index, host in enumerate(hosts, start=1):
                argv = ["ip", "addr", "add", f"10.66.0.{index}/24", "dev", "weron0"]
                lab.run(host.namespace, argv)
        address = overlay_address(lab, hosts[1], "weron0")
        pings(lab, hosts[0], address, 10, IDLE_INTERVAL)  # warm-up: routes, neighbours
    except BaseException:
        stop()
        raise
    return Running(address, [process.pid for process in processes], stop)


def wireguard_go(lab: Lab, hosts: tuple[Host, Host], tag: str) -> Running:
    """wireguard-go in both hosts, each the other's peer over the LAN, on 10.67.0.0/24."""
    keys = [PrivateKey.generate() for _ in hosts]
    processes: list[subprocess.Popen[bytes]] = []

    def stop() -> None:
        for process in processes:
            lab.stop(process)

    try:
        for index, host in enumerate(hosts):
            interface = f"wgb{tag}{index}"[:15]
            process = start_wireguard_go(host.namespace, interface, keys[index], WG_PORT)
            processes.append(process)
            other = 1 - index
            ns = ["ip", "netns", "exec", host.namespace]
            peer = [
                "wg", "set", interface, "peer", key_text(keys[other].public),
                "allowed-ips", f"{WG_SUBNET}{other + 1}/32",
                "endpoint", f"{hosts[other].address}:{WG_PORT}",
            ]  # fmt: skip
            for argv in (
                peer,
                ["ip", "addr", "add", f"{WG_SUBNET}{index + 1}/24", "dev", interface],
                ["ip", "link", "set", interface, "mtu", "1420", "up"],
            ):
                subprocess.run([*ns, *argv], check=True, capture_output=True, timeout=30)
        address = f"{WG_SUBNET}2"
        pings(lab, hosts[0], address, 10, IDLE_INTERVAL)  # warm-up: the handshake
    except BaseException:
        stop()
        raise
    return Running(address, [process.pid for process in processes], stop)


def start_signaler(lab: Lab, log_dir: Path) -> None:
    """A signaler in the lab's hub, on PORT, listening once this returns."""
    with (log_dir / "signaler.log").open("wb") as out:
        lab.start(lab.hub, [*WERON, "signaler", "--laddr", f"{lab.hub_address}:{PORT}"], log=out)
    while not lab.listening(lab.hub, PORT):
        time.sleep(0.05)


def wait_connected(log_paths: list[Path], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all('"Connected to peer"' in path.read_text(errors="replace") for path in log_paths):
            return
        time.sleep(0.1)
    raise RuntimeError("the VPN members did not connect:\n" + log_paths[0].read_text()[-2000:])


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": percentile(ordered, 50),
        "p99_ms": percentile(ordered, 99),
        "mean_ms": statistics.fmean(ordered) if ordered else float("nan"),
        "count": len(ordered),
    }


def median(values: list[float]) -> float:
    kept = [value for value in values if not math.isnan(value)]  # NaN: no CPU figure
    return statistics.median(kept) if kept else float("nan")


ROWS: Final = (
    ("iperf3 TCP Mbit/s", "iperf3_mbits"),
    ("CPU s per GB (VPN processes)", "cpu_s_per_gb"),
    ("UDP_SEGMENT Mbit/s received", "udp_gso_mbits"),
    ("ping p50 ms (20 ms apart)", "p50_ms"),
    ("ping p99 ms (20 ms apart)", "p99_ms"),
    ("ping p50 ms (1 ms apart)", "busy_p50_ms"),
)


def print_table(figures: dict[str, dict[str, float]]) -> None:
    """A column per contender, then the overlay's ratio to each of the others."""
    others = [name for name in figures if name != "overlay"]
    rows = [("figure", *figures, *(f"overlay/{name}" for name in others))]
    rows += [
        (
            label,
            *(number(figures[name][key]) for name in figures),
            *(number(ratio(figures["overlay"][key], figures[name][key])) for name in others),
        )
        for label, key in ROWS
    ]
    print_rows(rows, (0,), sys.stdout)


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else float("nan")


def measure(
    lab: Lab,
    hosts: tuple[Host, Host],
    contender: Contender,
    values: dict[str, list[float]],
    seconds: float,
    count: int,
) -> None:
    """Start ``contender``, add an iperf3 run and ``count`` pings at either pace to
    ``values``, stop it."""
    running = contender.start()
    try:
        mbits, cpu = iperf3(lab, *hosts, running.address, seconds, running.pids)
        values["mbits"].append(mbits)
        values["cpu"].append(cpu)
        values["udp"].append(udp_gso(lab, *hosts, running.address, seconds))
        values["rtt"].extend(pings(lab, hosts[0], running.address, count, IDLE_INTERVAL))
        values["rtt_busy"].extend(pings(lab, hosts[0], running.address, count, BUSY_INTERVAL))
    finally:
        running.stop()


def main() -> int:
    parser = bench_parser(__doc__, quick="short runs, for a CI smoke test", before=True)
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3, quick 1)")
    parser.add_argument(
        "--variant",
        metavar="ARGS",
        help="also measure the VPN with these extra arguments (A/B of flags in one run)",
    )
    parser.add_argument("--vpn", choices=("ip", "ethernet"), default="ip", help="which VPN")
    parser.add_argument(
        "--pin",
        metavar="FIRST/SECOND",
        help="also measure the VPN with each host's process pinned to these CPU lists "
        "(taskset), e.g. 0/1 or 0/0",
    )
    parser.add_argument("--backend", default="libdatachannel", help="WebRTC backend of the VPN")
    parser.add_argument("--mtu", type=int, default=1420, help="MTU of the TUN (TAP) devices")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy the overlay's members: collapsed stacks to DIR (its CPU figure is py-spy's)",
    )
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    reason = lab_unavailable()
    if reason is not None:
        print(f"bench/vpn.py {reason}", file=sys.stderr)
        return 2
    rounds, seconds, count = (1, 2.0, 50) if args.quick else (3, 5.0, 200)
    rounds = args.rounds or rounds
    log_dir = Path(f"/tmp/weron-bench-vpn-{time.monotonic_ns()}")
    log_dir.mkdir(parents=True)
    lab = Lab()
    results: dict[str, dict[str, list[float]]] = {}
    try:
        hosts = (lab.add_host(), lab.add_host())
        start_signaler(lab, log_dir)
        contenders = [
            Contender("overlay", lambda: weron_vpn(lab, hosts, log_dir, args, "overlay", {}, [])),
            Contender("reference", lambda: Running(hosts[1].address, [], lambda: None)),
        ]
        if args.before:
            env = {"PYTHONPATH": str(source_at(args.before, log_dir / "before"))}
            contenders.insert(
                1,
                Contender(
                    "before", lambda: weron_vpn(lab, hosts, log_dir, args, "before", env, [])
                ),
            )
        if args.variant:
            extra = shlex.split(args.variant)
            contenders.insert(
                1,
                Contender(
                    "variant", lambda: weron_vpn(lab, hosts, log_dir, args, "variant", {}, extra)
                ),
            )
        if args.pin:
            first, _, second = args.pin.partition("/")
            cpus = (first, second or first)
            contenders.insert(
                1,
                Contender(
                    "pinned",
                    lambda: weron_vpn(lab, hosts, log_dir, args, "pinned", {}, [], cpus),
                ),
            )
        if shutil.which("wireguard-go") and shutil.which("wg"):
            contenders.insert(
                -1, Contender("wireguard_go", lambda: wireguard_go(lab, hosts, lab.tag))
            )
        else:
            log("wireguard-go or wg not installed: no wireguard-go reference")
        names = ", ".join(contender.name for contender in contenders)
        log(f"vpn {args.vpn} ({args.backend}, MTU {args.mtu}); {names}")
        for contender in contenders:
            results[contender.name] = {
                "mbits": [],
                "cpu": [],
                "udp": [],
                "rtt": [],
                "rtt_busy": [],
            }
        for round_number in range(1, rounds + 1):
            shift = (round_number - 1) % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                log(f"round {round_number}/{rounds}: {contender.name}")
                measure(lab, hosts, contender, results[contender.name], seconds, count)
    finally:
        lab.close()
    figures = {
        name: {
            "iperf3_mbits": statistics.median(values["mbits"]),
            "cpu_s_per_gb": median(values["cpu"]),
            "udp_gso_mbits": median(values["udp"]),
            **summary(values["rtt"]),
            "busy_p50_ms": summary(values["rtt_busy"])["p50_ms"],
        }
        for name, values in results.items()
    }
    overlay = figures["overlay"]
    document = {
        "benchmark": "vpn",
        "vpn": args.vpn,
        "backend": args.backend,
        "mtu": args.mtu,
        "quick": args.quick,
        "rounds": rounds,
        "before": args.before,
        "variant": args.variant,
        "pin": args.pin,
        "source": source_revision(),
        "figures": figures,
        "runs_mbits": {name: values["mbits"] for name, values in results.items()},
        "runs_cpu_s_per_gb": {name: values["cpu"] for name, values in results.items()},
        "ratios": {
            "iperf3": ratio(overlay["iperf3_mbits"], figures["reference"]["iperf3_mbits"]),
            "ping_p50": ratio(overlay["p50_ms"], figures["reference"]["p50_ms"]),
            "busy_ping_p50": ratio(overlay["busy_p50_ms"], figures["reference"]["busy_p50_ms"]),
        },
        "ratios_overlay_over": {
            name: {key: ratio(overlay[key], figures[name][key]) for _label, key in ROWS}
            for name in figures
            if name != "overlay"
        },
        "targets": {
            "iperf3_mbits>=200": overlay["iperf3_mbits"] >= TARGET_MBITS,
            "ping_p50_ms<=0.5": overlay["p50_ms"] <= TARGET_PING_MS,
        },
        "logs": str(log_dir),
    }
    print_table(figures)
    print("targets: iperf3 TCP >= 200 Mbit/s, ping p50 (20 ms apart) <= 0.5 ms")
    return emit(document, args.json_out)


if __name__ == "__main__":
    sys.exit(main())

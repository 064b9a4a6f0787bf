"""Benchmark of our WireGuard transport against stock wireguard-go, in the same run.

A lab of two network namespaces joined by a veth pair (netlab/wglab.py): on the right,
wireguard-go with a UDP counter bound to its overlay address; on the left, either our Python
peer (``UdpOverlay`` on one asyncio UDP socket) or, as the reference, a second wireguard-go fed
by a kernel UDP socket. Each sender blasts 1,400-byte IP packets (UDP payload 1,352 bytes over
IPv6) for ``--seconds``; the counter (its own process) reports what arrived:

* packets/s and Mbit/s of 1,400-byte packets delivered, ours and reference, and their ratio;
* time to the first delivered packet from a cold start (handshake included), both sides, and
  our own handshake time (initiation sent to response consumed).

Rounds alternate ours/reference so that noise from other work on the machine hits both.
Needs root, wireguard-go, wg and ip. Usage: ``.venv/bin/python bench/wireguard.py [--quick]
[--seconds S] [--rounds N] [--json-out PATH]``. Progress on stderr; a table then one JSON
document on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

from common import HERE, bench_parser, emit, json_safe, log, number, print_rows, source_revision

sys.path.insert(0, str(HERE.parent))

from netlab.wglab import WireGuardLab, key_text, missing_requirements
from weron.wireguard.crypto import PrivateKey
from weron.wireguard.ip import build_udp, overlay_address
from weron.wireguard.keys import decode_key
from weron.wireguard.overlay import UdpOverlay

PACKET_SIZE: Final = 1400
PAYLOAD: Final = bytes(PACKET_SIZE - 48)  # IPv6 (40) + UDP (8) headers
PROBE: Final = b"probe"
PORT: Final = 5000
PROBE_INTERVAL: Final = 0.002
PROBE_TIME: Final = 1.0
TARGET_RATIO: Final = 0.5


# -- roles (run as subprocesses inside a namespace) ------------------------------------------


def run_counter(bind: str, idle: float, deadline: float) -> dict[str, Any]:
    """Count full-size datagrams; stop ``idle`` s after the last one (or at ``deadline``)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.bind((bind, PORT))
    sock.settimeout(idle)
    buffer = bytearray(65536)
    print(json.dumps({"event": "ready"}), flush=True)
    first_any = first = last = None
    packets = 0
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            size = sock.recv_into(buffer)
        except TimeoutError:
            if first_any is not None:
                break
            continue
        now = time.monotonic()
        if first_any is None:
            first_any = now
        if size == len(PAYLOAD):
            if first is None:
                first = now
            last = now
            packets += 1
    return {"first_any": first_any, "first": first, "last": last, "packets": packets}


def run_kernel_sender(destination: str, seconds: float) -> dict[str, Any]:
    """The reference: a kernel UDP socket whose packets wireguard-go encrypts."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    address = (destination, PORT)
    started = time.monotonic()
    while time.monotonic() - started < PROBE_TIME:
        sock.sendto(PROBE, address)
        time.sleep(PROBE_INTERVAL)
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(64):
            try:
                sock.sendto(PAYLOAD, address)
                sent += 1
            except BlockingIOError:
                pass
    return {"started": started, "sent": sent}


async def run_python_sender(
    port: int, go_key: bytes, go_endpoint: tuple[str, int], seconds: float
) -> dict[str, Any]:
    """Ours: UdpOverlay's endpoint encrypts and sends (private key on stdin)."""
    key = PrivateKey(decode_key(sys.stdin.readline()))
    overlay = UdpOverlay(key, lambda _peer, _datagram: None)
    await overlay.open("0.0.0.0", port)
    peer = overlay.add_peer(go_key, endpoint=go_endpoint)
    endpoint = overlay.endpoint
    loop = asyncio.get_running_loop()
    source, destination = overlay.address, overlay_address(go_key)
    probe = build_udp(source, PORT, destination, PORT, PROBE)
    packet = build_udp(source, PORT, destination, PORT, PAYLOAD)
    started = time.monotonic()
    initiated = loop.time()
    handshake = None
    while time.monotonic() - started < PROBE_TIME:
        endpoint.send(peer, probe)
        if handshake is None and peer.current is not None:
            handshake = loop.time() - initiated
        await asyncio.sleep(PROBE_INTERVAL)
    transport = endpoint.transport
    batch = [packet] * 64
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sent += endpoint.send_many(peer, batch)
        if transport.get_write_buffer_size():  # type: ignore[attr-defined]
            await asyncio.sleep(0)
    await asyncio.sleep(0.1)
    overlay.close()
    return {"started": started, "sent": sent, "handshake": handshake}


# -- orchestration ---------------------------------------------------------------------------


def spawn(
    namespace: str, *args: str, stdin: str | None = None, profile: Path | None = None
) -> subprocess.Popen[str]:
    """This script in another role, inside ``namespace`` (under py-spy with ``profile``)."""
    command = ["ip", "netns", "exec", namespace]
    if profile is not None:
        py_spy = Path(sys.executable).parent / "py-spy"
        command += [str(py_spy), "record", "--format", "raw", "-o", str(profile), "--"]
    command += [sys.executable, str(Path(__file__)), *args]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert process.stdin is not None
    if stdin is not None:
        process.stdin.write(stdin)
    process.stdin.close()
    return process


def last_json(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert process.stdout is not None
    out = process.stdout.read()
    process.wait(timeout)
    if process.returncode != 0:
        raise RuntimeError(f"bench role failed with status {process.returncode}")
    lines = [line for line in out.splitlines() if line.startswith("{")]  # py-spy talks too
    if not lines:
        raise RuntimeError(f"bench role printed no result: {out[-500:]!r}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def measure(
    lab: WireGuardLab,
    sender_args: list[str],
    seconds: float,
    stdin: str | None,
    profile: Path | None = None,
) -> dict[str, Any]:
    receiver = lab.instances[0]
    counter = spawn(
        lab.right.namespace, "--role", "counter", "--bind", receiver.overlay,
        "--deadline", str(seconds + 30),
    )  # fmt: skip
    assert counter.stdout is not None
    counter.stdout.readline()  # ready
    sender = spawn(
        lab.left.namespace, *sender_args, "--seconds", str(seconds), stdin=stdin, profile=profile
    )
    sent = last_json(sender, seconds + 60)
    counted = last_json(counter, 60)
    duration = (counted["last"] or 0) - (counted["first"] or 0)
    rate = (counted["packets"] - 1) / duration if duration > 0 else float("nan")
    return {
        "packets_per_s": rate,
        "mbit_per_s": rate * PACKET_SIZE * 8 / 1e6,
        "delivered": counted["packets"],
        "sent": sent["sent"],
        "first_delivery_s": (counted["first_any"] or float("nan")) - sent["started"],
        "handshake_s": sent.get("handshake"),
    }


def bench(seconds: float, rounds: int, profile: Path | None) -> dict[str, Any]:
    with WireGuardLab() as lab:
        receiver = lab.start_wireguard_go(lab.right)
        reference = lab.start_wireguard_go(lab.left)
        lab.add_peer(reference, receiver.key.public, receiver.endpoint)
        ours_key = PrivateKey.generate()
        ours_endpoint = (lab.left.address, 51900)
        lab.add_peer(receiver, reference.key.public, reference.endpoint)
        results: dict[str, list[dict[str, Any]]] = {"ours": [], "reference": []}
        for round_number in range(rounds):
            for which in ("ours", "reference"):
                # A fresh key per round: every round starts cold and includes a handshake.
                if which == "ours":
                    ours_key = PrivateKey.generate()
                    lab.add_peer(receiver, ours_key.public, ours_endpoint)
                    args = [
                        "--role", "sender-ours", "--go-key", key_text(receiver.key.public),
                        "--go-endpoint", f"{receiver.endpoint[0]}:{receiver.endpoint[1]}",
                        "--port", str(ours_endpoint[1]),
                    ]  # fmt: skip
                    stdin = key_text(ours_key.raw()) + "\n"
                else:
                    lab.wg(receiver, "set", receiver.interface, "peer",
                           key_text(reference.key.public), "remove")  # fmt: skip
                    lab.wg(reference, "set", reference.interface, "peer",
                           key_text(receiver.key.public), "remove")  # fmt: skip
                    lab.add_peer(receiver, reference.key.public, reference.endpoint)
                    lab.add_peer(reference, receiver.key.public, receiver.endpoint)
                    args = ["--role", "sender-kernel", "--destination", receiver.overlay]
                    stdin = None
                where = None
                if profile is not None and which == "ours":
                    where = profile.with_name(f"{profile.stem}-{round_number + 1}.txt")
                result = measure(lab, args, seconds, stdin, where)
                log(
                    f"round {round_number + 1}/{rounds} {which}: "
                    f"{number(result['packets_per_s'])} packets/s, "
                    f"{number(result['mbit_per_s'])} Mbit/s, first packet after "
                    f"{number(result['first_delivery_s'] * 1e3)} ms"
                )
                results[which].append(result)
                if which == "ours":
                    lab.wg(receiver, "set", receiver.interface, "peer",
                           key_text(ours_key.public), "remove")  # fmt: skip
    return summarise(results)


def summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def median(which: str, field: str) -> float:
        values = [r[field] for r in results[which] if r[field] is not None]
        return statistics.median(values) if values else float("nan")

    figures = []
    for name, field, unit in (
        ("packets/s of 1,400-byte packets", "packets_per_s", "packets/s"),
        ("throughput of 1,400-byte packets", "mbit_per_s", "Mbit/s"),
        ("cold start to first delivered packet", "first_delivery_s", "s"),
    ):
        ours, reference = median("ours", field), median("reference", field)
        figures.append(
            {
                "name": name,
                "unit": unit,
                "ours": ours,
                "reference": reference,
                "ratio_ours_over_reference": ours / reference if reference else float("nan"),
            }
        )
    ratio = float(figures[0]["ratio_ours_over_reference"])  # type: ignore[arg-type]
    return {
        "benchmark": "wireguard",
        "reference": "wireguard-go to wireguard-go, same lab, same run",
        "revision": source_revision(),
        "figures": figures,
        "our_handshake_s": median("ours", "handshake_s"),
        "target": {"packet_rate_ratio": TARGET_RATIO, "met": ratio >= TARGET_RATIO},
        "rounds": results,
    }


def print_table(report: dict[str, Any]) -> None:
    rows = [("figure", "ours", "wireguard-go", "ratio")]
    rows += [
        (
            f"{figure['name']} ({figure['unit']})",
            number(figure["ours"]),
            number(figure["reference"]),
            number(figure["ratio_ours_over_reference"]),
        )
        for figure in report["figures"]
    ]
    print_rows(rows, (0,), sys.stdout)
    print(f"our handshake: {number(report['our_handshake_s'] * 1e3)} ms")
    target = report["target"]
    print(f"target packet rate >= {target['packet_rate_ratio']:.0%} of wireguard-go: "
          f"{'met' if target['met'] else 'missed'}")  # fmt: skip


def main() -> int:
    parser = bench_parser(__doc__, quick="short CI smoke run")
    parser.add_argument("--seconds", type=float, default=5.0, help="blast time per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of ours + reference")
    parser.add_argument(
        "--profile", type=Path, help="py-spy our sender: collapsed stacks to PROFILE-<round>.txt"
    )
    parser.add_argument("--role", choices=["counter", "sender-kernel", "sender-ours"])
    parser.add_argument("--bind", default="::")
    parser.add_argument("--destination", default="")
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--go-key", default="")
    parser.add_argument("--go-endpoint", default="")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.role == "counter":
        print(json.dumps(run_counter(args.bind, 1.0, args.deadline)), flush=True)
        return 0
    if args.role == "sender-kernel":
        print(json.dumps(run_kernel_sender(args.destination, args.seconds)), flush=True)
        return 0
    if args.role == "sender-ours":
        host, _, port = args.go_endpoint.rpartition(":")
        result = asyncio.run(
            run_python_sender(args.port, decode_key(args.go_key), (host, int(port)), args.seconds)
        )
        print(json.dumps(result), flush=True)
        return 0
    problem = missing_requirements()
    if problem is not None:
        log(f"cannot run: {problem}")
        return 2
    seconds, rounds = (1.0, 1) if args.quick else (args.seconds, args.rounds)
    report = json_safe(bench(seconds, rounds, args.profile))
    print_table(report)
    return emit(report, args.json_out)


if __name__ == "__main__":
    sys.exit(main())

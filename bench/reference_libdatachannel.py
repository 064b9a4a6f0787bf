"""The engine floor of a paced round trip: bare libdatachannel, no asyncio, no weron.

Two peer connections in this process, negotiated directly (no signaler): one echoes each
message from inside the library's callback, the other pings like ``weron utility latency``
(sleep ``--pause``, send ``--packet-length`` random bytes, wait for the echo). Each round trip
is printed as ``weron utility latency --json`` prints it, so that the same code reads both.

Sending from the echo callback is safe here (see the thread rules in
weron.webrtc.libdatachannel_backend): no ``on_buffered_amount_low`` is registered, so no
worker holds the send lock while it waits for the GIL.

Usage: ``python bench/reference_libdatachannel.py --pause 0.005 [--packet-length 128]``;
runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import libdatachannel as rtc

LABEL = "floor"


def _set_local(pc: rtc.PeerConnection) -> None:
    """Set the local description and wait until every candidate is in it (no trickle)."""
    gathered = threading.Event()

    def on_gathering(state: rtc.PeerConnection.GatheringState) -> None:
        if state == rtc.PeerConnection.GatheringState.Complete:
            gathered.set()

    pc.on_gathering_state_change(on_gathering)
    pc.set_local_description()
    if not gathered.wait(30):
        raise TimeoutError("ICE gathering did not complete within 30 s")


def _negotiate(offerer: rtc.PeerConnection, answerer: rtc.PeerConnection) -> None:
    _set_local(offerer)
    offer = offerer.local_description()
    assert offer is not None
    answerer.set_remote_description(offer)
    _set_local(answerer)
    answer = answerer.local_description()
    assert answer is not None
    offerer.set_remote_description(answer)


def _exchange(pc: rtc.PeerConnection, directory: Path, ours: str, theirs: str) -> None:
    """Between two processes: write our description to ``directory/ours`` (gathered, renamed
    into place whole) and, unless we offer, first read theirs, waiting for it."""
    if theirs == "offer":
        pc.set_remote_description(_read(directory / theirs, theirs))
    _set_local(pc)
    description = pc.local_description()
    assert description is not None
    (directory / f"{ours}.tmp").write_text(str(description))
    (directory / f"{ours}.tmp").rename(directory / ours)
    if theirs == "answer":
        pc.set_remote_description(_read(directory / theirs, theirs))


def _read(path: Path, kind: str) -> rtc.Description:  # type: ignore[name-defined]  # stub gap
    deadline = time.monotonic() + 30
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {kind} within 30 s")
        time.sleep(0.01)
    return rtc.Description(path.read_text(), kind)  # type: ignore[attr-defined]  # stub gap


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between pings")
    parser.add_argument("--packet-length", type=int, default=128)
    parser.add_argument(
        "--role",
        choices=("both", "ping", "echo"),
        default="both",
        help="both connections here, or one, the other in a process given the same --exchange",
    )
    parser.add_argument("--exchange", type=Path, help="directory for the two descriptions")
    args = parser.parse_args()
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    configuration = rtc.Configuration()
    configuration.disable_auto_negotiation = True
    connections: list[rtc.PeerConnection] = []
    channels: list[rtc.DataChannel] = []  # kept alive until the connections close
    opened = threading.Event()
    replied = threading.Event()

    def adopt(channel: rtc.DataChannel) -> None:
        channels.append(channel)
        channel.on_message(channel.send)

    if args.role in ("both", "echo"):
        echo = rtc.PeerConnection(configuration)
        echo.on_data_channel(adopt)
        connections.append(echo)
    if args.role in ("both", "ping"):
        pinger = rtc.PeerConnection(configuration)
        channel = pinger.create_data_channel(LABEL)
        channel.on_open(opened.set)
        channel.on_message(lambda _message: replied.set())
        connections.append(pinger)
    if args.role == "both":
        _negotiate(pinger, echo)
    elif args.role == "echo":
        _exchange(echo, args.exchange, "answer", "offer")
        stop.wait()
    else:
        _exchange(pinger, args.exchange, "offer", "answer")
    if args.role != "echo" and not opened.wait(30):
        print("no open channel within 30 s", file=sys.stderr)
        return 1
    if args.role != "echo":
        print(json.dumps({"level": "info", "message": "Connected to peer"}), file=sys.stderr)
    while args.role != "echo" and not stop.is_set():
        payload = os.urandom(args.packet_length)
        replied.clear()
        started = time.perf_counter()
        channel.send(payload)
        if not replied.wait(10):
            print("no echo within 10 s", file=sys.stderr)
            break
        round_trip = time.perf_counter() - started
        document = {"type": "packet", "bytes": len(payload), "round_trip_us": round_trip * 1e6}
        print(json.dumps(document, separators=(",", ":")), flush=True)
        stop.wait(args.pause)
    for pc in connections:
        pc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

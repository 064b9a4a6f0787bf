"""The yardstick for bench/peers.py: plain loopback between two Python processes, no WebRTC.

Each mode mirrors one side of ``weron utility latency|throughput`` closely enough that
bench/peers.py drives both with the same code: servers log ``{"message": "Listening",
"port": ...}`` on stderr once bound, clients log ``{"message": "Connected to peer"}`` at first
contact and print the same JSON lines on stdout (``packet`` per round trip, ``batch`` per
acknowledged batch, ``totals`` when stopped with SIGINT).

    udp-echo                                 echo every datagram back
    udp-ping --port P [--packet-length 128]  back-to-back round trips of one datagram
    tcp-sink --packet-count M --packet-length N
                                             read M*N bytes, answer with 100 bytes, repeat
    tcp-source --port P --packet-count M --packet-length N
                                             write M messages of N bytes, wait for the answer

TCP is a byte stream: a "message" is one ``sendall`` of N bytes, and the sink reads whatever
arrives into one buffer. Blocking sockets, TCP_NODELAY: the cheapest thing Python does here.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any, Final

HOST: Final = "127.0.0.1"
ACK_LENGTH: Final = 100


def _log(message: str, **fields: Any) -> None:
    sys.stderr.write(json.dumps({"level": "info", **fields, "message": message}) + "\n")
    sys.stderr.flush()


def _emit(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def udp_echo() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        _log("Listening", port=sock.getsockname()[1])
        buffer = bytearray(65536)
        while True:
            size, address = sock.recvfrom_into(buffer)
            sock.sendto(memoryview(buffer)[:size], address)


def udp_ping(port: int, packet_length: int) -> None:
    round_trips: list[float] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((HOST, port))
        sock.settimeout(1.0)  # loopback does not lose datagrams, but never hang
        try:
            while True:
                payload = os.urandom(packet_length)
                started = time.perf_counter()
                sock.send(payload)
                try:
                    reply = sock.recv(65536)
                except TimeoutError:
                    continue
                round_trip = time.perf_counter() - started
                if not round_trips:
                    _log("Connected to peer", port=port)
                round_trips.append(round_trip)
                _emit(
                    {
                        "type": "packet",
                        "peer": "reference",
                        "bytes": len(reply),
                        "round_trip_us": round(round_trip * 1e6, 3),
                    }
                )
        except KeyboardInterrupt:
            if round_trips:
                _emit(
                    {
                        "type": "totals",
                        "packets": len(round_trips),
                        "average": round(sum(round_trips) / len(round_trips) * 1e6, 3),
                        "unit": "us",
                    }
                )


def tcp_sink(packet_count: int, packet_length: int) -> None:
    batch = packet_count * packet_length
    ack = bytes(ACK_LENGTH)
    buffer = bytearray(1 << 20)
    with socket.create_server((HOST, 0)) as listener:
        _log("Listening", port=listener.getsockname()[1])
        while True:  # one client after another
            connection, _ = listener.accept()
            with connection:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pending = batch
                while True:
                    size = connection.recv_into(buffer, min(len(buffer), pending))
                    if size == 0:
                        break
                    pending -= size
                    if pending == 0:
                        connection.sendall(ack)
                        pending = batch


def _receive_exactly(connection: socket.socket, size: int) -> None:
    while size:
        chunk = connection.recv(size)
        if not chunk:
            raise ConnectionError("the sink closed the connection")
        size -= len(chunk)


def tcp_source(port: int, packet_count: int, packet_length: int) -> None:
    payload = os.urandom(packet_length)
    written = 0
    seconds = 0.0
    batches = 0
    with socket.create_connection((HOST, port)) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _log("Connected to peer", port=port)
        try:
            while True:
                started = time.perf_counter()
                for _ in range(packet_count):
                    connection.sendall(payload)
                _receive_exactly(connection, ACK_LENGTH)
                elapsed = time.perf_counter() - started
                size = packet_count * packet_length
                written += size
                seconds += elapsed
                batches += 1
                _emit(
                    {
                        "type": "batch",
                        "peer": "reference",
                        "bytes": size,
                        "seconds": round(elapsed, 9),
                        "mb_per_s": round(size / elapsed / 1e6, 3),
                    }
                )
        except KeyboardInterrupt:
            if batches:
                _emit(
                    {
                        "type": "totals",
                        "bytes": written,
                        "seconds": round(seconds, 9),
                        "mb_per_s": round(written / seconds / 1e6, 3),
                        "batches": batches,
                    }
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("udp-echo", "udp-ping", "tcp-sink", "tcp-source"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--packet-length", type=int, default=128)
    parser.add_argument("--packet-count", type=int, default=1000)
    args = parser.parse_args()
    try:
        if args.mode == "udp-echo":
            udp_echo()
        elif args.mode == "udp-ping":
            udp_ping(args.port, args.packet_length)
        elif args.mode == "tcp-sink":
            tcp_sink(args.packet_count, args.packet_length)
        else:
            tcp_source(args.port, args.packet_count, args.packet_length)
    except KeyboardInterrupt:  # servers: SIGINT is the way to stop them
        pass
    except (BrokenPipeError, ConnectionError) as exc:
        _log("Connection lost", error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

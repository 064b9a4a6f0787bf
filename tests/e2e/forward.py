"""`weron forward` processes and the sockets the tests push through them: a TCP echo server
that honours half-close, a transfer that checks its sha256, a UDP echo."""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.processes import WERON, json_records

# The community of tests/e2e/hostile.py, so that the hostile member can join.
COMMUNITY = ("--community", "chatroom", "--password", "pw", "--key", "mykey")


class ForwardProcess:
    """A `weron forward` member named ``name``, logging JSON lines to a file."""

    def __init__(
        self, raddr: str, directory: Path, name: str, *args: str, backend: str = "libdatachannel"
    ) -> None:
        self.name = name
        self.log_path = directory / f"forward-{name}-{time.monotonic_ns()}.log"
        command = [
            *WERON,
            "forward",
            "--raddr",
            raddr,
            *COMMUNITY,
            "--names",
            name,
            "--ice",
            "",
            "--timeout",
            "5s",
            "--kicks",
            "1s",
            "--backend",
            backend,
            *args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("WERON_")}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def records(self) -> list[dict[str, Any]]:
        return json_records(self.log_path)

    def find(self, message: str, **fields: object) -> list[dict[str, Any]]:
        return [
            record
            for record in self.records()
            if record.get("message") == message
            and all(record.get(key) == value for key, value in fields.items())
        ]

    def wait_for(self, message: str, timeout: float = 90.0, **fields: object) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(message, **fields)
            if found:
                return found[0]
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"{message!r} {fields} not logged by {self.name} within {timeout}s "
            f"(exit {self.process.poll()}); log tail: {self.log_path.read_text()[-2000:]}"
        )

    def wait_connected(self, other: str) -> None:
        self.wait_for("Connected to signaler", id=self.name)
        self.wait_for("Connected to peer", id=other)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        connection: socket.socket = self.request
        try:
            while data := connection.recv(1 << 16):
                connection.sendall(data)
            connection.shutdown(socket.SHUT_WR)  # the half-close travels back
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # fifty connections arrive at once


@contextmanager
def echo_server(port: int = 0) -> Iterator[int]:
    """A TCP echo server on 127.0.0.1 (``port``, else a free one); yields its port."""
    server = _Server(("127.0.0.1", port), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def echo_transfer(port: int, size: int, timeout: float = 120.0) -> tuple[str, str]:
    """Send ``size`` random bytes through ``port`` (an echo behind it), half-close, read the
    echo to its end; the sha256 of what was sent and of what came back."""
    payload = os.urandom(size)
    received = hashlib.sha256()
    failures: list[OSError] = []  # a socket reports a reset once: to whichever call comes first
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:

        def send() -> None:
            view = memoryview(payload)
            try:
                for start in range(0, size, 1 << 16):
                    connection.sendall(view[start : start + (1 << 16)])
                connection.shutdown(socket.SHUT_WR)
            except OSError as exc:
                failures.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        while data := connection.recv(1 << 20):
            received.update(data)
        sender.join(timeout)
    if failures:
        raise failures[0]
    return hashlib.sha256(payload).hexdigest(), received.hexdigest()


def wait_forwarding(port: int, peer: str, remote_port: int, timeout: float = 90.0) -> None:
    """Until a connection to ``port`` reaches the echo behind ``peer`` (names take a while)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sent, received = echo_transfer(port, 16, timeout=30)
            if sent == received:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing reaches {peer}:{remote_port} through {port}")
        time.sleep(0.5)


def udp_echo(port: int) -> None:
    """Answer every datagram to 127.0.0.1:``port`` with the same bytes in upper case, for
    ever."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as echo:
        echo.bind(("127.0.0.1", port))
        print("ready", flush=True)
        while True:
            data, address = echo.recvfrom(65_535)
            echo.sendto(data.upper(), address)


def udp_pings(port: int, sources: int, timeout: float = 60.0) -> dict[str, int]:
    """From ``sources`` sockets, ping 127.0.0.1:``port`` (sent again every 0.2 s until
    answered, as UDP may lose the first while the channel opens); how many got their own
    ping back in upper case, and how many got anything else."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(sources)]
    answered: set[int] = set()
    wrong = 0
    try:
        deadline = time.monotonic() + timeout
        while len(answered) < sources and time.monotonic() < deadline:
            for number, source in enumerate(sockets):
                if number not in answered:
                    source.sendto(f"ping {number}".encode(), ("127.0.0.1", port))
            time.sleep(0.2)
            for number, source in enumerate(sockets):
                source.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    while True:
                        data = source.recv(100)
                        if data == f"PING {number}".encode():
                            answered.add(number)
                        else:
                            wrong += 1
    finally:
        for source in sockets:
            source.close()
    return {"answered": len(answered), "wrong": wrong}


def main() -> None:
    """For the namespace lab, where the sockets must live inside a namespace:
    ``python -m tests.e2e.forward echo PORT`` serves an echo until killed (printing "ready");
    ``python -m tests.e2e.forward transfer PORT SIZE COUNT`` runs COUNT transfers at once and
    prints one JSON line: how many kept their sha256, and the errors of the others;
    ``udp-echo PORT`` and ``udp-pings PORT SOURCES`` are :func:`udp_echo` and
    :func:`udp_pings` (its outcome as a JSON line)."""
    command, port = sys.argv[1], int(sys.argv[2])
    if command == "echo":
        with echo_server(port):
            print("ready", flush=True)
            threading.Event().wait()
    if command == "udp-echo":
        udp_echo(port)
    if command == "udp-pings":
        print(json.dumps(udp_pings(port, int(sys.argv[3]))))
        return
    size, count = int(sys.argv[3]), int(sys.argv[4])

    def one(_: int) -> str:
        try:
            sent, received = echo_transfer(port, size, timeout=300)
        except OSError as exc:
            return type(exc).__name__
        return "same" if sent == received else "different"

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        outcomes = list(pool.map(one, range(count)))
    print(json.dumps({"same": outcomes.count("same"), "others": sorted(set(outcomes) - {"same"})}))


if __name__ == "__main__":
    main()

"""weron.net.offload against the kernel: TCP over a relay between a TUN (TAP) with offloads on
and a plain one, the relay cutting super-packets (super-frames) with
:func:`~weron.net.offload.segments` one way and giving plain packets an empty header the other
way (what `vpn ip` and `vpn ethernet` do for a plain peer). The kernel drops a segment with a
wrong checksum or length, so the transfer completing whole proves the cutting right.
(tests/unit/net/offload_captured.txt and offload_captured_frames.txt hold messages captured by
such a relay, for the unit tests: set WERON_CAPTURE to a file to write them again.)"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netlab.lab import Lab
from netlab.wglab import in_namespace
from weron.net import offload
from weron.net.device import DeviceKind, _create

_SIZE = 4_000_000
_SERVER = """
import socket, sys
server = socket.create_server((sys.argv[1], 5999), family=socket.AF_INET6 if ":" in sys.argv[1]
                              else socket.AF_INET)
connection, _ = server.accept()
total = 0
while data := connection.recv(65536):
    total += len(data)
print(total)
"""
_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], 5999), timeout=30) as connection:
    connection.sendall(bytes(range(256)) * (int(sys.argv[2]) // 256))
"""
# UDP: the server prints how many datagrams of how many bytes it got once 2 s pass without
# one; the client sends 8 datagrams of 1,200 bytes per send (UDP_SEGMENT: one super-packet
# each), 2 ms apart (what a QUIC stack or wireguard-go does).
_UDP_SEND, _UDP_SEGMENT, _UDP_SIZE = 200, 8, 1200
_UDP_SERVER = """
import socket, sys
server = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET,
                       socket.SOCK_DGRAM)
server.bind((sys.argv[1], 5998))
server.settimeout(2)
sizes = []
try:
    while True:
        sizes.append(len(server.recv(65536)))
except TimeoutError:
    pass
print(len(sizes), sum(sizes))
"""
_UDP_CLIENT = f"""
import socket, sys, time
client = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET,
                       socket.SOCK_DGRAM)
client.setsockopt(socket.SOL_UDP, 103, {_UDP_SIZE})  # UDP_SEGMENT
for _ in range({_UDP_SEND}):
    client.sendto(bytes({_UDP_SEGMENT * _UDP_SIZE}), (sys.argv[1], 5998))
    time.sleep(0.002)
"""


Tuns = tuple[str, str, int, int, DeviceKind]  # namespaces, descriptors (offloaded, plain), kind


def open_tun(namespace: str, offloads: bool, kind: DeviceKind = DeviceKind.TUN) -> int:
    """A TUN (TAP) named tun0 in ``namespace``, opened from this process as `vpn ip` (`vpn
    ethernet`) opens it (a TUN stays in the namespace it was created in)."""
    with in_namespace(namespace):
        fd, _, offloaded, _ = _create(kind, "tun0", offloads)
    assert offloaded == offloads
    return fd


@pytest.fixture(params=[DeviceKind.TUN, DeviceKind.TAP], ids=["tun", "tap"])
def tuns(lab: Lab, request: pytest.FixtureRequest) -> Iterator[Tuns]:
    """Two hosts, each with a tun0, TUN or TAP (10.92.0.1-2/24, fd92::1-2/64): the first with
    offloads."""
    if sys.version_info < (3, 12):
        pytest.skip("needs Python 3.12+ (os.setns)")
    kind = request.param
    hosts = [lab.add_host(), lab.add_host()]
    fds = [open_tun(hosts[0].namespace, True, kind), open_tun(hosts[1].namespace, False, kind)]
    for number, host in enumerate(hosts, 1):
        for argv in (
            ["ip", "addr", "add", f"10.92.0.{number}/24", "dev", "tun0"],
            ["ip", "addr", "add", f"fd92::{number}/64", "dev", "tun0", "nodad"],
            ["ip", "link", "set", "tun0", "mtu", "1420", "up"],
        ):
            lab.run(host.namespace, argv)
    try:
        yield hosts[0].namespace, hosts[1].namespace, fds[0], fds[1], kind
    finally:
        for fd in fds:
            os.close(fd)


class Relay:
    """The relay, on a thread while in its ``with``: what it cut, and a few messages it read
    (plain and super by turns) to capture."""

    def __init__(self, tuns: Tuns) -> None:
        _, _, self.offloaded, self.plain, kind = tuns
        self.ethernet = kind is DeviceKind.TAP
        self.done = threading.Event()
        self.cut: list[int] = []
        self.captured: list[bytes] = []
        self.thread = threading.Thread(target=self.relay, daemon=True)

    def relay(self) -> None:
        offloaded, plain = self.offloaded, self.plain
        while not self.done.is_set():
            readable, _, _ = select.select([offloaded, plain], [], [], 0.1)
            if offloaded in readable:
                message = os.read(offloaded, 70_000)
                packets = offload.segments(message, ethernet=self.ethernet)
                if len(self.captured) < 4 and (len(packets) > 1) == (len(self.captured) % 2 == 1):
                    self.captured.append(message)
                self.cut.append(len(packets))
                for packet in packets:
                    os.write(plain, packet)
            if plain in readable:
                os.writev(offloaded, (offload.PLAIN_HEADER, os.read(plain, 70_000)))

    def __enter__(self) -> Relay:
        self.thread.start()
        return self

    def __exit__(self, error: type[BaseException] | None, *_: object) -> None:
        self.done.set()
        self.thread.join()
        if error is not None:
            return
        assert max(self.cut) > 1, "the kernel handed over no super-packet"
        if capture := os.environ.get("WERON_CAPTURE"):
            with Path(capture).open("a") as lines:
                lines.writelines(message.hex() + "\n" for message in self.captured)


@pytest.mark.parametrize("server", ["10.92.0.2", "fd92::2"])
def test_cut_super_packets_carry_tcp_into_a_plain_tun(lab: Lab, tuns: Tuns, server: str) -> None:
    sender, receiver = tuns[:2]
    with Relay(tuns):
        listening = lab.start(
            receiver, [sys.executable, "-c", _SERVER, server], log=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 10
            while not lab.listening(receiver, 5999) and time.monotonic() < deadline:
                time.sleep(0.05)
            argv = [sys.executable, "-c", _CLIENT, server, str(_SIZE)]
            sent = lab.run(sender, argv, timeout=60)
            assert sent.returncode == 0, sent.stderr
            received, _ = listening.communicate(timeout=30)
        finally:
            lab.stop(listening)
    assert int(received) == _SIZE


@pytest.mark.parametrize("server", ["10.92.0.2", "fd92::2"])
def test_cut_udp_super_packets_carry_datagrams_into_a_plain_tun(
    lab: Lab, tuns: Tuns, server: str
) -> None:
    sender, receiver = tuns[:2]
    lab.run(sender, ["ping", "-c", "1", "-W", "2", server])  # neighbours (for a TAP)
    with Relay(tuns) as relay:
        listening = lab.start(
            receiver, [sys.executable, "-u", "-c", _UDP_SERVER, server], log=subprocess.PIPE
        )
        try:
            time.sleep(0.5)  # bound
            sent = lab.run(sender, [sys.executable, "-c", _UDP_CLIENT, server], timeout=60)
            assert sent.returncode == 0, sent.stderr
            received, _ = listening.communicate(timeout=30)
        finally:
            lab.stop(listening)
    count, total = map(int, received.split())
    # UDP loses some on a loaded machine; a wrong checksum or length loses them all.
    assert count > _UDP_SEND * _UDP_SEGMENT // 2
    assert total == count * _UDP_SIZE
    assert max(relay.cut) >= _UDP_SEGMENT

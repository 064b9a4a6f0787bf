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


Tuns = tuple[str, str, int, int, DeviceKind]  # namespaces, descriptors (offloaded, plain), kind


def open_tun(namespace: str, offloads: bool, kind: DeviceKind = DeviceKind.TUN) -> int:
    """A TUN (TAP) named tun0 in ``namespace``, opened from this process as `vpn ip` (`vpn
    ethernet`) opens it (a TUN stays in the namespace it was created in)."""
    with in_namespace(namespace):
        fd, _, offloaded = _create(kind, "tun0", offloads)
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


@pytest.mark.parametrize("server", ["10.92.0.2", "fd92::2"])
def test_cut_super_packets_carry_tcp_into_a_plain_tun(lab: Lab, tuns: Tuns, server: str) -> None:
    sender, receiver, offloaded, plain, kind = tuns
    ethernet = kind is DeviceKind.TAP
    done = threading.Event()
    cut = []
    captured: list[bytes] = []

    def relay() -> None:
        while not done.is_set():
            readable, _, _ = select.select([offloaded, plain], [], [], 0.1)
            if offloaded in readable:
                message = os.read(offloaded, 70_000)
                packets = offload.segments(message, ethernet=ethernet)
                if len(captured) < 4 and (len(packets) > 1) == (len(captured) % 2 == 1):
                    captured.append(message)  # plain and super, by turns
                cut.append(len(packets))
                for packet in packets:
                    os.write(plain, packet)
            if plain in readable:
                os.writev(offloaded, (offload.PLAIN_HEADER, os.read(plain, 70_000)))

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    listening = lab.start(receiver, [sys.executable, "-c", _SERVER, server], log=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not lab.listening(receiver, 5999) and time.monotonic() < deadline:
            time.sleep(0.05)
        sent = lab.run(sender, [sys.executable, "-c", _CLIENT, server, str(_SIZE)], timeout=60)
        assert sent.returncode == 0, sent.stderr
        received, _ = listening.communicate(timeout=30)
    finally:
        done.set()
        thread.join()
        lab.stop(listening)
    assert int(received) == _SIZE
    assert max(cut) > 1, "the kernel handed over no super-packet"
    if capture := os.environ.get("WERON_CAPTURE"):
        with Path(capture).open("a") as lines:
            lines.writelines(message.hex() + "\n" for message in captured)

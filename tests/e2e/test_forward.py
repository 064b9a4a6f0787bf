"""`weron forward` between real processes over real WebRTC on loopback, through our signaler:
a transfer keeps its sha256, many connections at once, 2,000 short ones on one peer
connection, a port not exposed is refused, UDP, a hostile member, user mistakes, each
direction's backpressure on its own. (A serving peer killed mid-way is
tests/netlab/test_forward.py's, between two namespaces.)"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.forward import (
    COMMUNITY,
    ForwardProcess,
    echo_server,
    echo_transfer,
    wait_forwarding,
)
from tests.e2e.processes import SignalerProcess, free_port, free_udp_port, run_weron
from tests.e2e.test_hostile_member import ROOT
from tests.e2e.test_status import wait_for_peer
from tests.e2e.test_user_mistakes import error_line

StartForward = Callable[..., ForwardProcess]
MB = 1_000_000


@pytest.fixture
def forward_factory(tmp_path: Path, signaler: SignalerProcess) -> Iterator[StartForward]:
    started: list[ForwardProcess] = []

    def start(name: str, *args: str, **kwargs: str) -> ForwardProcess:
        member = ForwardProcess(signaler.ws_url, tmp_path, name, *args, **kwargs)
        started.append(member)
        return member

    yield start
    for member in started:
        member.stop(signal.SIGKILL)


def pair(
    forward_factory: StartForward, echo: int, *, backends: tuple[str, str] = ("libdatachannel",) * 2
) -> tuple[ForwardProcess, ForwardProcess, int]:
    """A member exposing ``echo`` and one listening on a free port for it; that port."""
    listen = free_port()
    server = forward_factory("server", "--expose", str(echo), backend=backends[0])
    client = forward_factory(
        "client", "--listen", f"127.0.0.1:{listen}", "--to", f"server:{echo}", backend=backends[1]
    )
    client.wait_connected("server")
    wait_forwarding(listen, "server", echo)
    return server, client, listen


@pytest.mark.parametrize(
    ("backends", "size"),
    [
        (("libdatachannel", "libdatachannel"), 50 * MB),
        (("aiortc", "libdatachannel"), 5 * MB),
        (("libdatachannel", "aiortc"), 5 * MB),
    ],
    ids=["libdatachannel", "aiortc-serves", "aiortc-listens"],
)
def test_a_transfer_arrives_with_the_same_sha256(
    forward_factory: StartForward, backends: tuple[str, str], size: int
) -> None:
    with echo_server() as echo:
        server, client, listen = pair(forward_factory, echo, backends=backends)
        sent, received = echo_transfer(listen, size, timeout=300)
        assert sent == received
        assert client.stop() == 0
        assert server.stop() == 0
    assert client.find("Stopped")[0]["forwarded"] >= 1


def test_fifty_concurrent_transfers(forward_factory: StartForward) -> None:
    with echo_server() as echo:
        server, _, listen = pair(forward_factory, echo)
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            results = list(pool.map(lambda _: echo_transfer(listen, 200_000), range(50)))
        assert all(sent == received for sent, received in results)
        assert not server.find("Refusing a forward channel")


def _short_echo(port: int, together: threading.Barrier | None = None) -> bool:
    """One short connection through the forwarder: a line sent and echoed, then (once all of
    ``together`` got theirs: so many streams at once) a half-close whose end comes back;
    whether the echo is the line and nothing followed it. A failure breaks ``together``."""
    line = os.urandom(8).hex().encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(line)
            echoed = b""
            while len(echoed) < len(line) and (data := connection.recv(100)):
                echoed += data
            if together is not None:
                together.wait()
            connection.shutdown(socket.SHUT_WR)
            while data := connection.recv(100):
                echoed += data
    except (OSError, threading.BrokenBarrierError):
        if together is not None:
            together.abort()
        return False
    return echoed == line


@pytest.mark.parametrize(
    "backends",
    [("libdatachannel", "libdatachannel"), ("aiortc", "libdatachannel")],
    ids=["libdatachannel", "aiortc-serves"],
)
def test_two_thousand_short_connections_in_bursts_wider_than_the_idle_pool(
    forward_factory: StartForward, backends: tuple[str, str]
) -> None:
    """A day of SSH or web traffic in a minute: bursts of 200 connections at once, then one
    after another. A peer connection has 512 channels per side (libdatachannel frees a closed
    one's stream only when the connection closes), and these connections are four times that:
    every channel is kept for the next connection, so 200 or so carry them all."""
    with echo_server() as echo:
        server, client, listen = pair(forward_factory, echo, backends=backends)
        done = 0
        with concurrent.futures.ThreadPoolExecutor(200) as pool:
            for _ in range(4):
                together = threading.Barrier(200, timeout=60)
                burst = [pool.submit(_short_echo, listen, together) for _ in range(200)]
                assert all(each.result() for each in burst), done
                done += 200
        while done < 2000:
            assert _short_echo(listen), done
            done += 1
        assert not server.find("Refusing a forward channel")
        assert not client.find("Cannot forward: unknown peer or peer gone")


@pytest.mark.parametrize("listening", ["libdatachannel", "aiortc"])
def test_connections_beyond_the_channels_of_a_peer_connection_fail_each_alone(
    forward_factory: StartForward, listening: str
) -> None:
    """A peer connection has 512 channels per side: of 530 connections open at once, those
    beyond fail each on its own, at once (reset, logged with the limit), the others are
    carried, and once they are over their channels carry the next connections. (An aiortc
    opener used to wait --timeout for a channel that never opened.)"""
    count = 530
    with echo_server() as echo:
        listen = free_port()
        server = forward_factory("server", "--expose", str(echo), "--max-connections", "1000")
        client = forward_factory(
            "client", "--listen", f"127.0.0.1:{listen}", "--to", f"server:{echo}",
            backend=listening,
        )  # fmt: skip
        client.wait_connected("server")
        wait_forwarding(listen, "server", echo)
        connections: list[socket.socket] = []
        answered = 0
        try:
            for number in range(count):
                connections.append(socket.create_connection(("127.0.0.1", listen), timeout=60))
                connections[-1].sendall(b"line %d" % number)
            for number, connection in enumerate(connections):
                with contextlib.suppress(OSError):
                    answered += connection.recv(100) == b"line %d" % number
        finally:
            for connection in connections:
                connection.close()
        assert 500 < answered < count
        refused = client.find("Cannot forward: no data channel left on the connection to the peer")
        assert len(refused) == count - answered
        assert "512 a side" in refused[0]["reason"]
        deadline = time.monotonic() + 30  # while the streams end, their channels are not free
        while not _short_echo(listen):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        for _ in range(50):
            assert _short_echo(listen)
        assert not server.find("Refusing a forward channel")


def test_a_port_not_exposed_is_refused(forward_factory: StartForward) -> None:
    closed = free_port()
    with echo_server() as echo:
        listen = free_port()
        server = forward_factory("server", "--expose", str(echo))
        client = forward_factory(
            "client",
            *("--listen", f"127.0.0.1:{listen}", "--to", f"server:{closed}"),
            *("--listen", f"127.0.0.1:{free_port()}", "--to", f"server:{echo}"),
        )
        client.wait_connected("server")
        with (
            pytest.raises(ConnectionResetError),  # a reset, never an echo nor a clean end
            socket.create_connection(("127.0.0.1", listen), timeout=60) as connection,
        ):
            connection.sendall(b"hello")
            connection.recv(10)
            connection.sendall(b"hello")
            connection.recv(10)
        refused = client.wait_for("Peer refused the connection")
        assert refused["code"] == "not_exposed" and refused["port"] == closed
        assert server.wait_for("Refusing a connection")["port"] == closed


def test_udp_datagrams_go_both_ways(forward_factory: StartForward) -> None:
    echo_port, listen = free_udp_port(), free_udp_port()
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", echo_port))
    echo.settimeout(1)
    forward_factory("server", "--expose", f"{echo_port}/udp")
    client = forward_factory(
        "client", "--listen", f"127.0.0.1:{listen}/udp", "--to", f"server:{echo_port}"
    )
    client.wait_connected("server")
    sources = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        answered: set[int] = set()
        deadline = time.monotonic() + 60
        while len(answered) < len(sources) and time.monotonic() < deadline:
            for number, source in enumerate(sources):
                if number not in answered:
                    source.sendto(f"ping {number}".encode(), ("127.0.0.1", listen))
            try:
                while True:  # the echo answers in upper case
                    data, address = echo.recvfrom(100)
                    echo.sendto(data.upper(), address)
            except TimeoutError:
                pass
            for number, source in enumerate(sources):
                source.setblocking(False)
                try:
                    data, _ = source.recvfrom(100)
                    assert data == f"PING {number}".encode()
                    answered.add(number)
                except BlockingIOError:
                    pass
        assert answered == {0, 1, 2}
    finally:
        for source in sources:
            source.close()
        echo.close()


def test_a_hostile_member_is_refused_and_the_forwarder_keeps_serving(
    forward_factory: StartForward, signaler: SignalerProcess, tmp_path: Path
) -> None:
    closed = free_port()
    with echo_server() as echo:
        server, _, listen = pair(forward_factory, echo)
        # pair() started the server without a low limit: start one that admits 10 at once.
        server.stop()
        server = forward_factory("server", "--expose", str(echo), "--max-connections", "10")
        wait_forwarding(listen, "server", echo, timeout=120)
        command = [
            sys.executable, "-m", "tests.e2e.hostile", "--raddr", signaler.ws_url,
            *COMMUNITY, "forward", "server", str(echo), str(closed),
        ]  # fmt: skip
        with (tmp_path / "hostile.log").open("wb") as log:
            hostile = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT
            )
        try:
            assert hostile.stdout is not None
            assert hostile.stdout.readline().strip() == "ready", (
                tmp_path / "hostile.log"
            ).read_text()
            server.wait_for("Refusing a connection", peer="mallory", port=closed)
            too_many = server.wait_for("Refusing a connection", peer="mallory", port=echo)
            assert "more than 10" in too_many["reason"]
            server.wait_for("Refusing a forward channel", peer="mallory")
            sent, received = echo_transfer(listen, MB)
            assert sent == received
            assert server.process.poll() is None
        finally:
            hostile.kill()
            hostile.wait()
        assert "Traceback" not in server.log_path.read_text()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "Error: missing names: set --names (e.g. --names homelab)"),
        (("--names", "a"), "Error: nothing to forward: set --expose"),
        (("--names", "a", "--expose", "22,22"), "Error: --expose '22': port 22/tcp twice"),
        (("--names", "a", "--listen", "127.0.0.1:1"), "Error: 1 --listen but 0 --to"),
        (("--names", "a", "--expose", "ssh"), "Error: bad --expose 'ssh': expected HOST:PORT"),
    ],
)
def test_user_mistakes_are_one_line(args: tuple[str, ...], expected: str) -> None:
    result = run_weron("forward", "--raddr", "ws://127.0.0.1:9/", *COMMUNITY, *args)
    assert error_line(result).startswith(expected)


def test_a_listen_address_in_use_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_weron(
            "forward", "--raddr", "ws://127.0.0.1:9/", *COMMUNITY, "--names", "a",
            "--listen", f"127.0.0.1:{port}", "--to", "b:22",
        )  # fmt: skip
    assert error_line(result).startswith(f"Error: cannot listen on 127.0.0.1:{port}/tcp")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_reader_that_does_not_read_stops_the_writer_and_nothing_is_lost(
    forward_factory: StartForward,
) -> None:
    """Backpressure end to end: the writer blocks while the far end does not read (what is in
    flight stays bounded), then everything arrives once it reads."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        target = listener.getsockname()[1]
        listen = free_port()
        server = forward_factory("server", "--expose", str(target))
        client = forward_factory(
            "client", "--listen", f"127.0.0.1:{listen}", "--to", f"server:{target}"
        )
        client.wait_connected("server")
        writer = socket.create_connection(("127.0.0.1", listen), timeout=60)
        reader, _ = listener.accept()
        chunk, written = bytes(1 << 16), 0
        writer.setblocking(False)
        stalled_since: float | None = None
        # Write until nothing more is taken for a while (the reader reads nothing).
        while written < 1_000_000_000:
            try:
                written += writer.send(chunk)
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 5:
                    break
                time.sleep(0.01)
        assert written < 300_000_000, f"{written} bytes taken while nobody read"
        for member in (server, client):
            assert _rss_mb(member.process.pid) < 800
        writer.setblocking(True)
        received = 0

        def read_all() -> None:
            nonlocal received
            while data := reader.recv(1 << 20):
                received += len(data)

        reading = threading.Thread(target=read_all, daemon=True)
        reading.start()
        writer.sendall(chunk)
        writer.shutdown(socket.SHUT_WR)
        reading.join(120)
        assert received == written + len(chunk)
        writer.close()
        reader.close()


def test_a_reader_that_does_not_read_never_stops_the_other_direction(
    forward_factory: StartForward,
) -> None:
    """The target sends 20 MB the local program does not read yet, while the local program
    uploads 20 MB that the target reads: the upload goes through (the peer's WINDOWs for it
    keep coming while the download waits), then the download arrives whole."""
    size = 20 * MB
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(60)
        target = listener.getsockname()[1]
        listen = free_port()
        forward_factory("server", "--expose", str(target))
        client = forward_factory(
            "client", "--listen", f"127.0.0.1:{listen}", "--to", f"server:{target}"
        )
        client.wait_connected("server")
        local = socket.create_connection(("127.0.0.1", listen), timeout=30)
        remote, _ = listener.accept()
        remote.settimeout(60)
        uploaded = 0

        def download() -> None:
            remote.sendall(bytes(size))
            remote.shutdown(socket.SHUT_WR)

        def count_upload() -> None:
            nonlocal uploaded
            while data := remote.recv(1 << 20):
                uploaded += len(data)

        threads = [threading.Thread(target=each, daemon=True) for each in (download, count_upload)]
        for thread in threads:
            thread.start()
        local.sendall(bytes(size))  # a stall of 30 s raises TimeoutError
        local.shutdown(socket.SHUT_WR)
        threads[1].join(60)
        assert uploaded == size
        downloaded = 0
        while data := local.recv(1 << 20):
            downloaded += len(data)
        assert downloaded == size
        threads[0].join(60)
        local.close()
        remote.close()


@pytest.mark.parametrize(
    "backends",
    [("libdatachannel", "libdatachannel"), ("libdatachannel", "aiortc")],
    ids=["libdatachannel", "aiortc-listens"],
)
def test_a_connection_made_while_a_killed_member_restarts_reaches_the_new_one(
    forward_factory: StartForward, backends: tuple[str, str]
) -> None:
    """The exposing member is killed (SIGKILL) and started again under its name. A connection
    made meanwhile, once the old one is known to be silent, waits for the new one: it went to
    the dead connection (an idle channel kept for the name, or the name still the old
    member's) and was reset when that connection was given up, --timeout later."""
    with echo_server() as echo:
        server, client, listen = pair(forward_factory, echo, backends=backends)  # one idle
        server.stop(signal.SIGKILL)
        client.wait_for("Peer stopped answering")
        again = forward_factory("server", "--expose", str(echo), backend=backends[0])
        again.wait_for("Connected to peer", id="client")  # its claim comes --timeout later
        sent, received = echo_transfer(listen, 100_000)
        assert sent == received
        sent, received = echo_transfer(listen, 100_000)  # and the next one
        assert sent == received


def test_a_connection_to_an_unknown_name_is_reset_with_a_warning(
    forward_factory: StartForward,
) -> None:
    listen = free_port()
    client = forward_factory("client", "--listen", f"127.0.0.1:{listen}", "--to", "nobody:22")
    client.wait_for("Connected to signaler", id="client")
    with (
        pytest.raises(ConnectionResetError),
        socket.create_connection(("127.0.0.1", listen), timeout=120) as connection,
    ):
        connection.recv(10)  # reset once no member named nobody came (2 x --timeout + --kicks)
    warning = client.wait_for("Cannot forward: unknown peer or peer gone")
    assert warning["peer"] == "nobody" and "no connected member is named" in warning["reason"]
    assert client.process.poll() is None


def test_weron_status_shows_the_forwarding_peer_and_its_bytes(
    forward_factory: StartForward, runtime: Path
) -> None:
    with echo_server() as echo:
        _, client, listen = pair(forward_factory, echo)
        sent, received = echo_transfer(listen, 5 * MB)
        assert sent == received
        peer = wait_for_peer(
            runtime,
            client.process.pid,
            lambda peer: peer["name"] == "server" and peer["bytes_sent"] >= 5 * MB,
        )
        assert peer["state"] == "connected"
        # The channels it opened, kept free for the next connection, are listed too.
        assert any(label.startswith("weron/forward/tcp/") for label in peer["channels"])

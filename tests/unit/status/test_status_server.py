"""The control socket and metrics endpoint in this process, with real sockets: answers,
refusals of malformed requests (with a log line), stale sockets, a taken metrics address."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from weron.status import client, paths
from weron.status.model import ProcessStatus
from weron.status.observe import MetricsAddressError, Observation, observed
from weron.status.server import ControlServer, MetricsServer

pytestmark = pytest.mark.usefixtures("restore_logging")


def snapshot() -> ProcessStatus:
    return ProcessStatus(os.getpid(), "chat", "room", "id", "me", ())


@pytest.fixture
def logs() -> io.StringIO:
    import weron.log

    stream = io.StringIO()
    weron.log.configure(5, stream=stream)
    return stream


async def ask(path: Path, request: bytes, *, close: bool = False) -> dict[str, object]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(request)
    if close:
        writer.write_eof()
    await writer.drain()
    reply = await reader.readline()
    writer.close()
    document: dict[str, object] = json.loads(reply)
    return document


async def test_answers_and_refusals(runtime: Path, logs: io.StringIO) -> None:
    path = paths.ensure_runtime_dir(runtime / "weron") / paths.socket_name(1, "chat", "room")
    path.touch()  # left by an earlier process with our pid
    server = ControlServer(path, snapshot)
    await server.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert (await client.query(path)) == snapshot()
        refused = await ask(path, b"x" * 5000 + b"\n")
        assert refused["ok"] is False and "longer than" in str(refused["error"])
        assert (await ask(path, b'{"get": "x"}\n'))["ok"] is False
        assert (await ask(path, b"{", close=True))["error"] == "request not ended by a newline"
        assert (await client.query(path)) == snapshot()  # still answering
    finally:
        await server.close()
    assert not path.exists()
    assert logs.getvalue().count('"message":"Malformed status request"') == 3


async def test_a_silent_client_gets_an_error_after_the_deadline(
    runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("weron.status.server._READ_DEADLINE", 0.1)
    path = paths.ensure_runtime_dir(runtime / "weron") / "1.chat.room.sock"
    server = ControlServer(path, snapshot)
    await server.start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
        reply = json.loads(await reader.readline())
        writer.close()
        assert reply["error"] == "no request within the deadline"
    finally:
        await server.close()


async def test_stale_sockets_are_removed_and_live_ones_kept(runtime: Path) -> None:
    directory = paths.ensure_runtime_dir(runtime / "weron")
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    stale = directory / paths.socket_name(dead.pid, "chat", "room")
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(str(stale))  # never listening: refused, and its pid is gone
    (directory / "unrelated.txt").touch()
    live = ControlServer(directory / paths.socket_name(os.getpid(), "chat", "room"), snapshot)
    await live.start()
    try:
        found = client.find_sockets(directory)
        assert [item.pid for item in found] == sorted([dead.pid, os.getpid()])
        assert await client.query_all(found) == [snapshot()]
        assert not stale.exists() and (directory / "unrelated.txt").exists()
    finally:
        await live.close()
    assert client.find_sockets(runtime / "missing") == []


@contextlib.contextmanager
def zombie() -> Iterator[int]:
    """The pid of a child killed with SIGKILL and not reaped (reaped on the way out)."""
    killed = subprocess.Popen(["sleep", "60"])
    try:
        killed.kill()
        proc_stat = Path(f"/proc/{killed.pid}/stat")
        while proc_stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":  # no wait(): not reaped
            time.sleep(0.01)
        yield killed.pid
    finally:
        killed.wait()


async def test_the_socket_of_a_killed_process_not_yet_reaped_is_removed(runtime: Path) -> None:
    """A process killed with SIGKILL stays a zombie until its parent reaps it; one whose
    parent never does (a container without an init) must not keep its socket for ever."""
    directory = paths.ensure_runtime_dir(runtime / "weron")
    with zombie() as pid:
        stale = directory / paths.socket_name(pid, "forward", "room")
        with socket.socket(socket.AF_UNIX) as bound:
            bound.bind(str(stale))  # its listening socket died with it: refused
        assert await client.query_all(client.find_sockets(directory)) == []
        assert not stale.exists()


async def test_metrics_endpoint(runtime: Path) -> None:
    server = MetricsServer("127.0.0.1", 0, snapshot)
    await server.start()
    try:
        responses = {}
        for request, status in [
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"200"),
            (b"GET / HTTP/1.1\r\n\r\n", b"404"),
            (b"GET /metrics HTTP/1.1\r\n", b"400"),  # cut short
        ]:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request)
            writer.write_eof()
            responses[status] = await reader.read()
            writer.close()
            assert responses[status].split()[1] == status, responses[status]
        assert b"text/plain; version=0.0.4" in responses[b"200"]
        assert b"# TYPE weron_peers gauge\n" in responses[b"200"]
    finally:
        await server.close()


async def test_observed_runs_the_app_with_its_socket(runtime: Path) -> None:
    observation = Observation("utility latency", "room", runtime_dir=runtime / "weron")

    async def app() -> str:
        (found,) = client.find_sockets(runtime / "weron")
        status = await client.query(found.path)
        assert status.command == "utility latency" and status.pid == os.getpid()
        return "done"

    assert await observed(observation, app()) == "done"
    assert client.find_sockets(runtime / "weron") == []


async def test_observed_without_a_usable_runtime_dir_still_runs(
    runtime: Path, logs: io.StringIO
) -> None:
    (runtime / "weron").write_text("a file where the directory should be")
    observation = Observation("chat", "room", runtime_dir=runtime / "weron")

    async def app() -> int:
        return 7

    assert await observed(observation, app()) == 7
    assert "No control socket" in logs.getvalue()


async def test_a_taken_metrics_address_is_an_error_before_the_app_runs(runtime: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        observation = Observation(
            "chat", "room", metrics_addr=("127.0.0.1", port), runtime_dir=runtime / "weron"
        )
        ran = False

        async def app() -> None:
            nonlocal ran
            ran = True

        with pytest.raises(MetricsAddressError, match=f"127.0.0.1:{port}"):
            await observed(observation, app())
        assert not ran


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition``, as long as a loaded machine takes (a hang fails at 30 s)."""
    async with asyncio.timeout(30):
        while not condition():
            await asyncio.sleep(0.01)


async def test_metrics_serves_a_bounded_number_of_clients_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("weron.status.server._METRICS_CLIENTS", 2)
    server = MetricsServer("127.0.0.1", 0, snapshot)
    await server.start()
    try:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        await until(lambda: server._clients == 2)  # both served, waiting for their request
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await reader.read() == b""  # a third is closed at once
        writer.close()
        for _, idle_writer in idle:
            idle_writer.close()
        await until(lambda: server._clients == 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /metrics HTTP/1.0\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.0 200 OK")  # room again
        writer.close()
    finally:
        await server.close()


async def test_clients_cut_short_by_the_way_out_print_no_traceback(runtime: Path) -> None:
    """Ctrl-C while a status or metrics client waits: asyncio.run cancels its handler, and
    asyncio before 3.12.x (the CLI's 3.12.1, 3.11) asks a cancelled handler task for its
    exception, logging "Exception in callback ... CancelledError" with a traceback."""
    reported: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context))
    path = paths.ensure_runtime_dir(runtime / "weron") / paths.socket_name(2, "chat", "room")
    control, metrics = ControlServer(path, snapshot), MetricsServer("127.0.0.1", 0, snapshot)
    await control.start()
    await metrics.start()
    before = asyncio.all_tasks()
    clients = [
        await asyncio.open_unix_connection(str(path)),
        await asyncio.open_connection("127.0.0.1", metrics.port),
    ]
    await until(lambda: len(asyncio.all_tasks() - before) == 2)  # both handlers wait
    handlers = asyncio.all_tasks() - before
    for handler in handlers:
        handler.cancel()
    await asyncio.wait(handlers)
    for reader, writer in clients:
        assert await reader.read() == b""  # closed, not left hanging
        writer.close()
    await control.close()
    await metrics.close()
    await asyncio.sleep(0.05)  # the handler tasks' done callbacks
    assert reported == []

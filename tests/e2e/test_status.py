"""`weron status` against real chat processes on loopback, and its control socket under
attack: another user, oversized, malformed and silent requests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.chat import ChatProcess
from tests.e2e.processes import SignalerProcess, free_port, run_weron
from tests.e2e.test_hostile_member import hostile
from tests.e2e.test_utilities import interrupt_after, server, utility

pytestmark = pytest.mark.e2e

StartChat = Callable[..., ChatProcess]
PRIMARY = "weron/chat/primary"
ANOTHER_USER_ASKS = """
import os, socket, sys
os.setgid(65534)
os.setuid(65534)
client = socket.socket(socket.AF_UNIX)
client.connect(sys.argv[1])
try:
    client.sendall(b'{"get": "status"}\\n')
except BrokenPipeError:
    pass  # closed on us already
print(repr(client.recv(65536)))
"""


def status(runtime: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_weron("status", *args, env={"XDG_RUNTIME_DIR": str(runtime)})


def status_json(runtime: Path, *args: str) -> list[dict[str, Any]]:
    result = status(runtime, "--json", *args)
    assert result.returncode == 0, result.stderr
    processes: list[dict[str, Any]] = json.loads(result.stdout)["processes"]
    return processes


def wait_for_peer(
    runtime: Path, pid: int, condition: Callable[[dict[str, Any]], bool], timeout: float = 60.0
) -> dict[str, Any]:
    """The first peer of process ``pid`` for which ``condition`` holds."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = status_json(runtime, "--process", str(pid))
        peers: list[dict[str, Any]] = seen[0]["peers"] if seen else []
        for peer in peers:
            if condition(peer):
                return peer
        time.sleep(0.5)
    raise AssertionError(f"no such peer within {timeout}s: {seen}")


def two_chats(
    signaler: SignalerProcess, chat_factory: StartChat, backend: str
) -> tuple[ChatProcess, ...]:
    first = chat_factory(signaler.ws_url, names="alice", backend=backend)
    second = chat_factory(signaler.ws_url, names="bob", backend=backend)
    first.wait_for(f"+bob@{PRIMARY}", timeout=60)
    second.wait_for(f"+alice@{PRIMARY}", timeout=60)
    return first, second


def the_socket(runtime: Path, pid: int) -> Path:
    sockets = [path for path in (runtime / "weron").iterdir() if path.name.startswith(f"{pid}.")]
    assert len(sockets) == 1, sockets
    return sockets[0]


@pytest.mark.parametrize("backend", ["libdatachannel", "aiortc"])
def test_status_lists_the_other_chat_peer_with_growing_bytes(
    runtime: Path, signaler: SignalerProcess, chat_factory: StartChat, backend: str
) -> None:
    first, second = two_chats(signaler, chat_factory, backend)
    pid = first.process.pid
    peer = wait_for_peer(runtime, pid, lambda p: p["name"] == "bob" and p["state"] == "connected")
    # prflx: a check from the peer arrived before its trickled candidate (it often does here)
    assert peer["path"] in ("host", "prflx") and peer["direct"] is True, peer
    assert peer["remote_address"] and peer["local_address"]
    assert PRIMARY in peer["channels"]
    assert peer["rtt"] is None or peer["rtt"] >= 0
    assert peer["connected_since"] <= time.time()
    before = peer["bytes_sent"]
    for number in range(20):
        first.say(f"message {number} " + "x" * 1000)
    second.wait_for(f"alice@{PRIMARY}: message 19")
    wait_for_peer(runtime, pid, lambda p: p["name"] == "bob" and p["bytes_sent"] >= before + 20_000)
    (process,) = [item for item in status_json(runtime) if item["pid"] == pid]
    assert process["command"] == "chat" and process["community"] == "chatroom"
    assert process["name"] == "alice"
    assert {item["pid"] for item in status_json(runtime)} == {pid, second.process.pid}

    table = status(runtime)
    assert table.returncode == 0, table.stderr
    assert f"chat (pid {pid}) in 'chatroom' as alice" in table.stdout
    assert "PEER" in table.stdout and "direct (" in table.stdout
    assert any(line.split()[:2] == ["bob", "connected"] for line in table.stdout.splitlines())

    path = the_socket(runtime, pid)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((runtime / "weron").stat().st_mode) == 0o700
    assert first.stop() == 0
    assert not path.exists()  # removed on the way out


def test_no_process_running(runtime: Path) -> None:
    result = status(runtime)
    assert result.returncode == 1
    assert "no weron peer process is running" in result.stderr
    assert "Traceback" not in result.stderr
    assert status_json(runtime) == []
    missing = status(runtime, "--process", "999999")
    assert missing.returncode == 1 and "no weron peer process with pid 999999" in missing.stderr


def test_a_stale_socket_is_removed(runtime: Path) -> None:
    """A process killed with -9 leaves its socket: nobody answers there, and it goes."""
    directory = runtime / "weron"
    directory.mkdir(mode=0o700)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    path = directory / f"{gone.stdout.strip()}.chat.room.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.close()  # bound, never listening: connections are refused
    assert status_json(runtime) == []
    assert not path.exists()


def exchange(path: Path, request: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(30)
        client.connect(str(path))
        client.sendall(request)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            reply += chunk
    document: dict[str, Any] = json.loads(reply)
    return document


def test_the_control_socket_is_not_a_way_in(
    runtime: Path, signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    """A hostile local client: too long, not JSON, unknown request, no newline, another user;
    each gets an error (or nothing), a log line, and the process goes on answering."""
    chat = chat_factory(signaler.ws_url, names="carol")
    chat.name(timeout=60)
    deadline = time.monotonic() + 30
    while not list((runtime / "weron").glob(f"{chat.process.pid}.*")):
        assert time.monotonic() < deadline, "no control socket"
        time.sleep(0.2)
    path = the_socket(runtime, chat.process.pid)

    too_long = exchange(path, b'{"get": "' + b"a" * 5000 + b'"}\n')
    assert too_long["ok"] is False and "longer than" in too_long["error"]
    garbage = exchange(path, b"\xff\xfe not json\n")
    assert garbage["ok"] is False and garbage["error"].startswith("request is not JSON (")
    unknown = exchange(path, b'{"get": "secrets"}\n')
    assert unknown["ok"] is False and "unknown request" in unknown["error"]
    not_object = exchange(path, b"[1, 2]\n")
    assert not_object["ok"] is False
    with socket.socket(socket.AF_UNIX) as half:  # a request cut short
        half.connect(str(path))
        half.sendall(b'{"get": "sta')
        half.shutdown(socket.SHUT_WR)
        assert json.loads(half.recv(65536))["error"] == "request not ended by a newline"
    chat.wait_for_log("Malformed status request", count=5)

    if os.getuid() == 0:  # another user cannot even reach it (directory 0700, socket 0600)
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "import os, socket, sys; os.setgid(65534); os.setuid(65534); "
                "s = socket.socket(socket.AF_UNIX)\n"
                "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    print('refused')",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert other.stdout.strip() == "refused", other.stderr
        # Past the file modes (opened up here on purpose: a hard link in a directory anybody
        # can enter, and mode 0666), the process checks the uid itself.
        opened = Path(tempfile.mkdtemp(prefix="weron-status-"))
        try:
            opened.chmod(0o755)
            os.link(path, opened / "s.sock")
            path.chmod(0o666)
            past = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    ANOTHER_USER_ASKS,
                    str(opened / "s.sock"),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            path.chmod(0o600)
            shutil.rmtree(opened)
        assert past.stdout.strip() == "b''", past.stderr  # closed without a word
        chat.wait_for_log("Refusing a status client of another user")

    still = exchange(path, b'{"get": "status"}\n')
    assert still["ok"] is True and still["status"]["name"] == "carol"
    assert chat.process.poll() is None
    assert chat.stop() == 0


def test_metrics_addr_serves_the_peer_figures(
    runtime: Path, signaler: SignalerProcess, chat_factory: StartChat
) -> None:
    port = free_port()
    first = chat_factory(signaler.ws_url, "--metrics-addr", f"127.0.0.1:{port}", names="alice")
    chat_factory(signaler.ws_url, names="bob")
    first.wait_for(f"+bob@{PRIMARY}", timeout=60)
    deadline = time.monotonic() + 30
    text = ""
    while "weron_peer_connected{peer=" not in text or 'name="bob"' not in text:
        assert time.monotonic() < deadline, text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = response.read().decode()
        time.sleep(0.5)
    assert "# TYPE weron_peer_sent_bytes_total counter" in text
    assert 'path="relay"} 0' in text
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=30)
    assert missing.value.code == 404


def test_metrics_addr_taken_is_one_clear_error(runtime: Path, signaler: SignalerProcess) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_weron(
            "utility",
            "latency",
            "--raddr",
            signaler.ws_url,
            "--community",
            "c",
            "--password",
            "p",
            "--key",
            "k",
            "--ice",
            "",
            "--metrics-addr",
            f"127.0.0.1:{port}",
            env={"XDG_RUNTIME_DIR": str(runtime)},
        )
    assert result.returncode == 1
    assert f"cannot listen on --metrics-addr 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_hostile_members_name_cannot_take_over_the_terminal(
    runtime: Path, signaler: SignalerProcess, chat_factory: StartChat, tmp_path: Path
) -> None:
    """A member names itself with escape sequences and thousands of characters: `weron
    status` shows it escaped and cut, the JSON carries it exactly, and nothing breaks."""
    evil = "\x1b[2J\x1b]0;pwned\x07" + "z" * 5000
    chat = chat_factory(signaler.ws_url, names="honest")
    chat.name(timeout=60)
    with hostile(signaler, tmp_path, "claim", evil):
        pid = chat.process.pid
        wait_for_peer(runtime, pid, lambda p: p["name"] == evil)
        table = status(runtime)
        assert table.returncode == 0, table.stderr
        assert "\x1b" not in table.stdout and "\x07" not in table.stdout
        assert "\\x1b[2J" in table.stdout
        assert max(len(line) for line in table.stdout.splitlines()) < 400
    assert chat.process.poll() is None
    assert chat.stop() == 0


def test_watch_refreshes_until_ctrl_c(runtime: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    watching = subprocess.Popen(
        [sys.executable, "-m", "weron", "status", "--watch", "--json", "--interval", "0.2s"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watching.stdout is not None
    for _ in range(3):  # a line per refresh
        assert json.loads(watching.stdout.readline()) == {"processes": []}
    watching.send_signal(signal.SIGINT)
    _, errors = watching.communicate(timeout=30)
    assert watching.returncode == 0
    assert "Traceback" not in errors


def test_a_throughput_server_is_seen_by_socket_path(
    runtime: Path, signaler: SignalerProcess
) -> None:
    """The utilities go through the same place: a throughput server, asked by its socket's
    path, lists the client and the bytes it received."""
    batch = ("--packet-count", "20")  # 1 MB, acknowledged by the server
    with server(signaler, "throughput", *batch, backend="libdatachannel") as serving:
        client = utility(signaler, "throughput", *batch, backend="libdatachannel")
        try:
            path = None
            deadline = time.monotonic() + 30
            while path is None:
                assert time.monotonic() < deadline, "no control socket"
                found = list((runtime / "weron").glob(f"{serving.pid}.utility-throughput.*"))
                path = found[0] if found else None
                time.sleep(0.2)
            peer = wait_for_peer(
                runtime,
                serving.pid,
                lambda p: p["state"] == "connected" and (p["bytes_received"] or 0) > 2_000_000,
            )
            assert peer["direct"] is True
            (process,) = status_json(runtime, "--process", str(path))
            assert process["command"] == "utility throughput"
        finally:
            interrupt_after(client, 0)

"""The examples run as documented."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.processes import SignalerProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ECHO = EXAMPLES / "echo.py"


def example(name: str, signaler: SignalerProcess, community: str, *args: str) -> list[str]:
    """The command line of ``examples/<name>`` joining ``community`` on ``signaler``."""
    return [
        sys.executable, str(EXAMPLES / name), "--raddr", signaler.ws_url,
        "--community", community, "--password", "pw", "--key", "k", *args,
    ]  # fmt: skip


def test_echo_example_greets_every_peer(signaler: SignalerProcess, tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(ECHO),
        "--raddr",
        signaler.ws_url,
        "--community",
        "echo",
        "--password",
        "pw",
        "--key",
        "k",
    ]
    outputs = [tmp_path / "first.out", tmp_path / "second.out"]
    processes = []
    for output in outputs:
        with output.open("wb") as sink:
            processes.append(subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            texts = [output.read_text() for output in outputs]
            if all(text.count("Hello!") >= 2 for text in texts):
                break
            time.sleep(0.2)
        for text in texts:
            assert "Connected to signaler" in text
            assert "Connected to peer" in text and "weron/echo/primary" in text
            assert text.count("Hello!") >= 2, text
        processes[1].kill()
        deadline = time.monotonic() + 30
        while "Disconnected from peer" not in outputs[0].read_text():
            assert time.monotonic() < deadline, outputs[0].read_text()
            time.sleep(0.2)
    finally:
        for process in processes:
            process.kill()
            process.wait()


def test_latency_probe_example_times_round_trips_to_the_echoing_peer(
    signaler: SignalerProcess, tmp_path: Path
) -> None:
    server_output = tmp_path / "server.out"
    with server_output.open("wb") as sink:
        server = subprocess.Popen(
            example("latency_probe.py", signaler, "probe", "--serve"),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        probe = subprocess.run(
            example("latency_probe.py", signaler, "probe", "--count", "5", "--pause", "0.05"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.kill()
        server.wait()
    assert probe.returncode == 0, probe.stdout + probe.stderr
    lines = probe.stdout.splitlines()
    assert lines[0].startswith("Connected to signaler as")
    assert sum(" B to " in line and " and back in " in line for line in lines) == 5
    assert "5 round trips to" in lines[-1] and "median" in lines[-1], probe.stdout
    assert "Echoing for" in server_output.read_text()


def test_file_transfer_example_delivers_a_file_whose_checksum_matches(
    signaler: SignalerProcess, tmp_path: Path
) -> None:
    original = tmp_path / "data.bin"
    original.write_bytes(os.urandom(300_000))  # several chunks
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    common = ("--timeout", "2")
    receive = example("file_transfer.py", signaler, "files", "--name", "alice", *common,
                      "receive", str(inbox), "--once")  # fmt: skip
    send = example("file_transfer.py", signaler, "files", "--name", "bob", *common,
                   "send", str(original), "--to", "alice")  # fmt: skip
    receiver_output = tmp_path / "receiver.out"
    with receiver_output.open("wb") as sink:
        receiver = subprocess.Popen(receive, stdout=sink, stderr=subprocess.STDOUT)
    try:
        sender = subprocess.run(send, capture_output=True, text=True, timeout=120, check=False)
        assert receiver.wait(timeout=60) == 0, receiver_output.read_text()
    finally:
        receiver.kill()
        receiver.wait()
    assert sender.returncode == 0, sender.stdout + sender.stderr
    assert "Sent data.bin (300000 B, sha256" in sender.stdout and sender.stdout.endswith(": ok\n")
    assert "Received data.bin (300000 B) from bob: sha256 ok" in receiver_output.read_text()
    assert (inbox / "data.bin").read_bytes() == original.read_bytes()
    assert sorted(path.name for path in inbox.iterdir()) == ["data.bin"]  # no partial file left

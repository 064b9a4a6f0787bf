"""The examples run as documented."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.processes import SignalerProcess

ECHO = Path(__file__).resolve().parents[2] / "examples" / "echo.py"


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

"""Real `weron` processes for end-to-end tests: start, wait until ready, read logs, stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from weron.webrtc.backends import libdatachannel_problem

WERON = [sys.executable, "-m", "weron"]


def skip_unless_available(backend: str) -> None:
    """Skip the test where this Python cannot run ``backend`` (libdatachannel-py has wheels for
    CPython 3.12+ only): the 3.11 run of the chat and utility tests is aiortc only."""
    problem = libdatachannel_problem() if backend == "libdatachannel" else None
    if problem:
        pytest.skip(f"libdatachannel backend: {problem}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def json_records(log_path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a process's log; the others (a line cut short by a kill, a traceback)
    are passed over."""
    records = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


@dataclass
class SignalerProcess:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def join_url(self, community: str, password: str) -> str:
        return f"{self.ws_url}?community={community}&password={password}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        return json_records(self.log_path)

    def messages(self) -> list[str]:
        return [str(record.get("message")) for record in self.log_records()]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_signaler(
    directory: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None
) -> SignalerProcess:
    port = port or free_port()
    log_path = directory / f"signaler-{port}-{time.monotonic_ns()}.log"
    command = [*WERON, "signaler", "--laddr", f"127.0.0.1:{port}", *args]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("WERON_", "API_"))}
    # Tests open hundreds of connections from one address on purpose; the tests of the
    # per-source cap set --max-source-connections, which wins over this.
    full_env["WERON_MAX_SOURCE_CONNECTIONS"] = "0"
    full_env.update(env or {})
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=full_env)
    signaler = SignalerProcess(port, process, log_path, list(args))
    try:
        wait_for_port(port, process)
    except Exception:
        signaler.stop(signal.SIGKILL)
        raise RuntimeError(f"signaler did not start:\n{signaler.logs()}") from None
    return signaler


def run_weron(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("WERON_", "API_"))}
    full_env.update(env or {})
    return subprocess.run(
        [*WERON, *args], capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )

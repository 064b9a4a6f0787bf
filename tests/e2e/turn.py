"""A real coturn TURN server on loopback for the --force-relay tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.processes import free_port

TURN_USER, TURN_PASSWORD = "lab", "labpass"


@contextmanager
def coturn(log_dir: Path) -> Iterator[str]:
    """Yield the ``--ice`` entry of a running coturn; stop it afterwards."""
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.skip("coturn is not installed (Debian package coturn; ./dev.sh test installs it)")
    port = free_port()
    relay_low = 49152 + port % 10000
    log_path = log_dir / f"coturn-{port}.log"
    command = [
        binary,
        "-n",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "-L",
        "127.0.0.1",
        "--listening-port",
        str(port),
        "--relay-ip",
        "127.0.0.1",
        "--min-port",
        str(relay_low),
        "--max-port",
        str(relay_low + 50),
        "--lt-cred-mech",
        "--user",
        f"{TURN_USER}:{TURN_PASSWORD}",
        "--realm",
        "weron.test",
        "--fingerprint",
        "--allow-loopback-peers",
        "--log-file",
        str(log_path),
        "--simple-log",
        "--pidfile",
        str(log_dir / f"coturn-{port}.pid"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        time.sleep(0.5)  # UDP: nothing to poll; coturn binds within milliseconds
        if process.poll() is not None:
            raise RuntimeError(f"coturn exited with {process.returncode}")
        yield f"{TURN_USER}:{TURN_PASSWORD}@turn:127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""A real coturn TURN server on loopback for the --force-relay tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from netlab.coturn import TURN_PASSWORD, TURN_USER, coturn_argv
from tests.e2e.processes import free_port


@contextmanager
def coturn(log_dir: Path, listen: tuple[str, ...] = ("127.0.0.1",)) -> Iterator[str]:
    """Yield the ``--ice`` entry of a running coturn; stop it afterwards."""
    if shutil.which("turnserver") is None:
        pytest.skip("coturn is not installed (Debian package coturn; ./dev.sh test installs it)")
    port = free_port()
    command = coturn_argv(list(listen), port, listen[0], log_dir, 49152 + port % 10000)
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

"""A real coturn TURN server on loopback for the --force-relay tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from netlab.coturn import TURN_PASSWORD, TURN_USER, coturn_argv
from tests.e2e.processes import free_port


def _wait_until_answering(process: subprocess.Popen[bytes], server: tuple[str, int]) -> None:
    """Until coturn answers a STUN binding request at ``server``: on a loaded machine it
    binds later than the first request of a test would come (which then timed out)."""
    request = struct.pack(">HHI", 0x0001, 0, 0x2112A442) + os.urandom(12)
    deadline = time.monotonic() + 15
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.1)
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"coturn exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"coturn did not answer at {server[0]}:{server[1]}")
            with contextlib.suppress(OSError):  # refused (not bound yet) or timed out
                probe.sendto(request, server)
                if probe.recv(2048)[8:20] == request[8:20]:
                    return


@contextmanager
def coturn(log_dir: Path, listen: tuple[str, ...] = ("127.0.0.1",)) -> Iterator[str]:
    """Yield the ``--ice`` entry of a running coturn; stop it afterwards."""
    if shutil.which("turnserver") is None:
        pytest.skip("coturn is not installed (Debian package coturn; ./dev.sh test installs it)")
    port = free_port()
    command = coturn_argv(list(listen), port, listen[0], log_dir, 49152 + port % 10000)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for address in listen:
            _wait_until_answering(process, (address, port))
        yield f"{TURN_USER}:{TURN_PASSWORD}@turn:127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

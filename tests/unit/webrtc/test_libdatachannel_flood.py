"""No deadlock between the GIL and libdatachannel's threads: hundreds of real connections
offered, answered, used and closed at once (tests/unit/webrtc/flood.py), in a subprocess, as a
deadlock freezes a process for good."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("libdatachannel", reason="needs the libdatachannel-py wheel")

ROOT = Path(__file__).parents[3]
HANG = 60  # seconds: the flood takes about 5 here; a deadlock never ends


def test_a_flood_of_connections_never_deadlocks() -> None:
    command = [sys.executable, "-m", "tests.unit.webrtc.flood"]
    try:
        done = subprocess.run(
            command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=HANG
        )
    except subprocess.TimeoutExpired as exc:
        steps = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"the flood froze (a deadlock?) after: {steps.splitlines()[-1:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "done"

"""At exit, the libdatachannel backend waits for the closes under way only their grace in a
console script (which recorded its exit status), then ends the process with that status; a
library user's program waits for them. A close here is a fake that blocks (no engine needed:
the registry and the exit hook are what is tested), in a process of its own."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from weron import exit_status

pytest.importorskip("libdatachannel", reason="needs the libdatachannel-py wheel")

SCRIPT = """
import atexit, sys, time
atexit.register(print, "later hook")  # registered first: runs after the backend's
from weron import exit_status
from weron.webrtc import libdatachannel_backend as backend
backend.CLOSE_GRACE = 0.2

class Blocking:
    def close(self):
        time.sleep({blocks})
        print("closed")

backend._start_close(Blocking(), lambda: None)
print("bye", end="")  # buffered: it must reach the pipe all the same
if {console}:
    exit_status.record(3)  # as weron.cli.entry does
sys.exit(3)
"""


def run(blocks: float, *, console: bool) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(blocks=blocks, console=console)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, time.monotonic() - started


def test_a_console_script_ends_with_its_status_once_the_grace_is_over() -> None:
    result, took = run(30, console=True)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "bye"  # flushed; the close never finished, no later hook ran
    assert took < 20  # not the close's 30 s (the import takes a moment)
    assert "Traceback" not in result.stderr


def test_a_close_done_within_the_grace_lets_the_process_end_as_usual() -> None:
    result, _ = run(0.1, console=True)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "bye" + "closed\nlater hook\n"


def test_a_library_users_program_waits_for_its_closes() -> None:
    result, took = run(1, console=False)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "bye" + "closed\nlater hook\n"
    assert took > 1


def test_the_console_entry_point_records_its_exit_status(monkeypatch: pytest.MonkeyPatch) -> None:
    from weron.cli import entry

    monkeypatch.setattr(exit_status, "_status", [])  # this process's own exit is not affected
    with pytest.raises(SystemExit):
        entry._exiting(lambda: sys.exit(4))
    assert exit_status.recorded() == 4
    with pytest.raises(SystemExit):
        entry._exiting(sys.exit)
    assert exit_status.recorded() == 0
    with pytest.raises(SystemExit):
        entry._exiting(lambda: sys.exit("a message"))
    assert exit_status.recorded() == 1

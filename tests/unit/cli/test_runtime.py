"""The signals that end a command cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

SCRIPT = """
import asyncio, signal, sys
from weron.cli.runtime import run_app

if sys.argv[1] == "ignored":  # as nohup leaves it
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

async def main():
    print("ready", flush=True)
    await asyncio.sleep(30)

run_app(main())
print("ended cleanly", flush=True)
"""


def run_and_hang_up(*, ignored: bool) -> subprocess.CompletedProcess[str]:
    """The script, sent SIGHUP once it runs; as under ``nohup`` when ``ignored``."""
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "ignored" if ignored else "default"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    os.kill(process.pid, signal.SIGHUP)
    try:
        out, err = process.communicate(timeout=1 if ignored else 15)
    except subprocess.TimeoutExpired:
        process.terminate()  # SIGTERM: ends it cleanly too
        out, err = process.communicate(timeout=15)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_sighup_ends_an_app_cleanly_unless_it_is_ignored() -> None:
    hung_up = run_and_hang_up(ignored=False)
    assert (hung_up.returncode, hung_up.stdout) == (0, "ended cleanly\n"), hung_up.stderr
    under_nohup = run_and_hang_up(ignored=True)  # went on until SIGTERM
    assert (under_nohup.returncode, under_nohup.stdout) == (0, "ended cleanly\n")

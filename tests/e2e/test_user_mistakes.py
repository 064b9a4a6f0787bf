"""User mistakes, made as a user makes them (a real process): one clear line, never a
traceback; and flags win over the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.processes import WERON, free_port, run_weron, start_signaler

GONET = [sys.executable, "-m", "weron.cli.gonet"]
JOIN = ("--community", "c", "--password", "p", "--key", "k")


def run_gonet(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WERON_")}
    return subprocess.run(
        [*GONET, *args], capture_output=True, text=True, env=env, timeout=30, check=False
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a failed command (click's usage lines around it aside)."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    return line


def test_an_identity_file_in_a_missing_directory() -> None:
    result = run_gonet("--identity", "/nonexistent/dir/k", "lobby/room/key")
    assert result.stderr == (
        "Error: cannot create identity file /nonexistent/dir/k: the directory /nonexistent/dir "
        "does not exist\n"
    )


@pytest.mark.parametrize(
    "raddr", ["ws://[::1", "ws://host:abc/", "ws://host:99999/", "http://host/", "host:1337"]
)
def test_a_remote_address_that_is_no_ws_url(raddr: str) -> None:
    chat = run_weron("chat", *JOIN, "--names", "a", "--raddr", raddr, "--timeout", "1s")
    shown = "<invalid url>" if "[" in raddr else raddr  # what urllib cannot split: redacted
    assert error_line(chat) == f"Error: remote address {shown!r} is not a ws:// or wss:// URL"
    gonet = run_gonet("--raddr", raddr, "lobby/room/key")
    assert "is not a ws:// or wss:// URL" in error_line(gonet)


def test_a_management_address_that_is_no_url() -> None:
    result = run_weron("manager", "list", "--api-password", "x", "--raddr", "http://[::1")
    assert "is not an http(s):// or ws(s):// URL" in error_line(result)


@pytest.mark.parametrize("kind", ["ip", "ethernet"])
@pytest.mark.parametrize("dev", ["bad/name", "a b", "..", "much-too-long-name0"])
def test_a_device_name_linux_refuses(kind: str, dev: str) -> None:
    """Checked before the device is opened (also before a missing permission shows)."""
    ips = ("--ips", "10.99.0.1/24") if kind == "ip" else ()
    result = run_weron("vpn", kind, *JOIN, *ips, "--dev", dev, "--raddr", "ws://127.0.0.1:9/")
    line = error_line(result)
    assert line.startswith(f"Error: device name {dev!r} ") and "choose another --dev" in line
    assert "is not a TUN device" not in line


@pytest.mark.parametrize("ips", ["10.0.0.1", "banana", "10.0.0.1/33"])
def test_ips_that_are_no_networks(ips: str) -> None:
    result = run_weron("vpn", "ip", *JOIN, "--ips", ips)
    assert error_line(result) == f"Error: not an IP network: {ips!r} (expected e.g. 10.0.0.1/24)"


@pytest.mark.parametrize(
    "command",
    [
        [*WERON, "-v=7", "manager", "list"],
        [*WERON, "manager", "list", "-v=7"],
        [*GONET, "-v=7", "--identity", "/nonexistent/dir/k", "lobby/room/key"],
    ],
)
def test_v_equals_seven_is_a_verbosity(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1, result.stderr  # the command ran, and met the next mistake
    assert "--verbose" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        [*WERON, "-v", "9", "manager", "list"],
        [*WERON, "manager", "list", "--verbose=8"],
        [*GONET, "-v", "9", "lobby/room/key"],
        [*WERON, "utility", "nat", "-v=-1"],
    ],
)
def test_verbosity_beyond_seven_is_refused(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "is not in the range 0<=x<=7" in error_line(result)


def test_laddr_on_the_command_line_wins_over_port(tmp_path: Path) -> None:
    port = free_port()
    signaler = start_signaler(tmp_path, env={"PORT": str(free_port())}, port=port)
    try:
        listening = [
            r for r in signaler.log_records() if r.get("message") == "Listening on address"
        ]
        assert listening and listening[0]["laddr"] == f"127.0.0.1:{port}"
    finally:
        signaler.stop()


@pytest.mark.parametrize(
    ("args", "env", "text"),
    [
        ((), {}, False),
        (("--log-format", "text"), {}, True),
        ((), {"WERON_LOG_FORMAT": "text"}, True),
        (("--log-format", "json"), {"WERON_LOG_FORMAT": "text"}, False),
    ],
)
def test_log_formats(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], text: bool
) -> None:
    signaler = start_signaler(tmp_path, *args, "--api-password", "secret-pw", env=env)
    try:
        signaler.stop()
        lines = signaler.logs().splitlines()
    finally:
        signaler.stop()
    listening = next(line for line in lines if "Listening on address" in line)
    if text:
        time, level, *rest = listening.split(" ")
        assert time.startswith("20") and level == "INFO"
        assert rest == ["", "Listening", "on", "address", f"laddr=127.0.0.1:{signaler.port}"]
    else:
        assert json.loads(listening)["message"] == "Listening on address"
    assert "secret-pw" not in signaler.logs()


_WHILE_LOADING = """
class Interrupt:  # Ctrl-C as the commands' modules load (click is among the first)
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            os.kill(os.getpid(), signal.SIGINT)
sys.meta_path.insert(0, Interrupt())
"""
_WHILE_PARSING = """
import click
parse = click.Command.parse_args
def interrupted(self, ctx, args):  # Ctrl-C as click parses the flags
    os.kill(os.getpid(), signal.SIGINT)
    return parse(self, ctx, args)
click.Command.parse_args = interrupted
"""
_IN_A_CALLBACK = """
import click, weakref
parse = click.Command.parse_args
class Lock: pass
def interrupted(self, ctx, args):  # Ctrl-C as a weakref callback runs (as in the import locks)
    lock = Lock()
    ref = weakref.ref(lock, lambda _: os.kill(os.getpid(), signal.SIGINT))
    del lock
    return parse(self, ctx, args)
click.Command.parse_args = interrupted
"""


@pytest.mark.parametrize(
    "moment",
    [_WHILE_LOADING, _WHILE_PARSING, _IN_A_CALLBACK],
    ids=["loading", "parsing", "in-a-callback"],
)
def test_ctrl_c_during_start_up_ends_quietly(moment: str) -> None:
    """Ctrl-C before the command runs ends with status 130: not an import traceback, nor
    click's "Aborted!" and status 1. (The signal is sent from inside, at a known moment: a
    delay from outside lands anywhere on a loaded machine.)"""
    code = (
        "import os, signal, sys\n"
        "sys.argv = ['weron', 'utility', 'latency', '--raddr', 'ws://127.0.0.1:9/']\n"
        f"{moment}\n"
        "from weron.cli.entry import weron\n"
        "weron()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr and "Aborted!" not in result.stderr, result.stderr
